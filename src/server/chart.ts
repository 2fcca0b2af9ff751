/**
 * The status page's weight-over-time chart (README "HTTP API", the status page): one service's
 * event history drawn as an inline SVG string. Pure: no clock, no I/O; `now`
 * is a parameter.
 *
 * What it draws, left to right over `[first shown event, now]`:
 * - the live canary weight as a step line (class `weight-line`, filled below
 *   by `weight-area`), rebuilt from the events: every event but `target` and
 *   `apply_failed` leaves the weight at its `to`;
 * - the target as a dashed step line (class `target-line`), rebuilt backwards
 *   from the current target through the `target` events;
 * - shaded spans while the walk was drained (`span drained`, red) or paused
 *   (`span paused`, amber), and a red vertical rule at every drain;
 * - one marker per event (`<g class="marker <kind>">` with `data-kind`,
 *   `data-group`, `data-at`, `data-weight` (percent), `data-x`, `data-y`,
 *   `data-i` (index in history order; markers are painted drains last) and
 *   a `<title>` tooltip saying what happened and why);
 * - axes: weight in % on the left, UTC time below, `now` at the right edge.
 *
 * Every text that reaches the SVG (reasons, kinds, numbers, times) goes
 * through {@link escapeXml}, so the string is safe to put into HTML raw.
 * Colours live in {@link CHART_CSS}, keyed by the same classes.
 */
import type { EventKind, RolloutEvent } from '../rollout/types.js';

/**
 * How many of a service's newest events the chart draws (a chosen bound on
 * the page's size and render time, not a runbook number: 200 markers still read
 * on a 900 px wide chart; state.json keeps 500 events of all services).
 */
export const CHART_EVENT_LIMIT = 200;

/** Shortest time span the x axis shows, ms (a chosen floor so a fresh walk is not drawn over a few ms). */
export const CHART_MIN_SPAN_MS = 10_000;

/**
 * How a marker looks, by event kind:
 * - `raise`: slice, step, ramp (the walk moved up);
 * - `lower`: lower (the target dropped below the weight);
 * - `hold`: pause, hold (a hold gate or the operator stopped the walk);
 * - `resume`: resume;
 * - `drain`: drain, abort (canary to 0; red);
 * - `revert`: rollback, apply_failed (the config went back, or a change did not apply);
 * - `info`: complete, target, promote;
 * - `release` (a new canary build: weight to 0) is drawn as `lower`.
 */
export type MarkerGroup = 'raise' | 'lower' | 'hold' | 'resume' | 'drain' | 'revert' | 'info';

const GROUP: Record<EventKind, MarkerGroup> = {
  slice: 'raise',
  step: 'raise',
  ramp: 'raise',
  lower: 'lower',
  pause: 'hold',
  hold: 'hold',
  resume: 'resume',
  drain: 'drain',
  abort: 'drain',
  rollback: 'revert',
  apply_failed: 'revert',
  complete: 'info',
  target: 'info',
  release: 'lower',
  promote: 'info',
};

/** Drawing order: later groups are painted on top (a drain is never hidden under a `complete`). */
const PAINT_ORDER: readonly MarkerGroup[] = ['info', 'resume', 'lower', 'raise', 'hold', 'revert', 'drain'];

/** The marker group of an event kind (see {@link MarkerGroup}); unknown kinds (a newer state.json) are `info`. */
export function markerGroup(kind: EventKind): MarkerGroup {
  return Object.hasOwn(GROUP, kind) ? GROUP[kind] : 'info';
}

/** Escapes `& < > " '` for XML/HTML text and attribute values. Never throws. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;',
  );
}

/** Input of {@link weightChart}. */
export interface WeightChartInput {
  /**
   * One service's events, oldest first (state.json order). Only the newest
   * {@link CHART_EVENT_LIMIT} are drawn; events with a non-finite `at` are skipped.
   */
  history: readonly RolloutEvent[];
  /** The right edge of the chart, epoch ms (the injected clock's reading). */
  now: number;
  /** The live canary weight now, percent 0–100. */
  weight: number;
  /** The target now (weights.yaml), percent 0–100. */
  target: number;
  /** Width of the viewBox, px (default 860). The SVG scales to its container. */
  width?: number;
  /** Height of the viewBox, px (default 250). */
  height?: number;
  /** The accessible name of the chart (default `canary weight over time`). */
  label?: string;
}

