/**
 * The sequential test behind the `error_ratio` drain gate (docs/design.md
 * "Gates"): a decision on counts (attempts, 5xx attempts) that stays valid
 * when it is looked at on every tick, unlike a fixed-sample ratio peeked at
 * until it happens to exceed the threshold.
 *
 * For each multiple `m` of {@link ERROR_TEST_MULTIPLES} it runs the one-sided
 * Bernoulli SPRT of H0 `p = threshold` against H1 `p = m × threshold` (Wald
 * 1945) as a CUSUM over the count series' buckets (≤ 1 s each, observe/window.ts
 * `seriesWidthMs`; Page 1954): the statistic is the largest log-likelihood
 * ratio of any run of consecutive buckets of the judged span, i.e. the SPRT
 * started at the best bucket boundary, so good traffic before an onset does
 * not delay the drain. The alternative with the largest p1 (the canary that
 * answers only 5xx) also starts at each bucket's trailing run of failures
 * (`CountBucket.tail`), so a fault that begins inside a busy bucket is not
 * diluted by the good attempts before it in that bucket (in the bucket being
 * filled, only a run of {@link currentRunMinimum} failures). The gate drains when
 * any alternative's statistic reaches its own bound, and the bounds are
 * calibrated to the walk the configuration implies ({@link calibrateBounds};
 * docs/design.md "Gates").
 *
 * A sampled access log (`ErrorTestOptions.sampleWeight` w ≥ 1: every line
 * with a failure or a retry, 1 in w of the lines with one successful attempt,
 * each of those counted as w attempts) changes no arithmetic of the test — a
 * bucket's `attempts` is then its errors plus w × its logged successes, so
 * each logged success adds w·ln((1 − p1)/(1 − p0)) — only its calibration:
 * the drift exponent, the trailing-run cost and the run minimum are those of
 * the logged stream ({@link driftExponent}). That generalisation of Wald's
 * and Ville's argument is this project's, not theirs (docs/design.md "Sampled access log").
 *
 * Pure, dependency-free, allocation-free per bucket; never throws.
 */
import type { CountBucket } from './types.js';

/**
 * False drains allowed per walk, ratio 0–1: 1 % (docs/design.md "Targets": a
 * healthy canary survives the whole default walk with ≤ 1 % false drains).
 */
export const FALSE_DRAIN_BUDGET = 0.01;

/**
 * The healthy canary the budget is spent on: a true 5xx ratio of at most this
 * fraction of the threshold, ratio 0–1 (0.5: "half the threshold",
 * docs/design.md "Gates"). A canary between this and the threshold drains
 * more often (`npm run bench:gates` prints the share at the threshold
 * itself); above the threshold draining is the point.
 */
export const HEALTHY_FRACTION = 0.5;

/**
 * Multiples of the threshold p0 the alternatives H1 sit at (each capped by
 * {@link alternativeRatio}). The SPRT for `m` drifts upward only when the true
 * ratio exceeds `ln((1 − p0)/(1 − m·p0)) / ln(m·(1 − p0)/(1 − m·p0))` (the
 * sign of its expected increment, Wald 1945): 1.44 × p0 for m = 2, 2.80 × for
 * m = 6 at p0 = 0.5 %. So the small one catches a moderate sustained excess
 * the others never cross, 6 reacts quickly to a gross failure (each good
 * attempt costs it only `ln((1 − 6·p0)/(1 − p0))` = −0.025), and 100 (p1 =
 * 50 % at the default threshold) is the canary that answers only 5xx: each
 * error adds ln 100 = 4.6, so 4 consecutive errors cross its bound (16.4 for
 * the default walk) where 6 would need 7 (from a log sampled at weight 3 to
 * 5, 5 errors: 19.6–22.6, {@link calibrateBounds}). Chosen with `npm run
 * bench:gates` (README "Benchmarks").
 */
export const ERROR_TEST_MULTIPLES: readonly number[] = Object.freeze([2, 6, 100]);

