/**
 * Apply latency on the real nginx: 50 applies through the one safe path
 * (disk guard → preflight nginx -t → snapshot → write → nginx -t → reload →
 * proof of the new generation) beside 50 bare `nginx -t` + `nginx -s reload`
 * timed in the same run on the same nginx. Figures only; no pass/fail.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { systemClock } from '../src/clock.js';
import { loadConfig } from '../src/config/load.js';
import { Backend } from '../src/demo/backend.js';
import { Applier } from '../src/nginx/apply.js';
import { NginxCommand } from '../src/nginx/ctl.js';
import { statfsDisk } from '../src/nginx/disk.js';
import { buildModel } from '../src/nginx/model.js';
import { startNginx } from '../src/nginx/process.js';
import { renderUpstreams } from '../src/nginx/render.js';
import { SnapshotStore } from '../src/nginx/snapshot.js';
import { freePort, weightsYaml, repoRoot } from '../test/fixtures/stack.js';
import { readFile, mkdir } from 'node:fs/promises';

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
  const primary = await Backend.start({ name: 'primary' });
  const canary = await Backend.start({ name: 'canary' });
  const nginxPort = await freePort();
  await mkdir(path.join(dir, 'conf', 'conf.d'), { recursive: true });
  const conf = (await readFile(path.join(repoRoot, 'nginx', 'nginx.conf'), 'utf8')).replace('listen 127.0.0.1:18080;', `listen 127.0.0.1:${nginxPort};`);
  await writeFile(path.join(dir, 'conf', 'nginx.conf'), conf);
  const file = path.join(dir, 'weights.yaml');
  await writeFile(
    file,
    weightsYaml({
      nginxPort,
      statusPort: await freePort(),
      apiPort: await freePort(),
      primary: primary.addr,
      canary: canary.addr,
      target: 50,
      soak: '1s',
      window: '5s',
      minRequests: 20,
      minReloadInterval: '100ms',
    }),
  );
  const config = await loadConfig(file);
  await writeFile(config.nginx.upstreamsFile, renderUpstreams(buildModel(config, { gateway: 0 }, 0, 'oss')));
  const nginx = await startNginx({ binary: config.nginx.binary, conf: config.nginx.conf, prefix: config.nginx.prefix });
  try {
    const ctl = new NginxCommand(config.nginx);
    const snapshots = new SnapshotStore(config.nginx.snapshots.dir, config.nginx.snapshots.keep, config.nginx, systemClock);
    const applier = new Applier({ config, ctl, disk: statfsDisk, snapshots, clock: systemClock });
    const applyMs: number[] = [];
    for (let i = 1; i <= n; i++) {
      for (let tries = 0; ; tries++) {
        const res = await applier.apply({ weights: { gateway: i % 2 ? 10 : 20 }, generation: i, reason: 'bench' });
        if (res.ok) {
          applyMs.push(res.durationMs);
          break;
        }
        if (res.stage !== 'interval' || tries > 100) throw new Error(`bench apply failed at ${res.stage}: ${res.error.message}`);
        await new Promise((r) => setTimeout(r, 20));
      }
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
    await nginx.stop();
    await primary.close();
    await canary.close();
    await rm(dir, { recursive: true, force: true });
  }
}