/** Percent with at most one decimal, e.g. `15 %`, `2.5 %`; `? %` for a non-finite number. */
function pct(w: number): string {
  return Number.isFinite(w) ? `${Math.round(w * 10) / 10} %` : '? %';
}

/** A coordinate with one decimal (keeps the string short and stable). */
function c(v: number): string {
  return String(Math.round(v * 10) / 10);
}

/** Clamps a weight to 0–100; NaN reads as 0. */
function clampWeight(w: number): number {
  return Number.isFinite(w) ? Math.min(100, Math.max(0, w)) : 0;
}

/** `HH:MM:SS` of an epoch ms in UTC. */
function hms(at: number): string {
  return new Date(at).toISOString().slice(11, 19);
}

/** Tick spacings the time axis chooses from, ms (1 s … 7 d). */
const TIME_STEPS_MS: readonly number[] = [
  1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
].map((s) => s * 1000);

/** The axis label of a time tick: `HH:MM:SS` under a minute's spacing, `HH:MM` under a day's span, else `MM-DD HH:MM` (UTC). */
function timeLabel(at: number, stepMs: number, spanMs: number): string {
  const iso = new Date(at).toISOString();
  if (spanMs >= 86_400_000) return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  return stepMs < 60_000 ? iso.slice(11, 19) : iso.slice(11, 16);
}

/** The largest y value shown: the highest weight or target plus 5 points, rounded up to 10 (at least 10), 100 above 80. */
function yMaxOf(values: readonly number[]): number {
  const top = Math.max(0, ...values);
  const max = Math.max(10, Math.ceil((top + 5) / 10) * 10);
  return max > 80 ? 100 : max;
}

/** One line of a tooltip: when, what, weight change and why. */
function tooltip(e: RolloutEvent): string {
  const move =
    e.kind === 'target'
      ? `target ${pct(e.from)} → ${pct(e.to)}`
      : e.kind === 'apply_failed'
        ? `${pct(e.from)} → ${pct(e.to)} not applied`
        : `${pct(e.from)} → ${pct(e.to)}`;
  const failing = e.gates.filter((g) => g.verdict === 'fail').map((g) => g.gate);
  const gates = failing.length > 0 ? ` [failing: ${failing.join(', ')}]` : '';
  return `${hms(e.at)}Z ${e.kind}: ${move}. ${e.reason}${gates}`;
}

/** The shape of a marker of a group, centred on 0,0. */
function shape(group: MarkerGroup, kind: EventKind): string {
  switch (group) {
    case 'raise':
      return `<circle r="${kind === 'ramp' ? 3 : 4.5}"/>`;
    case 'lower':
      return '<circle r="4" class="hollow"/>';
    case 'hold':
      return '<rect x="-4" y="-4" width="8" height="8"/>';
    case 'resume':
      return '<path d="M-3.5,-4.5 L4.5,0 L-3.5,4.5 Z"/>';
    case 'drain':
      return '<path d="M-6,-6 L6,-6 L0,5 Z"/>';
    case 'revert':
      return kind === 'apply_failed'
        ? '<path d="M-4,-4 L4,4 M-4,4 L4,-4" class="cross"/>'
        : '<path d="M0,-5.5 L5.5,0 L0,5.5 L-5.5,0 Z"/>';
    case 'info':
      return '<circle r="2.5"/>';
  }
}

/** One marker to draw. */
interface Marker {
  e: RolloutEvent;
  /** Index among the shown events (history order). */
  i: number;
  group: MarkerGroup;
  x: number;
  y: number;
  weight: number;
}

/**
 * Renders one service's weight over time as an SVG string (see the module
 * comment for what it draws and the classes tests can count). Deterministic
 * for a given input; never throws; the output size is bounded by
 * {@link CHART_EVENT_LIMIT} markers (about 200 bytes plus the reason each).
 */
