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

/** One service's tick; see {@link decide} for the rules. */
function decideService(
  svc: ServiceConfig,
  prev: ServiceState,
  obs: ServiceObservation | undefined,
  now: number,
  waitMs: number,
  steps: number,
): ServiceOutcome {
  const gates = evaluateGates(svc, obs, { weight: prev.weight });
  const target = svc.rollout.target;
  const events: RolloutEvent[] = [];
  let page: Page | null = null;
  const event = (
    kind: EventKind,
    from: number,
    to: number,
    reason: string,
    behind: GateResult[] = gates,
  ): RolloutEvent => {
    const e: RolloutEvent = { at: now, service: svc.name, kind, from, to, reason, gates: behind };
    events.push(e);
    return e;
  };
  const out = (summary: string): ServiceOutcome => ({ next: s, events, page, gates, summary });
  const waiting = (what: string): ServiceOutcome =>
    out(`waiting for min_reload_interval (${secs(waitMs)} left) to ${what} (target ${pct(target)})`);

  // e. Soak: a green tick vouches for at most one window; a jump back adds 0; a hold failure restarts the soak.
  const gap = Math.min(Math.max(now - prev.lastTickAt, 0), svc.gates.windowMs);
  const holdFail = firstFailing(gates, 'hold');
  const ramping = (prev.ramp ?? null) !== null;
  const soakedMs = holdFail || ramping ? 0 : allPass(gates) ? prev.soakedMs + gap : prev.soakedMs;
  let s: ServiceState = { ...prev, soakedMs, lastTickAt: Math.max(prev.lastTickAt, now) };
  /** Every weight change restarts the soak and the judged window. */
  const move = (to: number, fields: Partial<ServiceState>): void => {
    s = { ...s, ...fields, weight: to, soakedMs: 0, since: Math.max(prev.since, now) };
  };
  /** A new canary build: weight 0, a fresh walk (an operator pause stays), the old walk's evidence cut off at `since`. */
  const newCanary = (known: string, identity: string): ServiceOutcome => {
    const what = describeIdentityChange(known, identity);
    const paused = s.phase === 'paused' && s.pausedBy === 'operator';
    s = {
      ...s,
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
    event(
      'release',
      prev.weight,
      0,
      `new canary (${what}): weight ${pct(prev.weight)} → 0 % at once; the new build walks from the slice once its /ready answers 200`,
      [],
    );
    return out(
      `new canary (${what}): ${pct(prev.weight)} → 0 %; the walk starts again from the slice (target ${pct(target)})`,
    );
  };

  // a. A new canary (other servers, or another rollout.version) is a new walk: weight 0 as soon as
  // min_reload_interval allows (the safe direction), the soak and the judged window restarted.
  const identity = canaryIdentity(svc);
  const known = prev.canary ?? null;
  if (known !== null && known !== identity) {
    if (waitMs > 0 && prev.weight > 0)
      return waiting(`drop the replaced canary ${pct(prev.weight)} → 0 % (${describeIdentityChange(known, identity)})`);
    return newCanary(known, identity);
  }
  if (known === null) s = { ...s, canary: identity };

  // b. Target changes (weights.yaml) are noticed every tick; a new target ends a drain.
  if (target !== prev.target) {
    event(
      'target',
      prev.target,
      target,
      `target changed from ${pct(prev.target)} to ${pct(target)} in weights.yaml`,
      [],
    );
    s = { ...s, target };
    if (s.phase === 'drained') s = { ...s, phase: 'idle', drainReason: null };
  }
  const from = s.weight;
  const at = `${pct(from)} (target ${pct(target)})`;

  // h. Drain has priority over everything, paused or not.
  const drainFail = firstFailing(gates, 'drain');
  if (drainFail && from > 0) {
    const why = describeGate(drainFail);
    if (waitMs > 0) return waiting(`drain ${pct(from)} → 0 % (${why})`);
    move(0, { phase: 'drained', pausedBy: null, resumePhase: null, drainReason: drainFail.gate, ramp: null });
    const e = event('drain', from, 0, `drain gate ${why}`);
    const summary = `drained ${svc.name} from ${pct(from)} to 0 %: ${why}`;
    page = { service: svc.name, reason: drainFail.gate, summary, event: e };
    return out(summary);
  }

  // A ramp toward a weight above a lowered target now ends at the target (if it is still above the live weight).
  if (s.ramp && s.ramp.to > target && target > from) s = { ...s, ramp: { ...s.ramp, to: target } };

  // c. A lower target applies at once (the safe direction); an operator pause stays, a gate pause at 0 has nothing to hold.
  if (from > target) {
    if (waitMs > 0) return waiting(`lower ${pct(from)} → ${pct(target)}`);
    const after: Resumable = target === 0 ? 'idle' : 'complete';
    if (s.phase === 'paused' && (s.pausedBy === 'operator' || target > 0))
      move(target, { resumePhase: after, ramp: null });
    else move(target, { phase: after, pausedBy: null, resumePhase: null, drainReason: null, ramp: null });
    event('lower', from, target, `target ${pct(target)} is below the weight; lowered at once`, []);
    return out(`lowered ${pct(from)} → ${pct(target)} (target ${pct(target)})`);
  }

  // Re-place the walk against the (possibly new) target without moving the weight.
  let resumeTo: Resumable = 'idle';
  if (s.phase === 'paused') {
    resumeTo = settle(s.resumePhase ?? 'idle', from, target);
    s = { ...s, resumePhase: resumeTo };
  } else if (s.phase !== 'drained' && s.phase !== 'promoted' && !s.ramp) {
    const placed = settle(s.phase, from, target);
    if (placed === 'complete' && s.phase !== 'complete')
      event('complete', from, from, `weight reached the target ${pct(target)}`);
    s = { ...s, phase: placed };
  }

  // g. Pause: an operator pause waits for the operator; a gate pause resumes once nothing fails and every hold gate passes.
  if (s.phase === 'paused') {
    if (s.pausedBy === 'gate' && !firstFailing(gates) && allPassOfKind(gates, 'hold')) {
      s = { ...s, phase: resumeTo, pausedBy: null, resumePhase: null };
      event('resume', from, from, `hold gates green again; back to ${resumeTo}`);
      return out(`resumed at ${at}: every gate passes`);
    }
    if (s.pausedBy === 'operator')
      return out(`paused at ${at} by the operator: run \`nginx-canary resume ${svc.name}\``);
    const red = gates.filter((r) => r.verdict !== 'pass').map(describeGate);
    return out(`paused at ${at} by a hold gate: ${red.join('; ')}; resumes when every gate is green`);
  }
  if (s.phase === 'drained') {
    return out(
      `drained at 0 % (target ${pct(target)}) by ${s.drainReason ?? 'a drain'}: set a new target or run \`nginx-canary resume ${svc.name}\``,
    );
  }
  if (s.phase === 'promoted') {
    return out(
      `promoted${s.promotedVersion ? ` ${s.promotedVersion}` : ''}: the primary serves it, canary 0 %; a new canary build (\`nginx-canary release ${svc.name} <version>\` or new servers) starts the next walk`,
    );
  }
  if (holdFail && from > 0) {
    s = { ...s, resumePhase: s.phase, phase: 'paused', pausedBy: 'gate' };
    event('pause', from, from, `hold gate ${describeGate(holdFail)}`);
    return out(`paused at ${at}: ${describeGate(holdFail)}`);
  }
  // i. A running ramp (slow_start emulation) climbs one sub-step every slow_start / steps; only drains and hold gates stop it.
  const ramp = s.ramp ?? null;
  if (ramp) {
    const to = rampWeight(ramp.to, ramp.step + 1, ramp.steps);
    const of = `sub-step ${ramp.step} of ${ramp.steps} toward ${pct(ramp.to)}`;
    // Due at startedAt + step × spacing; a wall clock behind startedAt must not stall the ramp for hours.
    const dueIn = now < ramp.startedAt ? 0 : ramp.startedAt + ramp.step * rampSpacingMs(svc, ramp.steps) - now;
    if (dueIn > 0) return out(`ramping at ${at}: ${of}, next sub-step in ${secs(dueIn)} (slow_start emulation)`);
    if (waitMs > 0) return waiting(`ramp ${pct(from)} → ${pct(to)} (${of}, slow_start emulation)`);
    const done = ramp.step + 1 >= ramp.steps;
    const phase: Resumable = done ? settle(s.phase, to, target) : s.phase;
    move(to, { phase, ramp: done ? null : { ...ramp, step: ramp.step + 1 } });
    event(
      'ramp',
      from,
      to,
      `slow_start emulation: sub-step ${ramp.step + 1} of ${ramp.steps} toward ${pct(ramp.to)}${done ? '; the soak starts now' : ''}`,
      [],
    );
    if (done && phase === 'complete') event('complete', to, to, `the ramp reached the target ${pct(target)}`, []);
    return out(
      `ramped ${pct(from)} → ${pct(to)} (${done ? 'ramp done, soak starts' : `sub-step ${ramp.step + 1} of ${ramp.steps}`})`,
    );
  }

  // j. A canary server back after probes saw it unhealthy re-enters the rotation through a ramp (slow_start emulation).
  const recoveredAt = obs?.probes?.canary.recoveredAt ?? null;
  if (steps > 1 && from > 0 && recoveredAt !== null && recoveredAt > prev.since) {
    if (waitMs > 0) return waiting(`ramp the recovered canary back up from near 0 to ${pct(from)}`);
    const first = rampWeight(from, 1, steps);
    const phase: Resumable = s.phase === 'complete' ? 'step' : s.phase;
    move(first, { phase, ramp: { to: from, step: 1, steps, startedAt: now, cause: 'recovery' } });
    event(
      'ramp',
      from,
      first,
      `canary healthy again after probes saw it unhealthy: slow_start emulation ramps back to ${pct(from)} in ${steps} reloads`,
    );
    return out(`ramping the recovered canary ${pct(first)} → ${pct(from)} (sub-step 1 of ${steps})`);
  }

  if (s.phase === 'complete') return out(`complete at ${at}`);

  // d. Start: the first slice from 0 (inconclusive is expected at 0 %: no canary traffic yet; a failing gate blocks).
  if (s.phase === 'idle') {
    if (target === 0) {
      // Before the first slice: the smoke test with `X-Canary: always` (when the override is configured) runs now.
      const ready = gateNamed(gates, 'ready');
      return out(
        ready?.verdict === 'pass'
          ? 'waiting: canary ready, no traffic yet (target 0 %; set a target to start the slice)'
          : `idle at 0 % (target 0 %)${ready ? `: ${describeGate(ready)}` : ''}`,
      );
    }
    const failing = firstFailing(gates);
    if (failing) return out(`waiting to start (target ${pct(target)}): ${describeGate(failing)}`);
    // The canary gets its first slice only once /ready answers 200 (docs/design.md "Numbers": "blackhole until ready").
    const ready = gateNamed(gates, 'ready');
    if (ready && ready.verdict !== 'pass')
      return out(`waiting to start (target ${pct(target)}): ${describeGate(ready)}; weight stays 0 %`);
    const nominal = Math.min(target, svc.rollout.slice);
    if (waitMs > 0) return waiting(`start the slice 0 % → ${pct(nominal)}`);
    if (steps > 1) {
      const first = rampWeight(nominal, 1, steps);
      const r: Ramp = { to: nominal, step: 1, steps, startedAt: now, cause: 'slice' };
      move(first, { phase: 'slice', pausedBy: null, resumePhase: null, drainReason: null, ramp: r });
      event(
        'slice',
        0,
        first,
        `first slice of ${pct(nominal)} toward target ${pct(target)}, ramped in ${steps} reloads (slow_start emulation)`,
      );
      return out(`started the slice ramp 0 % → ${pct(first)} of ${pct(nominal)} (sub-step 1 of ${steps})`);
    }
    const to = nominal;
    move(to, { phase: to === target ? 'complete' : 'slice', pausedBy: null, resumePhase: null, drainReason: null });
    event('slice', 0, to, `first slice of ${pct(to)} toward target ${pct(target)}`);
    if (to === target) event('complete', to, to, `the slice reached the target ${pct(target)}`);
    return out(`started the slice 0 % → ${pct(to)} (target ${pct(target)})`);
  }

  // f. Raise: slice/step below the target, every gate green for the whole soak.
  const soakMs = s.phase === 'slice' ? svc.rollout.sliceSoakMs : svc.rollout.stepSoakMs;
  const soak = `${secs(s.soakedMs)} of ${secs(soakMs)} green`;
  const blocker = firstNotPassing(gates);
  if (blocker) return out(`holding at ${at}: ${describeGate(blocker)}; soaked ${soak}`);
  if (s.soakedMs < soakMs) return out(`soaking at ${at}: ${soak}`);
  const to = Math.min(target, roundWeight(from + svc.rollout.step));
  if (waitMs > 0) return waiting(`step ${pct(from)} → ${pct(to)}`);
  move(to, { phase: to === target ? 'complete' : 'step' });
  event('step', from, to, `${soak} at ${pct(from)}; stepped by ${svc.rollout.step} points`);
  if (to === target) event('complete', to, to, `the step reached the target ${pct(target)}`);
  return out(`stepped ${pct(from)} → ${pct(to)} (target ${pct(target)})`);
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
