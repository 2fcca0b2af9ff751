/**
 * The sequential test behind the `error_ratio` drain gate (docs/design.md
 * "Gates"): a decision on counts (attempts, 5xx
 * attempts) that stays valid when it is looked at on every tick, unlike a
 * fixed-sample ratio peeked at until it happens to exceed the threshold.
 *
 * For each multiple `m` of {@link ERROR_TEST_MULTIPLES} it runs the one-sided
 * Bernoulli SPRT of H0 `p = threshold` against H1 `p = m × threshold` (Wald
 * 1945) as a CUSUM over the window's buckets (Page 1954): the statistic is the
 * largest log-likelihood ratio of any run of consecutive buckets of the judged
 * span, i.e. the SPRT started at the best bucket boundary, so good traffic
 * before an onset does not delay the drain. The gate drains when any
 * alternative's statistic reaches `ln(K / alpha)` (K alternatives, Bonferroni).
 *
 * Pure, dependency-free, allocation-free per bucket; never throws.
 */
import type { CountBucket } from './types.js';

/**
 * False-drain budget of the test, ratio 0–1: for one start point (a bucket
 * boundary), the probability that any alternative ever reaches its bound
 * while the true 5xx ratio is the threshold itself is ≤ alpha, at every
 * tick, however long it is watched. The bound of each of the K alternatives
 * is `h = ln(K / alpha)`: Wald's (1945) SPRT upper boundary `ln((1 − β) / α)`
 * at β → 0 with Bonferroni's alpha / K, valid under continuous monitoring by
 * Ville's inequality (Ville 1939: a nonnegative martingale of mean 1, here the
 * likelihood ratio under H0, ever exceeds 1/a with probability ≤ a). Taking
 * the best start point (the CUSUM, Page 1954) spends that budget once per
 * bucket: by Lorden (1971), the mean time to a false drain at
 * `p = threshold` is at least 1/alpha buckets (1,000 × 15 s ≈ 4.2 h with the
 * default 15 min window).
 *
 * Chosen with `npm run bench:gates` (bench/gates.ts: 20 canary attempts/s,
 * 0.5 s ticks, 15 s buckets, a 60 min walk of slice + 5 steps × 10 min, 10,000
 * walks per case, seed 3), with multiples {2, 6}:
 *
 * | alpha  | bound | false drains, p = thr/2 | at p = thr | 10× mid-soak, s median / p95 | 4× median | 2× median |
 * | 0.01   | 5.30  | 1.98 %                  | 50.6 %     | 6.0 / 13.0                   | 22.5 s    | 102 s     |
 * | 0.003  | 6.50  | 0.39 %                  | 19.9 %     | 7.0 / 14.5                   | 27.0 s    | 134 s     |
 * | 0.001  | 7.60  | 0.08 %                  | 7.1 %      | 7.5 / 15.5                   | 31.5 s    | 163 s     |
 * | 0.0001 | 9.90  | 0.00 %                  | 0.7 %      | 9.5 / 18.0                   | 41.0 s    | 221 s     |
 *
 * 0.001 keeps false drains an order of magnitude under the 1 % target
 * (docs/design.md "Targets") for a 60 min walk, leaving room for longer soaks (the rate grows
 * with the time watched: a 48 h slice soak is ~48 such hours), for about
 * half a second of median drain time against 0.003.
 */
export const ERROR_TEST_ALPHA = 0.001;

/**
 * Multiples of the threshold p0 the alternatives H1 sit at. The SPRT for `m`
 * drifts upward only when the true ratio exceeds
 * `ln((1 − p0)/(1 − m·p0)) / ln(m·(1 − p0)/(1 − m·p0))` (the sign of its
 * expected increment, Wald 1945): 1.44 × p0 for m = 2, 2.80 × for m = 6,
 * 3.94 × for m = 10 at p0 = 0.5 %. So the small one catches a moderate
 * sustained excess the large one never crosses (same walks, alpha 0.001,
 * {10} alone: median 796 s to drain at 2 ×, against 163 s for {2, 6}), and
 * the large one reacts quickly to a gross failure.
 *
 * 6 rather than 10 for the large one: the bucket that holds an onset also
 * holds up to 15 s of good traffic before it, and each good attempt costs
 * `ln((1 − m·p0)/(1 − p0))`: −0.046 for m = 10 but −0.025 for m = 6. On the
 * same walks {2, 10} drains 10 × later (median / p95 8.0 / 17.5 s against
 * 7.5 / 15.5 s), 4 × later (40.0 s against 31.5 s) and false-drains more
 * (0.21 % against 0.08 % at threshold / 2) than {2, 6}.
 */
