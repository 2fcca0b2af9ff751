import t from 'tap';
import {
  BUCKETS_PER_WINDOW,
  MIN_BUCKET_MS,
  ServerWindow,
  bucketWidthMs,
  collectWindows,
  countSeries,
  newAccumulator,
  observeWindows,
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

t.test('bucket width is max(100 ms, window / 60)', async (t) => {
  t.equal(bucketWidthMs(MIN15), 15_000);
  t.equal(bucketWidthMs(1000), MIN_BUCKET_MS);
  t.equal(bucketWidthMs(6001), 101, 'rounded up to a whole ms');
  const w = new ServerWindow(MIN15);
  t.equal(w.widthMs, 15_000);
  t.equal(w.bucketCount, BUCKETS_PER_WINDOW + 2, 'the window, the bucket being filled, one bucket of future skew');
  t.equal(new ServerWindow(1000).bucketCount, 12);
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
  t.equal(empty.series.length, 61, 'every bucket of the span is there: 60 s of 1 s buckets, both ends included');
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

t.test('memory is bounded: 1e6 attempts over 100 windows leave the bucket count fixed', async (t) => {
  const w = new ServerWindow(10_000); // width 167 ms, 62 buckets
  const before = w.bucketCount;
  const span = 100 * 10_000;
  const n = 1_000_000;
  const step = span / n; // 1 ms apart
  let inLastWindow = 0;
  const end = T0 + span;
  for (let i = 0; i < n; i++) {
    const at = T0 + i * step;
    w.add(at, i % 100 === 0, 1 + (i % 40), 5 + (i % 40), at);
    if (at >= end - 10_000) inLastWindow++;
  }
  t.equal(w.bucketCount, before);
  t.ok(w.sketchCount <= before, `${w.sketchCount} sketches ≤ ${before} buckets`);
  t.ok(w.responseSketchCount <= before, `${w.responseSketchCount} response sketches ≤ ${before} buckets`);
  t.same(w.dropped, { old: 0, future: 0 });
  const obs = w.observe(end - 10_000, end);
  // The first bucket may start up to one width before `from`: at most width extra attempts (1 per ms).
  t.ok(obs.requests >= inLastWindow && obs.requests <= inLastWindow + w.widthMs, `${obs.requests} ≈ ${inLastWindow}`);
  t.ok(obs.series.length <= before, `series of ${obs.series.length} ≤ ${before} buckets`);
  t.equal(
    obs.series.reduce((n, b) => n + b.attempts, 0),
    obs.requests,
    'the series holds every attempt of the span',
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

  const narrow = new ServerWindow(10_000); // width 167, 62 buckets span ~10 s
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
  const w = new ServerWindow(60_000); // width 1000 ms, 62 buckets
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
  t.equal(far.length, w.bucketCount, 'a span longer than the ring is cut to its newest bucketCount buckets');
  t.same(pairs(far.slice(-10)), pairs(obs.series), 'the newest buckets are kept');
});

t.test('series: buckets recycled as time passes read as zeros, never as old data', async (t) => {
  const w = new ServerWindow(1000); // width 100 ms, 12 buckets
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
  // Slot of bucket 20 was the slot of bucket 8 (20 mod 12): the old bucket's attempt must not show up anywhere.
  t.equal(
    s.reduce((n, b) => n + b.attempts, 0),
    2,
    'nothing of the first second leaks into the second one',
  );
  t.same(
    pairs(w.observe(base + 700, base + 999).series),
    [
      [1, 1],
      [0, 0],
      [1, 1],
    ],
    'looking back past the window: slot 8 now holds bucket 20, so bucket 8 reads as zeros (7 and 9 are still held)',
  );
});

t.test('series of a pool: several servers summed bucket by bucket', async (t) => {
  const a = new ServerWindow(60_000);
  const b = new ServerWindow(60_000);
  const c = new ServerWindow(60_000);
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
    'windows of different widths cannot be summed bucket by bucket',
  );
  t.throws(() => observeWindows([a, new ServerWindow(120_000)], base, now), RangeError);

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
});

t.test('series after absorb: re-bucketed to the new width', async (t) => {
  const old = new ServerWindow(60_000); // width 1000
  const base = Math.floor(T0 / 2000) * 2000;
  const now = base + 5_999;
  for (let s = 0; s < 6; s++) old.add(base + s * 1000, s === 3, 1, 1, now);
  const wider = new ServerWindow(120_000); // width 2000
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
