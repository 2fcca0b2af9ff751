// The status page's view model (src/server/page.ts), pure: headings, gate
// rows with what passes, event rows with the numbers behind them, drain
// notes, snapshots, ages — and the template rendering it with everything escaped.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import ejs from 'ejs';
import { CHART_CSS } from '../../src/server/chart.js';
import {
  PAGE_EVENTS_PER_SERVICE,
  PAGE_SNAPSHOTS,
  buildStatusPage,
  clockTime,
  formatAge,
  type StatusPageInput,
} from '../../src/server/page.js';
import type { ServiceStatus, StatusDocument } from '../../src/runner.js';
import type { GateResult, RolloutEvent } from '../../src/rollout/types.js';
import type { SnapshotInfo } from '../../src/nginx/types.js';
import { repoRoot } from '../fixtures/stack.js';
import { gateResult as gate, serviceStatus } from '../fixtures/status.js';

const NOW = 1_700_000_100_000;

const gates: GateResult[] = [
  gate({ gate: 'ready', kind: 'hold', value: 1, threshold: 1, samples: 1, minSamples: 1 }),
  gate({ gate: 'connect_p95', kind: 'hold', value: 3.5, threshold: 120 }),
  gate({ gate: 'starved', kind: 'hold', value: 14, threshold: 7.5 }),
  gate({ gate: 'error_ratio', verdict: 'fail', value: 0.25, samples: 40 }),
  gate({ gate: 'probe_failure_ratio', verdict: 'inconclusive', value: null, threshold: 0.05, samples: 3 }),
  gate({ gate: 'baseline_p95', value: 20, threshold: 50 }),
  gate({ gate: 'crash_loop', value: 0, threshold: 3, minSamples: 0 }),
];

function svc(over: Partial<ServiceStatus> = {}): ServiceStatus {
  return serviceStatus({
    weight: 0,
    phase: 'drained',
    drainReason: 'error_ratio',
    since: NOW - 5000,
    soakNeededMs: 900_000,
    summary: 'drained gateway from 15 % to 0 %',
    gates,
    ...over,
  });
}

function ev(agoS: number, kind: RolloutEvent['kind'], from: number, to: number, g: GateResult[] = []): RolloutEvent {
  return { at: NOW - agoS * 1000, service: 'gateway', kind, from, to, reason: `${kind} <b>why</b>`, gates: g };
}

const history: RolloutEvent[] = [
  ev(90, 'target', 0, 30),
  ev(80, 'slice', 0, 5, gates.slice(0, 3)),
  ev(50, 'step', 5, 15, gates.slice(0, 3)),
  ev(30, 'apply_failed', 15, 25, gates.slice(0, 3)),
  ev(5, 'drain', 15, 0, gates),
  { ...ev(4, 'step', 0, 5), service: 'other' },
];

function doc(services: ServiceStatus[] = [svc()], h: RolloutEvent[] = history): StatusDocument {
  return { generation: 7, lastReloadAt: NOW - 5000, services, history: h };
}

const snap = (n: number): SnapshotInfo => ({
  id: `s-g${n}`,
  file: `/x/s-g${n}.tar.gz`,
  at: NOW - n * 1000,
  generation: n,
  weights: { gateway: n },
  reason: `<i>reason ${n}</i>`,
});

function build(over: Partial<StatusPageInput> = {}): ReturnType<typeof buildStatusPage> {
  return buildStatusPage({ status: doc(), snapshots: [snap(7), snap(6)], now: NOW, refreshSeconds: 5, ...over });
}

t.test('ages and clock times', async (t) => {
  t.equal(formatAge(NOW - 400, NOW), 'just now');
  t.equal(formatAge(NOW - 12_500, NOW), '12 s ago');
  t.equal(formatAge(NOW - 4 * 60_000 - 1, NOW), '4 min ago');
  t.equal(formatAge(NOW - 3 * 3_600_000, NOW), '3 h ago');
  t.equal(formatAge(NOW - 2 * 86_400_000, NOW), '2 d ago');
  t.equal(formatAge(NOW + 5000, NOW), 'in 5 s', 'a time after now (clock skew)');
  t.equal(formatAge(Number.NaN, NOW), '—');
  t.equal(clockTime(Date.UTC(2026, 0, 2, 3, 4, 5)), '03:04:05');
  t.equal(clockTime(Number.NaN), '—');
});