export function weightChart(input: WeightChartInput): string {
  const W = input.width ?? 860;
  const H = input.height ?? 250;
  const m = { left: 46, right: 84, top: 28, bottom: 30 };
  const plotW = W - m.left - m.right;
  const plotH = H - m.top - m.bottom;
  const events = input.history.filter((e) => Number.isFinite(e.at)).slice(-CHART_EVENT_LIMIT);
  const weightNow = clampWeight(input.weight);
  const targetNow = clampWeight(input.target);
  const now = Number.isFinite(input.now) ? input.now : Math.max(0, ...events.map((e) => e.at));

  // Time range: the first shown event to now (later if an event is stamped after now), at least the minimum span.
  const firstAt = events.length > 0 ? Math.min(...events.map((e) => e.at)) : now - 60_000;
  const t1 = Math.max(now, ...events.map((e) => e.at));
  const span = Math.max(t1 - firstAt, CHART_MIN_SPAN_MS);
  const t0 = t1 - span - span * 0.02; // 2 % room so the first marker clears the axis
  const xOf = (at: number): number => m.left + ((at - t0) / (t1 - t0)) * plotW;

  // Rebuild the weight and target as they were before the first shown event.
  const firstMove = events.find((e) => e.kind !== 'target');
  let weight = clampWeight(firstMove ? firstMove.from : weightNow);
  let target = targetNow;
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e?.kind === 'target') target = clampWeight(e.from);
  }
  const values = [weightNow, targetNow, weight, target];
  for (const e of events) values.push(clampWeight(e.from), clampWeight(e.to));
  const yMax = yMaxOf(values);
  const yOf = (w: number): number => m.top + plotH - (clampWeight(w) / yMax) * plotH;

  // Walk the events once: the step lines, the spans and the markers (x never goes back, even after a clock jump).
  const xStart = xOf(firstAt);
  let x = xStart;
  let weightD = `M${c(m.left)},${c(yOf(weight))} H${c(x)}`;
  let targetD = `M${c(m.left)},${c(yOf(target))} H${c(x)}`;
  const markers: Marker[] = [];
  const spans: { cls: 'drained' | 'paused'; from: number; to: number }[] = [];
  let drainedFrom: number | null = null;
  let pausedFrom: number | null = null;
  const rules: number[] = [];
  for (const e of events) {
    x = Math.max(x, xOf(e.at));
    const group = markerGroup(e.kind);
    if (e.kind === 'target') {
      target = clampWeight(e.to);
      targetD += ` H${c(x)} V${c(yOf(target))}`;
    } else if (e.kind !== 'apply_failed') {
      const to = clampWeight(e.to);
      if (to !== weight) weightD += ` H${c(x)} V${c(yOf(to))}`;
      weight = to;
    }
    // Spans: drained from a drain/abort until the walk restarts; paused from a pause/rollback until it moves on.
    if (group === 'drain') {
      if (pausedFrom !== null) spans.push({ cls: 'paused', from: pausedFrom, to: x });
      pausedFrom = null;
      drainedFrom ??= x;
      rules.push(x);
    } else if (drainedFrom !== null && ['resume', 'target', 'slice', 'rollback'].includes(e.kind)) {
      spans.push({ cls: 'drained', from: drainedFrom, to: x });
      drainedFrom = null;
    }
    if (e.kind === 'pause' || e.kind === 'rollback') pausedFrom ??= x;
    else if (pausedFrom !== null && ['resume', 'step', 'slice', 'lower'].includes(e.kind)) {
      spans.push({ cls: 'paused', from: pausedFrom, to: x });
      pausedFrom = null;
    }
    const shown = e.kind === 'target' ? target : e.kind === 'apply_failed' ? weight : clampWeight(e.to);
    markers.push({ e, i: markers.length, group, x, y: yOf(shown), weight: shown });
  }
  const xEnd = xOf(t1);
  weightD += ` H${c(xEnd)}`;
  if (weightNow !== weight) weightD += ` V${c(yOf(weightNow))}`;
  targetD += ` H${c(xEnd)}`;
  if (targetNow !== target) targetD += ` V${c(yOf(targetNow))}`;
  if (drainedFrom !== null) spans.push({ cls: 'drained', from: drainedFrom, to: xEnd });
  if (pausedFrom !== null) spans.push({ cls: 'paused', from: pausedFrom, to: xEnd });
  const baseY = yOf(0);
  const areaD = `${weightD} V${c(baseY)} H${c(m.left)} Z`;

  // The two end labels, pushed apart (target above) when closer than a line of text.
  const labelY = { target: yOf(targetNow), weight: yOf(weightNow) };
  if (Math.abs(labelY.target - labelY.weight) < 13) {
    const mid = (labelY.target + labelY.weight) / 2;
    const up = targetNow >= weightNow ? -1 : 1;
    labelY.target = mid + up * 6.5;
    labelY.weight = mid - up * 6.5;
  }

  const out: string[] = [];
  const label = escapeXml(input.label ?? 'canary weight over time');
  out.push(
    `<svg class="weight-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="${label}" data-events="${events.length}" data-y-max="${yMax}">`,
    `<title>${label}</title>`,
  );
  // Axes and grid.
  const yStep = yMax === 100 ? 25 : yMax <= 20 ? 5 : 10;
  for (let v = 0; v <= yMax; v += yStep) {
    const y = c(yOf(v));
    out.push(
      `<line class="grid" x1="${m.left}" y1="${y}" x2="${c(xEnd)}" y2="${y}"/>`,
      `<text class="axis y" x="${m.left - 6}" y="${y}" dy="0.32em" text-anchor="end">${escapeXml(pct(v))}</text>`,
    );
  }
  const stepMs = TIME_STEPS_MS.find((s) => span / s <= 6) ?? Math.ceil(span / 5 / 86_400_000) * 86_400_000;
  for (let at = Math.ceil(t0 / stepMs) * stepMs, n = 0; at <= t1 && n < 20; at += stepMs, n++) {
    const tx = xOf(at);
    if (tx < m.left + 20 || tx > xEnd - 80) continue; // keep clear of the y labels and of "now"
    out.push(
      `<line class="tick" x1="${c(tx)}" y1="${c(baseY)}" x2="${c(tx)}" y2="${c(baseY + 4)}"/>`,
      `<text class="axis x" x="${c(tx)}" y="${c(baseY + 17)}" text-anchor="middle">${escapeXml(timeLabel(at, stepMs, span))}</text>`,
    );
  }
  out.push(
    `<line class="axis-line" x1="${m.left}" y1="${c(baseY)}" x2="${c(xEnd)}" y2="${c(baseY)}"/>`,
    `<line class="now-line" x1="${c(xEnd)}" y1="${m.top}" x2="${c(xEnd)}" y2="${c(baseY)}"/>`,
    `<text class="axis x now" x="${c(xEnd)}" y="${c(baseY + 17)}" text-anchor="middle">${escapeXml(`now ${hms(t1)}Z`)}</text>`,
  );
  // Spans under everything else.
  for (const s of spans) {
    const w = Math.max(s.to - s.from, 1.5);
    out.push(
      `<rect class="span ${s.cls}" x="${c(s.from)}" y="${m.top}" width="${c(w)}" height="${c(plotH)}"><title>${s.cls}</title></rect>`,
    );
  }
  for (const rx of rules)
    out.push(`<line class="drain-rule" x1="${c(rx)}" y1="${m.top}" x2="${c(rx)}" y2="${c(baseY)}"/>`);
  out.push(
    `<path class="weight-area" d="${areaD}"/>`,
    `<path class="target-line" d="${targetD}" data-target="${targetNow}"/>`,
    `<path class="weight-line" d="${weightD}" data-weight="${weightNow}"/>`,
    `<text class="line-label target" x="${c(xEnd + 6)}" y="${c(labelY.target)}" dy="0.32em">${escapeXml(`target ${pct(targetNow)}`)}</text>`,
    `<text class="line-label weight" x="${c(xEnd + 6)}" y="${c(labelY.weight)}" dy="0.32em">${escapeXml(`live ${pct(weightNow)}`)}</text>`,
  );
  // Markers, painted so a drain lands on top; data-x follows the event order.
  const ordered = [...markers].sort((a, b) => PAINT_ORDER.indexOf(a.group) - PAINT_ORDER.indexOf(b.group));
  for (const mk of ordered) {
    const { e } = mk;
    out.push(
      `<g class="marker ${escapeXml(e.kind)}" data-kind="${escapeXml(e.kind)}" data-group="${mk.group}" data-at="${e.at}" data-weight="${mk.weight}" data-x="${c(mk.x)}" data-y="${c(mk.y)}" data-i="${mk.i}" transform="translate(${c(mk.x)},${c(mk.y)})"><title>${escapeXml(tooltip(e))}</title>${shape(mk.group, e.kind)}</g>`,
    );
  }
  // Legend along the top.
  const legend: [MarkerGroup, EventKind, string][] = [
    ['raise', 'step', 'slice / step'],
    ['hold', 'pause', 'pause'],
    ['resume', 'resume', 'resume'],
    ['drain', 'drain', 'drain'],
    ['revert', 'rollback', 'rollback'],
    ['revert', 'apply_failed', 'apply failed'],
  ];
  let lx = m.left;
  const ly = 12;
  out.push(`<g class="legend">`);
  out.push(
    `<line class="weight-line" x1="${lx}" y1="${ly}" x2="${lx + 18}" y2="${ly}"/><text x="${lx + 22}" y="${ly}" dy="0.32em">live weight</text>`,
  );
  lx += 100;
  out.push(
    `<line class="target-line" x1="${lx}" y1="${ly}" x2="${lx + 18}" y2="${ly}"/><text x="${lx + 22}" y="${ly}" dy="0.32em">target</text>`,
  );
  lx += 72;
  for (const [group, kind, text] of legend) {
    out.push(
      `<g class="key ${group} ${kind}" transform="translate(${lx + 5},${ly})">${shape(group, kind)}</g><text x="${lx + 14}" y="${ly}" dy="0.32em">${escapeXml(text)}</text>`,
    );
    lx += 24 + text.length * 5.9;
  }
  out.push('</g>');
  if (events.length === 0)
    out.push(
      `<text class="empty" x="${c(m.left + plotW / 2)}" y="${c(m.top + plotH / 2)}" text-anchor="middle">no events yet</text>`,
    );
  out.push('</svg>');
  return out.join('');
}