/**
 * Share of the trailing-run alternative's budget kept for runs of failures
 * inside the bucket being filled, ratio 0–1: 25 %, a chosen value — about the
 * largest that keeps a canary answering only 5xx crossing on its 4th attempt
 * for walks up to 10 × the default (the 100 × bound there is 18.37 < 4·ln 100
 * = 18.42), and it admits runs of 4 up to ~120 canary attempts/s. That
 * bucket is judged at every tick — and a canary failure nudges a tick — so
 * every run of failures in it is a start point, not only its last; their
 * number grows with the traffic, so they get their own share and a minimum
 * run length ({@link currentRunMinimum}) instead of a place in the bound.
 * From a sampled log the runs are of logged failures and come more often
 * (ratio q > p among logged lines), so the minimum rises: at 20/s it is 5
 * from sample weight 2 on (above the 4 the 100 × bound needs at w = 2), at
 * 100/s 6 at w = 5.
 */
export const CURRENT_RUN_SHARE = 0.25;

/**
 * Start points of the default walk (docs/design.md "Gates"): its soak time,
 * 48 h at the slice plus 5 steps × 15 min from 5 to 50 (177,300 s), in the
 * default 15 min window's 1 s count-series buckets (observe/window.ts
 * `seriesWidthMs`). {@link walkStartPoints} computes it for any configuration.
 */
export const DEFAULT_START_POINTS = 177_300;

/** Options of {@link errorTest}. */
export interface ErrorTestOptions {
  /**
   * Start points the gate watches over the walk ({@link walkStartPoints}), ≥ 1;
   * default {@link DEFAULT_START_POINTS}. More start points → higher bounds.
   */
  startPoints: number;
  /** False drains allowed per walk at the healthy ratio, ratio in (0, 1); default {@link FALSE_DRAIN_BUDGET}. */
  budget: number;
  /** Multiples of the threshold the alternatives sit at, each > 1; default {@link ERROR_TEST_MULTIPLES}. */
  multiples: readonly number[];
  /**
   * Bounds given by hand, one per multiple (natural log), instead of the
   * calibrated ones: for the exact tests and for exploring in bench:gates.
   * Ignored unless it has one finite, positive entry per multiple.
   */
  bounds?: readonly number[];
  /**
   * Canary attempts the walk is expected to see (the observed attempt rate ×
   * the exposure, rollout/gates.ts): sets the shortest run of failures the
   * last bucket's trailing run counts from ({@link currentRunMinimum}).
   * Absent, 0 or invalid: every run counts (the exact tests, which judge
   * complete buckets only). Counted as the buckets count them (represented
   * attempts, see `sampleWeight`).
   */
  walkAttempts?: number;
  /**
   * Sample weight w of the access log, ≥ 1: nginx logs every line with a
   * failure or a retry and 1 in w of the lines with one successful attempt
   * (independently of the outcomes), and the follower counts each logged
   * success as w attempts, so a bucket's `attempts` = errors + w × logged
   * successes and its `tail` is the run of logged failures with no logged
   * success after them. The bounds and the run minimum are calibrated at w
   * ({@link calibrateBounds}, {@link currentRunMinimum}); with several weights
   * in one walk, give the largest (a calibration at w holds for any mix of
   * weights ≤ w, see {@link driftExponent}). Absent, NaN, infinite or < 1: 1
   * (every line logged).
   */
  sampleWeight?: number;
}

/** The defaults of {@link errorTest}. */
export const DEFAULT_ERROR_TEST_OPTIONS: Readonly<ErrorTestOptions> = Object.freeze({
  startPoints: DEFAULT_START_POINTS,
  budget: FALSE_DRAIN_BUDGET,
  multiples: ERROR_TEST_MULTIPLES,
});

/** The rollout settings {@link walkExposureMs} reads (config/types.ts RolloutConfig). */
export interface WalkShape {
  /** First slice, percent 0–100. */
  slice: number;
  /** Soak at the slice, ms. */
  sliceSoakMs: number;
  /** Increase per step, percentage points > 0. */
  step: number;
  /** Soak at each later step, ms. */
  stepSoakMs: number;
  /** The walk's target weight, percent 0–100. */
  target: number;
}

/**
 * Time the error gate watches over one walk, ms: the slice soak plus one step
 * soak per step from the slice to the target (`ceil((target − slice) / step)`
 * steps), and never less than one gate window (the gate keeps judging at the
 * target, and a walk with 0 soaks is still watched for a window). The default
 * walk (48 h slice soak, 15 min steps, 5 → 50) watches 49.25 h. Beyond the walk
 * (a canary left at its target for days) the false-drain share grows in
 * proportion to the time watched. Never throws; NaN or negative parts count as 0.
 */
