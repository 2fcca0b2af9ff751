/**
 * The detection floor of bench:gates (docs/design.md "Gates", "the detection
 * floor"): the exact delay distribution of the optimal single detector for a
 * case — Page's CUSUM (E. S. Page, "Continuous inspection schemes",
 * Biometrika 1954) of the log-likelihood ratio of H1 `p = bad` against H0
 * `p = threshold`, updated per attempt — with its bound tuned so that its
 * false-drain probability over the walk's attempts at the healthy ratio is at
 * most the budget. Among detectors with that false-alarm constraint the
 * matched CUSUM minimises the worst-case expected delay (G. V. Moustakides,
 * "Optimal stopping times for detecting changes in distributions", Ann.
 * Statist. 1986), so no gate can beat it by much on its own case.
 *
 * Computed, not assumed: the CUSUM runs on a lattice (a good attempt moves it
 * down `goodStep` units, a 5xx up `errorStep` units, the unit chosen so that
 * `errorStep` ≥ 100 and the rounding of the ratio of the two moves is under
 * 0.5 %), and the lattice's Markov chain is iterated exactly, attempt by
 * attempt. Over a long walk (millions of attempts) the chain reaches its
 * quasi-stationary regime (the distribution of the statistic given no drain
 * yet) within thousands of attempts; from there each attempt drains with the
 * same probability λ, so P(no drain in N) = P(no drain in t)·(1 − λ)^(N − t),
 * exact up to the convergence tolerance ({@link CONVERGED} relative on λ). For `bad` = 1
 * (a canary answering only 5xx) the matched CUSUM is the run length of
 * consecutive 5xx (a good attempt has likelihood 0 under H1), drained at `r`
 * in a row.
 *
 * Delays are counted from the onset with the statistic drawn from that
 * quasi-stationary distribution (an onset in the middle of a soak), in
 * attempts, and in seconds for Poisson arrivals at `ratePerS` (the k-th
 * attempt after the onset arrives at a Gamma(k, rate) time). Pure; no clock.
 */

/** One floor case. Ratios 0–1. */
export interface FloorCase {
  /** gates.error_ratio (H0), ratio in (0, 1). */
  threshold: number;
  /** The true 5xx ratio before the onset, for which false drains are counted (the healthy canary), ratio in (0, threshold). */
  healthy: number;
  /** The true 5xx ratio after the onset, matched by the CUSUM (H1), ratio in (threshold, 1]. */
  bad: number;
  /** Attempts the walk watches (rate × soak time). */
  walkAttempts: number;
  /** False drains allowed per walk at `healthy`, ratio in (0, 1). */
  budget: number;
  /** Canary attempts per second (Poisson), for delays in seconds. */
  ratePerS: number;
}

/** What {@link floorOf} computed. */
export interface Floor {
  /** The tuned bound, natural-log likelihood-ratio units (for `bad` = 1: consecutive 5xx × ln(1/threshold)). */
  bound: number;
  /** Exact false-drain probability per walk at `healthy` with that bound, ratio 0–1 (≤ budget). */
  falseDrain: number;
  /** Delay from the onset in attempts (median, p95): the attempt that crosses the bound counts. */
  attempts: { median: number; p95: number };
  /** Delay from the onset in seconds (median, p95), Poisson arrivals. */
  seconds: { median: number; p95: number };
  /** Lattice states below the bound (the size of the chain). */
  states: number;
}

/** The lattice of one case: moves in units, the bound `states` units up. */
interface Lattice {
  /** Units a good attempt moves the statistic down (Infinity: back to 0). */
  goodStep: number;
  /** Units a 5xx moves it up. */
  errorStep: number;
  /** Natural-log likelihood-ratio units per lattice unit. */
  unit: number;
}

function latticeOf(threshold: number, bad: number): Lattice {
  const up = Math.log(bad / threshold);
  if (bad >= 1) return { goodStep: Infinity, errorStep: 1, unit: up };
  const down = Math.log((1 - threshold) / (1 - bad)); // > 0
  const q = Math.max(1, Math.ceil(100 / (up / down)));
  return { goodStep: q, errorStep: Math.round((q * up) / down), unit: down / q };
}

/**
 * Relative change of the per-attempt drain probability between two blocks of
 * 512 attempts under which the chain counts as quasi-stationary (a chosen
 * tolerance: it moves the walk's false-drain probability by about 1e-5
 * relative, far below the budget's resolution). Past 2^20 attempts the
 * tolerance widens tenfold per further 2^20 (a chain whose rate creeps, seen
 * once in six cases), so a case never runs for the whole walk.
 */
const CONVERGED = 1e-5;

/** One attempt of the chain: `from` (mass per state below the bound) → `to`; returns the mass that crossed the bound. */
function step(from: Float64Array, to: Float64Array, p: number, l: Lattice): number {
  to.fill(0);
  const n = from.length;
  let crossed = 0;
  for (let s = 0; s < n; s++) {
    const m = from[s] as number;
    if (m === 0) continue;
    const g = l.goodStep === Infinity ? 0 : Math.max(0, s - l.goodStep);
    to[g] = (to[g] as number) + (1 - p) * m;
    const e = s + l.errorStep;
    if (e < n) to[e] = (to[e] as number) + p * m;
    else crossed += p * m;
  }
  return crossed;
}

