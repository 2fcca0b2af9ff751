/**
 * The error gate's calibration for a sampled access log
 * (src/rollout/sequential.ts `ErrorTestOptions.sampleWeight` w: every line
 * with a failure or a retry logged, 1 in w of the lines with one successful
 * attempt, each counted w times). At w = 1 (or an invalid w) every function
 * gives what it gives without a weight, bit for bit; above 1 the drift exponent
 * solves its sampled equation (checked against an independent solver of the
 * logged-stream form), falls with w, and the bounds and run minimum rise with
 * it; the budget is still spent exactly; and a canary answering only 5xx,
 * counted as the follower counts a sampled log, crosses on its 4th failure at
 * w = 1 and 2 and on its 5th at w = 4 and 5. The exact probabilities are in
 * sequential-sample.exact.test.ts.
 */
import t from 'tap';
import fc from 'fast-check';

import {
  CURRENT_RUN_SHARE,
  DEFAULT_START_POINTS,
  ERROR_TEST_MULTIPLES,
  FALSE_DRAIN_BUDGET,
  HEALTHY_FRACTION,
  calibrateBounds,
  currentRunMinimum,
  driftExponent,
  errorTest,
  falseDrainBound,
  tailCost,
} from '../../src/rollout/sequential.js';
import type { CountBucket } from '../../src/rollout/types.js';
import { budgetArb, multiplesArb, nArb, referenceExponent, thresholdArb } from '../fixtures/sequential-dp.js';

// Seeded: CI runs the same cases every time (change the seed locally to explore).
fc.configureGlobal({ seed: 20_260_611 });

const THR = 0.005;
/** |a − b| ≤ tol·(1 + |b|). */
const close = (a: number, b: number, tol = 1e-9): boolean => Math.abs(a - b) <= tol * (1 + Math.abs(b));

/** The left side of the per-attempt equation minus 1. */
const residual = (theta: number, p: number, p0: number, p1: number, w: number): number =>
  p * (p1 / p0) ** theta + ((1 - p) / w) * ((1 - p1) / (1 - p0)) ** (w * theta) + (1 - p) * (1 - 1 / w) - 1;

/** 0 < p < p0 < p1 < 1, spread over four decades of p0 and three of p / p0 (as sequential.calibration.test.ts). */
const triple = fc
  .record({
    p0: fc.double({ min: 1e-4, max: 0.6, noNaN: true }),
    up: fc.double({ min: 0.02, max: 0.98, noNaN: true }),
    down: fc.double({ min: 1e-3, max: 0.999, noNaN: true }),
  })
  .map(({ p0, up, down }) => ({ p: p0 * down, p0, p1: p0 + (1 - p0) * up }));
const weightArb = fc.oneof(
  fc.constant(5),
  fc.double({ min: 1, max: 4, noNaN: true }),
  fc.double({ min: 1, max: 100, noNaN: true }),
);
/** Weights that mean "unsampled": 1 itself and everything invalid. */
const UNSAMPLED = [1, 0, 0.5, 0.999, -3, NaN, Infinity, -Infinity];

