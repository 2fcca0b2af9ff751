/**
 * Rollout vocabulary shared by the pure core (`gates.ts`, `decide.ts`), the
 * store (`store.ts`) and the runner. All times are epoch milliseconds from the
 * injected Clock; all weights are canary percent 0–100 with one decimal.
 */
import type { Pool } from '../config/types.js';

/**
 * Phases (docs/design.md "Rollout"):
 * - `idle`: weight 0, target 0 (or waiting for the first slice);
 * - `slice`: soaking at the first slice;
 * - `step`: soaking at a later weight;
 * - `paused`: a hold gate is red (resumes by itself) or the operator paused;
 * - `drained`: a drain gate fired or the operator aborted; weight 0 until a new target or resume;
 * - `complete`: weight = target and green;
 * - `promoted`: the release ended (`promote`): the primary servers run the canary's build and take
 *   all traffic, canary 0 until a new canary (new servers or `rollout.version`) starts a new walk.
 */
export type Phase = 'idle' | 'slice' | 'step' | 'paused' | 'drained' | 'complete' | 'promoted';

/** Every phase, in display order (for metrics that emit one series per phase). */
export const PHASES: readonly Phase[] = ['idle', 'slice', 'step', 'paused', 'drained', 'complete', 'promoted'];

/** Why the walk is paused. */
export type PauseReason = 'gate' | 'operator';

/** Progress of one service (state.json `services.<name>`). */
export interface ServiceState {
  /** Live canary weight, percent 0–100 (what nginx serves once the apply succeeded). */
  weight: number;
  /** Where the walk stands (see {@link Phase}). */
  phase: Phase;
  /** The phase the walk was in before `paused` (to return to); null when not paused. */
  resumePhase: 'idle' | 'slice' | 'step' | 'complete' | null;
  /** Set while paused. */
  pausedBy: PauseReason | null;
  /** The target this state last acted on, percent 0–100 (a change in weights.yaml is detected against it). */
  target: number;
  /** When the live weight last changed, epoch ms. Observations are judged from here (see decide). */
  since: number;
  /**
   * Soak accumulated at this weight with every gate passing, ms. Grows by the
   * time between two green ticks and never by more than one tick's gap, so a
   * wall-clock jump cannot skip a soak nor restart it from zero (README
   * "Faults, and what the sidecar does": clock jump).
   */
  soakedMs: number;
  /** Time of the last tick that evaluated this service, epoch ms (for soak accounting). */
  lastTickAt: number;
  /** Reason of the last drain, when phase is `drained`. */
  drainReason: string | null;
  /**
   * The slow_start emulation on open-source nginx (docs/design.md "slow_start on
   * open-source nginx"), or null when no ramp runs. While it runs, `weight` is
   * the ramp's current sub-step and the soak does not accumulate. Absent in
   * a state.json written by 0.1 (read as null).
   */
  ramp?: Ramp | null;
  /**
   * The identity of the canary this walk is about ({@link canaryIdentity}: its servers and
   * `rollout.version`). A different identity in the config starts a new walk: weight 0 at once,
   * evidence discarded, the slice again. Absent in a state.json written before releases existed
   * (read as "adopt the configured canary").
   */
  canary?: string | null;
  /**
   * When this canary build's walk began (a `release` event), epoch ms; the canary's probes are judged
   * only from here, so a redeploy's restart of the old build is not held against the new one. Null or
   * absent: no release seen.
   */
  releasedAt?: number | null;
  /** The version `promote` ended the last release with (`rollout.version`, or null when none was set), set in phase `promoted`. */
  promotedVersion?: string | null;
}

/**
 * A weight ramp from near 0 to `to` in `steps` reloads spaced by
 * min_reload_interval: sub-step i (1…steps) serves `to × i / steps` percent
 * (rounded to 0.1, at least 0.1). The step's soak starts when sub-step
 * `steps` is live.
 */
export interface Ramp {
  /** Nominal weight the ramp ends at, percent 0–100. */
  to: number;
  /** Sub-step now live, 1…steps. */
  step: number;
  /** Number of sub-steps: ceil(slow_start / min_reload_interval), at least 1. */
  steps: number;
  /** Epoch ms the ramp started (its first sub-step was proposed). */
  startedAt: number;
  /** Why the ramp runs: the canary entered the rotation (`slice`) or came back after probes saw it unhealthy (`recovery`). */
  cause: 'slice' | 'recovery';
}

