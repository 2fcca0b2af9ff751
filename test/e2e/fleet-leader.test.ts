// Fleet mode's leader on real etcd (issue 12 "Behaviour", docs/fleet.md "Leader"): a 3-member etcd
// cluster on loopback, three hosts (each a real nginx and a real `nginx-canary run` child with a
// `fleet:` section), lease_ttl 2 s, real traffic through every host.
//
// - the fleet walks as one: 5 → 15 → 25 → 30 on every host, each step once; `status` on a follower shows
//   the fleet; /metrics tells the leader apart; a target set on a follower moves the whole fleet;
// - SIGSTOP the leader past its lease: a successor leads, and after the successor's first write not one
//   `desired` written by the old leader lands (a watch records every put); resumed, it follows;
// - SIGKILL the leader mid-soak: a successor writes within lease_ttl + 1 s; no step skipped or doubled,
//   no soak shortened; the killed host's sidecar, restarted at once, claims its name again and rejoins.
//
// Every put of `desired` is recorded by a watch in this process (src/fleet/etcd.ts watchPrefix), so the
// assertions read what etcd accepted, not what a host says about itself.
import t from 'tap';
import { setTimeout as delay } from 'node:timers/promises';
import { startEtcdCluster } from '../fixtures/etcd.js';
import { startFleet, type Fleet, type FleetHostHandle } from '../fixtures/fleet.js';
import { raisesIn, sample, spawnCli } from '../fixtures/stack.js';
import type { Teardown } from '../fixtures/nginx/harness.js';
import { FleetEtcd, type KeyValue } from '../../src/fleet/etcd.js';
import { DESIRED_KEY, MEMBERS_PREFIX, parseDesired, type FleetDesired } from '../../src/fleet/protocol.js';
import type { StatusDocument } from '../../src/runner.js';
import { waitFor, WaitTimeoutError } from '../../src/util/wait.js';

/** fleet.lease_ttl of every fleet here (the fixture's default, 2s). */
const LEASE_TTL_MS = 2000;
/**
 * Gates these tests are not about, kept from draining on a busy machine (a drain would end the walk they
 * watch): probes every second with a second's timeout (a 200 ms probe timing out reads as a failing
 * canary) and a response p95 allowed 100 × the primary's.
 */
const QUIET = { probeInterval: '1s', minProbes: 2, baselineFactor: 100 } as const;
/** Requests/s over all hosts: 5 % of it is 15 canary requests/s, well above min_requests 20 per 5 s window. */
const RATE = 300;

const cluster = await startEtcdCluster({ members: 3, t });

/** One put of `desired` as the test's watch saw it. */
interface DesiredPut {
  /** performance.now() when the event reached this process. */
  mono: number;
  modRevision: bigint;
  doc: FleetDesired;
}

/** A watch on the fleet's `desired` key that records every put. */
interface DesiredWatch {
  etcd: FleetEtcd;
  puts: DesiredPut[];
  /** How many times the watch read the key afresh (1: no put was missed since it started). */
  resets(): number;
  /** The newest desired document seen, or null. */
  latest(): FleetDesired | null;
  /** Documents under `desired` that did not parse (the watch's callbacks cannot throw to the test). */
  unreadable: string[];
}

/** Connects a plain etcd client (no campaign, no name claim) to the fleet's prefix and watches `desired`. */
async function watchDesired(t: Teardown, prefix: string): Promise<DesiredWatch> {
  const etcd = await FleetEtcd.connect({
    endpoints: cluster.endpoints,
    prefix,
    host: 'test-watcher',
    leaseTtlMs: LEASE_TTL_MS,
  });
  const puts: DesiredPut[] = [];
  const unreadable: string[] = [];
  let resets = 0;
  let current: FleetDesired | null = null;
  const take = (kv: KeyValue, record: boolean): void => {
    if (kv.key !== DESIRED_KEY) return;
    const p = parseDesired(kv.value);
    if (!p.ok) {
      unreadable.push(p.error);
      return;
    }
    current = p.value;
    if (record) puts.push({ mono: performance.now(), modRevision: BigInt(kv.modRevision), doc: p.value });
  };
  const stop = etcd.watchPrefix(
    DESIRED_KEY,
    (e) => {
      if (e.type === 'put') take(e.kv, true);
    },
    (kvs) => {
      resets++;
      for (const kv of kvs) take(kv, false);
    },
  );
  t.teardown(async () => {
    await stop();
    await etcd.close();
  });
  await waitFor(() => resets > 0, { timeoutMs: 10_000, what: 'the test watch on desired' });
  return { etcd, puts, unreadable, resets: () => resets, latest: () => current };
}

