/**
 * Exploration behind the constants of src/rollout/sequential.ts: the
 * bench/gates.ts cases for several (alpha, multiples) at once, on the same
 * traffic. `npx tsx bench/sim/tune.ts [walks] [bucketMs]` (default 2,000 walks, 15 s buckets).
 */
import { NaiveDetector, SequentialDetector } from './detectors.js';
import { CASES, PARAMS, summarize } from './cases.js';
import { runCase } from './run.js';

const walks = Number(process.argv[2] ?? 2000);
const params = { ...PARAMS, bucketMs: Number(process.argv[3] ?? PARAMS.bucketMs) };
const fromEnv = process.env['TUNE_CONFIGS'];
const only = process.env['TUNE_CASES']?.split(',').map(Number);
const configs: [number, number[]][] =
  fromEnv !== undefined
    ? (JSON.parse(fromEnv) as [number, number[]][])
    : [
        [0.01, [2, 10]],
        [0.003, [2, 10]],
        [0.002, [2, 10]],
        [0.001, [2, 10]],
        [0.0001, [2, 10]],
        [0.002, [2, 20]],
        [0.002, [2, 5, 20]],
        [0.002, [1.5, 10]],
        [0.002, [2, 8]],
        [0.002, [2, 12]],
        [0.002, [10]],
      ];
const detectors = [
  ...configs.map(
    ([alpha, multiples]) =>
      new SequentialDetector(params.threshold, { alpha, multiples }, `a=${alpha} m=${multiples.join(',')}`),
  ),
  new NaiveDetector(params.threshold, 200),
];
for (const [ci, scenario] of CASES.entries()) {
  if (only !== undefined && !only.includes(ci)) continue;
  const started = performance.now();
  const outcomes = runCase(params, scenario, detectors, walks, ci + 1);
  console.log(`${scenario.name}  (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  detectors.forEach((d, i) => {
    const s = summarize(outcomes[i] ?? []);
    console.log(
      `  ${d.name.padEnd(22)} false ${(100 * s.falseRate).toFixed(2).padStart(6)} %  med ${s.medAttempts.padStart(6)}  p95 ${s.p95Attempts.padStart(6)}  med s ${s.medSeconds.padStart(6)}  p95 s ${s.p95Seconds.padStart(6)}  never ${s.never}`,
    );
  });
}