export function walkExposureMs(walk: WalkShape, windowMs: number): number {
  const pos = (x: number): number => (x > 0 ? Math.min(x, Number.MAX_VALUE) : 0);
  const steps = walk.step > 0 ? Math.ceil(Math.max(0, walk.target - walk.slice) / walk.step) : 0;
  return Math.max(pos(walk.sliceSoakMs) + steps * pos(walk.stepSoakMs), pos(windowMs));
}

/**
 * Start points of the CUSUM over `exposureMs` of watching in buckets of
 * `seriesWidthMs` (observe/window.ts `seriesWidthMs(gates.window)`): every
 * bucket boundary is one, so `ceil(exposureMs / seriesWidthMs)`, at least 1.
 * The number of start points does not depend on the traffic: a bucket
 * without attempts starts the same runs as the next bucket with some.
 */
export function walkStartPoints(exposureMs: number, seriesWidthMs: number): number {
  if (!(seriesWidthMs > 0) || !(exposureMs > 0)) return 1;
  return Math.max(1, Math.ceil(exposureMs / seriesWidthMs));
}

/** A sample weight made safe (see `ErrorTestOptions.sampleWeight`): finite and ≥ 1, else 1. */
function weightOf(w: number | undefined): number {
  return w !== undefined && w >= 1 && w < Infinity ? w : 1;
}

/**
 * The exponent θ > 0 with `E_p[exp(θ·X)] = 1`, X the log-likelihood ratio of
 * one attempt for H1 `p1` against H0 `p0` (`ln(p1/p0)` for a 5xx,
 * `ln((1 − p1)/(1 − p0))` otherwise) when the true 5xx ratio is `p` < p0:
 * `p·(p1/p0)^θ + (1 − p)·((1 − p1)/(1 − p0))^θ = 1`. Then `exp(θ·S)` (S the
 * SPRT's sum from any start) is a nonnegative martingale of mean 1 under `p`
 * — a supermartingale under any ratio below `p` — so by Ville's inequality
 * (J. Ville 1939) S ever reaches h with probability ≤ `exp(−θ·h)` (Wald's
 * fundamental identity, A. Wald, *Sequential Analysis*, 1947, ch. 3). θ = 1 at
 * `p = p0` (the likelihood ratio itself) and θ > 1 below it. Found by
 * bisection to 1e-12 relative. Requires 0 < p < p0 < p1 < 1 (not checked;
 * returns 1 when `p ≥ p0`, Infinity when `p ≤ 0`: no error can occur).
 *
 * Sampled log, sample weight `w` > 1 (`ErrorTestOptions.sampleWeight`; this
 * generalisation is ours, docs/design.md "Sampled access log"): each attempt adds `ln(p1/p0)`
 * with probability p (a failure, always logged), `w·ln((1 − p1)/(1 − p0))`
 * with probability (1 − p)/w (a logged success counted w times) and 0
 * otherwise (an unlogged success), so θ_w solves
 *
 *     p·(p1/p0)^θ + ((1 − p)/w)·((1 − p1)/(1 − p0))^(w·θ) + (1 − p)·(1 − 1/w) = 1,
 *
 * i.e. the equation above for the logged stream — failure ratio `q = p / (p +
 * (1 − p)/w)` among logged lines, down-step w·ln((1 − p1)/(1 − p0)) — and
 * Ville's inequality holds for the sampled sum as it stands. For fixed θ the
 * left side increases with w (`(x^w − 1)/w` increases in w for 0 < x < 1:
 * the chord slope of a convex function), so θ_w decreases in w and a bound
 * calibrated at w holds for any mix of weights ≤ w in one walk; the expected
 * increment is the unsampled one. The likelihood ratio is no longer a
 * martingale under H0: θ_w < 1 at p0 itself, and below 1 from some ratio
 * under it (0.945 at the default healthy ratio for 100 ×, w = 5). For w > 1
 * the root is returned for any p > 0, and 0 when the expected increment
 * `p·ln(p1/p0) + (1 − p)·ln((1 − p1)/(1 − p0))` is ≥ 0 (no positive root:
 * no guarantee). w absent, NaN, infinite or < 1: 1, the unsampled exponent,
 * bit for bit.
 */
