/**
 * `npm run bench:soak` (issue 13 "Memory"): the sidecar for `--minutes` (default 30) at a steady load
 * with a walk and a drain in it, printing every figure beside its target in one run: VmRSS and RssAnon
 * slope (MiB/hour) after the warm-up, access-log lines lost, event-loop delay p99, and the start-up
 * VmHWM peak with its cause. Linux only (reads /proc); needs a current `dist/` (`npm run build`: the
 * sidecar runs as `bin/nginx-canary run`, with the node flags of that file's shebang, as the shipped
 * systemd unit and launchd plist run it).
 *
 * The stack is test/fixtures/stack.ts on 127.0.0.1: a copy of the repo's nginx/nginx.conf, two real
 * backends (src/demo/backend.ts), the sidecar as a child process. weights.yaml is the fixture's with
 * the production evidence minimums (min_requests 200, min_probes 20, error_ratio 0.5 %), a 60 s gate
 * window ({@link WINDOW_S} says why not 15 min), probes every 1 s, min_reload_interval 1 s (so the
 * tick is 500 ms), target 50, slice 5, step 10 and `--soak-s` (default 20 s) soaks, so the walk reaches
 * its target in the first minutes. The gates a busy shared machine trips without a bad canary are
 * loosened as bench:walk loosens them (connect_p95 2 s, baseline_p95_factor 1000).
 *
 * Timeline (t from the sidecar's spawn):
 * 1. start-up: /proc/<pid>/status every 20 ms until 10 s after the API first answers (VmRSS, RssAnon,
 *    VmHWM: the peak and when it came, relative to the API's first answer);
 * 2. load: `--rate` (default 400) GETs/s through nginx from this process (undici, 16 connections,
 *    paced every 5 ms, at most 256 in flight; bounded by count and time), started once the sidecar
 *    logged "nginx-canary running" (its access-log follower is then open, so every line nginx writes
 *    after that is one it must read);
 * 3. walk 0 → 50 % (phase complete); steady; at the end of the warm-up VmHWM is reset
 *    (`/proc/<pid>/clear_refs`), so the VmHWM read at the end is the peak since then;
 * 4. at 40 % of the run (or when the walk completes, if later) the canary backend answers 500 to
 *    everything (fault `status`: traffic and /health): the gates drain it; the fault is lifted and a
 *    new canary build `v2` is released (`PUT /api/v1/services/gateway/version`, what
 *    `nginx-canary release` does), which walks again to 50 %; steady to the end;
 * 5. the load stops; in-flight requests end; lines lost = lines nginx wrote to the access log since
 *    the load started − lines the sidecar's follower counted (`nginx_canary_log_lines_total`, every
 *    result: parsed, invalid, unattributed), read once they are equal or 15 s passed.
 *
 * Every 10 s: /proc/<pid>/status (VmRSS, RssAnon, VmHWM), /metrics (event-loop delay p99, V8 heap used
 * and committed, external memory, lines counted, reloads) and the same event-loop p99 of an idle
 * control process (a bare node with the same monitor), which is what the machine alone does to an
 * event loop. prom-client's `nodejs_eventloop_lag_p99_seconds` is the p99 of
 * perf_hooks.monitorEventLoopDelay over the time since the previous scrape (it resets the histogram on
 * each collect; prom-client lib/metrics/eventLoopLag.js), sampled every 50 ms (src/server/metrics.ts
 * EVENT_LOOP_MONITOR_MS; an idle loop reads ~50 ms), so each 10 s scrape is the p99 of that 10 s: the
 * second-worst of ~200 delays, i.e. what recurs every few seconds (the follower's reads, the tick every
 * 500 ms, scavenges), not a one-off. Nothing else scrapes this sidecar.
 *
 * Slope: ordinary least squares of VmRSS (MiB) on time (hours) over the samples after the warm-up
 * (`--warmup-minutes`, default 5; a third of shorter runs). Why 5 minutes: the first walk ends within
 * ~2–3 minutes, and V8's heap grows to its working size while the code paths it uses are first
 * compiled; what comes after holds a drain, a release and a second walk, so the fit covers every kind
 * of work the sidecar does. The samples are a sawtooth (V8 grows its committed heap and gives it back
 * in steps of ~10 MiB every several minutes), so neighbouring residuals are correlated and the plain
 * standard error is too small: the ± printed is the 95 % interval widened for the lag-1
 * autocorrelation r of the residuals (effective sample size n·(1−r)/(1+r); B. D. Santer et al.,
 * "Statistical significance of trends and trend differences in layer-average atmospheric temperature
 * time series", J. Geophys. Res. 105 (2000) 7337–7356). The same fit of the V8 heap (used,
 * committed) and of the native rest (RssAnon − heap committed − external) says where a slope comes
 * from.
 *
 * Targets (the final table; exit code 1 when one is missed):
 * - VmRSS and RssAnon slope: |slope| ≤ 5 MiB/h ({@link TARGET_SLOPE_MIB_H}). Why not 1: in 25
 *   minutes the sawtooth alone gives the fit a 95 % interval of about ±5 MiB/h (measured: ±4.8), so a
 *   tighter bound would fail a sidecar without a leak. What 5 MiB/h catches: at 400 requests/s, any
 *   object kept per access-log line (≥ 16 bytes in V8) grows ≥ 22 MiB/h, and 4 bytes a line already
 *   gives 5.5 MiB/h; a slower leak (per tick, per reload) needs a longer run (`--minutes`).
 * - lines lost: 0.
 * - event-loop delay p99, sidecar − idle control in the same 10 s: the highest ≤ 50 ms and the median
 *   ≤ 5 ms ({@link TARGET_LAG_MAX_MS}, {@link TARGET_LAG_MEDIAN_MS}): a tick every 500 ms late by at
 *   most a tenth of it in the worst 10 s, by 1 % of it usually (reading and parsing 100 lines every
 *   250 ms costs ~0.1 ms: `npm run bench`, ~1 µs a line). The sidecar's own p99 and the control's are
 *   printed beside, and the highest excess is split by whether the 10 s held an apply (a reload).
 * - start-up peak: VmHWM over the whole run ≤ the highest VmRSS sample after the warm-up + 5 MiB
 *   ({@link TARGET_PEAK_EXCESS_MIB}): the peak is steady-state memory, not a start-up transient.
 * - the scenario itself: walk complete at 50 %, drain, release walked again to 50 %.
 *
 * Start-up A/B (`--startup-runs N`, default 3; 0 skips): after the soak, N fresh stacks each start
 * the sidecar with the shipped flags and with `--liftoff-only` toggled (the shebang has it since the
 * A/B showed the peak gone; the other variant drops it), alternating, and print VmHWM and
 * VmRSS 8 s after the API answers. The start-up peak (~33 MiB above VmRSS, ~0.5–2 s after the API
 * first answers) is V8 compiling undici's llhttp WebAssembly parser
 * (node_modules/undici/lib/llhttp/llhttp_simd-wasm.js, compiled in undici's client-h1.js on the first
 * HTTP/1 connection, i.e. the first probe) and then, once its main function is hot, recompiling that
 * function with TurboFan on a background thread: `node --trace-wasm-compilation-times` prints
 * "Compiled function #20 using TurboFan, took 206 ms and 29444200 / 42585392 max/total bytes;
 * bodysize 33670" (compiler zone memory, freed after). `--no-opt` does not remove it (it is wasm, not
 * JS); `--liftoff-only` keeps wasm on V8's baseline compiler, and the peak is gone.
 *
 * Knobs: `--minutes`, `--warmup-minutes`, `--rate`, `--soak-s`, `--startup-runs`, `--startup-only`
 * (only the A/B), `--csv <file>` (every 10 s sample); BENCH_SOAK_NODE_ARGS="--liftoff-only" adds node
 * flags to the sidecar after the shebang's; BENCH_SOAK_TRACE=1 prints each 10 s sample. The sidecar runs
 * with MALLOC_ARENA_MAX=2, as the systemd unit sets it; MALLOC_ARENA_MAX in the bench's environment
 * replaces that value (another cap to compare).
 *
 * Bounded: every wait has a deadline, the load is capped in count and time, the whole bench is
 * stopped at `--minutes` + 10 minutes, and every process (sidecar, nginx, backends, the control) is
 * stopped by pid at the end, on error and on Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { Agent, request } from 'undici';
import { EVENT_LOOP_MONITOR_MS } from '../src/server/metrics.js';
import { waitFor } from '../src/util/wait.js';
import { repoRoot, sample, startStack, userEnv, type Stack } from '../test/fixtures/stack.js';
import { clockTicks, cpuOf, loadAverage, memOf, resetPeak, type ProcessMemory } from './lib/proc.js';

// ---------------------------------------------------------------- targets and constants

/** |VmRSS slope| and |RssAnon slope| after the warm-up, MiB/hour (see the file comment). */
export const TARGET_SLOPE_MIB_H = 5;
/** The highest 10 s event-loop delay p99 of the run above the idle control's in the same 10 s, ms. */
export const TARGET_LAG_MAX_MS = 50;
/** The median of the 10 s event-loop delay p99s above the idle control's, ms. */
export const TARGET_LAG_MEDIAN_MS = 5;
/** VmHWM over the run may exceed the highest VmRSS sample after the warm-up by this much, MiB. */
export const TARGET_PEAK_EXCESS_MIB = 5;
/**
 * gates.window, s. Not the 15 min default: the windows' rings have a fixed number of buckets whatever
 * the window (observe/window.ts: 60 sketch buckets, 900 count buckets), so their memory is the same,
 * and at 60 s they are all recycled within the warm-up; at 15 min they would fill for 15 minutes, which
 * a slope would show as growth. It also keeps the release after the drain from waiting up to a window
 * (see the report of this bench: the 15 s bucket that straddles the drain holds the drained build's
 * errors, and the new build is judged on it).
 */
