/**
 * `npm run bench:gates`: the `error_ratio` drain gate (src/rollout/sequential.ts)
 * against its targets and against the detection floor (docs/design.md
 * "Gates"). Seeded simulation, printed beside exact calculations:
 *
 * 1. Calibration: each alternative's bound for the default walk (48 h slice
 *    soak + 5 steps × 15 min from 5 to 50, 1 s series buckets: 177,300 start
 *    points) and the guarantee it gives at half the threshold (1 %).
 * 2. False drains per default walk, simulated whole (bench/sim/longwalk.ts)
 *    at threshold / 2 (target ≤ 1 %) and at the threshold itself (reported),
 *    for one host at 20 canary attempts/s and the fleet case (5 hosts × 20/s
 *    pooled by the leader: one 100/s series on the shared bucket grid).
 * 3. Drain delay after an onset mid-soak at 2 ×, 10 × and 100 % errors (and
 *    10 × at a weight change), median and p95 in seconds from the onset to the
 *    end of the draining tick (0.5 s ticks), beside the floor: the exact delay
 *    distribution of the optimal single CUSUM matched to the case's error
 *    rate and tuned to the same false-drain constraint (bench/sim/floor.ts:
 *    a Markov chain iterated exactly; nothing copied in), and measured / floor.
 * 4. A check that the incremental replay used above drains at the same tick
 *    as `errorTest` itself on the rebuilt series.
 *
 * A sampled access log (`--sample-weight W` or BENCH_GATES_SAMPLE_WEIGHT=W,
 * W ≥ 1, default 1: every line): the simulated follower sees every failure
 * and each success with probability 1/W, counting a logged success as W
 * attempts, and the bounds and run minimum are calibrated at W
 * (src/rollout/sequential.ts `ErrorTestOptions.sampleWeight`). The floor
 * stays the unsampled one (what a full log allows).
 *
 * Usage: `npm run bench:gates [-- --walks N --long-walks N --seed S --sample-weight W]`.
 * Exit code 1 when the simulated false-drain share at threshold / 2 is over
 * 1 % (the calibration guarantees it is not), else 0.
 */
import {
  calibrateBounds,
  CURRENT_RUN_SHARE,
  currentRunMinimum,
  DEFAULT_START_POINTS,
  ERROR_TEST_MULTIPLES,
  FALSE_DRAIN_BUDGET,
  falseDrainBound,
  HEALTHY_FRACTION,
  walkExposureMs,
  walkStartPoints,
} from '../src/rollout/sequential.js';
import { seriesWidthMs } from '../src/observe/window.js';
import { CASES, PARAMS, THRESHOLD, summarize } from './sim/cases.js';
import { SequentialDetector, SeriesDetector } from './sim/detectors.js';
import { floorOf } from './sim/floor.js';
import { falseDrains } from './sim/longwalk.js';
import { runCase } from './sim/run.js';
import type { SimParams } from './sim/walk.js';

/** Reads `--name value` from argv, or the default. */
function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  return Number.isFinite(v) && v > 0 ? v : def;
}

const WALKS = arg('walks', 4000);
const LONG_WALKS = arg('long-walks', 1000);
const SEED = arg('seed', 3);
const VERIFY_WALKS = Math.min(WALKS, 100);

/** The access log's sample weight: `--sample-weight W`, else BENCH_GATES_SAMPLE_WEIGHT, else 1; below 1 or invalid: 1. */
function sampleWeightArg(): number {
  const env = Number(process.env['BENCH_GATES_SAMPLE_WEIGHT'] ?? 1);
  const w = arg('sample-weight', Number.isFinite(env) && env >= 1 ? env : 1);
  return w >= 1 ? w : 1;
}
const SAMPLE_WEIGHT = sampleWeightArg();

/** Percent with `d` decimals. */
const pct = (x: number, d = 2): string => `${(100 * x).toFixed(d)} %`;

