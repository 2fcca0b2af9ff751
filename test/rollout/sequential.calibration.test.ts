/**
 * The error gate's calibrated bound (src/rollout/sequential.ts
 * `calibrateBounds`, docs/design.md "The calibrated bound"): the drift
 * exponent solves its equation; each bound grows with the walk's exposure and
 * shrinks with the budget; the walk's start points come from its soaks; and
 * the false-drain probability the bounds promise (≤ budget at half the
 * threshold, however often the gate looks) holds against exact calculations:
 * a three-bucket case by hand, and a dynamic programme over the CUSUM state
 * (test/fixtures/sequential-dp.ts) checked itself against a seeded Monte
 * Carlo of `errorTest`.
 */
import t from 'tap';
import fc from 'fast-check';

import { seriesWidthMs } from '../../src/observe/window.js';
import {
  CURRENT_RUN_SHARE,
  DEFAULT_START_POINTS,
  ERROR_TEST_MULTIPLES,
  FALSE_DRAIN_BUDGET,
  alternativeRatio,
  calibrateBounds,
  driftExponent,
  errorTest,
  falseDrainBound,
  tailCost,
  walkExposureMs,
  walkStartPoints,
} from '../../src/rollout/sequential.js';
import type { ErrorTestOptions, WalkShape } from '../../src/rollout/sequential.js';
import type { CountBucket } from '../../src/rollout/types.js';
import { defaultGates, defaultRollout } from '../fixtures/config.js';
import {
  budgetArb,
  cusumCrossExact,
  multiplesArb,
  mulberry32,
  nArb,
  referenceBounds,
  referenceExponent,
  thresholdArb,
  within,
} from '../fixtures/sequential-dp.js';

// Seeded: CI runs the same cases every time (change the seed locally to explore).
fc.configureGlobal({ seed: 20_260_517 });

const THR = 0.005;
const HOUR = 3_600_000;
const MIN = 60_000;
/** |a − b| ≤ tol·(1 + |b|). */
const close = (a: number, b: number, tol = 1e-9): boolean => Math.abs(a - b) <= tol * (1 + Math.abs(b));
/** The left side of the exponent's equation minus 1. */
const residual = (theta: number, p: number, p0: number, p1: number): number =>
  p * (p1 / p0) ** theta + (1 - p) * ((1 - p1) / (1 - p0)) ** theta - 1;

/** 0 < p < p0 < p1 < 1, spread over four decades of p0 and three of p / p0. */
const triple = fc
  .record({
    p0: fc.double({ min: 1e-4, max: 0.6, noNaN: true }),
    up: fc.double({ min: 0.02, max: 0.98, noNaN: true }),
    down: fc.double({ min: 1e-3, max: 0.999, noNaN: true }),
  })
  .map(({ p0, up, down }) => ({ p: p0 * down, p0, p1: p0 + (1 - p0) * up }));

t.test('driftExponent solves p·(p1/p0)^θ + (1 − p)·((1 − p1)/(1 − p0))^θ = 1', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(triple, ({ p, p0, p1 }) => {
          const theta = driftExponent(p, p0, p1);
          return (
            theta > 1 && Math.abs(residual(theta, p, p0, p1)) < 1e-9 && close(theta, referenceExponent(p, p0, p1), 1e-9)
          );
        }),
      ),
    'residual < 1e-9, θ > 1, and the fixture’s independent bisection agrees to 1e-9',
  );
  // Closed forms: θ = k solves the equation at p = (1 − y^k) / (x^k − y^k).
  for (const [p0, p1] of [
    [0.005, 0.03],
    [0.05, 0.2],
    [0.005, 0.5],
  ] as const) {
    const x = p1 / p0;
    const y = (1 - p1) / (1 - p0);
    for (const k of [2, 3, 5]) {
      const p = (1 - y ** k) / (x ** k - y ** k);
      t.ok(p < p0, `p0 ${p0}, p1 ${p1}: θ = ${k} at p = ${p.toPrecision(6)} < p0`);
      t.ok(close(driftExponent(p, p0, p1), k, 1e-9), `driftExponent = ${driftExponent(p, p0, p1)}`);
    }
  }
});