// w = 1 is pinned by the suites written before sampling (sequential*.test.ts, unchanged): here an
// absent or invalid weight must give exactly what the default (1) gives.
t.test('w = 1, absent or invalid: every function gives what it gives without a weight, bit for bit', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(
          triple,
          fc.constantFrom(...UNSAMPLED),
          fc.double({ min: 0.5, max: 3, noNaN: true }),
          ({ p, p0, p1 }, w, theta) =>
            Object.is(driftExponent(p, p0, p1, w), driftExponent(p, p0, p1)) &&
            Object.is(driftExponent(2 * p0, p0, p1, w), 1) &&
            Object.is(tailCost(p0, p1, theta, w), tailCost(p0, p1, theta)),
        ),
      ),
    'driftExponent and tailCost',
  );
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(
          thresholdArb,
          multiplesArb,
          nArb,
          budgetArb,
          fc.constantFrom(...UNSAMPLED),
          (thr, ms, n, budget, w) => {
            const before = calibrateBounds(thr, n, budget, ms);
            const alts = calibrateBounds(thr, n, budget, ms, w);
            return (
              JSON.stringify(alts) === JSON.stringify(before) &&
              Object.is(falseDrainBound(alts, thr, thr / 3, n, w), falseDrainBound(before, thr, thr / 3, n))
            );
          },
        ),
      ),
    'calibrateBounds and falseDrainBound',
  );
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(
          thresholdArb,
          fc.double({ min: 1, max: 1e13, noNaN: true }),
          fc.oneof(budgetArb, fc.constantFrom(0, 1, -0.5, NaN)),
          fc.integer({ min: 0, max: 4 }),
          fc.constantFrom(...UNSAMPLED),
          (thr, n, budget, k, w) => currentRunMinimum(thr, n, budget, k, w) === currentRunMinimum(thr, n, budget, k),
        ),
      ),
    'currentRunMinimum',
  );
  // errorTest: the same answer with sampleWeight 1, absent, or invalid.
  const series: CountBucket[] = [
    { attempts: 300, errors: 2, tail: 1 },
    { attempts: 40, errors: 3, tail: 3 },
  ];
  const plain = errorTest(series, THR, { walkAttempts: 20 * DEFAULT_START_POINTS });
  for (const w of UNSAMPLED) {
    t.same(errorTest(series, THR, { walkAttempts: 20 * DEFAULT_START_POINTS, sampleWeight: w }), plain, `w = ${w}`);
  }
  // The figures the rest of the suite quotes.
  t.same(
    calibrateBounds(THR).map((a) => a.bound.toFixed(2)),
    ['6.70', '11.34', '16.41'],
  );
});

t.test(
  'the sampled exponent solves its equation; the logged-stream form and an independent solver agree',
  async (t) => {
    t.doesNotThrow(
      () =>
        fc.assert(
          fc.property(triple, weightArb, ({ p, p0, p1 }, w) => {
            const theta = driftExponent(p, p0, p1, w);
            const q = p / (p + (1 - p) / w);
            const logged = q * (p1 / p0) ** theta + (1 - q) * ((1 - p1) / (1 - p0)) ** (w * theta) - 1;
            return (
              theta > 0 &&
              Math.abs(residual(theta, p, p0, p1, w)) < 1e-9 &&
              Math.abs(logged) < 1e-9 &&
              close(theta, referenceExponent(p, p0, p1, w), 1e-8)
            );
          }),
        ),
      'residual < 1e-9 in both forms, and the logged-stream bisection agrees to 1e-8',
    );
    // The default threshold's alternatives at the healthy ratio.
    const p = THR * HEALTHY_FRACTION;
    for (const w of [2, 5, 10]) {
      for (const m of ERROR_TEST_MULTIPLES) {
        const theta = driftExponent(p, THR, m * THR, w);
        t.ok(Math.abs(residual(theta, p, THR, m * THR, w)) < 1e-12, `${m}×, w = ${w}: θ = ${theta.toFixed(6)}`);
      }
    }
    t.equal(driftExponent(p, THR, 0.5, 5).toFixed(4), '0.9452', '100×, w = 5: below 1 at the healthy ratio');
  },
);

t.test('θ_w falls as w grows; below 1 at p0 for w > 1; 0 without a positive root', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(triple, weightArb, weightArb, ({ p, p0, p1 }, a, b) => {
          const [lo, hi] = a < b ? [a, b] : [b, a];
          const [tLo, tHi] = [driftExponent(p, p0, p1, lo), driftExponent(p, p0, p1, hi)];
          // Strictly when the weights are apart (the bisection resolves 1e-12 relative).
          return hi > lo * (1 + 1e-6) ? tHi < tLo : tHi <= tLo * (1 + 1e-11);
        }),
      ),
    'θ(w2) < θ(w1) for w1 < w2',
  );
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(triple, weightArb, ({ p, p0, p1 }, w) => {
          return driftExponent(p, p0, p1, w) <= driftExponent(p, p0, p1);
        }),
      ),
    'never above the unsampled exponent',
  );
  for (const [p0, p1] of [
    [0.005, 0.01],
    [0.005, 0.5],
    [0.3, 0.65],
  ] as const) {
    for (const w of [1.5, 5]) {
      const atP0 = driftExponent(p0, p0, p1, w);
      t.ok(
        atP0 > 0 && atP0 < 1,
        `p0 ${p0}, p1 ${p1}, w = ${w}: θ(p0) = ${atP0.toFixed(4)} < 1 (no martingale under H0)`,
      );
      t.ok(Math.abs(residual(atP0, p0, p0, p1, w)) < 1e-12, 'and it is the root');
      // Where the expected increment is ≥ 0 there is no positive root: 0, no guarantee.
      const up = Math.log(p1 / p0);
      const down = Math.log((1 - p1) / (1 - p0));
      const zeroDrift = -down / (up - down);
      t.equal(driftExponent(Math.min(0.999, zeroDrift * 1.01), p0, p1, w), 0, `above the zero-drift ratio: 0`);
      for (const p of [0, -1, NaN]) t.equal(driftExponent(p, p0, p1, w), Infinity, `p = ${p}: Infinity`);
    }
  }
});

