import { Buffer } from 'node:buffer';
import { DDSketch } from '@datadog/sketches-js';
import fc from 'fast-check';
import t from 'tap';
import {
  MAX_SERIES_BUCKETS,
  MAX_SKETCH_CHARS,
  OUTLIER_ALPHA,
  mergeProbes,
  mergeSnapshots,
  outlierHosts,
  parseObservationSnapshot,
  snapshotOf,
  type ObservationSnapshot,
  type PoolSnapshot,
  type ServiceSnapshot,
} from '../../src/fleet/snapshot.js';
import {
  GATE_QUANTILE,
  SKETCH_RELATIVE_ACCURACY,
  ServerWindow,
  bucketWidthMs,
  collectWindows,
  observeWindows,
  seriesWidthMs,
} from '../../src/observe/window.js';
import type { CountBucket, PoolObservation, ProbeObservation } from '../../src/rollout/types.js';

const NOW = 1_763_744_700_000;
const WINDOW_MS = 60_000; // 1 s sketch buckets, 100 ms series buckets
/** A snapshot's width: the count series' (observe/window.ts seriesWidthMs), not the sketch buckets'. */
const WIDTH = seriesWidthMs(WINDOW_MS);

/** One upstream attempt as a window takes it: time (epoch ms), failed, connect and response ms or null. */
interface Line {
  at: number;
  failed: boolean;
  connectMs: number | null;
  responseMs: number | null;
}

/** A window fed `lines`, judged at `now`. */
function windowOf(lines: readonly Line[], now = NOW): ServerWindow {
  const w = new ServerWindow(WINDOW_MS);
  for (const l of lines) w.add(l.at, l.failed, l.connectMs, l.responseMs, now);
  return w;
}

/** The pool snapshot of `windows` over [from, now]. */
function snap(windows: ServerWindow[], from: number, now = NOW): PoolSnapshot {
  return snapshotOf(collectWindows(windows, from, now, WIDTH));
}

/** An empty pool snapshot on the test's grid. */
function emptyPool(): PoolSnapshot {
  return { requests: 0, errors: 0, widthMs: WIDTH, seriesStartMs: 0, series: [], connect: null, response: null };
}

/** A hand-made pool snapshot: the series from `startIndex`, counts summed from it. */
function poolFrom(startIndex: number, series: CountBucket[], widthMs = WIDTH): PoolSnapshot {
  return {
    requests: series.reduce((n, b) => n + b.attempts, 0),
    errors: series.reduce((n, b) => n + b.errors, 0),
    widthMs,
    seriesStartMs: startIndex * widthMs,
    series,
    connect: null,
    response: null,
  };
}

/** A service snapshot with the given canary and an empty primary. */
function canaryOnly(canary: PoolSnapshot): ServiceSnapshot {
  return { primary: { ...emptyPool(), widthMs: canary.widthMs }, canary };
}

/** A sketch of `values` serialized as a snapshot carries it. */
function sketchText(values: number[], relativeAccuracy = SKETCH_RELATIVE_ACCURACY): string {
  const s = new DDSketch({ relativeAccuracy });
  for (const v of values) s.accept(v);
  return Buffer.from(s.toProto()).toString('base64');
}

/** Through JSON as etcd carries it. */
function viaJson<T>(value: T): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}

const line = fc.record({
  dt: fc.integer({ min: 0, max: WINDOW_MS }),
  failed: fc.boolean(),
  // nginx logs seconds with ms resolution (0.000 included); parse.ts keeps µs of unusual forms.
  connectMs: fc.option(
    fc.integer({ min: 0, max: 3_000_000 }).map((us) => us / 1000),
    { nil: null },
  ),
  responseMs: fc.option(fc.integer({ min: 0, max: 2_000 }), { nil: null }),
});