/** What a failed wait adds to its message: the current fleet's state (set by {@link fleetOf}; subtests run one at a time). */
let diagnose: (() => Promise<string>) | null = null;

/**
 * waitFor with the last value (or error) seen in the timeout message, and the fleet's state (every
 * host's fleet status and log tail, the election keys), so a failed wait says where the fleet stood.
 */
async function until<T>(what: string, probe: () => T | Promise<T>, timeoutMs: number, intervalMs = 100) {
  try {
    return await waitFor(probe, { timeoutMs, intervalMs, what });
  } catch (err) {
    if (!(err instanceof WaitTimeoutError)) throw err;
    const last = err.last instanceof Error ? err.last.message : JSON.stringify(err.last, null, 1);
    const more = diagnose ? `\n${await diagnose().catch((e: unknown) => `(diagnosis failed: ${String(e)})`)}` : '';
    throw new Error(`${err.message}; last seen: ${last?.slice(0, 4000)}${more}`, { cause: err });
  }
}

/** Every running host's fleet status and the tail of its sidecar log, for a failure message. */
async function diagnosis(fleet: Fleet, watch: DesiredWatch): Promise<string> {
  const parts: string[] = [];
  const election = await watch.etcd.getPrefix('election/').catch((e: unknown) => String(e));
  const keys =
    typeof election === 'string'
      ? []
      : election
          .map((kv) => ({ key: kv.key, host: kv.value, created: kv.createRevision }))
          .sort((a, b) => Number(BigInt(a.created) - BigInt(b.created)));
  parts.push(
    `election keys, oldest (the leader's) first: ${typeof election === 'string' ? election : JSON.stringify(keys)}`,
  );
  const d = watch.latest();
  parts.push(
    `watch: ${watch.puts.length} puts, ${watch.resets()} reads; latest desired: leader ${d?.leader} generation ${d?.generation} weights ${JSON.stringify(d?.weights)} hold ${d?.hold}`,
  );
  for (const h of fleet.hosts) {
    const running = h.sidecar !== null && h.sidecar.exitCode === null && h.sidecar.signalCode === null;
    const st = running ? await h.status().catch((e: unknown) => `status failed: ${String(e)}`) : 'not running';
    const f = typeof st === 'string' ? st : JSON.stringify({ ...st.fleet, summary: st.services[0]?.summary });
    const lines = h.output().split('\n');
    const fleetLines = lines.filter((l) => l.includes('"component":"fleet"') || /"level":[56]0/.test(l)).slice(-15);
    const tail = [...fleetLines, '…', ...lines.slice(-8)].join('\n');
    parts.push(`--- ${h.name} (${running ? 'running' : 'stopped'}): ${f}\n${tail}`);
    if (typeof st !== 'string' && keys[0]?.host === h.name && st.fleet?.isLeader === false)
      parts.push(
        `NOTE: ${h.name} holds the oldest campaign key yet does not lead: no other host can be elected while its lease lives (a stuck etcd3 Campaign: see the Campaign's waitForElected revision)`,
      );
  }
  return parts.join('\n');
}

