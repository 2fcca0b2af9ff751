import t from 'tap';
import {
  BUCKETS_PER_WINDOW,
  MIN_BUCKET_MS,
  SERIES_BUCKETS_PER_WINDOW,
  ServerWindow,
  bucketWidthMs,
  collectWindows,
  countSeries,
  newAccumulator,
  observeWindows,
  seriesWidthMs,
  toObservation,
} from '../../src/observe/window.js';
import type { CountBucket } from '../../src/rollout/types.js';

const T0 = 1_763_744_700_000;
const MIN15 = 15 * 60_000;

/** Exact nearest-rank p95 of a list, the reference the sketch must match within 1 %. */
function exactP95(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.ceil(0.95 * s.length) - 1] as number;
}

t.test('bucket width is max(100 ms, window / 60), rounded up to a multiple of the series width', async (t) => {
  t.equal(bucketWidthMs(MIN15), 15_000);
  t.equal(bucketWidthMs(1000), MIN_BUCKET_MS);
  t.equal(bucketWidthMs(6001), 200, '101 ms rounded up to a multiple of the 100 ms series width');
  t.equal(bucketWidthMs(10_000), 200, '167 ms rounded up likewise');
  t.equal(bucketWidthMs(5 * 60_000), 5010, '5000 ms, a multiple of the 334 ms series width');
  const w = new ServerWindow(MIN15);
  t.equal(w.widthMs, 15_000);
  t.equal(w.bucketCount, BUCKETS_PER_WINDOW + 2, 'the window, the bucket being filled, one bucket of future skew');
  t.equal(new ServerWindow(1000).bucketCount, 12);
});

t.test('series width is max(100 ms, window / 900), never wider than the sketch buckets', async (t) => {
  t.equal(SERIES_BUCKETS_PER_WINDOW, 900);
  t.equal(seriesWidthMs(MIN15), 1000, '1 s for the default 15 min window');
  t.equal(seriesWidthMs(60_000), MIN_BUCKET_MS, '100 ms for a 60 s window');
  t.equal(seriesWidthMs(90_000), MIN_BUCKET_MS, '100 ms up to 90 s');
  t.equal(seriesWidthMs(90_001), 101, 'rounded up to a whole ms');
  t.equal(seriesWidthMs(1000), MIN_BUCKET_MS);
  for (const windowMs of [
    1,
    999,
    1000,
    6000,
    6001,
    10_000,
    45_000,
    90_001,
    120_000,
    300_000,
    MIN15,
    3_600_000,
    86_400_000,
  ])
    t.ok(seriesWidthMs(windowMs) <= bucketWidthMs(windowMs), `${windowMs} ms: series ≤ sketch width`);
  const w = new ServerWindow(MIN15);
  t.equal(w.seriesWidthMs, 1000);
  t.equal(w.widthMs, 15_000, 'the sketch buckets are unchanged');
  // The window (900), one sketch width of tolerated future skew (15), the bucket being filled and one more.
  t.equal(w.seriesBucketCount, 900 + 15 + 2);
  const short = new ServerWindow(60_000);
  t.same([short.widthMs, short.seriesWidthMs, short.seriesBucketCount], [1000, 100, 600 + 10 + 2]);
  t.equal(new ServerWindow(1000).seriesBucketCount, 10 + 1 + 2, 'sketch and series widths both 100 ms');
});

t.test('a window length that is not positive and finite is refused', async (t) => {
  for (const bad of [0, -5, Number.NaN, Number.POSITIVE_INFINITY])
    t.throws(() => new ServerWindow(bad), RangeError, String(bad));
});

t.test('counts attempts and errors; connect p95 within 1 % of the exact value', async (t) => {
  const w = new ServerWindow(MIN15);
  const connects: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const c = i % 10 === 0 ? 150 + i / 10 : 2 + (i % 7);
    connects.push(c);
    t.equal(w.add(T0 + i * 100, i % 50 === 0, c, null, T0 + 100_000), true);
  }
  w.add(T0 + 5, true, null, null, T0 + 100_000);
  const obs = w.observe(T0, T0 + 100_000);
  t.equal(obs.requests, 1001);
  t.equal(obs.errors, 21);
  const exact = exactP95(connects);
  t.ok(Math.abs((obs.connectP95Ms as number) - exact) <= exact * 0.01, `p95 ${obs.connectP95Ms} ≈ ${exact}`);
});

