/**
 * The rollout planner (docs/design.md "Rollout"): a pure function of
 * (config, state, observations, now). No I/O, no clock reads, no randomness;
 * inputs are never mutated (every result is a new object).
 *
 * Weights are canary percent 0–100 with one decimal; times are epoch ms.
 * One tick moves a service's weight at most once; every move waits for
 * nginx.min_reload_interval since the last reload.
 */
import type { Config, ServiceConfig } from '../config/types.js';
import { errors } from '../errors.js';
import {
  allPass,
  allPassOfKind,
  describeGate,
  evaluateGates,
  firstFailing,
  firstNotPassing,
  gateNamed,
} from './gates.js';
import { canaryIdentity, describeIdentityChange } from './release.js';
import { HISTORY_LIMIT } from './types.js';
import type {
  Command,
  Decision,
  EventKind,
  GateResult,
  Observations,
  Page,
  Ramp,
  RolloutEvent,
  ServiceObservation,
  ServiceState,
  State,
} from './types.js';

/** The phases a walk can return to after a pause. */
type Resumable = NonNullable<ServiceState['resumePhase']>;

/** Rounds a weight, percent, to one decimal (the resolution of the rendered weights: 0.1 %, docs/design.md "Rendering"). */
export function roundWeight(weight: number): number {
  return Math.round(weight * 10) / 10;
}

/** Formats a weight, percent: `15 %`, `0.5 %`. */
function pct(weight: number): string {
  return `${weight} %`;
}

/** Formats a duration given in ms as seconds with one decimal: `3.2 s`. */
function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * A service's progress before its first tick: weight 0, idle, target 0 (so
 * the configured target is an event); `since` and `lastTickAt` are `now`
 * (epoch ms).
 */
export function freshServiceState(now: number): ServiceState {
  return {
    weight: 0,
    phase: 'idle',
    resumePhase: null,
    pausedBy: null,
    target: 0,
    since: now,
    soakedMs: 0,
    lastTickAt: now,
    drainReason: null,
    ramp: null,
  };
}

/** Options of {@link decide} that come from the environment rather than weights.yaml. */
export interface DecideOptions {
  /**
   * True on open-source nginx, which rejects `slow_start=` (docs/design.md
   * "slow_start on open-source nginx"): a canary entering the rotation is
   * ramped in sub-steps instead. False (default) on NGINX Plus, which ramps by itself.
   */
  emulateSlowStart?: boolean;
}

/**
 * Number of ramp sub-steps for a canary pool: ceil(slow_start / min_reload_interval)
 * with the pool's longest slow_start (ms), at most {@link MAX_RAMP_STEPS}; 1 (no ramp)
 * when no canary server has one (docs/design.md "slow_start on open-source nginx": at most
 * ceil(slow_start / min_reload_interval) reloads).
 * `minReloadIntervalMs` in ms (values below 1 count as 1). Never throws.
 */
export function rampSteps(svc: ServiceConfig, minReloadIntervalMs: number): number {
  const slowStartMs = slowStartOf(svc);
  if (slowStartMs === 0) return 1;
  return Math.min(MAX_RAMP_STEPS, Math.max(1, Math.ceil(slowStartMs / Math.max(1, minReloadIntervalMs))));
}

/** The canary pool's longest slow_start, ms (0 when none has one). */
function slowStartOf(svc: ServiceConfig): number {
  return Math.max(0, ...svc.canary.map((c) => c.slowStartMs ?? 0));
}

/**
 * Most sub-steps a ramp takes, whatever slow_start / min_reload_interval is:
 * "a few reloads" (docs/design.md "slow_start on open-source nginx"; 10 is
 * chosen): each reload leaves old workers draining. Sub-steps are spaced by
 * {@link rampSpacingMs} (and never closer than min_reload_interval), so a
 * capped ramp still spans slow_start: a 30 s slow_start at a 0.5 s interval
 * ramps in 10 reloads 3 s apart.
 */
export const MAX_RAMP_STEPS = 10;

/**
 * Soak the service's live weight needs before the next step, ms: the
 * rollout's slice_soak while the walk is (or, paused, will return to) the
 * slice, its step_soak otherwise. Pure.
 */
export function soakNeededMs(svc: ServiceConfig, s: ServiceState | undefined): number {
  const phase = s?.phase === 'paused' ? s.resumePhase : (s?.phase ?? 'idle');
  return phase === 'slice' ? svc.rollout.sliceSoakMs : svc.rollout.stepSoakMs;
}

/**
 * Time between two ramp sub-steps, ms: slow_start / steps (the pool's longest
 * slow_start), so sub-step i of n is due at startedAt + (i − 1) × slow_start / n,
 * following nginx Plus's linear ramp from near 0 to nominal over slow_start.
 * Without a cap this is at most min_reload_interval, which then governs.
 */
export function rampSpacingMs(svc: ServiceConfig, steps: number): number {
  return slowStartOf(svc) / Math.max(1, steps);
}

/** The weight served at ramp sub-step `step` of `steps` toward `to`, percent: to × step / steps, rounded to 0.1, at least 0.1. */
export function rampWeight(to: number, step: number, steps: number): number {
  if (step >= steps) return to;
  return Math.min(to, Math.max(0.1, roundWeight((to * step) / steps)));
}

