/**
 * `npm run bench:fleet`: the fleet figures of docs/fleet.md, measured on real processes — a
 * single-member etcd (test/fixtures/etcd.ts; one member keeps the 2-CPU machines this runs on
 * from spending their time on raft), real nginx per host, and every sidecar a child process
 * (`bin/nginx-canary run` through test/fixtures/fleet.ts, so `npm run build` first) so SIGKILL and
 * SIGSTOP are real. lease_ttl 2 s. Figures, not a test: it prints a table with the targets and
 * PASS/FAIL, and exits 1 when a target is missed.
 *
 * Every time is taken in this process, when its own etcd watch (src/fleet/etcd.ts FleetEtcd, on
 * `desired` and `hosts/`) delivers the put, on `performance.now()`:
 *
 * - (a) step skew, 5 hosts: for each raise (a `desired` put whose generation grew and whose weight
 *   went up), the put → the last host's report (`hosts/<host>`) with `verified` ≥ that generation.
 *   Three walks 0 → 100 % (slice 5, step 10: 11 raises each), the target set back to 0 between them.
 * - (e) fenced writes, 5 hosts: SIGSTOP the leader, wait for a successor's `desired` write (so the
 *   old lease is past lease_ttl), SIGCONT, then count for 3 × lease_ttl the `desired` puts whose
 *   `leader` is the old leader. Twice.
 * - (b) failover, 5 hosts: SIGKILL the leader → the first `desired` put by another host. Five times;
 *   the killed sidecar is started again between rounds.
 * - (d) drain delay with a canary at 10 × the error threshold (1 in 20 canary answers a 500; the
 *   gate's error_ratio is 0.5 %), fleets of 1 and of 5 hosts at the same per-host traffic (10
 *   requests/s to each host's nginx, half to the canary at 50 %): fault on → every host's report at
 *   weight 0. Each fleet twice, alternating; the ratio of the medians. The fleet's merged gate sees
 *   5 × the attempts of one host's, so it should drain about 5 × sooner; fixed costs (ticks, the
 *   access log follow, the reload) do not shrink with the hosts.
 * - (c) fleet drain: in the 5-host runs of (d), and once more at the end of the (a) fleet (at 100 %
 *   with the same 1-in-20 fault): the drain decision (the `desired` put that takes the weight to 0)
 *   → every host's report at weight 0 with `verified` ≥ that generation.
 *
 * The gates are the fixture's (window 5 s, min_requests 20, error_ratio 0.5 %) loosened as bench:walk
 * loosens them (baseline_p95_factor 1000, probe_failure_ratio 50 %, probes every 500 ms; and
 * crash_loop_restarts 100, as probes that time out under load flap), so that on a
 * loaded machine nothing but the error_ratio gate can drain; the drain runs use a 60 s window (one host
 * at 5 canary attempts/s needs ~25 s of them).
 *
 * The canary's 500s are made here, where the fixture's backends run: a wrapper of
 * `ServerResponse.writeHead` turns every 20th traffic answer of the canary to each host into a 500; its /health
 * and /ready stay green (as test/e2e/fleet-drain.test.ts does).
 *
 * Bounded: every wait has a deadline, traffic is paced and capped, the whole bench is stopped at
 * 15 minutes, and every process (sidecars, nginx, etcd) is stopped by pid at the end, on error and
 * on Ctrl-C.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { loadavg } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { FleetEtcd } from '../src/fleet/etcd.js';
import {
  DESIRED_KEY,
  HOSTS_PREFIX,
  parseDesired,
  parseHostReport,
  type FleetDesired,
  type HostReport,
} from '../src/fleet/protocol.js';
import { waitFor } from '../src/util/wait.js';
import { startEtcdCluster, type EtcdCluster } from '../test/fixtures/etcd.js';
import { startFleet, type Fleet, type FleetHostHandle } from '../test/fixtures/fleet.js';
import { repoRoot } from '../test/fixtures/stack.js';

const run = promisify(execFile);

const SERVICE = 'gateway';
const LEASE_TTL_MS = 2000;
/** The whole bench must end within this. */
const BUDGET_MS = 15 * 60_000;
/** Targets (issue 12 "Acceptance"). */
const TARGET_SKEW_P99_MS = 1000;
const TARGET_FAILOVER_MS = LEASE_TTL_MS + 1000;
const TARGET_DRAIN_MS = 1000;
/** The drain-delay ratio that counts as "about 5 ×" (fixed costs keep it under 5). */
const TARGET_RATIO_MIN = 3;
/** Every n-th canary traffic answer is a 500: 5 %, 10 × the gates' error_ratio of 0.5 %. */
const FAULT_EVERY = 20;
const WALKS = 3;
const FAILOVERS = 5;
const FENCES = 2;
const DRAIN_RUNS = 2;