t.test('response p95 within 1 % of the exact value, independent of connect times', async (t) => {
  const w = new ServerWindow(MIN15);
  const responses: number[] = [];
  for (let i = 0; i < 2000; i++) {
    // Mostly fast, a slow tail of 6 % (so the p95 lands in the tail).
    const r = i % 50 < 3 ? 800 + i / 10 : 20 + (i % 13);
    responses.push(r);
    w.add(T0 + i * 10, false, i % 2 === 0 ? 1 : null, r, T0 + 20_000);
  }
  const obs = w.observe(T0, T0 + 20_000);
  const exact = exactP95(responses);
  t.ok(exact >= 800, `the exact p95 ${exact} is in the slow tail`);
  t.ok(Math.abs((obs.responseP95Ms as number) - exact) <= exact * 0.01, `response p95 ${obs.responseP95Ms} ≈ ${exact}`);
  t.ok(Math.abs((obs.connectP95Ms as number) - 1) <= 0.01, 'connect p95 from its own sketch');

  const connectOnly = new ServerWindow(MIN15);
  connectOnly.add(T0, false, 3, null, T0);
  const o = connectOnly.observe(T0 - 1000, T0);
  t.equal(o.responseP95Ms, null, 'no response sample → null');
  t.ok(o.connectP95Ms !== null);
  t.same([connectOnly.sketchCount, connectOnly.responseSketchCount], [1, 0], 'the response sketch is created lazily');
});

t.test('no connect samples → connect p95 null; an empty window is all zero', async (t) => {
  const w = new ServerWindow(60_000);
  const empty = w.observe(T0 - 60_000, T0);
  t.same({ ...empty, series: [] }, { requests: 0, errors: 0, connectP95Ms: null, responseP95Ms: null, series: [] });
  t.equal(empty.series.length, 601, 'every bucket of the span is there: 60 s of 100 ms buckets, both ends included');
  t.ok(
    empty.series.every((b) => b.attempts === 0 && b.errors === 0),
    'all zero',
  );
  w.add(T0, true, null, null, T0);
  const one = w.observe(T0 - 60_000, T0);
  t.same([one.requests, one.errors, one.connectP95Ms, one.responseP95Ms], [1, 1, null, null]);
  t.equal(w.sketchCount, 0, 'no sketch allocated without a sample');
  t.equal(w.responseSketchCount, 0, 'no response sketch allocated without a sample');
});

t.test('attempts older than the window or beyond one bucket in the future are dropped and counted', async (t) => {
  const w = new ServerWindow(60_000); // width 1000 ms
  const now = T0;
  t.equal(w.add(now - 60_000, false, 1, 2, now), true, 'exactly window-old is kept');
  t.equal(w.add(now - 60_001, false, 1, 2, now), false);
  t.equal(w.add(now + 999, false, 1, 2, now), true, 'less than one bucket ahead is kept');
  t.equal(w.add(now + 1000, false, 1, 2, now), false);
  t.same(w.dropped, { old: 1, future: 1 });
});

t.test(
  'a line accepted up to one sketch width ahead does not recycle a series bucket still in the window',
  async (t) => {
    for (const windowMs of [1000, 10_000, 60_000, 300_000, MIN15]) {
      const w = new ServerWindow(windowMs);
      const s = w.seriesWidthMs;
      const now = T0 + 37; // not on any grid
      const from = now - windowMs;
      // One attempt in every series bucket overlapping [now - window, now] (at its start, or at `from` for the first).
      const first = Math.floor(from / s);
      const last = Math.floor(now / s);
      for (let k = first; k <= last; k++) w.add(Math.max(from, k * s), k % 2 === 0, 1, 1, now);
      const ones = countSeries([w], from, now);
      t.equal(ones.length, last - first + 1, `${windowMs} ms: every series bucket of the span`);
      t.ok(
        ones.every((b) => b.attempts === 1),
        `${windowMs} ms: one attempt in each`,
      );
      // The latest line `add` takes at this now: just under one sketch width ahead.
      t.equal(w.add(now + w.widthMs - 1, true, 1, 1, now), true, `${windowMs} ms: accepted`);
      t.same(countSeries([w], from, now), ones, `${windowMs} ms: the window's series is intact`);
      t.same(w.dropped, { old: 0, future: 0 });
    }
  },
);