t.test('driftExponent: 1 at p0, above 1 below it, increasing as p falls, Infinity at 0', async (t) => {
  for (const [p0, p1] of [
    [0.005, 0.01],
    [0.005, 0.5],
    [0.3, 0.65],
  ] as const) {
    t.equal(driftExponent(p0, p0, p1), 1, `p = p0 = ${p0}: the likelihood ratio itself`);
    t.equal(driftExponent(2 * p0, p0, p1), 1, 'above p0: 1 (no guarantee beyond θ = 1)');
    const near = driftExponent(p0 * (1 - 1e-9), p0, p1);
    t.ok(near > 1 && near - 1 < 1e-6, `continuous at p0: θ(p0·(1 − 1e-9)) = ${near}`);
    for (const p of [0, -0.1, NaN]) t.equal(driftExponent(p, p0, p1), Infinity, `p = ${p}: no error can occur`);
  }
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(triple, fc.double({ min: 0.01, max: 0.99, noNaN: true }), ({ p, p0, p1 }, w) => {
          return driftExponent(p * w, p0, p1) > driftExponent(p, p0, p1);
        }),
      ),
    'θ(w·p) > θ(p) for 0 < w < 1',
  );
});

t.test('calibrateBounds for the default walk, computed in the test', async (t) => {
  const got = calibrateBounds(THR);
  const want = referenceBounds(THR, 177_300, 0.01, [2, 6, 100]);
  t.same(
    got.map((a) => [a.multiple, a.p1]),
    [
      [2, 0.01],
      [6, 0.03],
      [100, 0.5],
    ],
  );
  for (const [k, w] of want.entries()) {
    const g = got[k];
    t.ok(
      g !== undefined && close(g.theta, w.theta) && close(g.bound, w.bound),
      `${w.multiple}×: ${g?.bound} vs ${w.bound}`,
    );
  }
  // The figures docs/design.md "The calibrated bound" and README quote.
  t.same(
    want.map((a) => a.bound.toFixed(2)),
    ['6.70', '11.34', '16.41'],
  );
  t.same(
    got.map((a) => a.tails),
    [false, false, true],
    'only the largest alternative (100×) starts at trailing failure runs',
  );
  t.ok(close(tailCost(THR, 0.5, got[2]?.theta ?? NaN), want[2]?.c ?? NaN), `tailCost ${want[2]?.c.toFixed(3)}`);
  t.same(calibrateBounds(THR, DEFAULT_START_POINTS, FALSE_DRAIN_BUDGET, ERROR_TEST_MULTIPLES), got, 'the defaults');
  // The budget is spent exactly: n · Σ (1 + c_k) exp(−θ_k h_k) = 1 %, with θ and c from the fixture.
  const spent = want.reduce((s, w, k) => s + 177_300 * (1 + w.c) * Math.exp(-w.theta * (got[k]?.bound ?? NaN)), 0);
  // The bounds spend 1 % less the share kept for runs inside the bucket being filled (a quarter of a third).
  const bounded = want.reduce((s, w) => s + w.spend, 0);
  t.ok(close(bounded, 0.01 * (1 - CURRENT_RUN_SHARE / 3), 1e-12), `the bounds' share ${bounded}`);
  t.ok(close(spent, bounded, 1e-9), `spent ${spent}`);
  t.ok(close(falseDrainBound(got, THR, THR / 2, 177_300), bounded, 1e-9), 'falseDrainBound at the healthy ratio');
  t.ok(falseDrainBound(got, THR, THR / 4, 177_300) < 0.001, 'a tenth of it at a quarter of the threshold');
  t.equal(falseDrainBound(got, THR, THR, 177_300), 1, 'no guarantee at the threshold itself (θ = 1)');
});

t.test('calibrateBounds: each bound strictly increasing in start points, decreasing in budget', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(thresholdArb, multiplesArb, nArb, nArb, budgetArb, budgetArb, (thr, ms, n1, n2, b1, b2) => {
          fc.pre(n1 !== n2 && Math.abs(b1 - b2) > 1e-9 * Math.max(b1, b2));
          const [nLo, nHi] = n1 < n2 ? [n1, n2] : [n2, n1];
          const [bLo, bHi] = b1 < b2 ? [b1, b2] : [b2, b1];
          const base = calibrateBounds(thr, nLo, bHi, ms);
          const moreN = calibrateBounds(thr, nHi, bHi, ms);
          const lessB = calibrateBounds(thr, nLo, bLo, ms);
          return (
            base.length > 0 &&
            base.every((a, k) => (moreN[k]?.bound ?? -Infinity) > a.bound) &&
            base.every((a, k) => (lessB[k]?.bound ?? -Infinity) > a.bound)
          );
        }),
      ),
    'the property holds',
  );
});

