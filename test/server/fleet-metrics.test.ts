// The fleet gauges of the Prometheus registry (src/server/metrics.ts): absent without a fleet source
// (single-host /metrics unchanged), registered without samples while the fleet view is null, and
// mirroring the view at scrape time in base units (percent, seconds, 1/0) otherwise; `promtool check
// metrics` finds nothing to lint in them.
import { spawn } from 'node:child_process';
import t from 'tap';
import { Metrics, type FleetMetricsView, type MetricsSource } from '../../src/server/metrics.js';
import { fakeSource, PROMTOOL } from '../fixtures/metric-names.js';
import { fleetMetricNames, leaderView } from '../fixtures/fleet-metric-names.js';

/** Every fleet metric name the sidecar exports. */
const FLEET_NAMES = [
  'nginx_canary_fleet_leader',
  'nginx_canary_fleet_hosts',
  'nginx_canary_fleet_desired_weight_percent',
  'nginx_canary_fleet_behind_seconds',
  'nginx_canary_fleet_disagreeing_hosts',
  'nginx_canary_fleet_etcd_up',
];

/** The sample lines of `text` (no comments) whose name starts with nginx_canary_fleet_. */
function fleetSamples(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('nginx_canary_fleet_'));
}

t.test('no fleet in the source: no fleet metric at all, the rest unchanged', async (t) => {
  const plain = await new Metrics(fakeSource(), { defaultMetrics: false }).registry.metrics();
  t.notMatch(plain, /nginx_canary_fleet_/);
  const withNull = await new Metrics(
    { ...fakeSource(), fleet: () => null },
    { defaultMetrics: false },
  ).registry.metrics();
  const withView = await new Metrics(
    { ...fakeSource(), fleet: leaderView },
    { defaultMetrics: false },
  ).registry.metrics();
  const strip = (text: string) =>
    text
      .split('\n')
      .filter((l) => l !== '' && !/^(# (HELP|TYPE) )?nginx_canary_fleet_/.test(l))
      .join('\n');
  t.equal(strip(withView), strip(plain), 'a fleet source adds the fleet metrics and nothing else');
  t.equal(strip(withNull), strip(plain));
});

t.test('fleetMetricNames (what the rules and dashboard tests check against) lists every fleet metric', async (t) => {
  t.same(await fleetMetricNames(), [...FLEET_NAMES].sort());
});

t.test('a fleet view: every series in its unit', async (t) => {
  const text = await new Metrics({ ...fakeSource(), fleet: leaderView }, { defaultMetrics: false }).registry.metrics();
  t.same(fleetSamples(text).sort(), [
    'nginx_canary_fleet_behind_seconds 12.5',
    'nginx_canary_fleet_desired_weight_percent{service="api"} 0',
    'nginx_canary_fleet_desired_weight_percent{service="gateway"} 20',
    'nginx_canary_fleet_disagreeing_hosts 1',
    'nginx_canary_fleet_etcd_up 1',
    'nginx_canary_fleet_hosts{state="live"} 3',
    'nginx_canary_fleet_hosts{state="stale"} 1',
    'nginx_canary_fleet_leader 1',
  ]);
  for (const name of FLEET_NAMES) {
    t.match(text, new RegExp(`^# TYPE ${name} gauge$`, 'm'), `${name} is a gauge`);
    const help = new RegExp(`^# HELP ${name} (.*)$`, 'm').exec(text)?.[1] ?? '';
    t.match(help, /^Fleet mode/, `${name}: HELP says it is about fleet mode`);
    t.ok(help.length > 80, `${name}: HELP says what it means and what to do`);
  }
});

t.test('the gauges read the view at every scrape', async (t) => {
  let view: FleetMetricsView | null = leaderView();
  const source: MetricsSource = { ...fakeSource(), fleet: () => view };
  const m = new Metrics(source, { defaultMetrics: false });
  t.equal(fleetSamples(await m.registry.metrics()).length, 8);

  view = {
    leader: false,
    hosts: { live: 2, stale: 0 },
    desired: { gateway: 30 },
    behindSeconds: 0,
    disagreeingHosts: 0,
    etcdUp: false,
  };
  t.same(fleetSamples(await m.registry.metrics()).sort(), [
    'nginx_canary_fleet_behind_seconds 0',
    'nginx_canary_fleet_desired_weight_percent{service="gateway"} 30',
    'nginx_canary_fleet_disagreeing_hosts 0',
    'nginx_canary_fleet_etcd_up 0',
    'nginx_canary_fleet_hosts{state="live"} 2',
    'nginx_canary_fleet_hosts{state="stale"} 0',
    'nginx_canary_fleet_leader 0',
  ]);

  view = null;
  const text = await m.registry.metrics();
  t.same(fleetSamples(text), [], 'a null view: no sample, not even 0 for the label-less gauges');
  for (const name of FLEET_NAMES) t.match(text, new RegExp(`^# TYPE ${name} gauge$`, 'm'), `${name} stays registered`);

  view = leaderView();
  t.equal(fleetSamples(await m.registry.metrics()).length, 8, 'back with the view');
});

t.test('promtool check metrics: the fleet metrics lint clean', async (t) => {
  const text = await new Metrics({ ...fakeSource(), fleet: leaderView }, { defaultMetrics: false }).registry.metrics();
  const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end(text);
  });
  t.equal(code, 0, `promtool printed:\n${out}`);
  t.equal(out.trim(), '');
});
