// The shipped Prometheus alerting rules (prometheus/nginx-canary.rules.yml) on Debian's promtool
// (2.42): `promtool check rules` and the unit tests of prometheus/nginx-canary.rules.test.yml
// (`promtool test rules`: input series → expected alerts with labels and annotations). Then the
// cross-checks promtool cannot do: every nginx_canary_* name the rules use is in the sidecar's real
// /metrics output, every alert carries severity/summary/description/runbook and is tested firing and
// not firing, and the drain alert's label set is the direct push's (src/alerts/notifier.ts), so
// Alertmanager merges the two into one page.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';
import { WebhookNotifier } from '../../src/alerts/notifier.js';
import type { Page } from '../../src/rollout/types.js';
import { exportedMetricNames, promtool, referencedMetricNames } from '../fixtures/metric-names.js';
import { fleetMetricNames } from '../fixtures/fleet-metric-names.js';

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../prometheus');
const RULES = path.join(DIR, 'nginx-canary.rules.yml');
const TESTS = path.join(DIR, 'nginx-canary.rules.test.yml');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: { exp_labels?: Record<string, string>; exp_annotations?: Record<string, string> }[];
}

async function rules(): Promise<Rule[]> {
  return (await groups()).flatMap((g) => g.rules);
}

async function groups(): Promise<{ name: string; rules: Rule[] }[]> {
  const doc = parse(await readFile(RULES, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
  return doc.groups;
}

async function alertTests(): Promise<AlertTest[]> {
  const doc = parse(await readFile(TESTS, 'utf8')) as { tests: { alert_rule_test?: AlertTest[] }[] };
  return doc.tests.flatMap((x) => x.alert_rule_test ?? []);
}

t.test('promtool check rules accepts the rules file', async (t) => {
  const { code, out } = await promtool(['check', 'rules', RULES], DIR);
  t.equal(code, 0, `promtool check rules exit code; its output:\n${out}`);
  t.match(out, /SUCCESS: \d+ rules found/, `promtool check rules output:\n${out}`);
});

t.test('promtool test rules: every unit test passes', async (t) => {
  const { code, out } = await promtool(['test', 'rules', TESTS], DIR);
  t.equal(code, 0, `promtool test rules exit code; its output:\n${out}`);
  t.match(out, /SUCCESS/, `promtool test rules output:\n${out}`);
  t.notMatch(out, /FAILED/, `promtool test rules output:\n${out}`);
});

t.test('every alert has a severity, summary, description and runbook, and is tested firing and quiet', async (t) => {
  const all = await rules();
  const tests = await alertTests();
  const alerts = all.filter((r) => r.alert !== undefined);
  t.ok(alerts.length >= 6, `${alerts.length} alerts`);
  for (const r of alerts) {
    const name = r.alert ?? '';
    t.match(r.labels?.['severity'] ?? '', /^(page|ticket)$/, `${name}: severity page or ticket`);
    for (const a of ['summary', 'description', 'runbook'])
      t.ok((r.annotations?.[a] ?? '').trim().length > 0, `${name}: annotation ${a}`);
    t.match(r.annotations?.['runbook'] ?? '', /README\.md, section "Alerts"/, `${name}: runbook points at the README`);
    const mine = tests.filter((x) => x.alertname === name);
    const firing = mine.filter((x) => (x.exp_alerts ?? []).length > 0);
    t.ok(firing.length > 0, `${name}: a test expects it firing`);
    t.ok(
      mine.some((x) => (x.exp_alerts ?? []).length === 0),
      `${name}: a test expects it not firing`,
    );
    for (const x of firing)
      for (const e of x.exp_alerts ?? [])
        t.same(
          Object.keys(e.exp_annotations ?? {}).sort(),
          ['description', 'runbook', 'summary'],
          `${name} at ${x.eval_time}: the test pins every annotation`,
        );
  }
  const drained = alerts.find((r) => r.alert === 'NginxCanaryDrained');
  t.equal(drained?.labels?.['severity'], 'page');
  t.match(drained?.for ?? '0s', /^0[smh]?$/, 'a drain pages at the first evaluation that sees it');
});

t.test('the drain alert has the direct push label set, so Alertmanager merges them', async (t) => {
  const page: Page = {
    service: 'gateway',
    reason: 'error_ratio',
    summary: 'drained gateway',
    event: { at: 0, service: 'gateway', kind: 'drain', from: 5, to: 0, reason: 'r', gates: [] },
  };
  const body = WebhookNotifier.body('http://127.0.0.1:9093/api/v2/alerts', page) as {
    labels: Record<string, string>;
  }[];
  const pushed = body[0]?.labels ?? {};
  const firing = (await alertTests())
    .filter((x) => x.alertname === 'NginxCanaryDrained')
    .flatMap((x) => x.exp_alerts ?? [])
    .filter((e) => e.exp_labels?.['service'] === 'gateway' && e.exp_labels['reason'] === 'error_ratio');
  t.ok(firing.length > 0, 'the unit tests expect the gateway/error_ratio drain alert');
  for (const e of firing) t.same({ alertname: 'NginxCanaryDrained', ...e.exp_labels }, pushed);
});

t.test("every nginx_canary_* name in the rules is in the sidecar's /metrics", async (t) => {
  const { families, samples, text } = await exportedMetricNames();
  // The fleet metrics exist only on a fleet host (a source with a fleet view): checked against one.
  const fleet = new Set(await fleetMetricNames());
  const used = referencedMetricNames(await readFile(RULES, 'utf8'));
  t.ok(used.length >= 10, `the rules use ${used.join(', ')}`);
  const missing = used.filter((n) => !families.has(n) && !fleet.has(n));
  t.same(
    missing,
    [],
    missing.length === 0 ? 'every name the rules use is exported' : `missing from /metrics, which was:\n${text}`,
  );
  // The conditional gauges the pages rest on have samples when their condition holds.
  for (const n of [
    'nginx_canary_drained',
    'nginx_canary_drain_gate_value',
    'nginx_canary_drain_gate_threshold',
    'nginx_canary_paused_seconds',
    'nginx_canary_alert_paused_after_seconds',
    'nginx_canary_gate_verdict',
    'nginx_canary_process_start_time_seconds',
  ])
    t.ok(samples.has(n), `${n} has a sample with one service drained and one paused`);
});

t.test('the fleet group: its alerts, severities, and only metrics a fleet host exports', async (t) => {
  const fleetGroup = (await groups()).find((g) => g.name === 'nginx-canary-fleet');
  t.ok(fleetGroup, 'a group named nginx-canary-fleet');
  const byName = new Map((fleetGroup?.rules ?? []).map((r) => [r.alert ?? '', r]));
  t.same([...byName.keys()].sort(), [
    'NginxCanaryFleetHostCannotApply',
    'NginxCanaryFleetHostsDisagree',
    'NginxCanaryFleetNoLeader',
  ]);
  const cannot = byName.get('NginxCanaryFleetHostCannotApply');
  t.match(cannot?.expr ?? '', /nginx_canary_fleet_behind_seconds\{job="nginx-canary"\}\) > 60$/);
  t.equal(cannot?.labels?.['severity'], 'page');
  t.match(cannot?.for ?? '0m', /^0[smh]?$/, 'the 60 s deadline is in the expression');
  t.match(cannot?.annotations?.['description'] ?? '', /\$labels\.instance[\s\S]*`nginx-canary status`[\s\S]*nginx -t/);
  const none = byName.get('NginxCanaryFleetNoLeader');
  t.match(none?.expr ?? '', /sum by \(job, fleet\) \(nginx_canary_fleet_leader\{job="nginx-canary"\}\) < 1/);
  t.equal(none?.labels?.['severity'], 'page');
  t.equal(none?.for, '30s');
  const disagree = byName.get('NginxCanaryFleetHostsDisagree');
  t.match(
    disagree?.expr ?? '',
    /max by \(job, fleet\) \(nginx_canary_fleet_disagreeing_hosts\{job="nginx-canary"\}\) > 0/,
  );
  t.equal(disagree?.for, '1m');

  const fleet = await fleetMetricNames();
  const { families } = await exportedMetricNames();
  for (const r of fleetGroup?.rules ?? []) {
    const text = [r.expr, ...Object.values(r.annotations ?? {})].join('\n');
    const used = referencedMetricNames(text);
    t.ok(used.length > 0, `${r.alert ?? ''}: uses metrics`);
    t.same(
      used.filter((n) => !fleet.includes(n)),
      [],
      `${r.alert ?? ''}: every metric it uses is a fleet metric a fleet host exports`,
    );
    t.same(
      referencedMetricNames(r.expr).filter((n) => families.has(n)),
      [],
      `${r.alert ?? ''}: its expression uses no single-host metric, so a single-host sidecar never fires it`,
    );
  }
});