/** A gate's answer (as Argo Rollouts' analysis, whose third verdict is Inconclusive). Inconclusive holds; never steps, never drains. */
export type Verdict = 'pass' | 'fail' | 'inconclusive';

/** What a failing gate does. */
export type GateKind = 'hold' | 'drain';

/** Names of the gates (see gates.ts for what each measures and its source). */
export type GateName =
  'ready' | 'connect_p95' | 'starved' | 'error_ratio' | 'probe_failure_ratio' | 'baseline_p95' | 'crash_loop';

/** One gate's verdict with the numbers behind it. */
export interface GateResult {
  /** Which gate. */
  gate: GateName;
  /** What a failure does: `hold` pauses, `drain` sets the canary to 0. */
  kind: GateKind;
  /** The pool judged (the canary for every gate today). */
  pool: Pool;
  /** The answer; inconclusive holds, never steps, never drains. */
  verdict: Verdict;
  /**
   * The measured value in the gate's unit, or null without data: ms for connect_p95 and
   * baseline_p95, ratio 0–1 for error_ratio and probe_failure_ratio, percent 0–100 (the canary's
   * share of attempts) for starved, a count of down transitions for crash_loop, 1 or 0 for ready.
   */
  value: number | null;
  /** The threshold in the same unit. */
  threshold: number;
  /**
   * Samples the verdict rests on: canary attempts in the window (connect_p95, error_ratio), health
   * probes (probe_failure_ratio, crash_loop), attempts of both pools (starved), the smaller pool's
   * attempts (baseline_p95), 1 or 0 (ready).
   */
  samples: number;
  /** Minimum samples for a verdict (starved: the total attempts that give the canary min_requests at its weight). */
  minSamples: number;
  /**
   * The other numbers behind the verdict, by name, in the units the name says
   * (`…_ms` ms, `…_ratio` ratio 0–1, counts bare), e.g. for error_ratio
   * `{ errors, statistic, bound, multiple }`; for connect_p95 `{ log_p95_ms, probe_p95_ms, probes }`.
   * Recorded with the decision in the history, the logs and `status`.
   */
  detail?: Record<string, number | null>;
}

/** One pool's aggregate over the judged window (see observe/window.ts). */
export interface PoolObservation {
  /** Upstream attempts (one access-log line may hold several). */
  requests: number;
  /** Attempts whose upstream status was ≥ 500 (including nginx-made 502/504 for a failed attempt). */
  errors: number;
  /** p95 of $upstream_connect_time over the attempts that connected, ms; null without samples. */
  connectP95Ms: number | null;
  /**
   * p95 of $upstream_response_time over the attempts that connected, ms; null without samples.
   * A timed-out or abandoned attempt counts with the time it took (a lower bound), so a canary
   * too slow for its clients still shows as slow; a refused one (logged 0.000) is left out.
   */
  responseP95Ms: number | null;
  /**
   * Attempts and 5xx attempts per window bucket over the judged span, oldest
   * first (empty buckets included, so the order is time order): the input of
   * the sequential error test (rollout/sequential.ts).
   */
  series: CountBucket[];
  /**
   * The most requests one access-log line stood for in the span: 100 / the
   * smallest `sample` percent of a counted line (docs/design.md "Sampled
   * access log"), ≥ 1; absent when every counted line stood for itself (1).
   * The error test's bounds are calibrated for it (rollout/sequential.ts
   * `sampleWeight`), so a sampled log does not raise the false drains.
   */
  sampleWeight?: number;
}

/** Attempts and errors in one window bucket. */
export interface CountBucket {
  /** Upstream attempts in the bucket. */
  attempts: number;
  /** Of those, the failed ones (status ≥ 500 or none; see observe/parse.ts `attemptFailed`). */
  errors: number;
  /**
   * Of those, the failed attempts at the bucket's end in a row (its trailing
   * failure run, in the order the sidecar read them), ≤ errors; absent or 0
   * when unknown — a bucket summed from several servers or hosts, whose
   * interleaving is lost. The sequential test starts a run there too
   * (rollout/sequential.ts), so a fault that begins inside a busy bucket is
   * judged on its own attempts.
   */
  tail?: number;
}

/**
 * One pool's synthetic probes (docs/design.md "Observations": undici, one new
 * connection per probe) over `[now - gates.window, now]` — probes do not depend
 * on the weight, so unlike the access log they are not cut at `since`.
 */
