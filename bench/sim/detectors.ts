/**
 * The drain rules compared by bench/gates.ts. Each replays one simulated walk
 * (walk.ts) tick by tick in its own loop, on the counts the follower gets
 * (`Walk.counted`: a sampled log's successes counted w times), and returns the
 * first tick it drains at, or −1:
 * - {@link SequentialDetector}: src/rollout/sequential.ts carried from tick to
 *   tick (the same arithmetic in the same order as `errorTest`, so the same
 *   decisions; {@link SeriesDetector} calls `errorTest` on the rebuilt series
 *   and the bench checks both agree);
 * - {@link NaiveDetector}: ratio over the judged span > threshold at every
 *   tick once ≥ min_requests attempts (the 0.1 gate);
 * - {@link FlaggerDetector}: every interval, the ratio over the last interval
 *   > threshold is a failed check; rollback after `failedChecks` of them
 *   (Flagger's `threshold: 1`); an interval without attempts counts as failed,
 *   as Flagger counts "no values".
 */
import { errorTest } from '../../src/rollout/sequential.js';
import type { ErrorTestOptions } from '../../src/rollout/sequential.js';
import type { CountBucket } from '../../src/rollout/types.js';
import type { Walk } from './walk.js';

/** A drain rule replaying a walk. */
export interface Detector {
  readonly name: string;
  /** The first judged tick at whose end the rule drains, or −1. */
  firstDrain(w: Walk): number;
}

/** True when tick t opens a new bucket. */
function opensBucket(w: Walk, t: number): boolean {
  return (t + w.phase) % w.bucketTicks === 0;
}

/** True when the weight changes at the start of tick t (the judged span restarts). */
function changesWeight(w: Walk, t: number): boolean {
  return t >= w.from && (t - w.from) % w.stageTicks === 0;
}

/**
 * One alternative as the detectors need it: its 5xx ratio (ratio 0–1), its
 * bound (natural log), and whether it also starts at each bucket's trailing
 * run of 5xx (sequential.ts CalibratedAlternative.tails).
 */
export interface Alternative {
  p1: number;
  bound: number;
  tails?: boolean;
}

/** The CUSUM-of-SPRTs of sequential.ts, carried from tick to tick instead of rescanning the series. */
export class SequentialDetector implements Detector {
  readonly name: string;
  readonly #up: Float64Array;
  readonly #down: Float64Array;
  readonly #bounds: Float64Array;
  /** 1 where the alternative also starts at trailing runs, else 0. */
  readonly #tails: Uint8Array;
  /** The shortest trailing run the bucket being filled counts from (sequential.ts currentRunMinimum). */
  readonly #runMin: number;

  /**
   * `alts`: sequential.ts `calibrateBounds(threshold, …)` (or any p1 and bound per alternative);
   * `runMin`: sequential.ts `currentRunMinimum` for the walk's attempts (1: every run counts).
   */
  constructor(threshold: number, alts: readonly Alternative[], name = 'sequential', runMin = 1) {
    this.name = name;
    this.#runMin = runMin;
    this.#up = Float64Array.from(alts, (a) => Math.log(a.p1 / threshold));
    this.#down = Float64Array.from(alts, (a) => Math.log((1 - a.p1) / (1 - threshold)));
    this.#bounds = Float64Array.from(alts, (a) => a.bound);
    this.#tails = Uint8Array.from(alts, (a) => (a.tails === true ? 1 : 0));
  }

