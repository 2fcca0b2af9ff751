import t from 'tap';
import {
  DEFAULT_ERROR_TEST_OPTIONS,
  ERROR_TEST_ALPHA,
  ERROR_TEST_MULTIPLES,
  alternativeRatio,
  bernoulliLlr,
  errorTest,
  errorTestBound,
} from '../../src/rollout/sequential.js';
import type { CountBucket } from '../../src/rollout/types.js';

const THR = 0.005;
const b = (attempts: number, errors: number): CountBucket => ({ attempts, errors });
// Hand values (natural logs, computed independently to 16 digits).
const LN2 = 0.6931471805599453;
const LN6 = 1.791759469228055;
const LN10 = 2.302585092994046;
const GOOD_M2 = -0.005037794029957181; // ln(0.99 / 0.995)
const GOOD_M6 = -0.025446665661164262; // ln(0.97 / 0.995)
const GOOD_M10 = -0.04628075256400634; // ln(0.95 / 0.995)
const BOUND = 7.600902459542082; // ln(2 / 0.001)

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
  // Our bound is Wald's upper boundary at β → 0 (Bonferroni over K alternatives).
  t.equal(errorTestBound(alpha, 1), Math.log(1 / alpha), 'K = 1: ln(1/alpha)');
  t.ok(errorTestBound(alpha, 1) > upper, 'β → 0 only raises the boundary');
  t.ok(Math.abs(errorTestBound(ERROR_TEST_ALPHA, ERROR_TEST_MULTIPLES.length) - BOUND) < 1e-12, 'default ln(2000)');
});

t.test('defaults', async (t) => {
  t.equal(ERROR_TEST_ALPHA, 0.001);
  t.same(ERROR_TEST_MULTIPLES, [2, 6]);
  t.same(DEFAULT_ERROR_TEST_OPTIONS, { alpha: 0.001, multiples: [2, 6] });
  t.ok(Object.isFrozen(DEFAULT_ERROR_TEST_OPTIONS));
});

t.test('errorTest on small hand series (threshold 0.5 %, defaults)', async (t) => {
  const empty = errorTest([], THR);
  t.same(empty, { attempts: 0, errors: 0, ratio: null, statistic: 0, bound: empty.bound, multiple: 2, crossed: false });
  t.ok(Math.abs(empty.bound - BOUND) < 1e-12);
  t.equal(errorTest([b(0, 0), b(0, 0)], THR).statistic, 0, 'empty buckets: 0');
  t.equal(errorTest([b(100, 0)], THR).statistic, 0, 'good traffic floors at 0');

  // 5 errors in 10: m = 6 gives 5 ln 6 + 5 ln(0.97/0.995) = 8.83 ≥ 7.60.
  const burst = errorTest([b(10, 5)], THR);
  t.ok(Math.abs(burst.statistic - (5 * LN6 + 5 * GOOD_M6)) < 1e-12, `statistic ${burst.statistic}`);
  t.equal(burst.multiple, 6);
  t.equal(burst.crossed, true);
  t.equal(burst.ratio, 0.5);

  // CUSUM: good traffic between two bursts restarts the run. 2 errors, 200
  // good, 4 errors: the best run is the last bucket alone (4 ln 6 = 7.17 < 7.60),
  // not the SPRT from the start (2 ln 6 − 200·0.0254 + 4 ln 6 = 5.66).
  const gap = errorTest([b(2, 2), b(200, 0), b(4, 4)], THR);
  t.ok(Math.abs(gap.statistic - 4 * LN6) < 1e-12, `statistic ${gap.statistic}`);
  t.equal(gap.crossed, false);
  t.equal(gap.attempts, 206);
  t.equal(gap.errors, 6);

  // A run that crossed earlier in the span still counts (sup over time, Ville).
  const earlier = errorTest([b(5, 5), b(400, 0)], THR);
  t.ok(Math.abs(earlier.statistic - 5 * LN6) < 1e-12);
  t.equal(earlier.crossed, true);

  // A sustained 10× in one 15 s bucket (300 attempts, 15 errors) crosses at once;
  // 1 error in 300 (0.33 %) does not.
  const tenX = errorTest([b(300, 0), b(300, 15)], THR);
  t.ok(Math.abs(tenX.statistic - (15 * LN6 + 285 * GOOD_M6)) < 1e-9, `statistic ${tenX.statistic}`);
  t.equal(tenX.crossed, true);
  t.equal(errorTest([b(300, 1), b(300, 1)], THR).crossed, false);

  // 2× sustained (4 errors per 400): only the m = 2 alternative rises, by
  // 4 ln 2 + 396 ln(0.99/0.995) = 0.78 per bucket (m = 6: −2.91); 10 buckets cross.
  const twoX = (n: number): CountBucket[] => Array.from({ length: n }, () => b(400, 4));
  t.equal(errorTest(twoX(10), THR).multiple, 2, 'the small multiple is the one closest to crossing');
  t.ok(Math.abs(errorTest(twoX(10), THR).statistic - 10 * (4 * LN2 + 396 * GOOD_M2)) < 1e-9);
  t.equal(errorTest(twoX(10), THR).crossed, true);
  t.equal(errorTest(twoX(9), THR).crossed, false);
});

t.test('errorTest options: a single alternative, and invalid values fall back to the defaults', async (t) => {
  const one = errorTest([b(10, 5)], THR, { multiples: [10], alpha: 0.05 });
  t.equal(one.bound, Math.log(1 / 0.05));
  t.equal(one.multiple, 10);
  t.ok(Math.abs(one.statistic - (5 * LN10 + 5 * GOOD_M10)) < 1e-12);
  const defaults = errorTest([b(10, 5)], THR);
  for (const opts of [
    { alpha: 0 },
    { alpha: 1 },
    { alpha: NaN },
    { multiples: [] },
    { multiples: [1] },
    { multiples: [2, Infinity] },
  ]) {
    t.same(errorTest([b(10, 5)], THR, opts), defaults, JSON.stringify(opts));
  }
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
  // Large thresholds: p1 capped half way to 1, so every multiple here sits at 0.8.
  t.equal(alternativeRatio(0.6, 2), 0.8);
  t.equal(alternativeRatio(0.6, 6), 0.8);
  t.equal(alternativeRatio(THR, 6), 6 * THR);
  const high = errorTest([b(30, 30)], 0.6);
  t.ok(Math.abs(high.multiple - 0.8 / 0.6) < 1e-12, `multiple ${high.multiple}`);
  t.ok(Math.abs(high.statistic - 30 * Math.log(0.8 / 0.6)) < 1e-9);
  t.equal(high.crossed, true);
  t.equal(errorTest([b(20, 12)], 0.6).crossed, false, '60 % errors at a 60 % threshold');
  // Malformed counts are clamped: errors within [0, attempts], negatives, NaN and Infinity as 0.
  t.same(errorTest([b(10, 50)], THR), errorTest([b(10, 10)], THR));
  t.same(errorTest([b(-5, -1), b(NaN, NaN), b(Infinity, 3)], THR), errorTest([], THR));
  t.equal(errorTest([b(10, -3)], THR).errors, 0);
});
