/**
 * `npm run bench`, "follower reads": what one access-log read costs the sidecar while lines flow, so the
 * follower's poll period (main.ts ACCESS_LOG_POLL_MS, observe/follow.ts HURRY_POLL_MS) is chosen by
 * measurement (issue 13). A child process appends `rate` lines/s of 250 bytes (about what nginx writes
 * at nginx's saturation in `npm run bench:walk`) to a file in a temp dir; this process follows it with a
 * LogFollower per poll period in turn, on the byte path with a consumer that only counts lines, and
 * measures its own CPU (process.cpuUsage: user + system) over `seconds`. CPU per extra read is the
 * difference between two periods over the difference of their reads per second. Bounded: the writer
 * stops after `seconds` + 3 s, and is killed by pid at the end. The first period runs once more before
 * the others and is not reported (warm-up).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LogFollower } from '../src/observe/follow.js';
import { waitFor } from '../src/util/wait.js';

/** One poll period's figures. */
export interface FollowerReadCost {
  pollMs: number;
  /** This process's CPU per second of wall time, ms/s. */
  cpuMsPerS: number;
  /** Lines the follower delivered per second. */
  linesPerS: number;
}

/** The writer: `rate` lines/s of 250 bytes appended to argv[1] for argv[3] s (plain node, no TypeScript). */
const WRITER = `
const fs = require('node:fs');
const fd = fs.openSync(process.argv[1], 'a');
const rate = Number(process.argv[2]) / 1000, ms = Number(process.argv[3]) * 1000;
const line = Buffer.from('x'.repeat(249) + '\\n');
const t0 = performance.now(); let n = 0;
(function tick() {
  const now = performance.now() - t0;
  for (const want = Math.floor(now * rate); n < want; n++) fs.writeSync(fd, line);
  if (now < ms) setTimeout(tick, 1); else process.exit(0);
})();`;

/**
 * Measures {@link FollowerReadCost} for each of `pollsMs` (ms > 0), `seconds` (s) each at `rate` lines/s.
 * Throws when the follower falls behind the writer by more than a second of lines.
 */
export async function benchFollowerReads(
  pollsMs: readonly number[],
  rate = 13_000,
  seconds = 8,
): Promise<FollowerReadCost[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nginx-canary-bench-follow-'));
  const out: FollowerReadCost[] = [];
  try {
    // The first period once more up front, dropped: JIT compilation and the module loads land there.
    for (const [k, pollMs] of [pollsMs[0] ?? 50, ...pollsMs].entries()) {
      const file = path.join(dir, `access-${pollMs}.log`);
      await writeFile(file, '');
      let lines = 0;
      const f = new LogFollower({
        file,
        pollMs,
        onBytes: (buf, start, end) => {
          lines++;
          for (let i = buf.indexOf(10, start); i >= 0 && i < end; i = buf.indexOf(10, i + 1)) lines++;
        },
      });
      await f.start();
      const writer = spawn(process.execPath, ['-e', WRITER, file, String(rate), String(seconds + 3)], {
        stdio: 'ignore',
      });
      try {
        await waitFor(() => lines > rate / 2, { timeoutMs: 5000, what: 'the first lines' });
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const l0 = lines;
        await new Promise((r) => setTimeout(r, seconds * 1000));
        const c = process.cpuUsage(c0);
        const s = (performance.now() - t0) / 1000;
        const linesPerS = (lines - l0) / s;
        if (linesPerS < rate * (1 - 1 / seconds)) throw new Error(`the follower fell behind: ${linesPerS} lines/s`);
        if (k > 0) out.push({ pollMs, cpuMsPerS: (c.user + c.system) / 1000 / s, linesPerS });
      } finally {
        writer.kill('SIGKILL');
        await f.stop();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