const WINDOW_S = 60;
/** Canary weight the walks go to, percent 0–100. */
const TARGET_WEIGHT = 50;
/** Period of the memory and /metrics samples, ms. */
const SAMPLE_MS = 10_000;
/** Period of the /proc samples during start-up, ms, and how long after the API's first answer they run. */
const STARTUP_SAMPLE_MS = 20;
const STARTUP_AFTER_API_MS = 10_000;
/** A walk (0 → 50 %: 6 raises) that has not completed by then is a failure: twice its soaks, + 1 min, ≥ 2 min. */
const walkTimeoutMs = (soakS: number): number => Math.max(120_000, (12 * soakS + 60) * 1000);
/** The canary answering only 500 must be drained by then. */
const DRAIN_TIMEOUT_MS = 60_000;
/** The follower must have read every line this long after the load stopped. */
const CATCH_UP_MS = 15_000;
/** Load: client connections and in-flight cap. */
const CONNECTIONS = 16;
const MAX_INFLIGHT = 256;
const SERVICE = 'gateway';

// ---------------------------------------------------------------- pure helpers (tested in test/bench/soak.test.ts)

/** A least-squares line y = intercept + slope·x, with its uncertainty. */
export interface LinearFit {
  /** dy/dx, in y units per x unit. */
  slope: number;
  /** y at x = 0. */
  intercept: number;
  /** Points fitted. */
  n: number;
  /** Standard error of the slope assuming independent residuals (y units per x unit). */
  se: number;
  /** Lag-1 autocorrelation of the residuals (−1…1; 0 when undefined). */
  r1: number;
  /** Effective number of independent points, n·(1−r1)/(1+r1) for r1 > 0, else n. */
  nEff: number;
  /** The standard error widened for r1: se·sqrt((n−2)/(nEff−2)); Infinity when nEff ≤ 2. */
  seAdj: number;
  /** Half-width of the two-sided 95 % interval of the slope: t(0.975, nEff−2)·seAdj; Infinity when nEff ≤ 2. */
  ci95: number;
}

/** Two-sided 95 % quantiles of Student's t for 1–30 degrees of freedom (any statistics table). */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/**
 * t(0.975, df): the 95 % two-sided quantile of Student's t with `df` degrees of freedom (a fractional
 * df is rounded down, which widens the interval); 1.96 (the normal's) above 30; Infinity below 1. Pure.
 */
export function t975(df: number): number {
  if (!(df >= 1)) return Number.POSITIVE_INFINITY;
  return df > 30 ? 1.96 : (T975[Math.floor(df) - 1] ?? 1.96);
}

/**
 * Ordinary least-squares fit of `ys` on `xs` (equal lengths ≥ 3, finite, not all x equal), with the
 * slope's standard error widened for lag-1 autocorrelated residuals (Santer et al. 2000; see the file
 * comment). Pure.
 *
 * @throws Error when the lengths differ, fewer than 3 points are given, or every x is the same.
 */