/** Upper end of the 95 % Wilson score interval of k successes in n trials (Wilson 1927). */
function wilsonUpper(k: number, n: number): number {
  const z = 1.96;
  const p = k / n;
  const c = p + (z * z) / (2 * n);
  const r = z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  return (c + r) / (1 + (z * z) / n);
}

/** Left-pads cells to fixed widths (the first `left` cells right-padded). */
function row(cells: readonly string[], widths: readonly number[], left = 1): string {
  return cells.map((c, i) => (i < left ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
}

const started = performance.now();
const WINDOW_MS = 15 * 60_000;
/** The default walk of the issue and docs/design.md "Gates": 48 h slice soak, 15 min steps, 5 → 50. */
const WALK = { slice: 5, sliceSoakMs: 48 * 3_600_000, step: 10, stepSoakMs: 15 * 60_000, target: 50 };
const exposureMs = walkExposureMs(WALK, WINDOW_MS);
const startPoints = walkStartPoints(exposureMs, seriesWidthMs(WINDOW_MS));
const alts = calibrateBounds(THRESHOLD, startPoints, FALSE_DRAIN_BUDGET, ERROR_TEST_MULTIPLES, SAMPLE_WEIGHT);
const healthy = THRESHOLD * HEALTHY_FRACTION;
/** The failure ratio among logged lines at the healthy ratio (= healthy unsampled). */
const healthyLogged = SAMPLE_WEIGHT === 1 ? healthy : healthy / (healthy + (1 - healthy) / SAMPLE_WEIGHT);
/** The shortest trailing run the bucket being filled counts from, at `rate` canary attempts/s over the walk. */
const runMinAt = (rate: number): number =>
  currentRunMinimum(
    THRESHOLD,
    (rate * exposureMs) / 1000,
    FALSE_DRAIN_BUDGET,
    ERROR_TEST_MULTIPLES.length,
    SAMPLE_WEIGHT,
  );
/** 5xx in a row that reach some alternative's bound (from a bucket boundary or a complete bucket's trailing run). */
const toCross = Math.min(...alts.map((a) => Math.ceil(a.bound / Math.log(a.p1 / THRESHOLD))));
const soaksMs = [WALK.sliceSoakMs, ...Array.from({ length: 5 }, () => WALK.stepSoakMs)];

console.log(
  `npm run bench:gates: the error_ratio drain gate, seed ${SEED}, sample weight ${SAMPLE_WEIGHT}` +
    (SAMPLE_WEIGHT === 1
      ? ' (every access-log line)'
      : ` (failures always logged, successes 1 in ${SAMPLE_WEIGHT}, each counted ${SAMPLE_WEIGHT} times)`),
);
console.log(
  `default walk: ${exposureMs / 3_600_000} h watched (48 h slice soak + 5 steps x 15 min, 5 -> 50), window 15 min -> ` +
    `${seriesWidthMs(WINDOW_MS) / 1000} s series buckets: ${startPoints.toLocaleString('en')} start points` +
    (startPoints === DEFAULT_START_POINTS ? ' (DEFAULT_START_POINTS)' : ' (NOT DEFAULT_START_POINTS)'),
);
console.log(
  `threshold ${pct(THRESHOLD, 1)}, healthy canary at ${pct(healthy, 2)} (x${HEALTHY_FRACTION}), budget ${pct(FALSE_DRAIN_BUDGET, 0)} ` +
    `false drains per walk; ticks every ${PARAMS.tickMs / 1000} s`,
);
console.log('');
console.log(
  `1. calibrated bounds at sample weight ${SAMPLE_WEIGHT} (src/rollout/sequential.ts calibrateBounds: h = ln(K n (1 + c) / (s budget)) / theta; c = tailCost and s = 1 - CURRENT_RUN_SHARE for the alternative that also starts at trailing 5xx runs, else c = 0, s = 1)`,
);
const CW = [10, 10, 12, 8, 22, 16];
console.log(row(['multiple', 'p1', 'theta', 'bound', '5xx in a row to cross', 'trailing runs'], CW));
for (const a of alts) {
  const perError = Math.log(a.p1 / THRESHOLD);
  console.log(
    row(
      [
        `${a.multiple}x`,
        pct(a.p1, 2),
        a.theta.toFixed(4),
        a.bound.toFixed(2),
        String(Math.ceil(a.bound / perError)),
        a.tails ? 'yes' : 'no',
      ],
      CW,
    ),
  );
}
if (SAMPLE_WEIGHT !== 1) {
  console.log(
    `unsampled (sample weight 1) for comparison: bounds ${calibrateBounds(THRESHOLD, startPoints)
      .map((a) => `${a.multiple}x ${a.bound.toFixed(2)}`)
      .join(', ')}`,
  );
}
const W = SAMPLE_WEIGHT;
console.log(
  `guarantee (Ville + Boole): P(false drain per walk) <= ${pct(falseDrainBound(alts, THRESHOLD, healthy, startPoints, W))} ` +
    `at ${pct(healthy)}; ${pct(falseDrainBound(alts, THRESHOLD, healthy / 2, startPoints, W), 4)} at ${pct(healthy / 2)}; ` +
    `at the threshold itself no guarantee (bound ${pct(falseDrainBound(alts, THRESHOLD, THRESHOLD * 0.999999, startPoints, W), 0)}).`,
);
console.log(
  `  plus runs inside the bucket being filled (sequential.ts currentRunMinimum, at most ${pct((CURRENT_RUN_SHARE * FALSE_DRAIN_BUDGET) / alts.length, 3)}): ` +
    [20, 100, 1000]
      .map((rate) => {
        const n = (rate * exposureMs) / 1000;
        const r = runMinAt(rate);
        // Boole over the attempts: a 5xx there beginning r logged 5xx in a row, p q^(r - 1) (q = p unsampled).
        return `${rate}/s: runs of ${r}, ${pct(n * healthy * healthyLogged ** (r - 1), 4)}`;
      })
      .join('; '),
);
console.log(
  `canary answering only 5xx (sample weight ${SAMPLE_WEIGHT}): crosses on its ${toCross}th 5xx in a row across buckets or once its bucket is complete; ` +
    `inside the bucket being filled on its ${Math.max(toCross, runMinAt(20))}th at 20/s, ${Math.max(toCross, runMinAt(100))}th at 100/s (the run minimum).`,
);

// 2. False drains over whole default walks.
console.log('');
console.log(
  `2. false drains per default walk (${LONG_WALKS.toLocaleString('en')} simulated walks each, the whole 49.25 h; upper estimates, see bench/sim/longwalk.ts)`,
);
const FW = [28, 10, 22, 12, 8];
console.log(row(['case', 'true 5xx', 'false drains (95% <=)', 'target', ''], FW));
let failed = false;
const RATES: readonly [string, number][] = [
  ['1 host, 20 attempts/s', 20],
  ['fleet 5 x 20 attempts/s', 100],
];
for (const [ri, [label, rate]] of RATES.entries()) {
  for (const [pi, p] of [healthy, THRESHOLD].entries()) {
    const walk = {
      ratePerS: rate,
      tickMs: PARAMS.tickMs,
      bucketMs: seriesWidthMs(WINDOW_MS),
      soaksMs,
      sampleWeight: SAMPLE_WEIGHT,
    };
    const runMin = runMinAt(rate);
    const k = falseDrains(walk, THRESHOLD, alts, p, LONG_WALKS, SEED * 100 + ri * 10 + pi, runMin);
    const share = k / LONG_WALKS;
    const atHealthy = pi === 0;
    const ok = !atHealthy || share <= FALSE_DRAIN_BUDGET;
    if (!ok) failed = true;
    console.log(
      row(
        [
          pi === 0 ? label : '',
          pct(p, 2),
          `${pct(share)} (${pct(wilsonUpper(k, LONG_WALKS))})`,
          atHealthy ? '<= 1 %' : 'reported',
          atHealthy ? (ok ? 'ok' : 'NOT OK') : '',
        ],
        FW,
      ),
    );
  }
}

// 3. Delays against the floor.
console.log('');
console.log(
  `3. drain delay after an onset (${WALKS.toLocaleString('en')} walks per case; onset 5-6 min into a 15 min step after good traffic at ${pct(healthy)}), ` +
    `seconds from the onset to the end of the draining tick, against the floor (bench/sim/floor.ts)`,
);
const DW = [28, 20, 14, 18, 16, 22];
console.log(
  row(['case', 'measured med / p95', 'never drained', 'floor med / p95', 'measured/floor', 'attempts med / p95'], DW),
);
let verified = 0;
let agreed = 0;
for (const [ri, [, rate]] of RATES.entries()) {
  const params: SimParams = { ...PARAMS, ratePerS: rate, sampleWeight: SAMPLE_WEIGHT };
  for (const [ci, scenario] of CASES.entries()) {
    const seed = SEED * 1000 + ri * 100 + ci;
    // The gate's own estimate: the attempt rate times the exposure (rollout/gates.ts).
    const walkAttempts = (rate * exposureMs) / 1000;
    const runMin = runMinAt(rate);
    const [outcomes] = runCase(
      params,
      scenario,
      [new SequentialDetector(THRESHOLD, alts, 'sequential', runMin)],
      WALKS,
      seed,
    );
    const s = summarize(outcomes ?? []);
    const floor = floorOf({
      threshold: THRESHOLD,
      healthy,
      bad: scenario.bad,
      walkAttempts: (rate * exposureMs) / 1000,
      budget: FALSE_DRAIN_BUDGET,
      ratePerS: rate,
    });
    const ratio = (m: string, f: number): string => (Number.isFinite(Number(m)) ? (Number(m) / f).toFixed(2) : '—');
    console.log(
      row(
        [
          `${scenario.name}${ri === 1 ? ' (fleet)' : ''}`,
          `${s.medSeconds} / ${s.p95Seconds}`,
          String(s.never),
          `${floor.seconds.median.toFixed(2)} / ${floor.seconds.p95.toFixed(2)}`,
          `${ratio(s.medSeconds, floor.seconds.median)} / ${ratio(s.p95Seconds, floor.seconds.p95)}`,
          `${s.medAttempts} / ${s.p95Attempts}`,
        ],
        DW,
      ),
    );
    if (ri === 0) {
      // errorTest itself, on the series the gate would get, must agree tick for tick.
      const opts = { startPoints, walkAttempts, sampleWeight: SAMPLE_WEIGHT };
      const check = runCase(
        params,
        scenario,
        [new SequentialDetector(THRESHOLD, alts, 'sequential', runMin), new SeriesDetector(THRESHOLD, opts)],
        VERIFY_WALKS,
        seed,
      );
      for (let i = 0; i < VERIFY_WALKS; i++) {
        const [a, b] = [check[0]?.[i], check[1]?.[i]];
        verified++;
        if (a !== undefined && b !== undefined && Object.is(a.seconds, b.seconds) && a.falseDrain === b.falseDrain)
          agreed++;
      }
    }
  }
}
console.log('');
console.log(
  `floor: Page's CUSUM of H1 = the case's ratio vs H0 = threshold, per attempt, bound tuned so that P(false drain per default walk at ${pct(healthy)}) <= 1 %, ` +
    `exact (lattice Markov chain) on the unsampled stream; no ticks, no buckets. The measured gate judges every ${PARAMS.tickMs / 1000} s on 1 s buckets with ${ERROR_TEST_MULTIPLES.length} alternatives ` +
    `(m in {${ERROR_TEST_MULTIPLES.join(', ')}}) under one union-bounded budget.`,
);
console.log(
  `check: errorTest re-run on the rebuilt series at every tick of the first ${VERIFY_WALKS} walks of each 1-host case: ` +
    `${agreed}/${verified} walks drain at the same tick as the incremental replay used above.`,
);
if (agreed !== verified) failed = true;
console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s)`);
process.exitCode = failed ? 1 : 0;