t.test('calibrateBounds spends the budget exactly, over distinct alternatives, as the fixture computes', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(thresholdArb, multiplesArb, nArb, budgetArb, (thr, ms, n, budget) => {
          const alts = calibrateBounds(thr, n, budget, ms);
          const ref = referenceBounds(thr, n, budget, ms);
          const distinct = new Set(ms.map((m) => alternativeRatio(thr, m))).size;
          // The fixture's c = (1 − p)/(1 − p·(p1/p0)^θ) cancels as the threshold nears 1 (1 − p·(p1/p0)^θ is
          // 1e-8 at 0.94, 1e-11 at 0.96): compare to its precision there, ~1e-16 / (1 − p·(p1/p0)^θ).
          const tol = Math.max(1e-9, ...ref.map((r) => (r.c > 0 ? 1e-15 * r.c : 0)));
          const spent = ref.reduce((s, r, k) => s + n * (1 + r.c) * Math.exp(-r.theta * (alts[k]?.bound ?? NaN)), 0);
          return (
            alts.length === distinct &&
            alts.length === ref.length &&
            alts.every((a, k) => a.multiple === ref[k]?.multiple && a.p1 === ref[k]?.p1) &&
            alts.every((a, k) => close(a.bound, ref[k]?.bound ?? NaN, tol) && a.tails === ref[k]?.tails) &&
            close(spent, budget * (1 - CURRENT_RUN_SHARE / distinct), tol) &&
            close(falseDrainBound(alts, thr, thr / 2, n), budget * (1 - CURRENT_RUN_SHARE / distinct), 1e-9)
          );
        }),
      ),
    'n · Σ (1 + c_k) exp(−θ_k h_k) = budget; K = distinct capped p1; trailing runs for the largest p1',
  );
});

t.test(
  'calibrateBounds: duplicates count once; no alternative outside (0, 1); invalid n or budget → defaults',
  async (t) => {
    // Duplicated multiples and caps that merge alternatives: K counts each p1 once.
    // The last (largest) alternative also pays for its trailing-run start points, (1 + c) (tailCost), and keeps
    // CURRENT_RUN_SHARE of its budget for runs inside the bucket being filled.
    const spendOf = (k: number, n: number, b: number, c = 0): number =>
      Math.log((k * n * (1 + c)) / (c > 0 ? (1 - CURRENT_RUN_SHARE) * b : b));
    const twice = calibrateBounds(THR, 1000, 0.01, [2, 2, 6]);
    t.same(
      twice.map((a) => a.multiple),
      [2, 6],
    );
    t.ok(close((twice[0]?.bound ?? NaN) * (twice[0]?.theta ?? NaN), spendOf(2, 1000, 0.01)), 'K = 2, not 3');
    // At 10 %, 6× (60 %) and 100× are both capped at 55 %: 2 alternatives, the cap reported under its first multiple.
    const capped = calibrateBounds(0.1, 1000, 0.01);
    t.same(
      capped.map((a) => [a.multiple, a.p1]),
      [
        [2, 0.2],
        [6, 0.55],
      ],
    );
    const cappedCost = tailCost(0.1, 0.55, capped[1]?.theta ?? NaN);
    t.ok(close((capped[1]?.bound ?? NaN) * (capped[1]?.theta ?? NaN), spendOf(2, 1000, 0.01, cappedCost)), 'K = 2');
    // At 60 % all three sit at 80 %: one alternative, as errorTest reports it.
    const one = calibrateBounds(0.6, 1000, 0.01);
    t.equal(one.length, 1);
    const oneCost = tailCost(0.6, 0.8, one[0]?.theta ?? NaN);
    t.ok(close((one[0]?.bound ?? NaN) * (one[0]?.theta ?? NaN), spendOf(1, 1000, 0.01, oneCost)), 'K = 1');
    t.ok(close(errorTest([], 0.6, { startPoints: 1000 }).bound, one[0]?.bound ?? NaN), 'errorTest uses it');

    for (const thr of [0, -0.01, 1, 1.5, NaN, Infinity]) t.same(calibrateBounds(thr), [], `threshold ${thr}: []`);
    const defaults = calibrateBounds(THR);
    for (const n of [0, 0.5, -3, NaN, Infinity]) t.same(calibrateBounds(THR, n), defaults, `start points ${n}`);
    for (const b of [0, 1, -0.1, 2, NaN])
      t.same(calibrateBounds(THR, DEFAULT_START_POINTS, b), defaults, `budget ${b}`);
    t.not(calibrateBounds(THR, 1000)[0]?.bound, defaults[0]?.bound, 'a valid n does change the bounds');
  },
);

