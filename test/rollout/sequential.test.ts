import t from 'tap';
import {
  CURRENT_RUN_SHARE,
  DEFAULT_ERROR_TEST_OPTIONS,
  DEFAULT_START_POINTS,
  ERROR_TEST_MULTIPLES,
  FALSE_DRAIN_BUDGET,
  HEALTHY_FRACTION,
  alternativeRatio,
  bernoulliLlr,
  currentRunMinimum,
  errorTest,
} from '../../src/rollout/sequential.js';
import type { ErrorTestOptions } from '../../src/rollout/sequential.js';
import type { CountBucket } from '../../src/rollout/types.js';
import { referenceBounds } from '../fixtures/sequential-dp.js';

const THR = 0.005;
const b = (attempts: number, errors: number): CountBucket => ({ attempts, errors });
// Hand values (natural logs, computed independently to 16 digits).
const LN2 = 0.6931471805599453;
const LN6 = 1.791759469228055;
const LN10 = 2.302585092994046;
const GOOD_M2 = -0.005037794029957181; // ln(0.99 / 0.995)
const GOOD_M6 = -0.025446665661164262; // ln(0.97 / 0.995)
const GOOD_M10 = -0.04628075256400634; // ln(0.95 / 0.995)
const GOOD_M100 = -0.6881346387364011; // ln(0.5 / 0.995)
// The CUSUM mechanics below run on the test's former fixed setting, given by
// hand: H1 at 2× and 6×, both with the bound ln(2 / 0.001) (Bonferroni over
// two alternatives at alpha 0.1 %). With equal bounds the reported
// alternative is the one with the largest statistic.
const BOUND = 7.600902459542082; // ln(2 / 0.001)
const FIXED: Partial<ErrorTestOptions> = { multiples: [2, 6], bounds: [BOUND, BOUND] };
/** The default calibration (threshold 0.5 %, the default walk's 177,300 start points, 1 %), computed in the fixture. */
const [H2, H6, H100] = referenceBounds(THR, 177_300, 0.01, [2, 6, 100]).map((a) => a.bound) as [number, number, number];

t.test('bernoulliLlr: per-attempt increments and a bucket, by hand', async (t) => {
  t.equal(bernoulliLlr(1, 1, THR, 10 * THR), LN10, 'an error under H1 10x: ln 10');
  t.ok(Math.abs(bernoulliLlr(1, 0, THR, 10 * THR) - GOOD_M10) < 1e-15, 'a good attempt under H1 10x: ln(0.95/0.995)');
  t.ok(Math.abs(bernoulliLlr(1, 1, THR, 6 * THR) - LN6) < 1e-15, 'an error under H1 6x: ln 6');
  t.ok(Math.abs(bernoulliLlr(100, 3, THR, 2 * THR) - (3 * LN2 + 97 * GOOD_M2)) < 1e-12, '3 of 100 under H1 2x');
  t.ok(Math.abs(bernoulliLlr(100, 3, THR, 2 * THR) - 1.590775520773989) < 1e-12, '= 1.5908');
  t.equal(bernoulliLlr(0, 0, THR, 2 * THR), 0, 'no attempts: 0');
});

