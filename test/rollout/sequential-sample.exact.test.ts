/**
 * The error gate on a sampled access log (src/rollout/sequential.ts,
 * `ErrorTestOptions.sampleWeight` w) against exact calculations. Each canary
 * attempt is a failure with probability p (always logged, counted once), a
 * logged success with probability (1 − p)/w (counted w times) or an unlogged
 * success (not seen), independently; the buckets are built as the follower
 * builds them (attempts = errors + w × logged successes, `tail` = logged
 * failures after the last logged success). Dynamic programmes over those
 * three outcomes give the exact probability that the SPRT from a fixed start,
 * or the CUSUM, crosses a bound; it is compared with Ville's bound at the
 * sampled exponent θ_w (sequential.ts `driftExponent(…, w)`), with the
 * unsampled θ (which the sampled stream exceeds), with the calibrated budget,
 * and with a seeded Monte Carlo of `errorTest` itself (fixtures/sequential-dp.ts
 * `within`, 4.5 binomial standard errors).
 */
import t from 'tap';

import { ERROR_TEST_MULTIPLES, calibrateBounds, driftExponent, errorTest } from '../../src/rollout/sequential.js';
import type { ErrorTestOptions } from '../../src/rollout/sequential.js';
import type { CountBucket } from '../../src/rollout/types.js';
import { cusumCrossExact, mulberry32, within } from '../fixtures/sequential-dp.js';
import type { DpAlternative } from '../fixtures/sequential-dp.js';

// A case with probabilities large enough to measure: threshold 10 %, healthy
// 5 %, one alternative at 4× (40 %, under the cap (1 + p0)/2), bounds by hand.
const P0 = 0.1;
const P = P0 / 2;
const M = 4;
const P1 = M * P0;
const UP = Math.log(P1 / P0);
const DOWN = Math.log((1 - P1) / (1 - P0));

/** One attempt's outcome as the follower sees it. */
type Outcome = 'failure' | 'logged' | 'unlogged';

/** The probabilities of the three outcomes at 5xx ratio p and sample weight w. */
function outcomeLaw(p: number, w: number): [Outcome, number][] {
  return [
    ['failure', p],
    ['logged', (1 - p) / w],
    ['unlogged', (1 - p) * (1 - 1 / w)],
  ];
}

/**
 * Exact P(the sampled SPRT from a fixed start reaches h within n attempts):
 * state (i failures, j logged successes), S = i·ln(p1/p0) + j·w·ln((1 −
 * p1)/(1 − p0)) (each logged success counted w times), crossed paths
 * absorbed (a crossing is always by a failure); an unlogged success leaves
 * the state as it is.
 */
function fixedStartExact(p: number, w: number, h: number, n: number): number {
  const side = n + 1;
  let mass = new Float64Array(side * side);
  let next = new Float64Array(side * side);
  mass[0] = 1;
  let crossed = 0;
  const [[, pf], [, pl], [, pu]] = outcomeLaw(p, w) as [[Outcome, number], [Outcome, number], [Outcome, number]];
  for (let k = 0; k < n; k++) {
    next.fill(0);
    for (let i = 0; i <= k; i++) {
      for (let j = 0; i + j <= k; j++) {
        const q = mass[i * side + j] as number;
        if (q === 0) continue;
        next[i * side + j] = (next[i * side + j] as number) + q * pu;
        next[i * side + j + 1] = (next[i * side + j + 1] as number) + q * pl;
        if ((i + 1) * UP + j * w * DOWN >= h) crossed += q * pf;
        else next[(i + 1) * side + j] = (next[(i + 1) * side + j] as number) + q * pf;
      }
    }
    [mass, next] = [next, mass];
  }
  return crossed;
}

/**
 * Exact P(the CUSUM `max(0, S + x)` over n attempts, each its own bucket,
 * reaches h): the state is (i, j) since the CUSUM last sat at 0, as above.
 */