/**
 * The state of a first run (no state.json): every configured service at
 * weight 0, phase idle, `since` = `now` (epoch ms); generation 0,
 * lastReloadAt 0 (epoch ms), no history.
 */
export function initialState(config: Config, now: number): State {
  const services: Record<string, ServiceState> = {};
  for (const svc of config.services) services[svc.name] = freshServiceState(now);
  return { version: 1, generation: 0, lastReloadAt: 0, services, history: [] };
}

/**
 * Milliseconds until a weight change is allowed (0 = now). A change is allowed
 * when `now - lastReloadAt ≥ minReloadIntervalMs`, or when `now < lastReloadAt`
 * (the wall clock went back: it must not block for hours; the applier also
 * spaces reloads on a monotonic clock).
 */
export function reloadWaitMs(minReloadIntervalMs: number, lastReloadAt: number, now: number): number {
  if (now < lastReloadAt) return 0;
  return Math.max(0, lastReloadAt + minReloadIntervalMs - now);
}

/** Own-property lookup (service names such as `constructor` must not hit Object.prototype). */
function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Appends events to a history, keeping the newest {@link HISTORY_LIMIT}. */
function appendHistory(history: readonly RolloutEvent[], events: readonly RolloutEvent[]): RolloutEvent[] {
  return [...history, ...events].slice(-HISTORY_LIMIT);
}

/**
 * Where a walk in `phase` stands against its target at `weight` (no weight
 * change): `complete` with room below the target walks on as `step`; a
 * `slice`/`step` at the target is `complete`; a non-idle walk at 0 is `idle`,
 * an idle one above 0 (hand-edited state) walks on.
 */
function settle(phase: Resumable, weight: number, target: number): Resumable {
  if (weight === 0) return 'idle';
  if (weight === target) return 'complete';
  return phase === 'slice' ? 'slice' : 'step';
}

/** What one service's tick produced. */
interface ServiceOutcome {
  next: ServiceState;
  events: RolloutEvent[];
  page: Page | null;
  gates: GateResult[];
  summary: string;
}

/*
 * One service's tick is a list of steps (decideService), each a pure function
 * of the tick's inputs ({@link Tick}) and the walk so far ({@link Walk}). A step
 * either passes the walk on (perhaps with a new state and events, never a new
 * weight) or ends the tick ({@link End}: the final walk and its summary line).
 * Every step that changes the weight ends the tick, so a tick moves the weight
 * at most once. The order is the priority order of docs/design.md "Rollout".
 */

/** The inputs of one service's tick, fixed for the whole tick. */
interface Tick {
  svc: ServiceConfig;
  /** The service's state before the tick. */
  prev: ServiceState;
  obs: ServiceObservation | undefined;
  /** Epoch ms. */
  now: number;
  /** Ms until min_reload_interval allows a weight change ({@link reloadWaitMs}); 0 = now. */
  waitMs: number;
  /** Sub-steps of a ramp when the canary enters the rotation ({@link rampSteps}); 1 = no ramp (NGINX Plus). */
  steps: number;
  /** The configured target, percent (weights.yaml `rollout.target`). */
  target: number;
  /** This tick's gate results, judged at the weight before the tick (docs/design.md "Gates"). */
  gates: GateResult[];
}

/** The walk so far within one tick: the service's next state and the events the tick produced, oldest first. */
interface Walk<S extends ServiceState = ServiceState> {
  s: S;
  events: readonly RolloutEvent[];
}

/** A walk that is neither paused, drained nor promoted: its phase is one a pause can return to. */
type Walking = ServiceState & { phase: Resumable };

/** The end of a tick: the final walk, the summary line, and the page a drain raises (null otherwise). */
interface End {
  walk: Walk;
  summary: string;
  page: Page | null;
}

/** A step of the tick: passes the walk on (type W) or ends the tick. */
type TickStep<W extends Walk> = (t: Tick, w: W) => W | End;

/** True when a step ended the tick. */
function isEnd<W extends Walk>(r: W | End): r is End {
  return 'summary' in r;
}

/** Runs `steps` in order on `w` until one ends the tick; returns that end, or the walk the last step passed on. */
function runSteps<W extends Walk>(t: Tick, w: W, steps: readonly TickStep<W>[]): W | End {
  let r: W | End = w;
  for (const step of steps) {
    if (isEnd(r)) return r;
    r = step(t, r);
  }
  return r;
}

/** An event of this tick for the service, backed by `behind` (the tick's gate results unless given). */
function eventOf(
  t: Tick,
  kind: EventKind,
  from: number,
  to: number,
  reason: string,
  behind: GateResult[] = t.gates,
): RolloutEvent {
  return { at: t.now, service: t.svc.name, kind, from, to, reason, gates: behind };
}

/** The walk `w` with state `s` and `events` appended after its own. */
function walkOf<S extends ServiceState>(w: Walk, s: S, ...events: RolloutEvent[]): Walk<S> {
  return { s, events: [...w.events, ...events] };
}

/** Ends the tick with walk `w`, `summary` and no page. */
function endWith(w: Walk, summary: string): End {
  return { walk: w, summary, page: null };
}

/**
 * `s` at weight `to` with `fields` set: every weight change restarts the soak and
 * the judged window (`since` = now, never earlier than before; docs/design.md
 * "Observations": the window covers only traffic at the current weight).
 */
