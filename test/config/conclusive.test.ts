// Gates a config makes provably never conclusive (src/config/conclusive.ts): the bounds hold for every
// probe schedule the prober can produce, each refusal names numbers, and each fix it names is accepted.
import t from 'tap';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/load.js';
import {
  maxDownTransitionsPerServer,
  maxProbesPerServer,
  neverConclusive,
  TIMER_SLACK_MS,
} from '../../src/config/conclusive.js';
import type { ServiceConfig } from '../../src/config/types.js';
import { parseDuration } from '../../src/config/units.js';
import { ConfigError } from '../../src/errors.js';
import { serviceConfig } from '../fixtures/config.js';

const CANARIES = ['127.0.0.1:2', '127.0.0.1:3', '127.0.0.1:4'];

/** A service with `n` canary servers and the given probe and gate numbers (ms). */
function svc(
  o: {
    window?: number;
    interval?: number;
    timeout?: number;
    minProbes?: number;
    crashWindow?: number;
    restarts?: number;
  },
  n = 1,
): ServiceConfig {
  return serviceConfig('gateway', ['127.0.0.1:1'], CANARIES.slice(0, n), {
    probe: { intervalMs: o.interval ?? 5000, timeoutMs: o.timeout ?? Math.min(2000, o.interval ?? 5000) },
    gates: {
      windowMs: o.window ?? 900_000,
      minProbes: o.minProbes ?? 20,
      crashLoopWindowMs: o.crashWindow ?? 300_000,
      crashLoopRestarts: o.restarts ?? 3,
    },
  });
}

/** The `[path, message, fix]` of each problem. */
function problems(s: ServiceConfig): [string, string, string][] {
  return neverConclusive(s).map((p) => [p.path.join('.'), p.message, p.fix]);
}

t.test('a short window: a 3 s window at 500 ms holds 6 probes, under min_probes 20', async (t) => {
  const yaml = `nginx:
  conf: /etc/nginx/nginx.conf
  upstreams_file: /etc/nginx/conf.d/nginx-canary.conf
  access_log: /var/log/nginx/canary.json
services:
  gateway:
    primary: [{ server: 127.0.0.1:1 }]
    canary: [{ server: 127.0.0.1:2 }]
    probe: { interval: 500ms, timeout: 500ms }
    gates:
      window: 3s
`;
  const err = t.throws(() => parseConfig(yaml, '/srv/c/weights.yaml')) as ConfigError;
  t.type(err, ConfigError);
  t.equal(err.exitCode, 2, 'exit 2 like every config error');
  t.equal(err.problems.length, 1);
  const p = err.problems[0]!;
  t.same(p.position, { file: '/srv/c/weights.yaml', line: 11, column: 15 }, 'points at the window’s value');
  t.equal(p.path, 'services.gateway.gates.window');
  t.equal(
    p.message,
    'a 3s window holds 6 canary health probes (1 server, one every 500ms; at most 8 if probe times bunch up), fewer than gates.min_probes 20: probe_failure_ratio can never pass, so the walk would hold at its slice for ever',
  );
  t.equal(
    p.fix,
    'Raise gates.window to ≥ 10s, lower probe.interval to ≤ 150ms (and probe.timeout with it), or lower gates.min_probes to ≤ 6',
  );
  // The same file with the default window (15m) is accepted.
  t.doesNotThrow(() => parseConfig(yaml.replace('      window: 3s\n', '      min_probes: 20\n'), '/srv/c/w.yaml'));
});