/**
 * Runs the chain at ratio `p` from the statistic at 0 for `n` attempts (or
 * until its per-attempt drain probability settles, then extrapolates).
 * Returns the probability of a drain within `n` attempts and the
 * distribution of the statistic given no drain (normalised).
 */
function falseDrainOver(states: number, p: number, n: number, l: Lattice): { drain: number; qsd: Float64Array } {
  let a = new Float64Array(states);
  let b = new Float64Array(states);
  a[0] = 1; // `a` sums to 1 at the start of every block; `alive` is the true mass
  let alive = 1;
  let lastRate = -1;
  const block = 512;
  for (let t = 0; t < n; t++) {
    step(a, b, p, l);
    [a, b] = [b, a];
    if ((t + 1) % block === 0 || t + 1 === n) {
      const kept = a.reduce((x, y) => x + y, 0); // survival over this block
      alive *= kept;
      if (kept > 0) for (let s = 0; s < states; s++) a[s] = (a[s] as number) / kept;
      // The block's mean per-attempt drain probability.
      const rate = -Math.expm1(Math.log(kept) / block);
      const tolerance = CONVERGED * 10 ** Math.floor(t / 2 ** 20);
      if (rate > 0 && lastRate > 0 && Math.abs(rate - lastRate) <= tolerance * rate && t > 4 * block) {
        const survive = alive * Math.exp((n - (t + 1)) * Math.log1p(-rate));
        return { drain: 1 - survive, qsd: a };
      }
      lastRate = rate;
    }
  }
  return { drain: 1 - alive, qsd: a };
}

/** P(N ≥ k) for N ~ Poisson(mean), for every k in 0…kMax (k = 0 → 1). */
function poissonTail(mean: number, kMax: number): Float64Array {
  const tail = new Float64Array(kMax + 1);
  // pmf in log space from 0, summed upward: cdf(k − 1) = Σ_{j<k} pmf(j).
  let cdf = 0;
  let logPmf = -mean;
  for (let k = 0; k <= kMax; k++) {
    tail[k] = Math.max(0, 1 - cdf);
    cdf += Math.exp(logPmf);
    logPmf += Math.log(mean) - Math.log(k + 1);
  }
  return tail;
}

/** The q-quantile of a distribution given as P(K = k), k ≥ 1 (index k). */
function quantileOf(pmf: Float64Array, q: number): number {
  let c = 0;
  for (let k = 0; k < pmf.length; k++) {
    c += pmf[k] as number;
    if (c >= q) return k;
  }
  return Infinity;
}

/** The q-quantile in seconds of the arrival time of the K-th attempt, K ~ pmf, Poisson arrivals at `rate`/s. */
function secondsQuantile(pmf: Float64Array, rate: number, q: number): number {
  const cdfAt = (t: number): number => {
    const tail = poissonTail(rate * t, pmf.length);
    let c = 0;
    for (let k = 1; k < pmf.length; k++) c += (pmf[k] as number) * (tail[k] as number);
    return c;
  };
  let lo = 0;
  let hi = 1;
  while (cdfAt(hi) < q && hi < 1e7) hi *= 2;
  for (let i = 0; i < 50; i++) {
    const mid = (lo + hi) / 2;
    if (cdfAt(mid) >= q) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * The floor of one case (see the module comment). Throws RangeError when a
 * ratio is out of its range or walkAttempts < 1.
 */
export function floorOf(c: FloorCase): Floor {
  if (!(c.threshold > 0 && c.threshold < 1) || !(c.healthy > 0 && c.healthy < c.threshold))
    throw new RangeError('floor: need 0 < healthy < threshold < 1');
  if (!(c.bad > c.threshold && c.bad <= 1)) throw new RangeError('floor: need threshold < bad ≤ 1');
  if (!(c.walkAttempts >= 1) || !(c.budget > 0 && c.budget < 1))
    throw new RangeError('floor: walkAttempts ≥ 1, 0 < budget < 1');
  const l = latticeOf(c.threshold, c.bad);
  // Smallest number of states whose false-drain probability is ≤ budget (it falls as the bound rises).
  const fd = (states: number): { drain: number; qsd: Float64Array } =>
    falseDrainOver(states, c.healthy, c.walkAttempts, l);
  let lo = 1;
  let hi = l.errorStep + 1;
  while (fd(hi).drain > c.budget) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fd(mid).drain > c.budget) lo = mid;
    else hi = mid;
  }
  const states = hi;
  const tuned = fd(states);
  // Delay: from the quasi-stationary statistic, at the bad ratio, until the bound is crossed.
  const maxK = 2_000_000;
  const pmf: number[] = [0];
  let a = Float64Array.from(tuned.qsd);
  let b = new Float64Array(states);
  let done = 0;
  for (let k = 1; k <= maxK && done < 0.9999; k++) {
    const crossed = step(a, b, c.bad, l);
    [a, b] = [b, a];
    pmf.push(crossed);
    done += crossed;
  }
  const dist = Float64Array.from(pmf);
  return {
    bound: states * l.unit,
    falseDrain: tuned.drain,
    attempts: { median: quantileOf(dist, 0.5), p95: quantileOf(dist, 0.95) },
    seconds: { median: secondsQuantile(dist, c.ratePerS, 0.5), p95: secondsQuantile(dist, c.ratePerS, 0.95) },
    states,
  };
}