function moved(t: Tick, s: ServiceState, to: number, fields: Partial<ServiceState>): ServiceState {
  return { ...s, ...fields, weight: to, soakedMs: 0, since: Math.max(t.prev.since, t.now) };
}

/**
 * Ends the tick without a move because min_reload_interval has not passed since the
 * last reload (docs/design.md "Rollout": never two weight changes closer, drains
 * included); the summary says what waits (`what`) and for how long.
 */
function waitForReload(t: Tick, w: Walk, what: string): End {
  return endWith(w, `waiting for min_reload_interval (${secs(t.waitMs)} left) to ${what} (target ${pct(t.target)})`);
}

/** `15 % (target 30 %)`: the walk's weight and the target, for summaries. */
function atTarget(t: Tick, s: ServiceState): string {
  return `${pct(s.weight)} (target ${pct(t.target)})`;
}

/**
 * Gate evaluation: the tick's inputs, with the gates judged on the observations
 * at the weight before the tick (docs/design.md "Gates").
 */
function tickOf(
  svc: ServiceConfig,
  prev: ServiceState,
  obs: ServiceObservation | undefined,
  now: number,
  waitMs: number,
  steps: number,
): Tick {
  const gates = evaluateGates(svc, obs, { weight: prev.weight });
  return { svc, prev, obs, now, waitMs, steps, target: svc.rollout.target, gates };
}

/**
 * Soak accounting (docs/design.md "Rollout": soak is green time, not wall time).
 * In: the tick. Out: the walk's starting state, `prev` with soakedMs and lastTickAt
 * updated, no events. Rule: a tick where every gate passes adds the time since the
 * previous tick, capped at one gate window (a jump back adds 0); an inconclusive
 * tick adds nothing; a failing hold gate or a running ramp (docs/design.md
 * "slow_start on open-source nginx") sets it to 0. lastTickAt never goes back.
 */
function accountSoak(t: Tick): Walk {
  const { prev, now, gates } = t;
  const gap = Math.min(Math.max(now - prev.lastTickAt, 0), t.svc.gates.windowMs);
  const holdFail = firstFailing(gates, 'hold');
  const ramping = (prev.ramp ?? null) !== null;
  const soakedMs = holdFail || ramping ? 0 : allPass(gates) ? prev.soakedMs + gap : prev.soakedMs;
  return { s: { ...prev, soakedMs, lastTickAt: Math.max(prev.lastTickAt, now) }, events: [] };
}

/**
 * Identity check (docs/design.md "Rollout", first rule; docs/release.md). In: the
 * walk. Out: the walk with the canary's identity adopted when the state had none;
 * the end of the tick when the identity ({@link canaryIdentity}: servers and
 * rollout.version) changed. Rule: a new canary build is a new walk: weight 0 as
 * soon as min_reload_interval allows (the safe direction), see {@link newCanary}.
 */
function checkRelease(t: Tick, w: Walk): Walk | End {
  const identity = canaryIdentity(t.svc);
  const known = t.prev.canary ?? null;
  if (known === null) return walkOf(w, { ...w.s, canary: identity });
  if (known === identity) return w;
  if (t.waitMs > 0 && t.prev.weight > 0)
    return waitForReload(
      t,
      w,
      `drop the replaced canary ${pct(t.prev.weight)} → 0 % (${describeIdentityChange(known, identity)})`,
    );
  return newCanary(t, w, known, identity);
}

/**
 * A new canary build (identity `known` → `identity`). Out: the end of the tick at
 * weight 0, event `release` (no gate results). Rule: a fresh walk from idle (an
 * operator pause stays, returning to idle), no drain or ramp, nothing soaked, the
 * old walk's evidence cut off at `since` = now, `releasedAt` = now and no promoted
 * version (docs/release.md).
 */
function newCanary(t: Tick, w: Walk, known: string, identity: string): End {
  const { prev, now } = t;
  const what = describeIdentityChange(known, identity);
  const paused = w.s.phase === 'paused' && w.s.pausedBy === 'operator';
  const s: ServiceState = {
    ...w.s,
    weight: 0,
    phase: paused ? 'paused' : 'idle',
    pausedBy: paused ? 'operator' : null,
    resumePhase: paused ? 'idle' : null,
    drainReason: null,
    ramp: null,
    soakedMs: 0,
    since: Math.max(prev.since, now),
    canary: identity,
    releasedAt: now,
    promotedVersion: null,
  };
  const e = eventOf(
    t,
    'release',
    prev.weight,
    0,
    `new canary (${what}): weight ${pct(prev.weight)} → 0 % at once; the new build walks from the slice once its /ready answers 200`,
    [],
  );
  return endWith(
    walkOf(w, s, e),
    `new canary (${what}): ${pct(prev.weight)} → 0 %; the walk starts again from the slice (target ${pct(t.target)})`,
  );
}

/**
 * Target change (docs/design.md "Rollout": a new target is noticed every tick).
 * In: the walk. Out: the walk with the configured target recorded and an event
 * `target` (no gate results) when it differs from the state's. Rule: a new target
 * ends a drain (phase idle, no drain reason); a promoted walk stays promoted.
 */