t.test('merging K hosts’ snapshots equals observing every line in one window (property)', async (t) => {
  const pool = fc.array(fc.array(line, { maxLength: 40 }), { minLength: 0, maxLength: 2 }); // servers of a pool
  let kept = 0;
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(
        fc.array(fc.record({ primary: pool, canary: pool }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: WINDOW_MS + 5_000 }),
        (hosts, sinceAgo) => {
          const from = Math.max(NOW - WINDOW_MS, NOW - sinceAgo);
          const toLines = (ls: (typeof hosts)[number]['primary'][number]): Line[] =>
            ls.map((l) => ({ at: NOW - l.dt, failed: l.failed, connectMs: l.connectMs, responseMs: l.responseMs }));
          const snapshots: unknown[] = hosts.map((h) =>
            viaJson({
              svc: {
                primary: snap(
                  h.primary.map((ls) => windowOf(toLines(ls))),
                  from,
                ),
                canary: snap(
                  h.canary.map((ls) => windowOf(toLines(ls))),
                  from,
                ),
              },
            } satisfies ObservationSnapshot),
          );
          const parsed = snapshots.map((s) => {
            const p = parseObservationSnapshot(s);
            if (!p.ok) throw new Error(p.error);
            return p.value;
          });
          const merged = mergeSnapshots(parsed).svc;
          for (const poolName of ['primary', 'canary'] as const) {
            const all = hosts.flatMap((h) => h[poolName].flatMap(toLines));
            // One window fed every host's lines; a pool no host has servers for observes as no window at all.
            const anyServer = hosts.some((h) => h[poolName].length > 0);
            const want: PoolObservation = observeWindows(anyServer ? [windowOf(all)] : [], from, NOW);
            const got = merged?.[poolName];
            // Counts, sketches and series equal bucket for bucket; a trailing failure run (`tail`) is kept only
            // where one server of one host filled the bucket — then it is the one window's — and dropped elsewhere.
            if (JSON.stringify(withoutTails(got)) !== JSON.stringify(withoutTails(want)))
              throw new Error(`${poolName}: merged ${JSON.stringify(got)} ≠ one window ${JSON.stringify(want)}`);
            got?.series.forEach((b, i) => {
              if (b.tail === undefined) return;
              kept++;
              if (b.tail !== want.series[i]?.tail)
                throw new Error(
                  `${poolName}: series[${i}].tail ${b.tail} kept where one window has ${want.series[i]?.tail}`,
                );
            });
          }
        },
      ),
      { seed: 20_260_112, numRuns: 150 },
    ),
  );
  t.ok(kept > 0, `trailing failure runs survive the merge where one host alone filled a bucket (${kept} kept)`);
});

/** The observation with its series' `tail` fields left out. */
function withoutTails(o: PoolObservation | undefined): unknown {
  return o === undefined
    ? undefined
    : { ...o, series: o.series.map((b) => ({ attempts: b.attempts, errors: b.errors })) };
}

t.test('the fleet p95 is read after the merge, never an average of the hosts’ p95s', async (t) => {
  // Host A: 95 fast and 5 slow responses (its p95 is fast); host B: 100 slow ones.
  const a: Line[] = [];
  const b: Line[] = [];
  for (let i = 0; i < 100; i++) {
    a.push({ at: NOW - 1000 - i, failed: false, connectMs: 1, responseMs: i < 95 ? 10 : 1000 });
    b.push({ at: NOW - 1000 - i, failed: false, connectMs: 1, responseMs: 1000 });
  }
  const from = NOW - WINDOW_MS;
  const hostA = { gw: { primary: snap([windowOf(a)], from), canary: emptyPool() } };
  const hostB = { gw: { primary: snap([windowOf(b)], from), canary: emptyPool() } };
  const pA = mergeSnapshots([hostA]).gw?.primary.responseP95Ms as number;
  const pB = mergeSnapshots([hostB]).gw?.primary.responseP95Ms as number;
  const merged = mergeSnapshots([hostA, hostB]).gw?.primary.responseP95Ms as number;
  t.ok(Math.abs(pA - 10) <= 0.1, `host A p95 ≈ 10 ms: ${pA}`);
  t.ok(Math.abs(pB - 1000) <= 10, `host B p95 ≈ 1000 ms: ${pB}`);
  const mean = (pA + pB) / 2;
  t.ok(Math.abs(mean - 505) <= 6, `the mean of p95s would be ≈ 505 ms: ${mean}`);
  t.ok(Math.abs(merged - 1000) <= 10, `the merged p95 is ≈ 1000 ms (105 of 200 samples are slow): ${merged}`);
  const one = observeWindows([windowOf([...a, ...b])], from, NOW).responseP95Ms;
  t.equal(merged, one, 'exactly the p95 of one window fed both hosts’ lines');
  t.equal(GATE_QUANTILE, 0.95);
});