t.test('after the wall clock went back, a slot holding a newer bucket is recycled, not a reason to drop', async (t) => {
  const w = new ServerWindow(1000); // width 100, 12 buckets
  const late = T0 + 12 * 100;
  t.equal(w.add(late, true, 1, 2, late), true);
  // The clock jumped back: T0 is inside the (new) window but its slot holds the later bucket (data from
  // before the jump). New lines must keep counting, or the walk would see no data until the clock caught up.
  t.equal(w.add(T0, false, 1, 2, T0), true, 'the new line is kept');
  t.equal(w.add(T0 + 1, false, 1, 2, T0 + 1), true, 'and the next one in the same bucket');
  t.same(w.dropped, { old: 0, future: 0 });
  const now = w.observe(T0 - 900, T0 + 1);
  t.equal(now.requests, 2, 'only the lines after the jump');
  t.equal(now.errors, 0, 'the pre-jump error in that slot is gone');
});

t.test('a query merges exactly the buckets overlapping [from, now]', async (t) => {
  const w = new ServerWindow(60_000); // width 1000 ms
  const base = Math.floor(T0 / 1000) * 1000;
  for (let s = 0; s < 10; s++) w.add(base + s * 1000 + 500, false, s + 1, s + 2, base + 10_000);
  t.equal(w.observe(base + 3000, base + 5000).requests, 3, 'seconds 3, 4, 5');
  t.equal(w.observe(base + 3999, base + 5000).requests, 3, 'a partly overlapped first bucket is included');
  t.equal(w.observe(base + 4000, base + 5000).requests, 2, 'a bucket ending at from is not');
  t.equal(w.observe(base + 4000, base + 4999).requests, 1, 'a bucket starting after now is not');
  t.equal(w.observe(base + 20_000, base + 30_000).requests, 0);
});

t.test('memory is bounded: 1e6 attempts over 100 windows leave the bucket counts fixed', async (t) => {
  const w = new ServerWindow(10_000); // width 200 ms, 52 buckets; series width 100 ms, 104 buckets
  const before = w.bucketCount;
  const seriesBefore = w.seriesBucketCount;
  t.same([before, seriesBefore], [52, 104]);
  const span = 100 * 10_000;
  const n = 1_000_000;
  const step = span / n; // 1 ms apart
  let inLastWindow = 0;
  let inSeriesSpan = 0;
  const end = T0 + span;
  const seriesFrom = Math.floor((end - 10_000) / w.seriesWidthMs) * w.seriesWidthMs; // start of its first bucket
  for (let i = 0; i < n; i++) {
    const at = T0 + i * step;
    w.add(at, i % 100 === 0, 1 + (i % 40), 5 + (i % 40), at);
    if (at >= end - 10_000) inLastWindow++;
    if (at >= seriesFrom) inSeriesSpan++;
  }
  t.equal(w.bucketCount, before);
  t.equal(w.seriesBucketCount, seriesBefore, 'the series ring too, whatever the traffic');
  t.ok(w.sketchCount <= before, `${w.sketchCount} sketches ≤ ${before} buckets`);
  t.ok(w.responseSketchCount <= before, `${w.responseSketchCount} response sketches ≤ ${before} buckets`);
  t.same(w.dropped, { old: 0, future: 0 });
  const obs = w.observe(end - 10_000, end);
  // The first bucket may start up to one width before `from`: at most width extra attempts (1 per ms).
  t.ok(obs.requests >= inLastWindow && obs.requests <= inLastWindow + w.widthMs, `${obs.requests} ≈ ${inLastWindow}`);
  t.equal(obs.series.length, 101, '[end - 10 s, end] overlaps 101 series buckets of 100 ms');
  t.ok(obs.series.length <= seriesBefore, `series of ${obs.series.length} ≤ ${seriesBefore} buckets`);
  t.equal(
    obs.series.reduce((n, b) => n + b.attempts, 0),
    inSeriesSpan,
    'the series holds every attempt of its buckets',
  );
});

t.test('several servers merge into one pool observation', async (t) => {
  const a = new ServerWindow(60_000);
  const b = new ServerWindow(60_000);
  const all: number[] = [];
  for (let i = 0; i < 200; i++) {
    a.add(T0 + i, false, 5, 10, T0 + 1000);
    all.push(5);
  }
  for (let i = 0; i < 20; i++) {
    b.add(T0 + i, true, 300, 600, T0 + 1000);
    all.push(300);
  }
  const pool = observeWindows([a, b], T0 - 1000, T0 + 1000);
  t.equal(pool.requests, 220);
  t.equal(pool.errors, 20);
  const exact = exactP95(all);
  t.equal(exact, 300);
  t.ok(Math.abs((pool.connectP95Ms as number) - exact) <= exact * 0.01, `p95 ${pool.connectP95Ms}`);
  t.ok(Math.abs((pool.responseP95Ms as number) - 600) <= 6, `response p95 ${pool.responseP95Ms}`);
  t.equal(a.observe(T0 - 1000, T0 + 1000).connectP95Ms !== null, true);
  t.same(observeWindows([], 0, 1), { requests: 0, errors: 0, connectP95Ms: null, responseP95Ms: null, series: [] });
});