// ---------------------------------------------------------------- cleanup

/** Teardown steps of everything started and not yet stopped, newest last. */
let teardowns: (() => unknown)[] = [];
const teardown = { teardown: (fn: () => unknown) => void teardowns.push(fn) };

async function stopAll(): Promise<void> {
  const steps = teardowns.reverse();
  teardowns = [];
  for (const fn of steps) {
    try {
      await fn();
    } catch (err) {
      console.error(`cleanup: ${(err as Error).message}`);
    }
  }
}

/** The etcd every fleet of the bench runs on; stopped last. */
let cluster: EtcdCluster | null = null;

let aborting = false;
async function abort(why: string, code: number): Promise<never> {
  if (!aborting) {
    aborting = true;
    console.error(`\nbench:fleet: ${why}; stopping everything it started`);
    await stopAll();
    await cluster?.stopAll();
  }
  process.exit(code);
}
// `on`, not `once`: Ctrl-C reaches this process twice (from the terminal and relayed by tsx).
process.on('SIGINT', () => void abort('interrupted', 130));
process.on('SIGTERM', () => void abort('terminated', 143));
setTimeout(() => void abort(`over its ${BUDGET_MS / 60_000} min budget`, 1), BUDGET_MS).unref();

// ---------------------------------------------------------------- the canary's 500s

/**
 * Canary ports whose every FAULT_EVERY-th traffic answer is a 500, counted per requesting host (the
 * bench's traffic names the host in its `Host` header, which each host's nginx passes on): each host's
 * canary attempts fail 1 in 20. One count over all hosts would, with the traffic's round-robin over
 * the hosts, put every 500 on the same host.
 */
const faulty = new Set<number>();
const answered = new Map<string, number>();
type WriteHead = (this: http.ServerResponse, status: number, ...rest: unknown[]) => http.ServerResponse;
const proto = http.ServerResponse.prototype as unknown as { writeHead: WriteHead };
const originalWriteHead = proto.writeHead;
proto.writeHead = function (status, ...rest) {
  const port = this.req.socket.localPort;
  const headers = rest.find((x) => typeof x === 'object' && x !== null) as Record<string, unknown> | undefined;
  const p = (this.req.url ?? '/').split('?')[0];
  if (
    port !== undefined &&
    faulty.has(port) &&
    headers?.['x-backend'] === 'canary' &&
    p !== '/health' &&
    p !== '/ready'
  ) {
    const key = `${port} ${this.req.headers.host ?? ''}`;
    const n = (answered.get(key) ?? 0) + 1;
    answered.set(key, n);
    if (n % FAULT_EVERY === 0) return originalWriteHead.call(this, 500, ...rest);
  }
  return originalWriteHead.call(this, status, ...rest);
};

// ---------------------------------------------------------------- traffic

