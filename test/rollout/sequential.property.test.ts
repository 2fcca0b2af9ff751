/**
 * Properties of `errorTest` (fast-check): each alternative's statistic is the
 * largest log-likelihood ratio of any run of consecutive buckets, so it is
 * monotone in errors, blind to empty buckets, never lowered by splitting a
 * bucket, and the same read backwards. With a bound per alternative the
 * answer reports the alternative closest to its bound: the monotone quantity
 * is the share `statistic / bound` (the reported statistic alone can fall
 * when the report moves to another alternative).
 */
import t from 'tap';
import fc from 'fast-check';

import { calibrateBounds, errorTest } from '../../src/rollout/sequential.js';
import type { ErrorTestResult } from '../../src/rollout/sequential.js';
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
/** A count-series bucket. */
const bucket = (attempts: number, errors: number): CountBucket => ({ attempts, errors });
/** Replaces bucket i. */
const withBucket = (s: readonly CountBucket[], i: number, b: CountBucket): CountBucket[] =>
  s.map((x, j) => (j === i ? b : x));
const nonEmptyAt = fc
  .tuple(fc.array(bucketArb, { minLength: 1, maxLength: 62 }), fc.nat())
  .map(([s, k]) => [s, k % s.length] as const);

/** Independent O(n²) statistic of one alternative `p1`: max over runs i…j of Σ llr, floored at 0. */
function bruteForce(series: readonly CountBucket[], threshold: number, p1: number): number {
  let best = 0;
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
  return best;
}

/** How close the reported alternative is to its bound (the largest share over the alternatives). */
const share = (r: ErrorTestResult): number => r.statistic / r.bound;
const startPointsArb = fc.oneof(fc.constant(177_300), fc.integer({ min: 1, max: 10_000_000 }));

t.test(
  'each statistic is the largest run llr (independent O(n²) scan); crossed ⇔ some statistic ≥ its own bound; the report is the largest share',
  async (t) => {
    t.doesNotThrow(
      () =>
        fc.assert(
          fc.property(seriesArb, thresholdArb, startPointsArb, (series, thr, n) => {
            const r = errorTest(series, thr, { startPoints: n });
            const alts = calibrateBounds(thr, n);
            const peaks = alts.map((a) => bruteForce(series, thr, a.p1));
            const shares = peaks.map((p, k) => p / (alts[k]?.bound ?? NaN));
            const k = shares.indexOf(Math.max(...shares));
            const close = (a: number, b: number): boolean => Math.abs(a - b) <= EPS * (1 + Math.abs(b));
            const tie = peaks.some((p, i) => Math.abs(p - (alts[i]?.bound ?? NaN)) <= EPS * (1 + p));
            return (
              alts.length > 0 &&
              (tie || r.crossed === peaks.some((p, i) => p >= (alts[i]?.bound ?? NaN))) &&
              close(share(r), shares[k] ?? NaN) &&
              close(r.bound, alts[k]?.bound ?? NaN) &&
              close(r.statistic, peaks[k] ?? NaN) &&
              r.statistic >= 0
            );
          }),
        ),
      'the property holds on 100 random series (fast-check default numRuns)',
    );
  },
);

t.test('bounds given by hand: crossed ⇔ some alternative reaches its own bound', async (t) => {
  const boundArb = fc.double({ min: 0.1, max: 30, noNaN: true });
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(seriesArb, fc.constant(0.005), fc.tuple(boundArb, boundArb, boundArb), (series, thr, bounds) => {
          const r = errorTest(series, thr, { bounds });
          const peaks = [2, 6, 100].map((m) => bruteForce(series, thr, Math.min(m * thr, (1 + thr) / 2)));
          const margin = (p: number, h: number): number => Math.abs(p - h) / (1 + h);
          if (peaks.some((p, i) => margin(p, bounds[i] as number) <= EPS)) return true; // a tie within rounding
          return r.crossed === peaks.some((p, i) => p >= (bounds[i] as number));
        }),
      ),
    'the property holds',
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

/** One alternative (m of 2, 6, 100) alone, or all three (0): what the monotone properties are stated on. */
const whichArb = fc.constantFrom(0, 2, 6, 100);
/** The monotone quantity: one alternative's statistic, or the share of all three. */
const level = (series: readonly CountBucket[], thr: number, which: number): number =>
  which === 0 ? share(errorTest(series, thr)) : errorTest(series, thr, { multiples: [which] }).statistic;

t.test(
  'monotone: an added error never lowers a statistic or the share; an added good attempt never raises them',
  async (t) => {
    t.doesNotThrow(
      () =>
        fc.assert(
          fc.property(nonEmptyAt, thresholdArb, fc.boolean(), whichArb, ([series, i], thr, turnGood, which) => {
            const b = series[i] as CountBucket;
            const base = level(series, thr, which);
            // An error: one more failed attempt, or one good attempt turned into a failure.
            const failed =
              turnGood && b.errors < b.attempts
                ? { attempts: b.attempts, errors: b.errors + 1 }
                : { attempts: b.attempts + 1, errors: b.errors + 1 };
            const good = { attempts: b.attempts + 1, errors: b.errors };
            return (
              level(withBucket(series, i, failed), thr, which) >= base - EPS * (1 + base) &&
              level(withBucket(series, i, good), thr, which) <= base + EPS * (1 + base)
            );
          }),
        ),
      'the property holds',
    );
  },
);

t.test(
  'empty buckets change nothing; splitting a bucket never lowers a statistic or the share (merging never raises them)',
  async (t) => {
    t.doesNotThrow(
      () =>
        fc.assert(
          fc.property(
            nonEmptyAt,
            thresholdArb,
            fc.nat(),
            fc.nat(),
            whichArb,
            ([series, i], thr, cut, cutErr, which) => {
              const base = level(series, thr, which);
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
              return level(padded, thr, which) === base && level(split, thr, which) >= base - EPS * (1 + base);
            },
          ),
        ),
      'the property holds',
    );
  },
);

t.test('the reported statistic alone is not monotone when the report moves to another alternative', async (t) => {
  // Why the properties above are stated on the share: 1 error in 10 then 3 in
  // 400 put m = 6 closest to its bound (its best run is the first bucket,
  // ln 6 − 9·0.0254 = 1.56); one good attempt of the second bucket turned into
  // a 5xx lifts m = 2's run over both buckets past it in share, with a smaller
  // statistic (1.42) against its smaller bound. Default calibration.
  const before = errorTest([bucket(10, 1), bucket(400, 3)], 0.005);
  const after = errorTest([bucket(10, 1), bucket(400, 4)], 0.005);
  t.equal(before.multiple, 6);
  t.equal(after.multiple, 2);
  t.ok(share(after) >= share(before), 'the share grows');
  t.ok(after.statistic < before.statistic, `the reported statistic falls: ${before.statistic} → ${after.statistic}`);
});

t.test('the statistic reads the same backwards (runs, not suffixes)', async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(seriesArb, thresholdArb, (series, thr) => {
          const a = share(errorTest(series, thr));
          const b = share(errorTest([...series].reverse(), thr));
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
