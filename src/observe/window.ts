/**
 * The sliding window of one server (docs/design.md "Observations"): a ring of
 * short buckets, each holding the attempt count, the error count and two
 * DDSketches (connect times, response times), merged on read; beside it a
 * ring of finer count buckets (≤ 1 s: attempts and errors only), read bucket
 * by bucket as the count series of the sequential error test. Memory is
 * bounded whatever the traffic: the ring has a fixed number of buckets, a
 * bucket is recycled when its time has passed out of the window, and a sketch
 * has a bounded number of bins for a bounded value range (relative accuracy
 * 0.01 → about 1,100 bins between 1 µs and 1 h).
 *
 * Time is always a parameter (epoch ms, from the access log and the caller's
 * clock); nothing here reads a clock.
 */
import { DDSketch } from '@datadog/sketches-js';
import type { CountBucket, PoolObservation } from '../rollout/types.js';

/** Narrowest bucket, ms (so a short test window is not sliced into 1 ms buckets; a chosen value). */
export const MIN_BUCKET_MS = 100;
/**
 * Buckets per window: a window of 15 min has 15 s buckets (docs/design.md "Observations"; 60 is
 * chosen, not a runbook number: it is also the resolution of the sequential error test's start points).
 */
export const BUCKETS_PER_WINDOW = 60;
/** DDSketch relative accuracy of connect- and response-time quantiles: ±1 % of the value (a chosen value). */
export const SKETCH_RELATIVE_ACCURACY = 0.01;
/** The quantile the gates read (docs/design.md "Gates": connect p95, and response p95 against 5 × the primary's). */
export const GATE_QUANTILE = 0.95;

/**
 * Count-series buckets per window: 900, so the default 15 min window's series
 * has 1 s buckets (docs/design.md "Gates": the error test's statistic moves
 * per second, not per 15 s sketch bucket). A chosen value: it bounds the
 * series a fleet host publishes (fleet/snapshot.ts MAX_SERIES_BUCKETS) and
 * the error test's work per tick (one pass over ≤ 902 buckets per
 * alternative).
 */
export const SERIES_BUCKETS_PER_WINDOW = 900;

/**
 * Bucket width for a window, ms: max(100 ms, windowMs / 60), rounded up to a
 * whole multiple of {@link seriesWidthMs} (so a span cut at a sketch-bucket
 * boundary is also cut at a series-bucket boundary, and the series never
 * counts an attempt the span's totals leave out): 15 s for 15 min, 200 ms for
 * 10 s. Never throws.
 */
export function bucketWidthMs(windowMs: number): number {
  const series = seriesWidthMs(windowMs);
  return series * Math.ceil(Math.max(MIN_BUCKET_MS, Math.ceil(windowMs / BUCKETS_PER_WINDOW)) / series);
}

/**
 * Width of the count-series buckets for a window, ms: max(100 ms, windowMs /
 * 900), rounded up to a whole ms — 1 s for the default 15 min window, 100 ms
 * for windows up to 90 s, never wider than {@link bucketWidthMs}. Each bucket
 * boundary is a start point of the sequential error test (rollout/sequential.ts),
 * so the number of start points a walk watches is its soak time / this width.
 * Never throws.
 */
export function seriesWidthMs(windowMs: number): number {
  return Math.max(MIN_BUCKET_MS, Math.ceil(windowMs / SERIES_BUCKETS_PER_WINDOW));
}

/** One bucket: the attempts whose time falls in `[index × width, (index + 1) × width)`. */
interface Bucket {
  /** Absolute bucket index (epoch ms / width, floored); -Infinity while unused. */
  index: number;
  attempts: number;
  errors: number;
  /** Connect times in ms; null until the first sample (most buckets of an idle server have none). */
  sketch: DDSketch | null;
  /** Response times in ms; null until the first sample. */
  response: DDSketch | null;
  /** The largest `weight` an attempt was added with (requests one sampled log line stood for), ≥ 1. */
  sampleWeight: number;
}

/** Why attempts were refused by {@link ServerWindow.add}. */
export interface DroppedCounts {
  /** Older than `now - windowMs`, or older than a bucket the ring already reused (wall clock went back). */
  old: number;
  /** Later than `now` plus one bucket width (clock skew or a garbled $msec). */
  future: number;
}

