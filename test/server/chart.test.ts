// The status page's weight chart (src/server/chart.ts), a pure function of a
// service's history: markers per kind, coordinates in time order, the drain
// in red, escaping of hostile text, and the bound on the work.
import t from 'tap';
import fc from 'fast-check';
import {
  CHART_CSS,
  CHART_EVENT_LIMIT,
  escapeXml,
  markerGroup,
  weightChart,
  type WeightChartInput,
} from '../../src/server/chart.js';
import type { EventKind, GateResult, RolloutEvent } from '../../src/rollout/types.js';
import { gateResult } from '../fixtures/status.js';

const T0 = 1_700_000_000_000;

const failing: GateResult = gateResult({ verdict: 'fail', value: 0.2, samples: 40, minSamples: 20 });

function ev(atS: number, kind: EventKind, from: number, to: number, reason = `${kind} happened`): RolloutEvent {
  return { at: T0 + atS * 1000, service: 'gateway', kind, from, to, reason, gates: kind === 'drain' ? [failing] : [] };
}

/** A walk with every kind of event: target, slice, 3 steps, pause, resume, drain, resume, slice, rollback, apply_failed, abort. */
const walk: RolloutEvent[] = [
  ev(0, 'target', 0, 40),
  ev(1, 'slice', 0, 5),
  ev(3, 'step', 5, 15),
  ev(5, 'pause', 15, 15),
  ev(6, 'resume', 15, 15),
  ev(8, 'step', 15, 25),
  ev(10, 'step', 25, 35),
  ev(11, 'drain', 35, 0),
  ev(13, 'resume', 0, 0),
  ev(14, 'slice', 0, 5),
  ev(16, 'rollback', 5, 15),
  ev(17, 'apply_failed', 15, 25),
  ev(18, 'abort', 15, 0),
];

interface ParsedMarker {
  classes: string[];
  kind: string;
  group: string;
  at: number;
  weight: number;
  x: number;
  y: number;
  /** Index in history order. */
  i: number;
}

const MARKER =
  /<g class="marker ([^"]*)" data-kind="([^"]*)" data-group="([^"]*)" data-at="([^"]*)" data-weight="([^"]*)" data-x="([^"]*)" data-y="([^"]*)" data-i="(\d+)"/g;

function markers(svg: string): ParsedMarker[] {
  return [...svg.matchAll(MARKER)]
    .map((m) => ({
      classes: ['marker', ...(m[1] ?? '').split(' ')],
      kind: m[2] ?? '',
      group: m[3] ?? '',
      at: Number(m[4]),
      weight: Number(m[5]),
      x: Number(m[6]),
      y: Number(m[7]),
      i: Number(m[8]),
    }))
    .sort((a, b) => a.i - b.i);
}

/** The x coordinates a path's `M x,y H x V y` commands visit, in order. */
function pathXs(svg: string, cls: string): number[] {
  const d = new RegExp(`<path class="${cls}" d="([^"]*)"`).exec(svg)?.[1] ?? '';
  const xs: number[] = [];
  for (const m of d.matchAll(/([MH])([-\d.]+)/g)) xs.push(Number(m[2]));
  return xs;
}

function chart(history: readonly RolloutEvent[], extra: Partial<WeightChartInput> = {}): string {
  return weightChart({ history, now: T0 + 20_000, weight: 0, target: 40, ...extra });
}