t.test('absorb re-buckets another window length and drops what no longer fits', async (t) => {
  const old = new ServerWindow(60_000); // width 1000
  const now = T0 + 60_000;
  for (let s = 0; s <= 60; s++)
    old.add(T0 + s * 1000, s % 2 === 0, s % 3 === 0 ? null : 10, s % 5 === 0 ? null : s, now);
  const wider = new ServerWindow(120_000); // width 2000
  wider.absorb(old);
  const before = old.observe(now - 60_000, now);
  const after = wider.observe(now - 60_000, now);
  t.equal(after.requests, before.requests, 'all 61 attempts carried over');
  t.equal(after.errors, before.errors);
  t.equal(after.connectP95Ms, before.connectP95Ms);
  t.equal(after.responseP95Ms, before.responseP95Ms, 'the response sketch is carried too');
  t.ok(before.responseP95Ms !== null);

  const narrow = new ServerWindow(10_000); // width 200 ms, 52 buckets span ~10 s
  narrow.absorb(old);
  const kept = narrow.observe(now - 60_000, now).requests;
  t.ok(kept >= 10 && kept <= 11, `only the newest ~10 s fit (${kept} of ${before.requests})`);
  t.equal(narrow.observe(now - 9_000, now).requests, old.observe(now - 9_000, now).requests, 'the last 9 s are intact');
  const empty = new ServerWindow(10_000);
  empty.absorb(new ServerWindow(60_000));
  t.equal(empty.observe(0, now).requests, 0, 'absorbing an empty window adds nothing');
  const busy = new ServerWindow(60_000);
  busy.add(now + 60_000, false, 1, 1, now + 60_000);
  busy.absorb(old);
  // 62 slots of 1 s: the bucket at +120 s shares its slot with old second 58 (120 - 58 = 62), which is left out.
  t.equal(busy.observe(0, now + 60_000).requests, 1 + 60, 'a slot holding newer data keeps it; the rest is absorbed');
});

/** Shorthand for a series as [attempts, errors] pairs. */
function pairs(series: CountBucket[]): [number, number][] {
  return series.map((b) => [b.attempts, b.errors]);
}

t.test('series: one entry per bucket of [from, now], oldest first, empty buckets as zeros', async (t) => {
  const w = new ServerWindow(MIN15); // series width 1 s, 917 series buckets (sketch buckets 15 s)
  const base = Math.floor(T0 / 1000) * 1000;
  const now = base + 9_500;
  // Seconds 0..9: second s gets s attempts (none in second 0), the odd ones all errors; nothing in seconds 4 and 5.
  for (let s = 1; s < 10; s++) {
    if (s === 4 || s === 5) continue;
    for (let k = 0; k < s; k++) w.add(base + s * 1000 + k, s % 2 === 1, 1, 2, now);
  }
  const obs = w.observe(base, now);
  t.same(pairs(obs.series), [
    [0, 0],
    [1, 1],
    [2, 0],
    [3, 3],
    [0, 0],
    [0, 0],
    [6, 0],
    [7, 7],
    [8, 0],
    [9, 9],
  ]);
  t.equal(
    obs.series.reduce((n, b) => n + b.attempts, 0),
    obs.requests,
    'sums to the attempts',
  );
  t.equal(
    obs.series.reduce((n, b) => n + b.errors, 0),
    obs.errors,
    'sums to the errors',
  );

  t.same(
    pairs(w.observe(base + 6_000, now).series),
    [
      [6, 0],
      [7, 7],
      [8, 0],
      [9, 9],
    ],
    'cut at from',
  );
  t.same(
    pairs(w.observe(base + 6_999, now).series),
    [
      [6, 0],
      [7, 7],
      [8, 0],
      [9, 9],
    ],
    'a bucket partly overlapped by from is included (the rule of collect)',
  );
  t.same(
    pairs(w.observe(base + 7_000, base + 8_999).series),
    [
      [7, 7],
      [8, 0],
    ],
    'a bucket ending at from is not; nor one starting after now',
  );
  t.same(pairs(w.observe(base + 8_000, base + 8_000).series), [[8, 0]], 'from = now: the bucket holding it');
  t.same(w.observe(base + 9_000, base + 8_500).series, [], 'from after the bucket holding now: nothing');
  t.same(
    pairs(w.observe(base + 8_100, base + 8_500).series),
    [[8, 0]],
    'from after now but inside the same bucket: that bucket overlaps',
  );
  const far = w.observe(0, now).series;
  t.equal(
    far.length,
    w.seriesBucketCount,
    'a span longer than the ring is cut to its newest seriesBucketCount buckets',
  );
  t.equal(far.length, 917);
  t.same(pairs(far.slice(-10)), pairs(obs.series), 'the newest buckets are kept');
});