/**
 * The chart's colours and strokes, keyed by the classes {@link weightChart}
 * emits (the status page inlines it in its `<style>`). Uses the page's CSS
 * custom properties with light-scheme fallbacks; drains are red
 * (`--red`, default #c62828).
 */
export const CHART_CSS = `
svg.weight-chart { width: 100%; height: auto; display: block; font: 11px/1 system-ui, sans-serif; }
svg.weight-chart text { fill: var(--muted, #555); }
svg.weight-chart .grid { stroke: var(--grid, #e3e3e3); stroke-width: 1; }
svg.weight-chart .tick, svg.weight-chart .axis-line { stroke: var(--muted, #555); stroke-width: 1; }
svg.weight-chart .now-line { stroke: var(--muted, #555); stroke-width: 1; stroke-dasharray: 2 3; }
svg.weight-chart .weight-line { fill: none; stroke: var(--blue, #1565c0); stroke-width: 2.5; stroke-linejoin: round; }
svg.weight-chart .weight-area { fill: var(--blue, #1565c0); fill-opacity: 0.10; stroke: none; }
svg.weight-chart .target-line { fill: none; stroke: var(--fg, #222); stroke-width: 1.5; stroke-dasharray: 6 4; }
svg.weight-chart .line-label { font-weight: 600; }
svg.weight-chart .line-label.weight { fill: var(--blue, #1565c0); }
svg.weight-chart .line-label.target { fill: var(--fg, #222); }
svg.weight-chart .span.drained { fill: var(--red, #c62828); fill-opacity: 0.12; }
svg.weight-chart .span.paused { fill: var(--amber, #b26a00); fill-opacity: 0.12; }
svg.weight-chart .drain-rule { stroke: var(--red, #c62828); stroke-width: 1.5; stroke-dasharray: 3 2; }
svg.weight-chart .marker, svg.weight-chart .key { stroke: var(--bg, #fff); stroke-width: 1.2; }
svg.weight-chart .slice, svg.weight-chart .step, svg.weight-chart .ramp { fill: var(--blue, #1565c0); }
svg.weight-chart .lower { fill: var(--bg, #fff); stroke: var(--blue, #1565c0); stroke-width: 1.5; }
svg.weight-chart .pause, svg.weight-chart .hold { fill: var(--amber, #b26a00); }
svg.weight-chart .resume { fill: var(--green, #2e7d32); }
svg.weight-chart .drain, svg.weight-chart .abort { fill: var(--red, #c62828); }
svg.weight-chart .rollback { fill: var(--purple, #6a1b9a); }
svg.weight-chart .apply_failed { fill: none; stroke: var(--red, #c62828); stroke-width: 2; }
svg.weight-chart .complete { fill: var(--green, #2e7d32); }
svg.weight-chart .target { fill: var(--fg, #222); }
svg.weight-chart .marker:hover { stroke: var(--fg, #222); }
svg.weight-chart .empty { font-size: 13px; }
`;
