/**
 * `nginx-canary status --watch`: a live terminal view of the walk, polled
 * from the running sidecar's API (`GET /api/v1/services`).
 *
 * - {@link renderWatch} is pure: one status document → the lines of the view
 *   (a progress bar toward the target, phase, soak left, summary, one row per
 *   gate with its value against its threshold and its verdict, the newest
 *   events).
 * - {@link watchLoop} is the I/O loop with everything injected (fetch, write,
 *   clock, sleep, abort signal): on a TTY it redraws in place (cursor home,
 *   clear each line and the rest of the screen; the cursor hidden while it
 *   runs and shown again when it stops); piped it prints a plain block, headed
 *   by an ISO 8601 time line, only when something changed.
 * - {@link watchStatus} wires the loop to the real process: the API client,
 *   the system clock, Node timers, SIGINT and SIGTERM (both end the watch with
 *   exit code 0).
 *
 * Escape sequences are ECMA-48 (CUP `ESC[H`, ED `ESC[J`, EL `ESC[K`, SGR
 * colours) plus the DEC private mode 25 for the cursor (`ESC[?25l` / `ESC[?25h`).
 * Colour follows https://no-color.org: `NO_COLOR` set to a non-empty value
 * turns it off, as does `--no-color`; piped output never has escape codes.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config/types.js';
import { parseDuration } from '../config/units.js';
import { CanaryError, errors } from '../errors.js';
import { describeGate, formatGateValue } from '../rollout/gates.js';
import type { EventKind, GateResult, Phase, Verdict } from '../rollout/types.js';
import type { ServiceStatus, StatusDocument } from '../runner.js';
import { apiBase, callApi } from './client.js';
import { atTarget, formatDuration, phaseText, rampText } from './format.js';

const ESC = '\u001b';

/**
 * The control sequences the view writes: cursor home (CUP), clear to the end
 * of the screen (ED) and of the line (EL) (ECMA-48 §8.3.21, §8.3.39, §8.3.41),
 * hide/show the cursor (DEC private mode 25), and SGR attributes (ECMA-48
 * §8.3.117: 1 bold, 2 faint, 31 red, 32 green, 33 yellow, 0 reset).
 */
export const ANSI = {
  home: `${ESC}[H`,
  clearToEnd: `${ESC}[J`,
  clearLine: `${ESC}[K`,
  hideCursor: `${ESC}[?25l`,
  showCursor: `${ESC}[?25h`,
  bold: `${ESC}[1m`,
  dim: `${ESC}[2m`,
  red: `${ESC}[31m`,
  green: `${ESC}[32m`,
  yellow: `${ESC}[33m`,
  reset: `${ESC}[0m`,
} as const;

/** Any CSI sequence (ESC [ parameters final-byte): what {@link visibleWidth} skips. */
const CSI_RE = new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, 'g');
/** The same, anchored where `lastIndex` points (for walking a line). */
const CSI_AT = new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, 'y');

/** Shortest accepted `--interval`, ms: polling faster only loads the sidecar (a chosen bound). */
export const MIN_INTERVAL_MS = 100;
/** Longest accepted `--interval`, ms (1 h; a chosen bound, well under Node's 2³¹ − 1 ms timer limit). */
export const MAX_INTERVAL_MS = 3_600_000;
/** Default `--interval`, ms (docs/design.md "Interfaces": every second). */
export const DEFAULT_INTERVAL_MS = 1000;
/** Events shown, newest first (a chosen number: enough context, small enough for a 24-row terminal). */
export const WATCH_EVENTS = 5;

/** Options of {@link renderWatch}. */
export interface RenderOptions {
  /** Now, epoch ms (for "3.2 s ago"). */
  now: number;
  /** SGR colours (green pass, red fail/drained, yellow inconclusive/paused) and bold/faint; false: none at all. */
  color: boolean;
  /**
   * Columns available: every line is cut to this many characters (a cut line
   * ends in `…`), and the bar is 10–30 cells (width − 50). `Infinity` = never
   * cut (piped output keeps every number).
   */
  width: number;
}

function paint(text: string, code: string, color: boolean): string {
  return color && code !== '' ? `${code}${text}${ANSI.reset}` : text;
}

function verdictCode(v: Verdict): string {
  return v === 'pass' ? ANSI.green : v === 'fail' ? ANSI.red : ANSI.yellow;
}

function phaseCode(p: Phase): string {
  switch (p) {
    case 'drained':
      return ANSI.red;
    case 'paused':
      return ANSI.yellow;
    case 'complete':
      return ANSI.green;
    default:
      return '';
  }
}

function eventCode(k: EventKind): string {
  if (k === 'drain' || k === 'abort' || k === 'apply_failed') return ANSI.red;
  if (k === 'pause' || k === 'hold') return ANSI.yellow;
  return '';
}