t.test('series: buckets recycled as time passes read as zeros, never as old data', async (t) => {
  const w = new ServerWindow(1000); // series width 100 ms, 13 series buckets (sketch: 100 ms, 12 buckets)
  t.same([w.seriesWidthMs, w.seriesBucketCount], [100, 13]);
  const base = Math.floor(T0 / 100) * 100;
  for (let i = 0; i < 12; i++) w.add(base + i * 100, true, null, null, base + i * 100);
  t.same(pairs(w.observe(base + 200, base + 1100).series), Array(10).fill([1, 1]));
  // 1.5 s later: traffic only in two buckets; every slot of the ring has been passed at least once.
  const later = base + 2600;
  w.add(base + 2000, false, 1, 1, later);
  w.add(base + 2500, false, 1, 1, later);
  const s = w.observe(later - 1000, later).series;
  t.equal(s.length, 11, 'buckets 16..26 overlap [later - 1 s, later]');
  t.same(pairs(s), [
    [0, 0],
    [0, 0],
    [0, 0],
    [0, 0],
    [1, 0],
    [0, 0],
    [0, 0],
    [0, 0],
    [0, 0],
    [1, 0],
    [0, 0],
  ]);
  // Slot of bucket 20 was the slot of bucket 7 (20 ≡ 7 mod 13): the old bucket's attempt must not show up anywhere.
  t.equal(
    s.reduce((n, b) => n + b.attempts, 0),
    2,
    'nothing of the first second leaks into the second one',
  );
  t.same(
    pairs(w.observe(base + 600, base + 899).series),
    [
      [1, 1],
      [0, 0],
      [1, 1],
    ],
    'looking back past the window: slot 7 now holds bucket 20, so bucket 7 reads as zeros (6 and 8 are still held)',
  );
});

t.test('series of a pool: several servers summed bucket by bucket', async (t) => {
  // 15 min windows: 1 s series buckets (15 s sketch buckets).
  const a = new ServerWindow(MIN15);
  const b = new ServerWindow(MIN15);
  const c = new ServerWindow(MIN15);
  const base = Math.floor(T0 / 1000) * 1000;
  const now = base + 3_999;
  a.add(base, false, 1, 1, now);
  a.add(base + 2_000, true, 1, 1, now);
  b.add(base + 2_500, true, null, null, now);
  b.add(base + 3_000, false, 1, 1, now);
  b.add(base + 3_100, false, 1, 1, now);
  const pool = observeWindows([a, b, c], base, now);
  t.same(pairs(pool.series), [
    [1, 0],
    [0, 0],
    [2, 2],
    [2, 0],
  ]);
  t.same(countSeries([a, b, c], base, now), pool.series, 'countSeries is the same series');
  t.same(
    pairs(countSeries(new Set([a]), base, now)),
    [
      [1, 0],
      [0, 0],
      [1, 1],
      [0, 0],
    ],
    'any iterable',
  );
  t.same(countSeries([], base, now), [], 'no server: no series');
  t.throws(
    () => countSeries([a, new ServerWindow(120_000)], base, now),
    RangeError,
    'windows of different series widths cannot be summed bucket by bucket',
  );
  t.throws(() => observeWindows([a, new ServerWindow(120_000)], base, now), RangeError);
  // The rule is on the series width: a 90 s window has 1.5 s sketch buckets but the 100 ms series buckets of a 60 s one.
  t.equal(
    countSeries([new ServerWindow(60_000), new ServerWindow(90_000)], base, now).length,
    40,
    'different sketch widths, one series width: summed (base … base + 3.999 s in 100 ms buckets)',
  );

  // collectWindows: the same buckets and series, before any quantile, with the series' first bucket.
  const span = collectWindows([a, b, c], base, now, 1000);
  t.same(span.series, pool.series, 'the series of observeWindows');
  t.equal(span.seriesStartMs, base, 'the series starts at the bucket holding from');
  t.equal(span.widthMs, 1000);
  t.same(toObservation(span.acc, span.series), pool, 'its accumulator gives the same observation');
  t.equal(collectWindows([a], base + 1_500, now, 1000).seriesStartMs, base + 1_000, 'from inside a bucket');
  t.same(collectWindows([a], now + 2_000, now, 1000).series, [], 'from after now: no bucket');
  const none = collectWindows([], base, now, 1000);
  t.same([none.acc.requests, none.series, none.widthMs, none.seriesStartMs], [0, [], 1000, base + 3_000]);
  t.throws(() => collectWindows([a, new ServerWindow(120_000)], base, now, 1000), RangeError);
  t.throws(() => collectWindows([a], base, now, 2000), RangeError, 'the given width must be the windows’ own');
  t.throws(
    () => collectWindows([a], base, now, bucketWidthMs(MIN15)),
    RangeError,
    'the sketch width (15 s) is not the series width',
  );
});