t.test('probe count: the boundary, several servers, and what the fix offers', async (t) => {
  t.same(problems(svc({})), [], 'the defaults: 15m at 5s holds 180');
  t.same(problems(svc({ window: 10_000, interval: 500, timeout: 500 })), [], '10s at 500ms holds exactly 20');
  t.same(
    problems(svc({ window: 9000, interval: 500, timeout: 500 })),
    [],
    '9s holds 18 at the cadence but up to 20 when probe times bunch up: not provably never, accepted',
  );
  t.same(
    problems(svc({ window: 3000, interval: 500, timeout: 100, minProbes: 21 }, 3)),
    [],
    '3 servers: 3 × 6 = 18 at the cadence, 3 × 7 = 21 when probe times bunch up',
  );
  t.equal(problems(svc({ window: 3000, interval: 500, timeout: 100, minProbes: 22 }, 3)).length, 1, '22 > 3 × 7');
  const two = problems(svc({ window: 3000, interval: 500, timeout: 100, minProbes: 40 }, 2));
  t.same(two, [
    [
      'gates.window',
      'a 3s window holds 12 canary health probes (2 servers, one every 500ms; at most 14 if probe times bunch up), fewer than gates.min_probes 40: probe_failure_ratio can never pass, so the walk would hold at its slice for ever',
      'Raise gates.window to ≥ 10s, lower probe.interval to ≤ 150ms, or lower gates.min_probes to ≤ 12',
    ],
  ]);
  const one = problems(svc({ window: 1000, interval: 1000, timeout: 1000, minProbes: 4 }));
  t.same(one, [
    [
      'gates.window',
      'a 1s window holds 1 canary health probe (1 server, one every 1s; at most 3 if probe times bunch up), fewer than gates.min_probes 4: probe_failure_ratio can never pass, so the walk would hold at its slice for ever',
      'Raise gates.window to ≥ 4s, lower probe.interval to ≤ 250ms (and probe.timeout with it), or lower gates.min_probes to ≤ 1',
    ],
  ]);
  t.equal(
    problems(svc({ window: 1000, interval: 100, timeout: 100, minProbes: 100 }))[0]?.[2],
    'Raise gates.window to ≥ 10s, or lower gates.min_probes to ≤ 10',
    'an interval under 100 ms is not offered',
  );
  t.equal(
    problems(svc({ window: 1000, interval: 5000, timeout: 2000 }))[0]?.[2],
    'Raise gates.window to ≥ 100s, or raise gates.window to ≥ 5s and lower gates.min_probes to ≤ 1',
    'a window shorter than the interval: min_probes alone cannot fix it',
  );
  t.equal(
    problems(svc({ window: 3_600_000, interval: 3_600_000, timeout: 2000, minProbes: 25 }))[0]?.[2],
    'Lower probe.interval to ≤ 144s, or lower gates.min_probes to ≤ 1',
    'a window over 1d is not offered',
  );
  t.equal(
    problems(svc({ window: 1000, interval: 3_600_000, timeout: 2000, minProbes: 25 }))[0]?.[2],
    'Raise gates.window to ≥ 1h and lower gates.min_probes to ≤ 1',
    'neither a window over 1d nor an interval under 100 ms: the one fix left',
  );
  t.same(
    problems(svc({ window: 86_400_000, interval: 100, timeout: 100, minProbes: 10_001 })),
    [
      [
        'gates.window',
        'a 1d window holds 10000 canary health probes (1 server, one every 100ms; at most 10000 if probe times bunch up), fewer than gates.min_probes 10001: probe_failure_ratio can never pass, so the walk would hold at its slice for ever',
        'Lower gates.min_probes to ≤ 10000',
      ],
    ],
    'the prober keeps at most 10,000 probes per server: no window or interval helps',
  );
});