t.test('series are aligned by bucket start: hosts whose spans start at different buckets', async (t) => {
  const a = poolFrom(1000, [
    { attempts: 1, errors: 0 },
    { attempts: 2, errors: 1 },
    { attempts: 3, errors: 0 },
  ]);
  const b = poolFrom(1002, [
    { attempts: 10, errors: 5 },
    { attempts: 0, errors: 0 },
    { attempts: 20, errors: 2 },
  ]);
  const empty = { ...emptyPool(), seriesStartMs: 7 * WIDTH };
  const got = mergeSnapshots([{ gw: canaryOnly(a) }, { gw: canaryOnly(b) }, { gw: canaryOnly(empty) }]).gw?.canary;
  t.same(got?.series, [
    { attempts: 1, errors: 0 },
    { attempts: 2, errors: 1 },
    { attempts: 13, errors: 5 },
    { attempts: 0, errors: 0 },
    { attempts: 20, errors: 2 },
  ]);
  t.equal(got?.requests, 36);
  t.equal(got?.errors, 8);
  t.same(mergeSnapshots([{ gw: canaryOnly(b) }, { gw: canaryOnly(a) }]).gw?.canary.series, got?.series, 'any order');

  // The same through real windows: host B publishes 3 s after host A (its own now), same lines otherwise.
  const lines: Line[] = [0, 1, 2, 3].map((s) => ({
    at: NOW - s * 1000,
    failed: s === 1,
    connectMs: 1,
    responseMs: 5,
  }));
  const snapA = snap([windowOf(lines)], NOW - 10_000, NOW);
  const snapB = snap([windowOf(lines, NOW + 3000)], NOW - 7_000, NOW + 3000);
  t.same([snapA.seriesStartMs, snapB.seriesStartMs], [NOW - 10_000, NOW - 7_000], 'the spans start 3 s apart');
  const merged = mergeSnapshots([{ gw: canaryOnly(snapA) }, { gw: canaryOnly(snapB) }]).gw?.canary;
  t.equal(merged?.series.length, 131, 'the union of [now − 10 s, now] and [now − 7 s, now + 3 s] in 100 ms buckets');
  // Buckets 70, 80, 90, 100 of the union start at now − 3, 2, 1, 0 s; bucket 110 at now + 1 s.
  t.same(
    [70, 80, 90, 100, 110].map((i) => merged?.series[i]?.attempts),
    [2, 2, 2, 2, 0],
    'the shared lines counted twice, in their own buckets',
  );
  t.equal(
    merged?.series.reduce((n, b) => n + b.attempts, 0),
    8,
    'and nowhere else',
  );
  t.equal(
    merged?.series.reduce((n, b) => n + b.errors, 0),
    2,
  );
});

t.test('a bucket width mismatch throws RangeError; so does a series off its grid', async (t) => {
  const a = poolFrom(10, [{ attempts: 1, errors: 0 }]);
  const b = poolFrom(10, [{ attempts: 1, errors: 0 }], WIDTH * 2);
  t.throws(() => mergeSnapshots([{ gw: canaryOnly(a) }, { gw: canaryOnly(b) }]), RangeError);
  t.throws(
    () => mergeSnapshots([{ gw: canaryOnly(a) }, { gw: canaryOnly(b) }]),
    /service gw: .*100 ms and 200 ms/,
    'the message names the service and both widths',
  );
  t.throws(
    () => mergeSnapshots([{ gw: { primary: { ...emptyPool(), widthMs: 500 }, canary: a } }]),
    RangeError,
    'the pools of one host share the width too',
  );
  t.throws(
    () => mergeSnapshots([{ gw: canaryOnly({ ...a, seriesStartMs: a.seriesStartMs + 1 }) }]),
    /not on its 100 ms bucket grid/,
  );
  t.throws(() => mergeSnapshots([{ gw: canaryOnly({ ...a, connect: 'no!!' }) }]), /connect sketch not base64/);
  t.throws(
    () => mergeSnapshots([{ gw: canaryOnly({ ...a, response: 'A'.repeat(MAX_SKETCH_CHARS + 4) }) }]),
    /response sketch longer than 1048576 characters/,
  );
  t.doesNotThrow(
    () => mergeSnapshots([{ gw: canaryOnly(a) }, { other: canaryOnly(b) }]),
    'different services may have different widths',
  );
});

