/**
 * Apply latency on the real nginx (issue 13 "Apply"), `npm run bench:apply [-- --n=50 --interval=5]`.
 *
 * One run interleaves, on one nginx (the repo's nginx/nginx.conf, worker_processes 2), n rounds of:
 *
 * - a step: apply gateway 0 → 50 through the one safe path (guards → preflight `nginx -t`, skipped when
 *   the directory is what the last passing nginx -t tested → snapshot → write → `nginx -t` → reload →
 *   proof), retried while min_reload_interval (100 ms) holds it;
 * - a drain: apply 50 → 0 at once (a change that only lowers is never held by min_reload_interval);
 * - a bare cycle: the include rewritten with a new generation (not timed), then `nginx -t` +
 *   `nginx -s reload` + polling the status server until it answers that generation, the same poll
 *   the applier uses at the same spacing; then, for reference, polling /proc until no worker from
 *   before the reload accepts connections (the applier's proof, workers.ts `stillAccepting`); then
 *   the applier's include put back byte for byte (not timed), so the next apply meets the directory
 *   its last nginx -t passed, as it does in production.
 *
 * It prints apply, step and drain median/p95, the bare figures, the ratio against the issue's target
 * (apply median ≤ 3 × bare median, bare = `nginx -t` + reload + first answer of the new generation),
 * and the median of every stage, so the reader sees where the time goes. Load from other processes
 * on the machine is in the figures: the load average is printed with them.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { systemClock } from '../src/clock.js';
import { Applier, type ApplyStageTimings, type ApplyTimings } from '../src/nginx/apply.js';
import { NginxCommand } from '../src/nginx/ctl.js';
import { statfsDisk } from '../src/nginx/disk.js';
import { buildModel } from '../src/nginx/model.js';
import { renderUpstreams } from '../src/nginx/render.js';
import { SnapshotStore } from '../src/nginx/snapshot.js';
import { stillAccepting, workerProcesses } from '../src/nginx/workers.js';
import { waitFor } from '../src/util/wait.js';
import { startStack } from '../test/fixtures/stack.js';

const run = promisify(execFile);

/** Median and p95 (nearest rank) of a list of ms; NaN for an empty list. */
export function quantiles(ms: number[]): { median: number; p95: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
  return { median: at(0.5), p95: at(0.95) };
}

/** Median and p95, ms. */
export interface Quantiles {
  median: number;
  p95: number;
}

/** The stages of one bare cycle, ms. */
export interface BareStages {
  /** `nginx -t -q`. */
  test: number;
  /** `nginx -s reload` (the process run). */
  reload: number;
  /** From the reload's return to the first answer of the new generation on the status server. */
  answer: number;
  /** From that answer to /proc showing no worker from before the reload accepting (nginx's own 100 ms sleep is here). */
  retire: number;
}

/** What {@link benchApply} measured; every figure in ms. */
export interface ApplyBench {
  /** Applies timed (steps + drains). */
  applies: number;
  /** Every apply, steps and drains together. */
  apply: Quantiles;
  /** Applies 0 → 50 (raise; held by min_reload_interval until allowed, the wait not timed). */
  step: Quantiles;
  /** Applies 50 → 0 (a drain: never held by min_reload_interval). */
  drain: Quantiles;
  /**
   * This process's CPU (user + system, all threads: `process.cpuUsage()`, children apart) during the
   * attempt that applied, ms: what an apply costs the sidecar, the figure behind bench:walk's ratio.
   */
  cpu: { step: Quantiles; drain: Quantiles; bare: Quantiles };
  /** Bare `nginx -t` + `nginx -s reload`, as the issue's 12.4 ms figure was measured. */
  bare: Quantiles;
  /** Bare `nginx -t` + `nginx -s reload` + first answer of the new generation: the issue's target basis. */
  bareAnswer: Quantiles;
  /** {@link bareAnswer} + until no worker from before the reload accepts: the floor of an exact proof. */
  bareRetired: Quantiles;
  /** Median of each stage of the steps, the drains and the bare cycles. */
  stages: { step: ApplyStageTimings; drain: ApplyStageTimings; bare: BareStages };
  /** How the applies were proven live (`proc` on Linux). */
  proofs: Record<string, number>;
  /** Applies whose preflight `nginx -t` was skipped (the directory was what the last passing nginx -t tested). */
  preflightsSkipped: number;
  /** The applier's (and the bare cycle's) poll spacing, ms. */
  intervalMs: number;
  /** `/proc/loadavg` at the start and at the end. */
  load: { start: string; end: string };
}

/** Options of {@link benchApply}. */
export interface ApplyBenchOptions {
  /** Poll spacing of the proof and of the bare cycle's status poll, ms (default: the applier's, 5). */
  intervalMs?: number;
}

