// Issue 12, "Fleet-wide gates" and "A host's local drain becomes a fleet drain" (docs/fleet.md
// "Leader", "Local safety"), on a real 3-member etcd, 3 hosts (real nginx, real sidecar processes),
// lease_ttl 2 s, and a webhook receiver on 127.0.0.1 counting the pages:
//
// 1. The fleet walking at ≥ 15 %, the canary starts failing 1 request in 20 from every host (5 %,
//    10 × the fixture's gates.error_ratio of 0.5 %): the leader's gate on the merged evidence drains
//    the whole fleet (every host's include file at 0 %), every host's status says drained by
//    error_ratio, the drain is paged exactly once, and the gate behind it counted more canary attempts
//    than any one host served (its evidence is the fleet's sum).
// 2. Only one host's traffic fails on the canary, diluted in the fleet's healthy canary traffic so the
//    merged evidence stays under the threshold: that host drains on its own evidence, the fleet follows
//    (every host at 0), one page (not one per host), and the history names the host.
//
// The canary's failures are made in this process, where the shared backends run: a wrapper of
// `ServerResponse.writeHead` turns chosen canary answers into 500 while its /health and /ready probes
// stay green (Backend's own `status` fault would fail the probes too, and on every host alike).
import t, { type Test } from 'tap';
import http from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { startEtcdCluster } from '../fixtures/etcd.js';
import { startFleet, type Fleet, type FleetHostHandle } from '../fixtures/fleet.js';
import { QUIET_GATES, raisesIn } from '../fixtures/stack.js';
import type { RolloutEvent } from '../../src/rollout/types.js';
import { bucketWidthMs } from '../../src/observe/window.js';
import { waitFor } from '../../src/util/wait.js';

/** lease_ttl of both fleets (the fixture's default), ms. */
const LEASE_TTL_MS = 2000;

// ---- the canary's failures ----------------------------------------------------------------------------

/** Decides, per traffic request the canary answers, whether it answers 500 instead. */
type FaultRule = (req: http.IncomingMessage) => boolean;

/** Canary port → its rule. */
const rules = new Map<number, FaultRule>();
/** Canary answers turned into 500, by canary port. */
const injected = new Map<number, number>();

type WriteHead = (this: http.ServerResponse, status: number, ...rest: unknown[]) => http.ServerResponse;
const proto = http.ServerResponse.prototype as unknown as { writeHead: WriteHead };
const originalWriteHead = proto.writeHead;
proto.writeHead = function (status, ...rest) {
  const req = this.req;
  const port = req.socket.localPort;
  const rule = port === undefined ? undefined : rules.get(port);
  const headers = rest.find((x) => typeof x === 'object' && x !== null) as Record<string, unknown> | undefined;
  const path = (req.url ?? '/').split('?')[0];
  const traffic = headers?.['x-backend'] === 'canary' && path !== '/health' && path !== '/ready';
  if (rule && port !== undefined && traffic && rule(req)) {
    injected.set(port, (injected.get(port) ?? 0) + 1);
    return originalWriteHead.call(this, 500, ...rest);
  }
  return originalWriteHead.call(this, status, ...rest);
};
t.teardown(() => {
  proto.writeHead = originalWriteHead;
});

/** Makes the fleet's canary answer 500 where `rule` says (null: stop). */
function canaryFault(fleet: Fleet, rule: FaultRule | null): void {
  if (rule) rules.set(fleet.canary.port, rule);
  else rules.delete(fleet.canary.port);
}

// ---- the pager ----------------------------------------------------------------------------------------

/** One POST the webhook receiver got. */
interface Received {
  path: string;
  at: number;
  body: { alert?: string; service?: string; reason?: string; summary?: string; event?: RolloutEvent };
}