/** Paced GETs to each host's nginx at `perHost` requests/s each; bounded by `maxMs` and 300,000 requests. */
function traffic(
  urls: string[],
  perHost: number,
  maxMs: number,
): { setRate(r: number): void; stop(): Promise<number> } {
  const agent = new Agent({ connections: 16 });
  let rate = perHost;
  let base = performance.now();
  let baseSent = 0;
  let sinceBase = 0;
  let sent = 0;
  let inflight = 0;
  let stopped = false;
  const started = performance.now();
  const loop = (async () => {
    while (!stopped && sent < 300_000 && performance.now() - started < maxMs) {
      const due = baseSent + Math.floor(((performance.now() - base) / 1000) * rate * urls.length);
      while (sinceBase + baseSent < due && inflight < 256) {
        const i = sent % urls.length;
        const url = urls[i] ?? '';
        sent++;
        sinceBase++;
        inflight++;
        // The Host header names the host: its nginx passes it on ($host), so the canary can tell them apart.
        void request(url, {
          dispatcher: agent,
          headers: { host: `bench-host-${i + 1}` },
          headersTimeout: 5000,
          bodyTimeout: 5000,
        })
          .then((r) => r.body.dump())
          .catch(() => undefined)
          .finally(() => inflight--);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    setRate(r) {
      baseSent += sinceBase;
      sinceBase = 0;
      base = performance.now();
      rate = r;
    },
    async stop() {
      stopped = true;
      await loop;
      await waitFor(() => inflight === 0, { timeoutMs: 6000, intervalMs: 20, what: 'traffic in flight' }).catch(
        () => undefined,
      );
      await agent.close();
      return sent;
    },
  };
}

// ---------------------------------------------------------------- what etcd shows

interface Seen<T> {
  /** performance.now() when the watch delivered it. */
  t: number;
  v: T;
}

/** Every `desired` and `hosts/<host>` put of one fleet, as this process's watch delivered them. */
class Recorder {
  readonly desired: Seen<FleetDesired>[] = [];
  readonly hosts: Seen<HostReport>[] = [];
  private constructor() {}

  /** Connects to `endpoints` and watches the fleet under `prefix`. */
  static async start(endpoints: string[], prefix: string): Promise<Recorder> {
    const etcd = await FleetEtcd.connect({ endpoints, prefix, host: 'bench-watch', leaseTtlMs: LEASE_TTL_MS });
    const r = new Recorder();
    teardown.teardown(() => etcd.close());
    const onDesired = (text: string): void => {
      const p = parseDesired(text);
      if (p.ok) r.desired.push({ t: performance.now(), v: p.value });
    };
    const onHost = (text: string): void => {
      const p = parseHostReport(text);
      if (p.ok) r.hosts.push({ t: performance.now(), v: p.value });
    };
    etcd.watchPrefix(
      DESIRED_KEY,
      (e) => e.type === 'put' && e.kv.key === DESIRED_KEY && onDesired(e.kv.value),
      (kvs) => kvs.filter((k) => k.key === DESIRED_KEY).forEach((k) => onDesired(k.value)),
    );
    etcd.watchPrefix(
      HOSTS_PREFIX,
      (e) => e.type === 'put' && onHost(e.kv.value),
      (kvs) => kvs.forEach((k) => onHost(k.value)),
    );
    return r;
  }

  /** The newest desired document, or null. */
  last(): FleetDesired | null {
    return this.desired[this.desired.length - 1]?.v ?? null;
  }

  /** The newest report of each host, by name. */
  latestReports(): Map<string, Seen<HostReport>> {
    const m = new Map<string, Seen<HostReport>>();
    for (const s of this.hosts) m.set(s.v.host, s);
    return m;
  }

  /** Waits until every one of `names` last reported weight `w` with `verified` equal to the newest generation. */
  async allAt(names: string[], w: number, timeoutMs: number): Promise<void> {
    await waitFor(
      () => {
        const d = this.last();
        const m = this.latestReports();
        return (
          d !== null &&
          (d.weights[SERVICE] ?? -1) === w &&
          names.every((h) => {
            const r = m.get(h)?.v;
            return r !== undefined && r.weights[SERVICE] === w && r.verified === d.generation;
          })
        );
      },
      { timeoutMs, intervalMs: 20, what: `every host at ${w} % verified` },
    ).catch((err: unknown) => {
      const m = this.latestReports();
      const state = names.map((h) => `${h} ${m.get(h)?.v.weights[SERVICE] ?? '?'} % v${m.get(h)?.v.verified ?? '-'}`);
      const d = this.last();
      throw new Error(
        `${(err as Error).message}: ${state.join(', ')}; desired g${d?.generation} ${d?.weights[SERVICE]} %: ${d?.summary[SERVICE] ?? ''} ${d?.hold ?? ''}`,
      );
    });
  }

  /** The first desired put after `since` for which `pred` holds (waits up to timeoutMs). */
  async nextDesired(
    since: number,
    pred: (d: FleetDesired) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<Seen<FleetDesired>> {
    return waitFor(() => this.desired.find((s) => s.t >= since && pred(s.v)) ?? null, {
      timeoutMs,
      intervalMs: 10,
      what,
    });
  }

  /**
   * The first time after `since` at which each of `names` reported weight `w` with `verified` ≥
   * `generation` (waits up to timeoutMs); the latest of those times.
   */
  async everyHostReports(
    names: string[],
    since: number,
    w: number,
    generation: number,
    timeoutMs: number,
  ): Promise<number> {
    return waitFor(
      () => {
        let latest = 0;
        for (const h of names) {
          const s = this.hosts.find(
            (x) => x.t >= since && x.v.host === h && x.v.weights[SERVICE] === w && (x.v.verified ?? -1) >= generation,
          );
          if (!s) return null;
          latest = Math.max(latest, s.t);
        }
        return latest;
      },
      { timeoutMs, intervalMs: 10, what: `every host reporting ${w} % verified ≥ generation ${generation}` },
    );
  }
}

// ---------------------------------------------------------------- helpers

/** Sets the fleet's target through a host's API (the leader takes it as an intent). */
async function setTarget(h: FleetHostHandle, weight: number): Promise<void> {
  const r = await request(`${h.api}/api/v1/services/${SERVICE}/target`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ weight }),
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`target ${weight} on ${h.name}: HTTP ${r.statusCode} ${text}`);
}

/** The host whose name `d.leader` is. */
function hostNamed(fleet: Fleet, name: string): FleetHostHandle {
  const h = fleet.hosts.find((x) => x.name === name);
  if (!h) throw new Error(`no host ${name}`);
  return h;
}

/** Waits until a desired put newer than 1 s names a leader, and returns it. */
async function currentLeader(rec: Recorder): Promise<string> {
  const s = await waitFor(
    () => {
      const last = rec.desired[rec.desired.length - 1];
      return last && performance.now() - last.t < 1000 ? last : null;
    },
    { timeoutMs: 15_000, intervalMs: 20, what: 'a leader writing desired' },
  );
  return s.v.leader;
}

/**
 * Starts a host's sidecar, once more when the first exits at its start: on a loaded 2-CPU machine a
 * booting sidecar's first etcd read can miss its 1 s bound (lease_ttl / 2), and the sidecar then
 * refuses to start, as it should.
 */
async function startWithRetry(h: FleetHostHandle): Promise<void> {
  try {
    await h.startSidecar();
  } catch (err) {
    if (h.sidecar?.exitCode === null) throw err;
    console.log(`  (${h.name}'s sidecar did not start: ${(err as Error).message.split('\n')[0]}; starting it again)`);
    await h.startSidecar();
  }
}

/** Nearest-rank quantile of `xs`. */
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN;
}

/** The median of `xs` (the mean of the middle two for an even count). */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length / 2;
  return s.length % 2 === 1
    ? (s[Math.floor(mid)] ?? Number.NaN)
    : ((s[mid - 1] ?? Number.NaN) + (s[mid] ?? Number.NaN)) / 2;
}