t.test('services present on only some hosts merge what exists; no hosts, no services', async (t) => {
  const a = poolFrom(5, [{ attempts: 4, errors: 1 }]);
  const merged = mergeSnapshots([{ gw: canaryOnly(a), api: canaryOnly(a) }, { gw: canaryOnly(a) }]);
  t.same(Object.keys(merged).sort(), ['api', 'gw']);
  t.equal(merged.gw?.canary.requests, 8);
  t.equal(merged.api?.canary.requests, 4);
  t.equal(merged.gw?.probes, undefined, 'no host has probes: none merged');
  t.same(mergeSnapshots([]), {});
  const none = mergeSnapshots([{ gw: canaryOnly(emptyPool()) }]).gw;
  t.same(none?.canary, { requests: 0, errors: 0, connectP95Ms: null, responseP95Ms: null, series: [] });
});

t.test('a union longer than MAX_SERIES_BUCKETS keeps its newest buckets, older counts folded in', async (t) => {
  const a = poolFrom(0, [{ attempts: 3, errors: 1 }]);
  const b = poolFrom(MAX_SERIES_BUCKETS + 10, [
    { attempts: 1, errors: 0 },
    { attempts: 2, errors: 2 },
  ]);
  const got = mergeSnapshots([{ gw: canaryOnly(a) }, { gw: canaryOnly(b) }]).gw?.canary;
  t.equal(got?.series.length, MAX_SERIES_BUCKETS);
  t.same(got?.series[0], { attempts: 3, errors: 1 }, 'the far older bucket folded into the first kept one');
  t.same(got?.series.at(-2), { attempts: 1, errors: 0 });
  t.same(got?.series.at(-1), { attempts: 2, errors: 2 });
  t.equal(
    got?.series.reduce((n, x) => n + x.attempts, 0),
    6,
    'totals kept',
  );
});

t.test(
  'a snapshot carries the count series’ width (100 ms for a 60 s window, 1 s for 15 min), not the sketches’',
  async (t) => {
    const lines: Line[] = [{ at: NOW - 250, failed: true, connectMs: 1, responseMs: 2 }];
    const s = snap([windowOf(lines)], NOW - WINDOW_MS);
    t.same([s.widthMs, bucketWidthMs(WINDOW_MS)], [100, 1000]);
    t.equal(s.series.length, 601, '[now − 60 s, now] in 100 ms buckets');
    t.same(s.series[597], { attempts: 1, errors: 1, tail: 1 }, 'the line in the bucket holding now − 250 ms');
    t.throws(
      () => collectWindows([windowOf(lines)], NOW - WINDOW_MS, NOW, bucketWidthMs(WINDOW_MS)),
      RangeError,
      'a span asked on the sketch grid is refused',
    );

    const MIN15 = 15 * 60_000;
    const w = new ServerWindow(MIN15);
    t.equal(snapshotOf(collectWindows([w], NOW - MIN15, NOW, seriesWidthMs(MIN15))).widthMs, 1000);
  },
);

t.test('MAX_SERIES_BUCKETS holds a 15 min window’s series and two hosts a whole window apart', async (t) => {
  const MIN15 = 15 * 60_000;
  const width = seriesWidthMs(MIN15);
  const full = (now: number): PoolSnapshot => {
    const w = new ServerWindow(MIN15);
    for (let at = now - MIN15; at <= now; at += 1000) w.add(at, at === now, 1, 1, now);
    return snapshotOf(collectWindows([w], now - MIN15, now, width));
  };
  t.ok(
    2 * new ServerWindow(MIN15).seriesBucketCount <= MAX_SERIES_BUCKETS,
    `two rings of ${new ServerWindow(MIN15).seriesBucketCount} ≤ ${MAX_SERIES_BUCKETS}`,
  );
  const a = full(NOW);
  t.equal(a.series.length, 901, '[now − 15 min, now] in 1 s buckets');
  const parsed = parseObservationSnapshot(viaJson({ gw: { primary: a, canary: a } }));
  t.ok(parsed.ok, parsed.ok ? 'publishable' : parsed.error);
  // Host B's clock (or its judged span) is a whole window ahead: the union is 1801 buckets, none folded.
  const b = full(NOW + MIN15);
  const merged = mergeSnapshots([{ gw: canaryOnly(a) }, { gw: canaryOnly(b) }]).gw?.canary;
  t.equal(merged?.series.length, 1801);
  t.same(merged?.series[900], { attempts: 2, errors: 1 }, 'the bucket both spans hold: now');
  t.same(merged?.series[0], { attempts: 1, errors: 0 }, 'the oldest bucket kept as is, nothing folded into it');
  t.equal(
    merged?.series.reduce((n, x) => n + x.attempts, 0),
    1802,
  );
});

