// The shipped Grafana dashboard (grafana/nginx-canary.json): import-ready structure (a DS_PROMETHEUS
// input every panel and query points at, unique panel ids, panels that do not overlap on the 24-column
// grid, a `service` variable), the panels README "Alerts and dashboards" lists, in their units, every PromQL expression
// parsed by Debian's promtool (as recording rules in a temporary rules file, with Grafana's variables
// substituted), and every nginx_canary_* name it uses present in the sidecar's real /metrics output.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { exportedMetricNames, promtool, referencedMetricNames } from '../fixtures/metric-names.js';
import { fleetMetricNames } from '../fixtures/fleet-metric-names.js';

const FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../grafana/nginx-canary.json');
const DS_UID = '${DS_PROMETHEUS}';

interface Datasource {
  type?: string;
  uid?: string;
}
interface Target {
  refId?: string;
  expr?: string;
  datasource?: Datasource;
}
interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: GridPos;
  datasource?: Datasource;
  targets?: Target[];
  fieldConfig?: { defaults?: { unit?: string } };
}
interface Annotation {
  name: string;
  datasource?: Datasource;
  expr?: string;
  builtIn?: number;
}
interface Dashboard {
  __inputs: { name: string; type: string; pluginId: string }[];
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  annotations: { list: Annotation[] };
  templating: {
    list: { name: string; type: string; datasource?: Datasource; definition?: string; query?: { query?: string } }[];
  };
}

async function load(): Promise<{ text: string; dash: Dashboard }> {
  const text = await readFile(FILE, 'utf8');
  return { text, dash: JSON.parse(text) as Dashboard };
}

/** Panels that query (rows only group). */
const queryPanels = (d: Dashboard): Panel[] => d.panels.filter((p) => p.type !== 'row');

/** Every PromQL expression of the dashboard with where it comes from. */
function expressions(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of queryPanels(d))
    for (const x of p.targets ?? []) out.push({ where: `panel ${p.id} "${p.title}" ${x.refId}`, expr: x.expr ?? '' });
  for (const a of d.annotations.list)
    if (a.expr !== undefined) out.push({ where: `annotation "${a.name}"`, expr: a.expr });
  return out;
}

/**
 * Grafana's variables replaced by values PromQL accepts: `$service` sits inside a regex matcher (All is
 * `.+`), `$__rate_interval` / `$__interval` / `$__range` are durations.
 */
function substitute(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '5m')
    .replaceAll('$__interval', '1m')
    .replaceAll('$__range', '1h')
    .replaceAll('$service', '.+');
}

/** A Prometheus rules file with one recording rule per expression (JSON is YAML). */
function asRules(exprs: string[]): string {
  return JSON.stringify({
    groups: [{ name: 'grafana-dashboard', rules: exprs.map((expr, i) => ({ record: `grafana:expr_${i}`, expr })) }],
  });
}

t.test('import-ready: a DS_PROMETHEUS input that every panel, query and annotation uses', async (t) => {
  const { dash } = await load();
  t.ok(dash.schemaVersion >= 36, `schemaVersion ${dash.schemaVersion}`);
  t.equal(dash.uid, 'nginx-canary');
  t.same(
    dash.__inputs.map((i) => [i.name, i.type, i.pluginId]),
    [['DS_PROMETHEUS', 'datasource', 'prometheus']],
  );
  const panels = queryPanels(dash);
  t.ok(panels.length >= 12, `${panels.length} panels`);
  for (const p of panels) {
    t.same(p.datasource, { type: 'prometheus', uid: DS_UID }, `panel ${p.id} "${p.title}": datasource`);
    t.ok((p.targets ?? []).length > 0, `panel ${p.id}: has queries`);
    const refIds = (p.targets ?? []).map((x) => x.refId);
    t.equal(new Set(refIds).size, refIds.length, `panel ${p.id}: refIds unique`);
    for (const x of p.targets ?? []) {
      t.ok(typeof x.expr === 'string' && x.expr.trim().length > 0, `panel ${p.id} ${x.refId}: expr`);
      if (x.datasource) t.equal(x.datasource.uid, DS_UID, `panel ${p.id} ${x.refId}: target datasource`);
    }
  }
  for (const a of dash.annotations.list.filter((x) => x.builtIn !== 1))
    t.same(a.datasource, { type: 'prometheus', uid: DS_UID }, `annotation ${a.name}: datasource`);
  const svc = dash.templating.list.find((v) => v.name === 'service');
  t.equal(svc?.type, 'query');
  t.equal(svc?.datasource?.uid, DS_UID, 'the service variable queries the input');
  t.equal(svc?.definition, 'label_values(nginx_canary_weight_percent, service)');
  t.equal(svc?.query?.query, 'label_values(nginx_canary_weight_percent, service)');
});