export function linearFit(xs: readonly number[], ys: readonly number[]): LinearFit {
  const n = xs.length;
  if (n !== ys.length) throw new Error(`linearFit: ${n} x values but ${ys.length} y values`);
  if (n < 3) throw new Error(`linearFit: needs at least 3 points, got ${n}`);
  const mean = (v: readonly number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
  const mx = mean(xs);
  const my = mean(ys);
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    const dx = (xs[i] ?? 0) - mx;
    sxx += dx * dx;
    sxy += dx * ((ys[i] ?? 0) - my);
  }
  if (sxx === 0) throw new Error('linearFit: every x is the same');
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  const res = xs.map((x, i) => (ys[i] ?? 0) - intercept - slope * x);
  const ss = res.reduce((a, e) => a + e * e, 0);
  const se = Math.sqrt(ss / (n - 2) / sxx);
  let lag = 0;
  for (let i = 1; i < n; i++) lag += (res[i] ?? 0) * (res[i - 1] ?? 0);
  const r1 = ss === 0 ? 0 : lag / ss;
  const nEff = r1 > 0 ? (n * (1 - r1)) / (1 + r1) : n;
  const seAdj = nEff > 2 ? se * Math.sqrt((n - 2) / (nEff - 2)) : Number.POSITIVE_INFINITY;
  return { slope, intercept, n, se, r1, nEff, seAdj, ci95: t975(nEff - 2) * seAdj };
}

/** Nearest-rank quantile q (0–1) of `xs`; NaN for an empty list. Pure. */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN;
}

/** The median of `xs` (mean of the middle two for an even count); NaN for an empty list. Pure. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length / 2;
  if (s.length === 0) return Number.NaN;
  return s.length % 2 === 1 ? (s[Math.floor(mid)] ?? Number.NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

/**
 * The sum of every sample of `nginx_canary_log_lines_total` (all `result` labels: parsed, invalid,
 * unattributed) in a Prometheus text exposition: the lines the sidecar's follower delivered. NaN when
 * the metric has no sample. Pure.
 */
export function linesCounted(metrics: string): number {
  let sum = 0;
  let seen = false;
  for (const line of metrics.split('\n')) {
    const m = /^nginx_canary_log_lines_total\{[^}]*\} (\S+)$/.exec(line);
    if (m) {
      sum += Number(m[1]);
      seen = true;
    }
  }
  return seen ? sum : Number.NaN;
}

/** A fixed-width text table, columns left-aligned, the first row a header underlined with dashes. Pure. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r, ri) => {
      const line = r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd();
      return ri === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

// ---------------------------------------------------------------- cleanup

/** Stop steps of everything started and not yet stopped, in start order. */
const stoppers: (() => unknown)[] = [];

async function stopAll(): Promise<void> {
  const steps = stoppers.splice(0).reverse();
  for (const fn of steps) {
    try {
      await fn();
    } catch (err) {
      console.error(`cleanup: ${(err as Error).message}`);
    }
  }
}

let aborting = false;
async function abort(why: string, code: number): Promise<never> {
  if (!aborting) {
    aborting = true;
    console.error(`\nbench:soak: ${why}; stopping everything it started`);
    await stopAll();
  }
  process.exit(code);
}

/** Sends `signal` to a child, then SIGKILL after `graceMs`; resolves once it exited. */
async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const inTime = await Promise.race([exited.then(() => true), delay(graceMs, false)]);
  if (!inTime) {
    child.kill('SIGKILL');
    await exited;
  }
}

// ---------------------------------------------------------------- stack and sidecar

/** The node flags of bin/nginx-canary's shebang (`#!/usr/bin/env -S node <flags>`). */
async function shippedNodeFlags(bin: string): Promise<string[]> {
  const first = (await readFile(bin, 'utf8')).split('\n')[0] ?? '';
  return (/^#!\/usr\/bin\/env -S node (.*)$/.exec(first)?.[1] ?? '').split(/\s+/).filter(Boolean);
}

/** A fresh stack in a temp dir (nginx, backends; no sidecar), stopped with the bench. */
async function newStack(soakS: number): Promise<Stack> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nginx-canary-bench-soak-'));
  stoppers.push(() => rm(dir, { recursive: true, force: true }));
  const teardowns: (() => unknown)[] = [];
  stoppers.push(async () => {
    for (const fn of teardowns.reverse()) await fn();
  });
  const stack = await startStack(
    { teardown: (fn) => teardowns.push(fn) },
    {
      dir,
      target: TARGET_WEIGHT,
      soak: `${soakS}s`,
      window: `${WINDOW_S}s`,
      minRequests: 200,
      minProbes: 20,
      minReloadInterval: '1s',
      probeInterval: '1s',
      baselineFactor: 1000,
    },
  );
  const yaml = await readFile(stack.configFile, 'utf8');
  const loose = yaml.replace('connect_p95: 120ms', 'connect_p95: 2s');
  if (loose === yaml) throw new Error('weights.yaml of the stack fixture no longer has connect_p95: 120ms');
  await writeFile(stack.configFile, loose);
  return stack;
}

/** A sidecar child process started on `stack` with `nodeArgs`. */
interface Sidecar {
  child: ChildProcess;
  pid: number;
  /** stdout + stderr so far (the last 200 kB). */
  output(): string;
  /** ms after spawn (performance.now() based) the line "nginx-canary running" appeared, or null. */
  runningAt(): number | null;
  /** performance.now() at spawn. */
  t0: number;
  stop(): Promise<void>;
}

/** MALLOC_ARENA_MAX for the sidecar: the bench's own when set, else 2 (deploy/systemd/nginx-canary.service's). */
function mallocArenaMax(): string {
  return process.env['MALLOC_ARENA_MAX'] ?? '2';
}

function spawnSidecar(stack: Stack, nodeArgs: string[]): Sidecar {
  const bin = path.join(repoRoot, 'bin', 'nginx-canary');
  const t0 = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, bin, '-c', stack.configFile, 'run'], {
    cwd: stack.dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    // As deploy/systemd/nginx-canary.service runs it: glibc malloc capped at two arenas.
    env: { ...userEnv(), MALLOC_ARENA_MAX: mallocArenaMax() },
  });
  let out = '';
  let running: number | null = null;
  const onData = (d: Buffer): void => {
    out = (out + d.toString()).slice(-200_000);
    if (running === null && out.includes('nginx-canary running')) running = performance.now() - t0;
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const pid = child.pid;
  if (pid === undefined) throw new Error('the sidecar did not start');
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => (stopped ??= stopChild(child, 'SIGTERM', 10_000));
  stoppers.push(stop);
  return { child, pid, output: () => out, runningAt: () => running, t0, stop };
}

/** The last `n` lines of the sidecar's output, for error messages. */
function tail(s: Sidecar, n = 30): string {
  return `\n--- sidecar output (tail) ---\n${s.output().split('\n').slice(-n).join('\n')}`;
}

/** One /proc/<pid>/status reading, t in ms after spawn. */
interface MemPoint extends ProcessMemory {
  t: number;
}

/** What {@link startUp} measured. */
interface StartUp {
  /** ms after spawn the API first answered /healthz 200. */
  apiMs: number;
  /** Memory when the API first answered. */
  atApi: ProcessMemory;
  /** The sample with the highest VmRSS. */
  peak: MemPoint;
  /** The last sample (STARTUP_AFTER_API_MS after the API answered). */
  last: MemPoint;
  samples: MemPoint[];
}