/** The default walk of test/fixtures/config.ts (docs/design.md "Numbers"): 5 → 50 by 10, 48 h, 15 min. */
const DEFAULT_WALK: WalkShape = {
  slice: defaultRollout.slice,
  sliceSoakMs: defaultRollout.sliceSoakMs,
  step: defaultRollout.step,
  stepSoakMs: defaultRollout.stepSoakMs,
  target: defaultRollout.target,
};
const WINDOW = defaultGates.windowMs;

t.test('walkExposureMs and walkStartPoints: the default walk and the edges', async (t) => {
  t.same(DEFAULT_WALK, { slice: 5, sliceSoakMs: 48 * HOUR, step: 10, stepSoakMs: 15 * MIN, target: 50 });
  t.equal(walkExposureMs(DEFAULT_WALK, WINDOW), 48 * HOUR + 5 * 15 * MIN, '48 h + 5 steps × 15 min = 49.25 h');
  t.equal(seriesWidthMs(WINDOW), 1000, '1 s series buckets at 15 min');
  const n = walkStartPoints(walkExposureMs(DEFAULT_WALK, WINDOW), seriesWidthMs(WINDOW));
  t.equal(n, 177_300);
  t.equal(n, DEFAULT_START_POINTS, 'DEFAULT_START_POINTS is the default walk’s');

  // Soaks 0: still watched for one window.
  const bare = { ...DEFAULT_WALK, sliceSoakMs: 0, stepSoakMs: 0 };
  t.equal(walkExposureMs(bare, WINDOW), WINDOW);
  t.equal(walkStartPoints(walkExposureMs(bare, WINDOW), seriesWidthMs(WINDOW)), 900);
  t.equal(walkStartPoints(walkExposureMs(bare, 10_000), seriesWidthMs(10_000)), 100, '10 s window: 100 × 100 ms');
  // Steps: ceil((target − slice) / step); none without a positive step or above the slice.
  t.equal(walkExposureMs({ ...DEFAULT_WALK, target: 15 }, 0), 48 * HOUR + 15 * MIN, '5 → 15 by 10: one step');
  t.equal(walkExposureMs({ ...DEFAULT_WALK, target: 16 }, 0), 48 * HOUR + 2 * 15 * MIN, '5 → 16: two');
  t.equal(walkExposureMs({ ...DEFAULT_WALK, target: 100, step: 1 }, 0), 48 * HOUR + 95 * 15 * MIN);
  t.equal(walkExposureMs({ ...DEFAULT_WALK, target: 3 }, 0), 48 * HOUR, 'target below the slice: the slice soak');
  for (const step of [0, -10, NaN]) {
    t.equal(walkExposureMs({ ...DEFAULT_WALK, step }, 0), 48 * HOUR, `step ${step}: no step soaks`);
  }
  for (const bad of [NaN, -MIN]) {
    t.equal(walkExposureMs({ ...DEFAULT_WALK, sliceSoakMs: bad }, 0), 5 * 15 * MIN, `slice soak ${bad} as 0`);
    t.equal(walkExposureMs({ ...DEFAULT_WALK, stepSoakMs: bad }, 0), 48 * HOUR, `step soak ${bad} as 0`);
    t.equal(walkExposureMs(bare, bad), 0, `window ${bad} as 0`);
  }
  // Start points: ceil(exposure / width), at least 1.
  t.equal(walkStartPoints(1500, 1000), 2);
  t.equal(walkStartPoints(2000, 1000), 2);
  t.equal(walkStartPoints(1, 1000), 1);
  for (const [e, w] of [
    [0, 1000],
    [-5, 1000],
    [NaN, 1000],
    [1000, 0],
    [1000, NaN],
    [1000, -1],
  ] as const) {
    t.equal(walkStartPoints(e, w), 1, `exposure ${e}, width ${w}: 1`);
  }
});