t.test('one marker per event, classed by kind', async (t) => {
  const svg = chart(walk);
  const ms = markers(svg);
  t.equal(ms.length, walk.length, 'a marker for every event');
  const count = (kind: string): number => ms.filter((m) => m.classes.includes(kind)).length;
  t.equal(count('step'), 3, 'three step markers');
  t.equal(count('slice'), 2);
  t.equal(count('pause'), 1);
  t.equal(count('resume'), 2);
  t.equal(count('drain'), 1, 'one drain marker');
  t.equal(count('abort'), 1);
  t.equal(count('rollback'), 1);
  t.equal(count('apply_failed'), 1);
  t.equal(count('target'), 1);
  t.equal((svg.match(/class="marker step"/g) ?? []).length, 3, 'countable by a plain class match');
  t.equal((svg.match(/<title>/g) ?? []).length, walk.length + 1 + 4, 'a tooltip per marker, the chart and 4 spans');
  t.match(svg, /^<svg class="weight-chart"[^>]* data-events="13"/);
  t.equal((svg.match(/class="drain-rule"/g) ?? []).length, 2, 'a red rule at the drain and at the abort');
  t.equal(
    (svg.match(/class="span drained"/g) ?? []).length,
    2,
    'drained from the drain to the resume, and from the abort to now',
  );
  t.equal(
    (svg.match(/class="span paused"/g) ?? []).length,
    2,
    'paused from the pause to the resume, and from the rollback to the abort',
  );

  const byKind = Object.fromEntries(ms.map((m) => [m.kind, m]));
  t.equal(byKind['apply_failed']?.weight, 15, 'a failed apply is drawn at the weight that stayed live');
  t.equal(byKind['target']?.weight, 40, 'a target change is drawn on the target line');
  t.equal(byKind['drain']?.weight, 0, 'a drain lands at 0 %');
  t.equal(byKind['rollback']?.weight, 15, 'a rollback lands at the restored weight');
});

t.test('marker groups', async (t) => {
  t.equal(markerGroup('step'), 'raise');
  t.equal(markerGroup('slice'), 'raise');
  t.equal(markerGroup('ramp'), 'raise');
  t.equal(markerGroup('pause'), 'hold');
  t.equal(markerGroup('hold'), 'hold');
  t.equal(markerGroup('drain'), 'drain');
  t.equal(markerGroup('abort'), 'drain');
  t.equal(markerGroup('rollback'), 'revert');
  t.equal(markerGroup('apply_failed'), 'revert');
  t.equal(markerGroup('complete'), 'info');
  t.equal(markerGroup('lower'), 'lower');
  t.equal(markerGroup('resume'), 'resume');
  t.equal(markerGroup('from-the-future' as EventKind), 'info', 'an unknown kind is drawn as info');
});

t.test('coordinates follow time', async (t) => {
  const svg = chart(walk);
  const ms = markers(svg).sort((a, b) => a.at - b.at);
  for (let i = 1; i < ms.length; i++) {
    const [a, b] = [ms[i - 1], ms[i]];
    t.ok(a !== undefined && b !== undefined && b.x > a.x, `${b?.kind} at ${b?.at} is right of ${a?.kind}`);
  }
  for (const cls of ['weight-line', 'target-line']) {
    const xs = pathXs(svg, cls);
    t.ok(xs.length > 2, `${cls} has segments`);
    t.ok(
      xs.every((x, i) => i === 0 || x >= (xs[i - 1] ?? 0)),
      `${cls} never goes back in time`,
    );
  }
  const ys = Object.fromEntries(markers(svg).map((m) => [`${m.kind}@${m.at}`, m.y]));
  const y = (kind: string, s: number): number => ys[`${kind}@${T0 + s * 1000}`] ?? NaN;
  t.ok(y('step', 10) < y('step', 8) && y('step', 8) < y('step', 3), 'a higher weight is drawn higher');
  t.ok(y('drain', 11) > y('step', 3), 'the drain is at the bottom');

  // A wall clock that jumped back: the events stay in history order and x never decreases.
  const jumped = [ev(0, 'slice', 0, 5), ev(10, 'step', 5, 15), ev(4, 'step', 15, 25), ev(12, 'complete', 25, 25)];
  const jx = markers(chart(jumped)).map((m) => m.x);
  t.ok(
    jx.every((x, i) => i === 0 || x >= (jx[i - 1] ?? 0)),
    `x stays monotone after a clock jump back: ${jx.join(', ')}`,
  );
  const wx = pathXs(chart(jumped), 'weight-line');
  t.ok(wx.every((x, i) => i === 0 || x >= (wx[i - 1] ?? 0)));
});