/**
 * The ring of buckets of one (service, pool, server). Holds
 * `ceil(windowMs / width) + 2` buckets: the window, the bucket being filled,
 * and one bucket of tolerated future skew, so a query over
 * `[now - windowMs, now]` never sees a recycled bucket. The count series has
 * its own ring by the same rule: `ceil(windowMs / seriesWidth) +
 * ceil(width / seriesWidth) + 2` buckets (917 for the default window, in
 * three Float64Arrays: ~22 KB).
 */
export class ServerWindow {
  /** Length of the window, ms. */
  readonly windowMs: number;
  /** Width of one bucket, ms ({@link bucketWidthMs}). */
  readonly widthMs: number;
  /** Width of one count-series bucket, ms ({@link seriesWidthMs}). */
  readonly seriesWidthMs: number;
  readonly #ring: Bucket[];
  /** Absolute index of each count-series bucket (epoch ms / seriesWidthMs, floored); -Infinity while unused. */
  readonly #fineIndex: Float64Array;
  readonly #fineAttempts: Float64Array;
  readonly #fineErrors: Float64Array;
  /** Each series bucket's trailing run of failed attempts, in the order they were added (CountBucket.tail). */
  readonly #fineTail: Float64Array;
  /** The bucket the last accepted line went into (see {@link add}). */
  #lastBucket: Bucket | null = null;
  /** The series bucket the last {@link #fineSlot} call returned and its slot: lines arrive in time order, so most adds hit it. */
  #lastFineIndex = -Infinity;
  #lastFineSlot = -1;
  readonly #dropped: DroppedCounts = { old: 0, future: 0 };

