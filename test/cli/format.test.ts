// Plain-text status (src/cli/format.ts): durations and the status document as lines.
import t from 'tap';
import { formatDuration, formatStatus } from '../../src/cli/format.js';
import type { ServiceStatus, StatusDocument } from '../../src/runner.js';
import type { GateResult, RolloutEvent } from '../../src/rollout/types.js';
import { serviceStatus } from '../fixtures/status.js';

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5);

function service(over: Partial<ServiceStatus> = {}): ServiceStatus {
  return serviceStatus({
    target: 50,
    since: T0,
    soakedMs: 3200,
    soakNeededMs: 15 * 60_000,
    summary: 'soaking at 15 % (target 50 %): 3.2 s of 900.0 s green',
    ...over,
  });
}

function event(i: number): RolloutEvent {
  return { at: T0 + i * 1000, service: 'gateway', kind: 'step', from: i, to: i + 1, reason: `reason ${i}`, gates: [] };
}

t.test('formatDuration', async (t) => {
  const table: [number, string][] = [
    [0, '0.0 s'],
    [1500, '1.5 s'],
    [59_900, '59.9 s'],
    [60_000, '1m 0s'],
    [90_400, '1m 30s'],
    [15 * 60_000, '15m 0s'],
    [3_599_000, '59m 59s'],
    [3_600_000, '1h 0m'],
    [48 * 3_600_000, '48h 0m'],
    [49.5 * 3_600_000, '49h 30m'],
  ];
  for (const [ms, want] of table) t.equal(formatDuration(ms), want, `${ms} ms → ${want}`);
});

t.test('formatDuration never shows 60 in the smaller unit', async (t) => {
  // Rounding the remainder can reach 60: 119.6 s shows as "1m 60s" (src bug, see the report).
  t.equal(formatDuration(119_600), '2m 0s', '119.6 s');
  t.equal(formatDuration(2 * 3_600_000 - 20_000), '2h 0m', '1 h 59 min 40 s');
  t.equal(formatDuration(59_960), '1m 0s', '59.96 s');
});

t.test('formatStatus: one block per service', async (t) => {
  const gates: GateResult[] = [
    {
      gate: 'connect_p95',
      kind: 'hold',
      pool: 'canary',
      verdict: 'pass',
      value: 80.25,
      threshold: 120,
      samples: 250,
      minSamples: 200,
    },
    {
      gate: 'error_ratio',
      kind: 'drain',
      pool: 'canary',
      verdict: 'fail',
      value: 0.0123,
      threshold: 0.005,
      samples: 250,
      minSamples: 200,
    },
    {
      gate: 'error_ratio',
      kind: 'drain',
      pool: 'primary',
      verdict: 'inconclusive',
      value: null,
      threshold: 0.005,
      samples: 12,
      minSamples: 200,
    },
  ];
  const doc: StatusDocument = {
    generation: 42,
    lastReloadAt: T0,
    services: [
      service({ gates }),
      service({
        name: 'api',
        weight: 0,
        target: 20,
        phase: 'drained',
        drainReason: 'error_ratio',
        summary: '',
        soakedMs: 0,
        soakNeededMs: 48 * 3_600_000,
      }),
      service({
        name: 'admin',
        phase: 'paused',
        pausedBy: 'operator',
        summary: 'paused by the operator',
        ramp: { to: 15, step: 2, steps: 3, startedAt: T0, cause: 'slice' },
      }),
    ],
    history: [],
  };
  const text = formatStatus(doc);
  const lines = text.split('\n');
  t.equal(lines[0], 'generation 42', 'no note: the generation first');
  t.same(lines.slice(1, 8), [
    '',
    'gateway: weight 15 % → target 50 %  phase step',
    `  soak 3.2 s of 15m 0s at this weight since ${new Date(T0).toISOString()}`,
    '  soaking at 15 % (target 50 %): 3.2 s of 900.0 s green',
    '  hold gate connect_p95 pass: canary connect p95 80 ms ≤ 120 ms over 250 requests',
    '  drain gate error_ratio fail: canary 5xx ratio 1.23 % > 0.50 % over 250 requests',
    '  drain gate error_ratio inconclusive: primary 12 of 200 requests',
  ]);
  t.same(
    lines.slice(8, 11),
    [
      '',
      'api: weight 0 % → target 20 %  phase drained (drained: error_ratio)',
      `  soak 0.0 s of 48h 0m at this weight since ${new Date(T0).toISOString()}`,
    ],
    'an empty summary prints no line',
  );
  t.equal(lines[12], 'admin: weight 15 % → target 50 %  phase paused (by operator)');
  t.equal(lines[15], '  ramp (slow_start emulation, slice): sub-step 2 of 3 toward 15 %');
  t.notMatch(text, /recent events/, 'no history, no events section');
});

t.test('formatStatus: no soak once at the target (it once said "soak 14.4 s of 5.0 s" when complete)', async (t) => {
  const since = new Date(T0).toISOString();
  const soakLine = (over: Partial<ServiceStatus>): string | undefined =>
    formatStatus({ generation: 1, lastReloadAt: 0, services: [service(over)], history: [] }).split('\n')[3];
  const past = { soakedMs: 14_400, soakNeededMs: 5000 };
  t.equal(soakLine({ phase: 'complete', weight: 50, ...past }), `  at the target since ${since}`, 'complete');
  t.equal(
    soakLine({ phase: 'paused', pausedBy: 'gate', weight: 50, ...past }),
    `  at the target since ${since}`,
    'paused at the target',
  );
  t.equal(
    soakLine({ phase: 'step', weight: 50, ...past }),
    `  at the target since ${since}`,
    'any phase at the target',
  );
  t.equal(soakLine({ phase: 'idle', weight: 0, target: 0 }), `  at the target since ${since}`, 'idle at target 0');
  t.equal(soakLine({ phase: 'promoted', weight: 0, ...past }), `  promoted since ${since}`, 'the release ended');
  t.equal(
    soakLine({ phase: 'step', weight: 40, ...past }),
    `  soak 14.4 s of 5.0 s at this weight since ${since}`,
    'below the target the soak shows, even past its need (the next tick steps)',
  );
});

t.test('formatStatus: the note first, the last 10 events', async (t) => {
  const history = Array.from({ length: 12 }, (_, i) => event(i));
  const text = formatStatus(
    { generation: 1, lastReloadAt: 0, services: [service()], history },
    'note: from state.json',
  );
  const lines = text.split('\n');
  t.equal(lines[0], 'note: from state.json');
  t.equal(lines[1], 'generation 1');
  const at = lines.indexOf('recent events:');
  t.ok(at > 0, 'an events section');
  const events = lines.slice(at + 1);
  t.equal(events.length, 10, 'the last 10');
  t.equal(events[0], `  ${new Date(T0 + 2000).toISOString()} gateway step 2 → 3: reason 2`, 'oldest shown first');
  t.equal(events[9], `  ${new Date(T0 + 11_000).toISOString()} gateway step 11 → 12: reason 11`);
});