export function driftExponent(p: number, p0: number, p1: number, w: number = 1): number {
  if (!(p > 0)) return Infinity;
  const k = weightOf(w);
  if (k === 1 && p >= p0) return 1;
  const up = Math.log(p1 / p0);
  const down = Math.log((1 - p1) / (1 - p0));
  if (k > 1 && !(p * up + (1 - p) * down < 0)) return 0;
  // For w > 1 in the expm1 form (the same function, without the cancellation of its constant terms).
  const f =
    k === 1
      ? (theta: number): number => p * Math.exp(theta * up) + (1 - p) * Math.exp(theta * down) - 1
      : (theta: number): number => p * Math.expm1(theta * up) + ((1 - p) / k) * Math.expm1(k * theta * down);
  // f(1) = E_p[LR] − 1 < 0 below p0 unsampled; sampled, the root may be below 1.
  let lo = k === 1 ? 1 : 0;
  let hi = k === 1 ? 2 : 1;
  while (f(hi) <= 0 && hi < 1e6) {
    lo = hi;
    hi *= 2;
  }
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) > 0) hi = mid;
    else lo = mid;
  }
  return (lo + hi) / 2;
}

/** One alternative of the test with its calibrated bound (see {@link calibrateBounds}). */
export interface CalibratedAlternative {
  /** The configured multiple of the threshold. */
  multiple: number;
  /** Its 5xx ratio after the cap of {@link alternativeRatio}, ratio 0–1. */
  p1: number;
  /**
   * {@link driftExponent} at the healthy ratio (threshold × {@link HEALTHY_FRACTION}) and the
   * calibration's sample weight; NaN for bounds given by hand.
   */
  theta: number;
  /**
   * Its bound, natural log: `ln(K · n · (1 + c) / budget) / θ`, c = {@link tailCost}
   * when it starts at trailing failure runs, else 0 ({@link calibrateBounds}).
   */
  bound: number;
  /** It also starts at each bucket's trailing run of failures (`CountBucket.tail`): the alternative with the largest p1 only. */
  tails: boolean;
}

/**
 * What the trailing-run start points cost an alternative, as a multiple of
 * one bucket-boundary start point: `c = ((1 − p0)/(1 − p1))^θ`, θ its
 * {@link driftExponent}. A bucket's trailing failure run T (attempts
 * independent, 5xx ratio p) has `P(T = r) ≤ p^r·(1 − p)`, so the SPRT started
 * at its first failure is worth `E[exp(θ·T·ln(p1/p0))] ≤ (1 − p)/(1 −
 * p·(p1/p0)^θ)` in Ville's inequality instead of 1 — and by θ's own equation
 * `p·(p1/p0)^θ + (1 − p)·((1 − p1)/(1 − p0))^θ = 1` that is exactly c (finite:
 * the first term is < 1). 2.24 for the 100 × alternative at the default
 * threshold, about 1.0 for 2 × and 6 ×. Requires 0 < p0 < p1 < 1 (not checked).
 *
 * Sampled log, sample weight `w` (ours, docs/design.md "Sampled access log"; θ then θ_w,
 * {@link driftExponent}): the trailing run is one of logged failures, and the
 * logged lines fail independently with ratio `q = p / (p + (1 − p)/w)`, so
 * `P(T ≥ r) ≤ q^r` and `E[(p1/p0)^(θ·T)] ≤ (1 − q)/(1 − q·(p1/p0)^θ)`; by
 * θ_w's equation for the logged stream, `q·(p1/p0)^θ + (1 − q)·((1 − p1)/(1 −
 * p0))^(w·θ) = 1`, that is `c_w = ((1 − p0)/(1 − p1))^(w·θ)`. Also valid for
 * any mix of weights ≤ w (only `P(T ≥ r) ≤ q^r` is used). 25.8 for 100 × at
 * the default threshold and w = 5. w absent, NaN, infinite or < 1: 1.
 */
export function tailCost(p0: number, p1: number, theta: number, w: number = 1): number {
  return Math.pow((1 - p0) / (1 - p1), weightOf(w) * theta);
}

