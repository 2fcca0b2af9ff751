/**
 * Gates a configuration makes provably never conclusive (docs/design.md "weights.yaml"): the
 * validator refuses them like any other problem (exit 2, key path, position,
 * a fix with numbers), instead of letting `run` sit at the slice for ever with
 * only `status` to explain why. Pure: no I/O, no clock.
 *
 * Only what the config alone decides is judged here. The access-log gates
 * (`error_ratio`, `baseline_p95`, `starved` and the log half of
 * `connect_p95`) depend on traffic through `gates.min_requests`, so no config
 * makes them provably inconclusive. Two things do depend on the config alone:
 *
 * 1. `probe_failure_ratio` passes only on ≥ `gates.min_probes` canary health
 *    probes inside `gates.window` (gates.ts). A window too short for that at
 *    `probe.interval` leaves the gate inconclusive on every tick, so the walk
 *    never steps (every gate must pass to step);
 * 2. `crash_loop` fails only on ≥ `gates.crash_loop_restarts` healthy→unhealthy
 *    transitions inside `gates.crash_loop_window`. Two down transitions of one
 *    server are at least two probe rounds apart (down, up, down), so a window
 *    too short for that at `probe.interval` makes the drain gate one that can
 *    never fire: it passes whatever the canary does.
 *
 * The bounds (the proof the refusal rests on). Rounds of one server start at
 * least `probe.interval` apart (prober.ts schedules the next round an interval
 * after the previous one started, or at once when that one took longer), less
 * {@link TIMER_SLACK_MS}; a health probe ends (its `at`) between 0 and
 * `probe.timeout` after its round starts. So n probes of one server whose
 * `at` fall in a closed window of length W started within W + timeout:
 * (n − 1) × (interval − slack) ≤ W + timeout, and n is also at most the
 * ring the prober keeps ({@link ringCapacity}, capped at MAX_RING). Down
 * transitions of one server are two rounds apart: the same bound with
 * 2 × (interval − slack). A pool's count is the sum over its servers. The
 * transient extra round at start-up (`probeOnce` before the loop) is left out:
 * it is gone one window later, and "never" means for as long as the walk runs.
 *
 * The refusal uses those maxima (no false refusal: a config whose best case
 * reaches the minimum is accepted); the fix names values that make the gate
 * conclusive at the steady cadence, window / interval probes per server.
 */
import { MAX_RING, ringCapacity } from '../probe/window.js';
import type { ServiceConfig } from './types.js';
import { formatDuration } from './units.js';

/**
 * How much earlier than its delay a Node timer may fire, ms: libuv counts whole
 * milliseconds, so a round may start up to 1 ms less than `probe.interval`
 * after the previous one.
 */
export const TIMER_SLACK_MS = 1;

/** Bounds the fixes must stay in (validate.ts): probe.interval ≥ 100 ms, gates windows ≤ 1 d. */
const MIN_INTERVAL_MS = 100;
const MAX_WINDOW_MS = 86_400_000;

/** One never-conclusive gate: the key path under the service (`['gates', 'window']`), what is wrong, the fix. */
export interface ConclusiveProblem {
  /** Key path relative to `services.<name>`. */
  path: readonly string[];
  /** One sentence without a trailing period. */
  message: string;
  /** One sentence with the numbers that make the gate conclusive. */
  fix: string;
}

/**
 * Most events of one server whose times fall in a closed window of `windowMs`
 * when they are at least `rounds` probe rounds apart (1: health probes; 2:
 * down transitions): ⌊(window + timeout) / (rounds × (interval − slack))⌋ + 1.
 * All arguments in ms; interval > slack.
 */
function mostInWindow(windowMs: number, intervalMs: number, timeoutMs: number, rounds: 1 | 2): number {
  return Math.floor((windowMs + timeoutMs) / (rounds * (intervalMs - TIMER_SLACK_MS))) + 1;
}

/**
 * Most canary health probes one server can have inside `gates.window` (see the
 * module comment): the timing bound, capped by the prober's ring. Ms in, a count out.
 */
export function maxProbesPerServer(windowMs: number, intervalMs: number, timeoutMs: number): number {
  return Math.min(mostInWindow(windowMs, intervalMs, timeoutMs, 1), ringCapacity(windowMs, intervalMs));
}

/** Most healthy→unhealthy transitions one server can have inside `gates.crash_loop_window` (see the module comment). */
export function maxDownTransitionsPerServer(crashLoopWindowMs: number, intervalMs: number, timeoutMs: number): number {
  return mostInWindow(crashLoopWindowMs, intervalMs, timeoutMs, 2);
}