t.test('Wald boundaries: the published sequential sampling plan (NIST/SEMATECH e-Handbook 6.2.6)', async (t) => {
  // e-Handbook of Statistical Methods, "What is Sequential Sampling?": p1 = 0.01
  // (AQL), p2 = 0.10 (LTPD), alpha = 0.05, beta = 0.10 give the acceptance line
  // d = -h1 + s·n and the rejection line d = h2 + s·n with h1 = 0.939,
  // h2 = 1.205, s = 0.040 (Wald 1947's plan in count form).
  const [p1, p2, alpha, beta] = [0.01, 0.1, 0.05, 0.1];
  const up = bernoulliLlr(1, 1, p1, p2);
  const down = bernoulliLlr(1, 0, p1, p2);
  const k = up - down;
  const h1 = Math.log((1 - alpha) / beta) / k;
  const h2 = Math.log((1 - beta) / alpha) / k;
  const s = -down / k;
  t.equal(h1.toFixed(3), '0.939');
  t.equal(h2.toFixed(3), '1.205');
  t.equal(s.toFixed(3), '0.040');
  // The SPRT in llr form rejects exactly where the count form does: the first
  // d with llr(n, d) ≥ ln((1 − β)/α) is ceil(h2 + s·n), for every n up to 500.
  const upper = Math.log((1 - beta) / alpha);
  const disagree: string[] = [];
  for (let n = 1; n <= 500; n++) {
    let d = 0;
    while (d <= n && bernoulliLlr(n, d, p1, p2) < upper) d++;
    const want = Math.ceil(h2 + s * n);
    if (d !== Math.min(want, n + 1)) disagree.push(`n=${n}: llr form rejects at ${d}, count form at ${want}`);
  }
  t.same(disagree, [], 'llr and count forms agree for n = 1…500');
  // errorTest with this plan's alternative and Wald's boundary given by hand
  // rejects one bucket of n attempts exactly where the published plan does.
  const plan: Partial<ErrorTestOptions> = { multiples: [p2 / p1], bounds: [upper] };
  t.equal(alternativeRatio(p1, p2 / p1), p2, "the alternative is the plan's LTPD");
  const off: string[] = [];
  for (let n = 1; n <= 500; n++) {
    const want = Math.ceil(h2 + s * n);
    for (const d of [want - 1, want]) {
      if (d < 0 || d > n) continue;
      if (errorTest([b(n, d)], p1, plan).crossed !== d >= want) off.push(`n=${n}, d=${d}`);
    }
  }
  t.same(off, [], 'errorTest rejects at d = ceil(h2 + s·n) and not at d − 1, n = 1…500');
});

t.test('defaults', async (t) => {
  t.same(ERROR_TEST_MULTIPLES, [2, 6, 100]);
  t.ok(Object.isFrozen(ERROR_TEST_MULTIPLES));
  t.equal(FALSE_DRAIN_BUDGET, 0.01, '≤ 1 % false drains per walk (docs/design.md "Targets")');
  t.equal(HEALTHY_FRACTION, 0.5, 'healthy = half the threshold');
  // 48 h slice soak + 5 steps × 15 min (5 → 50 by 10), in 1 s buckets.
  t.equal(DEFAULT_START_POINTS, 48 * 3600 + 5 * 15 * 60);
  t.same(DEFAULT_ERROR_TEST_OPTIONS, { startPoints: 177_300, budget: 0.01, multiples: [2, 6, 100] });
  t.ok(Object.isFrozen(DEFAULT_ERROR_TEST_OPTIONS));
});

t.test('errorTest on small hand series (threshold 0.5 %, fixed bounds given by hand)', async (t) => {
  const empty = errorTest([], THR, FIXED);
  t.same(empty, { attempts: 0, errors: 0, ratio: null, statistic: 0, bound: BOUND, multiple: 2, crossed: false });
  t.equal(errorTest([b(0, 0), b(0, 0)], THR, FIXED).statistic, 0, 'empty buckets: 0');
  t.equal(errorTest([b(100, 0)], THR, FIXED).statistic, 0, 'good traffic floors at 0');

  // 5 errors in 10: m = 6 gives 5 ln 6 + 5 ln(0.97/0.995) = 8.83 ≥ 7.60.
  const burst = errorTest([b(10, 5)], THR, FIXED);
  t.ok(Math.abs(burst.statistic - (5 * LN6 + 5 * GOOD_M6)) < 1e-12, `statistic ${burst.statistic}`);
  t.equal(burst.multiple, 6);
  t.equal(burst.crossed, true);
  t.equal(burst.ratio, 0.5);

  // CUSUM: good traffic between two bursts restarts the run. 2 errors, 200
  // good, 4 errors: the best run is the last bucket alone (4 ln 6 = 7.17 < 7.60),
  // not the SPRT from the start (2 ln 6 − 200·0.0254 + 4 ln 6 = 5.66).
  const gap = errorTest([b(2, 2), b(200, 0), b(4, 4)], THR, FIXED);
  t.ok(Math.abs(gap.statistic - 4 * LN6) < 1e-12, `statistic ${gap.statistic}`);
  t.equal(gap.crossed, false);
  t.equal(gap.attempts, 206);
  t.equal(gap.errors, 6);

  // A run that crossed earlier in the span still counts (sup over time, Ville).
  const earlier = errorTest([b(5, 5), b(400, 0)], THR, FIXED);
  t.ok(Math.abs(earlier.statistic - 5 * LN6) < 1e-12);
  t.equal(earlier.crossed, true);

  // A sustained 10× in one bucket (300 attempts, 15 errors) crosses at once;
  // 1 error in 300 (0.33 %) does not.
  const tenX = errorTest([b(300, 0), b(300, 15)], THR, FIXED);
  t.ok(Math.abs(tenX.statistic - (15 * LN6 + 285 * GOOD_M6)) < 1e-9, `statistic ${tenX.statistic}`);
  t.equal(tenX.crossed, true);
  t.equal(errorTest([b(300, 1), b(300, 1)], THR, FIXED).crossed, false);

  // 2× sustained (4 errors per 400): only the m = 2 alternative rises, by
  // 4 ln 2 + 396 ln(0.99/0.995) = 0.78 per bucket (m = 6: −2.91); 10 buckets cross.
  const twoX = (n: number): CountBucket[] => Array.from({ length: n }, () => b(400, 4));
  t.equal(errorTest(twoX(10), THR, FIXED).multiple, 2, 'the small multiple is the one closest to crossing');
  t.ok(Math.abs(errorTest(twoX(10), THR, FIXED).statistic - 10 * (4 * LN2 + 396 * GOOD_M2)) < 1e-9);
  t.equal(errorTest(twoX(10), THR, FIXED).crossed, true);
  t.equal(errorTest(twoX(9), THR, FIXED).crossed, false);
});

