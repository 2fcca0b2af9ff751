/**
 * `npm run bench:gates`: the simulation behind the error gate's sequential
 * test (docs/design.md "Gates" and "Targets"). Seeded; 10,000 simulated walks per case; the
 * sequential error test of src/rollout/sequential.ts beside two baselines run
 * on the same simulated traffic:
 * - naive: ratio over the judged span > threshold at every tick once ≥
 *   min_requests (200) attempts (the 0.1 gate);
 * - Flagger-style: every 60 s, the ratio over the last 60 s > threshold is a
 *   failed check; rollback after 1 failed check (`threshold: 1`); an interval
 *   without attempts counts as failed ("no values").
 *
 * Simulated deployment (bench/sim/cases.ts): 20 canary attempts/s (Poisson),
 * a gate tick every 0.5 s, the default 15 min window's 15 s buckets, a walk of
 * slice + 5 steps × 10 min soak, the judged span restarting at every weight
 * change (each soak is shorter than the window, so the span is never trimmed).
 *
 * Usage: `npm run bench:gates [-- --walks N --seed S]`. Targets (docs/design.md "Targets"):
 * ≤ 1 % false drains at a true 5xx ratio of threshold / 2; drain within 2 s of
 * an onset at 10 × threshold (the last part shows why that is out of reach).
 */
import { ERROR_TEST_ALPHA, ERROR_TEST_MULTIPLES, errorTestBound } from '../src/rollout/sequential.js';
import type { ErrorTestOptions } from '../src/rollout/sequential.js';
import { CASES, PARAMS, THRESHOLD, summarize } from './sim/cases.js';
import type { Summary } from './sim/cases.js';
import { FlaggerDetector, NaiveDetector, SequentialDetector, SeriesDetector } from './sim/detectors.js';
import type { Detector } from './sim/detectors.js';
import { binomialPmf } from './sim/prng.js';
import { runCase } from './sim/run.js';
import type { Outcome, Scenario, SimParams } from './sim/walk.js';

/** Reads `--name value` from argv, or the default. */
function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  return Number.isFinite(v) && v > 0 ? v : def;
}

const WALKS = arg('walks', 10_000);
const SEED = arg('seed', 3);
/** Walks of each case also replayed through `errorTest` itself on the rebuilt series. */
const VERIFY_WALKS = Math.min(WALKS, 200);
const MIN_REQUESTS = 200;
const CHOSEN: ErrorTestOptions = { alpha: ERROR_TEST_ALPHA, multiples: ERROR_TEST_MULTIPLES };

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

/** The multiples as `{2, 6}`. */
const set = (ms: readonly number[]): string => `{${ms.join(', ')}}`;