t.test('series after absorb: the series ring is re-bucketed from the old series width to the new one', async (t) => {
  const old = new ServerWindow(MIN15); // series width 1 s
  const base = Math.floor(T0 / 2000) * 2000;
  const now = base + 5_999;
  for (let s = 0; s < 6; s++) old.add(base + s * 1000, s === 3, 1, 1, now);
  const wider = new ServerWindow(2 * MIN15); // series width 2 s
  t.equal(wider.seriesWidthMs, 2000);
  wider.absorb(old);
  t.same(
    pairs(wider.observe(base, now).series),
    [
      [2, 0],
      [2, 1],
      [2, 0],
    ],
    'two old seconds per new bucket',
  );
  t.same(
    pairs(old.observe(base, now).series),
    [
      [1, 0],
      [1, 0],
      [1, 0],
      [1, 1],
      [1, 0],
      [1, 0],
    ],
    'the source is unchanged',
  );

  // Coarse to fine: each 1 s bucket lands in the 100 ms bucket holding its start.
  const short = new ServerWindow(60_000); // series width 100 ms
  short.absorb(old);
  const fine = short.observe(base, now).series;
  t.equal(fine.length, 60);
  t.same(
    pairs(fine),
    Array.from({ length: 60 }, (_, i) => (i % 10 !== 0 ? [0, 0] : i === 30 ? [1, 1] : [1, 0])),
    'one attempt at the start of each second, nothing in between',
  );

  // Widths that do not divide: 100 ms buckets into 134 ms ones (a 2 min window), each at the bucket holding its start.
  const w60 = new ServerWindow(60_000);
  const at = Math.floor(T0 / 6700) * 6700; // on both grids (6.7 s = lcm(100, 134) ms)
  for (let k = 0; k < 10; k++) w60.add(at + k * 100, k === 4, null, null, at + 999);
  const w120 = new ServerWindow(120_000);
  t.equal(w120.seriesWidthMs, 134);
  w120.absorb(w60);
  // Starts 0, 100, …, 900 ms fall in the 134 ms buckets 0, 0, 1, 2, 2, 3, 4, 5, 5, 6.
  t.same(pairs(countSeries([w120], at, at + 999)), [
    [2, 0],
    [1, 0],
    [2, 1],
    [1, 0],
    [1, 0],
    [2, 0],
    [1, 0],
    [0, 0],
  ]);
});

t.test(
  'absorb into the series ring: what no longer fits is left out, a slot holding newer data keeps it',
  async (t) => {
    // Fine to a shorter ring: the 60 s window's 100 ms series into a 10 s window's 104 buckets of 100 ms.
    const old = new ServerWindow(60_000);
    const now = T0 + 60_000;
    for (let s = 0; s <= 60; s++) old.add(T0 + s * 1000, false, null, null, now);
    const narrow = new ServerWindow(10_000);
    t.same([narrow.seriesWidthMs, narrow.seriesBucketCount], [100, 104]);
    narrow.absorb(old);
    t.equal(
      countSeries([narrow], now - 60_000, now).reduce((n, b) => n + b.attempts, 0),
      11,
      'the newest 104 buckets (10.4 s) hold seconds 50..60',
    );
    t.same(countSeries([narrow], now - 9_000, now), countSeries([old], now - 9_000, now), 'the last 9 s are intact');

    // A slot that already holds a newer bucket keeps it: 13 slots of 100 ms, bucket 13 shares bucket 0's slot.
    const base = Math.floor(T0 / 100) * 100;
    const busy = new ServerWindow(1000);
    busy.add(base + 1300, true, null, null, base + 1300);
    const src = new ServerWindow(1000);
    for (let k = 0; k < 10; k++) src.add(base + k * 100, false, null, null, base + 999);
    busy.absorb(src);
    t.same(
      pairs(countSeries([busy], base, base + 1399)),
      [...Array<[number, number]>(9).fill([1, 0]), [0, 0], [0, 0], [0, 0], [1, 1]],
      'bucket 13 kept; buckets 1..9 absorbed (the span is cut to the newest 13 buckets)',
    );
    t.same(
      pairs(countSeries([busy], base, base + 1299)),
      [[0, 0], ...Array<[number, number]>(9).fill([1, 0]), [0, 0], [0, 0], [0, 0]],
      'bucket 0 reads as zeros: its slot holds bucket 13',
    );
  },
);