/** Characters a terminal shows for `s`: code points, CSI sequences excluded (no wide-character handling). */
export function visibleWidth(s: string): number {
  return [...s.replace(CSI_RE, '')].length;
}

/**
 * Cuts `line` to `width` visible characters (CSI sequences kept, zero width),
 * ending a cut line in `…` and, if it held escape sequences, an SGR reset.
 * `width` Infinity (or a line that fits) returns the line unchanged.
 */
export function fitLine(line: string, width: number): string {
  if (visibleWidth(line) <= width) return line;
  const keep = Math.max(0, Math.floor(width) - 1);
  let out = '';
  let shown = 0;
  let escaped = false;
  for (let i = 0; i < line.length && shown < keep;) {
    CSI_AT.lastIndex = i;
    const m = line[i] === ESC ? CSI_AT.exec(line) : null;
    if (m) {
      out += m[0];
      escaped = true;
      i += m[0].length;
      continue;
    }
    const ch = String.fromCodePoint(line.codePointAt(i) ?? 0);
    out += ch;
    shown++;
    i += ch.length;
  }
  return `${out}${width >= 1 ? '…' : ''}${escaped ? ANSI.reset : ''}`;
}

/** The walk's progress toward the target, 0–1: weight / target, clamped; target 0 is done only at weight 0. */
function progress(weight: number, target: number): number {
  if (target <= 0) return weight === 0 ? 1 : 0;
  return Math.min(1, Math.max(0, weight / target));
}

/** Cells of the bar for a width: width − 50, clamped to 10–30 (30 when width is Infinity). */
function barCells(width: number): number {
  return Math.max(10, Math.min(30, Math.floor(width) - 50));
}

function serviceLines(s: ServiceStatus, o: RenderOptions): string[] {
  const c = o.color;
  const cells = barCells(o.width);
  const filled = Math.round(cells * progress(s.weight, s.target));
  const barCode = s.phase === 'drained' ? ANSI.red : s.phase === 'paused' ? ANSI.yellow : ANSI.green;
  const bar = `[${paint('█'.repeat(filled), barCode, c)}${'░'.repeat(cells - filled)}]`;
  const out = [
    `${paint(s.name, ANSI.bold, c)}  ${bar}  ${s.weight} % → ${s.target} %  ${paint(phaseText(s), phaseCode(s.phase), c)}`,
  ];
  if (s.ramp) {
    out.push(`  ${rampText(s.ramp)}`);
  } else if ((s.phase === 'slice' || s.phase === 'step') && !atTarget(s)) {
    const left = s.soakNeededMs - s.soakedMs;
    out.push(
      left > 0
        ? `  soak ${formatDuration(left)} left (${formatDuration(s.soakedMs)} of ${formatDuration(s.soakNeededMs)} green)`
        : `  soak done (${formatDuration(s.soakNeededMs)})`,
    );
  }
  if (s.summary) out.push(`  ${paint(s.summary, s.phase === 'drained' ? ANSI.red : '', c)}`);
  if (s.gates.length === 0) {
    out.push(`  gates not judged yet`);
    return out;
  }
  const rows: string[][] = [['gate', 'kind', 'value', 'threshold', 'samples', 'verdict']];
  for (const g of s.gates) {
    rows.push([
      g.pool === 'canary' ? g.gate : `${g.gate} (${g.pool})`,
      g.kind,
      formatGateValue(g),
      formatGateValue({ ...g, value: g.threshold }),
      `${g.samples}/${g.minSamples}`,
      g.verdict,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => visibleWidth(r[i] ?? ''))));
  const pad = (r: string[]): string =>
    r
      .slice(0, -1)
      .map((x, i) => x + ' '.repeat((widths[i] ?? 0) - visibleWidth(x)))
      .join('  ');
  out.push(`  ${paint(`${pad(rows[0]!)}  verdict`, ANSI.dim, c)}`);
  s.gates.forEach((g: GateResult, i) => {
    out.push(`  ${pad(rows[i + 1]!)}  ${paint(g.verdict, verdictCode(g.verdict), c)}`);
    // The numbers behind a verdict that holds or drains (sample counts, the test statistic).
    if (g.verdict !== 'pass') out.push(`    ${paint(describeGate(g), ANSI.dim, c)}`);
  });
  return out;
}

/**
 * Renders one frame of the watch view (no trailing newline): a line with the
 * generation and the time since the last reload; per service a line with the
 * name, a bar of the walk's progress toward the target (weight / target,
 * clamped to 0–1; target 0 counts as done at weight 0), weight and target in
 * percent and the phase; the ramp or the soak left (soakNeededMs − soakedMs,
 * "soak done" at 0; nothing outside slice and step, nor at the target); the summary; one row per
 * gate (value and threshold via `formatGateValue`, samples/minimum, verdict)
 * with `describeGate` beneath every gate that does not pass; then the newest
 * {@link WATCH_EVENTS} events, newest first, with their age. Durations via
 * `formatDuration` (format.ts). Every line is cut to `opts.width`. Pure;
 * never throws.
 */