/** A webhook receiver on 127.0.0.1 (closed at teardown) recording every POST. */
async function startReceiver(t: Test): Promise<{ url: string; posts: Received[] }> {
  const posts: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      if (req.method === 'POST') {
        let parsed: Received['body'] = {};
        try {
          parsed = JSON.parse(body) as Received['body'];
        } catch {
          // counted all the same
        }
        posts.push({ path: req.url ?? '', at: Date.now(), body: parsed });
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
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
  return { url: `http://127.0.0.1:${port}`, posts };
}

// ---- helpers ------------------------------------------------------------------------------------------

/** Every host's served canary weight, percent. */
function served(fleet: Fleet): Promise<number[]> {
  return Promise.all(fleet.hosts.map((h) => h.servedWeight()));
}

/** Waits until every host serves a weight `pred` accepts; resolves to the weights. */
async function untilServed(
  fleet: Fleet,
  what: string,
  pred: (w: number) => boolean,
  timeoutMs: number,
): Promise<number[]> {
  return waitFor(
    async () => {
      const w = await served(fleet);
      return w.every(pred) ? w : null;
    },
    { timeoutMs, intervalMs: 50, what },
  ).catch(async (err: unknown) => {
    throw new Error(
      `${(err as Error).message}; served ${JSON.stringify(await served(fleet))}\n${await explain(fleet)}`,
    );
  });
}

/** What the fleet shows, for failure messages. */
async function explain(fleet: Fleet): Promise<string> {
  const lines: string[] = [];
  for (const h of fleet.hosts) {
    const st = await h.status().catch(() => null);
    const s = st?.services[0];
    lines.push(
      `${h.name}: ${s ? `${s.phase} ${s.weight} % (${s.drainReason ?? '-'}): ${s.summary}` : 'no status'}; leader ${st?.fleet?.leader ?? '?'}`,
    );
    lines.push(h.output().slice(-1500));
  }
  return lines.join('\n');
}

/**
 * Observes `fails` every 100 ms for `ms` (bounded) and resolves to the first value it returned that is
 * not null, or null when it stayed null the whole time: "this does not happen within the window".
 */
async function never<T>(fails: () => T | null | Promise<T | null>, ms: number): Promise<T | null> {
  const deadline = performance.now() + ms;
  for (let i = 0; i < 10_000 && performance.now() < deadline; i++) {
    const v = await fails();
    if (v !== null) return v;
    await new Promise((r) => setTimeout(r, Math.min(100, Math.max(0, deadline - performance.now()))));
  }
  return null;
}

/**
 * Canary attempts in a host's access log (nginx's `$upstream_addr`: servers tried are separated by
 * ", ", internal redirects by " : ") whose time (`$msec`) falls in (fromMs, toMs].
 */
async function canaryAttempts(h: FleetHostHandle, canary: string, fromMs: number, toMs: number): Promise<number> {
  const text = await readFile(h.config.nginx.accessLog, 'utf8');
  let n = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const rec = JSON.parse(line) as { msec: string; addr: string };
    const at = Number(rec.msec) * 1000;
    if (!(at > fromMs && at <= toMs)) continue;
    n += rec.addr.split(/,\s*|\s+:\s+/).filter((a) => a.trim() === canary).length;
  }
  return n;
}

/** A host's own drain (its own evidence) as its history shows it, beside the fleet's events. */
const OWN = "(this host's own evidence; the fleet follows)";

/** The drain events of the history `h` shows: the fleet's, and this host's own drains (see {@link OWN}). */
async function drains(h: FleetHostHandle): Promise<RolloutEvent[]> {
  return (await h.status()).history.filter((e) => e.kind === 'drain' && e.service === 'gateway');
}

/**
 * The drain events of the fleet's history (the desired document's) once every host shows the same
 * ones. A host that drained on its own evidence also keeps its own drain event in its history (marked
 * {@link OWN}); those are left out here.
 */