t.test('panel ids are unique and panels do not overlap on the 24-column grid', async (t) => {
  const { dash } = await load();
  const ids = dash.panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, `ids ${ids.join(', ')}`);
  for (const p of dash.panels) {
    const g = p.gridPos;
    t.ok(
      Number.isInteger(g.x) && Number.isInteger(g.y) && g.x >= 0 && g.y >= 0 && g.w > 0 && g.h > 0 && g.x + g.w <= 24,
      `panel ${p.id} "${p.title}" fits the grid: ${JSON.stringify(g)}`,
    );
  }
  const overlaps: string[] = [];
  for (let i = 0; i < dash.panels.length; i++)
    for (let j = i + 1; j < dash.panels.length; j++) {
      const a = dash.panels[i]?.gridPos;
      const b = dash.panels[j]?.gridPos;
      if (!a || !b) continue;
      if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h)
        overlaps.push(`${dash.panels[i]?.id} × ${dash.panels[j]?.id}`);
    }
  t.same(overlaps, [], 'no two panels share a grid cell');
});

t.test('the panels README "Alerts and dashboards" lists, in their units', async (t) => {
  const { dash } = await load();
  const panels = queryPanels(dash);
  const find = (title: RegExp): Panel | undefined => panels.find((p) => title.test(p.title));
  const exprsOf = (p: Panel | undefined): string => (p?.targets ?? []).map((x) => x.expr).join('\n');
  const want: [RegExp, RegExp, string | null][] = [
    [/weight vs target/i, /nginx_canary_target_weight_percent/, 'percent'],
    [/^Phase$/, /nginx_canary_phase/, null],
    [/latency gates/i, /nginx_canary_gate_threshold/, 's'],
    [/ratio gates/i, /nginx_canary_gate_threshold/, 'percentunit'],
    [/count gates/i, /crash_loop/, 'none'],
    [/gate verdicts/i, /nginx_canary_gate_verdict/, null],
    [/^Drains$/, /increase\(nginx_canary_drains_total/, null],
    [/reloads by result/i, /nginx_canary_reloads_total/, null],
    [/reload duration p95/i, /histogram_quantile\(0\.95, .*nginx_canary_reload_duration_seconds_bucket/, 's'],
    [/rollbacks/i, /nginx_canary_rollbacks_total/, null],
    [/probe latency p95/i, /histogram_quantile\(0\.95, .*phase.*nginx_canary_probe_duration_seconds_bucket/, 's'],
    [/access-log lines/i, /nginx_canary_log_lines_total/, null],
    [/sidecar cpu/i, /nginx_canary_process_cpu_seconds_total/, null],
    [/sidecar memory/i, /nginx_canary_process_resident_memory_bytes/, 'bytes'],
  ];
  for (const [title, expr, unit] of want) {
    const p = find(title);
    t.ok(p, `a panel titled ${title}`);
    t.match(exprsOf(p), expr, `${title}: queries ${expr}`);
    if (unit !== null) t.equal(p?.fieldConfig?.defaults?.unit, unit, `${title}: unit`);
  }
  t.ok(
    dash.annotations.list.some((a) => /nginx_canary_drains_total/.test(a.expr ?? '')),
    'drains are annotated on the panels',
  );
});

t.test('every PromQL expression parses (promtool check rules on them as recording rules)', async (t) => {
  const { dash } = await load();
  const all = expressions(dash);
  t.ok(all.length >= 20, `${all.length} expressions`);
  const dir = await mkdtemp(path.join(tmpdir(), 'nc-dashboard-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));

  const good = path.join(dir, 'dashboard.rules.yml');
  await writeFile(good, asRules(all.map((x) => substitute(x.expr))));
  const res = await promtool(['check', 'rules', good], dir);
  t.equal(res.code, 0, `promtool check rules on the dashboard's expressions; its output:\n${res.out}`);
  t.match(res.out, new RegExp(`SUCCESS: ${all.length} rules found`), res.out);

  // The check can fail: one unbalanced expression makes promtool reject the file.
  const bad = path.join(dir, 'broken.rules.yml');
  await writeFile(bad, asRules([substitute(all[0]?.expr ?? ''), 'rate(nginx_canary_reloads_total[5m]']));
  const neg = await promtool(['check', 'rules', bad], dir);
  t.not(neg.code, 0, `promtool rejects a broken expression; its output:\n${neg.out}`);
});

t.test("every nginx_canary_* name in the dashboard is in the sidecar's /metrics", async (t) => {
  const { text } = await load();
  const { families, text: exposition } = await exportedMetricNames();
  // The fleet metrics exist only on a fleet host (a source with a fleet view): checked against one.
  const fleet = new Set(await fleetMetricNames());
  const used = referencedMetricNames(text);
  t.ok(used.length >= 15, `the dashboard uses ${used.join(', ')}`);
  const missing = used.filter((n) => !families.has(n) && !fleet.has(n));
  t.same(
    missing,
    [],
    missing.length === 0 ? 'every name the dashboard uses is exported' : `missing from /metrics:\n${exposition}`,
  );
});

/** The panels of the row titled `title`: those after it in the list, up to the next row. */
function rowPanels(d: Dashboard, title: RegExp): Panel[] {
  const start = d.panels.findIndex((p) => p.type === 'row' && title.test(p.title));
  if (start < 0) return [];
  const next = d.panels.findIndex((p, i) => i > start && p.type === 'row');
  return d.panels.slice(start + 1, next < 0 ? undefined : next);
}

t.test('the Fleet row: its panels, in their units, query only metric names the code exports', async (t) => {
  const { dash } = await load();
  const panels = rowPanels(dash, /^Fleet\b/);
  t.ok(panels.length >= 4, `${panels.length} panels in the Fleet row`);
  const row = dash.panels.find((p) => p.type === 'row' && /^Fleet\b/.test(p.title));
  t.ok(
    panels.every((p) => p.gridPos.y > (row?.gridPos.y ?? Infinity)),
    'the Fleet row sits above its panels',
  );
  const exprsOf = (p: Panel | undefined): string => (p?.targets ?? []).map((x) => x.expr).join('\n');
  const find = (title: RegExp): Panel | undefined => panels.find((p) => title.test(p.title));
  const want: [RegExp, RegExp, string | null][] = [
    [/leader per instance/i, /max by \(instance\) \(nginx_canary_fleet_leader\)/, null],
    [/hosts live \/ stale/i, /max by \(state\) \(nginx_canary_fleet_hosts\)/, 'none'],
    [
      /desired vs live weight/i,
      /nginx_canary_fleet_desired_weight_percent[\s\S]*nginx_canary_weight_percent/,
      'percent',
    ],
    [/behind/i, /nginx_canary_fleet_behind_seconds/, 's'],
  ];
  for (const [title, expr, unit] of want) {
    const p = find(title);
    t.ok(p, `a Fleet panel titled ${title}`);
    t.match(exprsOf(p), expr, `${title}: queries ${expr}`);
    if (unit !== null) t.equal(p?.fieldConfig?.defaults?.unit, unit, `${title}: unit`);
  }

  const fleet = await fleetMetricNames();
  const { families } = await exportedMetricNames();
  for (const p of panels) {
    const used = referencedMetricNames(exprsOf(p));
    t.ok(
      used.some((n) => fleet.includes(n)),
      `panel ${p.id} "${p.title}": queries a fleet metric (${used.join(', ')})`,
    );
    t.same(
      used.filter((n) => !fleet.includes(n) && !families.has(n)),
      [],
      `panel ${p.id} "${p.title}": every metric name it uses is one the sidecar exports`,
    );
  }
  t.same(
    [...new Set(panels.flatMap((p) => referencedMetricNames(exprsOf(p))).filter((n) => fleet.includes(n)))].sort(),
    fleet,
    'the Fleet row shows every fleet metric',
  );
});