  /** `windowMs` > 0 (gates.window). Throws RangeError otherwise. */
  constructor(windowMs: number) {
    if (!(windowMs > 0) || !Number.isFinite(windowMs)) throw new RangeError(`window must be > 0 ms, got ${windowMs}`);
    this.windowMs = windowMs;
    this.widthMs = bucketWidthMs(windowMs);
    const n = Math.ceil(windowMs / this.widthMs) + 2;
    this.#ring = Array.from({ length: n }, () => ({
      index: -Infinity,
      attempts: 0,
      errors: 0,
      sketch: null,
      sampleWeight: 1,
      response: null,
    }));
    this.seriesWidthMs = seriesWidthMs(windowMs);
    // The window, one sketch bucket of tolerated future skew (what `add` accepts), the bucket being filled and one more.
    const f = Math.ceil(windowMs / this.seriesWidthMs) + Math.ceil(this.widthMs / this.seriesWidthMs) + 2;
    this.#fineIndex = new Float64Array(f).fill(-Infinity);
    this.#fineAttempts = new Float64Array(f);
    this.#fineErrors = new Float64Array(f);
    this.#fineTail = new Float64Array(f);
  }

  /** Number of count-series buckets in their ring; fixed at construction. */
  get seriesBucketCount(): number {
    return this.#fineIndex.length;
  }

  /** Number of buckets in the ring; fixed at construction, whatever the traffic. */
  get bucketCount(): number {
    return this.#ring.length;
  }

  /** Buckets currently holding a connect-time sketch (≤ bucketCount). */
  get sketchCount(): number {
    let n = 0;
    for (const b of this.#ring) if (b.sketch !== null) n++;
    return n;
  }

  /** Buckets currently holding a response-time sketch (≤ bucketCount). */
  get responseSketchCount(): number {
    let n = 0;
    for (const b of this.#ring) if (b.response !== null) n++;
    return n;
  }

  /** Attempts refused so far, by reason (a copy). */
  get dropped(): DroppedCounts {
    return { ...this.#dropped };
  }

  /**
   * Records one attempt at `atMs` (epoch ms) seen at `nowMs` (epoch ms):
   * `failed` per `attemptFailed` (parse.ts), `connectMs` in ms or null when it
   * did not connect, `responseMs` in ms or null without a sample (per
   * `responseSample`, parse.ts). `weight` (≥ 1, default 1) is the number of
   * requests the line stands for in a sampled access log (100 / its `sample`
   * percent, observe/parse.ts; docs/design.md "Sampled access log"): the
   * attempt counts `weight` times in the counts and the sketches. A failed
   * attempt is always logged, so the Observer passes 1 for it; a counted
   * success resets the bucket's trailing failure run whatever its weight.
   * Returns false (and counts it in
   * {@link dropped}) when `atMs < nowMs - windowMs` or `atMs ≥ nowMs + width`.
   */
  add(
    atMs: number,
    failed: boolean,
    connectMs: number | null,
    responseMs: number | null,
    nowMs: number,
    weight = 1,
  ): boolean {
    if (atMs < nowMs - this.windowMs) {
      this.#dropped.old++;
      return false;
    }
    if (atMs >= nowMs + this.widthMs) {
      this.#dropped.future++;
      return false;
    }
    // A slot holding a newer bucket than a line inside the window can only hold data stamped after `nowMs`:
    // the wall clock went back. That data is from before the jump; recycle it rather than drop new lines
    // until the clock catches up (README "Faults, and what the sidecar does": clock jump).
    const index = Math.floor(atMs / this.widthMs);
    // Lines arrive in time order: most land in the bucket the last one did (checked by its index, so never stale).
    const last = this.#lastBucket;
    const b = last !== null && last.index === index ? last : this.#bucket(index, true);
    if (b === null) {
      this.#dropped.old++;
      return false;
    }
    this.#lastBucket = b;
    if (weight > b.sampleWeight) b.sampleWeight = weight;
    b.attempts += weight;
    if (failed) b.errors += weight;
    const fine = Math.floor(atMs / this.seriesWidthMs);
    const slot = fine === this.#lastFineIndex ? this.#lastFineSlot : this.#fineSlot(fine, true);
    if (slot >= 0) {
      this.#fineAttempts[slot] = (this.#fineAttempts[slot] as number) + weight;
      if (failed) {
        this.#fineErrors[slot] = (this.#fineErrors[slot] as number) + weight;
        this.#fineTail[slot] = (this.#fineTail[slot] as number) + 1;
      } else {
        this.#fineTail[slot] = 0;
      }
    }
    if (connectMs !== null) {
      b.sketch ??= new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY });
      b.sketch.accept(connectMs, weight);
    }
    if (responseMs !== null) {
      b.response ??= new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY });
      b.response.accept(responseMs, weight);
    }
    return true;
  }

  /**
   * Adds this window's buckets overlapping `[fromMs, nowMs]` (epoch ms) into
   * `acc`: a bucket `[start, start + width)` overlaps when
   * `start ≤ nowMs` and `start + width > fromMs`, so up to one bucket width
   * before `fromMs` may be included.
   */
  collect(fromMs: number, nowMs: number, acc: WindowAccumulator): void {
    const w = this.widthMs;
    for (const b of this.#ring) {
      const start = b.index * w;
      if (b.attempts === 0 || start > nowMs || start + w <= fromMs) continue;
      acc.requests += b.attempts;
      acc.errors += b.errors;
      if (b.sampleWeight > acc.sampleWeight) acc.sampleWeight = b.sampleWeight;
      if (b.sketch !== null) acc.sketch.merge(b.sketch);
      if (b.response !== null) acc.response.merge(b.response);
    }
  }

  /**
   * Adds this window's attempts and errors, count-series bucket by bucket,
   * into `out`, where `out[i]` stands for the bucket of absolute index
   * `firstIndex + i` (bucket `[index × seriesWidthMs, (index + 1) ×
   * seriesWidthMs)`, epoch ms). Buckets of the
   * ring outside that range are left out; a bucket of the range the ring does
   * not hold (no attempts, or recycled) adds nothing. A bucket's `tail` is set
   * when this window is the first to add attempts to it (and > 0), and removed
   * when a second one adds some: the order across windows is not known. See
   * {@link countSeries}.
   */
  collectSeries(firstIndex: number, out: CountBucket[]): void {
    const end = firstIndex + out.length;
    for (let i = 0; i < this.#fineIndex.length; i++) {
      const index = this.#fineIndex[i] as number;
      const attempts = this.#fineAttempts[i] as number;
      if (attempts === 0 || index < firstIndex || index >= end) continue;
      const slot = out[index - firstIndex] as CountBucket;
      addToBucket(slot, attempts, this.#fineErrors[i] as number, this.#fineTail[i]);
    }
  }

  /** This server alone over `[fromMs, nowMs]` (see {@link collect} and {@link countSeries}). */
  observe(fromMs: number, nowMs: number): PoolObservation {
    return observeWindows([this], fromMs, nowMs);
  }

  /**
   * Copies every bucket of `other` (another window length) into this ring at
   * the bucket's start time, for a config reload that changed gates.window.
   * Buckets older than this ring can hold (counted back from `other`'s newest
   * bucket) are left out.
   */
  absorb(other: ServerWindow): void {
    const indexOf = (src: Bucket): number => Math.floor((src.index * other.widthMs) / this.widthMs);
    let newest = -Infinity;
    for (const src of other.#ring) if (src.attempts > 0) newest = Math.max(newest, indexOf(src));
    const oldest = newest - this.#ring.length + 1;
    for (const src of other.#ring) {
      if (src.attempts === 0 || indexOf(src) < oldest) continue;
      const b = this.#bucket(indexOf(src));
      if (b === null) continue; // this ring already holds newer data in that slot
      b.attempts += src.attempts;
      b.errors += src.errors;
      if (src.sampleWeight > b.sampleWeight) b.sampleWeight = src.sampleWeight;
      if (src.sketch !== null) {
        b.sketch ??= new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY });
        b.sketch.merge(src.sketch);
      }
      if (src.response !== null) {
        b.response ??= new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY });
        b.response.merge(src.response);
      }
    }
    const fineOf = (i: number): number =>
      Math.floor(((other.#fineIndex[i] as number) * other.seriesWidthMs) / this.seriesWidthMs);
    let newestFine = -Infinity;
    for (let i = 0; i < other.#fineIndex.length; i++) {
      if ((other.#fineAttempts[i] as number) > 0) newestFine = Math.max(newestFine, fineOf(i));
    }
    const oldestFine = newestFine - this.#fineIndex.length + 1;
    for (let i = 0; i < other.#fineIndex.length; i++) {
      if ((other.#fineAttempts[i] as number) === 0 || fineOf(i) < oldestFine) continue;
      const slot = this.#fineSlot(fineOf(i));
      if (slot < 0) continue; // this ring already holds newer data in that slot
      this.#fineAttempts[slot] = (this.#fineAttempts[slot] as number) + (other.#fineAttempts[i] as number);
      this.#fineErrors[slot] = (this.#fineErrors[slot] as number) + (other.#fineErrors[i] as number);
      this.#fineTail[slot] = 0; // re-bucketed: the order of its attempts is not kept (CountBucket.tail 0 = unknown)
    }
  }

  /**
   * The slot of count-series bucket `index` in its ring, recycled (zeroed) if
   * it holds an older bucket; if it holds a newer one, recycled when
   * `recycleNewer`, else -1. The same rule as {@link #bucket}.
   */
  #fineSlot(index: number, recycleNewer = false): number {
    const n = this.#fineIndex.length;
    const slot = ((index % n) + n) % n;
    const held = this.#fineIndex[slot] as number;
    if (held > index && !recycleNewer) return -1;
    if (held !== index) {
      this.#fineIndex[slot] = index;
      this.#fineAttempts[slot] = 0;
      this.#fineErrors[slot] = 0;
      this.#fineTail[slot] = 0;
    }
    this.#lastFineIndex = index;
    this.#lastFineSlot = slot;
    return slot;
  }

  /**
   * The bucket for absolute index `index`, recycled if its slot holds an older one; if it holds a newer one,
   * recycled when `recycleNewer`, else null.
   */
  #bucket(index: number, recycleNewer = false): Bucket | null {
    const n = this.#ring.length;
    const b = this.#ring[((index % n) + n) % n] as Bucket;
    if (b.index === index) return b;
    if (b.index > index && !recycleNewer) return null;
    b.index = index;
    b.attempts = 0;
    b.errors = 0;
    b.sketch = null;
    b.response = null;
    b.sampleWeight = 1;
    return b;
  }
}

/** Running totals while merging windows (see {@link observeWindows}). */
export interface WindowAccumulator {
  /** Attempts summed so far. */
  requests: number;
  /** 5xx (failed) attempts summed so far. */
  errors: number;
  /** Merged connect-time sketch, ms. */
  sketch: DDSketch;
  /** Merged response-time sketch, ms. */
  response: DDSketch;
  /** The largest sample weight of the buckets merged so far (Bucket.sampleWeight), ≥ 1. */
  sampleWeight: number;
}

/** A fresh, empty accumulator. */
export function newAccumulator(): WindowAccumulator {
  return {
    requests: 0,
    errors: 0,
    sketch: new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY }),
    response: new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY }),
    sampleWeight: 1,
  };
}