function cusumExact(p: number, w: number, h: number, n: number): number {
  const key = (i: number, j: number): number => i * 100_000 + j;
  let states = new Map<number, number>([[key(0, 0), 1]]);
  let crossed = 0;
  const law = outcomeLaw(p, w);
  for (let k = 0; k < n; k++) {
    const next = new Map<number, number>();
    for (const [st, q] of states) {
      const i = Math.floor(st / 100_000);
      const j = st % 100_000;
      for (const [o, po] of law) {
        if (po === 0) continue;
        let [ni, nj] = o === 'failure' ? [i + 1, j] : o === 'logged' ? [i, j + 1] : [i, j];
        const s = ni * UP + nj * w * DOWN;
        if (s >= h) {
          crossed += q * po;
          continue;
        }
        if (s <= 0) [ni, nj] = [0, 0];
        next.set(key(ni, nj), (next.get(key(ni, nj)) ?? 0) + q * po);
      }
    }
    states = next;
  }
  return crossed;
}

/** Draws one attempt's outcome. */
function draw(rnd: () => number, p: number, w: number): Outcome {
  const u = rnd();
  if (u < p) return 'failure';
  return rnd() < 1 / w ? 'logged' : 'unlogged';
}

/** Adds one attempt to a bucket as the follower would: a failure counts 1, a logged success w; an unlogged one nothing. */
function addTo(b: CountBucket, o: Outcome, w: number): void {
  if (o === 'failure') {
    b.attempts += 1;
    b.errors += 1;
    b.tail = (b.tail ?? 0) + 1;
  } else if (o === 'logged') {
    b.attempts += w;
    b.tail = 0;
  }
}

t.test('fixed start: the sampled SPRT crosses h with probability ≤ exp(−θ_w·h), and above exp(−θ_1·h)', async (t) => {
  const theta1 = driftExponent(P, P0, P1);
  for (const w of [1, 2, 4]) {
    const thetaW = driftExponent(P, P0, P1, w);
    for (const k of [1, 2, 3]) {
      // h on the lattice of failures: the crossing overshoots only by the down-steps' offset.
      const h = k * UP;
      const exact = fixedStartExact(P, w, h, 300);
      const ville = Math.exp(-thetaW * h);
      t.ok(
        exact <= ville,
        `w = ${w}, h = ${k}·ln 4: exact ${exact.toExponential(4)} ≤ Ville ${ville.toExponential(4)}`,
      );
      t.ok(exact > ville / 3, 'and Ville is nearly attained (within a factor 3: the overshoot)');
      if (w > 1) {
        // The unsampled exponent promises less than the sampled stream delivers.
        const wrong = Math.exp(-theta1 * h);
        t.ok(exact > wrong, `w = ${w}: exact ${exact.toExponential(4)} > exp(−θ_1·h) = ${wrong.toExponential(4)}`);
      }
    }
  }
  // 300 attempts are as good as forever here: the mass left alive after them is negligible.
  const a = fixedStartExact(P, 4, 2 * UP, 300);
  const b = fixedStartExact(P, 4, 2 * UP, 600);
  t.ok(b - a < 1e-6 * b, `horizon: ${a.toExponential(8)} vs ${b.toExponential(8)} at 600`);
});

t.test(
  'fixed start: errorTest on one growing sampled bucket, peeked after every attempt, matches the exact law',
  async (t) => {
    const n = 150;
    const runs = 8000;
    const h = 2 * UP;
    for (const [p, w, seed] of [
      [P, 2, 21],
      [P0, 2, 22],
      [P, 4, 23],
    ] as const) {
      const opts: Partial<ErrorTestOptions> = { multiples: [M], bounds: [h], sampleWeight: w };
      const exact = fixedStartExact(p, w, h, n);
      const rnd = mulberry32(seed);
      let hits = 0;
      for (let r = 0; r < runs; r++) {
        // No `tail`: one growing bucket's statistic is then the SPRT from its start.
        const bucket: CountBucket = { attempts: 0, errors: 0 };
        for (let k = 0; k < n; k++) {
          const o = draw(rnd, p, w);
          if (o === 'failure') {
            bucket.attempts += 1;
            bucket.errors += 1;
          } else if (o === 'logged') bucket.attempts += w;
          if (errorTest([bucket], P0, opts).crossed) {
            hits++;
            break;
          }
        }
      }
      within(t, hits / runs, exact, runs, `p = ${p}, w = ${w}, ${n} attempts`);
    }
  },
);

