// The pure helpers of bench/soak.ts: the least-squares slope with its autocorrelation-widened error
// (checked against sums worked out by hand and against properties every OLS fit has), the t table,
// quantiles and the sum of nginx_canary_log_lines_total the lines-lost figure reads.
import fc from 'fast-check';
import t from 'tap';
import { linearFit, linesCounted, median, quantile, t975, table } from '../../bench/soak.js';

t.test('linearFit: an exact line has its slope and intercept and no error', (t) => {
  const xs = [0, 1, 2, 3, 4];
  const f = linearFit(
    xs,
    xs.map((x) => 3 - 0.5 * x),
  );
  t.equal(f.slope, -0.5);
  t.equal(f.intercept, 3);
  t.equal(f.se, 0);
  t.equal(f.r1, 0, 'no residuals: no autocorrelation');
  t.equal(f.nEff, 5);
  t.end();
});

t.test('linearFit: slope and standard error of a small case worked out by hand', (t) => {
  // x = 1..4, y = 1, 3, 2, 5: x̄ = 2.5, ȳ = 2.75, Sxx = 5, Sxy = 5.5 → slope 1.1, intercept 0;
  // residuals -0.1, 0.8, -1.3, 0.6: SS = 2.7, se = sqrt(2.7 / 2 / 5) = sqrt(0.27);
  // lag-1 sum = -0.08 - 1.04 - 0.78 = -1.9 → r1 = -1.9 / 2.7 < 0, so nEff = n and seAdj = se.
  const f = linearFit([1, 2, 3, 4], [1, 3, 2, 5]);
  t.ok(Math.abs(f.slope - 1.1) < 1e-12, `slope ${f.slope}`);
  t.ok(Math.abs(f.intercept) < 1e-12, `intercept ${f.intercept}`);
  t.ok(Math.abs(f.se - Math.sqrt(0.27)) < 1e-12, `se ${f.se}`);
  t.ok(Math.abs(f.r1 - -1.9 / 2.7) < 1e-12, `r1 ${f.r1}`);
  t.equal(f.nEff, 4);
  t.equal(f.seAdj, f.se);
  t.ok(Math.abs(f.ci95 - 4.303 * f.se) < 1e-12, 't(0.975, 2) = 4.303');
  t.end();
});

t.test('linearFit: positively correlated residuals (a sawtooth) widen the error', (t) => {
  // A flat series with a slow sawtooth, as GC makes RSS: neighbours share their residual's sign.
  const xs = Array.from({ length: 60 }, (_, i) => i);
  const ys = xs.map((x) => 100 + (x % 20) / 4);
  const f = linearFit(xs, ys);
  t.ok(f.r1 > 0.5, `r1 ${f.r1}`);
  t.ok(f.nEff < f.n / 2, `nEff ${f.nEff}`);
  t.ok(f.seAdj > 1.5 * f.se, `seAdj ${f.seAdj} vs se ${f.se}`);
  t.end();
});

t.test('linearFit: refuses what it cannot fit', (t) => {
  t.throws(() => linearFit([1, 2], [1, 2]), /at least 3 points/);
  t.throws(() => linearFit([1, 2, 3], [1, 2]), /3 x values but 2 y values/);
  t.throws(() => linearFit([2, 2, 2], [1, 2, 3]), /every x is the same/);
  t.end();
});

t.test('linearFit: adding a line to y adds its slope; shifting y leaves the slope', (t) => {
  const point = fc.record({
    x: fc.integer({ min: -1000, max: 1000 }),
    y: fc.double({ min: -1e3, max: 1e3, noNaN: true }),
  });
  fc.assert(
    fc.property(
      fc.array(point, { minLength: 3, maxLength: 40 }),
      fc.double({ min: -100, max: 100, noNaN: true }),
      fc.double({ min: -1e3, max: 1e3, noNaN: true }),
      (pts, k, c) => {
        const xs = pts.map((p) => p.x);
        fc.pre(new Set(xs).size > 1);
        const ys = pts.map((p) => p.y);
        const base = linearFit(xs, ys);
        const tilted = linearFit(
          xs,
          ys.map((y, i) => y + k * (xs[i] ?? 0)),
        );
        const shifted = linearFit(
          xs,
          ys.map((y) => y + c),
        );
        const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-6 * (1 + Math.abs(a) + Math.abs(b));
        return close(tilted.slope, base.slope + k) && close(shifted.slope, base.slope) && close(shifted.se, base.se);
      },
    ),
  );
  t.pass('properties held');
  t.end();
});

t.test('t975: the table, the normal beyond 30, nothing below 1', (t) => {
  t.equal(t975(1), 12.706);
  t.equal(t975(10), 2.228);
  t.equal(t975(10.9), 2.228, 'a fractional df rounds down (a wider interval)');
  t.equal(t975(30), 2.042);
  t.equal(t975(31), 1.96);
  t.equal(t975(0.5), Number.POSITIVE_INFINITY);
  t.equal(t975(Number.NaN), Number.POSITIVE_INFINITY);
  t.end();
});

t.test('median and quantile', (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.ok(Number.isNaN(median([])));
  t.equal(quantile([5, 1, 4, 2, 3], 0.9), 5);
  t.equal(quantile([5, 1, 4, 2, 3], 0.5), 3);
  t.equal(quantile([5, 1, 4, 2, 3], 0), 1);
  t.ok(Number.isNaN(quantile([], 0.5)));
  t.end();
});

t.test('linesCounted: the sum over every result label, NaN without the metric', (t) => {
  const text = [
    '# HELP nginx_canary_log_lines_total Access-log lines read, by result (parsed, invalid, unattributed).',
    '# TYPE nginx_canary_log_lines_total counter',
    'nginx_canary_log_lines_total{result="parsed"} 1200',
    'nginx_canary_log_lines_total{result="invalid"} 3',
    'nginx_canary_log_lines_total{result="unattributed"} 7',
    'nginx_canary_log_lines_totalx{result="parsed"} 99',
    'nginx_canary_reloads_total{result="ok"} 11',
  ].join('\n');
  t.equal(linesCounted(text), 1210);
  t.ok(Number.isNaN(linesCounted('nginx_canary_reloads_total{result="ok"} 11\n')));
  t.end();
});

t.test('table: columns padded to the widest cell, header underlined', (t) => {
  t.equal(
    table([
      ['a', 'bb'],
      ['ccc', 'd'],
    ]),
    'a    bb\n---  --\nccc  d',
  );
  t.end();
});