const walkArb: fc.Arbitrary<WalkShape> = fc.record({
  slice: fc.integer({ min: 50, max: 120 }).map((x) => x / 10),
  sliceSoakMs: fc.integer({ min: 0, max: 400 * HOUR }),
  step: fc.integer({ min: 10, max: 500 }).map((x) => x / 10),
  stepSoakMs: fc.integer({ min: 0, max: 10 * HOUR }),
  target: fc.integer({ min: 0, max: 1000 }).map((x) => x / 10),
});
const windowArb = fc.constantFrom(10_000, 90_000, 5 * MIN, 15 * MIN, HOUR);

t.test('exposure, start points and the bounds are monotone in every soak and in the target', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(
          walkArb,
          windowArb,
          fc.constantFrom('sliceSoakMs', 'stepSoakMs', 'target'),
          fc.integer({ min: 1, max: 50 * HOUR }),
          (walk, windowMs, key, more) => {
            const grown = {
              ...walk,
              [key]: key === 'target' ? Math.min(100, walk.target + more / HOUR) : walk[key] + more,
            };
            const e1 = walkExposureMs(walk, windowMs);
            const e2 = walkExposureMs(grown, windowMs);
            const width = seriesWidthMs(windowMs);
            const n1 = walkStartPoints(e1, width);
            const n2 = walkStartPoints(e2, width);
            const h1 = calibrateBounds(THR, n1);
            const h2 = calibrateBounds(THR, n2);
            return e2 >= e1 && n2 >= n1 && h1.every((a, k) => (h2[k]?.bound ?? -Infinity) >= a.bound) && e1 >= windowMs;
          },
        ),
      ),
    'never lower after growing a soak or the target',
  );
  // Strictly: more soak above the window floor means more start points and higher bounds.
  const n1 = walkStartPoints(walkExposureMs(DEFAULT_WALK, WINDOW), 1000);
  const n2 = walkStartPoints(walkExposureMs({ ...DEFAULT_WALK, sliceSoakMs: 72 * HOUR }, WINDOW), 1000);
  t.equal(n2 - n1, 24 * 3600, '24 h more slice soak: 86,400 more start points');
  const [a, b] = [calibrateBounds(THR, n1), calibrateBounds(THR, n2)];
  t.ok(
    a.every((x, k) => (b[k]?.bound ?? 0) > x.bound),
    'every bound higher',
  );
});

t.test('exact, by hand: three one-attempt buckets, one alternative, peeked after every bucket', async (t) => {
  // p0 5 %, p1 20 %: a 5xx adds a = ln 4, a good attempt subtracts b = ln(0.95/0.8).
  const p0 = 0.05;
  const p1 = 0.2;
  const a = Math.log(p1 / p0);
  const b = -Math.log((1 - p1) / (1 - p0));
  t.ok(a > b && b > 0, 'so a < 2a − b < 2a');
  /** P(cross) by enumerating all 2³ outcomes through errorTest, peeked after each bucket. */
  const enumerate = (h: number, p: number): number => {
    let total = 0;
    for (let mask = 0; mask < 8; mask++) {
      const errs = [0, 1, 2].map((i) => (mask >> i) & 1);
      const series: CountBucket[] = [];
      let crossed = false;
      for (const e of errs) {
        series.push({ attempts: 1, errors: e });
        crossed ||= errorTest(series, p0, { multiples: [p1 / p0], bounds: [h] }).crossed;
      }
      const e = errs.reduce((s, x) => s + x, 0);
      if (crossed) total += p ** e * (1 - p) ** (3 - e);
    }
    return total;
  };
  t.equal(alternativeRatio(p0, p1 / p0), p1, 'the multiple 4 gives p1 exactly');
  for (const p of [0.025, 0.05, 0.3]) {
    // 2a − b < h < 2a: the CUSUM crosses iff two 5xx in a row (EEx or GEE; EGE
    // reaches only 2a − b).
    const twoInARow = p * p + (1 - p) * p * p;
    t.ok(close(enumerate((2 * a - b + 2 * a) / 2, p), twoInARow, 1e-12), `p = ${p}: p² + (1 − p)·p² = ${twoInARow}`);
    // a < h < 2a − b: E G E crosses too.
    const withGap = twoInARow + p * (1 - p) * p;
    t.ok(close(enumerate((a + 2 * a - b) / 2, p), withGap, 1e-12), `p = ${p}: + p²(1 − p) = ${withGap}`);
    // h ≤ a: any 5xx crosses.
    t.ok(close(enumerate(a, p), 1 - (1 - p) ** 3, 1e-12), `p = ${p}: 1 − (1 − p)³`);
    // h above 3a: never within three buckets.
    t.equal(enumerate(3 * a + 0.01, p), 0);
  }
});