/**
 * Samples `s`'s /proc/<pid>/status every STARTUP_SAMPLE_MS from spawn until `afterApiMs` after its API
 * first answered (30 s cap on the API), polling /healthz meanwhile.
 *
 * @throws Error when the sidecar exits or its API does not answer within 30 s.
 */
async function startUp(stack: Stack, s: Sidecar, afterApiMs: number): Promise<StartUp> {
  const samples: MemPoint[] = [];
  // An object, not two lets: the poll sets them from a callback, which TypeScript's narrowing does not see.
  const api: { ms: number | null; mem: ProcessMemory | null } = { ms: null, mem: null };
  let polling = false;
  const poll = async (): Promise<void> => {
    polling = true;
    try {
      const r = await request(`${stack.api}/healthz`, { headersTimeout: 2000, bodyTimeout: 2000 });
      await r.body.dump();
      if (r.statusCode === 200 && api.ms === null) {
        api.ms = performance.now() - s.t0;
        api.mem = await memOf(s.pid);
      }
    } catch {
      // not listening yet
    } finally {
      polling = false;
    }
  };
  for (let i = 0; i < 3000; i++) {
    const now = performance.now() - s.t0;
    if (s.child.exitCode !== null) throw new Error(`the sidecar exited ${s.child.exitCode}${tail(s)}`);
    if (api.ms === null && now > 30_000) throw new Error(`the sidecar API did not answer within 30 s${tail(s)}`);
    if (api.ms !== null && now > api.ms + afterApiMs) break;
    const m = await memOf(s.pid);
    if (m) samples.push({ t: now, ...m });
    if (api.ms === null && !polling && i % 5 === 0) void poll();
    await delay(STARTUP_SAMPLE_MS); // pacing: a sample every 20 ms, not a settle wait
  }
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (api.ms === null || api.mem === null || !first || !last) throw new Error(`no start-up samples${tail(s)}`);
  const peak = samples.reduce((a, b) => (b.rss > a.rss ? b : a), first);
  return { apiMs: api.ms, atApi: api.mem, peak, last, samples };
}

// ---------------------------------------------------------------- event-loop delay of an idle control

/**
 * The control's code: an idle Node process with the same event-loop delay monitor as prom-client's
 * (perf_hooks.monitorEventLoopDelay at the sidecar's resolution, EVENT_LOOP_MONITOR_MS) that answers
 * each line on stdin with the p99 since the previous line, in ms, and resets: what the machine alone
 * does to an event loop.
 */
const CONTROL_JS = `
const { monitorEventLoopDelay } = require('node:perf_hooks');
const h = monitorEventLoopDelay({ resolution: ${EVENT_LOOP_MONITOR_MS} });
h.enable();
process.stdin.setEncoding('utf8');
process.stdin.on('data', () => { process.stdout.write((h.percentile(99) / 1e6).toFixed(3) + '\\n'); h.reset(); });
`;

/** Starts the control (stopped with the bench); `read()` is its p99 since the last read, ms (NaN when it did not answer in 2 s). */
function lagControl(): { read(): Promise<number> } {
  const child = spawn(process.execPath, ['-e', CONTROL_JS], { stdio: ['pipe', 'pipe', 'ignore'] });
  stoppers.push(() => stopChild(child, 'SIGTERM', 2000));
  let buf = '';
  const waiting: ((v: number) => void)[] = [];
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      waiting.shift()?.(Number(line));
    }
  });
  return {
    async read() {
      const answer = new Promise<number>((resolve) => waiting.push(resolve));
      child.stdin.write('\n');
      return Promise.race([answer, delay(2000, Number.NaN)]);
    },
  };
}

// ---------------------------------------------------------------- load

/** Counts of the steady load. */
interface LoadCounts {
  sent: number;
  /** Responses by class. */
  ok: number;
  c5xx: number;
  other: number;
  /** Requests that got no response (connection closed by a reload, timeout). */
  errors: number;
  inflight: number;
}

/**
 * GETs to `url` at `rate` per second (paced every 5 ms, ≤ MAX_INFLIGHT in flight, 16 connections),
 * until stopped, `maxMs` passed or `maxCount` were sent. `stop()` waits for the in-flight ones (each
 * bounded by 5 s timeouts).
 */
function steadyLoad(
  url: string,
  rate: number,
  maxMs: number,
  maxCount: number,
): { counts: LoadCounts; stop(): Promise<LoadCounts> } {
  const agent = new Agent({ connections: CONNECTIONS });
  const counts: LoadCounts = { sent: 0, ok: 0, c5xx: 0, other: 0, errors: 0, inflight: 0 };
  let stopped = false;
  const started = performance.now();
  const loop = (async () => {
    while (!stopped && counts.sent < maxCount && performance.now() - started < maxMs) {
      const due = Math.floor(((performance.now() - started) / 1000) * rate);
      while (counts.sent < due && counts.sent < maxCount && counts.inflight < MAX_INFLIGHT) {
        counts.sent++;
        counts.inflight++;
        request(url, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 })
          .then(async (r) => {
            await r.body.dump();
            if (r.statusCode >= 500) counts.c5xx++;
            else if (r.statusCode < 400) counts.ok++;
            else counts.other++;
          })
          .catch(() => counts.errors++)
          .finally(() => counts.inflight--);
      }
      await delay(5); // pacing
    }
  })();
  return {
    counts,
    async stop() {
      stopped = true;
      await loop;
      await waitFor(() => counts.inflight === 0, { timeoutMs: 10_000, what: 'in-flight requests to end' }).catch(
        () => undefined,
      );
      await agent.close();
      return { ...counts };
    },
  };
}

// ---------------------------------------------------------------- the run

/** One 10 s sample. */
interface Sample {
  /** s after the sidecar's spawn. */
  t: number;
  mem: ProcessMemory;
  /** nodejs_eventloop_lag_p99_seconds, ms; NaN when /metrics did not answer. */
  lagP99Ms: number;
  /** The idle control's event-loop delay p99 over the same 10 s, ms. */
  controlP99Ms: number;
  /** nginx_canary_reloads_total{result="ok"} at this sample. */
  reloads: number;
  /** nodejs_heap_size_used_bytes, MiB. */
  heapMiB: number;
  /** nodejs_heap_size_total_bytes (V8 heap committed), MiB. */
  heapTotalMiB: number;
  /** nodejs_external_memory_bytes (Buffers and other memory V8 objects hold outside the heap), MiB. */
  externalMiB: number;
  lines: number;
  weight: number | null;
  phase: string | null;
  load1: number;
}

/** A dated event of the run, t in s after the sidecar's spawn. */
interface Mark {
  t: number;
  what: string;
}

