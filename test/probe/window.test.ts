import t from 'tap';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  MAX_RING,
  PROBE_QUANTILE,
  RING_SLACK,
  ServerProbeWindow,
  nearestRank,
  observePool,
  ringCapacity,
  type ProbeResult,
  type ProbeWindowOptions,
} from '../../src/probe/window.js';

const T0 = 1_763_744_700_000;
const OPTS: ProbeWindowOptions = { intervalMs: 1000, windowMs: 10_000, crashLoopWindowMs: 30_000 };

/** A health result at `at`: ok unless told, connect 0.5 ms, total 2 ms unless given. */
function health(at: number, o: Partial<ProbeResult> = {}): ProbeResult {
  const ok = o.ok ?? true;
  return { at, kind: 'health', ok, status: ok ? 200 : 500, connectMs: 0.5, totalMs: 2, ...o };
}

function ready(at: number, ok: boolean): ProbeResult {
  return { at, kind: 'ready', ok, status: ok ? 200 : 503, connectMs: 0.25, totalMs: 1 };
}

/** A window fed with `results` in order. */
function windowOf(results: ProbeResult[], opts: ProbeWindowOptions = OPTS): ServerProbeWindow {
  const w = new ServerProbeWindow(opts);
  for (const r of results) w.add(r);
  return w;
}

/** Reference p95: sort, take rank ceil(0.95 n). */
function refP95(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.ceil(0.95 * s.length) - 1] as number;
}

t.test('ring capacity is ceil(span / interval) + slack, capped, and validated', async (t) => {
  t.equal(ringCapacity(15 * 60_000, 5000), 180 + RING_SLACK, 'defaults: 15 min at 5 s');
  t.equal(ringCapacity(1001, 1000), 2 + RING_SLACK, 'rounded up');
  t.equal(ringCapacity(86_400_000, 100), MAX_RING, 'an extreme config is capped');
  for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => ringCapacity(bad, 1000), RangeError, `span ${bad}`);
    t.throws(() => ringCapacity(1000, bad), RangeError, `interval ${bad}`);
  }
  t.throws(() => new ServerProbeWindow({ ...OPTS, windowMs: 0 }), RangeError);
  t.throws(() => new ServerProbeWindow({ ...OPTS, crashLoopWindowMs: -1 }), RangeError);
  t.same(new ServerProbeWindow(OPTS).capacity, { results: 10 + RING_SLACK, transitions: 30 + RING_SLACK });
});

t.test('nearest rank', async (t) => {
  t.equal(nearestRank([], 0.95), null);
  t.equal(nearestRank([7.25], 0.95), 7.25);
  const values = Array.from({ length: 20 }, (_, i) => 20 - i); // 20 … 1
  t.equal(nearestRank(values, 0.95), 19, 'rank 19 of 20');
  t.equal(values[0], 20, 'input not sorted in place');
  t.equal(nearestRank(values, 1), 20);
  t.equal(nearestRank(values, 0), 1, 'q 0 is the minimum (rank at least 1)');
  t.equal(nearestRank([3, 1, 2], 0.5), 2);
  t.equal(nearestRank([0.1, 0.3, 0.2], PROBE_QUANTILE), 0.3);
});

t.test('health state machine: rise = fall = 1, first result is not a transition', async (t) => {
  const w = new ServerProbeWindow(OPTS);
  t.equal(w.health, null);
  t.equal(w.latestHealth, null);
  t.equal(w.latestReady, null);
  t.equal(w.add(health(T0, { ok: false })), null, 'unknown → unhealthy is not a crash');
  t.equal(w.health, 'unhealthy');
  t.same(w.add(health(T0 + 1000)), { at: T0 + 1000, to: 'healthy' });
  t.equal(w.add(health(T0 + 2000)), null, 'healthy → healthy');
  t.same(w.add(health(T0 + 3000, { ok: false })), { at: T0 + 3000, to: 'unhealthy' }, 'one failure flips it');
  t.equal(w.add(health(T0 + 4000, { ok: false })), null);
  t.equal(w.health, 'unhealthy');
  t.same(w.transitions(), [
    { at: T0 + 1000, to: 'healthy' },
    { at: T0 + 3000, to: 'unhealthy' },
  ]);
  t.equal(w.latestHealth?.at, T0 + 4000);
  t.equal(w.size, 5);

  t.equal(w.add(ready(T0 + 4500, false)), null, 'a ready result is no health transition');
  t.equal(w.health, 'unhealthy', 'ready does not touch health');
  t.equal(w.size, 5, 'ready results are not in the health ring');
  t.equal(w.latestReady?.ok, false);
  w.add(ready(T0 + 5500, true));
  t.equal(w.latestReady?.at, T0 + 5500, 'the latest ready replaces the previous one');
});