const ms = (x: number): string => `${Math.round(x)} ms`;

/** Starts a fleet of `n` hosts on `cluster` with the sidecars running and a recorder on it. */
async function fleetOf(
  cluster: EtcdCluster,
  n: number,
  opts: { target: number; window: string },
): Promise<{ fleet: Fleet; rec: Recorder; names: string[] }> {
  const fleet = await startFleet(teardown, {
    hosts: n,
    etcd: () => cluster.endpoints,
    target: opts.target,
    soak: '1s',
    window: opts.window,
    minRequests: 20,
    minReloadInterval: '300ms',
    leaseTtl: `${LEASE_TTL_MS / 1000}s`,
    // Gates loosened as bench:walk does, so a healthy canary on a loaded 2-CPU machine cannot drain
    // (the canary's p95 against the primary's, probes flapping): only error_ratio drains here. Probes
    // every 500 ms with a 500 ms timeout (the fixture's 200 ms flaps under load), 3 per judged span.
    baselineFactor: 1000,
    probeFailureRatio: '50%',
    probeInterval: '500ms',
    minProbes: 3,
  });
  // Nor may probes that time out under load drain it as a crash loop (3 flaps in 5 min by default).
  for (const h of fleet.hosts) {
    const text = await readFile(h.configFile, 'utf8');
    const edited = text.replace(/^( +)baseline_p95_factor: .*$/m, '$&\n$1crash_loop_restarts: 100');
    if (edited === text)
      throw new Error(`no baseline_p95_factor line in ${h.configFile} to add crash_loop_restarts to`);
    await writeFile(h.configFile, edited);
  }
  const rec = await Recorder.start(cluster.endpoints, fleet.prefix);
  for (const h of fleet.hosts) await startWithRetry(h);
  return { fleet, rec, names: fleet.hosts.map((h) => h.name) };
}