t.test('CUSUM: the sampled CUSUM over n attempts crosses h with probability ≤ n·exp(−θ_w·h)', async (t) => {
  const n = 200;
  for (const w of [1, 2, 4]) {
    const thetaW = driftExponent(P, P0, P1, w);
    for (const k of [3, 4, 5]) {
      const h = k * UP;
      const exact = cusumExact(P, w, h, n);
      const ville = n * Math.exp(-thetaW * h);
      t.ok(
        exact <= ville && exact > 0,
        `w = ${w}, h = ${k}·ln 4: exact ${exact.toExponential(4)} ≤ n·exp(−θ_w·h) = ${ville.toExponential(4)}`,
      );
    }
  }
  // Sampling only loses information: at the same bound the sampled CUSUM crosses more often under the healthy ratio.
  t.ok(cusumExact(P, 4, 4 * UP, n) > cusumExact(P, 1, 4 * UP, n), 'w = 4 crosses more often than w = 1');
  // errorTest over one-attempt buckets (an unlogged success: an empty bucket) follows the exact law.
  const runs = 8000;
  const h = 4 * UP;
  for (const [w, seed] of [
    [2, 31],
    [4, 32],
  ] as const) {
    const exact = cusumExact(P, w, h, n);
    const rnd = mulberry32(seed);
    let hits = 0;
    const series: CountBucket[] = Array.from({ length: n }, () => ({ attempts: 0, errors: 0 }));
    for (let r = 0; r < runs; r++) {
      // No `tail`: a one-attempt bucket's run adds no start point (the programme has none either).
      for (const b of series) {
        const o = draw(rnd, P, w);
        b.attempts = o === 'failure' ? 1 : o === 'logged' ? w : 0;
        b.errors = o === 'failure' ? 1 : 0;
      }
      if (errorTest(series, P0, { multiples: [M], bounds: [h], sampleWeight: w }).crossed) hits++;
    }
    within(t, hits / runs, exact, runs, `w = ${w}, ${n} one-attempt buckets`);
  }
});

/** One bucket's outcome: errors e, logged successes l, trailing run of logged failures r, and its probability. */
interface BucketOutcome {
  e: number;
  l: number;
  r: number;
  q: number;
}

/** The law of a bucket of `c` attempts, by enumerating its 3^c sequences of outcomes in order. */
function bucketLaw(p: number, w: number, c: number): BucketOutcome[] {
  const law = outcomeLaw(p, w);
  const out = new Map<string, BucketOutcome>();
  for (let code = 0; code < 3 ** c; code++) {
    let e = 0;
    let l = 0;
    let r = 0;
    let q = 1;
    for (let i = 0, x = code; i < c; i++, x = Math.floor(x / 3)) {
      const [o, po] = law[x % 3] as [Outcome, number];
      q *= po;
      if (o === 'failure') {
        e++;
        r++;
      } else if (o === 'logged') {
        l++;
        r = 0;
      }
    }
    if (q === 0) continue;
    const key = `${e}|${l}|${r}`;
    const cur = out.get(key);
    if (cur) cur.q += q;
    else out.set(key, { e, l, r, q });
  }
  return [...out.values()];
}