t.test('errorTest with the default calibration: each alternative against its own bound', async (t) => {
  // Bounds of the default walk, computed in the fixture: about 6.70 / 11.34 / 16.41.
  t.ok(H2 < H6 && H6 < H100, `bounds ${H2.toFixed(2)} / ${H6.toFixed(2)} / ${H100.toFixed(2)}`);
  const empty = errorTest([], THR);
  t.equal(empty.multiple, 2, 'no evidence: the first alternative reports');
  t.ok(Math.abs(empty.bound - H2) < 1e-9, `with its own bound ${empty.bound}`);
  t.equal(empty.crossed, false);

  // 5 errors in 10: m = 100 gives 5 ln 100 + 5 ln(0.5/0.995) = 19.58 ≥ 16.41.
  const burst = errorTest([b(10, 5)], THR);
  t.ok(Math.abs(burst.statistic - (5 * Math.log(100) + 5 * GOOD_M100)) < 1e-12, `statistic ${burst.statistic}`);
  t.ok(Math.abs(burst.bound - H100) < 1e-9);
  t.equal(burst.multiple, 100);
  t.equal(burst.crossed, true);

  // The gap series above: 4 errors in a row is 4 ln 100 = 18.42 ≥ 16.41 for the
  // m = 100 alternative, though 4 ln 6 = 7.17 stays far below 11.34.
  const gap = errorTest([b(2, 2), b(200, 0), b(4, 4)], THR);
  t.equal(gap.crossed, true);
  t.equal(gap.multiple, 100);
  t.ok(Math.abs(gap.statistic - 4 * Math.log(100)) < 1e-9);

  // The alternative reported is the one closest to its bound, not the largest
  // statistic: 2 errors in 100 give m = 6 the larger statistic (2 ln 6 + 98
  // ln(0.97/0.995) = 1.09) but m = 2 the larger share (0.89 / 6.70 > 1.09 / 11.34).
  const s2 = 2 * LN2 + 98 * GOOD_M2;
  const s6 = 2 * LN6 + 98 * GOOD_M6;
  t.ok(s6 > s2 && s2 / H2 > s6 / H6, 'the case separates the two rules');
  const near = errorTest([b(100, 2)], THR);
  t.equal(near.multiple, 2);
  t.ok(Math.abs(near.statistic - s2) < 1e-12, `statistic ${near.statistic}`);
  t.ok(Math.abs(near.bound - H2) < 1e-9);
  t.equal(near.crossed, false);

  // Sustained traffic, one bucket per second: each alternative needs
  // ceil(h / increment) buckets; the gate drains at the first alternative that
  // gets there, not one bucket earlier.
  const firstCross = (bucket: CountBucket): number => {
    let best = Infinity;
    for (const [m, h] of [
      [2, H2],
      [6, H6],
      [100, H100],
    ] as const) {
      const inc = bernoulliLlr(bucket.attempts, bucket.errors, THR, m * THR);
      if (inc > 0) best = Math.min(best, Math.ceil(h / inc));
    }
    return best;
  };
  for (const [bucket, want] of [
    [b(20, 1), 6], // 10× at 20/s: m = 6 rises ln 6 − 19·0.0254 = 1.31 per second
    [b(400, 4), 2], // 2× at 400/s: m = 2 rises 0.78 per second
  ] as const) {
    const k = firstCross(bucket);
    t.ok(Number.isFinite(k) && k > 1, `${JSON.stringify(bucket)} per second crosses after ${k} s`);
    const run = (n: number): CountBucket[] => Array.from({ length: n }, () => bucket);
    t.equal(errorTest(run(k), THR).crossed, true, `crossed after ${k} buckets`);
    t.equal(errorTest(run(k - 1), THR).crossed, false, `not after ${k - 1}`);
    t.equal(errorTest(run(k), THR).multiple, want, `by the ${want}× alternative`);
  }
});

