// Fleet mode under faults (issue 12 "Behaviour", docs/fleet.md "Barrier", "Local safety", "One config"), on a
// real 3-member etcd, 3 hosts (each a real nginx and a real sidecar child process), lease_ttl 2s:
// - a host whose nginx.conf is broken by hand holds the fleet's walk, `status` on every host names it with
//   its nginx -t error, its behind_seconds grows; fixed, the walk goes on to the target;
// - a follower cut from etcd by a TCP proxy keeps its weights and never raises while the others walk on,
//   converges when the proxy reopens, drains on its own evidence while cut (and pages itself);
// - a host whose weights.yaml has another gates.window holds the walk and `status` says how it differs;
//   fixed on disk (the sidecar re-reads it), the walk goes on.
// Quorum loss is in fleet-quorum.test.ts. Every wait has a deadline; every load loop is bounded.
import t from 'tap';
import http from 'node:http';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { startEtcdCluster } from '../fixtures/etcd.js';
import { startFleet, type Fleet, type FleetHostHandle } from '../fixtures/fleet.js';
import { allAt, allVerified, load, maxOf, recordWeights, served, stopwatch, until } from '../fixtures/fleet-wait.js';
import { QUIET_GATES, sample } from '../fixtures/stack.js';
import { startTcpProxy } from '../fixtures/tcp-proxy.js';
import type { Teardown } from '../fixtures/nginx/harness.js';
import { waitFor } from '../../src/util/wait.js';

/** Soak of every slice and step (weights.yaml), ms. */
const SOAK_MS = 1000;
/** fleet.lease_ttl, ms. */
const LEASE_TTL_MS = 2000;
/** The walk to target 30: slice 5, then steps of 10. */
const WALK = [5, 15, 25, 30];

const cluster = await startEtcdCluster({ members: 3, t });

// ---- helpers (the shared ones are in test/fixtures/fleet-wait.ts) ---------------------------------------

/** One number from a host's /metrics (NaN when absent). */
async function metric(h: FleetHostHandle, series: string): Promise<number> {
  return sample(await h.metrics(), series);
}

/** Starts host-1's sidecar and waits until it leads, then starts the others: host-1 is the leader. */
async function startLedByFirst(fleet: Fleet): Promise<void> {
  const [first, ...rest] = fleet.hosts;
  if (!first) throw new Error('no hosts');
  await first.startSidecar();
  await until(fleet, `${first.name} to lead`, async () => (await first.status()).fleet?.isLeader === true, 15_000);
  await Promise.all(rest.map((h) => h.startSidecar()));
}