/**
 * Turns an accumulator and a count series ({@link countSeries}, kept as
 * given) into an observation: connect and response p95 in ms (DDSketch
 * lower quantile, ±1 %), each null without samples; `sampleWeight` only
 * when a sampled line was counted (> 1).
 */
export function toObservation(acc: WindowAccumulator, series: CountBucket[]): PoolObservation {
  const o: PoolObservation = {
    requests: acc.requests,
    errors: acc.errors,
    connectP95Ms: acc.sketch.count > 0 ? acc.sketch.getValueAtQuantile(GATE_QUANTILE) : null,
    responseP95Ms: acc.response.count > 0 ? acc.response.getValueAtQuantile(GATE_QUANTILE) : null,
    series,
  };
  if (acc.sampleWeight > 1) o.sampleWeight = acc.sampleWeight;
  return o;
}

/**
 * Attempts and errors per count-series bucket (`seriesWidthMs` wide) over
 * `[fromMs, nowMs]` (epoch ms), summed across `windows` bucket by bucket,
 * oldest first: one entry per bucket
 * `[start, start + width)` with `start ≤ nowMs` and `start + width > fromMs`
 * (the overlap rule of {@link ServerWindow.collect}, so the first entry may
 * start up to one width before `fromMs`), zeros for a bucket without
 * attempts. Computed on read; at most the ring's length of entries (a longer
 * span — only a caller asking beyond the window does that — is cut to its
 * newest `seriesBucketCount` buckets). Empty when `windows` is empty or the span
 * holds no bucket start (`fromMs` after the bucket holding `nowMs`).
 * Throws RangeError when the windows' series widths differ (the servers of one
 * service share gates.window, hence the width).
 */