t.test('errorTest options: bounds by hand, calibration options, and invalid values fall back', async (t) => {
  // A single alternative with a bound given by hand.
  const one = errorTest([b(10, 5)], THR, { multiples: [10], bounds: [Math.log(1 / 0.05)] });
  t.equal(one.bound, Math.log(1 / 0.05));
  t.equal(one.multiple, 10);
  t.ok(Math.abs(one.statistic - (5 * LN10 + 5 * GOOD_M10)) < 1e-12);
  t.equal(one.crossed, true);
  // A single calibrated alternative: K = 1, so ln(n / budget) / θ.
  const [ref] = referenceBounds(THR, 1000, 0.05, [10]);
  const cal = errorTest([b(10, 5)], THR, { multiples: [10], startPoints: 1000, budget: 0.05 });
  t.ok(Math.abs(cal.bound - (ref?.bound ?? NaN)) < 1e-9, `calibrated ${cal.bound} vs ${ref?.bound}`);
  // More start points or a smaller budget raise every bound.
  const base = errorTest([], THR, { multiples: [2], startPoints: 1000, budget: 0.05 }).bound;
  t.ok(errorTest([], THR, { multiples: [2], startPoints: 2000, budget: 0.05 }).bound > base);
  t.ok(errorTest([], THR, { multiples: [2], startPoints: 1000, budget: 0.01 }).bound > base);
  // Bounds by hand decide the crossing: the same series crosses a low bound and not a high one.
  t.equal(errorTest([b(4, 4)], THR, { multiples: [6], bounds: [7] }).crossed, true, '4 ln 6 = 7.17 ≥ 7');
  t.equal(errorTest([b(4, 4)], THR, { multiples: [6], bounds: [7.2] }).crossed, false, '7.17 < 7.2');
  // Invalid options fall back to the defaults.
  const defaults = errorTest([b(10, 5)], THR);
  for (const opts of [
    {},
    { startPoints: 0 },
    { startPoints: NaN },
    { startPoints: -5 },
    { startPoints: Infinity },
    { budget: 0 },
    { budget: 1 },
    { budget: NaN },
    { multiples: [] },
    { multiples: [1] },
    { multiples: [2, Infinity] },
    { bounds: [1, 2] },
    { bounds: [1, 2, 0] },
    { bounds: [1, 2, NaN] },
    { bounds: [1, 2, Infinity] },
    { multiples: [6], bounds: [] },
  ] as Partial<ErrorTestOptions>[]) {
    const r = errorTest([b(10, 5)], THR, opts);
    // { multiples: [6], bounds: [] } keeps its valid multiples: compare with that calibration.
    const want =
      opts.multiples?.length === 1 && opts.multiples[0] === 6
        ? errorTest([b(10, 5)], THR, { multiples: [6] })
        : defaults;
    t.same(r, want, JSON.stringify(opts));
  }
  t.not(
    errorTest([b(10, 5)], THR, { multiples: [6] }).bound,
    defaults.bound,
    'and a valid option does change the answer',
  );
});