function noticeTarget(t: Tick, w: Walk): Walk {
  const { prev, target } = t;
  if (target === prev.target) return w;
  const e = eventOf(
    t,
    'target',
    prev.target,
    target,
    `target changed from ${pct(prev.target)} to ${pct(target)} in weights.yaml`,
    [],
  );
  const s: ServiceState = { ...w.s, target };
  return walkOf(w, s.phase === 'drained' ? { ...s, phase: 'idle', drainReason: null } : s, e);
}

/**
 * Drain (docs/design.md "Gates", drain gates; "Rollout": a drain has priority over
 * everything, paused or not). In: the walk. Out: the walk unchanged unless a drain
 * gate fails at weight > 0; then the end of the tick at weight 0, phase drained
 * (no pause, no ramp, drainReason = the gate), event `drain` and one page naming it —
 * at once: a drain never waits for min_reload_interval (the applier does not hold a change that only
 * lowers weights), nor for a slow_start ramp's spacing.
 */
function drainOnGate(t: Tick, w: Walk): Walk | End {
  const from = w.s.weight;
  const drainFail = firstFailing(t.gates, 'drain');
  if (drainFail && from > 0) {
    const why = describeGate(drainFail);
    const s = moved(t, w.s, 0, {
      phase: 'drained',
      pausedBy: null,
      resumePhase: null,
      drainReason: drainFail.gate,
      ramp: null,
    });
    const e = eventOf(t, 'drain', from, 0, `drain gate ${why}`);
    const summary = `drained ${t.svc.name} from ${pct(from)} to 0 %: ${why}`;
    return { walk: walkOf(w, s, e), summary, page: { service: t.svc.name, reason: drainFail.gate, summary, event: e } };
  }
  return w;
}

/**
 * Ramp end against a lowered target. In: the walk. Out: the walk with a running
 * ramp's end lowered to the target when the ramp heads above the target and the
 * target is still above the live weight (a target at or below the weight is
 * {@link lowerToTarget}'s). No event.
 */
function clampRamp(t: Tick, w: Walk): Walk {
  const { s } = w;
  if (s.ramp && s.ramp.to > t.target && t.target > s.weight)
    return walkOf(w, { ...s, ramp: { ...s.ramp, to: t.target } });
  return w;
}

/**
 * Lower target (docs/design.md "Rollout": applied at once, the safe direction).
 * In: the walk. Out: the walk unchanged unless the weight is above the target; then
 * the end of the tick at the target, event `lower` (no gate results) — or, within
 * min_reload_interval, a wait. Rule: the walk is complete (idle at 0) and its ramp
 * ends; a paused walk stays paused when the operator paused it or the target is
 * above 0 (it will return to complete), otherwise a gate pause at 0 has nothing to
 * hold and ends.
 */
function lowerToTarget(t: Tick, w: Walk): Walk | End {
  const { target } = t;
  const from = w.s.weight;
  if (!(from > target)) return w;
  if (t.waitMs > 0) return waitForReload(t, w, `lower ${pct(from)} → ${pct(target)}`);
  const after: Resumable = target === 0 ? 'idle' : 'complete';
  const s =
    w.s.phase === 'paused' && (w.s.pausedBy === 'operator' || target > 0)
      ? moved(t, w.s, target, { resumePhase: after, ramp: null })
      : moved(t, w.s, target, { phase: after, pausedBy: null, resumePhase: null, drainReason: null, ramp: null });
  const e = eventOf(t, 'lower', from, target, `target ${pct(target)} is below the weight; lowered at once`, []);
  return endWith(walkOf(w, s, e), `lowered ${pct(from)} → ${pct(target)} (target ${pct(target)})`);
}

/**
 * Re-placing the walk against the (possibly new) target, weight unchanged. In: the
 * walk. Out: a walking phase (not paused, drained or promoted) without a running
 * ramp settled by {@link settle}: `complete` at the target (event `complete` when it
 * was not complete already), `idle` at 0, `slice`/`step` below the target. Other
 * walks pass unchanged (a paused walk is placed by {@link whilePaused}).
 */
function placeWalk(t: Tick, w: Walk): Walk {
  const { s } = w;
  if (s.phase === 'paused' || s.phase === 'drained' || s.phase === 'promoted' || s.ramp) return w;
  const from = s.weight;
  const placed = settle(s.phase, from, t.target);
  const e =
    placed === 'complete' && s.phase !== 'complete'
      ? [eventOf(t, 'complete', from, from, `weight reached the target ${pct(t.target)}`)]
      : [];
  return walkOf(w, { ...s, phase: placed }, ...e);
}

/**
 * Stopped walks (docs/design.md "Rollout", phases). In: the walk. Out: the end of
 * the tick for a paused ({@link whilePaused}), drained or promoted walk, with a
 * summary saying what ends the stop (the operator, a new target, a new canary
 * build); any other walk passes on, its phase one a pause can return to.
 */
function stopped(t: Tick, w: Walk): Walk<Walking> | End {
  const { s } = w;
  if (s.phase === 'paused') return whilePaused(t, w);
  if (s.phase === 'drained')
    return endWith(
      w,
      `drained at 0 % (target ${pct(t.target)}) by ${s.drainReason ?? 'a drain'}: set a new target or run \`nginx-canary resume ${t.svc.name}\``,
    );
  if (s.phase === 'promoted')
    return endWith(
      w,
      `promoted${s.promotedVersion ? ` ${s.promotedVersion}` : ''}: the primary serves it, canary 0 %; a new canary build (\`nginx-canary release ${t.svc.name} <version>\` or new servers) starts the next walk`,
    );
  return walkOf(w, { ...s, phase: s.phase });
}