export function renderWatch(doc: StatusDocument, opts: RenderOptions): string {
  const c = opts.color;
  const reload = doc.lastReloadAt > 0 ? `${formatDuration(Math.max(0, opts.now - doc.lastReloadAt))} ago` : 'never';
  const out = [paint(`generation ${doc.generation} · last reload ${reload}`, ANSI.dim, c)];
  for (const s of doc.services) out.push('', ...serviceLines(s, opts));
  const recent = doc.history.slice(-WATCH_EVENTS).reverse();
  if (recent.length > 0) {
    out.push('', paint('recent events, newest first', ANSI.dim, c));
    for (const e of recent) {
      const age = `${formatDuration(Math.max(0, opts.now - e.at))} ago`;
      out.push(
        `  ${age.padStart(12)}  ${e.service} ${paint(e.kind, eventCode(e.kind), c)} ${e.from} → ${e.to}: ${e.reason}`,
      );
    }
  }
  return out.map((l) => fitLine(l, opts.width)).join('\n');
}

/**
 * What makes a piped watch print a new block: per service the weight,
 * target, phase, pause and drain reasons, ramp sub-step, each gate's verdict
 * and the summary with its numbers masked (a soak counter ticking is not a
 * change; "soaking" becoming "holding" is); the generation; the newest
 * event's time and kind. Equal keys = nothing worth a new block. Pure.
 */
export function watchKey(doc: StatusDocument): string {
  const last = doc.history.at(-1);
  return JSON.stringify([
    doc.generation,
    doc.services.map((s) => [
      s.name,
      s.weight,
      s.target,
      s.phase,
      s.pausedBy,
      s.drainReason,
      s.ramp?.step ?? null,
      s.gates.map((g) => `${g.gate}/${g.pool}:${g.verdict}`),
      s.summary.replace(/\d+(?:\.\d+)?/g, '#'),
    ]),
    last ? [last.at, last.kind, last.service] : null,
  ]);
}

/**
 * Parses `--interval`: weights.yaml duration syntax (`200ms`, `1s`, `1.5s`,
 * `2m`; see config/units.ts), from {@link MIN_INTERVAL_MS} to
 * {@link MAX_INTERVAL_MS}. Returns ms.
 *
 * @throws CanaryError NC_USAGE (exit 2) for anything else, a bare number included.
 */
export function parseInterval(raw: string): number {
  const ms = parseDuration(raw.trim());
  if (ms === null || ms < MIN_INTERVAL_MS || ms > MAX_INTERVAL_MS) {
    throw errors.usage(
      `--interval "${raw}" is not a duration from 100ms to 1h`,
      'Give it in the weights.yaml syntax, e.g. `--interval 500ms` or `--interval 2s`',
    );
  }
  return ms;
}

/**
 * Whether the view is coloured: only on a TTY, only without `--no-color`
 * (`flag` false), and only when `NO_COLOR` is unset or empty
 * (https://no-color.org). Pure.
 */
export function useColor(flag: boolean, tty: boolean, env: Readonly<Record<string, string | undefined>>): boolean {
  return tty && flag && (env['NO_COLOR'] ?? '') === '';
}

/** The I/O of {@link watchLoop}, injected. */
export interface WatchDeps {
  /** One status document; throws when the sidecar cannot be reached or answers an error. */
  fetch: () => Promise<StatusDocument>;
  /** Writes text as given; every call's text ends with a newline. */
  write: (s: string) => void;
  /** `now()` (epoch ms) stamps the frames and ages the events. */
  clock: Clock;
  /** Waits `ms` or until `signal` aborts, whichever comes first; resolves either way, never rejects. */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Terminal size in characters (0 = unknown: 80 columns, no row limit). Read before every frame. */
  size: () => { columns: number; rows: number };
}

/** Options of {@link watchLoop}. */
export interface WatchLoopOptions {
  /** Pause between the end of one poll and the next, ms. */
  intervalMs: number;
  /** Redraw in place (true) or print plain blocks on change (false: no escape codes at all). */
  tty: boolean;
  /** Colour on a TTY (see {@link useColor}); ignored when not a TTY. */
  color: boolean;
  /** The API base URL, named in the header and in the unreachable line. */
  url: string;
  /** Ends the loop (SIGINT, SIGTERM); an in-flight poll is abandoned at once. */
  signal: AbortSignal;
}