t.test('tailCost at w: the geometric series of the logged trailing run, in closed form', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(triple, weightArb, ({ p, p0, p1 }, w) => {
          const theta = driftExponent(p, p0, p1, w);
          const q = p / (p + (1 - p) / w);
          const a = (p1 / p0) ** theta;
          // E[a^T] ≤ Σ_r q^r (1 − q) a^r for P(T ≥ r) ≤ q^r; finite since q·a < 1 at the root.
          const series = (1 - q) / (1 - q * a);
          const c = tailCost(p0, p1, theta, w);
          // Equal at the exact root; at the computed one the series moves by its residual r times c / (1 − q)
          // (1 − q·a = (1 − q)/c − r), and it cancels as q·a nears 1 (precision ~1e-16 / (1 − q·a)).
          const r = Math.abs(q * a + (1 - q) * ((1 - p1) / (1 - p0)) ** (w * theta) - 1);
          // Where q·a rounds to within 1e-9 of 1 (c beyond ~1e9: p ≪ p0 and a large w) the series says nothing.
          fc.pre(1 - q * a > 1e-9);
          return close(c, series, 1e-9 + (2 * r * c) / (1 - q) + 1e-15 / (1 - q * a));
        }),
      ),
    'c_w = ((1 − p0)/(1 − p1))^(w·θ_w) = (1 − q)/(1 − q·(p1/p0)^θ_w)',
  );
  const p = THR * HEALTHY_FRACTION;
  t.equal(tailCost(THR, 0.5, driftExponent(p, THR, 0.5, 5), 5).toFixed(1), '25.8', '100×, w = 5');
  t.equal(tailCost(THR, 0.5, driftExponent(p, THR, 0.5)).toFixed(2), '2.24', '100×, unsampled');
});

t.test('calibrateBounds at w: the default walk, monotone in w, the budget spent exactly', async (t) => {
  const at = (w: number): string[] =>
    calibrateBounds(THR, DEFAULT_START_POINTS, FALSE_DRAIN_BUDGET, ERROR_TEST_MULTIPLES, w).map((a) =>
      a.bound.toFixed(2),
    );
  t.same(at(1), ['6.70', '11.34', '16.41']);
  t.same(at(2), ['6.73', '11.45', '18.03']);
  t.same(at(4), ['6.81', '11.68', '21.13']);
  t.same(at(5), ['6.85', '11.79', '22.61']);
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(thresholdArb, multiplesArb, nArb, budgetArb, weightArb, weightArb, (thr, ms, n, budget, a, b) => {
          const [lo, hi] = a < b ? [a, b] : [b, a];
          const low = calibrateBounds(thr, n, budget, ms, lo);
          const high = calibrateBounds(thr, n, budget, ms, hi);
          return (
            low.length > 0 &&
            low.length === high.length &&
            low.every((x, k) => (high[k]?.bound ?? -Infinity) >= x.bound * (1 - 1e-10)) &&
            (hi <= lo * 1.001 || low.every((x, k) => (high[k]?.bound ?? -Infinity) > x.bound))
          );
        }),
      ),
    'every bound non-decreasing in w, and strictly increasing when the weights are apart',
  );
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(thresholdArb, multiplesArb, nArb, budgetArb, weightArb, (thr, ms, n, budget, w) => {
          const alts = calibrateBounds(thr, n, budget, ms, w);
          const healthy = thr * HEALTHY_FRACTION;
          // θ and c from the independent solver; the bounds spend budget · (1 − CURRENT_RUN_SHARE / K).
          let spent = 0;
          let tol = 1e-9;
          for (const a of alts) {
            const theta = referenceExponent(healthy, thr, a.p1, w);
            const c = a.tails ? ((1 - thr) / (1 - a.p1)) ** (w * theta) : 0;
            // Near a threshold of 1 the exponent's relative precision (1e-8 here) scales by θ·h in exp(−θ·h).
            tol = Math.max(tol, 2e-8 * theta * a.bound);
            spent += n * (1 + c) * Math.exp(-theta * a.bound);
          }
          const want = budget * (1 - CURRENT_RUN_SHARE / alts.length);
          return (
            close(spent, want, tol) &&
            close(falseDrainBound(alts, thr, healthy, n, w), want, 1e-9) &&
            falseDrainBound(alts, thr, healthy / 2, n, w) < want
          );
        }),
      ),
    'n · Σ (1 + c_k) exp(−θ_k h_k) = budget less the current-run share, at the sampled θ and c',
  );
});