t.test('a drained service', async (t) => {
  const page = build();
  t.equal(page.generation, 7);
  t.equal(page.alert, 'DRAINED: gateway');
  t.equal(page.lastReload, `${clockTime(NOW - 5000)} UTC (5 s ago)`);
  const s = page.services[0];
  t.equal(s?.heading, 'gateway: 0 % of 30 % (drained)');
  t.equal(s?.drained, true);
  t.match(
    s?.drainNote,
    /^Drained by the error_ratio gate: canary at 0 %; set a new target or run `nginx-canary resume gateway`/,
  );
  t.equal(s?.soak, null, 'no soak while drained');
  t.same(s?.verdicts, { pass: 5, fail: 1, inconclusive: 1 });
  t.same(
    s?.gates.map((g) => g.threshold),
    ['= 200', '≤ 120 ms', '≥ 7.5 %', '≤ 0.50 %', '≤ 5.00 %', '≤ 50 ms', '< 3'],
    'what passes, per gate, in its unit',
  );
  t.same(
    s?.gates.map((g) => g.value),
    ['200', '3.50 ms', '14.0 %', '25.00 %', '—', '20 ms', '0'],
  );
  t.equal(s?.gates[3]?.samples, '40 / 200');
  t.match(s?.gates[3]?.describe, /^error_ratio fail: canary 5xx ratio 25\.00 % > 0\.50 % over 40 requests/);
  t.equal(s?.eventTotal, 5, 'only this service’s events');
  t.same(
    s?.events.map((e) => e.kind),
    ['drain', 'apply_failed', 'step', 'slice', 'target'],
    'newest first',
  );
  const [drain, failed, step, , target] = s?.events ?? [];
  t.equal(drain?.change, '15 % → 0 %');
  t.equal(drain?.age, '5 s ago');
  t.same(
    drain?.notPassing.map((g) => g.verdict),
    ['fail', 'inconclusive'],
    'failures first, then inconclusive',
  );
  t.equal(drain?.passing.length, 5);
  t.equal(drain?.gateCount, 7);
  t.equal(failed?.change, '15 % → 25 % (not applied)');
  t.equal(step?.change, '5 % → 15 %');
  t.equal(target?.change, 'target 0 % → 30 %');
  t.equal(target?.gateCount, 0);
  t.match(s?.chart, /^<svg class="weight-chart"/);
  t.match(s?.chart, /class="marker drain"/);
  t.equal(page.snapshots.length, 2);
  t.same(page.snapshots[0], {
    id: 's-g7',
    time: clockTime(NOW - 7000),
    iso: new Date(NOW - 7000).toISOString(),
    age: '7 s ago',
    generation: 7,
    weights: 'gateway 7 %',
    reason: '<i>reason 7</i>',
    live: true,
  });
  t.equal(page.snapshots[1]?.live, false);
  t.equal(page.snapshotError, null);
});

t.test('walking, paused, operator drain, ramp', async (t) => {
  const page = build({
    status: doc(
      [
        svc({ name: 'a', phase: 'step', weight: 15, drainReason: null, soakedMs: 450_000 }),
        svc({ name: 'b', phase: 'paused', pausedBy: 'operator', weight: 5, drainReason: null }),
        svc({ name: 'c', phase: 'drained', drainReason: 'operator' }),
        svc({
          name: 'd',
          phase: 'slice',
          weight: 2.5,
          drainReason: null,
          ramp: { to: 5, step: 1, steps: 2, startedAt: NOW, cause: 'slice' },
          soakNeededMs: 0,
        }),
        svc({ name: 'e', phase: 'idle', since: 0, gates: [] }),
        svc({ name: 'f', phase: 'complete', weight: 30, drainReason: null, soakedMs: 14_400, soakNeededMs: 5000 }),
        svc({
          name: 'g',
          phase: 'paused',
          pausedBy: 'gate',
          weight: 30,
          drainReason: null,
          soakedMs: 14_400,
          soakNeededMs: 5000,
        }),
      ],
      [],
    ),
  });
  const [a, b, c, d, e, f, g] = page.services;
  t.equal(a?.soak, '7m 30s of 15m 0s');
  t.equal(a?.soakPct, 50);
  t.equal(a?.drainNote, null);
  t.equal(b?.pausedBy, 'operator');
  t.equal(b?.soak, '0.0 s of 15m 0s', 'a paused walk above 0 shows its soak');
  t.match(c?.drainNote, /^Drained by the operator \(abort\)/);
  t.equal(d?.ramp, 'sub-step 1 of 2 toward 5 % (slice)');
  t.equal(d?.heading, 'd: 2.5 % of 30 % (slice)');
  t.equal(d?.soakPct, 100);
  t.equal(e?.since, '—');
  t.equal(e?.soak, null);
  t.equal(f?.soak, null, 'complete: no soak (not "14.4 s of 5.0 s")');
  t.equal(g?.soak, null, 'paused at the target: no soak');
  t.equal(page.alert, 'DRAINED: c');
});