/** "A, B, or C": the options that exist (null = not available), then the one that always does. */
function either(options: readonly (string | null)[], always: string): string {
  const list = [...options.filter((o): o is string => o !== null), always];
  const text = list.length === 1 ? always : `${list.slice(0, -1).join(', ')}, or ${always}`;
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}`;
}

/** The probe.interval option of a fix, or null when it would fall under 100 ms. */
function intervalOption(intervalMax: number, timeoutMs: number): string | null {
  if (intervalMax < MIN_INTERVAL_MS) return null;
  const timeout = timeoutMs > intervalMax ? ' (and probe.timeout with it)' : '';
  return `lower probe.interval to ≤ ${formatDuration(intervalMax)}${timeout}`;
}

/**
 * The window option of a fix (`key` under gates), or null when it would exceed 1 d. Never under 1 s: a
 * refused window is ≥ 1 s and the fix asks for more than it holds.
 */
function windowOption(key: string, windowMin: number): string | null {
  return windowMin > MAX_WINDOW_MS ? null : `raise gates.${key} to ≥ ${formatDuration(windowMin)}`;
}

/** `1 server` / `2 servers`. */
function servers(n: number): string {
  return `${n} server${n === 1 ? '' : 's'}`;
}

/** The probe-count rule (1 in the module comment), or null when the window can hold gates.min_probes. */
function probeCountProblem(svc: ServiceConfig): ConclusiveProblem | null {
  const n = svc.canary.length;
  const { windowMs, minProbes } = svc.gates;
  const { intervalMs, timeoutMs } = svc.probe;
  const most = n * maxProbesPerServer(windowMs, intervalMs, timeoutMs);
  if (most >= minProbes) return null;
  const steady = n * Math.min(Math.floor(windowMs / intervalMs), MAX_RING);
  // Per server a window holds window / interval probes at the steady cadence, and never more than the ring.
  const perServer = Math.ceil(minProbes / n);
  const reachable = perServer <= MAX_RING;
  const fix = either(
    [
      reachable ? windowOption('window', perServer * intervalMs) : null,
      reachable ? intervalOption(Math.floor((windowMs * n) / minProbes), timeoutMs) : null,
    ],
    // A window shorter than the interval (steady 0) is ≥ 1 s, so the interval is too: a window of one interval is valid.
    steady >= 1
      ? `lower gates.min_probes to ≤ ${steady}`
      : `raise gates.window to ≥ ${formatDuration(intervalMs)} and lower gates.min_probes to ≤ ${n}`,
  );
  return {
    path: ['gates', 'window'],
    message: `a ${formatDuration(windowMs)} window holds ${steady} canary health probe${steady === 1 ? '' : 's'} (${servers(n)}, one every ${formatDuration(intervalMs)}; at most ${most} if probe times bunch up), fewer than gates.min_probes ${minProbes}: probe_failure_ratio can never pass, so the walk would hold at its slice for ever`,
    fix,
  };
}

/** The crash-loop rule (2 in the module comment), or null when the window can hold gates.crash_loop_restarts. */
function crashLoopProblem(svc: ServiceConfig): ConclusiveProblem | null {
  const n = svc.canary.length;
  const { crashLoopWindowMs: windowMs, crashLoopRestarts: restarts } = svc.gates;
  const { intervalMs, timeoutMs } = svc.probe;
  const most = n * maxDownTransitionsPerServer(windowMs, intervalMs, timeoutMs);
  if (most >= restarts) return null;
  // restarts ≥ 2 here (one down transition always fits): one server crash-looping reaches it at the steady cadence.
  const gaps = 2 * (restarts - 1);
  const fix = either(
    [windowOption('crash_loop_window', gaps * intervalMs), intervalOption(Math.floor(windowMs / gaps), timeoutMs)],
    `lower gates.crash_loop_restarts to ≤ ${Math.floor(windowMs / (2 * intervalMs)) + 1}`,
  );
  return {
    path: ['gates', 'crash_loop_window'],
    message: `a ${formatDuration(windowMs)} crash_loop_window holds at most ${most} restart${most === 1 ? '' : 's'} seen by probes every ${formatDuration(intervalMs)} (${servers(n)}; each restart takes a failing probe after a passing one), fewer than gates.crash_loop_restarts ${restarts}: the crash_loop drain gate can never fire`,
    fix,
  };
}

/**
 * The gates of `svc` that its own numbers make provably never conclusive (see
 * the module comment), each with a fix that gives numbers; empty when none.
 * Expects a validated service (intervals ≥ 100 ms, windows ≥ 1 s, at least one
 * canary server). Pure; never throws for such a service.
 */
export function neverConclusive(svc: ServiceConfig): ConclusiveProblem[] {
  return [probeCountProblem(svc), crashLoopProblem(svc)].filter((p): p is ConclusiveProblem => p !== null);
}