export interface ProbeObservation {
  /** Health probes finished in the window, all servers of the pool. */
  probes: number;
  /** Of those, the ones that failed (connect error, timeout, or a status other than 2xx). */
  failures: number;
  /** p95 of the probes' TCP connect time, ms with sub-ms resolution; null without a connected probe. */
  connectP95Ms: number | null;
  /** p95 of the probes' total time (connect to last body byte), ms; null without a finished probe. */
  totalP95Ms: number | null;
  /**
   * Readiness of the pool: true when every server's latest `/ready` probe
   * answered 200, false when any answered otherwise or failed, null before
   * every server has had one.
   */
  ready: boolean | null;
  /** True when every server's latest health probe passed, false when any failed, null before any probe. */
  healthy: boolean | null;
  /** healthy→unhealthy transitions of the pool's servers within `[now - gates.crash_loop_window, now]`. */
  downTransitions: number;
  /** Epoch ms of the newest unhealthy→healthy transition of any server of the pool, or null. */
  recoveredAt: number | null;
}

/** Observations of one service: the access log over `[max(now - gates.window, state.since), now]`, the probes over their own span. */
export interface ServiceObservation {
  /** The primary pool's access-log view. */
  primary: PoolObservation;
  /** The canary pool's access-log view. */
  canary: PoolObservation;
  /** The probes' view; absent when no prober runs (probe gates are then inconclusive: no data is not green). */
  probes?: { primary: ProbeObservation; canary: ProbeObservation };
}

/** Observations keyed by service name. A missing service means "no data" (inconclusive). */
export type Observations = Record<string, ServiceObservation>;

/** Kinds of events in the history. */
export type EventKind =
  | 'target'
  | 'slice'
  | 'step'
  | 'lower'
  | 'complete'
  | 'pause'
  | 'resume'
  | 'drain'
  | 'abort'
  | 'apply_failed'
  | 'rollback'
  | 'hold'
  | 'ramp'
  | 'release'
  | 'promote';

/** One entry of the event history (state.json `history`, the logs, `status`). */
export interface RolloutEvent {
  /** Epoch ms. */
  at: number;
  /** Service name. */
  service: string;
  /** What happened. */
  kind: EventKind;
  /** Weight before, percent. */
  from: number;
  /** Weight after (or proposed, for apply_failed), percent. */
  to: number;
  /** One sentence: why. */
  reason: string;
  /** The gate results behind the decision (empty for operator actions). */
  gates: GateResult[];
}

/** Everything in state.json. Progress only: desired state lives in weights.yaml. */
export interface State {
  /** File format version. */
  version: 1;
  /** Config generation last proven live (rendered into nginx, answered by the status server). */
  generation: number;
  /** Epoch ms of the last successful reload (min_reload_interval is measured from here). */
  lastReloadAt: number;
  /** Progress per service name. */
  services: Record<string, ServiceState>;
  /** Newest last; bounded to {@link HISTORY_LIMIT} entries. */
  history: RolloutEvent[];
}

/** How many events state.json keeps (a chosen bound on its size, not a runbook number). */
export const HISTORY_LIMIT = 500;

/** An operator command (CLI / API) applied to the state by `applyCommand`. */
export type Command =
  { kind: 'pause'; service: string } | { kind: 'resume'; service: string } | { kind: 'abort'; service: string };

/** A page to send (the pager path; webhook and Prometheus rule). */
export interface Page {
  /** Service name. */
  service: string;
  /** The drain reason (gate name or `operator`). */
  reason: string;
  /** One sentence with the numbers: `drained <service> from 15 % to 0 %: <gate description>`. */
  summary: string;
  /** The `drain` event the page is about (its `at`, epoch ms, dedups deliveries). */
  event: RolloutEvent;
}

/**
 * Output of `decide`: the next state if its weights are made live, the weights
 * nginx must serve, and what happened. The runner applies `weights` when they
 * differ from the live ones and commits `state` only after the apply succeeded.
 */
export interface Decision {
  /** The next state; when `changed`, its lastReloadAt is `now`. */
  state: State;
  /** Desired live canary weight per service, percent. */
  weights: Record<string, number>;
  /** True when `weights` differ from the current live weights. */
  changed: boolean;
  /** Events this tick added to `state.history` (also logged). */
  events: RolloutEvent[];
  /** Pages to send (drains). */
  pages: Page[];
  /** Gate results per service this tick (for metrics and status). */
  gates: Record<string, GateResult[]>;
  /**
   * One line per service saying what the walk does now and why, with numbers,
   * e.g. `soaking at 15 %: 3.2 s of 5 s green` or `holding: canary has 12 of 20 requests`.
   */
  summary: Record<string, string>;
}