export function countSeries(windows: Iterable<ServerWindow>, fromMs: number, nowMs: number): CountBucket[] {
  const list = [...windows];
  const span = seriesSpan(list, fromMs, nowMs);
  return span === null ? [] : seriesOver(list, span.firstIndex, span.length);
}

/**
 * The buckets {@link countSeries} covers: absolute index of the first (bucket
 * `[index × width, (index + 1) × width)`, epoch ms), how many (≤ 0 when the
 * span holds no bucket start), and the shared width in ms. Null when `list` is
 * empty. Throws RangeError when the windows' bucket widths differ.
 */
function seriesSpan(
  list: readonly ServerWindow[],
  fromMs: number,
  nowMs: number,
): { widthMs: number; firstIndex: number; length: number } | null {
  let width = 0;
  let cap = 0;
  for (const w of list) {
    if (width !== 0 && w.seriesWidthMs !== width)
      throw new RangeError(`windows of one series must share a bucket width: ${width} ms and ${w.seriesWidthMs} ms`);
    width = w.seriesWidthMs;
    cap = Math.max(cap, w.seriesBucketCount);
  }
  if (list.length === 0) return null;
  const last = Math.floor(nowMs / width);
  const first = Math.max(Math.floor(fromMs / width), last - cap + 1);
  return { widthMs: width, firstIndex: first, length: last - first + 1 };
}