/** Threshold of the exact cases: 5 %, so the probabilities are large enough to measure (healthy 2.5 %). */
const P0 = 0.05;
const BUCKETS = 40;
const ATTEMPTS = 3;

/** Monte Carlo of errorTest itself: `runs` walks of `buckets` buckets (each with its trailing failure run), peeked after every bucket. */
function monteCarlo(p: number, opts: Partial<ErrorTestOptions>, runs: number, seed: number): number {
  const rnd = mulberry32(seed);
  let hits = 0;
  for (let r = 0; r < runs; r++) {
    const series: CountBucket[] = [];
    for (let k = 0; k < BUCKETS; k++) {
      let e = 0;
      let tail = 0;
      for (let i = 0; i < ATTEMPTS; i++) {
        if (rnd() < p) {
          e++;
          tail++;
        } else {
          tail = 0;
        }
      }
      series.push({ attempts: ATTEMPTS, errors: e, tail });
      if (errorTest(series, P0, opts).crossed) {
        hits++;
        break;
      }
    }
  }
  return hits / runs;
}

t.test('exact DP: the calibrated bounds keep the false-drain probability within the budget', async (t) => {
  for (const budget of [0.05, 0.2]) {
    for (const multiples of [[2], [6], [100], [2, 6, 100]]) {
      const alts = calibrateBounds(P0, BUCKETS, budget, multiples);
      const exact = cusumCrossExact(P0, P0 / 2, BUCKETS, ATTEMPTS, alts).crossed;
      // Ville and Boole leave slack (a start point's SPRT rarely runs long; the
      // n·K events overlap) but not orders of magnitude.
      t.ok(
        exact <= budget && exact > budget / 100,
        `${multiples.join(', ')}× at ${budget}: P(false drain) = ${exact.toFixed(5)} in (budget/100, budget]`,
      );
      // Below the healthy ratio the guarantee tightens, and the exact value follows.
      const lower = cusumCrossExact(P0, P0 / 4, BUCKETS, ATTEMPTS, alts).crossed;
      const promise = falseDrainBound(alts, P0, P0 / 4, BUCKETS);
      t.ok(lower <= promise && promise < budget, `at p0/4: ${lower.toExponential(2)} ≤ ${promise.toExponential(2)}`);
    }
  }
  // The default threshold: tiny probabilities, the same guarantee.
  const alts = calibrateBounds(THR, BUCKETS, 0.2);
  const exact = cusumCrossExact(THR, THR / 2, BUCKETS, ATTEMPTS, alts).crossed;
  t.ok(exact <= 0.2 && exact > 0, `0.5 %: P(false drain) = ${exact.toExponential(3)} ≤ 0.2`);
});

t.test('exact DP: within the budget for every exposure, and lower for a longer calibrated exposure', async (t) => {
  let last = Infinity;
  for (const n of [10, 20, 40, 60]) {
    const alts = calibrateBounds(P0, n, 0.2);
    const exact = cusumCrossExact(P0, P0 / 2, n, ATTEMPTS, alts).crossed;
    t.ok(exact <= 0.2, `${n} buckets, ${n} start points: ${exact.toFixed(5)} ≤ 0.2`);
  }
  // The same 40 buckets judged with bounds calibrated for more start points drain less.
  for (const n of [40, 100, 400]) {
    const exact = cusumCrossExact(P0, P0 / 2, BUCKETS, ATTEMPTS, calibrateBounds(P0, n, 0.2)).crossed;
    t.ok(exact < last, `calibrated for ${n}: ${exact.toExponential(3)}`);
    last = exact;
  }
});