/** An HTTP receiver on 127.0.0.1 that answers 200 to every POST and keeps the JSON bodies. */
async function startReceiver(t: Teardown): Promise<{ url: string; posts: { summary?: string }[] }> {
  const posts: { summary?: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      try {
        posts.push(JSON.parse(body) as { summary?: string });
      } catch {
        posts.push({ summary: `unparseable: ${body.slice(0, 200)}` });
      }
      res.writeHead(200).end('ok\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/hook`, posts };
}

// ---- 1. barrier --------------------------------------------------------------------------------------------

t.test('a hand-broken nginx.conf on one host holds the fleet; fixed, the walk goes on', async (t) => {
  const lap = stopwatch(t);
  const fleet = await startFleet(t, {
    hosts: 3,
    etcd: () => cluster.endpoints,
    target: 30,
    soak: '1s',
    ...QUIET_GATES,
  });
  await startLedByFirst(fleet);
  const traffic = load(t, fleet.hosts);
  const [leader, broken] = fleet.hosts as [FleetHostHandle, FleetHostHandle, FleetHostHandle];
  lap('fleet up (3 nginx, 3 sidecars)');

  // Break it once every host has applied and verified 15: its reload is over (a break during a reload fails
  // that reload, and the restore of the apply's snapshot puts the good nginx.conf back), and the soak of 15
  // has just begun, so no raise is in flight.
  await allVerified(fleet, leader, 15, 40_000);
  lap('walk to 15 on every host');
  const conf = broken.config.nginx.conf;
  const good = await readFile(conf, 'utf8');
  await appendFile(conf, '\nthis is not nginx syntax;\n');
  const atBreak = await served(fleet);
  t.same(atBreak, [15, 15, 15], 'every host served 15 when the conf broke');

  // The fleet sees the break only at the broken host's next apply: its report then carries the error.
  await until(
    fleet,
    `${broken.name}'s apply error in the leader's status`,
    async () => (await leader.status()).fleet?.hosts.find((h) => h.host === broken.name)?.applyError,
    15_000,
  );
  lap(`${broken.name}'s next apply refused at preflight`);
  const desiredAtFailure = await metric(leader, 'nginx_canary_fleet_desired_weight_percent{service="gateway"}');
  const generation = (await leader.status()).fleet?.desiredGeneration;
  t.ok(
    desiredAtFailure <= 25,
    `the raise the broken host refused was at most one step: desired ${desiredAtFailure} % (from 15 %)`,
  );

  // Hold for four step soaks: nothing rises, the broken host stays at 15, the leader writes no new weights.
  const rec = recordWeights(fleet);
  const behindFirst = await until(
    fleet,
    `nginx_canary_fleet_behind_seconds > 0 on ${broken.name}`,
    async () => {
      const v = await metric(broken, 'nginx_canary_fleet_behind_seconds');
      return v > 0 ? v : null;
    },
    5000,
  );
  for (const h of fleet.hosts) {
    const st = await until(
      fleet,
      `status on ${h.name} naming ${broken.name} with its nginx -t error`,
      async () => {
        const s = await h.status();
        const entry = s.fleet?.hosts.find((x) => x.host === broken.name);
        return entry?.applyError && s.fleet?.hold?.includes(broken.name) ? s : null;
      },
      5000,
    );
    const entry = st.fleet?.hosts.find((x) => x.host === broken.name);
    t.match(entry?.applyError, /nginx -t/, `${h.name}: ${broken.name}'s applyError says nginx -t failed`);
    t.match(entry?.applyError, /unknown directive "this"/, `${h.name}: … with nginx's own words`);
    t.match(
      st.fleet?.hold,
      new RegExp(`barrier: waiting for ${broken.name} \\(apply failed: .*unknown directive`),
      `${h.name}: the hold line names ${broken.name} and its nginx -t error`,
    );
  }
  const holdEnds = performance.now() + 4 * SOAK_MS;
  await until(
    fleet,
    'four step soaks of holding',
    async () => {
      const ws = await served(fleet);
      if (ws.some((w) => w > desiredAtFailure))
        throw new Error(`a host rose above ${desiredAtFailure} %: ${ws.join(', ')}`);
      return performance.now() >= holdEnds;
    },
    4 * SOAK_MS + 5000,
  );
  const rows = await rec.stop();
  const behindLater = await metric(broken, 'nginx_canary_fleet_behind_seconds');
  t.ok(
    behindLater > behindFirst + 3,
    `behind_seconds grows on ${broken.name}: ${behindFirst.toFixed(1)} → ${behindLater.toFixed(1)} s`,
  );
  t.equal(maxOf(rows, broken.index), 15, `${broken.name} stayed at 15 % (${rows.length} samples)`);
  for (const h of fleet.hosts)
    t.ok(maxOf(rows, h.index) <= desiredAtFailure, `${h.name} never above ${desiredAtFailure} % while held`);
  t.equal((await leader.status()).fleet?.desiredGeneration, generation, 'the leader wrote no new weights while held');
  lap('held (4 step soaks)');

  await writeFile(conf, good);
  await allAt(fleet, 30, 30_000);
  lap('fixed → every host at the target 30');
  // The include file shows 30 % before that host's tick has verified the reload and reported: wait for it.
  const cleared = await waitFor(
    async () =>
      (await leader.status()).fleet?.hosts.find((h) => h.host === broken.name)?.applyError === null &&
      (await metric(broken, 'nginx_canary_fleet_behind_seconds')) === 0,
    { timeoutMs: 10_000, intervalMs: 100, what: `${broken.name}'s report to clear` },
  ).catch(() => false);
  t.ok(cleared, 'the apply error cleared and behind_seconds is back to 0');
  await traffic.stop();
});

// ---- 2. a host cut from etcd ------------------------------------------------------------------------------

t.test('a follower cut from etcd keeps its weights, never raises, drains on its own evidence, converges', async (t) => {
  const lap = stopwatch(t);
  const member = cluster.members[0];
  if (!member) throw new Error('no etcd member');
  // The cut host reaches etcd only through this proxy, to ONE member.
  const proxy = await startTcpProxy('127.0.0.1', Number(new URL(member.clientUrl).port), t);
  const hook = await startReceiver(t);
  const CUT = 2;
  const fleet = await startFleet(t, {
    hosts: 3,
    etcd: (i) => (i === CUT ? [proxy.url] : cluster.endpoints),
    target: 30,
    soak: '1s',
    webhookUrl: hook.url,
    ...QUIET_GATES,
  });
  await startLedByFirst(fleet);
  const [leader, other, cut] = fleet.hosts as [FleetHostHandle, FleetHostHandle, FleetHostHandle];
  const before = await until(
    fleet,
    `${cut.name} to see ${leader.name} lead`,
    async () => {
      const s = await cut.status();
      return s.fleet?.leader === leader.name ? s : null;
    },
    10_000,
  );
  t.equal(before.fleet?.isLeader, false, `${cut.name} is a follower`);
  const traffic = load(t, fleet.hosts);
  lap('fleet up (3 nginx, 3 sidecars; host-3 through the proxy)');

  // Cut once every host has applied and verified 15 (the soak of 15 has just begun: no raise is in flight).
  await allVerified(fleet, leader, 15, 40_000);
  lap('walk to 15 on every host');
  proxy.close();
  const cutAt = performance.now();
  const rec = recordWeights(fleet);
  await until(
    fleet,
    `the leader to see ${cut.name}'s lease expired`,
    async () => (await leader.status()).fleet?.hosts.find((h) => h.host === cut.name)?.live === false,
    LEASE_TTL_MS + 5000,
  );
  const expiredMs = performance.now() - cutAt;
  t.ok(
    expiredMs <= LEASE_TTL_MS + 3000,
    `${cut.name} stopped being a live host ${(expiredMs / 1000).toFixed(1)} s after the cut`,
  );
  // Once the cut host's lease expires it is no longer a live host: the others walk on to the target.
  await allAt(fleet, 30, 30_000, [leader, other]);
  const cutDown = await until(
    fleet,
    `${cut.name} to see etcd down`,
    async () => {
      const s = await cut.status();
      return s.fleet?.etcd === 'down' ? s : null;
    },
    10_000,
  );
  t.equal(cutDown.fleet?.leader, null, `${cut.name} names no leader while cut off`);
  t.equal(await metric(cut, 'nginx_canary_fleet_etcd_up'), 0, `${cut.name}: nginx_canary_fleet_etcd_up 0`);
  let rows = await rec.stop();
  t.equal(maxOf(rows, CUT), 15, `${cut.name} stayed at 15 % while the others went 15 → 30 (${rows.length} samples)`);
  t.equal(await cut.servedWeight(), 15, `${cut.name} kept its weight`);
  lap('cut → the others walk on to 30, the cut host holds 15');

  proxy.open();
  await allAt(fleet, 30, 20_000, [cut]);
  await until(
    fleet,
    `the leader to see ${cut.name} live with the current generation verified`,
    async () => {
      const s = (await leader.status()).fleet;
      const h = s?.hosts.find((x) => x.host === cut.name);
      return h?.live === true && h.verified === s?.desiredGeneration;
    },
    10_000,
  );
  lap('reopened → the cut host converges to 30');

  // Cut again, then the canary fails: the cut host drains on its own evidence and pages by itself.
  proxy.close();
  const drainRec = recordWeights(fleet);
  await fleet.canary.setFault({ kind: 'status', status: 500 });
  await allAt(fleet, 0, 20_000, [cut]);
  lap('canary 500s → the cut host at 0 on its own evidence');
  const ownDrain = (h: { kind: string; reason: string }[]): boolean =>
    h.some((e) => e.kind === 'drain' && e.reason.includes("this host's own evidence"));
  await until(
    fleet,
    `${cut.name}'s status: live weight 0, drained on its own evidence`,
    async () => {
      const s = await cut.status();
      return (
        s.services[0]?.weight === 0 &&
        /drained on this host's own evidence/.test(s.services[0].summary) &&
        ownDrain(s.history)
      );
    },
    5000,
  );
  const ownPages = (): number =>
    hook.posts.filter((p) => p.summary?.includes(`host ${cut.name}, cut off from etcd`)).length;
  await until(fleet, `a page from ${cut.name} (cut off)`, () => ownPages() > 0, 10_000);
  t.equal(await cut.servedWeight(), 0, `${cut.name} still at 0`);
  t.ok(ownDrain((await cut.status()).history), `${cut.name}'s history still has its own drain ticks later`);

  await fleet.canary.setFault({ kind: 'none' });
  proxy.open();
  const converged = await until(
    fleet,
    `${cut.name} serving the fleet's desired weight, its report live and verified`,
    async () => {
      const s = (await leader.status()).fleet;
      const h = s?.hosts.find((x) => x.host === cut.name);
      const desired = await metric(cut, 'nginx_canary_fleet_desired_weight_percent{service="gateway"}');
      const own = await cut.servedWeight();
      const ok =
        h?.live === true && h.verified === s?.desiredGeneration && h.localDrains.length === 0 && own === desired;
      return ok ? { desired, own } : null;
    },
    15_000,
  );
  rows = await drainRec.stop();
  t.equal(maxOf(rows, CUT), 30, `${cut.name} never above 30 % during the second cut`);
  t.equal(converged.own, converged.desired, `${cut.name} serves the fleet's desired ${converged.desired} %`);
  const back = await cut.status();
  t.equal(back.fleet?.etcd, 'up', `${cut.name} sees etcd up again`);
  t.ok(ownDrain(back.history), `${cut.name}'s history keeps its own drain beside the fleet's`);
  lap('reopened → the cut host converges to the fleet (drained)');
  t.equal(ownPages(), 1, `${cut.name} paged its own drain once`);
  t.comment(`webhook posts: ${hook.posts.length} (${hook.posts.map((p) => p.summary).join(' | ')})`);
  await traffic.stop();
});

// ---- 4. hosts disagreeing on services ------------------------------------------------------------------

t.test('a host with another gates.window holds the walk; status says which and how; fixed, it goes on', async (t) => {
  const lap = stopwatch(t);
  const fleet = await startFleet(t, {
    hosts: 3,
    etcd: () => cluster.endpoints,
    target: 30,
    soak: '1s',
    ...QUIET_GATES,
  });
  const [leader, follower, odd] = fleet.hosts as [FleetHostHandle, FleetHostHandle, FleetHostHandle];
  const yaml = await readFile(odd.configFile, 'utf8');
  const oddYaml = yaml.replace(/^(\s+window:) 5s$/m, '$1 6s');
  t.not(oddYaml, yaml, `${odd.name}'s weights.yaml has gates.window 6s (the others 5s)`);
  await writeFile(odd.configFile, oddYaml);
  await startLedByFirst(fleet);
  const traffic = load(t, fleet.hosts);
  lap('fleet up (3 nginx, 3 sidecars)');

  for (const h of [leader, follower]) {
    const st = await until(
      fleet,
      `status on ${h.name} naming ${odd.name} and how it differs`,
      async () => {
        const s = await h.status();
        const entry = s.fleet?.hosts.find((x) => x.host === odd.name);
        return entry?.differs.includes('gateway.gates differs') && s.fleet?.hold?.includes(odd.name) ? s : null;
      },
      15_000,
    );
    t.same(
      st.fleet?.hosts.find((x) => x.host === odd.name)?.differs,
      ['gateway.gates differs'],
      `${h.name}: ${odd.name} differs in gateway.gates only`,
    );
    t.match(
      st.fleet?.hold,
      new RegExp(`${odd.name} \\(services differ from the leader's: gateway\\.gates differs\\)`),
      `${h.name}: the hold line names ${odd.name} and how it differs`,
    );
  }
  t.equal(await metric(leader, 'nginx_canary_fleet_disagreeing_hosts'), 1, 'the leader counts one disagreeing host');
  lap('disagreement named');

  const generation = (await leader.status()).fleet?.desiredGeneration;
  const rec = recordWeights(fleet);
  const holdEnds = performance.now() + 4 * SOAK_MS;
  await until(
    fleet,
    'four step soaks of holding',
    async () => {
      const ws = await served(fleet);
      if (ws.some((w) => w > WALK[0]!)) throw new Error(`a host rose beyond the slice: ${ws.join(', ')}`);
      return performance.now() >= holdEnds;
    },
    4 * SOAK_MS + 5000,
  );
  const rows = await rec.stop();
  for (const h of fleet.hosts)
    t.ok(maxOf(rows, h.index) <= WALK[0]!, `${h.name} never beyond the slice (max ${maxOf(rows, h.index)} %)`);
  t.equal((await leader.status()).fleet?.desiredGeneration, generation, 'the leader wrote no new weights while held');
  lap('held (4 step soaks)');

  await writeFile(odd.configFile, yaml);
  await allAt(fleet, 30, 40_000);
  lap('fixed on disk (re-read by the sidecar) → every host at the target 30');
  const after = await leader.status();
  t.same(after.fleet?.hosts.find((x) => x.host === odd.name)?.differs, [], `${odd.name} agrees again`);
  await traffic.stop();
});