/**
 * The shortest run of failures the trailing-run alternative may start from
 * in the bucket being filled, ≥ 1: the smallest r with `N · p^r ≤
 * CURRENT_RUN_SHARE · budget / K`, p = threshold × HEALTHY_FRACTION, N =
 * `walkAttempts`, K = `alternatives` (distinct ones; 3 by default). A run of r
 * failures in a row begins at a given attempt with probability ≤ p^r (at any
 * ratio ≤ p, attempts independent), so over N attempts the runs this admits
 * come with probability ≤ that share (Boole's inequality), however often the
 * bucket is judged. The default walk at 20 canary attempts/s (3.5 M) gives 4,
 * which is what 100 × needs anyway (4 · ln 100 ≥ its bound); at 1,000/s,
 * 5. 1 when N ≤ 0 or not finite, or the threshold is outside (0, 1).
 *
 * Sampled log, sample weight `w` (ours, docs/design.md "Sampled access log"): the runs are
 * of logged failures, and the logged lines fail with ratio `q = p / (p + (1 −
 * p)/w)`, so p^r becomes q^r and N the logged lines `N·(p + (1 − p)/w)`, N
 * still the represented `walkAttempts`: the smallest r with `N·(p + (1 −
 * p)/w)·q^r ≤ share` — exactly Boole's sum over the N attempts of P(a failure
 * there begins r logged failures in a row) ≤ p·q^(r − 1), and valid for any
 * mix of weights ≤ w. The default walk at 20/s gives 5 at w = 5. w absent,
 * NaN, infinite or < 1: 1 (the unsampled minimum). Never throws.
 */
export function currentRunMinimum(
  threshold: number,
  walkAttempts: number,
  budget: number = FALSE_DRAIN_BUDGET,
  alternatives: number = ERROR_TEST_MULTIPLES.length,
  w: number = 1,
): number {
  if (!(threshold > 0 && threshold < 1) || !(walkAttempts > 0) || !Number.isFinite(walkAttempts)) return 1;
  const b = budget > 0 && budget < 1 ? budget : FALSE_DRAIN_BUDGET;
  const k = alternatives >= 1 ? alternatives : 1;
  const p = threshold * HEALTHY_FRACTION;
  const weight = weightOf(w);
  // The logged lines and their failure ratio (at w = 1: the attempts and p, as they are).
  const logged = weight === 1 ? walkAttempts : walkAttempts * (p + (1 - p) / weight);
  const q = weight === 1 ? p : p / (p + (1 - p) / weight);
  // r = ceil(ln(share / N) / ln q), then nudged by the exact inequality (floating point).
  const share = (CURRENT_RUN_SHARE * b) / k;
  let r = Math.max(1, Math.ceil(Math.log(share / logged) / Math.log(q)));
  while (r > 1 && logged * q ** (r - 1) <= share) r--;
  while (logged * q ** r > share) r++;
  return r;
}

/**
 * The bound of each alternative, calibrated to the walk's exposure
 * (docs/design.md "Gates", "the calibrated bound"):
 *
 *     h_k = ln(K · n · (1 + c_k) / (s_k · budget)) / θ_k
 *
 * for K distinct alternatives, `n` start points ({@link walkStartPoints}),
 * θ_k the {@link driftExponent} of alternative k at the healthy ratio
 * `threshold × HEALTHY_FRACTION`, and c_k = {@link tailCost} for the one
 * alternative that also starts at trailing failure runs (the largest p1),
 * 0 for the others, and s_k = 1 − {@link CURRENT_RUN_SHARE} for that
 * alternative (the rest is kept for {@link currentRunMinimum}), 1 for the
 * others. The CUSUM of alternative k crosses h_k at some tick only
 * if the SPRT from some start point does; each of the n bucket-boundary SPRTs
 * does with probability ≤ `exp(−θ_k·h_k)` at any ratio ≤ the healthy one
 * (Ville, see {@link driftExponent}), each of the n trailing-run ones with ≤
 * `c_k·exp(−θ_k·h_k)` — together budget / K per alternative — so the walk's
 * false-drain probability is ≤ budget (Boole's inequality), however often
 * the gate looks, whatever the traffic. Monotone: more start points or a
 * smaller budget give higher bounds. Alternatives whose capped p1 coincide
 * count once. For threshold ≤ 0 or ≥ 1 there is no alternative ([]).
 *
 * `sampleWeight` w (`ErrorTestOptions.sampleWeight`): θ_k and c_k are those
 * of the sampled log ({@link driftExponent}, {@link tailCost} at w; ours,
 * docs/design.md "Sampled access log"), so the same guarantee holds for the sampled counts,
 * and for any mix of weights ≤ w. Every bound grows with w: at the default
 * walk and threshold 6.70 / 11.34 / 16.41 at w = 1, 6.85 / 11.79 / 22.61 at
 * w = 5 (a canary answering only 5xx crosses on its 5th failure instead of
 * its 4th). Absent, NaN, infinite or < 1: 1, the unsampled bounds.
 * Never throws; invalid n or budget fall back to the defaults.
 */