t.test('first healthy result is not a transition either', async (t) => {
  const w = new ServerProbeWindow(OPTS);
  t.equal(w.add(health(T0)), null);
  t.equal(w.health, 'healthy');
  t.same(w.transitions(), []);
});

t.test('memory is bounded: the rings keep the newest entries, oldest first', async (t) => {
  const w = new ServerProbeWindow(OPTS);
  const cap = w.capacity;
  const n = cap.transitions * 5;
  for (let i = 0; i < n; i++) w.add(health(T0 + i * 1000, { ok: i % 2 === 0 }));
  t.equal(w.size, cap.results, 'results ring full, not grown');
  const held = w.healthResults();
  t.equal(held.length, cap.results);
  t.same(
    held.map((r) => r.at),
    Array.from({ length: cap.results }, (_, i) => T0 + (n - cap.results + i) * 1000),
    'the newest results, oldest first',
  );
  const trs = w.transitions();
  t.equal(trs.length, cap.transitions, 'transitions ring full, not grown');
  t.equal(trs.at(-1)?.at, T0 + (n - 1) * 1000, 'newest transition kept');
  t.ok(
    trs.every((tr, i) => i === 0 || tr.at > (trs[i - 1] as typeof tr).at),
    'oldest first',
  );
  held[0] = health(0);
  t.not(w.healthResults()[0]?.at, 0, 'healthResults is a copy');
});

t.test('resize keeps the newest entries that fit, and grows without loss', async (t) => {
  const w = new ServerProbeWindow(OPTS);
  for (let i = 0; i < 12; i++) w.add(health(T0 + i * 1000, { ok: i % 2 === 0 }));
  t.equal(w.size, 12);
  w.resize({ intervalMs: 1000, windowMs: 1000, crashLoopWindowMs: 1000 }); // capacities 1 + slack
  t.same(w.capacity, { results: 1 + RING_SLACK, transitions: 1 + RING_SLACK });
  t.same(
    w.healthResults().map((r) => r.at),
    Array.from({ length: 1 + RING_SLACK }, (_, i) => T0 + (12 - 1 - RING_SLACK + i) * 1000),
  );
  t.equal(w.transitions().length, 1 + RING_SLACK);
  w.resize({ intervalMs: 500, windowMs: 60_000, crashLoopWindowMs: 60_000 });
  t.equal(w.size, 1 + RING_SLACK, 'growing keeps everything held');
  w.add(health(T0 + 20_000));
  t.equal(w.size, 2 + RING_SLACK, 'and has room for more');
  t.equal(w.healthResults().at(-1)?.at, T0 + 20_000, 'appended after the kept ones');
  t.throws(() => w.resize({ ...OPTS, intervalMs: 0 }), RangeError);
});

t.test('a full ring that wrapped still resizes in time order', async (t) => {
  const w = new ServerProbeWindow({ intervalMs: 1000, windowMs: 2000, crashLoopWindowMs: 2000 });
  const cap = w.capacity.results;
  for (let i = 0; i < cap + 3; i++) w.add(health(T0 + i));
  w.resize({ intervalMs: 1000, windowMs: 4000, crashLoopWindowMs: 2000 });
  t.same(
    w.healthResults().map((r) => r.at - T0),
    Array.from({ length: cap }, (_, i) => i + 3),
  );
});