t.test('crash loop: restarts that cannot fit in crash_loop_window', async (t) => {
  t.same(problems(svc({ crashWindow: 1000, interval: 500, timeout: 500, restarts: 2 })), [], '2 fit in 1s at 500ms');
  t.same(problems(svc({ crashWindow: 1000, interval: 500, timeout: 100, restarts: 3 }, 2)), [], '2 servers × 2');
  t.same(problems(svc({ crashWindow: 1000, interval: 500, timeout: 500, window: 60_000 })), [
    [
      'gates.crash_loop_window',
      'a 1s crash_loop_window holds at most 2 restarts seen by probes every 500ms (1 server; each restart takes a failing probe after a passing one), fewer than gates.crash_loop_restarts 3: the crash_loop drain gate can never fire',
      'Raise gates.crash_loop_window to ≥ 2s, lower probe.interval to ≤ 250ms (and probe.timeout with it), or lower gates.crash_loop_restarts to ≤ 2',
    ],
  ]);
  t.same(
    problems(svc({ crashWindow: 1000, interval: 100, timeout: 50, restarts: 10, window: 60_000 }, 2)),
    [],
    '2 servers × 6 = 12 ≥ 10: restarts of several servers add up',
  );
  t.equal(
    problems(svc({ crashWindow: 1000, interval: 100, timeout: 100, restarts: 10, window: 60_000 }))[0]?.[2],
    'Raise gates.crash_loop_window to ≥ 1800ms, or lower gates.crash_loop_restarts to ≤ 6',
    'an interval under 100 ms is not offered',
  );
  const hour = problems(
    svc({ crashWindow: 1000, interval: 3_600_000, timeout: 2000, restarts: 1000, window: 86_400_000, minProbes: 24 }),
  );
  t.same(hour, [
    [
      'gates.crash_loop_window',
      'a 1s crash_loop_window holds at most 1 restart seen by probes every 1h (1 server; each restart takes a failing probe after a passing one), fewer than gates.crash_loop_restarts 1000: the crash_loop drain gate can never fire',
      'Lower gates.crash_loop_restarts to ≤ 1',
    ],
  ]);
});

t.test('a service with another problem is not judged; others still are', async (t) => {
  const yaml = `nginx:
  conf: /etc/nginx/nginx.conf
  upstreams_file: /etc/nginx/conf.d/nginx-canary.conf
  access_log: /var/log/nginx/canary.json
services:
  gateway:
    primary: [{ server: 127.0.0.1:1, max_fails: 101 }]
    canary: [{ server: 127.0.0.1:2 }]
    gates: { window: 3s }
  billing:
    primary: [{ server: 127.0.0.1:3 }]
    canary: [{ server: 127.0.0.1:4 }]
    gates: { window: 3s }
`;
  const err = t.throws(() => parseConfig(yaml, '/srv/c/weights.yaml')) as ConfigError;
  t.same(
    err.problems.map((p) => p.path),
    ['services.gateway.primary[0].max_fails', 'services.billing.gates.window'],
  );
});

/** The config numbers a fix names, applied to `s` (every option of the fix, one at a time). */
function applyFixes(s: ServiceConfig, fix: string): ServiceConfig[] {
  const out: ServiceConfig[] = [];
  const dur = (text: string): number => parseDuration(text) ?? Number.NaN;
  for (const option of fix.split(/, or |, /)) {
    const next = structuredClone(s);
    for (const m of option.matchAll(/(gates\.\w+|probe\.interval) to [≥≤] (\w+)/g)) {
      const [, key, value = ''] = m;
      if (key === 'gates.window') next.gates.windowMs = dur(value);
      else if (key === 'gates.crash_loop_window') next.gates.crashLoopWindowMs = dur(value);
      else if (key === 'gates.min_probes') next.gates.minProbes = Number(value);
      else if (key === 'gates.crash_loop_restarts') next.gates.crashLoopRestarts = Number(value);
      else if (key === 'probe.interval') {
        next.probe.intervalMs = dur(value);
        next.probe.timeoutMs = Math.min(next.probe.timeoutMs, next.probe.intervalMs);
      } else throw new Error(`unknown fix ${option}`);
    }
    out.push(next);
  }
  return out;
}