/** Resolves or rejects with `p`, or rejects as soon as `signal` aborts (p keeps running, its outcome ignored). */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('aborted'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** The one line for a failed poll: the error, the retry, the fix. */
function problemLine(err: unknown, intervalMs: number): string {
  const retry = `retrying every ${formatDuration(intervalMs)}`;
  if (err instanceof CanaryError) return `${err.message}; ${retry}. ${err.fix}`;
  return `${err instanceof Error ? err.message : String(err)}; ${retry}.`;
}

/**
 * Polls `deps.fetch` every `opts.intervalMs` until `opts.signal` aborts.
 *
 * TTY: each poll redraws the whole frame in place — `ESC[H`, every line
 * followed by `ESC[K`, then `ESC[J` — under a header naming the URL, the
 * interval and the time of day (UTC); lines are cut to the terminal's columns and the
 * frame to its rows − 1. The first frame hides the cursor; when the loop
 * ends (abort or a thrown error) it writes `ESC[?25h` and a newline.
 *
 * Piped: a block (an ISO 8601 time line, the frame without colour or cut,
 * a blank line) is written on the first poll and whenever {@link watchKey}
 * changes; no escape codes.
 *
 * A failed poll (sidecar unreachable, an API error) shows one line with the
 * URL, the retry interval and the fix — on a TTY as the frame, piped once per
 * outage — and the loop keeps polling. Resolves when aborted.
 *
 * @throws whatever `deps.write` or `deps.sleep` throw (the cursor is restored first).
 */
export async function watchLoop(deps: WatchDeps, opts: WatchLoopOptions): Promise<void> {
  const { signal } = opts;
  let lastKey: string | null = null;
  let outage = false;
  let drawn = false;
  try {
    while (!signal.aborted) {
      let doc: StatusDocument | null = null;
      let problem = '';
      try {
        doc = await abortable(deps.fetch(), signal);
      } catch (err) {
        if (signal.aborted) break;
        problem = problemLine(err, opts.intervalMs);
      }
      const now = deps.clock.now();
      const stamp = new Date(now).toISOString();
      if (opts.tty) {
        const { columns, rows } = deps.size();
        const width = columns > 0 ? columns : 80;
        const color = opts.color;
        const header = `${paint(opts.url, ANSI.bold, color)}  every ${formatDuration(opts.intervalMs)}  ${stamp.slice(11, 19)} UTC  Ctrl-C to stop`;
        const body = doc ? renderWatch(doc, { now, color, width }) : paint(problem, ANSI.red, color);
        let lines = [header, '', ...body.split('\n')].map((l) => fitLine(l, width));
        if (rows > 1) lines = lines.slice(0, rows - 1);
        deps.write(
          `${drawn ? '' : ANSI.hideCursor}${ANSI.home}${lines.map((l) => l + ANSI.clearLine).join('\n')}${ANSI.clearToEnd}\n`,
        );
        drawn = true;
      } else if (doc) {
        const key = watchKey(doc);
        if (key !== lastKey) {
          deps.write(`${stamp}\n${renderWatch(doc, { now, color: false, width: Infinity })}\n\n`);
          lastKey = key;
        }
        outage = false;
      } else if (!outage) {
        deps.write(`${stamp}\n${problem}\n\n`);
        outage = true;
        lastKey = null;
      }
      await deps.sleep(opts.intervalMs, signal);
    }
  } finally {
    if (drawn) deps.write(`${ANSI.showCursor}\n`);
  }
}

/** Options of {@link watchStatus}. */
export interface WatchStatusOptions {
  /** Poll interval, ms (see {@link parseInterval}). */
  intervalMs: number;
  /** Redraw in place: stdout is a TTY. */
  tty: boolean;
  /** Colour (see {@link useColor}). */
  color: boolean;
  /** Where the frames go (each text ends with a newline). */
  write: (s: string) => void;
  /** Terminal size (`process.stdout.columns`/`rows`; 0 when unknown). */
  size: () => { columns: number; rows: number };
}

/**
 * Runs the watch against the sidecar of `config` (`GET /api/v1/services` via
 * the API client, the system clock, Node timers) until SIGINT or SIGTERM,
 * then removes its signal handlers and resolves to exit code 0. An
 * unreachable sidecar is shown and retried, never an exit. A poll in flight
 * when the signal comes is aborted with it.
 *
 * @throws whatever `opts.write` throws.
 */
export async function watchStatus(config: Config, opts: WatchStatusOptions): Promise<number> {
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await watchLoop(
      {
        fetch: async () =>
          (await callApi(config, 'GET', '/api/v1/services', undefined, { signal: ac.signal })) as StatusDocument,
        write: opts.write,
        clock: systemClock,
        sleep: (ms, signal) => delay(ms, undefined, { signal }).catch(() => undefined),
        size: opts.size,
      },
      { intervalMs: opts.intervalMs, tty: opts.tty, color: opts.color, url: apiBase(config), signal: ac.signal },
    );
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return 0;
}