export function calibrateBounds(
  threshold: number,
  startPoints: number = DEFAULT_START_POINTS,
  budget: number = FALSE_DRAIN_BUDGET,
  multiples: readonly number[] = ERROR_TEST_MULTIPLES,
  sampleWeight: number = 1,
): CalibratedAlternative[] {
  if (!(threshold > 0) || !(threshold < 1)) return [];
  const n = startPoints >= 1 && Number.isFinite(startPoints) ? startPoints : DEFAULT_START_POINTS;
  const b = budget > 0 && budget < 1 ? budget : FALSE_DRAIN_BUDGET;
  const seen = new Map<number, number>();
  for (const m of multiples) {
    const p1 = alternativeRatio(threshold, m);
    if (p1 > threshold && !seen.has(p1)) seen.set(p1, m);
  }
  const k = seen.size;
  const healthy = threshold * HEALTHY_FRACTION;
  const top = Math.max(...seen.keys());
  const w = weightOf(sampleWeight);
  return [...seen].map(([p1, multiple]) => {
    const theta = driftExponent(healthy, threshold, p1, w);
    const tails = p1 === top;
    const c = tails ? tailCost(threshold, p1, theta, w) : 0;
    const spend = tails ? (1 - CURRENT_RUN_SHARE) * b : b;
    return { multiple, p1, theta, bound: Math.log((k * n * (1 + c)) / spend) / theta, tails };
  });
}

/**
 * The upper bound on the walk's false-drain probability the calibration
 * guarantees at a true 5xx ratio `p` ≤ the healthy one, ratio 0–1:
 * `min(1, Σ_k n · (1 + c_k(p)) · exp(−θ_k(p) · h_k))` with θ_k(p) the
 * {@link driftExponent} at `p` and c_k(p) its {@link tailCost} (0 for an
 * alternative without trailing-run start points). Without the runs inside
 * the bucket being filled ({@link currentRunMinimum}, at most
 * CURRENT_RUN_SHARE of that alternative's share more). Equals the budget at the healthy ratio; at the threshold itself
 * (θ = 1) it is usually ≥ 1, i.e. no guarantee (bench:gates measures the
 * share there). `sampleWeight`: the log's sample weight, as given to
 * {@link calibrateBounds} (θ and c at it; default 1, unsampled). Never throws.
 */
export function falseDrainBound(
  alternatives: readonly CalibratedAlternative[],
  threshold: number,
  p: number,
  startPoints: number,
  sampleWeight: number = 1,
): number {
  const w = weightOf(sampleWeight);
  let sum = 0;
  for (const a of alternatives) {
    const theta = driftExponent(p, threshold, a.p1, w);
    const c = a.tails ? tailCost(threshold, a.p1, theta, w) : 0;
    sum += startPoints * (1 + c) * Math.exp(-theta * a.bound);
  }
  return Math.min(1, sum);
}

/**
 * The answer of {@link errorTest}, with the numbers behind it (recorded with
 * the gate's decision). Reads as "statistic 8.83 ≥ bound 7.60 (H1 6×)".
 */
export interface ErrorTestResult {
  /** Attempts over the whole series (a bucket's negative, NaN or infinite count as 0, at most 2^53 − 1). */
  attempts: number;
  /** 5xx attempts over the whole series (each bucket's clamped to [0, its attempts]). */
  errors: number;
  /** errors / attempts, ratio 0–1; null without attempts. */
  ratio: number | null;
  /**
   * The statistic of the alternative closest to its bound: the largest
   * log-likelihood ratio (natural log) of any run of consecutive buckets,
   * ≥ 0. For a threshold ≤ 0 it is the number of errors (see {@link errorTest}).
   */
  statistic: number;
  /**
   * The bound that statistic is compared with (that alternative's calibrated
   * bound, {@link calibrateBounds}); 1 for a threshold ≤ 0. The alternative
   * reported is the one whose statistic is the largest share of its bound.
   */
  bound: number;
  /**
   * The multiple of the threshold that alternative sits at, after the cap
   * `p1 ≤ (1 + threshold) / 2` (so possibly below the configured multiple);
   * 0 when there is no alternative (threshold ≤ 0 or ≥ 1).
   */
  multiple: number;
  /** Some alternative's statistic reached its bound: the 5xx ratio is above the threshold (drain). */
  crossed: boolean;
}