  firstDrain(w: Walk): number {
    const up = this.#up;
    const down = this.#down;
    const k = up.length;
    const bounds = this.#bounds;
    const tails = this.#tails;
    // CUSUM at the end of the last complete bucket of the span, per alternative.
    const done = new Float64Array(k);
    // The bucket being filled: attempts, 5xx, and its trailing run of 5xx so far.
    let n = 0;
    let e = 0;
    let tail = 0;
    const runMin = this.#runMin;
    /** Alternative i's CUSUM over the complete buckets and the one being filled (errorTest's `s`). */
    const cusum = (i: number, filling: boolean): number => {
      let s = (done[i] as number) + (e * (up[i] as number) + (n - e) * (down[i] as number));
      if (s < 0) s = 0;
      if (tails[i] === 1 && (!filling || tail >= runMin) && tail * (up[i] as number) > s) s = tail * (up[i] as number);
      return s;
    };
    for (let t = w.start; t < w.end; t++) {
      if (opensBucket(w, t)) {
        for (let i = 0; i < k; i++) done[i] = cusum(i, false);
        n = 0;
        e = 0;
        tail = 0;
      }
      if (changesWeight(w, t)) done.fill(0);
      const tn = w.counted[t] as number;
      const te = w.errors[t] as number;
      if (tn > 0) tail = te === tn ? tail + te : (w.tails[t] as number);
      n += tn;
      e += te;
      if (t < w.from) continue;
      for (let i = 0; i < k; i++) if (cusum(i, true) >= (bounds[i] as number)) return t;
    }
    return -1;
  }
}

/** `errorTest` on the judged span's bucket series rebuilt at every tick (slow: checks {@link SequentialDetector}). */
export class SeriesDetector implements Detector {
  readonly name = 'errorTest';
  readonly #threshold: number;
  readonly #opts: Partial<ErrorTestOptions>;

  constructor(threshold: number, opts: Partial<ErrorTestOptions>) {
    this.#threshold = threshold;
    this.#opts = opts;
  }

  firstDrain(w: Walk): number {
    let series: CountBucket[] = [{ attempts: 0, errors: 0 }];
    for (let t = w.start; t < w.end; t++) {
      if (opensBucket(w, t)) series.push({ attempts: 0, errors: 0 });
      if (changesWeight(w, t)) series = series.slice(-1);
      const b = series[series.length - 1] as CountBucket;
      const tn = w.counted[t] as number;
      const te = w.errors[t] as number;
      if (tn > 0) b.tail = te === tn ? (b.tail ?? 0) + te : w.tails[t];
      b.attempts += tn;
      b.errors += te;
      if (t >= w.from && errorTest(series, this.#threshold, this.#opts).crossed) return t;
    }
    return -1;
  }
}

/** The 0.1 gate: ratio over the judged span > threshold, peeked every tick once ≥ minRequests attempts. */
export class NaiveDetector implements Detector {
  readonly name = 'naive';
  readonly #threshold: number;
  readonly #min: number;

  constructor(threshold: number, minRequests: number) {
    this.#threshold = threshold;
    this.#min = minRequests;
  }

  firstDrain(w: Walk): number {
    let spanN = 0;
    let spanE = 0;
    let bucketN = 0;
    let bucketE = 0;
    for (let t = w.start; t < w.end; t++) {
      if (opensBucket(w, t)) bucketN = bucketE = 0;
      if (changesWeight(w, t)) {
        spanN = bucketN;
        spanE = bucketE;
      }
      const n = w.counted[t] as number;
      const e = w.errors[t] as number;
      spanN += n;
      spanE += e;
      bucketN += n;
      bucketE += e;
      if (t >= w.from && spanN >= this.#min && spanE / spanN > this.#threshold) return t;
    }
    return -1;
  }
}

/** Flagger-style: a check every `intervalTicks` (from the walk start) over the last interval; drain after `failedChecks` failed checks. */
export class FlaggerDetector implements Detector {
  readonly name = 'flagger';
  readonly #threshold: number;
  readonly #interval: number;
  readonly #limit: number;

  constructor(threshold: number, intervalTicks: number, failedChecks: number) {
    this.#threshold = threshold;
    this.#interval = intervalTicks;
    this.#limit = failedChecks;
  }

  firstDrain(w: Walk): number {
    const iv = this.#interval;
    let n = 0;
    let e = 0;
    let failed = 0;
    for (let t = w.start; t < w.end; t++) {
      n += w.counted[t] as number;
      e += w.errors[t] as number;
      if (t - iv >= w.start) {
        n -= w.counted[t - iv] as number;
        e -= w.errors[t - iv] as number;
      }
      if (t < w.from || (t + 1) % iv !== 0) continue;
      if (n === 0 || e / n > this.#threshold) failed++;
      if (failed >= this.#limit) return t;
    }
    return -1;
  }
}