t.test('observePool: the window is [now - windowMs, now], both ends included', async (t) => {
  const now = T0 + 20_000;
  const w = windowOf([
    health(now - 10_001, { ok: false, connectMs: 99, totalMs: 99 }), // before the window
    health(now - 10_000, { connectMs: 1, totalMs: 10 }), // on the opening edge
    health(now - 5000, { ok: false, status: null, connectMs: null, totalMs: null, error: 'ECONNREFUSED' }),
    health(now - 4000, { ok: false, status: 500, connectMs: 3, totalMs: 30 }),
    health(now, { connectMs: 2, totalMs: 20 }), // on the closing edge
    health(now + 1, { ok: false, connectMs: 77, totalMs: 77 }), // after now (a wall clock that went back)
  ]);
  const o = observePool([w], now, 10_000, 30_000);
  t.equal(o.probes, 4);
  t.equal(o.failures, 2);
  t.equal(o.connectP95Ms, 3, 'the refused probe has no connect time');
  t.equal(o.totalP95Ms, 30);
});

t.test('observePool: no data', async (t) => {
  const none = observePool([], T0, 10_000, 30_000);
  t.same(none, {
    probes: 0,
    failures: 0,
    connectP95Ms: null,
    totalP95Ms: null,
    ready: null,
    healthy: null,
    downTransitions: 0,
    recoveredAt: null,
  });
  const fresh = observePool([new ServerProbeWindow(OPTS)], T0, 10_000, 30_000);
  t.same(fresh, none, 'a server without results');
  const refused = observePool(
    [windowOf([health(T0, { ok: false, status: null, connectMs: null, totalMs: null })])],
    T0,
    10_000,
    30_000,
  );
  t.equal(refused.connectP95Ms, null, 'no connected probe');
  t.equal(refused.totalP95Ms, null, 'no finished probe');
  t.equal(refused.failures, 1);
  t.equal(refused.healthy, false);
});

t.test('observePool: ready and healthy over the servers’ latest results', async (t) => {
  const ok = windowOf([health(T0), ready(T0, true)]);
  const okAgain = windowOf([health(T0, { ok: false }), health(T0 + 1), ready(T0, false), ready(T0 + 1, true)]);
  const bad = windowOf([health(T0), health(T0 + 1, { ok: false }), ready(T0, true), ready(T0 + 1, false)]);
  const none = new ServerProbeWindow(OPTS);
  const obs = (...ws: ServerProbeWindow[]): { ready: boolean | null; healthy: boolean | null } => {
    const o = observePool(ws, T0 + 1, 10_000, 30_000);
    return { ready: o.ready, healthy: o.healthy };
  };
  t.same(obs(ok), { ready: true, healthy: true });
  t.same(obs(ok, okAgain), { ready: true, healthy: true }, 'the latest result counts, not earlier ones');
  t.same(obs(ok, bad), { ready: false, healthy: false }, 'any failing server → false');
  t.same(obs(ok, none), { ready: null, healthy: null }, 'a server without one yet → null');
  t.same(obs(none, bad), { ready: false, healthy: false }, 'a known failure wins over missing data');
  const healthOnly = windowOf([health(T0)]);
  t.same(obs(healthOnly), { ready: null, healthy: true }, 'ready waits for a ready probe');
  const old = windowOf([health(T0 - 3_600_000), ready(T0 - 3_600_000, true)]);
  t.same(obs(old), { ready: true, healthy: true }, 'latest results are not cut by the window');
});