/**
 * Regression (test/observe/window.test.ts): with a sketch width that was not a multiple of the series width (gates.window
 * 5 min: 5 s and 334 ms), the series counted an attempt before the span that `requests` left out, and the host's own
 * snapshot was refused. bucketWidthMs now keeps the grids nested.
 */

t.test('a host’s own snapshot parses for any gates.window (5 min: the series and sketch grids differ)', async (t) => {
  const windowMs = 5 * 60_000;
  const [width, s] = [bucketWidthMs(windowMs), seriesWidthMs(windowMs)];
  // The span starts on a sketch boundary inside a series bucket (every tick whose now − window is just past one).
  t.equal(width % s, 0, 'the grids are nested');
  const from = Math.ceil(NOW / width) * width;
  const now = from + windowMs;
  const w = new ServerWindow(windowMs);
  const before = Math.min(Math.floor(from / s) * s, from - 1);
  w.add(before, false, 1, 1, before + 1); // taken while it was inside the window
  w.add(now - 1, false, 1, 1, now);
  const pool = snapshotOf(collectWindows([w], from, now, s));
  t.equal(pool.requests, 1, 'the sketch span holds the one attempt inside it');
  const parsed = parseObservationSnapshot(viaJson({ gw: { primary: pool, canary: pool } }));
  t.ok(parsed.ok, parsed.ok ? 'publishable' : parsed.error);
});

t.test('a snapshot survives JSON.stringify/parse unchanged and merges to the same observation', async (t) => {
  const lines: Line[] = [];
  for (let i = 0; i < 500; i++)
    lines.push({
      at: NOW - ((i * 97) % WINDOW_MS),
      failed: i % 17 === 0,
      connectMs: (i % 13) / 10,
      responseMs: i % 300,
    });
  const s: ObservationSnapshot = {
    gw: {
      primary: snap([windowOf(lines.slice(0, 250))], NOW - WINDOW_MS),
      canary: snap([windowOf(lines.slice(250))], NOW - WINDOW_MS),
    },
  };
  const back = viaJson(s);
  t.same(back, s, 'JSON round trip');
  const parsed = parseObservationSnapshot(back);
  t.ok(parsed.ok, parsed.ok ? 'parses' : parsed.error);
  if (!parsed.ok) return;
  t.equal(parsed.value, back, 'the same object, validated');
  t.same(mergeSnapshots([parsed.value]), mergeSnapshots([s]));
  t.same(mergeSnapshots([s]).gw?.canary, observeWindows([windowOf(lines.slice(250))], NOW - WINDOW_MS, NOW));
  t.type(s.gw?.canary.connect, 'string');
  t.equal(snap([], NOW - WINDOW_MS).connect, null, 'an empty sketch serializes as null');
});