/**
 * A paused walk (docs/design.md "Rollout": hold gate red). In: a paused walk. Out:
 * the end of the tick, weight unchanged, the phase to return to re-placed against
 * the target ({@link settle}). Rule: a gate pause resumes (event `resume`) once no
 * gate fails and every hold gate passes; an operator pause waits for `resume`; the
 * summary names the gates that are not green.
 */
function whilePaused(t: Tick, w: Walk): End {
  const { gates } = t;
  const resumeTo = settle(w.s.resumePhase ?? 'idle', w.s.weight, t.target);
  const s: ServiceState = { ...w.s, resumePhase: resumeTo };
  const at = atTarget(t, s);
  if (s.pausedBy === 'gate' && !firstFailing(gates) && allPassOfKind(gates, 'hold')) {
    const e = eventOf(t, 'resume', s.weight, s.weight, `hold gates green again; back to ${resumeTo}`);
    return endWith(
      walkOf(w, { ...s, phase: resumeTo, pausedBy: null, resumePhase: null }, e),
      `resumed at ${at}: every gate passes`,
    );
  }
  if (s.pausedBy === 'operator')
    return endWith(walkOf(w, s), `paused at ${at} by the operator: run \`nginx-canary resume ${t.svc.name}\``);
  const red = gates.filter((r) => r.verdict !== 'pass').map(describeGate);
  return endWith(walkOf(w, s), `paused at ${at} by a hold gate: ${red.join('; ')}; resumes when every gate is green`);
}

/**
 * Hold (docs/design.md "Gates", hold gates). In: a walking walk. Out: the walk
 * unchanged unless a hold gate fails at weight > 0; then the end of the tick,
 * paused by the gate, returning to the current phase, event `pause` (the soak was
 * reset by {@link accountSoak}). A running ramp stops here too.
 */
function pauseOnHold(t: Tick, w: Walk<Walking>): Walk<Walking> | End {
  const holdFail = firstFailing(t.gates, 'hold');
  const { s } = w;
  if (holdFail && s.weight > 0) {
    const e = eventOf(t, 'pause', s.weight, s.weight, `hold gate ${describeGate(holdFail)}`);
    return endWith(
      walkOf(w, { ...s, resumePhase: s.phase, phase: 'paused', pausedBy: 'gate' }, e),
      `paused at ${atTarget(t, s)}: ${describeGate(holdFail)}`,
    );
  }
  return w;
}

/**
 * A running ramp (docs/design.md "slow_start on open-source nginx"). In: a walking
 * walk. Out: the walk unchanged when no ramp runs; else the end of the tick: the
 * next sub-step ({@link rampWeight}) once it is due at startedAt + step ×
 * {@link rampSpacingMs} (a wall clock behind startedAt makes it due at once) and
 * min_reload_interval allows, event `ramp` (no gate results); the last sub-step
 * ends the ramp (the soak starts) and settles the phase (event `complete` at the
 * target). Only drains and hold gates, earlier steps, stop a ramp.
 */
function climbRamp(t: Tick, w: Walk<Walking>): Walk<Walking> | End {
  const { svc, now, target } = t;
  const { s } = w;
  const ramp = s.ramp ?? null;
  if (!ramp) return w;
  const from = s.weight;
  const at = atTarget(t, s);
  const to = rampWeight(ramp.to, ramp.step + 1, ramp.steps);
  const of = `sub-step ${ramp.step} of ${ramp.steps} toward ${pct(ramp.to)}`;
  // Due at startedAt + step × spacing; a wall clock behind startedAt must not stall the ramp for hours.
  const dueIn = now < ramp.startedAt ? 0 : ramp.startedAt + ramp.step * rampSpacingMs(svc, ramp.steps) - now;
  if (dueIn > 0) return endWith(w, `ramping at ${at}: ${of}, next sub-step in ${secs(dueIn)} (slow_start emulation)`);
  if (t.waitMs > 0) return waitForReload(t, w, `ramp ${pct(from)} → ${pct(to)} (${of}, slow_start emulation)`);
  const done = ramp.step + 1 >= ramp.steps;
  const phase: Resumable = done ? settle(s.phase, to, target) : s.phase;
  const next = moved(t, s, to, { phase, ramp: done ? null : { ...ramp, step: ramp.step + 1 } });
  const e = eventOf(
    t,
    'ramp',
    from,
    to,
    `slow_start emulation: sub-step ${ramp.step + 1} of ${ramp.steps} toward ${pct(ramp.to)}${done ? '; the soak starts now' : ''}`,
    [],
  );
  const complete =
    done && phase === 'complete'
      ? [eventOf(t, 'complete', to, to, `the ramp reached the target ${pct(target)}`, [])]
      : [];
  return endWith(
    walkOf(w, next, e, ...complete),
    `ramped ${pct(from)} → ${pct(to)} (${done ? 'ramp done, soak starts' : `sub-step ${ramp.step + 1} of ${ramp.steps}`})`,
  );
}

