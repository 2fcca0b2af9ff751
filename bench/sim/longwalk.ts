/**
 * False drains over a whole long walk (bench/gates.ts): the default walk is
 * a 48 h slice soak plus 5 steps × 15 min, 3.5 million canary attempts at
 * 20/s — too long to keep tick arrays for (walk.ts), so this loop draws each
 * tick's traffic and runs the detector's arithmetic in the same pass,
 * stopping at the first drain.
 *
 * Traffic: Poisson arrivals at `ratePerS`, each a 5xx with probability `p`;
 * by Poisson thinning a tick's 5xx and good attempts are independent Poisson
 * counts (means rate·tick·p and rate·tick·(1 − p)), one uniform each; a
 * tick's trailing run of 5xx is drawn from a uniformly random order of them
 * (walk.ts trailingRun), for the alternative that starts there too. With a
 * sample weight w (`LongWalk.sampleWeight`) only the logged good attempts are
 * drawn — Poisson with mean rate·tick·(1 − p)/w, thinning again — each counted
 * w times, and the trailing run is over the logged lines.
 * The detector is sequential.ts's CUSUM over `bucketMs` buckets, judged at
 * every tick on the complete buckets plus the one being filled (as
 * detectors.ts SequentialDetector), restarted at every weight change (each
 * soak). It carries each CUSUM across the gate window instead of cutting its
 * runs at the window's start, which can only drain more often: the shares
 * printed are upper estimates for the real gate.
 */
import { Rng, Samplers } from './prng.js';
import type { Alternative } from './detectors.js';
import { sampleWeightOf, trailingRun } from './walk.js';

/** A long walk. */
export interface LongWalk {
  /** Canary attempts per second. */
  ratePerS: number;
  /** Gate tick, ms. */
  tickMs: number;
  /** Count-series bucket, ms (observe/window.ts seriesWidthMs). */
  bucketMs: number;
  /** The soaks in order, ms (slice first); the CUSUM restarts at each. */
  soaksMs: readonly number[];
  /** Sample weight of the access log, ≥ 1 (absent: 1): walk.ts `SimParams.sampleWeight`. */
  sampleWeight?: number;
}

const samplers = new Samplers();

/**
 * Walks of `walk` at true 5xx ratio `p` drained by the detector (`alts`,
 * `runMin` the shortest trailing run the bucket being filled counts from:
 * sequential.ts currentRunMinimum
 * against `threshold`), out of `walks`; walk i from seed (seed, i). The
 * bucket grid sits at a uniform random offset per walk.
 */
export function falseDrains(
  walk: LongWalk,
  threshold: number,
  alts: readonly Alternative[],
  p: number,
  walks: number,
  seed: number,
  runMin = 1,
): number {
  const tickS = walk.tickMs / 1000;
  const weight = sampleWeightOf(walk.sampleWeight);
  const bad = samplers.poisson(walk.ratePerS * tickS * p);
  // The logged good attempts (all of them at w = 1, the same sampler as before sampling).
  const good = samplers.poisson(
    weight > 1 ? (walk.ratePerS * tickS * (1 - p)) / weight : walk.ratePerS * tickS * (1 - p),
  );
  const bucketTicks = Math.max(1, Math.round(walk.bucketMs / walk.tickMs));
  const k = alts.length;
  const up = Float64Array.from(alts, (a) => Math.log(a.p1 / threshold));
  const down = Float64Array.from(alts, (a) => Math.log((1 - a.p1) / (1 - threshold)));
  const bounds = Float64Array.from(alts, (a) => a.bound);
  const tails = Uint8Array.from(alts, (a) => (a.tails === true ? 1 : 0));
  const done = new Float64Array(k);
  let drained = 0;
  for (let i = 0; i < walks; i++) {
    const rng = new Rng(seed, i);
    const phase = Math.floor(rng.next() * bucketTicks);
    let hit = false;
    for (const soakMs of walk.soaksMs) {
      done.fill(0);
      let n = 0;
      let e = 0;
      let tail = 0;
      /** Alternative j's CUSUM over the complete buckets and the one being filled (errorTest's `s`). */
      const cusum = (j: number, filling: boolean): number => {
        let s = (done[j] as number) + e * (up[j] as number) + (n - e) * (down[j] as number);
        if (s < 0) s = 0;
        if (tails[j] === 1 && (!filling || tail >= runMin) && tail * (up[j] as number) > s)
          s = tail * (up[j] as number);
        return s;
      };
      const ticks = Math.round(soakMs / walk.tickMs);
      for (let t = 0; t < ticks && !hit; t++) {
        if ((t + phase) % bucketTicks === 0 && n > 0) {
          for (let j = 0; j < k; j++) done[j] = cusum(j, false);
          n = 0;
          e = 0;
          tail = 0;
        }
        const errs = bad.sample(rng);
        const lines = errs + good.sample(rng);
        if (lines > 0) tail = errs === lines ? tail + lines : trailingRun(rng, lines, errs);
        n += errs + weight * (lines - errs);
        e += errs;
        if (e === 0) continue; // good attempts alone only lower every statistic
        for (let j = 0; j < k; j++) {
          if (cusum(j, true) >= (bounds[j] as number)) {
            hit = true;
            break;
          }
        }
      }
      if (hit) break;
    }
    if (hit) drained++;
  }
  return drained;
}