/** Paced traffic over every host until stopped, bounded by `capMs` (so by RATE × capMs requests too). */
function load(fleet: Fleet, capMs = 120_000): { stop(): Promise<number> } {
  let stopped = false;
  let sent = 0;
  const t0 = performance.now();
  const run = (async () => {
    while (!stopped && performance.now() - t0 < capMs) {
      sent += (await fleet.send(20)).length;
      const ahead = t0 + (sent / RATE) * 1000 - performance.now();
      if (ahead > 0 && !stopped) await delay(Math.min(ahead, 200));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await run;
      return sent;
    },
  };
}

/** Starts every host's sidecar, in parallel. */
async function startAll(fleet: Fleet): Promise<void> {
  await Promise.all(fleet.hosts.map((h) => h.startSidecar()));
}

/** Waits until every host in `hosts` serves `weight` % (its include file on disk). */
async function allServe(hosts: readonly FleetHostHandle[], weight: number, timeoutMs: number): Promise<void> {
  await until(
    `every host serving ${weight} %`,
    async () => {
      const w = await Promise.all(hosts.map((h) => h.servedWeight()));
      if (w.every((x) => x === weight)) return true;
      throw new Error(`served: ${JSON.stringify(Object.fromEntries(hosts.map((h, i) => [h.name, w[i]])))}`);
    },
    timeoutMs,
    200,
  );
}

/** The host whose sidecar says it leads, once exactly one of `hosts` says so and the others name it. */
async function leaderAmong(hosts: readonly FleetHostHandle[], timeoutMs = 20_000): Promise<FleetHostHandle> {
  return until(
    'exactly one leader, named by every host',
    async () => {
      const docs = await Promise.all(hosts.map((h) => h.status()));
      const leaders = hosts.filter((_, i) => docs[i]?.fleet?.isLeader === true);
      const one = leaders.length === 1 ? leaders[0] : undefined;
      return one && docs.every((d) => d.fleet?.leader === one.name) ? one : null;
    },
    timeoutMs,
  );
}

/** How many times a sidecar's log says it became the fleet leader (fleet/etcd.ts logs each change). */
function leadershipClaims(output: string): number {
  return output.split('\n').filter((l) => l.includes('"msg":"fleet etcd: leader"')).length;
}

/** The reasons a sidecar's log gives for each end of its leadership (`deadline`, `lost`, `fenced`, …). */
function leadershipEnds(output: string): string[] {
  return output
    .split('\n')
    .filter((l) => l.includes('"msg":"fleet etcd: no longer leader"'))
    .map((l) => /"reason":"([a-z]+)"/.exec(l)?.[1] ?? '?');
}

/** The canary weights the successive puts wrote, each change once (zeros before the first raise dropped). */
function weightsWritten(puts: readonly DesiredPut[]): number[] {
  const out: number[] = [];
  for (const p of puts) {
    const w = p.doc.weights['gateway'] ?? Number.NaN;
    if (out.at(-1) !== w && !(out.length === 0 && w === 0)) out.push(w);
  }
  return out;
}

/** A fleet of three hosts on the shared cluster, every sidecar started, a watch on `desired`, traffic on. */
async function fleetOf(
  t: Teardown,
  opts: { target: number; soak?: string },
): Promise<{ fleet: Fleet; watch: DesiredWatch; traffic: { stop(): Promise<number> }; startedAt: number }> {
  const fleet = await startFleet(t, {
    hosts: 3,
    etcd: () => cluster.endpoints,
    ...QUIET,
    target: opts.target,
    leaseTtl: `${LEASE_TTL_MS / 1000}s`,
    ...(opts.soak !== undefined ? { soak: opts.soak } : {}),
  });
  const watch = await watchDesired(t, fleet.prefix);
  diagnose = () => diagnosis(fleet, watch);
  t.teardown(() => {
    diagnose = null;
  });
  await startAll(fleet);
  const startedAt = performance.now();
  const traffic = load(fleet);
  t.teardown(() => traffic.stop());
  return { fleet, watch, traffic, startedAt };
}

t.test('the fleet walks as one', async (t) => {
  const { fleet, watch, traffic, startedAt } = await fleetOf(t, { target: 30 });
  try {
    await allServe(fleet.hosts, 30, 60_000);
    const walkMs = performance.now() - startedAt;
    t.comment(`walk to 30 % on 3 hosts: ${(walkMs / 1000).toFixed(1)} s`);

    const desired = await until(
      'desired at 30 % in the watch',
      () => (watch.latest()?.weights['gateway'] === 30 ? watch.latest() : null),
      10_000,
    );
    t.same(
      raisesIn(desired.state.history).map((e) => e.to),
      [5, 15, 25, 30],
      "the fleet's history went 5 → 15 → 25 → 30, each step once",
    );
    t.same(weightsWritten(watch.puts), [5, 15, 25, 30], 'the leader wrote 5, 15, 25, 30 in that order, none twice');

    const leader = await leaderAmong(fleet.hosts);
    const follower = fleet.hosts.find((h) => h !== leader);
    if (!follower) throw new Error('no follower');
    const doc = await until(
      `status on follower ${follower.name} showing the whole fleet verified`,
      async () => {
        const s = await follower.status();
        const f = s.fleet;
        const ok =
          f !== undefined &&
          f.desiredGeneration !== null &&
          f.hosts.length === 3 &&
          f.hosts.every((h) => h.live && h.verified === f.desiredGeneration && h.weights['gateway'] === 30);
        return ok ? s : null;
      },
      10_000,
    );
    const f = doc.fleet;
    t.equal(f?.leader, leader.name, `a follower's status names the leader (${leader.name})`);
    t.equal(f?.isLeader, false, 'the follower does not lead');
    t.same(
      f?.hosts.map((h) => h.host),
      fleet.hosts.map((h) => h.name),
      'the follower lists every host',
    );
    t.ok(
      f?.hosts.every((h) => h.live && h.applyError === null),
      'every host is live, no apply error',
    );
    t.equal(f?.desiredGeneration, watch.latest()?.generation, "the follower's desired generation is etcd's");

    for (const h of fleet.hosts) {
      const m = await until(
        `the metrics of ${h.name} at 30 %`,
        async () => {
          const text = await h.metrics();
          return sample(text, 'nginx_canary_weight_percent{service="gateway"}') === 30 ? text : null;
        },
        10_000,
      );
      t.equal(sample(m, 'nginx_canary_fleet_leader'), h === leader ? 1 : 0, `${h.name}: nginx_canary_fleet_leader`);
      t.equal(sample(m, 'nginx_canary_fleet_desired_weight_percent{service="gateway"}'), 30, `${h.name}: desired 30`);
      t.equal(sample(m, 'nginx_canary_weight_percent{service="gateway"}'), 30, `${h.name}: serves 30`);
    }

    // `nginx-canary target` on a follower, as the issue's operator does it: the fleet's target, through
    // that host's sidecar (weights.yaml only seeds it).
    const cli = spawnCli(follower.dir, follower.configFile, ['target', 'gateway', '60'], 30_000);
    const { code } = await cli.exited;
    t.equal(code, 0, `nginx-canary target gateway 60 on ${follower.name} exits 0 (${cli.output()})`);
    t.match(cli.output(), /fleet target 30 % → 60 %/, 'and says it set the fleet target');
    const taken = await waitFor(() => watch.latest()?.targets['gateway'] === 60, {
      timeoutMs: 2 * LEASE_TTL_MS,
      intervalMs: 100,
    }).catch(() => false);
    t.ok(taken, 'the CLI on a follower sets the fleet target');
    const t60 = performance.now();
    await allServe(fleet.hosts, 60, 60_000);
    t.comment(`walk 30 → 60 % on 3 hosts: ${((performance.now() - t60) / 1000).toFixed(1)} s`);
    const after = await until(
      'desired at 60 % in the watch',
      () => (watch.latest()?.weights['gateway'] === 60 ? watch.latest() : null),
      10_000,
    );
    t.equal(after.targets['gateway'], 60, "the fleet's target is 60");
    t.same(
      raisesIn(after.state.history).map((e) => e.to),
      [5, 15, 25, 30, 40, 50, 60],
      'then 40 → 50 → 60, each once',
    );
    t.same(weightsWritten(watch.puts), [5, 15, 25, 30, 40, 50, 60], 'the writes went the same way');
    t.equal(watch.resets(), 1, 'the watch never had to re-read (no put went unseen)');
    t.same(watch.unreadable, [], 'every desired document parsed');
  } finally {
    await traffic.stop();
  }
});

t.test('SIGSTOP the leader past the lease: not one of its writes lands', async (t) => {
  const { fleet, watch, traffic } = await fleetOf(t, { target: 50 });
  try {
    // Mid-walk: the fleet has raised at least once, so the successor has a walk to continue.
    await until('the first raise', () => (watch.latest()?.weights['gateway'] ?? 0) >= 5, 30_000);
    const old = await leaderAmong(fleet.hosts);
    const others = fleet.hosts.filter((h) => h !== old);
    const claimsBefore = leadershipClaims(old.output());
    t.ok(claimsBefore >= 1, `${old.name} logged its election`);
    const stoppedAt = performance.now();
    await old.signal('SIGSTOP');
    let successor: FleetHostHandle;
    let first: DesiredPut;
    try {
      successor = await until(
        'a successor',
        async () => {
          for (const h of others) if ((await h.status()).fleet?.isLeader === true) return h;
          return null;
        },
        15_000,
      );
      first = await until(
        "the successor's first write",
        () => watch.puts.find((p) => p.mono > stoppedAt && p.doc.leader === successor.name),
        10_000,
        20,
      );
    } finally {
      await old.signal('SIGCONT');
    }
    const contAt = performance.now();
    t.comment(
      `SIGSTOP → successor ${successor.name}'s first write: ${(first.mono - stoppedAt).toFixed(0)} ms; ` +
        `SIGCONT ${(contAt - first.mono).toFixed(0)} ms later`,
    );
    t.not(successor.name, old.name, 'another host leads');

    // Keep watching for 3 × lease_ttl after SIGCONT, until the old leader follows the fleet.
    const seen = await until(
      `${old.name} following for 3 × lease_ttl after SIGCONT`,
      async () => {
        const s = await old.status();
        const d = watch.latest();
        const served = await old.servedWeight();
        const self = s.fleet?.hosts.find((h) => h.host === old.name);
        const follows =
          d !== null &&
          s.fleet?.isLeader === false &&
          s.fleet.leader === successor.name &&
          served === d.weights['gateway'] &&
          self?.live === true &&
          self.verified === d.generation;
        if (follows && performance.now() - contAt >= 3 * LEASE_TTL_MS) return { s, d, served };
        const shown = { ...s.fleet, hosts: undefined };
        throw new Error(
          `${follows ? 'following' : 'not following'}: ${JSON.stringify({ served, desired: d?.weights, generation: d?.generation, fleet: shown, self })}`,
        );
      },
      30_000,
      200,
    );
    const late = watch.puts.filter((p) => p.modRevision > first.modRevision && p.doc.leader === old.name);
    t.same(
      late.map((p) => ({ rev: String(p.modRevision), generation: p.doc.generation })),
      [],
      `no put of desired by ${old.name} landed after ${successor.name}'s first write (${watch.puts.filter((p) => p.modRevision > first.modRevision).length} puts watched)`,
    );
    t.ok(
      watch.puts.filter((p) => p.modRevision > first.modRevision).every((p) => p.doc.leader === successor.name),
      `every later put is ${successor.name}'s`,
    );
    t.equal(seen.s.fleet?.isLeader, false, `${old.name} says it does not lead`);
    t.equal(seen.served, seen.d.weights['gateway'], `${old.name} serves the fleet's desired ${seen.served} %`);
    t.equal(
      sample(await old.metrics(), 'nginx_canary_fleet_leader'),
      0,
      `${old.name}: nginx_canary_fleet_leader 0 after SIGCONT`,
    );
    t.equal(watch.resets(), 1, 'the watch never had to re-read (no put went unseen)');
    t.same(watch.unreadable, [], 'every desired document parsed');
    t.equal(leadershipClaims(old.output()), claimsBefore, `${old.name} never took the lead again`);
    t.comment(`${old.name}'s leadership ended by: ${leadershipEnds(old.output()).join(', ') || '(nothing logged)'}`);
    t.notOk(old.output().includes('"level":60'), `${old.name} logged nothing fatal`);
  } finally {
    await traffic.stop();
  }
});

t.test('SIGKILL the leader mid-soak', async (t) => {
  const SOAK_MS = 6000;
  const { fleet, watch, traffic } = await fleetOf(t, { target: 30, soak: `${SOAK_MS / 1000}s` });
  try {
    // Mid-soak: the leader wrote weight 5 with at least 1 s of its 6 s soak counted.
    const before = await until(
      '1 s into the soak at 5 %',
      () => {
        const d = watch.latest();
        const s = d?.state.services['gateway'];
        return s && s.weight === 5 && s.soakedMs >= 1000 && s.soakedMs <= SOAK_MS - 2000 ? d : null;
      },
      40_000,
      20,
    );
    const victim = fleet.hosts.find((h) => h.name === before.leader);
    if (!victim) throw new Error(`the leader ${before.leader} is not a host of this fleet`);
    // The victim's name claim (members/<host>): when the stale one expires and the new one lands.
    const claims: { type: 'put' | 'delete'; mono: number }[] = [];
    let claimsRead = false;
    const stopClaims = watch.etcd.watchPrefix(
      `${MEMBERS_PREFIX}${victim.name}`,
      (e) => {
        if (e.kv.key === `${MEMBERS_PREFIX}${victim.name}`) claims.push({ type: e.type, mono: performance.now() });
      },
      () => (claimsRead = true),
    );
    t.teardown(stopClaims);
    await until('the watch on the name claim', () => claimsRead, 10_000, 20);
    const killedAtEpoch = Date.now();
    const killedAt = performance.now();
    await victim.signal('SIGKILL');

    // Restarted at once, as systemd's Restart= would: its old name claim may still be in etcd.
    const staleClaim = await watch.etcd.get(`${MEMBERS_PREFIX}${victim.name}`);
    const restartAt = performance.now();
    // Settled at once (a value or the error), so a failed restart is reported below, not as an unhandled rejection.
    const restarted = victim.startSidecar().then(
      () => performance.now(),
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );

    const first = await until(
      "a successor's first write",
      () => watch.puts.find((p) => p.mono > killedAt && p.doc.leader !== victim.name),
      15_000,
      20,
    );
    const failoverMs = first.mono - killedAt;
    t.comment(
      `SIGKILL of ${victim.name} at ${(before.state.services['gateway']?.soakedMs ?? 0) / 1000} s of soak → ` +
        `${first.doc.leader}'s first write: ${failoverMs.toFixed(0)} ms`,
    );
    t.ok(failoverMs <= LEASE_TTL_MS + 1000, `failover ${failoverMs.toFixed(0)} ms ≤ lease_ttl + 1 s`);

    const rejoinedAt = await restarted;
    if (rejoinedAt instanceof Error) throw rejoinedAt;
    t.comment(
      `restart of ${victim.name}: API up ${(rejoinedAt - restartAt).toFixed(0)} ms after the spawn ` +
        `(its old name claim ${staleClaim ? 'was still in etcd' : 'had already expired'})`,
    );
    t.ok(victim.sidecar?.exitCode === null, `${victim.name}'s restarted sidecar claimed its name and runs`);
    const expired = claims.find((c) => c.type === 'delete');
    const claimed = claims.find((c) => c.type === 'put');
    t.ok(claimed, `${victim.name}'s new name claim landed in etcd`);
    if (staleClaim) t.ok(expired && claimed && expired.mono <= claimed.mono, 'after the stale claim expired');
    t.comment(
      `name claim of ${victim.name}: the stale one expired ${expired ? `${(expired.mono - killedAt).toFixed(0)} ms` : 'before the watch,'} ` +
        `and the new one landed ${claimed ? (claimed.mono - killedAt).toFixed(0) : '?'} ms after the kill`,
    );

    await allServe(fleet.hosts, 30, 60_000);
    const desired = await until(
      'desired at 30 % in the watch',
      () => (watch.latest()?.weights['gateway'] === 30 ? watch.latest() : null),
      10_000,
    );
    const raises = raisesIn(desired.state.history);
    t.same(
      raises.map((e) => e.to),
      [5, 15, 25, 30],
      'the walk went 5 → 15 → 25 → 30: no step skipped, none doubled',
    );
    t.same(weightsWritten(watch.puts), [5, 15, 25, 30], 'the writes went the same way');
    const cut = raises.findLastIndex((e) => e.at <= killedAtEpoch);
    const cutRaise = raises[cut];
    const nextRaise = raises[cut + 1];
    t.ok(cutRaise && nextRaise, 'the kill landed between two raises');
    if (cutRaise && nextRaise) {
      const soakMs = nextRaise.at - cutRaise.at;
      t.comment(`the interrupted soak at ${cutRaise.to} %: ${(soakMs / 1000).toFixed(1)} s from raise to raise`);
      t.ok(soakMs >= SOAK_MS, `the soak at ${cutRaise.to} % the kill interrupted lasted ${soakMs} ms ≥ ${SOAK_MS} ms`);
    }
    for (let i = 1; i < raises.length; i++) {
      const a = raises[i - 1];
      const b = raises[i];
      if (a && b) t.ok(b.at - a.at >= SOAK_MS, `${a.to} → ${b.to} after ${b.at - a.at} ms ≥ ${SOAK_MS} ms`);
    }

    // The restarted host rejoined: live and verified in the new leader's view.
    const successor = fleet.hosts.find((h) => h.name === first.doc.leader);
    if (!successor) throw new Error(`the successor ${first.doc.leader} is not a host of this fleet`);
    const doc: StatusDocument = await until(
      `${victim.name} live and verified in ${successor.name}'s status`,
      async () => {
        const s = await successor.status();
        const f = s.fleet;
        const v = f?.hosts.find((h) => h.host === victim.name);
        return f && v?.live === true && v.verified === f.desiredGeneration && v.weights['gateway'] === 30 ? s : null;
      },
      15_000,
    );
    t.equal(doc.fleet?.isLeader, true, `${successor.name} still leads`);
    const mine = await victim.status();
    t.equal(mine.fleet?.isLeader, false, `the restarted ${victim.name} follows`);
    t.equal(mine.fleet?.leader, successor.name, `the restarted ${victim.name} names ${successor.name} as leader`);
    t.equal(watch.resets(), 1, 'the watch never had to re-read (no put went unseen)');
    t.same(watch.unreadable, [], 'every desired document parsed');
  } finally {
    await traffic.stop();
  }
});