t.test('parse rejects malformed documents with a message naming the field', async (t) => {
  const good = (): ObservationSnapshot => ({
    gateway: {
      primary: snap([windowOf([{ at: NOW - 500, failed: false, connectMs: 1, responseMs: 20 }])], NOW - WINDOW_MS),
      canary: snap([windowOf([{ at: NOW - 500, failed: true, connectMs: 2, responseMs: 30 }])], NOW - WINDOW_MS),
      probes: { primary: probe({}), canary: probe({}) },
    },
  });
  t.ok(parseObservationSnapshot(viaJson(good())).ok, 'the well-formed document parses');
  const cases: [string, (d: Record<string, unknown> & ObservationSnapshot) => unknown, RegExp][] = [
    ['not an object', () => 'hello', /^\(the document\): /],
    ['an array', () => [], /^\(the document\): /],
    [
      'a missing field',
      (d) => {
        delete (d.gateway?.canary as Partial<PoolSnapshot>).requests;
        return d;
      },
      /^gateway\.canary\.requests: /,
    ],
    [
      'a bucket count of the wrong type',
      (d) => {
        (d.gateway!.canary.series[0] as unknown as Record<string, unknown>).errors = '1';
        return d;
      },
      /^gateway\.canary\.series\[0\]\.errors: /,
    ],
    [
      'a negative count',
      (d) => {
        d.gateway!.primary.requests = -1;
        return d;
      },
      /^gateway\.primary\.requests: /,
    ],
    [
      'a fractional count',
      (d) => {
        d.gateway!.primary.errors = 0.5;
        return d;
      },
      /^gateway\.primary\.errors: /,
    ],
    [
      'an unknown key',
      (d) => {
        (d.gateway!.canary as unknown as Record<string, unknown>).extra = 1;
        return d;
      },
      /^gateway\.canary/,
    ],
    [
      'a zero width',
      (d) => {
        d.gateway!.canary.widthMs = 0;
        return d;
      },
      /^gateway\.canary\.widthMs: /,
    ],
    [
      'a pool of another width',
      (d) => {
        d.gateway!.canary.widthMs = 2000;
        d.gateway!.canary.seriesStartMs = 0;
        return d;
      },
      /^gateway\.canary\.widthMs: 2000 ms differs from the primary's 100 ms$/,
    ],
    [
      'a series off its grid',
      (d) => {
        d.gateway!.canary.seriesStartMs += 1;
        return d;
      },
      /^gateway\.canary\.seriesStartMs: .* not a multiple of widthMs 100$/,
    ],
    [
      'errors above requests',
      (d) => {
        d.gateway!.canary.errors = 5;
        return d;
      },
      /^gateway\.canary\.errors: 5 errors exceed 1 requests$/,
    ],
    [
      "a bucket's errors above its attempts",
      (d) => {
        d.gateway!.canary.series = [{ attempts: 0, errors: 1 }];
        return d;
      },
      /^gateway\.canary\.series\[0\]\.errors: 1 errors exceed 0 attempts$/,
    ],
    [
      "a bucket's trailing failure run above its errors",
      (d) => {
        d.gateway!.canary.series = [{ attempts: 1, errors: 0, tail: 1 }];
        return d;
      },
      /^gateway\.canary\.series\[0\]\.tail: a trailing run of 1 failures exceeds the bucket's 0 errors$/,
    ],
    [
      'a negative trailing run',
      (d) => {
        d.gateway!.canary.series = [{ attempts: 1, errors: 1, tail: -1 }];
        return d;
      },
      /^gateway\.canary\.series\[0\]\.tail: /,
    ],
    [
      'more attempts in the buckets than requests',
      (d) => {
        d.gateway!.canary.series = [
          { attempts: 1, errors: 0 },
          { attempts: 1, errors: 0 },
        ];
        return d;
      },
      /^gateway\.canary\.series: 2 attempts in the buckets exceed 1 requests$/,
    ],
    [
      'a series longer than any ring',
      (d) => {
        d.gateway!.canary.series = Array.from({ length: MAX_SERIES_BUCKETS + 1 }, () => ({ attempts: 0, errors: 0 }));
        return d;
      },
      /^gateway\.canary\.series: /,
    ],
    [
      'a sketch that is not base64',
      (d) => {
        d.gateway!.canary.connect = 'not base64!';
        return d;
      },
      /^gateway\.canary\.connect: not base64$/,
    ],
    [
      'a sketch that is not a protobuf DDSketch',
      (d) => {
        d.gateway!.canary.response = Buffer.from('garbage bytes here').toString('base64');
        return d;
      },
      /^gateway\.canary\.response: not a DDSketch protobuf/,
    ],
    [
      'a sketch of another accuracy',
      (d) => {
        d.gateway!.canary.connect = sketchText([2], 0.02);
        return d;
      },
      /^gateway\.canary\.connect: not a sketch of relative accuracy 0\.01/,
    ],
    [
      'a sketch holding negative values',
      (d) => {
        d.gateway!.canary.connect = sketchText([-2]);
        return d;
      },
      /^gateway\.canary\.connect: holds negative values/,
    ],
    [
      'a sketch with fractional counts',
      (d) => {
        const s = new DDSketch();
        s.accept(2, 0.5);
        d.gateway!.canary.connect = Buffer.from(s.toProto()).toString('base64');
        return d;
      },
      /^gateway\.canary\.connect: a bin count is not a whole number/,
    ],
    [
      'a sketch with a fractional zero count',
      (d) => {
        const s = new DDSketch();
        s.accept(0, 0.5);
        d.gateway!.canary.connect = Buffer.from(s.toProto()).toString('base64');
        return d;
      },
      /^gateway\.canary\.connect: its zero count is not a whole number/,
    ],
    [
      'a sketch whose counts overflow',
      (d) => {
        const s = new DDSketch();
        s.accept(2, Number.MAX_SAFE_INTEGER);
        s.accept(3, 2);
        d.gateway!.canary.connect = Buffer.from(s.toProto()).toString('base64');
        return d;
      },
      /^gateway\.canary\.connect: its sample count is not a safe integer$/,
    ],
    [
      'a sketch with keys beyond any time',
      (d) => {
        d.gateway!.canary.connect = sketchText([1e-200]);
        return d;
      },
      /^gateway\.canary\.connect: bin keys .* outside -4096…40960$/,
    ],
    [
      'a sketch with more samples than requests',
      (d) => {
        d.gateway!.canary.connect = sketchText([1, 2, 3]);
        return d;
      },
      /^gateway\.canary\.connect: 3 samples exceed 1 requests$/,
    ],
    [
      'a sketch too long',
      (d) => {
        d.gateway!.canary.connect = 'A'.repeat(MAX_SKETCH_CHARS + 4);
        return d;
      },
      /^gateway\.canary\.connect: /,
    ],
    ['a service name weights.yaml would refuse', (d) => ({ 'Bad Name': d.gateway }), /^"Bad Name": not a service name/],
    [
      'a __proto__ service',
      (d) => JSON.parse(`{"__proto__": ${JSON.stringify(d.gateway)}}`) as unknown,
      /^"__proto__": not a service name/,
    ],
    [
      'probe failures above probes',
      (d) => {
        d.gateway!.probes!.canary.failures = 9;
        return d;
      },
      /^gateway\.probes\.canary\.failures: 9 failures exceed 3 probes$/,
    ],
    [
      'a probe field of the wrong type',
      (d) => {
        (d.gateway!.probes!.primary as unknown as Record<string, unknown>).ready = 'yes';
        return d;
      },
      /^gateway\.probes\.primary\.ready: /,
    ],
  ];
  for (const [name, mutate, want] of cases) {
    const doc = viaJson(good()) as Record<string, unknown> & ObservationSnapshot;
    const got = parseObservationSnapshot(mutate(doc));
    t.notOk(got.ok, `${name}: rejected`);
    if (!got.ok) t.match(got.error, want, `${name}: ${got.error}`);
  }
});