/**
 * Exact P(errorTest, peeked after every bucket, ever crosses) over sampled
 * buckets of `c` attempts each, bucket k logged at sample weight
 * `weights[k]`: the state is the tuple of CUSUM values, moved by errorTest's
 * own arithmetic on the bucket the follower builds (attempts n = e + w·l:
 * `s += e·up + (n − e)·down`, floored at 0, then raised to `r·up` for the
 * alternative with tails), so the doubles are errorTest's (as
 * fixtures/sequential-dp.ts `cusumCrossExact`, unsampled). Crossed paths are
 * absorbed.
 */
function sampledCusumExact(
  threshold: number,
  p: number,
  weights: readonly number[],
  c: number,
  alternatives: readonly DpAlternative[],
): number {
  const laws = new Map<number, BucketOutcome[]>();
  const up = alternatives.map((a) => Math.log(a.p1 / threshold));
  const down = alternatives.map((a) => Math.log((1 - a.p1) / (1 - threshold)));
  let states = new Map<string, { s: number[]; q: number }>([['start', { s: alternatives.map(() => 0), q: 1 }]]);
  let crossed = 0;
  for (const w of weights) {
    let law = laws.get(w);
    if (law === undefined) laws.set(w, (law = bucketLaw(p, w, c)));
    const next = new Map<string, { s: number[]; q: number }>();
    for (const { s, q } of states.values()) {
      for (const o of law) {
        const m = q * o.q;
        const n = o.e + w * o.l;
        let hit = false;
        const ns = s.map((x, i) => {
          const a = alternatives[i] as DpAlternative;
          const u = up[i] as number;
          // errorTest skips a bucket without attempts (all its attempts unlogged successes).
          let y = n === 0 ? x : x + (o.e * u + (n - o.e) * (down[i] as number));
          if (y < 0) y = 0;
          if (a.tails === true && o.r * u > y) y = o.r * u;
          if (y >= a.bound) hit = true;
          return y;
        });
        if (hit) {
          crossed += m;
          continue;
        }
        const key = ns.join('|');
        const cur = next.get(key);
        if (cur) cur.q += m;
        else next.set(key, { s: ns, q: m });
      }
    }
    states = next;
  }
  return crossed;
}

/** `buckets` buckets all logged at weight w. */
const constant = (w: number, buckets: number): number[] => Array.from({ length: buckets }, () => w);

/**
 * Threshold of the calibrated cases: 5 % (healthy 2.5 %). One alternative
 * over 40 buckets of 3 attempts; all three over 20 buckets of 2 (the tuple of
 * three CUSUMs on the sampled lattice has ~10^5 states at 20 × 3 already).
 */
const Q0 = 0.05;
const ONE = { buckets: 40, attempts: 3 };
const ALL = { buckets: 20, attempts: 2 };

t.test('calibrated at w: the exact false-drain probability on the sampled log is within the budget', async (t) => {
  for (const w of [2, 5]) {
    for (const budget of [0.05, 0.2]) {
      for (const multiples of [[6], [100]]) {
        const alts = calibrateBounds(Q0, ONE.buckets, budget, multiples, w);
        const exact = sampledCusumExact(Q0, Q0 / 2, constant(w, ONE.buckets), ONE.attempts, alts);
        // Ville and Boole leave slack (more as w grows: the bound holds for every mix of weights ≤ w).
        t.ok(
          exact <= budget && exact > budget / 1000,
          `w = ${w}, ${multiples.join(', ')}× at ${budget}: P(false drain) = ${exact.toExponential(3)} ≤ budget`,
        );
      }
    }
    const alts = calibrateBounds(Q0, ALL.buckets, 0.2, ERROR_TEST_MULTIPLES, w);
    const exact = sampledCusumExact(Q0, Q0 / 2, constant(w, ALL.buckets), ALL.attempts, alts);
    t.ok(exact <= 0.2 && exact > 0.0002, `w = ${w}, all three at 0.2: ${exact.toExponential(3)} ≤ 0.2`);
  }
  // The bounds grow with w, so on the same sampled traffic a larger calibrated weight drains less.
  const on5 = (calibratedAt: number): number =>
    sampledCusumExact(
      Q0,
      Q0 / 2,
      constant(5, ONE.buckets),
      ONE.attempts,
      calibrateBounds(Q0, ONE.buckets, 0.2, [100], calibratedAt),
    );
  t.ok(on5(5) < on5(1), `w = 5 traffic, 100×: ${on5(5).toFixed(5)} calibrated at 5 < ${on5(1).toFixed(5)} at 1`);
  // w = 1 in the programme is the unsampled law: fixtures/sequential-dp.ts cusumCrossExact, bit for bit.
  for (const multiples of [[100], ERROR_TEST_MULTIPLES]) {
    const alts = calibrateBounds(Q0, ALL.buckets, 0.2, multiples);
    const mine = sampledCusumExact(Q0, Q0 / 2, constant(1, ALL.buckets), ALL.attempts, alts);
    const theirs = cusumCrossExact(Q0, Q0 / 2, ALL.buckets, ALL.attempts, alts).crossed;
    t.ok(Math.abs(mine - theirs) <= 1e-12, `w = 1, ${multiples.join(', ')}×: ${mine} vs ${theirs}`);
  }
});