/** A deterministic stream of pseudo-random integers in [0, n) (a 31-bit LCG; the tests need spread, not quality). */
function lcg(seed: number): (n: number) => number {
  let x = seed;
  return (n) => {
    x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
    return x % n;
  };
}

t.test('series totals equal the sketch ring’s over a span starting on a sketch-bucket boundary', async (t) => {
  for (const windowMs of [1000, 60_000, MIN15]) {
    const w = new ServerWindow(windowMs);
    const width = w.widthMs;
    t.equal(width % w.seriesWidthMs, 0, `${windowMs} ms: every sketch boundary is a series boundary`);
    const now = T0 + 12_345; // on no grid
    const rand = lcg(windowMs);
    for (let i = 0; i < 5000; i++) w.add(now - rand(windowMs + 1), rand(20) === 0, 1, 1, now);
    let checked = 0;
    for (let from = Math.ceil((now - windowMs) / width) * width; from <= now; from += width) {
      const obs = w.observe(from, now);
      const sum = obs.series.reduce(
        (acc, b) => ({ attempts: acc.attempts + b.attempts, errors: acc.errors + b.errors }),
        {
          attempts: 0,
          errors: 0,
        },
      );
      if (sum.attempts !== obs.requests || sum.errors !== obs.errors)
        t.fail(
          `${windowMs} ms from ${from - now}: series ${JSON.stringify(sum)}, sketch ${obs.requests}/${obs.errors}`,
        );
      checked++;
    }
    t.equal(checked, Math.round(windowMs / width), `${windowMs} ms: every sketch boundary of the window checked`);
    t.equal(
      w.observe(now - windowMs, now).series.reduce((n, b) => n + b.attempts, 0),
      5000,
      `${windowMs} ms: the whole window's series holds all 5000 attempts`,
    );

    // A line stamped after `now` but inside the sketch bucket holding it: a request of the span, and in the series
    // only if it falls in the series bucket holding `now` (the series ends there): so only when both are 100 ms.
    const late = (Math.floor(now / width) + 1) * width - 1;
    const from = Math.floor(now / width) * width;
    const before = w.observe(from, now);
    t.equal(w.add(late, true, 1, 1, now), true);
    const after = w.observe(from, now);
    t.equal(after.requests, before.requests + 1, `${windowMs} ms: counted in the sketch bucket holding now`);
    const sameSeriesBucket = Math.floor(late / w.seriesWidthMs) === Math.floor(now / w.seriesWidthMs);
    t.equal(
      sameSeriesBucket,
      windowMs === 1000,
      `${windowMs} ms: in the series bucket holding now: ${sameSeriesBucket}`,
    );
    const last = before.series.at(-1) as CountBucket;
    t.same(
      after.series,
      sameSeriesBucket
        ? [
            ...before.series.slice(0, -1),
            { attempts: last.attempts + 1, errors: last.errors + 1, tail: (last.tail ?? 0) + 1 },
          ]
        : before.series,
      `${windowMs} ms: ${sameSeriesBucket ? 'in the last series bucket' : 'not in the series'}`,
    );
  }
});

/**
 * Regression: when the sketch width was not a multiple of the series width (gates.window 10 s: then 167 / 100 ms; 5 min:
 * 5000 / 334), the series bucket holding a sketch boundary started before it, so the series counted attempts the
 * sketch span left out and fleet/snapshot.ts refused the host's own snapshot. bucketWidthMs now rounds the sketch
 * width up to a multiple of the series width; this puts the earlier attempt in the series bucket just before `from`.
 */