/** Per-stage medians of a list of stage records. */
function stageMedians<T extends Record<K, number>, K extends keyof T & string>(
  rows: readonly T[],
  keys: readonly K[],
): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, quantiles(rows.map((r) => r[k])).median])) as Record<K, number>;
}

const APPLY_KEYS = ['guards', 'preflight', 'snapshot', 'write', 'test', 'reload', 'answer', 'retire'] as const;
const BARE_KEYS = ['test', 'reload', 'answer', 'retire'] as const;

/** A `process.cpuUsage()` difference as ms (user + system, all threads). */
export function cpuMs(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1000;
}

async function loadavg(): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8').catch(() => 'n/a')).split(' ').slice(0, 3).join(' ');
}

/**
 * Runs `n` rounds of step, drain and bare cycle on one nginx in a temp dir (see the file comment).
 * @throws when an apply fails at any stage other than `interval`, or a wait runs past its deadline.
 */
export async function benchApply(n = 50, opts: ApplyBenchOptions = {}): Promise<ApplyBench> {
  const intervalMs = opts.intervalMs ?? 5;
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
    let timings: ApplyTimings | null = null;
    const applier = new Applier({
      config,
      ctl,
      disk: statfsDisk,
      snapshots,
      clock: systemClock,
      verifyIntervalMs: intervalMs,
      onTimings: (t) => (timings = t),
    });
    const flavor = await applier.flavor();
    const load = { start: await loadavg(), end: '' };
    let generation = 1;
    /** CPU of the last attempt of {@link apply}, ms. */
    let applyCpuMs = 0;
    /** One apply to `weight`, retried every 10 ms while min_reload_interval holds it; its timings. */
    const apply = async (weight: number): Promise<ApplyTimings> => {
      generation++;
      timings = null;
      const res = await waitFor(
        async () => {
          const c0 = process.cpuUsage();
          const r = await applier.apply({ weights: { gateway: weight }, generation, reason: 'bench' });
          applyCpuMs = cpuMs(process.cpuUsage(c0));
          return r.ok || r.stage !== 'interval' ? r : null;
        },
        { timeoutMs: 5000, intervalMs: 10, what: `apply ${generation} past min_reload_interval` },
      );
      if (!res.ok) throw new Error(`bench apply failed at ${res.stage}: ${res.error.message}`);
      if (timings === null) throw new Error('the applier reported no timings');
      return timings;
    };
    const base = ['-p', config.nginx.prefix ?? dir, '-c', config.nginx.conf];
    const bareCycle = async (): Promise<BareStages & { total: number; cpu: number }> => {
      generation++;
      const g = generation;
      // The applier's last include, put back after the cycle: its directory is then again what its last
      // nginx -t passed, as in production, where nothing else writes it between two applies.
      const applied = await readFile(config.nginx.upstreamsFile);
      await writeFile(
        config.nginx.upstreamsFile,
        renderUpstreams(buildModel(config, { gateway: 0 }, g, flavor, { drained: [] })),
      );
      const before = await workerProcesses(stack.nginx.pid);
      if (before === null) throw new Error('no /proc view of the nginx master: the bench needs Linux');
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await run(config.nginx.binary, [...base, '-t', '-q']);
      const t1 = performance.now();
      await run(config.nginx.binary, [...base, '-s', 'reload']);
      const t2 = performance.now();
      await waitFor(async () => (await ctl.generation()) === g, { timeoutMs: 10_000, intervalMs, what: `gen ${g}` });
      const t3 = performance.now();
      await waitFor(() => stillAccepting(before).length === 0, {
        timeoutMs: 10_000,
        intervalMs,
        what: 'old workers retired',
      });
      const t4 = performance.now();
      const cpu = cpuMs(process.cpuUsage(c0));
      await writeFile(config.nginx.upstreamsFile, applied);
      return { test: t1 - t0, reload: t2 - t1, answer: t3 - t2, retire: t4 - t3, total: t3 - t0, cpu };
    };

    // Warm-up (first runs of nginx -t, first snapshots, undici's first connection): not counted.
    await apply(50);
    await apply(0);
    await bareCycle();

    const steps: ApplyTimings[] = [];
    const drains: ApplyTimings[] = [];
    const bares: (BareStages & { total: number; cpu: number })[] = [];
    const cpu = { step: [] as number[], drain: [] as number[] };
    for (let i = 0; i < n; i++) {
      steps.push(await apply(50));
      cpu.step.push(applyCpuMs);
      drains.push(await apply(0));
      cpu.drain.push(applyCpuMs);
      bares.push(await bareCycle());
    }
    load.end = await loadavg();
    const all = [...steps, ...drains];
    const proofs: Record<string, number> = {};
    for (const t of all) proofs[t.proof] = (proofs[t.proof] ?? 0) + 1;
    return {
      applies: all.length,
      apply: quantiles(all.map((t) => t.totalMs)),
      step: quantiles(steps.map((t) => t.totalMs)),
      drain: quantiles(drains.map((t) => t.totalMs)),
      cpu: { step: quantiles(cpu.step), drain: quantiles(cpu.drain), bare: quantiles(bares.map((b) => b.cpu)) },
      bare: quantiles(bares.map((b) => b.test + b.reload)),
      bareAnswer: quantiles(bares.map((b) => b.total)),
      bareRetired: quantiles(bares.map((b) => b.total + b.retire)),
      stages: {
        step: stageMedians(
          steps.map((t) => t.stages),
          APPLY_KEYS,
        ),
        drain: stageMedians(
          drains.map((t) => t.stages),
          APPLY_KEYS,
        ),
        bare: stageMedians(bares, BARE_KEYS),
      },
      proofs,
      preflightsSkipped: all.filter((t) => t.preflightSkipped).length,
      intervalMs,
      load,
    };
  } finally {
    for (const fn of teardowns.reverse()) await fn();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The report `npm run bench:apply` prints. */
export function formatApplyBench(a: ApplyBench): string {
  const f = (x: number): string => x.toFixed(1).padStart(6);
  const q = (label: string, x: Quantiles): string => `  ${label.padEnd(52)} ${f(x.median)} ${f(x.p95)}`;
  const ratio = a.apply.median / a.bareAnswer.median;
  const drainRatio = a.drain.median / a.bareAnswer.median;
  const row = (label: string, s: ApplyStageTimings | BareStages): string =>
    `  ${label.padEnd(8)} ${Object.entries(s as unknown as Record<string, number>)
      .map(([k, v]) => `${k} ${v.toFixed(1)}`)
      .join(' · ')}`;
  const own = (s: ApplyStageTimings): number => s.guards + s.preflight + s.snapshot + s.write + s.test + s.reload;
  return [
    `apply latency on the real nginx, ${a.applies} applies (${a.applies / 2} steps 0 → 50, ${a.applies / 2} drains 50 → 0) and ${a.applies / 2} bare cycles interleaved; poll every ${a.intervalMs} ms; proof ${Object.entries(
      a.proofs,
    )
      .map(([k, v]) => `${k} ×${v}`)
      .join(', ')}; preflight nginx -t skipped ×${a.preflightsSkipped}; load ${a.load.start} → ${a.load.end}`,
    `  ${''.padEnd(52)} median    p95 (ms)`,
    q('apply, all', a.apply),
    q('  steps (0 → 50)', a.step),
    q('  drains (50 → 0)', a.drain),
    q('bare nginx -t + nginx -s reload', a.bare),
    q('bare nginx -t + reload + first answer (target basis)', a.bareAnswer),
    q('bare + old workers retired (floor of an exact proof)', a.bareRetired),
    `  apply / bare+answer: ${ratio.toFixed(2)} × (target ≤ 3 ×: ${ratio <= 3 ? 'PASS' : 'FAIL'}); drains: ${drainRatio.toFixed(2)} × (${drainRatio <= 3 ? 'PASS' : 'FAIL'})`,
    `  apply / bare+retired: ${(a.apply.median / a.bareRetired.median).toFixed(2)} ×; drains: ${(a.drain.median / a.bareRetired.median).toFixed(2)} ×`,
    'stage medians, ms (retire: nginx sleeps 100 ms after forking the new workers before it retires the old ones, ngx_process_cycle.c `ngx_msleep(100)`):',
    row('steps', a.stages.step),
    row('drains', a.stages.drain),
    row('bare', a.stages.bare),
    `  the sidecar's own stages (guards … reload signal), medians summed: steps ${own(a.stages.step).toFixed(1)}, drains ${own(a.stages.drain).toFixed(1)}; bare test + reload ${(a.stages.bare.test + a.stages.bare.reload).toFixed(1)}`,
    `CPU of this process per apply (user + system, all threads; nginx -t/-s children apart), ms: the cost behind bench:walk's ratio`,
    q('  steps', a.cpu.step),
    q('  drains', a.cpu.drain),
    q('  bare cycle (execFile nginx -t, nginx -s reload, status polls until it answers, then /proc)', a.cpu.bare),
  ].join('\n');
}

/** `--name=value` of argv as a number, or `fallback`. */
function arg(name: string, fallback: number): number {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  const v = hit === undefined ? fallback : Number(hit.slice(name.length + 3));
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`--${name} must be a positive number`);
  return v;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  console.log(formatApplyBench(await benchApply(arg('n', 50), { intervalMs: arg('interval', 5) })));
}