/**
 * A recovered canary (docs/design.md "slow_start on open-source nginx": a canary
 * back after the probes saw it unhealthy re-enters the rotation through a ramp).
 * In: a walking walk. Out: the walk unchanged unless ramps are emulated, the weight
 * is above 0 and the probes saw the canary recover after the live weight was set
 * (`since`); then the end of the tick at the first of `steps` sub-steps toward the
 * live weight (cause `recovery`, a complete walk walks on as `step`), event `ramp`
 * — or, within min_reload_interval, a wait.
 */
function rampRecovered(t: Tick, w: Walk<Walking>): Walk<Walking> | End {
  const { s } = w;
  const { steps, now } = t;
  const from = s.weight;
  const recoveredAt = t.obs?.probes?.canary.recoveredAt ?? null;
  if (!(steps > 1 && from > 0 && recoveredAt !== null && recoveredAt > t.prev.since)) return w;
  if (t.waitMs > 0) return waitForReload(t, w, `ramp the recovered canary back up from near 0 to ${pct(from)}`);
  const first = rampWeight(from, 1, steps);
  const phase: Resumable = s.phase === 'complete' ? 'step' : s.phase;
  const next = moved(t, s, first, { phase, ramp: { to: from, step: 1, steps, startedAt: now, cause: 'recovery' } });
  const e = eventOf(
    t,
    'ramp',
    from,
    first,
    `canary healthy again after probes saw it unhealthy: slow_start emulation ramps back to ${pct(from)} in ${steps} reloads`,
  );
  return endWith(
    walkOf(w, next, e),
    `ramping the recovered canary ${pct(first)} → ${pct(from)} (sub-step 1 of ${steps})`,
  );
}

/** A complete walk (weight = target) ends the tick with nothing to do. In: a walking walk. Out: that end, or the walk. */
function stayComplete(t: Tick, w: Walk<Walking>): Walk<Walking> | End {
  return w.s.phase === 'complete' ? endWith(w, `complete at ${atTarget(t, w.s)}`) : w;
}

/**
 * Start (docs/design.md "Rollout": idle, target > 0, no failing gate and `ready`
 * passing → the slice; "Numbers": "blackhole until ready"). In: a walking walk.
 * Out: the walk unchanged unless idle; else the end of the tick: at target 0 a
 * summary (the smoke test with `X-Canary: always` runs now; inconclusive gates are
 * expected at 0 %), a failing gate or a `ready` gate not passing waits at 0 %;
 * otherwise the slice min(target, slice), event `slice` — with ramps emulated
 * (docs/design.md "slow_start on open-source nginx") its first sub-step, else the
 * whole slice (event `complete` when it reaches the target) — or, within
 * min_reload_interval, a wait.
 */
function startSlice(t: Tick, w: Walk<Walking>): Walk<Walking> | End {
  const { gates, target, steps, now } = t;
  if (w.s.phase !== 'idle') return w;
  if (target === 0) {
    // Before the first slice: the smoke test with `X-Canary: always` (when the override is configured) runs now.
    const ready = gateNamed(gates, 'ready');
    return endWith(
      w,
      ready?.verdict === 'pass'
        ? 'waiting: canary ready, no traffic yet (target 0 %; set a target to start the slice)'
        : `idle at 0 % (target 0 %)${ready ? `: ${describeGate(ready)}` : ''}`,
    );
  }
  const failing = firstFailing(gates);
  if (failing) return endWith(w, `waiting to start (target ${pct(target)}): ${describeGate(failing)}`);
  // The canary gets its first slice only once /ready answers 200 (docs/design.md "Numbers": "blackhole until ready").
  const ready = gateNamed(gates, 'ready');
  if (ready && ready.verdict !== 'pass')
    return endWith(w, `waiting to start (target ${pct(target)}): ${describeGate(ready)}; weight stays 0 %`);
  const nominal = Math.min(target, t.svc.rollout.slice);
  if (t.waitMs > 0) return waitForReload(t, w, `start the slice 0 % → ${pct(nominal)}`);
  if (steps > 1) {
    const first = rampWeight(nominal, 1, steps);
    const r: Ramp = { to: nominal, step: 1, steps, startedAt: now, cause: 'slice' };
    const s = moved(t, w.s, first, { phase: 'slice', pausedBy: null, resumePhase: null, drainReason: null, ramp: r });
    const e = eventOf(
      t,
      'slice',
      0,
      first,
      `first slice of ${pct(nominal)} toward target ${pct(target)}, ramped in ${steps} reloads (slow_start emulation)`,
    );
    return endWith(
      walkOf(w, s, e),
      `started the slice ramp 0 % → ${pct(first)} of ${pct(nominal)} (sub-step 1 of ${steps})`,
    );
  }
  const to = nominal;
  const s = moved(t, w.s, to, {
    phase: to === target ? 'complete' : 'slice',
    pausedBy: null,
    resumePhase: null,
    drainReason: null,
  });
  const e = eventOf(t, 'slice', 0, to, `first slice of ${pct(to)} toward target ${pct(target)}`);
  const complete = to === target ? [eventOf(t, 'complete', to, to, `the slice reached the target ${pct(target)}`)] : [];
  return endWith(walkOf(w, s, e, ...complete), `started the slice 0 % → ${pct(to)} (target ${pct(target)})`);
}