interface SoakResult {
  startUp: StartUp;
  samples: Sample[];
  marks: Mark[];
  warmupS: number;
  /** Whole-life VmHWM read just before the reset at the end of the warm-up, MiB. */
  hwmBeforeReset: number;
  /** Whether /proc/<pid>/clear_refs reset VmHWM at the end of the warm-up. */
  resetOk: boolean;
  /** VmHWM at the end: since the warm-up when resetOk, else whole-life, MiB. */
  hwmEnd: number;
  load: LoadCounts;
  fileLines: number;
  counted: number;
  walk1: boolean;
  drained: { ok: boolean; reason: string; ms: number | null };
  walk2: boolean;
  reloads: number;
  cpuS: number;
  durationS: number;
  loads: number[];
}

/** The metric's value in a /metrics text, or NaN. */
function metric(text: string, series: string): number {
  return sample(text, series);
}

async function getJson(url: string, method: 'GET' | 'PUT' = 'GET', body?: unknown): Promise<unknown> {
  const r = await request(url, {
    method,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`${method} ${url}: HTTP ${r.statusCode} ${text}`);
  return JSON.parse(text) as unknown;
}

/** Newline count of a file (streamed), 0 when it does not exist. */
async function countLines(file: string): Promise<number> {
  if (!existsSync(file)) return 0;
  let n = 0;
  for await (const chunk of createReadStream(file)) {
    const b = chunk as Buffer;
    for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) n++;
  }
  return n;
}

interface Options {
  minutes: number;
  warmupMinutes: number;
  rate: number;
  soakS: number;
  startupRuns: number;
  startupOnly: boolean;
  /** Where to write every 10 s sample as CSV, or null. */
  csv: string | null;
}

async function soak(o: Options, nodeArgs: string[]): Promise<SoakResult> {
  const clk = await clockTicks();
  const stack = await newStack(o.soakS);
  const accessLog = stack.config.nginx.accessLog;
  const s = spawnSidecar(stack, nodeArgs);
  const marks: Mark[] = [];
  const tNow = (): number => (performance.now() - s.t0) / 1000;
  const mark = (what: string): void => {
    marks.push({ t: tNow(), what });
    console.log(`  t=${tNow().toFixed(0).padStart(5)} s  ${what}`);
  };
  const up = await startUp(stack, s, STARTUP_AFTER_API_MS);
  mark(
    `API answered at ${(up.apiMs / 1000).toFixed(2)} s; start-up peak VmRSS ${up.peak.rss.toFixed(1)} MiB at ` +
      `${(up.peak.t / 1000).toFixed(2)} s; ${(STARTUP_AFTER_API_MS / 1000).toFixed(0)} s later VmRSS ${up.last.rss.toFixed(1)} MiB`,
  );
  await waitFor(() => s.runningAt() !== null, { timeoutMs: 15_000, what: '"nginx-canary running"' });
  const status = async (): Promise<{
    weight: number;
    phase: string;
    drainReason: string | null;
    summary: string;
  } | null> => {
    const doc = (await getJson(`${stack.api}/api/v1/services`).catch(() => null)) as {
      services?: { weight: number; phase: string; drainReason?: string | null; summary?: string }[];
    } | null;
    const x = doc?.services?.[0];
    return x
      ? { weight: x.weight, phase: x.phase, drainReason: x.drainReason ?? null, summary: x.summary ?? '' }
      : null;
  };

  const runMs = o.minutes * 60_000;
  const linesAtStart = await countLines(accessLog);
  const load = steadyLoad(stack.url, o.rate, runMs + 5 * 60_000, Math.ceil(o.rate * (runMs / 1000 + 300)));
  const tLoad = tNow();
  mark(`load started: ${o.rate} GET/s through nginx (${linesAtStart} lines in the access log before)`);
  const cpu0 = await cpuOf(s.pid, clk);
  const loads: number[] = [];

  // The 10 s sampler.
  const control = lagControl();
  await control.read(); // resets the control's histogram, as the first scrape below does the sidecar's
  await stack.metrics();
  const samples: Sample[] = [];
  let sampling = true;
  const trace = process.env['BENCH_SOAK_TRACE'] === '1';
  const sampler = (async () => {
    const t0 = performance.now();
    for (let i = 0; sampling && i < 10_000; i++) {
      const mem = await memOf(s.pid);
      if (!mem) {
        mark(`the sidecar vanished from /proc${tail(s)}`);
        break;
      }
      const text = await request(`${stack.api}/metrics`, { headersTimeout: 5000, bodyTimeout: 5000 })
        .then((r) => r.body.text())
        .catch(() => '');
      const st = await status();
      const controlP99Ms = await control.read();
      const la = await loadAverage();
      if (la) loads.push(la[0]);
      const x: Sample = {
        t: tNow(),
        mem,
        lagP99Ms: metric(text, 'nginx_canary_nodejs_eventloop_lag_p99_seconds') * 1000,
        controlP99Ms,
        reloads: metric(text, 'nginx_canary_reloads_total{result="ok"}'),
        heapMiB: metric(text, 'nginx_canary_nodejs_heap_size_used_bytes') / 2 ** 20,
        heapTotalMiB: metric(text, 'nginx_canary_nodejs_heap_size_total_bytes') / 2 ** 20,
        externalMiB: metric(text, 'nginx_canary_nodejs_external_memory_bytes') / 2 ** 20,
        lines: linesCounted(text),
        weight: st?.weight ?? null,
        phase: st?.phase ?? null,
        load1: la?.[0] ?? Number.NaN,
      };
      samples.push(x);
      if (trace)
        console.log(
          `    t=${x.t.toFixed(0)} s rss ${mem.rss.toFixed(1)} anon ${mem.anon.toFixed(1)} hwm ${mem.hwm.toFixed(1)} ` +
            `heap ${x.heapMiB.toFixed(1)}/${x.heapTotalMiB.toFixed(1)} ext ${x.externalMiB.toFixed(1)} lag p99 ${x.lagP99Ms.toFixed(1)} ms (control ${x.controlP99Ms.toFixed(1)}) lines ${x.lines} ${x.phase ?? '?'} ${x.weight ?? '?'} % load ${x.load1}`,
        );
      const next = t0 + (i + 1) * SAMPLE_MS - performance.now();
      if (next > 0) await delay(next); // pacing: one sample every 10 s
    }
  })();
  const stopSampler = async (): Promise<void> => {
    sampling = false;
    await sampler;
  };
  stoppers.push(stopSampler);

  const untilWeight = async (what: string, timeoutMs: number): Promise<boolean> => {
    try {
      await waitFor(
        async () => {
          const x = await status();
          if (x?.phase === 'drained') throw new Error(`drained: ${x.drainReason ?? '?'}`);
          return x?.weight === TARGET_WEIGHT && x.phase === 'complete';
        },
        { timeoutMs, intervalMs: 500, what },
      );
      return true;
    } catch (err) {
      const x = await status();
      mark(`${what} FAILED: ${(err as Error).message}; status: ${x ? `${x.phase} ${x.weight} %: ${x.summary}` : '?'}`);
      return false;
    }
  };

  // Walk 1.
  const walk1 = await untilWeight(`walk to ${TARGET_WEIGHT} %`, walkTimeoutMs(o.soakS));
  if (walk1) mark(`walk complete at ${TARGET_WEIGHT} %`);

  // Warm-up end: reset VmHWM so the end reading is the peak since then.
  const warmupS = tLoad + o.warmupMinutes * 60;
  const untilT = async (t: number): Promise<void> => {
    const ms = (t - tNow()) * 1000;
    if (ms > 0) await delay(ms); // the schedule: the run's clock, not a settle wait
  };
  const drainAtS = Math.max(tLoad + 0.4 * o.minutes * 60, tNow());
  let hwmBeforeReset = Number.NaN;
  let resetOk = false;
  const atWarmupEnd = async (): Promise<void> => {
    hwmBeforeReset = (await memOf(s.pid))?.hwm ?? Number.NaN;
    resetOk = await resetPeak(s.pid);
    mark(
      `warm-up over: VmHWM so far ${hwmBeforeReset.toFixed(1)} MiB; ${resetOk ? 'VmHWM reset (clear_refs 5)' : 'VmHWM could not be reset'}`,
    );
  };
  let warmedUp = false;
  if (warmupS <= drainAtS) {
    await untilT(warmupS);
    await atWarmupEnd();
    warmedUp = true;
  }

  // Drain, then a release that walks again.
  await untilT(drainAtS);
  await stack.canary.setFault({ kind: 'status', status: 500 });
  const tFault = performance.now();
  mark('canary fault on: every answer (traffic and /health) is a 500');
  let drained = { ok: false, reason: '?', ms: null as number | null };
  try {
    const x = await waitFor(
      async () => {
        const y = await status();
        return y?.phase === 'drained' && y.weight === 0 ? y : null;
      },
      { timeoutMs: DRAIN_TIMEOUT_MS, intervalMs: 100, what: 'the drain' },
    );
    drained = { ok: true, reason: x.drainReason ?? '?', ms: performance.now() - tFault };
    mark(`drained (${drained.reason}) ${((drained.ms ?? 0) / 1000).toFixed(1)} s after the fault`);
  } catch (err) {
    mark(`no drain: ${(err as Error).message}`);
  }
  await stack.canary.setFault({ kind: 'none' });
  await getJson(`${stack.api}/api/v1/services/${SERVICE}/version`, 'PUT', { version: 'v2' });
  mark('fault off; released canary build v2');
  const walk2 = await untilWeight(`walk of v2 to ${TARGET_WEIGHT} %`, walkTimeoutMs(o.soakS));
  if (walk2) mark(`v2 walk complete at ${TARGET_WEIGHT} %`);
  if (!warmedUp) {
    await untilT(warmupS);
    await atWarmupEnd();
  }

  // Steady to the end.
  await untilT(tLoad + o.minutes * 60);
  const cpu1 = await cpuOf(s.pid, clk);
  const counts = await load.stop();
  mark(
    `load stopped: ${counts.sent} sent, ${counts.ok} 2xx/3xx, ${counts.c5xx} 5xx, ${counts.other} 4xx, ${counts.errors} without answer`,
  );
  await stopSampler();
  const memEnd = await memOf(s.pid);

  // Lines: nginx's file against the follower's count.
  let fileLines = 0;
  let counted = Number.NaN;
  try {
    await waitFor(
      async () => {
        fileLines = (await countLines(accessLog)) - linesAtStart;
        counted = linesCounted(await stack.metrics());
        return counted === fileLines;
      },
      { timeoutMs: CATCH_UP_MS, intervalMs: 500, what: 'the follower to count every line' },
    );
  } catch {
    // reported as lines lost
  }
  mark(`access log: ${fileLines} lines written since the load started, ${counted} counted by the sidecar`);
  const reloads = sample(await stack.metrics(), 'nginx_canary_reloads_total{result="ok"}');
  await s.stop();
  await stopAll();
  return {
    startUp: up,
    samples,
    marks,
    warmupS,
    hwmBeforeReset,
    resetOk,
    hwmEnd: memEnd?.hwm ?? Number.NaN,
    load: counts,
    fileLines,
    counted,
    walk1,
    drained,
    walk2,
    reloads,
    cpuS: (cpu1?.self ?? Number.NaN) - (cpu0?.self ?? Number.NaN),
    durationS: o.minutes * 60,
    loads,
  };
}

