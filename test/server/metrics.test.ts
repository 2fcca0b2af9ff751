// The Prometheus registry (src/server/metrics.ts) on a plain-object MetricsSource:
// gauges mirror the source at scrape time, in base units; counters move on inc().
import t from 'tap';
import { Metrics, type MetricsSource } from '../../src/server/metrics.js';
import { PHASES, type GateResult, type Phase, type ServiceState, type State } from '../../src/rollout/types.js';
import type { Config } from '../../src/config/types.js';
import { makeConfig, makeService } from '../fixtures/nginx/config.js';
import { svcState as baseState } from '../fixtures/rollout/config.js';
import { defaultRollout } from '../fixtures/config.js';

/** A ServiceState at `weight` percent in `phase`, target 50 %, times 0 (epoch ms), nothing soaked. */
function svcState(weight: number, phase: Phase): ServiceState {
  return baseState({ weight, phase, target: 50, since: 0, lastTickAt: 0 });
}

function gate(g: GateResult['gate'], pool: GateResult['pool'], value: number | null, samples: number): GateResult {
  return {
    gate: g,
    kind: g === 'error_ratio' ? 'drain' : 'hold',
    pool,
    verdict: 'pass',
    value,
    threshold: 1,
    samples,
    minSamples: 200,
  };
}

/** A mutable source over plain objects: two services, gateway at 12.5 % step, api absent from state. */
function source(): MetricsSource & {
  cfg: Config;
  st: State;
  g: Record<string, GateResult[]>;
  lines: Record<string, number>;
} {
  const cfg = makeConfig('/tmp/nc-metrics', {
    services: [
      makeService('gateway', ['127.0.0.1:18789'], ['127.0.0.1:18890']),
      makeService('api', ['127.0.0.1:18791'], ['127.0.0.1:18892'], {
        rollout: { ...defaultRollout, target: 20, slice: 5, sliceSoakMs: 1000, step: 5, stepSoakMs: 1000 },
      }),
    ],
  });
  const s = {
    cfg,
    st: {
      version: 1,
      generation: 7,
      lastReloadAt: 0,
      services: { gateway: svcState(12.5, 'step') },
      history: [],
    } as State,
    g: {
      gateway: [
        gate('connect_p95', 'primary', 80, 300),
        gate('connect_p95', 'canary', 150.5, 40),
        gate('error_ratio', 'primary', 0.001, 300),
        gate('error_ratio', 'canary', 0.0125, 40),
      ],
      api: [gate('connect_p95', 'canary', null, 0)],
    } as Record<string, GateResult[]>,
    lines: { parsed: 42, invalid: 3, unattributed: 1 } as Record<string, number>,
    config: () => s.cfg,
    state: () => s.st,
    gates: () => s.g,
    logLines: () => s.lines,
    now: () => 1_000_000,
  };
  return s;
}

