/**
 * `npm run bench`, "snapshot": what the apply path's reads of the config directory cost, on two layouts:
 * a copy of this machine's Debian `/etc/nginx` (test/fixtures/debian/host.ts; skipped when the machine
 * has none) and the directory test/fixtures/stack.ts builds (the repo's nginx.conf, conf.d, the include). Per
 * layout, medians over `n` calls after `warmup` uncounted ones:
 *
 * - a snapshot (src/nginx/snapshot.ts `SnapshotStore.take`: walk, tarball, the tarball parsed back,
 *   manifest written, old snapshots pruned at keep 20), CPU and wall;
 * - a manifest of the directory with a memo (`manifestOf`, as the applier asks twice per apply: one
 *   lstat per file, no file read again), CPU;
 * - the longest the event loop waited during the snapshots (they read the directory with synchronous
 *   calls: README "Decisions"), from `monitorEventLoopDelay` at 1 ms resolution.
 *
 * CPU is this process's user + system, all threads (`process.cpuUsage()`). Bounded: 2 × (n + warmup)
 * snapshots and manifests per layout, in temp dirs removed at the end.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { systemClock } from '../src/clock.js';
import { manifestOf, SnapshotStore, type ManifestMemo } from '../src/nginx/snapshot.js';
import { copyDebianNginx } from '../test/fixtures/debian/host.js';
import { repoRoot } from '../test/fixtures/stack.js';
import { cpuMs, quantiles } from './apply.js';

/** The figures of one layout; every time in ms. */
export interface SnapshotCost {
  /** `debian` (a copy of /etc/nginx) or `stack` (the test stack's three files). */
  layout: string;
  /** Files and links a manifest of the config directory lists (directories are not counted). */
  entries: number;
  /** CPU per snapshot (take), median. */
  takeCpuMs: number;
  /** Wall time per snapshot, median. */
  takeWallMs: number;
  /** CPU per manifest with a warm memo, median. */
  manifestCpuMs: number;
  /** Longest event-loop delay seen while the snapshots ran. */
  loopMaxMs: number;
}

async function measure(layout: string, confDir: string, n: number, warmup: number): Promise<SnapshotCost> {
  const snaps = await mkdtemp(path.join(tmpdir(), 'nginx-canary-bench-snaps-'));
  try {
    const store = new SnapshotStore(snaps, 20, confDir, systemClock);
    const loop = monitorEventLoopDelay({ resolution: 1 });
    const take = { cpu: [] as number[], wall: [] as number[] };
    for (let i = 0; i < warmup + n; i++) {
      if (i === warmup) loop.enable();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await store.take({ generation: i + 1, weights: { gateway: i % 100 }, reason: 'bench' });
      if (i < warmup) continue;
      take.wall.push(performance.now() - t0);
      take.cpu.push(cpuMs(process.cpuUsage(c0)));
    }
    loop.disable();
    const memo: ManifestMemo = new Map();
    const manifest: number[] = [];
    let entries = 0;
    for (let i = 0; i < warmup + n; i++) {
      const c0 = process.cpuUsage();
      entries = manifestOf(confDir, [snaps], memo).length;
      if (i >= warmup) manifest.push(cpuMs(process.cpuUsage(c0)));
    }
    return {
      layout,
      entries,
      takeCpuMs: quantiles(take.cpu).median,
      takeWallMs: quantiles(take.wall).median,
      manifestCpuMs: quantiles(manifest).median,
      loopMaxMs: loop.max / 1e6,
    };
  } finally {
    await rm(snaps, { recursive: true, force: true });
  }
}

/**
 * Measures both layouts (see the file comment); the Debian one only where `/etc/nginx/nginx.conf` exists.
 * `entries` counts the files and links a manifest lists. Throws the fs error when a temp dir cannot be made.
 */
export async function benchSnapshot(n = 100, warmup = 20): Promise<SnapshotCost[]> {
  const root = await mkdtemp(path.join(tmpdir(), 'nginx-canary-bench-layouts-'));
  try {
    const out: SnapshotCost[] = [];
    // Port 1: the default site's listen line is moved to loopback; nothing here starts nginx.
    const debian = await copyDebianNginx(path.join(root, 'debian'), 1);
    if (debian !== null) out.push(await measure('debian', debian.etcNginx, n, warmup));
    const stack = path.join(root, 'stack', 'conf');
    await mkdir(path.join(stack, 'conf.d'), { recursive: true });
    await copyFile(path.join(repoRoot, 'nginx', 'nginx.conf'), path.join(stack, 'nginx.conf'));
    await writeFile(path.join(stack, 'conf.d', 'nginx-canary.conf'), `# generation 1\n${'#'.repeat(2000)}\n`);
    out.push(await measure('stack', stack, n, warmup));
    return out;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