/**
 * Raise (docs/design.md "Rollout": only when every gate passes and the soak is
 * done). In: a walk at `slice` or `step` below the target. Out: the end of the
 * tick: a gate not passing holds and the soak not done soaks (summaries with the
 * green time of slice_soak / step_soak); otherwise weight min(target, weight +
 * step), event `step` (and `complete` at the target) — or, within
 * min_reload_interval, a wait.
 */
function raiseStep(t: Tick, w: Walk<Walking>): End {
  const { svc, target } = t;
  const { s } = w;
  const from = s.weight;
  const at = atTarget(t, s);
  const soakMs = s.phase === 'slice' ? svc.rollout.sliceSoakMs : svc.rollout.stepSoakMs;
  const soak = `${secs(s.soakedMs)} of ${secs(soakMs)} green`;
  const blocker = firstNotPassing(t.gates);
  if (blocker) return endWith(w, `holding at ${at}: ${describeGate(blocker)}; soaked ${soak}`);
  if (s.soakedMs < soakMs) return endWith(w, `soaking at ${at}: ${soak}`);
  const to = Math.min(target, roundWeight(from + svc.rollout.step));
  if (t.waitMs > 0) return waitForReload(t, w, `step ${pct(from)} → ${pct(to)}`);
  const next = moved(t, s, to, { phase: to === target ? 'complete' : 'step' });
  const e = eventOf(t, 'step', from, to, `${soak} at ${pct(from)}; stepped by ${svc.rollout.step} points`);
  const complete = to === target ? [eventOf(t, 'complete', to, to, `the step reached the target ${pct(target)}`)] : [];
  return endWith(walkOf(w, next, e, ...complete), `stepped ${pct(from)} → ${pct(to)} (target ${pct(target)})`);
}

/** Summary: what the tick produced, from its end (the next state, events, page and summary) and its gates. */
function outcome(t: Tick, end: End): ServiceOutcome {
  const { walk, summary, page } = end;
  return { next: walk.s, events: [...walk.events], page, gates: t.gates, summary };
}

/**
 * One service's tick: the steps above in the priority order of {@link decide}
 * (docs/design.md "Rollout"); the first step that ends the tick decides it.
 * Gates and soak first ({@link tickOf}, {@link accountSoak}); then the new-build
 * check, the target, a drain, a lowered target and the walk's place against the
 * target; a stopped walk (paused, drained, promoted) ends there; a walking one
 * meets the hold gates, its ramp, a recovered canary, completion, the start of
 * the slice, and last the raise.
 */
function decideService(
  svc: ServiceConfig,
  prev: ServiceState,
  obs: ServiceObservation | undefined,
  now: number,
  waitMs: number,
  steps: number,
): ServiceOutcome {
  const t = tickOf(svc, prev, obs, now, waitMs, steps);
  const placed = runSteps(t, accountSoak(t), [
    checkRelease,
    noticeTarget,
    drainOnGate,
    clampRamp,
    lowerToTarget,
    placeWalk,
  ]);
  if (isEnd(placed)) return outcome(t, placed);
  const walking = stopped(t, placed);
  if (isEnd(walking)) return outcome(t, walking);
  const last = runSteps(t, walking, [pauseOnHold, climbRamp, rampRecovered, stayComplete, startSlice]);
  return outcome(t, isEnd(last) ? last : raiseStep(t, last));
}

/**
 * One tick of the walk for every configured service (docs/design.md "Rollout").
 *
 * `observations[name]` covers `[max(now - gates.window, since), now]` (the
 * runner computes it): only traffic at the current weight. Rules, in priority order:
 * - a canary whose identity ({@link canaryIdentity}: servers and rollout.version) differs from `state.canary` is a
 *   new build: weight 0 (as soon as min_reload_interval allows), phase idle (an operator pause stays), event
 *   `release` naming what changed; the next ticks walk it from the slice. A state without `canary` adopts it;
 * - phase `promoted` stays until a new canary; a target change does not end it;
 * - a config target different from `state.target` is an event `target` (a new target ends a drain: phase idle);
 * - a failing drain gate (error_ratio, probe_failure_ratio, baseline_p95, crash_loop) at weight > 0 →
 *   weight 0, phase drained, event `drain`, one Page;
 * - target below the weight → weight = target at once, event `lower`, phase complete (idle at 0);
 * - a failing hold gate (ready, connect_p95, starved) resets the soak and pauses (event `pause`); a gate
 *   pause resumes (event `resume`) once no gate fails and every hold gate passes; an operator pause only by command;
 * - a running ramp (slow_start emulation) climbs one sub-step every {@link rampSpacingMs}, never closer than
 *   min_reload_interval (event `ramp`);
 * - with emulation, a canary that probes saw recover after the live weight was set is ramped back from
 *   near 0 to its weight (event `ramp`, cause `recovery`);
 * - idle, target > 0, no failing gate and the `ready` gate passing → weight min(target, slice), phase slice,
 *   event `slice`; with emulation, the first of `rampSteps` sub-steps instead ({@link rampWeight});
 * - slice/step, every gate `pass`, soak ≥ slice_soak / step_soak → weight min(target, weight + step), event `step`;
 * - reaching the target adds an event `complete` (phase complete).
 * Soak: a tick where every gate passes adds `clamp(now - lastTickAt, 0, gates.window)`; an inconclusive tick
 * adds nothing; it stays 0 while a ramp runs, so a step's soak starts when its ramp ends. A weight change
 * is proposed only when {@link reloadWaitMs} is 0; otherwise the weight stays and the summary says
 * `waiting for min_reload_interval`. `opts.emulateSlowStart` is true on open-source nginx.
 *
 * Returns the next state (when `changed`, its lastReloadAt is `now`; the runner commits it only after
 * the apply succeeded), the desired weight of every configured service, this tick's events (also
 * appended to `state.history`, newest {@link HISTORY_LIMIT} kept), pages, gate results and one
 * summary line per service. Services in state but not in config are kept as they are and left out
 * of `weights`. Pure: never throws, never mutates its arguments.
 */