t.test('bounds, no snapshots, no reload, snapshot errors', async (t) => {
  const many: RolloutEvent[] = [];
  for (let i = 0; i < 300; i++) many.push(ev(300 - i, i % 2 ? 'step' : 'lower', 5, 15));
  const snaps = Array.from({ length: 40 }, (_, i) => snap(40 - i));
  const page = build({ status: { ...doc([svc()], many), lastReloadAt: 0 }, snapshots: snaps, refreshSeconds: null });
  t.equal(page.services[0]?.events.length, PAGE_EVENTS_PER_SERVICE);
  t.equal(page.services[0]?.eventTotal, 300);
  t.match(page.services[0]?.chart, /data-events="200"/);
  t.equal(page.snapshots.length, PAGE_SNAPSHOTS);
  t.equal(page.snapshotTotal, 40);
  t.equal(page.lastReload, 'never');
  t.equal(page.refreshSeconds, null);
  const broken = build({ snapshots: new Error('EACCES: permission denied') });
  t.same(broken.snapshots, []);
  t.equal(broken.snapshotError, 'EACCES: permission denied');
  const none = build({ snapshots: [{ ...snap(1), weights: {} }] });
  t.equal(none.snapshots[0]?.weights, '—');
});

t.test('the template renders the model, escaped', async (t) => {
  const file = path.join(repoRoot, 'templates', 'status.html.ejs');
  const render = ejs.compile(await readFile(file, 'utf8'), { filename: file });
  const html = render({ page: build(), chartCss: CHART_CSS });
  t.match(html, /<meta http-equiv="refresh" content="5">/);
  t.match(html, /<title>DRAINED: gateway · nginx-canary<\/title>/);
  t.match(html, /<h2 class="drained phase-drained">gateway: 0 % of 30 % \(drained\)<\/h2>/);
  t.match(html, /Generation 7\./);
  t.match(html, /<td>drain<\/td>/);
  t.match(html, /<td>ready pass: canary \/ready answered 200 on every server<\/td>/);
  t.notMatch(html, /<b>why<\/b>|<i>reason/, 'reasons are escaped');
  t.match(html, /drain &lt;b&gt;why&lt;\/b&gt;/);
  t.match(html, /&lt;i&gt;reason 7&lt;\/i&gt;/);
  t.notMatch(html, /<script/i, 'no script');
  t.match(html, /<svg class="weight-chart"/, 'the chart inline');
  t.match(html, /svg\.weight-chart \.drain, svg\.weight-chart \.abort \{ fill: var\(--red/);
  const off = render({ page: build({ refreshSeconds: null, snapshots: new Error('<x>') }), chartCss: CHART_CSS });
  t.notMatch(off, /http-equiv="refresh"/);
  t.match(off, /not refreshing/);
  t.match(off, /Snapshots could not be listed: &lt;x&gt;/);
  const empty = render({
    page: build({ status: doc([svc({ phase: 'idle', gates: [], drainReason: null })], []), snapshots: [] }),
    chartCss: CHART_CSS,
  });
  t.match(empty, /No tick has judged this service yet\./);
  t.match(empty, /No events yet\./);
  t.match(empty, /No snapshots yet/);
  t.notMatch(empty, /class="alert"/);
});