/** The value of one exposition line `name{labels} value`, or undefined. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('weight, target and the phase one-hot mirror the source at scrape time', async (t) => {
  const src = source();
  const m = new Metrics(src, { defaultMetrics: false });
  let text = await m.registry.metrics();
  t.equal(value(text, 'nginx_canary_weight_percent{service="gateway"}'), 12.5);
  t.equal(value(text, 'nginx_canary_weight_percent{service="api"}'), 0, 'a service absent from state is at 0');
  t.equal(value(text, 'nginx_canary_target_weight_percent{service="gateway"}'), 50);
  t.equal(value(text, 'nginx_canary_target_weight_percent{service="api"}'), 20);

  for (const [service, current] of [
    ['gateway', 'step'],
    ['api', 'idle'],
  ] as const) {
    const ones = PHASES.filter((p) => value(text, `nginx_canary_phase{service="${service}",phase="${p}"}`) === 1);
    const zeros = PHASES.filter((p) => value(text, `nginx_canary_phase{service="${service}",phase="${p}"}`) === 0);
    t.same(ones, [current], `${service}: exactly one 1, on ${current}`);
    t.equal(zeros.length, PHASES.length - 1, `${service}: a 0 on every other phase`);
  }

  // The next scrape reads the source again: no timers, no stale series.
  src.st = { ...src.st, services: { gateway: svcState(0, 'drained'), api: svcState(5, 'slice') } };
  src.cfg = { ...src.cfg, services: src.cfg.services.filter((s) => s.name === 'gateway') };
  text = await m.registry.metrics();
  t.equal(value(text, 'nginx_canary_weight_percent{service="gateway"}'), 0);
  t.equal(value(text, 'nginx_canary_phase{service="gateway",phase="drained"}'), 1);
  t.equal(value(text, 'nginx_canary_phase{service="gateway",phase="step"}'), 0);
  const gaugeLines = text.split('\n').filter((l) => !/^nginx_canary_(drains|promotions)_total/.test(l)); // counters keep their series
  t.notMatch(gaugeLines.join('\n'), /service="api"/, 'a service removed from the config has no gauge series left');
});

t.test('gate gauges are in base units, one series per pool with data', async (t) => {
  const text = await new Metrics(source(), { defaultMetrics: false }).registry.metrics();
  t.equal(
    value(text, 'nginx_canary_gate_connect_p95_seconds{service="gateway",pool="primary"}'),
    0.08,
    '80 ms → 0.08 s',
  );
  t.equal(
    value(text, 'nginx_canary_gate_connect_p95_seconds{service="gateway",pool="canary"}'),
    0.1505,
    '150.5 ms → 0.1505 s',
  );
  t.equal(value(text, 'nginx_canary_gate_error_ratio{service="gateway",pool="canary"}'), 0.0125, 'a ratio stays 0–1');
  t.equal(value(text, 'nginx_canary_gate_error_ratio{service="gateway",pool="primary"}'), 0.001);
  t.equal(value(text, 'nginx_canary_gate_requests{service="gateway",pool="primary"}'), 300, 'the error_ratio samples');
  t.equal(value(text, 'nginx_canary_gate_requests{service="gateway",pool="canary"}'), 40);
  t.notMatch(text, /nginx_canary_gate_connect_p95_seconds\{service="api"/, 'no value (null) → no series');
  t.notMatch(text, /nginx_canary_gate_(error_ratio|requests)\{service="api"/, 'no error_ratio result → no series');
  t.match(text, /# HELP nginx_canary_gate_connect_p95_seconds .*seconds/);
});

t.test('log_lines_total comes from the source and is not accumulated across scrapes', async (t) => {
  const src = source();
  const m = new Metrics(src, { defaultMetrics: false });
  for (let i = 0; i < 2; i++) {
    const text = await m.registry.metrics();
    t.equal(value(text, 'nginx_canary_log_lines_total{result="parsed"}'), 42, `scrape ${i + 1}: parsed`);
    t.equal(value(text, 'nginx_canary_log_lines_total{result="invalid"}'), 3);
    t.equal(value(text, 'nginx_canary_log_lines_total{result="unattributed"}'), 1);
  }
  src.lines = { parsed: 50, invalid: 3, unattributed: 1 };
  t.equal(value(await m.registry.metrics(), 'nginx_canary_log_lines_total{result="parsed"}'), 50);
});

t.test('counters and histograms move on inc()/observe()', async (t) => {
  const m = new Metrics(source(), { defaultMetrics: false });
  let text = await m.registry.metrics();
  t.equal(value(text, 'nginx_canary_drains_total{service="gateway",reason="error_ratio"}'), 0, 'no drain yet: 0');
  m.drains.inc({ service: 'gateway', reason: 'error_ratio' });
  m.drains.inc({ service: 'gateway', reason: 'error_ratio' });
  m.drains.inc({ service: 'gateway', reason: 'operator' });
  m.reloads.inc({ result: 'ok' });
  m.reloads.inc({ result: 'verify' });
  m.rollbacks.inc({ reason: 'operator' });
  m.reloadDuration.observe(0.2);
  m.reloadDuration.observe(3);
  m.probeDuration.observe({ service: 'gateway', pool: 'canary', phase: 'connect' }, 0.0007);
  text = await m.registry.metrics();
  t.equal(value(text, 'nginx_canary_drains_total{service="gateway",reason="error_ratio"}'), 2);
  t.equal(value(text, 'nginx_canary_drains_total{service="gateway",reason="operator"}'), 1);
  t.equal(value(text, 'nginx_canary_reloads_total{result="ok"}'), 1);
  t.equal(value(text, 'nginx_canary_reloads_total{result="verify"}'), 1);
  t.equal(value(text, 'nginx_canary_rollbacks_total{reason="operator"}'), 1);
  t.equal(value(text, 'nginx_canary_reload_duration_seconds_bucket{le="0.1"}'), 0);
  t.equal(value(text, 'nginx_canary_reload_duration_seconds_bucket{le="0.25"}'), 1);
  t.equal(value(text, 'nginx_canary_reload_duration_seconds_bucket{le="5"}'), 2);
  t.equal(value(text, 'nginx_canary_reload_duration_seconds_count'), 2);
  t.equal(value(text, 'nginx_canary_reload_duration_seconds_sum'), 3.2);
  t.equal(
    value(
      text,
      'nginx_canary_probe_duration_seconds_bucket{le="0.001",service="gateway",pool="canary",phase="connect"}',
    ),
    1,
  );
  t.equal(
    value(
      text,
      'nginx_canary_probe_duration_seconds_bucket{le="0.0005",service="gateway",pool="canary",phase="connect"}',
    ),
    0,
  );
});

t.test('each instance has its own registry; default metrics are optional', async (t) => {
  const a = new Metrics(source());
  const b = new Metrics(source(), { defaultMetrics: false });
  t.not(a.registry, b.registry);
  a.reloads.inc({ result: 'ok' });
  t.equal(value(await b.registry.metrics(), 'nginx_canary_reloads_total{result="ok"}'), 0, 'b did not see a’s counter');
  const withDefaults = await a.registry.metrics();
  t.match(withDefaults, /^nginx_canary_process_cpu_user_seconds_total /m, 'default metrics carry the prefix');
  t.notMatch(await b.registry.metrics(), /process_cpu/, 'defaultMetrics: false leaves them out');
  t.match(a.registry.contentType, /^text\/plain/);
  const names = withDefaults
    .split('\n')
    .filter((l) => l.startsWith('# TYPE '))
    .map((l) => l.split(' ')[2] ?? '');
  t.ok(names.length > 10 && names.every((n) => n.startsWith('nginx_canary_')), 'every metric name has the prefix');
});

t.test('counters start at 0 for every known label value, so increase() sees the first event', async (t) => {
  const text = await new Metrics(source(), { defaultMetrics: false }).registry.metrics();
  for (const service of ['gateway', 'api'])
    for (const reason of ['error_ratio', 'probe_failure_ratio', 'baseline_p95', 'crash_loop', 'operator'])
      t.equal(
        value(text, `nginx_canary_drains_total{service="${service}",reason="${reason}"}`),
        0,
        `${service} ${reason}`,
      );
  t.equal(
    value(text, 'nginx_canary_drains_total{service="gateway",reason="connect_p95"}'),
    undefined,
    'hold gates never drain',
  );
  for (const result of ['ok', 'preflight', 'test', 'reload', 'verify'])
    t.equal(value(text, `nginx_canary_reloads_total{result="${result}"}`), 0, `reloads ${result}`);
  t.equal(value(text, 'nginx_canary_rollbacks_total{reason="verify"}'), 0);
  t.equal(value(text, 'nginx_canary_rollbacks_total{reason="operator"}'), 0);
});

t.test('a service added by a weights.yaml reload gets its drain counters at 0 on the next scrape', async (t) => {
  const src = source();
  const m = new Metrics(src, { defaultMetrics: false });
  const key = 'nginx_canary_drains_total{service="search",reason="error_ratio"}';
  t.equal(value(await m.registry.metrics(), key), undefined, 'not configured yet: no series');
  src.cfg = {
    ...src.cfg,
    services: [...src.cfg.services, makeService('search', ['127.0.0.1:18793'], ['127.0.0.1:18894'])],
  };
  const text = await m.registry.metrics();
  t.equal(value(text, key), 0, 'born at 0, so increase() sees its first drain');
  t.equal(value(text, 'nginx_canary_drains_total{service="search",reason="operator"}'), 0);
  m.drains.inc({ service: 'gateway', reason: 'operator' });
  t.equal(
    value(await m.registry.metrics(), 'nginx_canary_drains_total{service="gateway",reason="operator"}'),
    1,
    'a scrape never resets a counted drain',
  );
});

t.test('gate_value / gate_threshold / gate_verdict carry every gate in base units', async (t) => {
  const src = source();
  src.g = {
    gateway: [
      { ...gate('connect_p95', 'canary', 150.5, 40), threshold: 120, verdict: 'fail' },
      { ...gate('starved', 'canary', 4, 400), threshold: 6.25, verdict: 'inconclusive' },
      { ...gate('error_ratio', 'canary', 0.0125, 40), kind: 'drain', threshold: 0.005 },
      { ...gate('crash_loop', 'canary', 2, 10), kind: 'drain', threshold: 3 },
      { ...gate('baseline_p95', 'canary', null, 0), kind: 'drain', threshold: 50 },
    ],
  };
  const text = await new Metrics(src, { defaultMetrics: false }).registry.metrics();
  const v = (gate: string): number | undefined =>
    value(text, `nginx_canary_gate_value{service="gateway",pool="canary",gate="${gate}"}`);
  const thr = (gate: string): number | undefined =>
    value(text, `nginx_canary_gate_threshold{service="gateway",pool="canary",gate="${gate}"}`);
  t.equal(v('connect_p95'), 0.1505, 'ms → s');
  t.equal(thr('connect_p95'), 0.12);
  t.equal(v('starved'), 0.04, 'share percent → ratio');
  t.equal(thr('starved'), 0.0625);
  t.equal(v('error_ratio'), 0.0125, 'a ratio stays a ratio');
  t.equal(v('crash_loop'), 2, 'a count stays a count');
  t.equal(v('baseline_p95'), undefined, 'no value → no series');
  t.equal(thr('baseline_p95'), 0.05, 'the threshold is there without a value');
  const verdict = (gate: string, kind: string, verdict: string): number | undefined =>
    value(
      text,
      `nginx_canary_gate_verdict{service="gateway",pool="canary",gate="${gate}",kind="${kind}",verdict="${verdict}"}`,
    );
  t.equal(verdict('connect_p95', 'hold', 'fail'), 1);
  t.equal(verdict('connect_p95', 'hold', 'pass'), 0);
  t.equal(verdict('starved', 'hold', 'inconclusive'), 1);
  t.equal(verdict('error_ratio', 'drain', 'pass'), 1);
});

t.test('drained, drain_gate_value and paused_seconds mirror the state; absent otherwise', async (t) => {
  const src = source();
  const drainGate = {
    ...gate('error_ratio', 'canary', 0.31, 60),
    kind: 'drain' as const,
    threshold: 0.005,
    verdict: 'fail' as const,
  };
  src.st = {
    ...src.st,
    services: {
      gateway: { ...svcState(0, 'drained'), drainReason: 'error_ratio' },
      api: { ...svcState(10, 'paused'), pausedBy: 'gate', resumePhase: 'step' },
    },
    history: [
      { at: 1, service: 'gateway', kind: 'drain', from: 15, to: 0, reason: 'x', gates: [drainGate] },
      { at: 400_000, service: 'api', kind: 'pause', from: 10, to: 10, reason: 'hold', gates: [] },
      { at: 500_000, service: 'gateway', kind: 'target', from: 0, to: 0, reason: 'unrelated', gates: [] },
    ],
  };
  const m = new Metrics(src, { defaultMetrics: false });
  let text = await m.registry.metrics();
  t.equal(value(text, 'nginx_canary_drained{service="gateway",reason="error_ratio"}'), 1);
  t.equal(value(text, 'nginx_canary_drain_gate_value{service="gateway",gate="error_ratio"}'), 0.31);
  t.equal(value(text, 'nginx_canary_drain_gate_threshold{service="gateway",gate="error_ratio"}'), 0.005);
  t.notMatch(text, /nginx_canary_drained\{service="api"/, 'a paused service is not drained');
  t.equal(
    value(text, 'nginx_canary_paused_seconds{service="api"}'),
    600,
    '(1 000 000 − 400 000) ms since the pause event',
  );
  t.notMatch(text, /nginx_canary_paused_seconds\{service="gateway"/);
  t.equal(value(text, 'nginx_canary_alert_paused_after_seconds'), 1800, 'alerts.paused_after 30 min');

  // An operator abort drains without a gate: drained{reason="operator"}, no gate value.
  src.st = { ...src.st, services: { gateway: { ...svcState(0, 'drained'), drainReason: 'operator' } }, history: [] };
  text = await m.registry.metrics();
  t.equal(value(text, 'nginx_canary_drained{service="gateway",reason="operator"}'), 1);
  t.notMatch(text, /nginx_canary_drain_gate_value\{/, 'no gate behind an operator abort');
  t.notMatch(text, /nginx_canary_drained\{service="gateway",reason="error_ratio"\}/, 'the old reason is gone');
});

t.test('soak_seconds and soak_needed_seconds follow the phase', async (t) => {
  const src = source();
  src.st = { ...src.st, services: { gateway: { ...svcState(5, 'slice'), soakedMs: 2500 } } };
  const text = await new Metrics(src, { defaultMetrics: false }).registry.metrics();
  t.equal(value(text, 'nginx_canary_soak_seconds{service="gateway"}'), 2.5);
  const svc = src.cfg.services.find((s) => s.name === 'gateway');
  t.equal(value(text, 'nginx_canary_soak_needed_seconds{service="gateway"}'), (svc?.rollout.sliceSoakMs ?? -1) / 1000);
  t.equal(value(text, 'nginx_canary_soak_needed_seconds{service="api"}'), 1, 'api idle: its step_soak 1 s');
});

t.test('old_worker_generations reads the source at scrape time; absent without one', async (t) => {
  const src = source();
  let n = 2;
  const m = new Metrics({ ...src, oldGenerations: () => Promise.resolve(n) }, { defaultMetrics: false });
  t.equal(value(await m.registry.metrics(), 'nginx_canary_old_worker_generations'), 2);
  n = 0;
  t.equal(value(await m.registry.metrics(), 'nginx_canary_old_worker_generations'), 0, 'fresh on every scrape');
  const without = await new Metrics(src, { defaultMetrics: false }).registry.metrics();
  t.notMatch(without, /nginx_canary_old_worker_generations/);
});