export function decide(
  config: Config,
  state: State,
  observations: Observations,
  now: number,
  opts: DecideOptions = {},
): Decision {
  const mri = config.nginx.minReloadIntervalMs;
  const waitMs = reloadWaitMs(mri, state.lastReloadAt, now);
  const services: Record<string, ServiceState> = { ...state.services };
  const weights: Record<string, number> = {};
  const gates: Record<string, GateResult[]> = {};
  const summary: Record<string, string> = {};
  const events: RolloutEvent[] = [];
  const pages: Page[] = [];
  let changed = false;
  for (const svc of config.services) {
    const prev = own(state.services, svc.name) ?? freshServiceState(now);
    const steps = opts.emulateSlowStart === true ? rampSteps(svc, mri) : 1;
    const o = decideService(svc, prev, own(observations, svc.name), now, waitMs, steps);
    services[svc.name] = o.next;
    weights[svc.name] = o.next.weight;
    gates[svc.name] = o.gates;
    summary[svc.name] = o.summary;
    events.push(...o.events);
    if (o.page) pages.push(o.page);
    if (o.next.weight !== prev.weight) changed = true;
  }
  const next: State = {
    ...state,
    lastReloadAt: changed ? now : state.lastReloadAt,
    services,
    history: appendHistory(state.history, events),
  };
  return { state: next, weights, changed, events, pages, gates, summary };
}

/** Result of {@link applyCommand}. */
export interface CommandResult {
  /** The next state (history included); commit it (after the apply when `changed`). */
  state: State;
  /** Events the command added (empty when it was a no-op). */
  events: RolloutEvent[];
  /** True when the live weight must change (abort of a weight > 0): apply before committing. */
  changed: boolean;
}

/**
 * Applies an operator command to the state (pure; `now` in epoch ms):
 * - `pause`: any phase but drained and promoted → paused by the operator (never auto-resumed), resumePhase =
 *   phase; a gate pause becomes an operator pause; already paused by the operator, drained or promoted → no-op;
 * - `resume`: paused → resumePhase; drained → idle, so the next tick starts a slice; else no-op;
 * - `abort`: weight 0, phase drained, drainReason `operator`, event `abort` (no page); already
 *   drained or promoted at 0 → no-op.
 * Events carry no gate results. When the weight changes, lastReloadAt is `now`.
 * Throws NC_UNKNOWN_SERVICE (errors.unknownService) when the service is not in the config.
 */
export function applyCommand(config: Config, state: State, cmd: Command, now: number): CommandResult {
  const svc = config.services.find((c) => c.name === cmd.service);
  if (!svc) throw errors.unknownService(cmd.service);
  const prev = own(state.services, svc.name) ?? freshServiceState(now);
  const w = prev.weight;
  let next: ServiceState = prev;
  let event: RolloutEvent | null = null;
  const mk = (kind: EventKind, to: number, reason: string): RolloutEvent => ({
    at: now,
    service: svc.name,
    kind,
    from: w,
    to,
    reason,
    gates: [],
  });

  if (cmd.kind === 'pause') {
    if (prev.phase === 'paused' && prev.pausedBy === 'gate') {
      next = { ...prev, pausedBy: 'operator' };
      event = mk('pause', w, 'operator pause (the walk was already held by a gate)');
    } else if (prev.phase !== 'paused' && prev.phase !== 'drained' && prev.phase !== 'promoted') {
      next = { ...prev, phase: 'paused', pausedBy: 'operator', resumePhase: prev.phase };
      event = mk('pause', w, 'operator pause');
    }
  } else if (cmd.kind === 'resume') {
    if (prev.phase === 'paused') {
      next = { ...prev, phase: prev.resumePhase ?? 'idle', pausedBy: null, resumePhase: null };
      event = mk('resume', w, `operator resume; back to ${next.phase}`);
    } else if (prev.phase === 'drained') {
      next = { ...prev, phase: 'idle', drainReason: null };
      event = mk('resume', w, 'operator resume after a drain; the next tick starts a slice');
    }
  } else if ((prev.phase !== 'drained' && prev.phase !== 'promoted') || w > 0) {
    next = {
      ...prev,
      weight: 0,
      phase: 'drained',
      pausedBy: null,
      resumePhase: null,
      drainReason: 'operator',
      ramp: null,
      soakedMs: 0,
      since: Math.max(prev.since, now),
    };
    event = mk('abort', 0, 'operator abort: canary weight to 0');
  }

  if (!event) return { state, events: [], changed: false };
  const changed = next.weight !== w;
  return {
    state: {
      ...state,
      lastReloadAt: changed ? now : state.lastReloadAt,
      services: { ...state.services, [svc.name]: next },
      history: appendHistory(state.history, [event]),
    },
    events: [event],
    changed,
  };
}