/** A probe view with the given fields over neutral defaults. */
function probe(p: Partial<ProbeObservation>): ProbeObservation {
  return {
    probes: 3,
    failures: 0,
    connectP95Ms: 1,
    totalP95Ms: 2,
    ready: true,
    healthy: true,
    downTransitions: 0,
    recoveredAt: null,
    ...p,
  };
}

t.test('probe merge: counts summed, p95s the worst host’s, readiness the worst, crashes not multiplied', async (t) => {
  const a = probe({ probes: 10, failures: 1, connectP95Ms: 3, totalP95Ms: null, downTransitions: 2, recoveredAt: 500 });
  const b = probe({ probes: 12, failures: 4, connectP95Ms: 9, totalP95Ms: 40, downTransitions: 3, recoveredAt: null });
  t.same(mergeProbes([a, b]), {
    probes: 22,
    failures: 5,
    connectP95Ms: 9,
    totalP95Ms: 40,
    ready: true,
    healthy: true,
    downTransitions: 3,
    recoveredAt: 500,
  });
  const readiness = (values: (boolean | null)[]): boolean | null =>
    mergeProbes(values.map((v) => probe({ ready: v, healthy: v }))).ready;
  t.equal(readiness([true, true]), true);
  t.equal(readiness([true, null]), null, 'a host without a verdict yet: unknown');
  t.equal(readiness([null, false, true]), false, 'any host false: false');
  t.equal(mergeProbes([probe({ healthy: null }), probe({ healthy: false })]).healthy, false);
  t.equal(mergeProbes([probe({ healthy: true }), probe({ healthy: null })]).healthy, null);
  t.same(mergeProbes([]), {
    probes: 0,
    failures: 0,
    connectP95Ms: null,
    totalP95Ms: null,
    ready: null,
    healthy: null,
    downTransitions: 0,
    recoveredAt: null,
  });
  t.equal(mergeProbes([probe({ connectP95Ms: null }), probe({ connectP95Ms: null })]).connectP95Ms, null);

  // Through mergeSnapshots: only the hosts with probes count.
  const withProbes: ServiceSnapshot = { ...canaryOnly(emptyPool()), probes: { primary: a, canary: b } };
  const withOther: ServiceSnapshot = { ...canaryOnly(emptyPool()), probes: { primary: b, canary: a } };
  const merged = mergeSnapshots([{ gw: withProbes }, { gw: canaryOnly(emptyPool()) }, { gw: withOther }]).gw;
  t.same(merged?.probes?.primary, mergeProbes([a, b]));
  t.same(merged?.probes?.canary, mergeProbes([b, a]));
});

