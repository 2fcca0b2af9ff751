/**
 * `npm run bench`: prints the figures docs/design.md "Targets" asks for. Speed targets are met
 * here, never in a timed test.
 *
 * - access-log ingest: 1,000,000 lines parsed, attributed and windowed on one core;
 * - apply latency median / p95 over 100 applies (50 steps, 50 drains) on the real nginx, beside bare
 *   `nginx -t` + `nginx -s reload` timed in the same run.
 */
import { benchIngest } from './ingest.js';
import { benchApply } from './apply.js';

const ingest = await benchIngest(1_000_000);
console.log(
  `ingest: ${ingest.lines.toLocaleString('en')} lines in ${ingest.seconds.toFixed(2)} s = ${Math.round(ingest.linesPerSecond).toLocaleString('en')} lines/s (one core), rss ${ingest.rssMiB.toFixed(0)} MiB`,
);
const a = await benchApply(50);
console.log(
  `apply (snapshot + write + nginx -t + reload + /proc proof; the preflight nginx -t skipped while the directory is as last tested), ${a.applies} applies: median ${a.apply.median.toFixed(1)} ms, p95 ${a.apply.p95.toFixed(1)} ms`,
);
console.log(
  `bare nginx -t + nginx -s reload, same nginx, ${a.applies} runs:            median ${a.bare.median.toFixed(1)} ms, p95 ${a.bare.p95.toFixed(1)} ms`,
);
