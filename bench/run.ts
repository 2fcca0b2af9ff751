/**
 * `npm run bench`: prints the figures docs/design.md "Targets" asks for. Speed targets are met
 * here, never in a timed test.
 *
 * - access-log ingest: 1,000,000 lines parsed, attributed and windowed on one core;
 * - follower reads: the sidecar's CPU following an access log at 13,000 lines/s with a 50, 20 and 10 ms
 *   poll (bench/follow.ts), and so what one read costs;
 * - probe: the sidecar's CPU per synthetic probe (bench/probe.ts), the fixed cost of probe.interval;
 * - snapshot: the CPU of a snapshot and of a manifest of the config directory, on a copy of this
 *   machine's Debian /etc/nginx and on the test stack's directory (bench/snapshot.ts);
 * - apply latency median / p95 over 100 applies (50 steps, 50 drains) on the real nginx, beside bare
 *   `nginx -t` + `nginx -s reload` timed in the same run.
 */
import { benchIngest } from './ingest.js';
import { benchApply } from './apply.js';
import { benchFollowerReads } from './follow.js';
import { benchProbeCost } from './probe.js';
import { benchSnapshot } from './snapshot.js';

const ingest = await benchIngest(1_000_000);
console.log(
  `ingest: ${ingest.lines.toLocaleString('en')} lines in ${ingest.seconds.toFixed(2)} s = ${Math.round(ingest.linesPerSecond).toLocaleString('en')} lines/s (one core), rss ${ingest.rssMiB.toFixed(0)} MiB`,
);
const reads = await benchFollowerReads([50, 20, 10, 50, 20, 10]);
for (const r of reads)
  console.log(
    `follower reads: poll ${r.pollMs} ms at ${Math.round(r.linesPerS).toLocaleString('en')} lines/s: ${r.cpuMsPerS.toFixed(1)} ms CPU/s`,
  );
const mean = (ms: number): number => {
  const xs = reads.filter((r) => r.pollMs === ms).map((r) => r.cpuMsPerS);
  return xs.reduce((a, b) => a + b, 0) / xs.length;
};
console.log(
  `follower reads: one read costs ${(((mean(20) - mean(50)) / (1000 / 20 - 1000 / 50)) * 1000).toFixed(0)} µs (20 vs 50 ms), ` +
    `${(((mean(10) - mean(20)) / (1000 / 10 - 1000 / 20)) * 1000).toFixed(0)} µs (10 vs 20 ms)`,
);
for (const p of await benchProbeCost())
  console.log(
    `probe: ${p.probes.toLocaleString('en')} probes, one after another: ${p.cpuUsPerProbe.toFixed(0)} µs CPU and ${p.wallUsPerProbe.toFixed(0)} µs wall each`,
  );
for (const s of await benchSnapshot())
  console.log(
    `snapshot: ${s.layout} layout (${s.entries} files and links): take ${s.takeCpuMs.toFixed(2)} ms CPU, ` +
      `${s.takeWallMs.toFixed(2)} ms wall; manifest ${s.manifestCpuMs.toFixed(3)} ms CPU (twice per apply); ` +
      `event loop held up to ${s.loopMaxMs.toFixed(1)} ms`,
  );
const a = await benchApply(50);
console.log(
  `apply (snapshot + write + nginx -t + reload + /proc proof; the preflight nginx -t skipped while the directory is as last tested), ${a.applies} applies: median ${a.apply.median.toFixed(1)} ms, p95 ${a.apply.p95.toFixed(1)} ms`,
);
console.log(
  `bare nginx -t + nginx -s reload, same nginx, ${a.applies} runs:            median ${a.bare.median.toFixed(1)} ms, p95 ${a.bare.p95.toFixed(1)} ms`,
);