export const ERROR_TEST_MULTIPLES: readonly number[] = Object.freeze([2, 6]);

/** Options of {@link errorTest}. */
export interface ErrorTestOptions {
  /** Nominal false-drain probability per start point at `p = threshold`, ratio in (0, 1); default {@link ERROR_TEST_ALPHA}. */
  alpha: number;
  /** Multiples of the threshold the alternatives sit at, each > 1; default {@link ERROR_TEST_MULTIPLES}. */
  multiples: readonly number[];
}

/** The defaults of {@link errorTest}. */
export const DEFAULT_ERROR_TEST_OPTIONS: Readonly<ErrorTestOptions> = Object.freeze({
  alpha: ERROR_TEST_ALPHA,
  multiples: ERROR_TEST_MULTIPLES,
});

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
  /** The bound that statistic is compared with: `ln(K / alpha)`; 1 for a threshold ≤ 0. */
  bound: number;
  /**
   * The multiple of the threshold that alternative sits at, after the cap
   * `p1 ≤ (1 + threshold) / 2` (so possibly below the configured multiple);
   * 0 when there is no alternative (threshold ≤ 0 or ≥ 1).
   */
  multiple: number;
  /** statistic ≥ bound: the 5xx ratio is above the threshold (drain). */
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

/**
 * The bound of each alternative: `ln(K / alpha)` for K alternatives (Wald's
 * upper boundary at β → 0 with Bonferroni's alpha / K; valid under
 * continuous monitoring by Ville's inequality). Natural log. Requires
 * 0 < alpha < 1, K ≥ 1 (not checked).
 */
export function errorTestBound(alpha: number, alternatives: number): number {
  return Math.log(alternatives / alpha);
}

/** The options actually used: invalid values fall back to the defaults (never throws). */
function resolve(opts: Partial<ErrorTestOptions> | undefined): { alpha: number; multiples: readonly number[] } {
  const alpha =
    opts?.alpha !== undefined && opts.alpha > 0 && opts.alpha < 1 ? opts.alpha : DEFAULT_ERROR_TEST_OPTIONS.alpha;
  const given = opts?.multiples;
  const valid = given !== undefined && given.length > 0 && given.every((m) => m > 1 && Number.isFinite(m));
  return { alpha, multiples: valid ? given : DEFAULT_ERROR_TEST_OPTIONS.multiples };
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

/**
 * The sequential error-ratio test over a judged span's buckets.
 *
 * - `series`: attempts and 5xx attempts per window bucket, oldest first,
 *   empty buckets included (PoolObservation.series).
 * - `threshold`: gates.error_ratio, ratio 0–1 (default 0.005, docs/design.md "Numbers").
 * - `opts`: {@link ErrorTestOptions}; invalid values fall back to the defaults.
 *
 * For each alternative the statistic is the maximum over runs of consecutive
 * buckets `i…j` of `Σ bernoulliLlr(bucket)`, floored at 0 (Kadane's scan of
 * the CUSUM `S = max(0, S + llr)` and its running maximum). So: no attempts →
 * 0; adding an error never lowers it; adding a good attempt never raises it;
 * empty buckets change nothing; splitting a bucket in two never lowers it
 * (more start points) and merging never raises it. The result reports the
 * alternative with the largest statistic (all share one bound).
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
  const { alpha, multiples } = resolve(opts);
  if (!(threshold > 0)) {
    return { attempts, errors, ratio, statistic: errors, bound: 1, multiple: 0, crossed: errors >= 1 };
  }
  const bound = errorTestBound(alpha, multiples.length);
  if (threshold >= 1) {
    return { attempts, errors, ratio, statistic: 0, bound, multiple: 0, crossed: false };
  }
  // −1 so the first alternative always reports (every peak is ≥ 0; multiples is never empty).
  let best = -1;
  let bestMultiple = 0;
  for (const m of multiples) {
    const p1 = alternativeRatio(threshold, m);
    let s = 0;
    let peak = 0;
    for (const b of series) {
      s += bernoulliLlr(attemptsOf(b), errorsOf(b), threshold, p1);
      if (s < 0) s = 0;
      if (s > peak) peak = s;
    }
    if (peak > best) {
      best = peak;
      bestMultiple = p1 / threshold;
    }
  }
  return { attempts, errors, ratio, statistic: best, bound, multiple: bestMultiple, crossed: best >= bound };
}