t.test('currentRunMinimum at w: the runs of logged failures, non-decreasing in w', async (t) => {
  const p = THR * HEALTHY_FRACTION;
  const share = (CURRENT_RUN_SHARE * FALSE_DRAIN_BUDGET) / 3;
  for (const w of [2, 5, 10]) {
    const q = p / (p + (1 - p) / w);
    for (const rate of [1, 20, 100, 1000]) {
      const n = rate * DEFAULT_START_POINTS;
      const logged = n * (p + (1 - p) / w);
      const r = currentRunMinimum(THR, n, FALSE_DRAIN_BUDGET, 3, w);
      t.ok(
        logged * q ** r <= share && (r === 1 || logged * q ** (r - 1) > share),
        `w = ${w}, ${rate}/s: runs of ${r} (N_logged·q^r = ${(logged * q ** r).toExponential(2)} ≤ ${share.toExponential(2)})`,
      );
      // The same sum counted per attempt: a failure beginning r logged failures in a row, p·q^(r − 1).
      t.ok(close(logged * q ** r, n * p * q ** (r - 1), 1e-12), 'N·(p + (1 − p)/w)·q^r = N·p·q^(r − 1)');
    }
  }
  t.equal(currentRunMinimum(THR, 20 * DEFAULT_START_POINTS), 4, '20/s, unsampled: 4');
  t.equal(currentRunMinimum(THR, 20 * DEFAULT_START_POINTS, FALSE_DRAIN_BUDGET, 3, 5), 5, '20/s, w = 5: 5');
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(
          thresholdArb,
          fc.double({ min: 1, max: 1e13, noNaN: true }),
          weightArb,
          weightArb,
          (thr, n, a, b) =>
            currentRunMinimum(thr, n, FALSE_DRAIN_BUDGET, 3, Math.min(a, b)) <=
            currentRunMinimum(thr, n, FALSE_DRAIN_BUDGET, 3, Math.max(a, b)),
        ),
      ),
    'non-decreasing in w',
  );
  for (const n of [0, -5, NaN, Infinity]) t.equal(currentRunMinimum(THR, n, 0.01, 3, 5), 1, `N = ${n}: 1`);
});

/**
 * A bucket as the follower builds it from a sampled log: each logged line in
 * order, 'F' a failure (counted once, extends the trailing run), 'S' a logged
 * success (counted w times, ends it). Unlogged successes never reach it.
 */
function followerBucket(lines: string, w: number): CountBucket {
  const b: CountBucket = { attempts: 0, errors: 0, tail: 0 };
  for (const c of lines) {
    if (c === 'F') {
      b.attempts += 1;
      b.errors += 1;
      b.tail = (b.tail ?? 0) + 1;
    } else {
      b.attempts += w;
      b.tail = 0;
    }
  }
  return b;
}