t.test('coordinates stay in the plot and in time order (property)', async (t) => {
  const kinds: EventKind[] = ['slice', 'step', 'pause', 'resume', 'drain', 'rollback', 'apply_failed', 'target'];
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(
          fc.array(
            fc.record({
              gap: fc.integer({ min: 0, max: 3_600_000 }),
              kind: fc.constantFrom(...kinds),
              from: fc.integer({ min: 0, max: 1000 }).map((v) => v / 10),
              to: fc.integer({ min: 0, max: 1000 }).map((v) => v / 10),
            }),
            { maxLength: 60 },
          ),
          fc.integer({ min: 0, max: 86_400_000 }),
          (steps, tail) => {
            let at = T0;
            const history = steps.map((s) => {
              at += s.gap;
              return { at, service: 'gateway', kind: s.kind, from: s.from, to: s.to, reason: 'r', gates: [] };
            });
            const svg = weightChart({ history, now: at + tail, weight: 10, target: 50, width: 860, height: 250 });
            const ms = markers(svg);
            if (ms.length !== history.length) return false;
            const inOrder = [...ms].sort((a, b) => a.at - b.at || a.x - b.x);
            for (let i = 1; i < inOrder.length; i++) {
              const a = inOrder[i - 1];
              const b = inOrder[i];
              if (!a || !b || b.x < a.x || (b.at > a.at + 60_000 && b.x <= a.x)) return false;
            }
            const xs = pathXs(svg, 'weight-line');
            return (
              ms.every((m) => m.x >= 46 && m.x <= 860 - 84 && m.y >= 28 && m.y <= 250 - 30) &&
              xs.every((x, i) => i === 0 || x >= (xs[i - 1] ?? 0))
            );
          },
        ),
        { seed: 4, numRuns: 300 },
      ),
    '300 random histories',
  );
});