t.test('series totals equal the sketch ring’s over a span starting on a sketch boundary, for any window', async (t) => {
  for (const windowMs of [10_000, 45_000, 120_000, 300_000, 600_000]) {
    const w = new ServerWindow(windowMs);
    const [width, s] = [w.widthMs, w.seriesWidthMs];
    t.equal(width % s, 0, `${windowMs} ms: the sketch width ${width} ms is a multiple of the series width ${s} ms`);
    const from = Math.ceil(T0 / width) * width;
    // An instant before the sketch span: the start of the series bucket holding `from` (from − 1 ms if that is from).
    const before = Math.min(Math.floor(from / s) * s, from - 1);
    const now = from + windowMs;
    // One attempt just before the boundary, taken while it was in the window; one inside the span.
    t.equal(w.add(before, true, 1, 1, before + 1), true);
    t.equal(w.add(now - 1, false, 1, 1, now), true);
    const obs = w.observe(from, now);
    t.same([obs.requests, obs.errors], [1, 0], `${windowMs} ms: the sketch span holds the attempt inside it`);
    const attempts = obs.series.reduce((n, b) => n + b.attempts, 0);
    const errors = obs.series.reduce((n, b) => n + b.errors, 0);
    const grids = `sketch ${width} ms, series ${s} ms, the earlier attempt ${from - before} ms before from`;
    t.same([attempts, errors], [obs.requests, obs.errors], `${windowMs} ms (${grids}): the series holds the same`);
  }
});

t.test('toObservation keeps the series it is given; an empty accumulator has null p95s', async (t) => {
  const series: CountBucket[] = [{ attempts: 0, errors: 0 }];
  const obs = toObservation(newAccumulator(), series);
  t.same(obs, {
    requests: 0,
    errors: 0,
    connectP95Ms: null,
    responseP95Ms: null,
    series: [{ attempts: 0, errors: 0 }],
  });
  t.equal(obs.series, series);
});

t.test(
  'series tail: each bucket’s trailing run of failures, in the order added; unknown once servers are summed',
  async (t) => {
    const w = new ServerWindow(MIN15);
    const base = Math.floor(T0 / 1000) * 1000;
    const now = base + 3_999;
    // Bucket 0: good, fail, fail → tail 2. Bucket 1: fail, good → none. Bucket 2: fail, fail, fail → 3 (= errors).
    // Bucket 3: fail, then a good attempt stamped earlier in the bucket but read later → none (order read, not stamped).
    for (const [dt, failed] of [
      [10, false],
      [20, true],
      [30, true],
      [1_010, true],
      [1_020, false],
      [2_010, true],
      [2_020, true],
      [2_030, true],
      [3_500, true],
      [3_100, false],
    ] as const)
      t.ok(w.add(base + dt, failed, 1, 1, now));
    const series = w.observe(base, now).series;
    t.same(series, [
      { attempts: 3, errors: 2, tail: 2 },
      { attempts: 2, errors: 1 },
      { attempts: 3, errors: 3, tail: 3 },
      { attempts: 2, errors: 1 },
    ]);
    // The tail goes on with the next failure into the same bucket, and restarts at a good one.
    w.add(base + 1_030, true, 1, 1, now);
    t.same(w.observe(base, now).series[1], { attempts: 3, errors: 2, tail: 1 });

    // Two servers in one bucket: the interleaving is lost, so no tail; a bucket only one server filled keeps its own.
    const other = new ServerWindow(MIN15);
    other.add(base + 40, false, 1, 1, now);
    other.add(base + 2_040, true, 1, 1, now);
    const pool = observeWindows([w, other], base, now).series;
    t.same(pool[0], { attempts: 4, errors: 2 }, 'bucket 0: both servers → no tail (the good attempt may be last)');
    t.same(pool[1], { attempts: 3, errors: 2, tail: 1 }, 'bucket 1: this server alone → its tail');
    t.same(
      pool[2],
      { attempts: 4, errors: 4 },
      'bucket 2: both → no tail, even all failures (its start is a boundary)',
    );
    t.same(observeWindows([other, w], base, now).series, pool, 'the same whichever server comes first');

    // A recycled bucket starts its run over; an absorbed (re-bucketed) window keeps counts but no tails.
    const r = new ServerWindow(MIN15);
    r.add(base + 10, true, 1, 1, base + 100);
    const slots = r.seriesBucketCount;
    r.add(base + 10 + slots * 1000, false, 1, 1, base + 10 + slots * 1000);
    t.same(
      r.observe(base + slots * 1000, base + slots * 1000 + 999).series,
      [{ attempts: 1, errors: 0 }],
      'the slot’s old run is gone with its bucket',
    );
    const wide = new ServerWindow(MIN15); // absorb is how a config reload carries a window over
    wide.absorb(w);
    t.same(
      pairs(wide.observe(base, now).series),
      pairs(series.map((s, i) => (i === 1 ? { attempts: 3, errors: 2 } : s))),
      'absorbed counts',
    );
    t.ok(
      wide.observe(base, now).series.every((s) => s.tail === undefined),
      'absorbed buckets carry no tail (the order is not kept)',
    );
  },
);