// ---------------------------------------------------------------- (a) (b) (c) (e) on 5 hosts

interface MainResult {
  /** Per raise: the desired put → the last host's verified report, ms. */
  skews: number[];
  /** Per raise: the desired put → the first host's verified report, ms. */
  firsts: number[];
  raises: number;
  failovers: { killed: string; successor: string; ms: number }[];
  fences: { stopped: string; successor: string; stoppedMs: number; oldLeaderPuts: number; puts: number }[];
  drain: number;
}

async function mainFleet(cluster: EtcdCluster): Promise<MainResult> {
  const { fleet, rec, names } = await fleetOf(cluster, 5, { target: 100, window: '5s' });
  const load = traffic(
    fleet.hosts.map((h) => h.url),
    60,
    10 * 60_000,
  );
  try {
    // (a) walks: record the raises' skew.
    const walkStart = performance.now();
    for (let w = 1; w <= WALKS; w++) {
      if (w > 1) {
        await setTarget(fleet.hosts[0]!, 0);
        await rec.allAt(names, 0, 20_000);
        await setTarget(fleet.hosts[0]!, 100);
      }
      const t0 = performance.now();
      await rec.allAt(names, 100, 90_000);
      console.log(`  walk ${w}: 0 → 100 % on 5 hosts in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const walkEnd = performance.now();
    const skews: number[] = [];
    const firsts: number[] = [];
    let prevGen = -1;
    let prevW = 0;
    for (const s of rec.desired) {
      const g = s.v.generation;
      const wt = s.v.weights[SERVICE] ?? 0;
      if (g > prevGen && prevGen >= 0 && wt > prevW && s.t >= walkStart && s.t <= walkEnd) {
        let latest = 0;
        let first = Number.POSITIVE_INFINITY;
        for (const h of names) {
          const r = rec.hosts.find((x) => x.t >= s.t - 50 && x.v.host === h && (x.v.verified ?? -1) >= g);
          latest = Math.max(latest, r ? r.t : Number.POSITIVE_INFINITY);
          first = Math.min(first, r ? r.t : Number.POSITIVE_INFINITY);
        }
        skews.push(latest - s.t);
        firsts.push(first - s.t);
      }
      if (g !== prevGen) {
        prevGen = g;
        prevW = wt;
      }
    }

    // (e) fenced leader: SIGSTOP past lease_ttl, a successor writes, SIGCONT, count the old leader's puts.
    const fences: MainResult['fences'] = [];
    for (let i = 0; i < FENCES; i++) {
      const old = await currentLeader(rec);
      const h = hostNamed(fleet, old);
      const stoppedAt = performance.now();
      await h.signal('SIGSTOP');
      const succ = await rec.nextDesired(stoppedAt, (d) => d.leader !== old, 15_000, 'a successor after SIGSTOP');
      await h.signal('SIGCONT');
      const contAt = performance.now();
      await new Promise((r) => setTimeout(r, 3 * LEASE_TTL_MS));
      const after = rec.desired.filter((s) => s.t >= contAt);
      fences.push({
        stopped: old,
        successor: succ.v.leader,
        stoppedMs: contAt - stoppedAt,
        oldLeaderPuts: after.filter((s) => s.v.leader === old).length,
        puts: after.length,
      });
      console.log(
        `  fence ${i + 1}: ${old} stopped ${ms(contAt - stoppedAt)}, ${succ.v.leader} wrote; after SIGCONT ${after.length} desired puts in ${(3 * LEASE_TTL_MS) / 1000} s, ${fences[i]!.oldLeaderPuts} by ${old}`,
      );
      await rec.allAt(names, 100, 20_000);
    }

    // (b) failover: SIGKILL the leader → the successor's first desired write.
    const failovers: MainResult['failovers'] = [];
    for (let i = 0; i < FAILOVERS; i++) {
      const old = await currentLeader(rec);
      const h = hostNamed(fleet, old);
      const killedAt = performance.now();
      await h.signal('SIGKILL');
      const succ = await rec.nextDesired(killedAt, (d) => d.leader !== old, 15_000, 'a successor after SIGKILL');
      failovers.push({ killed: old, successor: succ.v.leader, ms: succ.t - killedAt });
      console.log(
        `  failover ${i + 1}: SIGKILL ${old} → ${succ.v.leader} wrote desired after ${ms(succ.t - killedAt)}`,
      );
      await startWithRetry(h);
      await rec.allAt(names, 100, 30_000);
      // The restarted host campaigns again: let its lease and the leader's settle before the next kill.
      await new Promise((r) => setTimeout(r, 1000));
    }

    // (c) one more fleet drain: 1 in 20 canary answers a 500 at 100 %.
    const before = rec.last()?.generation ?? 0;
    const faultAt = performance.now();
    faulty.add(fleet.canary.port);
    const decision = await rec.nextDesired(
      faultAt,
      (d) => (d.weights[SERVICE] ?? -1) === 0 && d.generation > before,
      30_000,
      'the drain decision',
    );
    const allZero = await rec.everyHostReports(names, decision.t - 50, 0, decision.v.generation, 10_000);
    faulty.delete(fleet.canary.port);
    console.log(
      `  drain at 100 %: decision ${ms(decision.t - faultAt)} after the fault, every host at 0 % verified ${ms(allZero - decision.t)} later`,
    );
    return { skews, firsts, raises: skews.length, failovers, fences, drain: allZero - decision.t };
  } finally {
    await load.stop();
    await stopAll();
  }
}

// ---------------------------------------------------------------- (c) (d): drain delay, 1 vs 5 hosts

interface DrainRun {
  hosts: number;
  /** fault on → every host at 0 %. */
  delayMs: number;
  /** fault on → the drain decision. */
  decisionMs: number;
  /** the drain decision → every host at 0 % verified. */
  fleetDrainMs: number;
  reason: string;
}

async function drainRun(cluster: EtcdCluster, n: number): Promise<DrainRun> {
  const { fleet, rec, names } = await fleetOf(cluster, n, { target: 50, window: '60s' });
  // The walk at 60 requests/s per host (enough canary attempts per step), the measurement at 10.
  const load = traffic(
    fleet.hosts.map((h) => h.url),
    60,
    5 * 60_000,
  );
  try {
    await rec.allAt(names, 50, 90_000);
    load.setRate(10);
    await new Promise((r) => setTimeout(r, 3000));
    const before = rec.last()?.generation ?? 0;
    const faultAt = performance.now();
    faulty.add(fleet.canary.port);
    const decision = await rec.nextDesired(
      faultAt,
      (d) => (d.weights[SERVICE] ?? -1) === 0 && d.generation > before,
      120_000,
      'the drain decision',
    );
    const drained = await waitFor(
      () => {
        let latest = 0;
        for (const h of names) {
          const s = rec.hosts.find((x) => x.t >= faultAt && x.v.host === h && x.v.weights[SERVICE] === 0);
          if (!s) return null;
          latest = Math.max(latest, s.t);
        }
        return latest;
      },
      { timeoutMs: 120_000, intervalMs: 10, what: 'every host at 0 %' },
    );
    const verified = await rec.everyHostReports(names, decision.t - 50, 0, decision.v.generation, 10_000);
    const ev = [...decision.v.state.history].reverse().find((e) => e.kind === 'drain');
    const r: DrainRun = {
      hosts: n,
      delayMs: drained - faultAt,
      decisionMs: decision.t - faultAt,
      fleetDrainMs: verified - decision.t,
      reason: ev?.reason ?? '?',
    };
    console.log(
      `  ${n} host${n > 1 ? 's' : ''}: fault → drained ${ms(r.delayMs)} (decision at ${ms(r.decisionMs)}, every host at 0 % verified ${ms(r.fleetDrainMs)} after it): ${r.reason}`,
    );
    return r;
  } finally {
    faulty.delete(fleet.canary.port);
    await load.stop();
    await stopAll();
  }
}

// ---------------------------------------------------------------- report

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r, ri) => {
      const line = r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
      return ri === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

// ---------------------------------------------------------------- main

if (!existsSync(path.join(repoRoot, 'dist', 'cli', 'main.js'))) await abort('needs dist/: run `npm run build`', 2);
const etcdV = (await run('etcd', ['--version']).catch(() => null))?.stdout.split('\n')[0];
if (!etcdV) await abort('needs etcd on PATH (Debian: apt-get install etcd-server)', 2);
const nginxV = (await run('nginx', ['-v']).catch(() => ({ stderr: '?' }))).stderr.trim();
const nproc = (await run('nproc')).stdout.trim();
console.log(
  `bench:fleet — ${nginxV}, ${etcdV}, node ${process.version}, ${nproc} CPUs, load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}; single-member etcd, lease_ttl ${LEASE_TTL_MS / 1000} s, sidecars as child processes, ` +
    'min_reload_interval 300 ms (ticks every 150 ms), soaks 1 s',
);
const started = performance.now();
let measured: MainResult | null = null;
const drains: DrainRun[] = [];
try {
  const etcd = await startEtcdCluster({ members: 1 });
  cluster = etcd;
  console.log('\n5 hosts: walks (a), fenced leader (e), failovers (b), a drain (c)');
  measured = await mainFleet(etcd);
  console.log('\nDrain delay at 10 × the error threshold, 10 requests/s per host (d), fleet drain (c)');
  for (let i = 0; i < DRAIN_RUNS; i++) {
    drains.push(await drainRun(etcd, 1));
    drains.push(await drainRun(etcd, 5));
  }
  await etcd.stopAll();
} catch (err) {
  console.error(`bench:fleet failed: ${(err as Error).stack ?? String(err)}`);
  await abort('failed', 1);
}
if (measured === null) throw new Error('unreachable: the 5-host run ended without figures');
const main: MainResult = measured;

const one = drains.filter((d) => d.hosts === 1).map((d) => d.delayMs);
const five = drains.filter((d) => d.hosts === 5);
const fiveMs = five.map((d) => d.delayMs);
const ratio = median(one) / median(fiveMs);
const fleetDrains = [...five.map((d) => d.fleetDrainMs), main.drain];
const failMs = main.failovers.map((f) => f.ms);
const fenced = main.fences.reduce((a, f) => a + f.oldLeaderPuts, 0);
const skewP99 = quantile(main.skews, 0.99);

/** One figure; `ok` null for a figure without a target of its own. */
const rows: { figure: string; samples: string; value: string; target: string; ok: boolean | null }[] = [
  {
    figure: '(a) step skew: desired raise → last host verified',
    samples: `${main.raises} raises`,
    value: `median ${ms(median(main.skews))}, p99 ${ms(skewP99)}, max ${ms(Math.max(...main.skews))}`,
    target: `p99 ≤ ${ms(TARGET_SKEW_P99_MS)}`,
    ok: main.raises > 0 && skewP99 <= TARGET_SKEW_P99_MS,
  },
  {
    figure: '(b) failover: SIGKILL leader → successor writes',
    samples: `${failMs.length} kills`,
    value: `${failMs.map((x) => Math.round(x)).join(', ')} ms; max ${ms(Math.max(...failMs))}`,
    target: `≤ lease_ttl + 1 s = ${ms(TARGET_FAILOVER_MS)}`,
    ok: failMs.length > 0 && Math.max(...failMs) <= TARGET_FAILOVER_MS,
  },
  {
    figure: '(c) fleet drain: decision → every host 0 % verified',
    samples: `${fleetDrains.length} drains`,
    value: `${fleetDrains.map((x) => Math.round(x)).join(', ')} ms; max ${ms(Math.max(...fleetDrains))}`,
    target: `≤ ${ms(TARGET_DRAIN_MS)}`,
    ok: Math.max(...fleetDrains) <= TARGET_DRAIN_MS,
  },
  {
    figure: '(d) drain delay at 10 × threshold, 1 host',
    samples: `${one.length} runs`,
    value: `${one.map((x) => Math.round(x)).join(', ')} ms; median ${ms(median(one))}`,
    target: '',
    ok: null,
  },
  {
    figure: '(d) drain delay at 10 × threshold, 5 hosts',
    samples: `${five.length} runs`,
    value: `${fiveMs.map((x) => Math.round(x)).join(', ')} ms; median ${ms(median(fiveMs))}`,
    target: '',
    ok: null,
  },
  {
    figure: '(d) ratio 1 host / 5 hosts (medians)',
    samples: '',
    value: `${ratio.toFixed(2)} ×`,
    target: `≈ 5 × (PASS at ≥ ${TARGET_RATIO_MIN} ×)`,
    ok: ratio >= TARGET_RATIO_MIN,
  },
  {
    figure: '(e) desired puts by a fenced (SIGSTOPped) leader',
    samples: `${main.fences.length} stops`,
    value: `${fenced} of ${main.fences.reduce((a, f) => a + f.puts, 0)} puts in ${(3 * LEASE_TTL_MS) / 1000} s after SIGCONT`,
    target: '0',
    ok: fenced === 0,
  },
];
console.log(
  `\nStep skews, ms, sorted: ${[...main.skews]
    .sort((a, b) => a - b)
    .map((x) => Math.round(x))
    .join(
      ' ',
    )}\n(the first host's verified report: median ${ms(median(main.firsts))}, max ${ms(Math.max(...main.firsts))})`,
);
console.log('\nFleet figures (5 hosts unless said; times from this process’s etcd watch)\n');
console.log(
  table([
    ['figure', 'samples', 'measured', 'target', ''],
    ...rows.map((r) => [r.figure, r.samples, r.value, r.target, r.ok === null ? '' : r.ok ? 'PASS' : 'FAIL']),
  ]),
);
console.log(`\nbench:fleet took ${((performance.now() - started) / 1000).toFixed(0)} s`);
proto.writeHead = originalWriteHead;
process.exitCode = rows.some((r) => r.ok === false) ? 1 : 0;