/**
 * Adds one source's counts for a bucket into `slot` (attempts > 0): the sums
 * of attempts and errors, and the trailing failure run `tail` kept only while
 * one source alone filled the bucket — set from the first source (when > 0),
 * dropped when a second one adds attempts, since their interleaving is not
 * known (CountBucket.tail). Counts are attempts (integers ≥ 0) of one
 * series bucket; `tail` ≤ `errors`, undefined or 0 for none. Mutates `slot`;
 * never throws. Used for servers of a pool here and for fleet hosts
 * (fleet/snapshot.ts).
 */
export function addToBucket(slot: CountBucket, attempts: number, errors: number, tail: number | undefined): void {
  if (slot.attempts === 0) {
    if (tail !== undefined && tail > 0) slot.tail = tail;
  } else if (slot.tail !== undefined) {
    delete slot.tail;
  }
  slot.attempts += attempts;
  slot.errors += errors;
}

/** The series of `length` buckets from absolute index `firstIndex`, summed over `list` (empty when length ≤ 0). */
function seriesOver(list: readonly ServerWindow[], firstIndex: number, length: number): CountBucket[] {
  if (!(length > 0)) return [];
  const out: CountBucket[] = Array.from({ length }, () => ({ attempts: 0, errors: 0 }));
  for (const w of list) w.collectSeries(firstIndex, out);
  return out;
}

/**
 * Merges the buckets of several servers' windows overlapping
 * `[fromMs, nowMs]` (epoch ms) into one pool observation: summed attempts and
 * errors, connect and response p95 (ms) from the merged sketches or null
 * without samples, and the per-bucket {@link countSeries}. Throws RangeError
 * when the windows' bucket widths differ.
 */
export function observeWindows(windows: Iterable<ServerWindow>, fromMs: number, nowMs: number): PoolObservation {
  const list = [...windows];
  const acc = newAccumulator();
  for (const w of list) w.collect(fromMs, nowMs, acc);
  return toObservation(acc, countSeries(list, fromMs, nowMs));
}

/**
 * The raw material of one pool's mergeable snapshot (fleet/snapshot.ts
 * `snapshotOf`): exactly what {@link observeWindows} reads over the same
 * `[fromMs, nowMs]` (epoch ms), before any quantile is taken.
 */
export interface WindowSpan {
  /** Summed attempts and errors, and the merged connect and response sketches (ms), as {@link collect} builds them. */
  acc: WindowAccumulator;
  /** The per-bucket counts, oldest first: the same array {@link countSeries} returns. */
  series: CountBucket[];
  /** Count-series bucket width, ms (the windows' `seriesWidthMs`; `widthMs` as given when there are none). */
  widthMs: number;
  /**
   * Epoch ms start of `series[0]`'s bucket (its absolute index × width); when
   * `series` is empty it has no meaning (the start of the first bucket the
   * span would hold, or of the bucket holding `nowMs` without windows).
   */
  seriesStartMs: number;
}

/**
 * Collects `windows` over `[fromMs, nowMs]` (epoch ms) as {@link observeWindows}
 * does — the same buckets, the same series cut — but keeps the accumulator
 * (counts and merged sketches) and the series' first bucket instead of taking
 * the p95s, so hosts' spans can be merged before any quantile is read.
 * `widthMs` is the count-series width of the service
 * (`seriesWidthMs(gates.window)`): reported as is when `windows` is empty.
 * Throws RangeError when the windows' series widths differ from each other or
 * from `widthMs`.
 */
export function collectWindows(
  windows: Iterable<ServerWindow>,
  fromMs: number,
  nowMs: number,
  widthMs: number,
): WindowSpan {
  const list = [...windows];
  const acc = newAccumulator();
  for (const w of list) w.collect(fromMs, nowMs, acc);
  const span = seriesSpan(list, fromMs, nowMs);
  if (span === null) return { acc, series: [], widthMs, seriesStartMs: Math.floor(nowMs / widthMs) * widthMs };
  if (span.widthMs !== widthMs)
    throw new RangeError(`windows of one series must share a bucket width: ${widthMs} ms and ${span.widthMs} ms`);
  return {
    acc,
    series: seriesOver(list, span.firstIndex, span.length),
    widthMs,
    seriesStartMs: span.firstIndex * widthMs,
  };
}