t.test('a canary answering only 5xx: the 4th failure crosses at w = 1 and 2, the 5th at w = 4 and 5', async (t) => {
  const walkAttempts = 20 * DEFAULT_START_POINTS; // 20 canary attempts/s over the default walk
  // [w, the failure that crosses, the run minimum in the bucket being filled at 20/s]: at w = 2 the run
  // minimum (5) is above what the bound needs (4), so inside the bucket being filled the 5th crosses.
  for (const [w, want, runMin] of [
    [1, 4, 4],
    [2, 4, 5],
    [4, 5, 5],
    [5, 5, 5],
  ] as const) {
    t.equal(currentRunMinimum(THR, walkAttempts, FALSE_DRAIN_BUDGET, 3, w), runMin, `w = ${w}: runs of ${runMin}`);
    const opts = { walkAttempts, sampleWeight: w };
    // Healthy traffic first: 30 s with 20/s of which 1 in w successes logged, one failure in it.
    const before: CountBucket[] = Array.from({ length: 30 }, (_, i) =>
      followerBucket((i === 10 ? 'F' : '') + 'S'.repeat(Math.round(20 / w)), w),
    );
    t.notOk(errorTest(before, THR, opts).crossed, `w = ${w}: healthy traffic does not cross`);
    // 1. One failure per complete bucket (a canary at 1 attempt/s answering only 5xx), peeked after each.
    let first = 0;
    for (let k = 1; k <= 8 && first === 0; k++) {
      const series = [...before, ...Array.from({ length: k }, () => followerBucket('F', w))];
      if (errorTest(series, THR, opts).crossed) first = k;
    }
    t.equal(first, want, `w = ${w}: one failure per bucket, the ${want}th crosses`);
    // 2. All in the bucket being filled, after logged successes in it: its trailing run counts from the run minimum.
    first = 0;
    for (let k = 1; k <= 8 && first === 0; k++) {
      if (errorTest([...before, followerBucket('SSS' + 'F'.repeat(k), w)], THR, opts).crossed) first = k;
    }
    const inFilling = Math.max(want, runMin);
    t.equal(first, inFilling, `w = ${w}: in the bucket being filled, the ${inFilling}th crosses`);
    // 3. The run in one bucket once it is complete (a newer bucket follows): its run counts in full.
    first = 0;
    for (let k = 1; k <= 8 && first === 0; k++) {
      const series = [...before, followerBucket('SSS' + 'F'.repeat(k), w), followerBucket('', w)];
      if (errorTest(series, THR, opts).crossed) first = k;
    }
    t.equal(first, want, `w = ${w}: the bucket complete, the ${want}th crosses`);
    const r = errorTest([...before, followerBucket('F'.repeat(want), w), followerBucket('', w)], THR, opts);
    t.equal(r.multiple, 100, 'by the 100× alternative');
  }
  // Calibrated at 1, a w = 5 log would cross on the 4th: the weight must reach the calibration.
  const series = [followerBucket('SSSS', 5), followerBucket('FFFF', 5)];
  t.ok(errorTest(series, THR).crossed, 'bounds for w = 1: the 4th crosses');
  t.notOk(errorTest(series, THR, { sampleWeight: 5 }).crossed, 'bounds for w = 5: not yet');
  t.ok(Math.abs(errorTest(series, THR, { sampleWeight: 5 }).bound - 22.61) < 0.005, 'against 22.61');
});

t.test('errorTest: the sample weight is part of the calibration it caches', async (t) => {
  // No attempts: every share is 0 and the first alternative (2×) reports its bound.
  const bounds = [1, 2, 3, 5, 1, 5, 2].map((w) => errorTest([], THR, { sampleWeight: w }).bound);
  t.same(
    bounds.map((h) => h.toFixed(2)),
    ['6.70', '6.73', '6.77', '6.85', '6.70', '6.85', '6.73'],
    'the 2× alternative reports, at each weight, in any order',
  );
  // Bounds given by hand are used as given; the weight then sets only the run minimum.
  const hand = { multiples: [2, 6, 100], bounds: [50, 50, 18] };
  const four = followerBucket('S' + 'FFFF', 5);
  const walkAttempts = 20 * DEFAULT_START_POINTS;
  t.ok(errorTest([four], THR, { ...hand, walkAttempts }).crossed, 'hand bounds, w = 1: runs of 4 count');
  t.notOk(errorTest([four], THR, { ...hand, walkAttempts, sampleWeight: 5 }).crossed, 'w = 5: runs of 5 needed');
});