/** Right-pads or left-pads cells to fixed widths. */
function row(cells: readonly string[], widths: readonly number[], left = 2): string {
  return cells.map((c, i) => (i < left ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
}

const started = performance.now();
const mainDetectors = (p: SimParams): Detector[] => [
  new SequentialDetector(p.threshold, CHOSEN, 'sequential'),
  new NaiveDetector(p.threshold, MIN_REQUESTS),
  new FlaggerDetector(p.threshold, Math.round(60_000 / p.tickMs), 1),
];

/** Sweep around the chosen constants (same walks), to show what chose them. */
const SWEEP: [string, ErrorTestOptions][] = [
  ...[0.01, 0.003, 0.001, 0.0001].map((alpha): [string, ErrorTestOptions] => [
    `${alpha} ${set(ERROR_TEST_MULTIPLES)}`,
    { alpha, multiples: ERROR_TEST_MULTIPLES },
  ]),
  [`${ERROR_TEST_ALPHA} {2, 10}`, { alpha: ERROR_TEST_ALPHA, multiples: [2, 10] }],
  [`${ERROR_TEST_ALPHA} {10}`, { alpha: ERROR_TEST_ALPHA, multiples: [10] }],
];

console.log(`npm run bench:gates: error_ratio drain gate, seed ${SEED}, ${WALKS.toLocaleString('en')} walks per case`);
console.log(
  `traffic: canary ${PARAMS.ratePerS} attempts/s (Poisson), a gate tick every ${PARAMS.tickMs / 1000} s, threshold ${pct(THRESHOLD)}, ` +
    `window 15 min -> ${PARAMS.bucketMs / 1000} s buckets (grid at a random offset per walk);`,
);
console.log(
  `walk: slice + ${PARAMS.stages - 1} steps x ${PARAMS.stageMs / 60_000} min soak (${(PARAMS.stages * PARAMS.stageMs) / 60_000} min, ` +
    `${((PARAMS.ratePerS * PARAMS.stages * PARAMS.stageMs) / 1000).toLocaleString('en')} attempts); the judged span restarts at each weight change ` +
    `and is never trimmed (soak < window).`,
);
console.log(
  `onsets: at a step start (= the weight change), or mid-soak (5-6 min into the step after good traffic at thr/2); ` +
    `onset cases run from the step on (60 s of earlier traffic fill its first bucket) to the end of the walk.`,
);
console.log(
  `sequential: CUSUM of one-sided Bernoulli SPRTs, H0 p = thr vs H1 p = m x thr, m in ${set(ERROR_TEST_MULTIPLES)}, ` +
    `alpha ${ERROR_TEST_ALPHA} -> bound ln(${ERROR_TEST_MULTIPLES.length}/${ERROR_TEST_ALPHA}) = ${errorTestBound(ERROR_TEST_ALPHA, ERROR_TEST_MULTIPLES.length).toFixed(2)} (src/rollout/sequential.ts)`,
);
console.log(`naive:      span ratio > thr at every tick once >= ${MIN_REQUESTS} attempts (the 0.1 gate)`);
console.log(
  `flagger:    every 60 s, ratio over the last 60 s > thr is a failed check; rollback after 1 (no values = failed)`,
);
console.log('');

const W = [33, 10, 22, 7, 24, 20];
console.log(
  row(['case', 'rule', 'false drains (95% <=)', 'never', 'attempts to drain med/p95', 'seconds med/p95'], W, 2),
);
console.log('-'.repeat(W.reduce((a, b) => a + b + 2, -2)));

const summaries = new Map<string, Summary>();
const sweepResults = new Map<string, Outcome[][]>();
let verified = 0;
let agreed = 0;
for (const [ci, scenario] of CASES.entries()) {
  const seed = SEED * 1000 + ci;
  const sweep = SWEEP.map(([name, opts]) => new SequentialDetector(THRESHOLD, opts, name));
  const detectors = [...mainDetectors(PARAMS), ...sweep];
  const outcomes = runCase(PARAMS, scenario, detectors, WALKS, seed);
  sweepResults.set(scenario.name, outcomes.slice(3));
  // errorTest itself, on the series the gate would get, must agree tick for tick.
  const check = runCase(
    PARAMS,
    scenario,
    [new SequentialDetector(THRESHOLD, CHOSEN), new SeriesDetector(THRESHOLD, CHOSEN)],
    VERIFY_WALKS,
    seed,
  );
  for (let i = 0; i < VERIFY_WALKS; i++) {
    const [a, b] = [check[0]?.[i], check[1]?.[i]];
    verified++;
    if (a !== undefined && b !== undefined && Object.is(a.seconds, b.seconds) && a.falseDrain === b.falseDrain)
      agreed++;
  }
  detectors.slice(0, 3).forEach((d, i) => {
    const s = summarize(outcomes[i] ?? []);
    summaries.set(`${scenario.name}/${d.name}`, s);
    const k = Math.round(s.falseRate * s.walks);
    const noOnset = !scenario.hasOnset;
    console.log(
      row(
        [
          i === 0 ? scenario.name : '',
          d.name,
          `${pct(s.falseRate)} (${pct(wilsonUpper(k, s.walks))})`,
          noOnset ? '' : String(s.never),
          noOnset ? '' : `${s.medAttempts} / ${s.p95Attempts}`,
          noOnset ? '' : `${s.medSeconds} / ${s.p95Seconds}`,
        ],
        W,
        2,
      ),
    );
  });
}
console.log('');
console.log(
  `false drains: walks drained before the onset (or at all without onset). never: walks with an onset not drained by the end of the walk.`,
);
console.log(
  `attempts/seconds: from the onset to the end of the draining tick, over walks with no false drain ('never' counts as infinite).`,
);
console.log(
  `check: errorTest re-run on the rebuilt bucket series at every tick of the first ${VERIFY_WALKS} walks of each case: ` +
    `${agreed}/${verified} walks drain at the same tick as the incremental replay used above.`,
);

// What chose the constants: the same walks, other alphas and multiples.
console.log('');
console.log(
  `constants: the same walks under other (alpha, multiples); chosen: alpha ${ERROR_TEST_ALPHA}, m ${set(ERROR_TEST_MULTIPLES)}`,
);
const names = CASES.map((c) => c.name);
const SW = [18, 6, 11, 11, 22, 22, 14, 14];
console.log(
  row(
    [
      'alpha  multiples',
      'bound',
      'FD thr/2',
      'FD thr',
      '10x step s med/p95',
      '10x mid s med/p95',
      '4x mid s med',
      '2x mid s med',
    ],
    SW,
    1,
  ),
);
console.log('-'.repeat(SW.reduce((a, b) => a + b + 2, -2)));
SWEEP.forEach(([name, opts], j) => {
  const get = (ci: number): Summary => summarize(sweepResults.get(names[ci] as string)?.[j] ?? []);
  const [fd, fdThr, step, mid, x4, x2] = [0, 1, 2, 3, 4, 5].map(get);
  console.log(
    row(
      [
        name,
        errorTestBound(opts.alpha, opts.multiples.length).toFixed(2),
        pct(fd?.falseRate ?? NaN),
        pct(fdThr?.falseRate ?? NaN),
        `${step?.medSeconds} / ${step?.p95Seconds}`,
        `${mid?.medSeconds} / ${mid?.p95Seconds}`,
        x4?.medSeconds ?? '',
        x2?.medSeconds ?? '',
      ],
      SW,
      1,
    ),
  );
});

// Bucket width: what the 15 s buckets cost, on the same traffic with 1 s buckets.
console.log('');
console.log(`bucket width (same walks, 1 s buckets instead of the window's 15 s; not what the real window gives):`);
const fine: SimParams = { ...PARAMS, bucketMs: 1000 };
const BW = [24, 11, 22, 22];
console.log(row(['bucket  alpha', 'FD thr/2', '10x step s med/p95', '10x mid s med/p95'], BW, 1));
console.log('-'.repeat(BW.reduce((a, b) => a + b + 2, -2)));
for (const [bucketMs, alpha] of [
  [15_000, ERROR_TEST_ALPHA],
  [1000, ERROR_TEST_ALPHA],
  [1000, ERROR_TEST_ALPHA / 10],
] as const) {
  const p = bucketMs === 1000 ? fine : PARAMS;
  const det = [new SequentialDetector(THRESHOLD, { alpha, multiples: ERROR_TEST_MULTIPLES })];
  const fd = summarize(runCase(p, CASES[0] as Scenario, det, WALKS, SEED * 1000)[0] ?? []);
  const step = summarize(runCase(p, CASES[2] as Scenario, det, WALKS, SEED * 1000 + 2)[0] ?? []);
  const mid = summarize(runCase(p, CASES[3] as Scenario, det, WALKS, SEED * 1000 + 3)[0] ?? []);
  console.log(
    row(
      [
        `${bucketMs / 1000} s  ${alpha}`,
        pct(fd.falseRate),
        `${step.medSeconds} / ${step.p95Seconds}`,
        `${mid.medSeconds} / ${mid.p95Seconds}`,
      ],
      BW,
      1,
    ),
  );
}

// The 2 s target, in numbers.
const p10 = 10 * THRESHOLD;
const n40 = Math.round(2 * PARAMS.ratePerS);
const cdf = (k: number, n: number, p: number): number => {
  let f = 0;
  for (let j = 0; j <= k; j++) f += binomialPmf(n, j, p);
  return f;
};
const none = binomialPmf(n40, 0, p10);
const atLeast3 = 1 - cdf(2, n40, p10);
const exactly2 = binomialPmf(n40, 2, p10);
const share = (0.5 - atLeast3) / exactly2;
const null2 = binomialPmf(n40, 2, THRESHOLD / 2);
const runs = (PARAMS.ratePerS * PARAMS.stages * PARAMS.stageMs) / 1000 / n40;
const survive = Math.exp(runs * Math.log1p(-share * null2));
console.log('');
console.log(
  `why "drain within 2 s of onset at 10x" (${n40} attempts at ${PARAMS.ratePerS}/s, p = ${pct(p10, 1)}) is out of reach:`,
);
console.log(
  `- p95: P(0 errors in the first ${n40} attempts) = ${pct(none, 1)} > 5 %, so no rule that needs to see an error drains within 2 s in 95 % of onsets.`,
);
console.log(
  `- median: P(>= 3 errors in ${n40}) = ${pct(atLeast3, 1)} < 50 %, so a median <= 2 s must drain on runs of ${n40} with <= 2 errors. ` +
    `Every such run with 2 errors has the same likelihood ratio (Bernoulli runs are exchangeable), so the rule must drain on a share ` +
    `f >= (0.5 - ${atLeast3.toFixed(3)}) / ${exactly2.toFixed(3)} = ${share.toFixed(2)} of them. At thr/2 a run of ${n40} holds exactly 2 errors with ` +
    `probability ${pct(null2)}; the walk holds ${runs.toLocaleString('en')} disjoint runs: P(no false drain) <= (1 - ${share.toFixed(2)} x ${null2.toFixed(4)})^${runs} ` +
    `= ${pct(survive, 1)}, i.e. >= ${pct(1 - survive, 1)} false drains.`,
);
console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s)`);