t.test('observePool: down transitions within the crash-loop window, summed; newest recovery', async (t) => {
  const now = T0 + 600_000;
  const crash = 300_000;
  // Server a: down at now-400 s (outside), up, down at now-300 s (edge), up, down at now-10 s, up at now-5 s.
  const a = windowOf([
    health(now - 401_000),
    health(now - 400_000, { ok: false }),
    health(now - 350_000),
    health(now - 300_000, { ok: false }),
    health(now - 200_000),
    health(now - 10_000, { ok: false }),
    health(now - 5000),
  ]);
  // Server b: down at now-1 s, still down; recovered earlier at now-100 s.
  const b = windowOf([health(now - 120_000, { ok: false }), health(now - 100_000), health(now - 1000, { ok: false })]);
  const o = observePool([a, b], now, 10_000, crash);
  t.equal(o.downTransitions, 3, 'a: 2 (edge included), b: 1; the one at now-400 s is out');
  t.equal(o.recoveredAt, now - 5000, 'the newest recovery of any server');
  t.equal(o.healthy, false, 'b is down');
  t.equal(observePool([b], now, 10_000, crash).recoveredAt, now - 100_000);
  t.equal(observePool([a], now - 1, 10_000, crash).downTransitions, 2, 'the crash window is also cut at now');
  t.equal(observePool([a, b], now - 7000, 10_000, crash).recoveredAt, now - 5000, 'recoveredAt is not windowed');
  const down = windowOf([health(now - 1000, { ok: false })]);
  t.equal(observePool([down], now, 10_000, crash).recoveredAt, null, 'never recovered');
});

t.test('observePool matches a naive reference on random histories', async (t) => {
  const result = fc.record({
    dt: fc.integer({ min: 0, max: 2000 }),
    kind: fc.constantFrom<'health' | 'ready'>('health', 'ready'),
    ok: fc.boolean(),
    connectMs: fc.option(fc.double({ min: 0.01, max: 500, noNaN: true }), { nil: null }),
    totalMs: fc.option(fc.double({ min: 0.01, max: 2000, noNaN: true }), { nil: null }),
  });
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(
          fc.array(fc.array(result, { maxLength: 15 }), { minLength: 1, maxLength: 4 }),
          fc.integer({ min: 0, max: 40_000 }),
          (servers, offset) => {
            const opts = { intervalMs: 1000, windowMs: 5000, crashLoopWindowMs: 12_000 };
            const windows: ServerProbeWindow[] = [];
            const all: ProbeResult[][] = [];
            for (const spec of servers) {
              let at = T0;
              const rs = spec.map((s) => {
                at += s.dt;
                return {
                  at,
                  kind: s.kind,
                  ok: s.ok,
                  status: s.ok ? 200 : 503,
                  connectMs: s.connectMs,
                  totalMs: s.totalMs,
                };
              });
              all.push(rs);
              windows.push(windowOf(rs, { ...opts, windowMs: 60_000, crashLoopWindowMs: 60_000 }));
            }
            const now = T0 + offset;
            const got = observePool(windows, now, opts.windowMs, opts.crashLoopWindowMs);
            // Reference computed from the full lists.
            const hs = all.flatMap((rs) => rs.filter((r) => r.kind === 'health'));
            const inWin = hs.filter((r) => r.at >= now - opts.windowMs && r.at <= now);
            let down = 0;
            let rec: number | null = null;
            for (const rs of all) {
              let prev: boolean | null = null;
              for (const r of rs) {
                if (r.kind !== 'health') continue;
                if (prev === true && !r.ok && r.at >= now - opts.crashLoopWindowMs && r.at <= now) down++;
                if (prev === false && r.ok) rec = Math.max(rec ?? -Infinity, r.at);
                prev = r.ok;
              }
            }
            const latest = (kind: 'health' | 'ready'): boolean | null => {
              const ls = all.map((rs) => rs.filter((r) => r.kind === kind).at(-1) ?? null);
              if (ls.some((r) => r !== null && !r.ok)) return false;
              return ls.some((r) => r === null) ? null : true;
            };
            const want = {
              probes: inWin.length,
              failures: inWin.filter((r) => !r.ok).length,
              connectP95Ms: refP95(inWin.flatMap((r) => (r.connectMs === null ? [] : [r.connectMs]))),
              totalP95Ms: refP95(inWin.flatMap((r) => (r.totalMs === null ? [] : [r.totalMs]))),
              ready: latest('ready'),
              healthy: latest('health'),
              downTransitions: down,
              recoveredAt: rec,
            };
            assert.deepStrictEqual(got, want);
          },
        ),
        { numRuns: 300, seed: 42 },
      ),
    'observePool equals the reference on 300 random histories',
  );
});