/** One start-up of a fresh stack with `nodeArgs`: VmHWM and VmRSS 8 s after the API answered. */
async function startupOnce(nodeArgs: string[]): Promise<StartUp> {
  const stack = await newStack(20);
  const s = spawnSidecar(stack, nodeArgs);
  try {
    return await startUp(stack, s, 8000);
  } finally {
    await stopAll();
  }
}

// ---------------------------------------------------------------- report

const mib = (x: number): string => `${x.toFixed(1)} MiB`;
const slopeText = (f: LinearFit): string =>
  `${f.slope >= 0 ? '+' : ''}${f.slope.toFixed(2)} ± ${Number.isFinite(f.ci95) ? f.ci95.toFixed(2) : '∞'} MiB/h`;

interface Check {
  figure: string;
  measured: string;
  target: string;
  ok: boolean | null;
}

function report(r: SoakResult, o: Options): Check[] {
  const after = r.samples.filter((x) => x.t >= r.warmupS);
  const hours = (x: Sample): number => (x.t - r.warmupS) / 3600;
  const checks: Check[] = [];
  const fits: { name: string; fit: LinearFit | null; target: boolean }[] = [];
  const fitOf = (pick: (x: Sample) => number): LinearFit | null =>
    after.length >= 3 ? linearFit(after.map(hours), after.map(pick)) : null;
  fits.push({ name: 'VmRSS slope after the warm-up', fit: fitOf((x) => x.mem.rss), target: true });
  fits.push({ name: 'RssAnon slope after the warm-up', fit: fitOf((x) => x.mem.anon), target: true });
  fits.push({ name: 'V8 heap used slope (information)', fit: fitOf((x) => x.heapMiB), target: false });
  fits.push({ name: 'V8 heap committed slope (information)', fit: fitOf((x) => x.heapTotalMiB), target: false });
  fits.push({
    name: 'RssAnon − heap committed − external slope (information)',
    fit: fitOf((x) => x.mem.anon - x.heapTotalMiB - x.externalMiB),
    target: false,
  });
  for (const { name, fit, target } of fits) {
    checks.push({
      figure: name,
      measured: fit ? `${slopeText(fit)} (${fit.n} samples, r1 ${fit.r1.toFixed(2)})` : 'too few samples',
      target: target ? `|slope| ≤ ${TARGET_SLOPE_MIB_H} MiB/h` : '',
      ok: target ? (fit ? Math.abs(fit.slope) <= TARGET_SLOPE_MIB_H : false) : null,
    });
  }
  const lost = r.fileLines - r.counted;
  checks.push({
    figure: 'access-log lines lost',
    measured: Number.isFinite(lost) ? `${lost} of ${r.fileLines.toLocaleString('en')}` : `? (counted ${r.counted})`,
    target: '0',
    ok: lost === 0 && r.fileLines > 0,
  });
  const lags = r.samples.map((x) => x.lagP99Ms).filter(Number.isFinite);
  const ctl = r.samples.map((x) => x.controlP99Ms).filter(Number.isFinite);
  const excess = r.samples.map((x) => x.lagP99Ms - x.controlP99Ms).filter(Number.isFinite);
  const ms = (x: number): string => `${x.toFixed(1)} ms`;
  checks.push({
    figure: 'event-loop delay p99 per 10 s: sidecar | idle control (information)',
    measured:
      `highest ${ms(Math.max(...lags))}, median ${ms(median(lags))}, p90 ${ms(quantile(lags, 0.9))} | ` +
      `highest ${ms(Math.max(...ctl))}, median ${ms(median(ctl))}, p90 ${ms(quantile(ctl, 0.9))}`,
    target: '',
    ok: null,
  });
  // The 10 s samples whose interval held an apply: the reload counter moved since the previous sample.
  const withApply = (want: boolean): number[] =>
    r.samples
      .filter((x, i) => i > 0 && x.reloads > (r.samples[i - 1]?.reloads ?? Number.POSITIVE_INFINITY) === want)
      .map((x) => x.lagP99Ms - x.controlP99Ms)
      .filter(Number.isFinite);
  const [applied, quiet] = [withApply(true), withApply(false)];
  checks.push({
    figure: 'event-loop delay p99, sidecar − control (same 10 s), highest',
    measured:
      `${ms(Math.max(...excess))} (10 s with an apply: highest ${ms(Math.max(...applied))} of ${applied.length}; ` +
      `without: ${ms(Math.max(...quiet))} of ${quiet.length})`,
    target: `≤ ${TARGET_LAG_MAX_MS} ms`,
    ok: excess.length > 0 && Math.max(...excess) <= TARGET_LAG_MAX_MS,
  });
  checks.push({
    figure: 'event-loop delay p99, sidecar − control (same 10 s), median',
    measured: ms(median(excess)),
    target: `≤ ${TARGET_LAG_MEDIAN_MS} ms`,
    ok: excess.length > 0 && median(excess) <= TARGET_LAG_MEDIAN_MS,
  });
  const rssMaxAfter = Math.max(...after.map((x) => x.mem.rss));
  const lifeHwm = Math.max(r.hwmBeforeReset, r.resetOk ? r.hwmEnd : Number.NEGATIVE_INFINITY);
  checks.push({
    figure: 'VmHWM (whole run) − VmRSS max after the warm-up',
    measured: `${mib(lifeHwm - rssMaxAfter)} (${lifeHwm.toFixed(1)} − ${rssMaxAfter.toFixed(1)}); peak at start-up ${mib(
      r.startUp.peak.rss,
    )}, ${((r.startUp.peak.t - r.startUp.apiMs) / 1000).toFixed(2)} s after the API answered`,
    target: `≤ ${TARGET_PEAK_EXCESS_MIB} MiB`,
    ok: lifeHwm - rssMaxAfter <= TARGET_PEAK_EXCESS_MIB,
  });
  if (r.resetOk)
    checks.push({
      figure: 'VmHWM since the warm-up − VmRSS max after it (information)',
      measured: `${mib(r.hwmEnd - rssMaxAfter)} (${r.hwmEnd.toFixed(1)} − ${rssMaxAfter.toFixed(1)})`,
      target: '',
      ok: null,
    });
  checks.push({
    figure: `walk 0 → ${TARGET_WEIGHT} %`,
    measured: r.walk1 ? 'complete' : 'not complete',
    target: 'complete',
    ok: r.walk1,
  });
  checks.push({
    figure: 'canary answering 500 → drained',
    measured: r.drained.ok ? `${((r.drained.ms ?? 0) / 1000).toFixed(1)} s (${r.drained.reason})` : 'no drain',
    target: `within ${DRAIN_TIMEOUT_MS / 1000} s`,
    ok: r.drained.ok,
  });
  checks.push({
    figure: `release v2, walk 0 → ${TARGET_WEIGHT} %`,
    measured: r.walk2 ? 'complete' : 'not complete',
    target: 'complete',
    ok: r.walk2,
  });
  void o;
  return checks;
}