/** One host's snapshot with `attempts` canary attempts of which `errors` failed. */
function hostWith(attempts: number, errors: number): ObservationSnapshot {
  const series = [{ attempts, errors }];
  return { gw: canaryOnly(poolFrom(100, series)) };
}

t.test('outliers: a host whose canary error ratio stands far above the rest is named', async (t) => {
  const fleet = {
    'edge-1': hostWith(1000, 3),
    'edge-2': hostWith(1000, 2),
    'edge-3': hostWith(1000, 30),
    'edge-4': hostWith(1000, 8),
    'edge-5': { other: canaryOnly(poolFrom(1, [{ attempts: 100, errors: 100 }])) },
  };
  const named = outlierHosts(fleet, 'gw');
  t.same(
    named.map((h) => [h.host, h.attempts, h.errors, h.errorRatio]),
    [['edge-3', 1000, 30, 0.03]],
    'only edge-3; edge-4 (0.8 % against ~1.1 %) is within chance; edge-5 has no gw',
  );
  const e3 = named[0];
  t.ok(e3 !== undefined && Math.abs(e3.restErrorRatio - 13.5 / 3001) < 1e-12, 'rest: (13 + ½) / (3000 + 1)');
  t.ok(e3 !== undefined && e3.statistic >= Math.log(1 / OUTLIER_ALPHA));

  // A host alone, or all hosts equally bad, is no outlier.
  t.same(outlierHosts({ 'edge-1': hostWith(1000, 500) }, 'gw'), []);
  t.same(outlierHosts({ a: hostWith(1000, 500), b: hostWith(1000, 490), c: hostWith(1000, 510) }, 'gw'), []);
  t.same(outlierHosts({}, 'gw'), []);

  // Too few attempts to judge, then enough.
  const few = { a: hostWith(1000, 1), b: hostWith(1000, 1), c: hostWith(10, 10) };
  t.same(outlierHosts(few, 'gw'), [], 'c has 10 attempts < 20');
  t.same(
    outlierHosts(few, 'gw', { minAttempts: 5 }).map((h) => h.host),
    ['c'],
    'with minAttempts 5, 10 errors in 10 attempts against ~0.07 % is named',
  );

  // The effect size floor: a huge host barely above the rest is not "far above".
  const big = { a: hostWith(10_000_000, 10_000), b: hostWith(10_000_000, 15_000) };
  t.same(outlierHosts(big, 'gw'), [], '1.5 × is significant at this volume but not 2 ×');
  t.same(
    outlierHosts(big, 'gw', { factor: 1.4 }).map((h) => h.host),
    ['b'],
  );

  // A rest without errors: one error alone is not enough, a few are.
  t.same(outlierHosts({ a: hostWith(2000, 0), b: hostWith(100, 1) }, 'gw'), []);
  t.same(
    outlierHosts({ a: hostWith(2000, 0), b: hostWith(100, 3) }, 'gw').map((h) => h.host),
    ['b'],
  );

  // Worst ratio first, then by name; invalid options fall back to the defaults.
  const two = { z: hostWith(1000, 50), y: hostWith(1000, 50), x: hostWith(1000, 80), w: hostWith(100_000, 10) };
  t.same(
    outlierHosts(two, 'gw', { factor: -1, alpha: 2, minAttempts: -3 }).map((h) => h.host),
    ['x', 'y', 'z'],
  );
  t.same(outlierHosts(two, 'gw', { alpha: 1e-300 }), [], 'a tiny alpha names nobody at these counts');
});

t.test('the sketch mapping a decoded sketch gets is rebuilt from gamma: merges go into fresh sketches', async (t) => {
  // Why mergePool merges into the accumulator's own sketches: fromProto rebuilds the mapping from
  // gamma, and its own quantiles may then differ from the original's in the last bits.
  const values = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 3001);
  const text = sketchText(values);
  const original = new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY });
  for (const v of values) original.accept(v);
  const merged = mergeSnapshots([
    {
      gw: canaryOnly({
        ...poolFrom(3, [{ attempts: 1000, errors: 0 }]),
        connect: text,
      }),
    },
  ]).gw?.canary.connectP95Ms;
  t.equal(merged, original.getValueAtQuantile(GATE_QUANTILE), 'exactly the original sketch’s p95');
});
