/**
 * Properties of `errorTest` (fast-check): the statistic is the largest
 * log-likelihood ratio of any run of consecutive buckets, so it is monotone in
 * errors, blind to empty buckets, never lowered by splitting a bucket, and
 * the same read backwards.
 */
import t from 'tap';
import fc from 'fast-check';

import { alternativeRatio, errorTest } from '../../src/rollout/sequential.js';
import type { CountBucket } from '../../src/rollout/types.js';

// Seeded: CI runs the same cases every time (change the seed locally to explore).
fc.configureGlobal({ seed: 20_261_121 });

const EPS = 1e-9;
const bucketArb: fc.Arbitrary<CountBucket> = fc
  .record({
    attempts: fc.integer({ min: 0, max: 400 }),
    errors: fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: 0, max: 2 }) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }) },
    ),
  })
  .map(({ attempts, errors }) => ({ attempts, errors: Math.min(errors, attempts) }));
const seriesArb = fc.array(bucketArb, { maxLength: 62 });
const thresholdArb = fc.oneof(
  fc.constant(0.005),
  fc.double({ min: 0.0005, max: 0.2, noNaN: true }),
  fc.double({ min: 0.2, max: 0.99, noNaN: true }),
);
/** Replaces bucket i. */
const withBucket = (s: readonly CountBucket[], i: number, b: CountBucket): CountBucket[] =>
  s.map((x, j) => (j === i ? b : x));
const nonEmptyAt = fc
  .tuple(fc.array(bucketArb, { minLength: 1, maxLength: 62 }), fc.nat())
  .map(([s, k]) => [s, k % s.length] as const);

/** Independent O(n²) statistic: max over runs i…j of Σ llr, floored at 0, over the given multiples. */
function bruteForce(series: readonly CountBucket[], threshold: number, multiples: readonly number[]): number {
  let best = 0;
  for (const m of multiples) {
    const p1 = alternativeRatio(threshold, m);
    const llr = series.map(
      (b) => b.errors * Math.log(p1 / threshold) + (b.attempts - b.errors) * Math.log((1 - p1) / (1 - threshold)),
    );
    for (let i = 0; i < llr.length; i++) {
      let sum = 0;
      for (let j = i; j < llr.length; j++) {
        sum += llr[j] as number;
        if (sum > best) best = sum;
      }
    }
  }
  return best;
}

t.test('the statistic is the largest run llr (independent O(n²) scan); crossed ⇔ statistic ≥ bound', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(seriesArb, thresholdArb, (series, thr) => {
          const r = errorTest(series, thr);
          const want = bruteForce(series, thr, [2, 6]);
          return (
            Math.abs(r.statistic - want) <= EPS * (1 + want) && r.crossed === r.statistic >= r.bound && r.statistic >= 0
          );
        }),
      ),
    'the property holds on 100 random series (fast-check default numRuns)',
  );
});

t.test('counts and ratio are the sums over the series', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(seriesArb, thresholdArb, (series, thr) => {
          const r = errorTest(series, thr);
          const n = series.reduce((a, b) => a + b.attempts, 0);
          const e = series.reduce((a, b) => a + b.errors, 0);
          return r.attempts === n && r.errors === e && r.ratio === (n > 0 ? e / n : null);
        }),
      ),
    'the property holds',
  );
});

t.test('no attempts → statistic 0, never crossed', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 62 }), thresholdArb, (len, thr) => {
          const r = errorTest(
            Array.from({ length: len }, () => ({ attempts: 0, errors: 0 })),
            thr,
          );
          return r.statistic === 0 && !r.crossed;
        }),
      ),
    'the property holds',
  );
});

t.test('monotone: an added error never lowers the statistic; an added good attempt never raises it', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(nonEmptyAt, thresholdArb, fc.boolean(), ([series, i], thr, turnGood) => {
          const b = series[i] as CountBucket;
          const base = errorTest(series, thr).statistic;
          // An error: one more failed attempt, or one good attempt turned into a failure.
          const failed =
            turnGood && b.errors < b.attempts
              ? { attempts: b.attempts, errors: b.errors + 1 }
              : { attempts: b.attempts + 1, errors: b.errors + 1 };
          const good = { attempts: b.attempts + 1, errors: b.errors };
          return (
            errorTest(withBucket(series, i, failed), thr).statistic >= base - EPS &&
            errorTest(withBucket(series, i, good), thr).statistic <= base + EPS
          );
        }),
      ),
    'the property holds',
  );
});

t.test(
  'empty buckets change nothing; splitting a bucket never lowers the statistic (merging never raises it)',
  async (t) => {
    t.doesNotThrow(
      () =>
        fc.assert(
          fc.property(nonEmptyAt, thresholdArb, fc.nat(), fc.nat(), ([series, i], thr, cut, cutErr) => {
            const base = errorTest(series, thr);
            const padded = [...series.slice(0, i), { attempts: 0, errors: 0 }, ...series.slice(i)];
            const b = series[i] as CountBucket;
            const n1 = cut % (b.attempts + 1);
            const e1 = Math.min(cutErr % (b.errors + 1), n1);
            const e2 = b.errors - e1;
            if (e2 > b.attempts - n1) return true; // the cut cannot hold the remaining errors
            const split = [
              ...series.slice(0, i),
              { attempts: n1, errors: e1 },
              { attempts: b.attempts - n1, errors: e2 },
              ...series.slice(i + 1),
            ];
            return (
              errorTest(padded, thr).statistic === base.statistic &&
              errorTest(split, thr).statistic >= base.statistic - EPS * (1 + base.statistic)
            );
          }),
        ),
      'the property holds',
    );
  },
);

t.test('the statistic reads the same backwards (runs, not suffixes)', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(seriesArb, thresholdArb, (series, thr) => {
          const a = errorTest(series, thr).statistic;
          const b = errorTest([...series].reverse(), thr).statistic;
          return Math.abs(a - b) <= EPS * (1 + a);
        }),
      ),
    'the property holds',
  );
});

t.test('peeked at every tick = judged once: crossed at the end iff crossed on some prefix', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(seriesArb, fc.constant(0.005), (series, thr) => {
          const some = series.some((_, k) => errorTest(series.slice(0, k + 1), thr).crossed);
          return errorTest(series, thr).crossed === some;
        }),
      ),
    'the property holds',
  );
});

t.test('never throws and stays finite for arbitrary numbers', async (t) => {
  const anyNum = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(NaN, Infinity, -Infinity, -1, 0));
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(
          fc.array(fc.record({ attempts: anyNum, errors: anyNum }), { maxLength: 20 }),
          anyNum,
          (series, thr) => {
            const r = errorTest(series, thr);
            return (
              Number.isFinite(r.statistic) &&
              Number.isFinite(r.bound) &&
              Number.isFinite(r.multiple) &&
              r.statistic >= 0
            );
          },
        ),
      ),
    'the property holds',
  );
});