t.test('errorTest edge thresholds and malformed buckets never throw', async (t) => {
  // Threshold 0: zero tolerance, the first error crosses.
  t.same(errorTest([b(100, 0)], 0), {
    attempts: 100,
    errors: 0,
    ratio: 0,
    statistic: 0,
    bound: 1,
    multiple: 0,
    crossed: false,
  });
  t.same(errorTest([b(100, 1)], 0), {
    attempts: 100,
    errors: 1,
    ratio: 0.01,
    statistic: 1,
    bound: 1,
    multiple: 0,
    crossed: true,
  });
  t.equal(errorTest([b(1, 1)], NaN).crossed, true, 'NaN threshold fails safe');
  t.equal(errorTest([b(1, 1)], -1).crossed, true);
  // Threshold 1 (or more) can never be exceeded.
  for (const thr of [1, 1.5, Infinity]) {
    const r = errorTest([b(100, 100)], thr);
    t.equal(r.crossed, false, `threshold ${thr}`);
    t.equal(r.statistic, 0);
    t.equal(r.multiple, 0);
  }
  // Large thresholds: p1 capped half way to 1, so every multiple here sits at
  // 0.8, and the three count as one alternative (K = 1 in the bound).
  t.equal(alternativeRatio(0.6, 2), 0.8);
  t.equal(alternativeRatio(0.6, 6), 0.8);
  t.equal(alternativeRatio(0.6, 100), 0.8);
  t.equal(alternativeRatio(THR, 6), 6 * THR);
  t.equal(alternativeRatio(THR, 100), 0.5, '100 × 0.5 % = 50 %, just under the cap 50.25 %');
  const high = errorTest([b(30, 30)], 0.6);
  t.ok(Math.abs(high.multiple - 0.8 / 0.6) < 1e-12, `multiple ${high.multiple}`);
  t.ok(Math.abs(high.statistic - 30 * Math.log(0.8 / 0.6)) < 1e-9);
  const [once] = referenceBounds(0.6, DEFAULT_START_POINTS, 0.01, [2]);
  t.ok(Math.abs(high.bound - (once?.bound ?? NaN)) < 1e-9, `bound ${high.bound}: ln(n / 1 %) / θ, K = 1`);
  t.equal(high.crossed, true);
  t.equal(errorTest([b(20, 12)], 0.6).crossed, false, '60 % errors at a 60 % threshold');
  // Malformed counts are clamped: errors within [0, attempts], negatives, NaN and Infinity as 0.
  t.same(errorTest([b(10, 50)], THR), errorTest([b(10, 10)], THR));
  t.same(errorTest([b(-5, -1), b(NaN, NaN), b(Infinity, 3)], THR), errorTest([], THR));
  t.equal(errorTest([b(10, -3)], THR).errors, 0);
});

t.test('trailing failure runs: the 100× alternative also starts at a bucket’s last failures', async (t) => {
  const LN100 = Math.log(100);
  // 36 good attempts, then the canary turns to all 5xx: 4 failures end the 1 s bucket. As one bucket it weighs
  // 4·ln 100 + 36·ln(0.5/0.995) = −6.4 under 100×: the good attempts before the onset hide the fault.
  const plain = errorTest([b(40, 4)], THR);
  t.notOk(plain.crossed, `without tail: ${plain.statistic.toFixed(2)} (2×/6× see 4 of 40 as no proof yet)`);
  // Its trailing run starts a new SPRT at the first failure: 4·ln 100 = 18.42 ≥ the 100× bound.
  const tail = errorTest([{ attempts: 40, errors: 4, tail: 4 }], THR);
  t.ok(tail.crossed, `with tail 4: ${tail.statistic.toFixed(2)} ≥ ${tail.bound.toFixed(2)}`);
  t.ok(Math.abs(tail.statistic - 4 * LN100) < 1e-12, '= 4·ln 100');
  t.equal(tail.multiple, 100);
  t.ok(Math.abs(tail.bound - H100) < 1e-9, 'against the 100× bound (with its trailing-run cost)');
  // Three are not enough (13.8 < 16.4), whatever came before.
  t.notOk(errorTest([b(50, 0), { attempts: 40, errors: 3, tail: 3 }], THR).crossed, 'tail 3: not yet');
  // The run goes on into the next bucket: tail 3, then 1 of 1 → 4·ln 100.
  const across = errorTest(
    [
      { attempts: 40, errors: 3, tail: 3 },
      { attempts: 1, errors: 1, tail: 1 },
    ],
    THR,
  );
  t.ok(across.crossed && Math.abs(across.statistic - 4 * LN100) < 1e-12, 'a run that spans two buckets adds up');
  // Good attempts after it weigh against it (each −0.69 under 100×): 3·ln 100 − 10·0.69 + ln 100 = 11.5.
  const broken = errorTest(
    [
      { attempts: 40, errors: 3, tail: 3 },
      { attempts: 11, errors: 1, tail: 1 },
    ],
    THR,
  );
  t.notOk(broken.crossed, `broken by 10 good attempts: ${broken.statistic.toFixed(2)}`);
  t.ok(Math.abs(broken.statistic - 3 * LN100) < 1e-12, 'the peak stays the 3 failures’ 13.8');
  // A tail is clamped to the bucket’s errors, and a negative, NaN or absent one is 0.
  t.same(errorTest([{ attempts: 40, errors: 4, tail: 40 }], THR), tail, 'tail 40 of 4 errors reads as 4');
  for (const bad of [-3, NaN, 0, undefined]) {
    t.same(errorTest([{ attempts: 40, errors: 4, tail: bad }], THR), plain, `tail ${bad}: as without`);
  }
  // The largest alternative of the set uses it: with [2, 6], 6× sees 4·ln 6 = 7.17 instead of the bucket's 6.25.
  const small = { multiples: [2, 6], bounds: [50, 50] };
  t.ok(Math.abs(errorTest([b(40, 4)], THR, small).statistic - (4 * LN6 + 36 * GOOD_M6)) < 1e-12, 'plain: 6.25');
  t.ok(Math.abs(errorTest([{ attempts: 40, errors: 4, tail: 4 }], THR, small).statistic - 4 * LN6) < 1e-12, '4·ln 6');
  // 2× alone (then the largest) too: 4·ln 2.
  const two = errorTest([{ attempts: 40, errors: 4, tail: 4 }], THR, { multiples: [2], bounds: [50] });
  t.ok(Math.abs(two.statistic - 4 * LN2) < 1e-12, `2× alone: ${two.statistic.toFixed(3)} = 4·ln 2`);
  // Bounds by hand: the largest alternative of the hand set uses tails too.
  const hand = errorTest([{ attempts: 40, errors: 4, tail: 4 }], THR, { multiples: [2, 100], bounds: [50, 18] });
  t.ok(hand.crossed, 'hand bounds: 18.42 ≥ 18');
});