/** A service drawn from the validated ranges, leaning to small numbers so refusals are common. */
const arbService = fc
  .record({
    interval: fc.oneof(fc.integer({ min: 100, max: 2000 }), fc.integer({ min: 100, max: 3_600_000 })),
    timeoutShare: fc.double({ min: 0.0001, max: 1, noNaN: true }),
    window: fc.oneof(fc.integer({ min: 1000, max: 20_000 }), fc.integer({ min: 1000, max: 86_400_000 })),
    crashWindow: fc.oneof(fc.integer({ min: 1000, max: 20_000 }), fc.integer({ min: 1000, max: 86_400_000 })),
    minProbes: fc.oneof(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 1_000_000 })),
    restarts: fc.oneof(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 1000 })),
    n: fc.integer({ min: 1, max: 3 }),
  })
  .map((o) =>
    svc(
      {
        interval: o.interval,
        timeout: Math.max(10, Math.min(60_000, Math.floor(o.interval * o.timeoutShare))),
        window: o.window,
        crashWindow: o.crashWindow,
        minProbes: o.minProbes,
        restarts: o.restarts,
      },
      o.n,
    ),
  );

t.test('every option a fix names makes that gate conclusive, within the validated ranges', async (t) => {
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(arbService, (s) => {
        for (const p of neverConclusive(s)) {
          const fixed = applyFixes(s, p.fix);
          if (fixed.length === 0) return false;
          for (const f of fixed) {
            if (f.probe.intervalMs < 100 || f.gates.windowMs > 86_400_000 || f.gates.crashLoopWindowMs > 86_400_000)
              return false;
            if (f.gates.minProbes < 1 || f.gates.crashLoopRestarts < 1) return false;
            if (neverConclusive(f).some((q) => q.path.join('.') === p.path.join('.'))) return false;
          }
        }
        return true;
      }),
      { numRuns: 3000 },
    ),
  );
});

/**
 * Event times of one server the prober could produce: rounds start at least interval − slack apart (later by
 * `extra`), each event `delay` (0–timeout) after its round's start. `every` 2: only every other round has one.
 */
function schedule(intervalMs: number, timeoutMs: number, extras: number[], delays: number[], every: 1 | 2): number[] {
  const at: number[] = [];
  let start = 0;
  extras.forEach((extra, i) => {
    if (i % every === 0) at.push(start + (delays[i] ?? 0) * timeoutMs);
    start += intervalMs - TIMER_SLACK_MS + extra;
  });
  return at.sort((a, b) => a - b);
}

/** Most of `at` (sorted) inside any closed window of `windowMs`. */
function mostInAnyWindow(at: number[], windowMs: number): number {
  let best = 0;
  let j = 0;
  for (let i = 0; i < at.length; i++) {
    while ((at[i] ?? 0) - (at[j] ?? 0) > windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

t.test('the bounds hold for every schedule the prober can produce', async (t) => {
  const arbSchedule = fc.record({
    interval: fc.integer({ min: 100, max: 1000 }),
    timeoutShare: fc.double({ min: 0, max: 1, noNaN: true }),
    window: fc.integer({ min: 1000, max: 10_000 }),
    extras: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 50 })), { minLength: 1, maxLength: 300 }),
    delays: fc.array(fc.oneof(fc.constant(0), fc.constant(1), fc.double({ min: 0, max: 1, noNaN: true })), {
      maxLength: 300,
    }),
  });
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(arbSchedule, (o) => {
        const timeout = Math.max(10, Math.floor(o.interval * o.timeoutShare));
        const probes = schedule(o.interval, timeout, o.extras, o.delays, 1);
        const downs = schedule(o.interval, timeout, o.extras, o.delays, 2);
        return (
          mostInAnyWindow(probes, o.window) <= maxProbesPerServer(o.window, o.interval, timeout) &&
          mostInAnyWindow(downs, o.window) <= maxDownTransitionsPerServer(o.window, o.interval, timeout)
        );
      }),
      { numRuns: 2000 },
    ),
  );
  // The bound is reached: a slow first probe, then fast ones, every round on time.
  const tight = schedule(500, 500, Array<number>(20).fill(0), [1, ...Array<number>(19).fill(0)], 1);
  t.equal(mostInAnyWindow(tight, 3000), maxProbesPerServer(3000, 500, 500), 'tight');
  t.equal(maxProbesPerServer(86_400_000, 100, 100), 10_000, 'capped by the prober’s ring');
});