async function sameHistory(fleet: Fleet): Promise<RolloutEvent[]> {
  const fleetDrains = async (h: FleetHostHandle): Promise<RolloutEvent[]> =>
    (await drains(h)).filter((e) => !e.reason.endsWith(OWN));
  return waitFor(
    async () => {
      const all = await Promise.all(fleet.hosts.map(fleetDrains));
      const first = JSON.stringify(all[0]);
      return all[0]!.length > 0 && all.every((e) => JSON.stringify(e) === first) ? all[0]! : null;
    },
    { timeoutMs: 5000, intervalMs: 100, what: 'every host showing the same drains in the fleet history' },
  ).catch(async (err: unknown) => {
    const all = await Promise.all(fleet.hosts.map(drains));
    throw new Error(`${(err as Error).message}: ${JSON.stringify(all.map((e) => e.map((x) => x.reason)))}`);
  });
}

// ---- the tests ----------------------------------------------------------------------------------------

t.test('fleet drains: one decision, every host at 0, one page', async (t) => {
  const cluster = await startEtcdCluster({ members: 3, t });
  const hook = await startReceiver(t);

  await t.test('fleet-wide gates: a canary at 10 × the error threshold drains every host', async (t) => {
    const fleet = await startFleet(t, {
      hosts: 3,
      etcd: () => cluster.endpoints,
      target: 30,
      leaseTtl: '2s',
      ...QUIET_GATES,
      webhookUrl: `${hook.url}/fleet-gate`,
    });
    t.teardown(() => canaryFault(fleet, null));
    const pages = (): Received[] => hook.posts.filter((p) => p.path === '/fleet-gate');
    for (const h of fleet.hosts) await h.startSidecar();
    const traffic = tagged((i) => fleet.hosts[i % fleet.hosts.length]!, 300);
    t.teardown(() => traffic.stop());

    const walking = await untilServed(fleet, 'every host at ≥ 15 %', (w) => w >= 15, 60_000);
    t.pass(`the fleet walks: every host serves ${walking.join(', ')} %`);

    // Every 20th canary answer to each host's traffic is a 500: 5 % on every host alike, 10 ×
    // gates.error_ratio (0.5 %). Counted per host: one count over all hosts can fall in step with the
    // round robin and hand one host most of the errors (it then drains on its own evidence first).
    const seen = new Map<string, number>();
    canaryFault(fleet, (req) => {
      const k = (seen.get(viaOf(req)) ?? 0) + 1;
      seen.set(viaOf(req), k);
      return k % 20 === 0;
    });
    const faultAt = performance.now();
    await untilServed(fleet, 'every host at 0 %', (w) => w === 0, 30_000);
    const allZeroAt = Date.now();
    const drainMs = performance.now() - faultAt;
    t.pass(`every host serves 0 % ${Math.round(drainMs)} ms after the canary started failing 5 %`);
    await traffic.stop();

    for (const h of fleet.hosts) {
      const s = await waitFor(
        async () => {
          const svc = (await h.status()).services[0];
          return svc?.phase === 'drained' ? svc : null;
        },
        { timeoutMs: 5000, intervalMs: 50, what: `${h.name}'s status to say drained` },
      );
      t.equal(s.weight, 0, `${h.name}: status weight 0`);
      t.equal(s.drainReason, 'error_ratio', `${h.name}: status says drained by error_ratio`);
    }

    const events = await sameHistory(fleet);
    t.equal(events.length, 1, 'one drain in the fleet history, the same on every host');
    const drain = events[0]!;
    t.match(drain.reason, /^drain gate error_ratio fail/, "the leader's gate on the fleet's evidence drained it");
    t.notMatch(drain.reason, /own evidence/, "not one host's own evidence");
    t.pass(`every host at 0 ${allZeroAt - drain.at} ms after the drain decision`);

    const gate = drain.gates.find((g) => g.gate === 'error_ratio');
    t.equal(gate?.verdict, 'fail', 'the error_ratio gate failed');
    const samples = gate?.samples ?? 0;
    // What one host could have given the gate: its canary attempts over the span the gate judges,
    // [max(now − gates.window, since), now] (aggregate.ts judgedFrom), where `since` is the last weight
    // raise before the decision (a step can land after the fault started) and the window's start may
    // be up to a second earlier for the snapshot's age (hosts publish every tick; the leader reads
    // them), less one sketch bucket (window.ts collect takes a bucket overlapping the span's start).
    const windowMs = fleet.hosts[0]!.config.services[0]!.gates.windowMs;
    const movedAt = raisesIn((await fleet.hosts[0]!.status()).history).findLast((e) => e.at <= drain.at)?.at ?? 0;
    const spanFrom = Math.max(drain.at - windowMs - 1000, movedAt) - bucketWidthMs(windowMs);
    const perHost = await Promise.all(fleet.hosts.map((h) => canaryAttempts(h, fleet.canary.addr, spanFrom, drain.at)));
    t.ok(
      samples > Math.max(...perHost),
      `the gate saw ${samples} canary attempts, more than any one host served in the ${drain.at - spanFrom} ms before the decision (${perHost.join(', ')}; sum ${perHost.reduce((a, b) => a + b, 0)}; at ${drain.from} % since ${drain.at - movedAt} ms before it; the leader's ${/fleet evidence from [^)]*/.exec(drain.reason)?.[0] ?? 'basis not named'})`,
    );

    await waitFor(() => pages().length >= 1, { timeoutMs: 10_000, intervalMs: 50, what: 'the page' });
    const second = await never(() => (pages().length > 1 ? pages().length : null), 3 * LEASE_TTL_MS);
    t.equal(second, null, `no second page within ${3 * LEASE_TTL_MS} ms (3 lease TTLs)`);
    t.equal(pages().length, 1, 'exactly one page reached the webhook');
    const page = pages()[0]!.body;
    t.equal(page.service, 'gateway');
    t.equal(page.reason, 'error_ratio');
    t.equal(page.event?.at, drain.at, 'the page is the drain of the fleet history');
    t.ok(
      (injected.get(fleet.canary.port) ?? 0) > 0,
      `the canary answered ${injected.get(fleet.canary.port)} requests 500`,
    );
  });

  await t.test("a host's own drain becomes the fleet's drain, paged once", async (t) => {
    const fleet = await startFleet(t, {
      hosts: 3,
      etcd: () => cluster.endpoints,
      target: 30,
      leaseTtl: '2s',
      ...QUIET_GATES,
      window: '10s',
      webhookUrl: `${hook.url}/host-drain`,
    });
    t.teardown(() => canaryFault(fleet, null));
    const pages = (): Received[] => hook.posts.filter((p) => p.path === '/host-drain');
    // Dilution needs a threshold the fleet's own traffic can hide one host's failures under: with 0.5 %
    // the sequential test needs ~140 good canary attempts per bad one (m = 2), i.e. several hundred
    // requests/s on this machine; at 5 % it needs 13, so 20 healthy requests per failing one keep the
    // fleet's merged evidence under the threshold while the one host's own evidence is all 500s.
    for (const h of fleet.hosts) {
      const text = await readFile(h.configFile, 'utf8');
      if (!text.includes('error_ratio: 0.5%')) throw new Error(`${h.configFile} has no error_ratio: 0.5%`);
      await writeFile(h.configFile, text.replace('error_ratio: 0.5%', 'error_ratio: 5%'));
    }
    for (const h of fleet.hosts) await h.startSidecar();

    const leader = await waitFor(async () => (await fleet.hosts[0]!.status()).fleet?.leader ?? null, {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'a leader',
    });
    // The failing host: not the leader, so its drain crosses to the leader through etcd.
    const bad = fleet.hosts.find((h) => h.name !== leader)!;
    const good = fleet.hosts.filter((h) => h !== bad);
    const traffic = tagged((i) => (i % 21 === 0 ? bad : good[i % good.length]!), 200);
    t.teardown(() => traffic.stop());

    const walking = await untilServed(fleet, 'every host at ≥ 15 %', (w) => w >= 15, 60_000);
    t.pass(`the fleet walks: every host serves ${walking.join(', ')} %; leader ${leader}, failing host ${bad.name}`);

    // Only requests through the failing host fail on the canary.
    canaryFault(fleet, (req) => viaOf(req) === bad.name);
    const faultAt = performance.now();
    await waitFor(async () => (await bad.servedWeight()) === 0, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: `${bad.name} at 0 %`,
    }).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}\n${await explain(fleet)}`);
    });
    const localMs = performance.now() - faultAt;
    await untilServed(fleet, 'every host at 0 %', (w) => w === 0, 15_000);
    const allMs = performance.now() - faultAt;
    const allZeroAt = Date.now();
    t.pass(
      `${bad.name} drained itself ${Math.round(localMs)} ms after its canary requests started failing; every host at 0 % after ${Math.round(allMs)} ms`,
    );
    const sent = await traffic.stop();
    t.ok((sent[bad.name] ?? 0) > 0, `traffic: ${JSON.stringify(sent)} requests by host`);

    for (const h of fleet.hosts) {
      const s = await waitFor(
        async () => {
          const svc = (await h.status()).services[0];
          return svc?.phase === 'drained' ? svc : null;
        },
        { timeoutMs: 5000, intervalMs: 50, what: `${h.name}'s status to say drained` },
      );
      t.equal(s.weight, 0, `${h.name}: status weight 0`);
      t.equal(s.drainReason, 'error_ratio', `${h.name}: drained by error_ratio`);
    }
    const events = await sameHistory(fleet);
    t.equal(events.length, 1, 'one drain in the fleet history, the same on every host');
    const drain = events[0]!;
    t.match(drain.reason, `host ${bad.name} drained on its own evidence`, 'the history names the host');
    for (const h of good)
      t.same(
        (await drains(h)).filter((e) => e.reason.endsWith(OWN)),
        [],
        `${h.name} did not drain on its own evidence`,
      );
    t.pass(`every host at 0 ${allZeroAt - drain.at} ms after the leader took the host's drain`);

    await waitFor(() => pages().length >= 1, { timeoutMs: 10_000, intervalMs: 50, what: 'the page' });
    const second = await never(() => (pages().length > 1 ? pages().length : null), 3 * LEASE_TTL_MS);
    t.equal(second, null, `no second page within ${3 * LEASE_TTL_MS} ms (3 lease TTLs)`);
    t.equal(pages().length, 1, 'exactly one page, not one per host');
    t.match(pages()[0]!.body.summary, `on every host: error_ratio on host ${bad.name}`, 'the page names the host');
  });
});

