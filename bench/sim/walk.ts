/**
 * The simulated walk of bench/gates.ts: canary attempts arriving as a Poisson
 * stream, thinned into 5xx with the true error ratio of the moment, counted
 * per gate tick. Detectors (detectors.ts) then replay the same ticks, each in
 * its own loop, bucketing them the way src/observe/window.ts does and
 * restarting the judged span at every weight change. With a sample weight w
 * (`SimParams.sampleWeight`) the access log keeps every failure and each
 * success with probability 1/w, and the follower counts a logged success as
 * w attempts (src/rollout/sequential.ts `ErrorTestOptions.sampleWeight`).
 */
import type { Rng, Samplers } from './prng.js';

/** The simulated deployment (units in the names). */
export interface SimParams {
  /** Canary attempts per second (mean of a Poisson stream). */
  ratePerS: number;
  /** Gate tick interval, ms. */
  tickMs: number;
  /** Window bucket width, ms (window.ts: max(100 ms, window / 60)). */
  bucketMs: number;
  /** Soaks in the walk (slice + steps). */
  stages: number;
  /** Duration of each soak, ms (must not exceed the window, so the span is never trimmed). */
  stageMs: number;
  /** gates.error_ratio, ratio 0–1. */
  threshold: number;
  /**
   * Sample weight of the access log, ≥ 1 (absent: 1, every line): failures
   * always logged, each success logged with probability 1/w and counted w times.
   */
  sampleWeight?: number;
}

/** One simulated case. */
export interface Scenario {
  name: string;
  /** True 5xx ratio before the onset (ratio 0–1). */
  base: number;
  /** True 5xx ratio from the onset on. */
  bad: number;
  /** Soak (0 = slice) whose start the detectors are judged from; 60 s of traffic precede it unless it is 0. */
  firstStage: number;
  /** False when the ratio stays `base` for the whole walk (onsetMs gives null). */
  hasOnset: boolean;
  /** Onset time, ms from the walk start (rounded up to a tick), or null for no onset; drawn per walk. */
  onsetMs: (rng: Rng) => number | null;
}

/**
 * One walk's ticks. Tick t covers walk time [t, t + 1) × tickMs and is judged
 * at its end; ticks before `from` only fill buckets (traffic before the first
 * judged weight change).
 */
export interface Walk {
  /** Attempts per tick (all of them, logged or not: the delays in attempts count these). */
  attempts: Int32Array;
  /**
   * Attempts per tick as the follower counts them from the access log: the
   * 5xx plus w × the logged successes (= `attempts` at w = 1). The detectors read these.
   */
  counted: Float64Array;
  /** 5xx attempts per tick (always logged). */
  errors: Int32Array;
  /**
   * The tick's trailing run of 5xx among its logged lines (in a uniformly
   * random order; unlogged successes are not seen): observe/window.ts's bucket tail.
   */
  tails: Int32Array;
  /** First simulated tick. */
  start: number;
  /** First judged tick (a weight change happens at its start). */
  from: number;
  /** One past the last tick. */
  end: number;
  /** Ticks per bucket. */
  bucketTicks: number;
  /** Ticks per soak: the judged span restarts at every multiple. */
  stageTicks: number;
  /** Offset of the bucket grid: tick t opens a bucket when (t + phase) % bucketTicks = 0. */
  phase: number;
  /** First tick at the bad ratio; Infinity without onset. */
  onset: number;
}

/** Ticks of the whole walk for `params`. */
export function walkTicks(params: SimParams): number {
  return params.stages * Math.round(params.stageMs / params.tickMs);
}

/**
 * Draws one walk of `scenario` from `rng` into `buf` (reused across walks).
 * The bucket grid is offset from the walk by a uniform whole number of ticks,
 * so weight changes and onsets fall anywhere in a bucket, as on a real clock.
 * A bucket grid of a different width draws the same traffic from the same seed.
 */
export function drawWalk(params: SimParams, scenario: Scenario, rng: Rng, samplers: Samplers, buf?: Walk): Walk {
  const tickS = params.tickMs / 1000;
  const bucketTicks = Math.max(1, Math.round(params.bucketMs / params.tickMs));
  const stageTicks = Math.round(params.stageMs / params.tickMs);
  const end = params.stages * stageTicks;
  const u = rng.next();
  const phase = Math.floor(u * bucketTicks);
  const onsetMs = scenario.onsetMs(rng);
  const onset = onsetMs === null ? Infinity : Math.ceil(onsetMs / params.tickMs);
  const from = scenario.firstStage * stageTicks;
  const start = scenario.firstStage === 0 ? 0 : from - Math.round(60_000 / params.tickMs);
  const w: Walk = buf ?? {
    attempts: new Int32Array(end),
    counted: new Float64Array(end),
    errors: new Int32Array(end),
    tails: new Int32Array(end),
    start,
    from,
    end,
    bucketTicks,
    stageTicks,
    phase,
    onset,
  };
  Object.assign(w, { start, from, end, bucketTicks, stageTicks, phase, onset });
  const arrivals = samplers.poisson(params.ratePerS * tickS);
  const good = samplers.binomial(scenario.base);
  const bad = samplers.binomial(scenario.bad);
  const weight = sampleWeightOf(params.sampleWeight);
  // Unsampled, no draw is added: the same seed gives the same walks as before sampling.
  const logged = weight > 1 ? samplers.binomial(1 / weight) : null;
  for (let t = start; t < end; t++) {
    const n = arrivals.sample(rng);
    w.attempts[t] = n;
    const e = (t >= onset ? bad : good).sample(rng, n);
    w.errors[t] = e;
    const s = logged === null ? n - e : logged.sample(rng, n - e);
    w.counted[t] = logged === null ? n : e + weight * s;
    w.tails[t] = trailingRun(rng, e + s, e);
  }
  return w;
}

/** A sample weight made safe: finite and ≥ 1, else 1 (as src/rollout/sequential.ts reads it). */
export function sampleWeightOf(w: number | undefined): number {
  return w !== undefined && w >= 1 && w < Infinity ? w : 1;
}

/**
 * The trailing run of 5xx among `n` attempts of which `e` are 5xx, in a
 * uniformly random order: each attempt from the end is a 5xx with
 * probability (5xx left) / (attempts left). Draws only when 0 < e < n.
 */
export function trailingRun(rng: Rng, n: number, e: number): number {
  if (e <= 0) return 0;
  if (e >= n) return n;
  let r = 0;
  while (r < e && rng.next() * (n - r) < e - r) r++;
  return r;
}

/** What happened to one detector in one walk. */
export interface Outcome {
  /** Drained before the onset (or at all, without onset). */
  falseDrain: boolean;
  /** Canary attempts from the onset to the drain tick inclusive; Infinity when it never drained; NaN for a false drain or no onset. */
  attempts: number;
  /** Seconds from the onset to the end of the drain tick; same conventions as `attempts`. */
  seconds: number;
}

/** The outcome of a detector that first drained at tick `drain` (−1 = never). */
export function outcome(w: Walk, drain: number, tickMs: number): Outcome {
  if (drain >= 0 && drain < w.onset) return { falseDrain: true, attempts: NaN, seconds: NaN };
  if (w.onset === Infinity) return { falseDrain: false, attempts: NaN, seconds: NaN };
  if (drain < 0) return { falseDrain: false, attempts: Infinity, seconds: Infinity };
  let attempts = 0;
  for (let t = w.onset; t <= drain; t++) attempts += w.attempts[t] as number;
  return { falseDrain: false, attempts, seconds: ((drain - w.onset + 1) * tickMs) / 1000 };
}