t.test('exact DP agrees with a seeded Monte Carlo of errorTest, peeked after every bucket', async (t) => {
  const cases: [string, Partial<ErrorTestOptions>, number, number, number][] = [
    ['100× alone', { multiples: [100], startPoints: BUCKETS, budget: 0.5 }, P0 / 2, 8000, 11],
    ['all three', { startPoints: BUCKETS, budget: 0.2 }, P0 / 2, 20_000, 12],
    ['all three at the threshold', { startPoints: BUCKETS, budget: 0.2 }, P0, 8000, 13],
  ];
  for (const [what, opts, p, runs, seed] of cases) {
    const alts = calibrateBounds(P0, opts.startPoints, opts.budget, opts.multiples);
    const exact = cusumCrossExact(P0, p, BUCKETS, ATTEMPTS, alts).crossed;
    t.ok(exact > 0.01, `${what}: exact ${exact.toFixed(4)} is measurable`);
    within(t, monteCarlo(p, opts, runs, seed), exact, runs, `${what}, p = ${p}`);
  }
});

t.test('a canary answering only 5xx drains on its 4th attempt for walks up to 10 × the default', async (t) => {
  /** The first k at which k 5xx reach some alternative's bound, from the fixture's bounds. */
  const firstK = (n: number): number =>
    Math.min(...referenceBounds(THR, n, 0.01, [2, 6, 100]).map((a) => Math.ceil(a.bound / Math.log(a.p1 / THR))));
  const ns = [DEFAULT_START_POINTS, 2 * DEFAULT_START_POINTS, 5 * DEFAULT_START_POINTS, 10 * DEFAULT_START_POINTS];
  for (const n of ns) {
    t.equal(firstK(n), 4, `${n} start points: the numbers say 4`);
    for (const k of [3, 4]) {
      const oneBucket = errorTest([{ attempts: k, errors: k }], THR, { startPoints: n });
      const perBucket = errorTest(
        Array.from({ length: k }, () => ({ attempts: 1, errors: 1 })),
        THR,
        { startPoints: n },
      );
      t.equal(oneBucket.crossed, k >= 4, `${n}: ${k} 5xx in one bucket`);
      t.equal(perBucket.crossed, k >= 4, `${n}: ${k} 5xx one per bucket`);
      if (k === 4) t.equal(oneBucket.multiple, 100, 'by the 100× alternative');
    }
  }
  // Shorter walks drain sooner (never later than 5 attempts anywhere up to 10 × the default).
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 10 * DEFAULT_START_POINTS }), (n) => {
          const k = firstK(n);
          const series = (j: number): CountBucket[] => [{ attempts: j, errors: j }];
          return (
            k <= 5 &&
            errorTest(series(k), THR, { startPoints: n }).crossed &&
            !errorTest(series(k - 1), THR, { startPoints: n }).crossed &&
            (n < DEFAULT_START_POINTS || k === 4)
          );
        }),
      ),
    'crosses at the computed k ≤ 5, not before; 4 from the default walk on',
  );
  // However the 5xx fall into buckets (empty buckets between), the 4th crosses and the 3rd does not.
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(
          fc.integer({ min: DEFAULT_START_POINTS, max: 10 * DEFAULT_START_POINTS }),
          fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 12 }),
          (n, cuts) => {
            // Up to 6 5xx, cut into buckets as drawn (0 makes an empty bucket).
            const series: CountBucket[] = [];
            let total = 0;
            for (const c of cuts) {
              const e = Math.min(c, 6 - total);
              series.push({ attempts: e, errors: e });
              total += e;
            }
            // Peeked after every bucket: the first bucket that crosses holds the 4th 5xx.
            let seen = 0;
            for (const [i, bk] of series.entries()) {
              const before = seen;
              seen += bk.errors;
              if (errorTest(series.slice(0, i + 1), THR, { startPoints: n }).crossed) return before < 4 && seen >= 4;
            }
            return total < 4;
          },
        ),
      ),
    'the bucketing does not matter',
  );
});