t.test('a drain marker is red', async (t) => {
  const svg = chart(walk);
  const drain = markers(svg).find((m) => m.kind === 'drain');
  t.same(drain?.classes, ['marker', 'drain'], 'class="marker drain"');
  t.equal(drain?.group, 'drain');
  t.match(
    svg,
    /<g class="marker drain"[^>]*><title>[^<]*drain: 35 % → 0 %[^<]*\[failing: error_ratio\]<\/title><path /,
  );
  t.match(
    CHART_CSS,
    /svg\.weight-chart \.drain, svg\.weight-chart \.abort \{ fill: var\(--red, #c62828\); \}/,
    'the drain class is filled red',
  );
  t.match(CHART_CSS, /\.span\.drained \{ fill: var\(--red, #c62828\)/, 'the drained span is red');
  t.match(CHART_CSS, /\.drain-rule \{ stroke: var\(--red, #c62828\)/);
});

t.test('hostile text is escaped', async (t) => {
  const hostile = `<script>alert("x")</script> & 'q' </title><text>`;
  const svg = weightChart({
    history: [
      { ...ev(1, 'slice', 0, 5), reason: hostile },
      { ...ev(2, '"><img src=x onerror=alert(1)>' as EventKind, 5, 5), reason: hostile },
    ],
    now: T0 + 5000,
    weight: 5,
    target: 30,
    label: `</svg><script>1</script>`,
  });
  t.notMatch(svg, /<script/i, 'no script element');
  t.notMatch(svg, /<img/i, 'no injected element');
  t.notMatch(svg, /<text>/, 'no injected text element');
  t.match(svg, /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt; &amp; &#39;q&#39; &lt;\/title&gt;/);
  t.match(svg, /class="marker &quot;&gt;&lt;img src=x onerror=alert\(1\)&gt;"/, 'a hostile kind is escaped in class');
  t.match(svg, /aria-label="&lt;\/svg&gt;&lt;script&gt;1&lt;\/script&gt;"/);
  t.equal((svg.match(/<svg/g) ?? []).length, 1);
  t.equal((svg.match(/<\/svg>/g) ?? []).length, 1);
  t.equal(escapeXml(`&<>"'`), '&amp;&lt;&gt;&quot;&#39;');
});

t.test('the work is bounded', async (t) => {
  const big: RolloutEvent[] = [];
  for (let i = 0; i < 10_000; i++) big.push(ev(i, i % 2 === 0 ? 'step' : 'lower', (i % 10) * 10, ((i + 1) % 10) * 10));
  const started = performance.now();
  const svg = chart(big, { now: T0 + 10_001_000 });
  const tookMs = performance.now() - started;
  t.equal(markers(svg).length, CHART_EVENT_LIMIT, `only the newest ${CHART_EVENT_LIMIT} events are drawn`);
  t.match(svg, new RegExp(`data-events="${CHART_EVENT_LIMIT}"`));
  t.equal(svg, chart(big.slice(-CHART_EVENT_LIMIT), { now: T0 + 10_001_000 }), 'older events change nothing');
  t.ok(svg.length < 120_000, `output is ${svg.length} bytes (< 120 kB)`);
  t.ok(markers(svg)[0] !== undefined, 'markers present');
  t.comment(`10,000 events charted in ${tookMs.toFixed(1)} ms`);
});

t.test('no events: a flat line at the live weight', async (t) => {
  const svg = weightChart({ history: [], now: T0, weight: 12.5, target: 30 });
  t.equal(markers(svg).length, 0);
  t.match(svg, />no events yet</);
  t.match(svg, /data-weight="12.5"/);
  t.match(svg, />live 12.5 %</);
  t.match(svg, />target 30 %</);
  const d = /<path class="weight-line" d="M([\d.]+),([\d.]+) H([\d.]+),?/.exec(svg);
  t.ok(d, 'a weight line');
});

t.test('target and weight lines end at the live values', async (t) => {
  // The target moved 40 → 60 in weights.yaml but no tick has seen it yet; the weight is 35 after the last step.
  const svg = chart(walk.slice(0, 7), { weight: 35, target: 60 });
  t.match(svg, /<path class="target-line" d="[^"]* V[\d.]+" data-target="60"/, 'the target jumps to 60 at now');
  t.match(svg, /<path class="weight-line" d="[^"]* H[\d.]+" data-weight="35"/, 'the weight ends flat at 35');
  t.match(svg, /data-y-max="70"/, 'the y axis reaches past the target');
  t.match(svg, />60 %</);
  const full = chart(walk.slice(0, 7), { weight: 35, target: 100 });
  t.match(full, /data-y-max="100"/, 'never above 100 %');
  t.match(full, />100 %</);
});

t.test('time labels', async (t) => {
  const short = chart(walk);
  t.match(short, /<text class="axis x"[^>]*>22:13:2\d<\/text>/, 'seconds on a short span (UTC)');
  t.match(short, />now 22:13:40Z</);
  const long = weightChart({
    history: [ev(0, 'slice', 0, 5), ev(86_400 * 2, 'step', 5, 15)],
    now: T0 + 86_400_000 * 3,
    weight: 15,
    target: 30,
  });
  t.match(long, /<text class="axis x"[^>]*>11-1\d \d\d:\d\d<\/text>/, 'dates on a span of days');
  const hours = weightChart({ history: [ev(0, 'slice', 0, 5)], now: T0 + 3 * 3_600_000, weight: 5, target: 30 });
  t.match(hours, /<text class="axis x"[^>]*>\d\d:\d\d<\/text>/, 'hours and minutes on a span of hours');
  const years = weightChart({ history: [ev(0, 'slice', 0, 5)], now: T0 + 900 * 86_400_000, weight: 5, target: 30 });
  t.ok((years.match(/<text class="axis x"/g) ?? []).length <= 8, 'a span of years still gets a handful of labels');
});

t.test('deterministic and tolerant of bad numbers', async (t) => {
  t.equal(chart(walk), chart(walk), 'same input, same SVG');
  const odd = weightChart({
    history: [{ ...ev(1, 'step', 0, 150) }, { ...ev(2, 'step', 150, Number.NaN) }, { ...ev(3, 'step', 0, 5), at: NaN }],
    now: Number.NaN,
    weight: -5,
    target: 300,
  });
  t.equal(markers(odd).length, 2, 'an event without a valid time is skipped');
  t.notMatch(odd, /NaN|Infinity/, 'no NaN reaches the SVG');
  t.match(odd, /data-y-max="100"/);
});