/**
 * Log-likelihood ratio (natural log) of `errors` 5xx in `attempts` Bernoulli
 * attempts under H1 `p = p1` against H0 `p = p0`:
 * `errors·ln(p1/p0) + (attempts − errors)·ln((1 − p1)/(1 − p0))` (Wald 1945).
 * Requires 0 < p0 < p1 < 1 and 0 ≤ errors ≤ attempts (not checked).
 */
export function bernoulliLlr(attempts: number, errors: number, p0: number, p1: number): number {
  return errors * Math.log(p1 / p0) + (attempts - errors) * Math.log((1 - p1) / (1 - p0));
}

/**
 * The alternative 5xx ratio (ratio 0–1) for `multiple` × `threshold`, capped
 * at `(1 + threshold) / 2` (half way from the threshold to 1) so that p1 < 1
 * even for large thresholds or multiples. The cap binds when
 * `threshold > 1 / (2·multiple − 1)`: above 1/3 for m = 2, above 1/11 ≈ 9 %
 * for m = 6; never at the default threshold 0.5 %. Requires
 * 0 < threshold < 1 (not checked).
 */
export function alternativeRatio(threshold: number, multiple: number): number {
  return Math.min(multiple * threshold, (1 + threshold) / 2);
}

/** Calibrations already computed, by threshold, start points, budget, multiples and sample weight (a handful per process). */
const calibrations = new Map<string, CalibratedAlternative[]>();

/** The alternatives and bounds actually used: invalid options fall back to the defaults (never throws). */
function resolve(threshold: number, opts: Partial<ErrorTestOptions> | undefined): CalibratedAlternative[] {
  const given = opts?.multiples;
  const valid = given !== undefined && given.length > 0 && given.every((m) => m > 1 && Number.isFinite(m));
  const multiples = valid ? given : ERROR_TEST_MULTIPLES;
  const hand = opts?.bounds;
  if (hand !== undefined && hand.length === multiples.length && hand.every((h) => h > 0 && Number.isFinite(h))) {
    const top = Math.max(...multiples.map((m) => alternativeRatio(threshold, m)));
    return multiples.map((m, i) => ({
      multiple: m,
      p1: alternativeRatio(threshold, m),
      theta: NaN,
      bound: hand[i] as number,
      tails: alternativeRatio(threshold, m) === top,
    }));
  }
  const n = opts?.startPoints ?? DEFAULT_START_POINTS;
  const budget = opts?.budget ?? FALSE_DRAIN_BUDGET;
  const w = weightOf(opts?.sampleWeight);
  const key = `${threshold}|${n}|${budget}|${multiples.join(',')}|${w}`;
  let alts = calibrations.get(key);
  if (alts === undefined) {
    alts = calibrateBounds(threshold, n, budget, multiples, w);
    if (calibrations.size >= 256) calibrations.clear(); // a bound on memory: configs change rarely
    calibrations.set(key, alts);
  }
  return alts;
}

/**
 * A bucket's attempts made safe: negative, infinite or NaN as 0, at most
 * 2^53 − 1 (so the statistic stays finite: 1e308 attempts × ln 6 overflowed).
 */
function attemptsOf(b: CountBucket): number {
  return b.attempts > 0 && b.attempts < Infinity ? Math.min(b.attempts, Number.MAX_SAFE_INTEGER) : 0;
}

/** A bucket's errors made safe: within [0, attempts], NaN as 0. */
function errorsOf(b: CountBucket): number {
  return b.errors > 0 ? Math.min(b.errors, attemptsOf(b)) : 0;
}

/** A bucket's trailing failure run made safe: within [0, errors], absent or NaN as 0. */
function tailOf(b: CountBucket): number {
  const t = b.tail;
  return t !== undefined && t > 0 ? Math.min(t, errorsOf(b)) : 0;
}