t.test('the bucket being filled: its trailing run counts from currentRunMinimum failures', async (t) => {
  const p = THR * HEALTHY_FRACTION;
  const share = (CURRENT_RUN_SHARE * FALSE_DRAIN_BUDGET) / 3;
  // The defining inequality, at the rates of a 1-host walk, the e2e test's, a fleet's and a busy site's.
  for (const rate of [1, 20, 63, 100, 150, 1000, 10_000]) {
    const n = rate * DEFAULT_START_POINTS;
    const r = currentRunMinimum(THR, n);
    t.ok(
      n * p ** r <= share && (r === 1 || n * p ** (r - 1) > share),
      `${rate} canary attempts/s over the default walk: runs of ${r} (N·p^r = ${(n * p ** r).toExponential(2)} ≤ ${share.toExponential(2)})`,
    );
  }
  t.equal(currentRunMinimum(THR, 20 * DEFAULT_START_POINTS), 4, '20/s: 4, what 100× needs anyway');
  t.equal(currentRunMinimum(THR, 1000 * DEFAULT_START_POINTS), 5, '1,000/s: 5');
  // Monotone in N; unknown or no traffic, or an edge threshold: 1 (every run counts).
  let last = 0;
  for (let n = 1; n < 1e12; n *= 7) {
    const r = currentRunMinimum(THR, n);
    t.ok(r >= last, `N = ${n}: ${r} ≥ ${last}`);
    last = r;
  }
  for (const n of [0, -5, NaN, Infinity]) t.equal(currentRunMinimum(THR, n), 1, `N = ${n}: 1`);
  for (const thr of [0, 1, NaN]) t.equal(currentRunMinimum(thr, 1e6), 1, `threshold ${thr}: 1`);

  // errorTest: 4 failures ending the bucket being filled cross at 20/s; at 1,000/s the run must be 5.
  const busy = 1000 * DEFAULT_START_POINTS;
  const four = { attempts: 40, errors: 4, tail: 4 };
  t.ok(errorTest([four], THR, { walkAttempts: 20 * DEFAULT_START_POINTS }).crossed, '20/s: the 4th crosses');
  t.notOk(errorTest([four], THR, { walkAttempts: busy }).crossed, '1,000/s: 4 in a row are not yet enough');
  t.ok(
    errorTest([{ attempts: 41, errors: 5, tail: 5 }], THR, { walkAttempts: busy }).crossed,
    '1,000/s: the 5th crosses',
  );
  // Once the bucket is complete (a newer one follows) its last run is its only one: it counts as any tail.
  t.ok(errorTest([four, b(0, 0)], THR, { walkAttempts: busy }).crossed, 'a complete bucket’s run of 4 counts');
  t.ok(errorTest([four, b(3, 0)], THR, { walkAttempts: busy }).statistic > 3 * Math.log(100), 'and carries on');
});