t.test('calibrated at w: a mix of weights ≤ w in one walk stays within the budget', async (t) => {
  // Buckets alternate w = 1 and w = 5 traffic, bounds calibrated at 5: every attempt is a supermartingale step.
  const alts = calibrateBounds(Q0, ALL.buckets, 0.2, ERROR_TEST_MULTIPLES, 5);
  const weights = Array.from({ length: ALL.buckets }, (_, k) => (k % 2 === 0 ? 1 : 5));
  const mixed = sampledCusumExact(Q0, Q0 / 2, weights, ALL.attempts, alts);
  t.ok(mixed <= 0.2 && mixed > 0, `mixed 1 / 5: ${mixed.toExponential(3)} ≤ 0.2`);
});

t.test('calibrated at w: the exact programme agrees with a seeded Monte Carlo of errorTest', async (t) => {
  const cases: [string, Partial<ErrorTestOptions>, { buckets: number; attempts: number }, number, number][] = [
    ['100× alone, w = 2', { multiples: [100], budget: 0.5, sampleWeight: 2 }, ONE, Q0 / 2, 41],
    ['6× alone at the threshold, w = 5', { multiples: [6], budget: 0.5, sampleWeight: 5 }, ONE, Q0, 42],
    ['all three at the threshold, w = 5', { budget: 0.2, sampleWeight: 5 }, ALL, Q0, 43],
    ['all three at 1.5 × the threshold, w = 2', { budget: 0.2, sampleWeight: 2 }, ALL, 1.5 * Q0, 44],
  ];
  const runs = 8000;
  for (const [what, given, size, p, seed] of cases) {
    const opts = { ...given, startPoints: size.buckets };
    const w = opts.sampleWeight ?? 1;
    const alts = calibrateBounds(Q0, opts.startPoints, opts.budget, opts.multiples, w);
    const exact = sampledCusumExact(Q0, p, constant(w, size.buckets), size.attempts, alts);
    t.ok(exact > 0.01, `${what}: exact ${exact.toFixed(4)} is measurable`);
    const rnd = mulberry32(seed);
    let hits = 0;
    for (let r = 0; r < runs; r++) {
      const series: CountBucket[] = [];
      for (let k = 0; k < size.buckets; k++) {
        const b: CountBucket = { attempts: 0, errors: 0, tail: 0 };
        for (let i = 0; i < size.attempts; i++) addTo(b, draw(rnd, p, w), w);
        series.push(b);
        if (errorTest(series, Q0, opts).crossed) {
          hits++;
          break;
        }
      }
    }
    within(t, hits / runs, exact, runs, `${what}, p = ${p.toFixed(4)}`);
  }
});