/**
 * Background traffic through the hosts' nginx, each request tagged `?via=<host name>` (nginx passes the
 * query on, so the canary knows which host a request came through): request i goes through `pick(i)`,
 * paced at `rate` requests/s, concurrency 4. Bounded: 90 s and 30,000 requests. `stop()` resolves to the
 * requests sent, by host name.
 */
function tagged(pick: (i: number) => FleetHostHandle, rate: number): { stop(): Promise<Record<string, number>> } {
  const agent = new Agent({ connections: 16 });
  let stopped = false;
  let next = 0;
  const sent: Record<string, number> = {};
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (!stopped && next < 30_000 && performance.now() - started < 90_000) {
      const h = pick(next++);
      try {
        const r = await request(`${h.url}?via=${h.name}`, {
          dispatcher: agent,
          headersTimeout: 5000,
          bodyTimeout: 5000,
        });
        await r.body.dump();
      } catch {
        // counted as sent; the gates see what nginx logged
      }
      sent[h.name] = (sent[h.name] ?? 0) + 1;
      const ahead = started + (next / rate) * 1000 - performance.now();
      if (ahead > 0 && !stopped) await new Promise((r) => setTimeout(r, Math.min(ahead, 200)));
    }
  };
  const run = Promise.all([worker(), worker(), worker(), worker()]);
  let stopping: Promise<Record<string, number>> | null = null;
  return {
    stop() {
      stopped = true;
      stopping ??= run.then(async () => {
        await agent.close();
        return sent;
      });
      return stopping;
    },
  };
}

/** The host name a request to the canary came through (its `?via=` tag), or ''. */
function viaOf(req: http.IncomingMessage): string {
  return new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('via') ?? '';
}