/**
 * The sequential error-ratio test over a judged span's buckets.
 *
 * - `series`: attempts and 5xx attempts per count-series bucket (≤ 1 s,
 *   observe/window.ts `seriesWidthMs`), oldest first, empty buckets included
 *   (PoolObservation.series). From a sampled log (`opts.sampleWeight` w),
 *   a bucket's attempts are its errors plus w × its logged successes and its
 *   `tail` counts logged failures only; the scan is the same.
 * - `threshold`: gates.error_ratio, ratio 0–1 (default 0.005, docs/design.md "Numbers").
 * - `opts`: {@link ErrorTestOptions}; invalid values fall back to the defaults.
 *
 * For each alternative the statistic is the maximum over runs of consecutive
 * buckets `i…j` of `Σ bernoulliLlr(bucket)`, floored at 0 (Kadane's scan of
 * the CUSUM `S = max(0, S + llr)` and its running maximum); for the
 * alternative with `tails`, a run may also begin at bucket i's trailing
 * failure run (`tail` errors worth `tail·ln(p1/p0)`, then buckets i+1…j:
 * `S = max(0, S + llr, tail·ln(p1/p0))`). A bucket's `tail` is clamped to
 * [0, its errors]; the last bucket's (the one being filled) counts only from
 * {@link currentRunMinimum} failures for `opts.walkAttempts` (and
 * `opts.sampleWeight`); without `tail`
 * fields the statistic is the plain one. So, for each
 * alternative's statistic and for the reported share statistic / bound: no
 * attempts → 0; adding an error never lowers it; adding a good attempt never
 * raises it; empty buckets change nothing; splitting a bucket in two never
 * lowers it (more start points) and merging never raises it. (The reported
 * statistic alone can fall when the report moves to another alternative.) It crosses when any
 * alternative's statistic reaches that alternative's bound
 * ({@link calibrateBounds}, or `opts.bounds`); the result reports the
 * alternative whose statistic is the largest share of its bound.
 *
 * Edge thresholds: ≤ 0 (or NaN) means zero tolerance — under H0 `p = 0` an
 * error has likelihood 0, so the first error crosses with no false drain
 * possible (statistic = errors, bound 1, multiple 0); ≥ 1 can never be
 * exceeded (statistic 0, never crossed, multiple 0). Between, p1 is capped by
 * {@link alternativeRatio}. Never throws.
 */
export function errorTest(
  series: readonly CountBucket[],
  threshold: number,
  opts?: Partial<ErrorTestOptions>,
): ErrorTestResult {
  let attempts = 0;
  let errors = 0;
  for (const b of series) {
    attempts += attemptsOf(b);
    errors += errorsOf(b);
  }
  const ratio = attempts > 0 ? errors / attempts : null;
  if (!(threshold > 0)) {
    return { attempts, errors, ratio, statistic: errors, bound: 1, multiple: 0, crossed: errors >= 1 };
  }
  const alts = resolve(threshold, opts);
  if (threshold >= 1 || alts.length === 0) {
    return { attempts, errors, ratio, statistic: 0, bound: alts[0]?.bound ?? 1, multiple: 0, crossed: false };
  }
  // The bucket being filled: its trailing run counts only from this many failures (see currentRunMinimum).
  const runMin = currentRunMinimum(
    threshold,
    opts?.walkAttempts ?? 0,
    opts?.budget,
    alts.length,
    weightOf(opts?.sampleWeight),
  );
  const last = series.length - 1;
  // −1 so the first alternative always reports (every share is ≥ 0).
  let bestShare = -1;
  let statistic = 0;
  let bound = 1;
  let multiple = 0;
  let crossed = false;
  for (const alt of alts) {
    const up = Math.log(alt.p1 / threshold);
    const down = Math.log((1 - alt.p1) / (1 - threshold));
    let s = 0;
    let peak = 0;
    for (let i = 0; i <= last; i++) {
      const b = series[i] as CountBucket;
      const n = attemptsOf(b);
      if (n === 0) continue;
      const e = errorsOf(b);
      s += e * up + (n - e) * down;
      if (s < 0) s = 0;
      if (alt.tails) {
        const r = tailOf(b);
        if (i < last || r >= runMin) {
          const t = r * up;
          if (t > s) s = t;
        }
      }
      if (s > peak) peak = s;
    }
    if (peak >= alt.bound) crossed = true;
    const share = peak / alt.bound;
    if (share > bestShare) {
      bestShare = share;
      statistic = peak;
      bound = alt.bound;
      multiple = alt.p1 / threshold;
    }
  }
  return { attempts, errors, ratio, statistic, bound, multiple, crossed };
}