function printSoak(r: SoakResult, o: Options, checks: Check[]): void {
  const after = r.samples.filter((x) => x.t >= r.warmupS);
  const first = after[0];
  const last = after[after.length - 1];
  const up = r.startUp;
  console.log('\nStart-up (/proc every 20 ms)\n');
  console.log(
    table([
      ['moment', 'VmRSS', 'RssAnon', 'VmHWM'],
      [
        `API first answered (${(up.apiMs / 1000).toFixed(2)} s)`,
        mib(up.atApi.rss),
        mib(up.atApi.anon),
        mib(up.atApi.hwm),
      ],
      [`peak (${(up.peak.t / 1000).toFixed(2)} s)`, mib(up.peak.rss), mib(up.peak.anon), mib(up.peak.hwm)],
      [`${(up.last.t / 1000).toFixed(2)} s`, mib(up.last.rss), mib(up.last.anon), mib(up.last.hwm)],
      ...(first ? [[`warm-up end (${first.t.toFixed(0)} s)`, mib(first.mem.rss), mib(first.mem.anon), '']] : []),
      ...(last ? [[`end (${last.t.toFixed(0)} s)`, mib(last.mem.rss), mib(last.mem.anon), mib(r.hwmEnd)]] : []),
    ]),
  );
  const rss = after.map((x) => x.mem.rss);
  const anon = after.map((x) => x.mem.anon);
  console.log(
    `\nAfter the warm-up (${after.length} samples every ${SAMPLE_MS / 1000} s): VmRSS ${Math.min(...rss).toFixed(1)}–${Math.max(
      ...rss,
    ).toFixed(1)} MiB, RssAnon ${Math.min(...anon).toFixed(1)}–${Math.max(...anon).toFixed(1)} MiB`,
  );
  const l = r.load;
  console.log(
    `Load: ${l.sent.toLocaleString('en')} requests (${(l.sent / r.durationS).toFixed(0)}/s), ${l.c5xx} client 5xx ` +
      `(the fault), ${l.errors} without answer; ${r.reloads} reloads; sidecar CPU ${r.cpuS.toFixed(1)} s = ` +
      `${((100 * r.cpuS) / r.durationS).toFixed(1)} % of a core; load average (1 min) over the run: median ` +
      `${median(r.loads).toFixed(2)}, max ${Math.max(...r.loads).toFixed(2)}`,
  );
  console.log(`\nTargets (${o.minutes} min, warm-up ${Number(o.warmupMinutes.toFixed(2))} min)\n`);
  console.log(
    table([
      ['figure', 'measured', 'target', ''],
      ...checks.map((c) => [c.figure, c.measured, c.target, c.ok === null ? '' : c.ok ? 'ok' : 'NOT OK']),
    ]),
  );
}

