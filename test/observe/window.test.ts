import t from 'tap';
import {
  BUCKETS_PER_WINDOW,
  MIN_BUCKET_MS,
  ServerWindow,
  bucketWidthMs,
  observeWindows,
} from '../../src/observe/window.js';

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
    t.equal(w.add(T0 + i * 100, i % 50 === 0, c, T0 + 100_000), true);
  }
  w.add(T0 + 5, true, null, T0 + 100_000);
  const obs = w.observe(T0, T0 + 100_000);
  t.equal(obs.requests, 1001);
  t.equal(obs.errors, 21);
  const exact = exactP95(connects);
  t.ok(Math.abs((obs.connectP95Ms as number) - exact) <= exact * 0.01, `p95 ${obs.connectP95Ms} ≈ ${exact}`);
});

t.test('no connect samples → connect p95 null; an empty window is all zero', async (t) => {
  const w = new ServerWindow(60_000);
  t.same(w.observe(T0 - 60_000, T0), { requests: 0, errors: 0, connectP95Ms: null });
  w.add(T0, true, null, T0);
  t.same(w.observe(T0 - 60_000, T0), { requests: 1, errors: 1, connectP95Ms: null });
  t.equal(w.sketchCount, 0, 'no sketch allocated without a sample');
});

t.test('attempts older than the window or beyond one bucket in the future are dropped and counted', async (t) => {
  const w = new ServerWindow(60_000); // width 1000 ms
  const now = T0;
  t.equal(w.add(now - 60_000, false, 1, now), true, 'exactly window-old is kept');
  t.equal(w.add(now - 60_001, false, 1, now), false);
  t.equal(w.add(now + 999, false, 1, now), true, 'less than one bucket ahead is kept');
  t.equal(w.add(now + 1000, false, 1, now), false);
  t.same(w.dropped, { old: 1, future: 1 });
});

t.test('an attempt for a slot already reused by a newer bucket is dropped as old (wall clock went back)', async (t) => {
  const w = new ServerWindow(1000); // width 100, 12 buckets
  const late = T0 + 12 * 100;
  t.equal(w.add(late, false, 1, late), true);
  // The clock jumped back: T0 is inside the (new) window but its slot holds the later bucket.
  t.equal(w.add(T0, false, 1, T0), false);
  t.same(w.dropped, { old: 1, future: 0 });
  t.equal(w.observe(late - 1000, late).requests, 1);
});

t.test('a query merges exactly the buckets overlapping [from, now]', async (t) => {
  const w = new ServerWindow(60_000); // width 1000 ms
  const base = Math.floor(T0 / 1000) * 1000;
  for (let s = 0; s < 10; s++) w.add(base + s * 1000 + 500, false, s + 1, base + 10_000);
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
    w.add(at, i % 100 === 0, 1 + (i % 40), at);
    if (at >= end - 10_000) inLastWindow++;
  }
  t.equal(w.bucketCount, before);
  t.ok(w.sketchCount <= before, `${w.sketchCount} sketches ≤ ${before} buckets`);
  t.same(w.dropped, { old: 0, future: 0 });
  const obs = w.observe(end - 10_000, end);
  // The first bucket may start up to one width before `from`: at most width extra attempts (1 per ms).
  t.ok(obs.requests >= inLastWindow && obs.requests <= inLastWindow + w.widthMs, `${obs.requests} ≈ ${inLastWindow}`);
});

t.test('several servers merge into one pool observation', async (t) => {
  const a = new ServerWindow(60_000);
  const b = new ServerWindow(60_000);
  const all: number[] = [];
  for (let i = 0; i < 200; i++) {
    a.add(T0 + i, false, 5, T0 + 1000);
    all.push(5);
  }
  for (let i = 0; i < 20; i++) {
    b.add(T0 + i, true, 300, T0 + 1000);
    all.push(300);
  }
  const pool = observeWindows([a, b], T0 - 1000, T0 + 1000);
  t.equal(pool.requests, 220);
  t.equal(pool.errors, 20);
  const exact = exactP95(all);
  t.equal(exact, 300);
  t.ok(Math.abs((pool.connectP95Ms as number) - exact) <= exact * 0.01, `p95 ${pool.connectP95Ms}`);
  t.equal(a.observe(T0 - 1000, T0 + 1000).connectP95Ms !== null, true);
  t.same(observeWindows([], 0, 1), { requests: 0, errors: 0, connectP95Ms: null });
});

t.test('absorb re-buckets another window length and drops what no longer fits', async (t) => {
  const old = new ServerWindow(60_000); // width 1000
  const now = T0 + 60_000;
  for (let s = 0; s <= 60; s++) old.add(T0 + s * 1000, s % 2 === 0, s % 3 === 0 ? null : 10, now);
  const wider = new ServerWindow(120_000); // width 2000
  wider.absorb(old);
  const before = old.observe(now - 60_000, now);
  const after = wider.observe(now - 60_000, now);
  t.equal(after.requests, before.requests, 'all 61 attempts carried over');
  t.equal(after.errors, before.errors);
  t.equal(after.connectP95Ms, before.connectP95Ms);

  const narrow = new ServerWindow(10_000); // width 167, 62 buckets span ~10 s
  narrow.absorb(old);
  const kept = narrow.observe(now - 60_000, now).requests;
  t.ok(kept >= 10 && kept <= 11, `only the newest ~10 s fit (${kept} of ${before.requests})`);
  t.equal(narrow.observe(now - 9_000, now).requests, old.observe(now - 9_000, now).requests, 'the last 9 s are intact');
  const empty = new ServerWindow(10_000);
  empty.absorb(new ServerWindow(60_000));
  t.equal(empty.observe(0, now).requests, 0, 'absorbing an empty window adds nothing');
  const busy = new ServerWindow(60_000);
  busy.add(now + 60_000, false, 1, now + 60_000);
  busy.absorb(old);
  // 62 slots of 1 s: the bucket at +120 s shares its slot with old second 58 (120 - 58 = 62), which is left out.
  t.equal(busy.observe(0, now + 60_000).requests, 1 + 60, 'a slot holding newer data keeps it; the rest is absorbed');
});
