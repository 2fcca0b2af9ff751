/**
 * Apply latency on the real nginx: 50 applies through the one safe path
 * (disk guard → preflight nginx -t → snapshot → write → nginx -t → reload →
 * proof of the new generation) beside 50 bare `nginx -t` + `nginx -s reload`
 * timed in the same run on the same nginx. Figures only; no pass/fail.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { systemClock } from '../src/clock.js';
import { Applier } from '../src/nginx/apply.js';
import { NginxCommand } from '../src/nginx/ctl.js';
import { statfsDisk } from '../src/nginx/disk.js';
import { SnapshotStore } from '../src/nginx/snapshot.js';
import { waitFor } from '../src/util/wait.js';
import { startStack } from '../test/fixtures/stack.js';

const run = promisify(execFile);

/** Median and p95 of a list of ms. */
export function quantiles(ms: number[]): { median: number; p95: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
  return { median: at(0.5), p95: at(0.95) };
}

/** What {@link benchApply} measured, ms. */
export interface ApplyBench {
  applies: number;
  apply: { median: number; p95: number };
  bare: { median: number; p95: number };
}

/** Runs `n` applies and `n` bare test+reload cycles on one nginx in a temp dir. */
export async function benchApply(n = 50): Promise<ApplyBench> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nginx-canary-bench-'));
  const teardowns: (() => unknown)[] = [];
  const stack = await startStack(
    { teardown: (fn) => teardowns.push(fn) },
    { dir, target: 50, minReloadInterval: '100ms' },
  );
  const config = stack.config;
  try {
    const ctl = new NginxCommand(config.nginx);
    const snapshots = new SnapshotStore(
      config.nginx.snapshots.dir,
      config.nginx.snapshots.keep,
      config.nginx,
      systemClock,
    );
    const applier = new Applier({ config, ctl, disk: statfsDisk, snapshots, clock: systemClock });
    const applyMs: number[] = [];
    for (let i = 1; i <= n; i++) {
      // Retried every 20 ms while min_reload_interval (100 ms) holds the apply back at stage `interval`;
      // any other failure ends the bench.
      const res = await waitFor(
        async () => {
          const r = await applier.apply({ weights: { gateway: i % 2 ? 10 : 20 }, generation: i, reason: 'bench' });
          return r.ok || r.stage !== 'interval' ? r : null;
        },
        { timeoutMs: 2000, intervalMs: 20, what: `apply ${i} past min_reload_interval` },
      );
      if (!res.ok) throw new Error(`bench apply failed at ${res.stage}: ${res.error.message}`);
      applyMs.push(res.durationMs);
    }
    const base = ['-p', config.nginx.prefix ?? dir, '-c', config.nginx.conf];
    const bareMs: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await run(config.nginx.binary, [...base, '-t', '-q']);
      await run(config.nginx.binary, [...base, '-s', 'reload']);
      bareMs.push(performance.now() - t0);
    }
    return { applies: n, apply: quantiles(applyMs), bare: quantiles(bareMs) };
  } finally {
    for (const fn of teardowns.reverse()) await fn();
    await rm(dir, { recursive: true, force: true });
  }
}