/** The 10 s samples as CSV: one header line, then one line per sample (MiB, ms, s as in {@link Sample}). */
function toCsv(samples: readonly Sample[]): string {
  const head =
    't_s,rss,anon,file,hwm,heap_used,heap_total,external,lag_p99_ms,control_p99_ms,lines,reloads,weight,phase,load1';
  const rows = samples.map((x) =>
    [
      x.t.toFixed(1),
      x.mem.rss,
      x.mem.anon,
      x.mem.file,
      x.mem.hwm,
      x.heapMiB,
      x.heapTotalMiB,
      x.externalMiB,
      x.lagP99Ms,
      x.controlP99Ms,
      x.lines,
      x.reloads,
      x.weight ?? '',
      x.phase ?? '',
      x.load1,
    ]
      .map((v) => (typeof v === 'number' ? String(Math.round(v * 1000) / 1000) : v))
      .join(','),
  );
  return `${[head, ...rows].join('\n')}\n`;
}

function printStartupAB(rows: { flags: string; runs: StartUp[] }[]): void {
  console.log('\nStart-up A/B: fresh stacks, VmHWM and VmRSS 8 s after the API answered (MiB, one run each)\n');
  const out: string[][] = [['node flags', 'VmHWM', 'VmRSS', 'RssAnon', 'VmHWM − VmRSS', 'API answered']];
  for (const r of rows) {
    const col = (f: (u: StartUp) => number, d = 1): string => r.runs.map((u) => f(u).toFixed(d)).join(' / ');
    out.push([
      r.flags,
      col((u) => u.last.hwm),
      col((u) => u.last.rss),
      col((u) => u.last.anon),
      col((u) => u.last.hwm - u.last.rss),
      col((u) => u.apiMs / 1000, 2) + ' s',
    ]);
  }
  console.log(table(out));
}

// ---------------------------------------------------------------- main

function parseArgs(argv: readonly string[]): Options {
  const num = (name: string, dflt: number): number => {
    const i = argv.indexOf(`--${name}`);
    const eq = argv.find((a) => a.startsWith(`--${name}=`));
    const v = eq !== undefined ? eq.slice(name.length + 3) : i >= 0 ? argv[i + 1] : undefined;
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} needs a number ≥ 0, got "${v}"`);
    return n;
  };
  const minutes = num('minutes', 30);
  if (minutes < 1) throw new Error('--minutes must be at least 1');
  return {
    minutes,
    warmupMinutes: num('warmup-minutes', Math.min(5, minutes / 3)),
    rate: num('rate', 400),
    soakS: num('soak-s', 20),
    startupRuns: num('startup-runs', 3),
    startupOnly: argv.includes('--startup-only'),
    csv: argv.includes('--csv') ? (argv[argv.indexOf('--csv') + 1] ?? null) : null,
  };
}

async function main(): Promise<void> {
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    return abort((err as Error).message, 2);
  }
  // `on`, not `once`: Ctrl-C reaches this process twice (from the terminal and relayed by tsx).
  process.on('SIGINT', () => void abort('interrupted', 130));
  process.on('SIGTERM', () => void abort('terminated', 143));
  const budgetMs = (o.startupOnly ? 5 : o.minutes + 10) * 60_000;
  setTimeout(() => void abort(`over its ${budgetMs / 60_000} min budget`, 1), budgetMs).unref();
  if (process.platform !== 'linux' || !existsSync('/proc/self/status'))
    return abort('needs Linux /proc (memory and CPU are read there)', 2);
  if (!existsSync(path.join(repoRoot, 'dist', 'cli', 'main.js'))) return abort('needs dist/: run `npm run build`', 2);
  const shipped = await shippedNodeFlags(path.join(repoRoot, 'bin', 'nginx-canary'));
  const extra = (process.env['BENCH_SOAK_NODE_ARGS'] ?? '').split(/\s+/).filter(Boolean);
  const la = await loadAverage();
  console.log(
    `bench:soak — node ${process.version}; sidecar node flags: ${[...shipped, ...extra].join(' ') || '(none)'}, ` +
      `MALLOC_ARENA_MAX=${mallocArenaMax()}; ` +
      `${o.minutes} min at ${o.rate} GET/s, warm-up ${Number(o.warmupMinutes.toFixed(2))} min, soaks ${o.soakS} s; load average ${la?.join(' ') ?? '?'}`,
  );
  const started = performance.now();
  let checks: Check[] = [];
  try {
    if (!o.startupOnly) {
      const r = await soak(o, [...shipped, ...extra]);
      checks = report(r, o);
      printSoak(r, o, checks);
      if (o.csv !== null) {
        await writeFile(o.csv, toCsv(r.samples));
        console.log(`\nSamples written to ${o.csv}`);
      }
    }
    if (o.startupRuns > 0) {
      const rows: { flags: string; runs: StartUp[] }[] = [];
      // The shipped flags against the same without --liftoff-only (or with it, if the shebang lacks it).
      const other = shipped.includes('--liftoff-only')
        ? shipped.filter((f) => f !== '--liftoff-only')
        : [...shipped, '--liftoff-only'];
      const variants = [shipped, other];
      for (const v of variants) rows.push({ flags: v.join(' ') || '(none)', runs: [] });
      // Alternating, so a change in the machine's load falls on both.
      for (let i = 0; i < o.startupRuns; i++)
        for (let k = 0; k < variants.length; k++) rows[k]?.runs.push(await startupOnce(variants[k] ?? []));
      printStartupAB(rows);
    }
  } catch (err) {
    console.error(`bench:soak failed: ${(err as Error).stack ?? String(err)}`);
    return abort('failed', 1);
  }
  const la2 = await loadAverage();
  console.log(
    `\nbench:soak took ${((performance.now() - started) / 60_000).toFixed(1)} min; load average at the end ${la2?.join(' ') ?? '?'}`,
  );
  process.exitCode = checks.some((c) => c.ok === false) ? 1 : 0;
}

// Run only as a script (`npx tsx bench/soak.ts`), not when a test imports the helpers above.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href)
  await main();
