// The Prometheus registry (src/server/metrics.ts) on a plain-object MetricsSource:
// gauges mirror the source at scrape time, in base units; counters move on inc().
import t from 'tap';
import { Metrics, type MetricsSource } from '../../src/server/metrics.js';
import { PHASES, type GateResult, type Phase, type ServiceState, type State } from '../../src/rollout/types.js';
import type { Config } from '../../src/config/types.js';
import { makeConfig, makeService } from '../fixtures/nginx/config.js';

function svcState(weight: number, phase: Phase): ServiceState {
  return {
    weight,
    phase,
    resumePhase: null,
    pausedBy: null,
    target: 50,
    since: 0,
    soakedMs: 0,
    lastTickAt: 0,
    drainReason: null,
  };
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
        rollout: { target: 20, slice: 5, sliceSoakMs: 1000, step: 5, stepSoakMs: 1000 },
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
  t.notMatch(text, /service="api"/, 'a service removed from the config has no series left');
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
  t.equal(value(text, 'nginx_canary_drains_total{service="gateway",reason="error_ratio"}'), undefined, 'no drain yet');
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
  t.equal(
    value(await b.registry.metrics(), 'nginx_canary_reloads_total{result="ok"}'),
    undefined,
    'b did not see a’s counter',
  );
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
