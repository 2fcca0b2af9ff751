/**
 * `npm run bench:walk` (docs/design.md "Targets", load): a full walk 0 → 100 % through the
 * real nginx under sustained `wrk` load, beside a CONTROL run at the same load
 * for the same time with bare `nginx -s reload` at the same rate and no
 * sidecar. Linux only (reads /proc); needs `wrk` (Debian: /usr/bin/wrk) and a
 * current `dist/` (`npm run build`: the sidecar runs as `bin/nginx-canary run`).
 *
 * Each run is a fresh stack from test/fixtures/stack.ts on 127.0.0.1: a copy of
 * the repo's nginx/nginx.conf (2 workers, worker_shutdown_timeout 10s), the
 * include rendered with the config's default upstream keepalive (`keepalive 32;
 * keepalive_timeout 4s;` in every upstream block), two real backends
 * (src/demo/backend.ts), load from
 * `wrk -t2 -c64 --latency -s count.lua` (a Lua script counting 5xx in
 * `done()`), stopped with SIGINT at the end of the run (wrk then prints its
 * totals).
 *
 * - WALK: rollout slice 5, step 10, 1 s soaks, min_reload_interval 1 s, gates
 *   loosened so a healthy canary under saturation cannot drain (connect_p95
 *   2 s, baseline_p95_factor 1000, 50 % probe failures allowed), probes at
 *   the shipped default `probe.interval` (5 s, docs/design.md "Numbers": a
 *   probe's cost does not grow with the load, so a faster one would charge
 *   the sidecar a cost production does not pay; 500 ms cost 1.1–1.5 points
 *   of the fixed-weight ratio when measured) with `min_probes` 1 (a 5 s window
 *   holds one). The run lasts from the sidecar's API answering until it logs its
 *   walk complete (a `"kind":"complete"` event on its stdout; the status is
 *   then read once to check weight 100, phase complete): the bench does not
 *   poll the sidecar's API while it measures it. Reloads are
 *   `nginx_canary_reloads_total{result="ok"}`.
 * - FIXED (issue 13: the sidecar's CPU at a fixed weight, apart from reloads):
 *   the shipped config with target 50, walked there the same way under the
 *   same wrk; once complete and no old worker is left, CPU of the sidecar and
 *   of nginx over 15 s with no reload and no request to the sidecar,
 *   requests counted by the backends. Runs right after the shipped pair, and
 *   counts for the exit code as the walk's ratio does. Its CPU rate also
 *   splits the shipped walk's CPU (printed, an estimate): that rate over the
 *   walk's duration, and what is above it, per reload.
 * - CONTROL: the same nginx.conf with the include rendered once at weight 50
 *   (both backends busy, as in the middle of the walk), the same wrk, the walk's
 *   duration, and the walk's number of bare `nginx -s reload`s evenly spaced.
 *   nginx's error.log counts the SIGHUPs it really got while wrk ran (HUPs).
 * - Variants (`--variants=no-keepalive,buffer,sampled`, the default; `--variants=`
 *   runs the shipped config only), each again a walk and a control:
 *   `no-keepalive`: `upstream_keepalive: 0` in weights.yaml (no `keepalive` in
 *   the include of either run: a fresh upstream connection per request);
 *   `buffer`: the gates' access_log with `buffer=64k flush=250ms`;
 *   `sampled`: `nginx.access_log_sample: 20` and `if=$nginx_canary_log` on the
 *   access_log line (README "Sampled access log").
 *   The shipped config alone decides the exit code; variants are information.
 *
 * Connection errors (wrk's socket errors) come mostly from old workers closing
 * idle keep-alive client connections at each reload: a Poisson-like count
 * that flips either way between runs, so "walk ≤ control" literally would fail
 * half the time on noise. The check is walk ≤ control + 3·sqrt(max(control, 1))
 * (three standard deviations of a Poisson count with the control's mean), and
 * errors per reload (per SIGHUP nginx logged) are printed for both.
 *
 * RSS targets (80 MiB) are judged on VmHWM, the peak resident set; VmRSS and
 * VmHWM include ~40–46 MiB of the mapped node binary, shared with every Node
 * process on the host, so RssAnon (private memory) is printed against the
 * target as well, for information.
 *
 * Knobs for digging: BENCH_WALK_TRACE=1 prints CPU and RSS once a second;
 * BENCH_WALK_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p" is passed to the
 * sidecar's node, after the flags of bin/nginx-canary's shebang (the node
 * flags the shipped units run it with); `--fixed-only` runs the FIXED run
 * alone (~35 s); BENCH_WALK_SIDECAR=<checkout>/bin/nginx-canary runs another
 * build's sidecar (its own dist/) in the same bench, to compare builds;
 * BENCH_WALK_SAMPLE=<percent> sets `nginx.access_log_sample` (one of 1, 2,
 * 4, 5, 10, 20, 25, 50) in the stack's weights.yaml and `if=$nginx_canary_log`
 * on nginx.conf's access_log line: nginx logs that share of the lines whose
 * one attempt answered below 500 and every other line, and the sidecar weighs
 * each sampled line back to the requests it stands for (README "Sampled
 * access log"). Both runs use it.
 *
 * CPU: `/proc/<pid>/stat` utime+stime (fields 14, 15) in clock ticks
 * (`getconf CLK_TCK`), read with bench/lib/proc.ts. nginx's CPU is the master's utime+stime+cutime+cstime
 * plus utime+stime of its live children: an exited (old) worker's whole CPU
 * lands in the master's cutime+cstime when the master reaps it, so nothing is
 * lost between samples; read at the start and end of the run. The sidecar's is
 * its own utime+stime; the `nginx -t` / `nginx -s reload` children it waited
 * for (its cutime+cstime) are printed apart, and so is its CPU over 3 s after
 * the walk with no traffic (the fixed cost: probes, ticks). Both ratios are
 * sidecar CPU / nginx CPU over the same span, against 5 % (docs/design.md
 * "Targets", issue 13). RSS: VmRSS and RssAnon (private memory: RSS less the
 * mapped node binary and libraries) sampled every 200 ms, VmHWM (peak) from
 * /proc/<pid>/status.
 *
 * Bounded: every wait has a deadline, the whole bench is killed at 175 s, and
 * every process (wrk, sidecar, nginx, backends) is stopped by pid at the end,
 * on error and on Ctrl-C.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { request } from 'undici';
import { ACCESS_LOG_SAMPLES } from '../src/config/validate.js';
import { NginxCommand } from '../src/nginx/ctl.js';
import { buildModel } from '../src/nginx/model.js';
import { renderUpstreams } from '../src/nginx/render.js';
import { oldWorkers } from '../src/nginx/workers.js';
import { waitFor } from '../src/util/wait.js';
import { repoRoot, sample, startStack, userEnv, type Stack } from '../test/fixtures/stack.js';
import * as proc from './lib/proc.js';
import type { ProcessCpu } from './lib/proc.js';

const run = promisify(execFile);

const WRK = '/usr/bin/wrk';
const WRK_THREADS = 2;
const WRK_CONNECTIONS = 64;
/** Upper bound handed to wrk; every run stops it with SIGINT long before. */
const WRK_MAX_S = 150;
/** The whole bench must end within this (docs/design.md "Targets": under about 3 minutes). */
const BENCH_BUDGET_MS = 175_000;
/** A walk that has not completed by then is a failure (a drain, a hold). */
const WALK_TIMEOUT_MS = 60_000;
/** worker_shutdown_timeout of the shipped nginx/nginx.conf, ms (checked below). */
const SHUTDOWN_TIMEOUT_MS = 10_000;
/** probe.interval of every run: the shipped default (docs/design.md "Numbers"; see the header). */
const PROBE_INTERVAL = '5s';
/** How long the sidecar's idle CPU is measured after the walk, ms (CPU ticks are 10 ms: ±0.3 % of a core). */
const IDLE_MS = 3000;
/** `buffer`/`flush` of the access log in the `buffer` variant (nginx docs, ngx_http_log_module). */
const LOG_BUFFER = 'buffer=64k flush=250ms';
/** The load targets of docs/design.md "Targets". */
const TARGET_CPU_RATIO = 0.05;
/** Canary weight of the FIXED run, % (both pools busy, as in the middle of the walk). */
const FIXED_WEIGHT = 50;
/** Length of the FIXED run's measurement window, ms (issue 13: 15 s of wrk -c64 at a fixed weight). */
const FIXED_MS = 15_000;
const TARGET_RSS_MIB = 80;

const LUA = `-- counts responses by class per thread; done() sums the threads
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) n5xx = 0; n4xx = 0; n3xx = 0 end
function response(status, headers, body)
  if status >= 500 then n5xx = n5xx + 1
  elseif status >= 400 then n4xx = n4xx + 1
  elseif status >= 300 then n3xx = n3xx + 1 end
end
function done(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do a = a + t:get("n5xx"); b = b + t:get("n4xx"); c = c + t:get("n3xx") end
  io.write(string.format("BENCH 5xx %d 4xx %d 3xx %d\\n", a, b, c))
end
`;

// ---------------------------------------------------------------- cleanup

/** Stop steps of everything started and not yet stopped, newest last. */
const stoppers = new Set<() => Promise<void>>();

/** Registers `fn` to run at the end of its run, on error and on Ctrl-C; returns the once-only runner. */
function onStop(fn: () => unknown): () => Promise<void> {
  let done: Promise<void> | null = null;
  const once = (): Promise<void> => {
    stoppers.delete(once);
    done ??= (async () => {
      try {
        await fn();
      } catch (err) {
        console.error(`cleanup: ${(err as Error).message}`);
      }
    })();
    return done;
  };
  stoppers.add(once);
  return once;
}

/** A run's own stop steps: `add` registers one (also for Ctrl-C), `close` runs them newest first. */
interface Scope {
  add(fn: () => unknown): () => Promise<void>;
  close(): Promise<void>;
}

function scope(): Scope {
  const mine: (() => Promise<void>)[] = [];
  return {
    add(fn) {
      const once = onStop(fn);
      mine.push(once);
      return once;
    },
    async close() {
      for (const fn of mine.reverse()) await fn();
    },
  };
}

async function stopAll(): Promise<void> {
  for (const fn of [...stoppers].reverse()) await fn();
}

let aborting = false;
async function abort(why: string, code: number): Promise<never> {
  if (!aborting) {
    aborting = true;
    console.error(`\nbench:walk: ${why}; stopping everything it started`);
    await stopAll();
  }
  process.exit(code);
}
// `on`, not `once`: Ctrl-C reaches this process twice (from the terminal and relayed by tsx), and a
// second SIGINT without a handler would kill it before the cleanup ends.
process.on('SIGINT', () => void abort('interrupted', 130));
process.on('SIGTERM', () => void abort('terminated', 143));
setTimeout(() => void abort(`over its ${BENCH_BUDGET_MS / 1000} s budget`, 1), BENCH_BUDGET_MS).unref();

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

/**
 * The node flags of bin/nginx-canary's shebang (`#!/usr/bin/env -S node <flags>`), which the systemd
 * unit and the launchd plist run as a program: the bench starts the sidecar with the same flags.
 */
async function shippedNodeFlags(bin: string): Promise<string[]> {
  const first = (await readFile(bin, 'utf8')).split('\n')[0] ?? '';
  return (/^#!\/usr\/bin\/env -S node (.*)$/.exec(first)?.[1] ?? '').split(/\s+/).filter(Boolean);
}

// ---------------------------------------------------------------- /proc

let clkTck = 100;

/** utime+stime and cutime+cstime of one process, seconds; null when it is gone (bench/lib/proc.ts). */
const cpuOf = (pid: number): Promise<ProcessCpu | null> => proc.cpuOf(pid, clkTck);

/** CPU seconds of an nginx master and all its workers ever (see the file comment; bench/lib/proc.ts). */
const nginxCpu = (master: number): Promise<number> => proc.nginxCpu(master, clkTck);

/** VmRSS, VmHWM (peak RSS) and RssAnon (private memory) of a process, MiB; zeros when it is gone. */
async function memOf(pid: number): Promise<{ rss: number; hwm: number; anon: number }> {
  return (await proc.memOf(pid)) ?? { rss: 0, hwm: 0, anon: 0 };
}

/** The 1, 5 and 15 min load averages of /proc/loadavg ('?' when unreadable). */
async function loadAverage(): Promise<string> {
  return (await proc.loadAverage())?.map((x) => x.toFixed(2)).join(' ') ?? '?';
}

/** Busy and total jiffies of the whole host (first line of /proc/stat). */
const hostCpu = proc.hostCpu;

// ---------------------------------------------------------------- wrk

interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  non2xx3xx: number;
  c5xx: number;
  connect: number;
  read: number;
  write: number;
  timeout: number;
  raw: string;
}

function toMs(v: string | undefined, unit: string | undefined): number {
  const x = Number(v);
  return unit === 'us' ? x / 1000 : unit === 's' ? x * 1000 : unit === 'm' ? x * 60_000 : x;
}

function parseWrk(out: string): WrkResult {
  const m = /(\d+) requests in ([\d.]+)(\w+),/.exec(out);
  if (!m) throw new Error(`wrk printed no totals:\n${out}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const lat = (q: string): number => {
    const l = new RegExp(`^\\s+${q}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(out);
    return toMs(l?.[1], l?.[2]);
  };
  const lua = /BENCH 5xx (\d+)/.exec(out);
  if (!lua) throw new Error(`the Lua done() line is missing:\n${out}`);
  return {
    requests: Number(m[1]),
    seconds: toMs(m[2], m[3]) / 1000,
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    p50Ms: lat('50'),
    p99Ms: lat('99'),
    non2xx3xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    c5xx: Number(lua[1]),
    connect: Number(sock?.[1] ?? 0),
    read: Number(sock?.[2] ?? 0),
    write: Number(sock?.[3] ?? 0),
    timeout: Number(sock?.[4] ?? 0),
    raw: out,
  };
}

/** Starts wrk against `url`; `stop()` SIGINTs it and resolves to its totals. */
function startWrk(sc: Scope, url: string, lua: string): { stop(): Promise<WrkResult> } {
  const child = spawn(
    WRK,
    [`-t${WRK_THREADS}`, `-c${WRK_CONNECTIONS}`, `-d${WRK_MAX_S}s`, '--latency', '-s', lua, url],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const stop = sc.add(() => stopChild(child, 'SIGINT', 5000));
  return {
    async stop() {
      await stop();
      return parseWrk(out);
    },
  };
}

// ---------------------------------------------------------------- runs

/** One nginx setup both runs of a pair use. */
interface Variant {
  /** Shown in the tables. */
  name: string;
  /** nginx.upstream_keepalive in weights.yaml (undefined: the config's default, 32). */
  upstreamKeepalive?: number;
  /** `buffer=… flush=…` on the access log the gates read. */
  logBuffer: boolean;
  /** nginx.access_log_sample (and `if=$nginx_canary_log`); undefined: BENCH_WALK_SAMPLE, else every line. */
  sample?: number;
}

const VARIANTS: Record<string, Variant> = {
  shipped: { name: 'shipped', logBuffer: false },
  'no-keepalive': { name: 'no upstream keepalive', upstreamKeepalive: 0, logBuffer: false },
  buffer: { name: 'log buffer', logBuffer: true },
  sampled: { name: 'access_log_sample 20', logBuffer: false, sample: 20 },
};

/** The access_log_sample a variant runs with (undefined: every line). */
function sampleOf(v: Variant): number | undefined {
  return v.sample ?? SAMPLE;
}

/** The access_log line of nginx/nginx.conf, and what the `buffer` variant makes of it. */
const ACCESS_LOG = 'access_log logs/canary.json nginx_canary;';
/** The access_log line test/fixtures/stack.ts writes for a sampled log. */
const ACCESS_LOG_SAMPLED = 'access_log logs/canary.json nginx_canary if=$nginx_canary_log;';

/** BENCH_WALK_SAMPLE: nginx.access_log_sample for both runs, or undefined (every line). */
const SAMPLE = ((): number | undefined => {
  const s = process.env['BENCH_WALK_SAMPLE'];
  if (s === undefined || s === '') return undefined;
  const n = Number(s);
  if (!ACCESS_LOG_SAMPLES.includes(n) || n === 100)
    throw new Error(
      `BENCH_WALK_SAMPLE must be one of ${ACCESS_LOG_SAMPLES.filter((x) => x < 100).join(', ')}, got "${s}"`,
    );
  return n;
})();

interface RunResult {
  name: string;
  wrk: WrkResult;
  /** From the sidecar's API answering to weight 100 (walk), or the walk's duration again (control), s. */
  durationS: number;
  /** Walk: nginx_canary_reloads_total{result="ok"}; control: bare reloads sent. */
  reloads: number;
  /** SIGHUPs nginx logged while wrk ran. */
  hups: number;
  nginxCpuS: number;
  hostBusy: number;
  oldRightAfter: { shuttingDown: number; generations: number };
  oldPeak: { shuttingDown: number; generations: number };
  /** ms after the load stopped until no old worker was left, or null when some still were at the deadline. */
  drainedAfterMs: number | null;
  oldAtDeadline: number;
  sidecar: {
    cpuS: number;
    childrenCpuS: number;
    /** CPU over IDLE_MS with the walk complete and no traffic, % of one core: the fixed cost (probes, ticks, polls). */
    idlePercent: number;
    rssMaxMiB: number;
    anonMaxMiB: number;
    hwmMiB: number;
  } | null;
}

/** The walk's weights.yaml edits: gates that a healthy canary on a saturated host passes. */
function loosenGates(yaml: string): string {
  const out = yaml.replace('connect_p95: 120ms', 'connect_p95: 2s');
  if (out === yaml) throw new Error('weights.yaml of the stack fixture no longer has connect_p95: 120ms');
  return out;
}

/**
 * A fresh stack (nginx, backends; no sidecar) of variant `v` in `dir`, stopped when `sc` closes; the
 * sidecar's rollout target is `target` (canary %, 0–100).
 */
async function newStack(sc: Scope, dir: string, v: Variant, target = 100): Promise<Stack> {
  const teardowns: (() => unknown)[] = [];
  sc.add(async () => {
    for (const fn of teardowns.reverse()) await fn();
  });
  const stack = await startStack(
    { teardown: (fn) => teardowns.push(fn) },
    {
      dir,
      target,
      soak: '1s',
      window: '5s',
      minRequests: 20,
      minReloadInterval: '1s',
      probeInterval: PROBE_INTERVAL,
      minProbes: 1,
      probeFailureRatio: '50%',
      baselineFactor: 1000,
      ...(v.upstreamKeepalive === undefined ? {} : { upstreamKeepalive: v.upstreamKeepalive }),
      ...(sampleOf(v) === undefined ? {} : { accessLogSample: sampleOf(v) }),
    },
  );
  const conf = await readFile(stack.config.nginx.conf, 'utf8');
  if (!conf.includes(`worker_shutdown_timeout ${SHUTDOWN_TIMEOUT_MS / 1000}s;`))
    throw new Error(`nginx/nginx.conf no longer sets worker_shutdown_timeout ${SHUTDOWN_TIMEOUT_MS / 1000}s`);
  const logLine = sampleOf(v) === undefined ? ACCESS_LOG : ACCESS_LOG_SAMPLED;
  if (!conf.includes(logLine)) throw new Error(`the stack's nginx.conf no longer has "${logLine}"`);
  const include = await readFile(stack.config.nginx.upstreamsFile, 'utf8');
  if (include.includes('keepalive ') !== stack.config.nginx.upstreamKeepalive > 0)
    throw new Error(`the include does not match upstream_keepalive ${stack.config.nginx.upstreamKeepalive}`);
  return stack;
}

/**
 * Puts the variant in place before the load starts: the include re-rendered
 * at `weight` when given (upstream keepalive as the stack's weights.yaml says),
 * the access_log buffered when the variant says so; one reload, then no old
 * worker left.
 */
async function prepare(stack: Stack, v: Variant, weight: number | null): Promise<void> {
  const config = stack.config;
  if (weight === null && !v.logBuffer) return;
  const ctl = new NginxCommand(config.nginx);
  if (weight !== null)
    await writeFile(config.nginx.upstreamsFile, renderUpstreams(buildModel(config, { gateway: weight }, 0, 'oss')));
  if (v.logBuffer) {
    const conf = await readFile(config.nginx.conf, 'utf8');
    const line = sampleOf(v) === undefined ? ACCESS_LOG : ACCESS_LOG_SAMPLED;
    await writeFile(config.nginx.conf, conf.replace(line, line.replace(';', ` ${LOG_BUFFER};`)));
  }
  const t = await ctl.test();
  if (!t.ok) throw new Error(`nginx -t failed for variant ${v.name}: ${t.output}`);
  await ctl.reload();
  await waitFor(async () => (await oldWorkers(stack.nginx.pid)).shuttingDown === 0 && (await sighups(stack)) > 0, {
    timeoutMs: 5000,
    what: `variant ${v.name} live, no old workers`,
  });
}

/** `SIGHUP` lines in nginx's error.log (notice level): the reloads nginx really got. */
async function sighups(stack: Stack): Promise<number> {
  const log = await readFile(path.join(stack.config.nginx.prefix ?? '', 'logs', 'error.log'), 'utf8').catch(() => '');
  return log.split('\n').filter((l) => l.includes('signal 1 (SIGHUP) received')).length;
}

/** Waits until the backends saw `n` more requests: wrk is loading nginx. */
async function loaded(stack: Stack, n = 2000): Promise<void> {
  const base = stack.primary.hits + stack.canary.hits;
  await waitFor(() => stack.primary.hits + stack.canary.hits - base >= n, {
    timeoutMs: 10_000,
    what: `${n} requests through nginx`,
  });
}

/**
 * Samples old workers (and the sidecar's RSS) every 200 ms until stopped.
 * With BENCH_WALK_TRACE=1 prints a line a second: CPU of the sidecar and of
 * nginx over the last second (% of one core), RSS, old workers.
 */
function sampler(master: number, sidecarPid: number | null) {
  const peak = { shuttingDown: 0, generations: 0 };
  let rssMax = 0;
  let anonMax = 0;
  let stopped = false;
  const trace = process.env['BENCH_WALK_TRACE'] === '1';
  const t0 = performance.now();
  let last = { t: t0, side: 0, nginx: 0 };
  const loop = (async () => {
    for (let i = 0; !stopped && i < 1000; i++) {
      const w = await oldWorkers(master);
      peak.shuttingDown = Math.max(peak.shuttingDown, w.shuttingDown);
      peak.generations = Math.max(peak.generations, w.generations);
      const mem = sidecarPid === null ? { rss: 0, anon: 0 } : await memOf(sidecarPid);
      const rss = mem.rss;
      rssMax = Math.max(rssMax, rss);
      anonMax = Math.max(anonMax, mem.anon);
      if (trace && i % 5 === 0) {
        const now = { t: performance.now(), side: 0, nginx: await nginxCpu(master) };
        now.side = sidecarPid === null ? 0 : ((await cpuOf(sidecarPid))?.self ?? 0);
        const dt = (now.t - last.t) / 1000;
        if (i > 0)
          console.log(
            `    t=${((now.t - t0) / 1000).toFixed(1)} s sidecar ${((100 * (now.side - last.side)) / dt).toFixed(0)} % ` +
              `rss ${rss.toFixed(0)} MiB, nginx ${((100 * (now.nginx - last.nginx)) / dt).toFixed(0)} %, old ${w.shuttingDown}/${w.generations}`,
          );
        last = now;
      }
      await delay(200); // pacing: one sample every 200 ms, not a settle wait
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { peak, rssMax, anonMax };
    },
  };
}

/** After the load stopped: ms until no old worker is left (null past worker_shutdown_timeout + 3 s) and the count then. */
async function drainOld(master: number): Promise<{ ms: number | null; left: number }> {
  const t0 = performance.now();
  try {
    await waitFor(async () => (await oldWorkers(master)).shuttingDown === 0, {
      timeoutMs: SHUTDOWN_TIMEOUT_MS + 3000,
      intervalMs: 50,
      what: 'old workers to exit',
    });
    return { ms: performance.now() - t0, left: 0 };
  } catch {
    return { ms: null, left: (await oldWorkers(master)).shuttingDown };
  }
}

/** A sidecar child started by {@link startSidecar}. */
interface Sidecar {
  pid: number;
  /** SIGTERM, then SIGKILL after 10 s; resolves once it exited. */
  stop(): Promise<void>;
  /** The tail of its output, for error messages. */
  tail(): string;
  /** The event kinds (`complete`, `drain`, …) its JSON log lines have reported so far. */
  events: ReadonlySet<string>;
}

/**
 * Starts `bin/nginx-canary -c <weights.yaml> run` for `stack` with the shipped node flags (plus
 * BENCH_WALK_NODE_ARGS) and waits for its API to answer /healthz (15 s deadline).
 */
async function startSidecar(sc: Scope, dir: string, stack: Stack, bin: string): Promise<Sidecar> {
  const nodeArgs = [
    ...(await shippedNodeFlags(bin)),
    ...(process.env['BENCH_WALK_NODE_ARGS'] ?? '').split(/\s+/).filter(Boolean),
  ];
  const child = spawn(process.execPath, [...nodeArgs, bin, '-c', stack.configFile, 'run'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: userEnv(),
  });
  let out = '';
  let partial = '';
  const events = new Set<string>();
  child.stdout.on('data', (d: Buffer) => {
    const text = d.toString();
    out = (out + text).slice(-20_000);
    // Its log is JSON lines (stdout is a pipe): every rollout event carries "kind" (runner.ts #afterEvents).
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      const kind = /"kind":"([a-z_]+)"/.exec(l)?.[1];
      if (kind !== undefined) events.add(kind);
    }
  });
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const stop = sc.add(() => stopChild(child, 'SIGTERM', 10_000));
  const pid = child.pid;
  if (pid === undefined) throw new Error('the sidecar did not start');
  const tail = (): string => `\n--- sidecar output (tail) ---\n${out.split('\n').slice(-30).join('\n')}`;
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`sidecar exited ${child.exitCode}`);
      const r = await request(`${stack.api}/healthz`);
      await r.body.dump();
      return r.statusCode === 200;
    },
    { timeoutMs: 15_000, what: 'the sidecar API' },
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}${tail()}`);
  });
  return { pid, stop, tail, events };
}

/**
 * Waits (WALK_TIMEOUT_MS) for the sidecar to log its walk's `complete` event, then checks once that its
 * status says `weight` %, phase complete. Watching its own log instead of polling its API keeps the
 * bench's requests out of the sidecar CPU it measures (each status answer costs the sidecar some ms of
 * CPU: at the 250 ms polls this bench used to make, a few % of nginx's CPU). Throws on a `drain` event.
 */
async function completion(sidecar: Sidecar, stack: Stack, weight: number): Promise<void> {
  await waitFor(
    () => {
      if (sidecar.events.has('drain')) throw new Error('the walk drained (a drain event in the sidecar log)');
      return sidecar.events.has('complete');
    },
    { timeoutMs: WALK_TIMEOUT_MS, intervalMs: 20, what: `the sidecar to log its walk complete at ${weight} %` },
  );
  const s = (await stack.status()).services[0];
  if (s?.weight !== weight || s.phase !== 'complete')
    throw new Error(`the sidecar logged complete, but its status says ${s?.weight ?? '?'} %, ${s?.phase ?? '?'}`);
}

/** WALK of variant `v` with the sidecar at `bin` (see the file comment). */
async function walkRun(v: Variant, bin: string): Promise<RunResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nginx-canary-bench-walk-'));
  const sc = scope();
  sc.add(() => rm(dir, { recursive: true, force: true }));
  try {
    const stack = await newStack(sc, dir, v);
    await writeFile(stack.configFile, loosenGates(await readFile(stack.configFile, 'utf8')));
    await prepare(stack, v, null);
    const lua = path.join(dir, 'count.lua');
    await writeFile(lua, LUA);
    const master = stack.nginx.pid;
    const hup0 = await sighups(stack);
    const wrk = startWrk(sc, stack.url, lua);
    await loaded(stack);

    const sidecar = await startSidecar(sc, dir, stack, bin);
    const { pid } = sidecar;
    const tail = (): string => sidecar.tail();

    const t0 = performance.now();
    const [n0, s0, h0] = [await nginxCpu(master), await cpuOf(pid), await hostCpu()];
    const samples = sampler(master, pid);
    await completion(sidecar, stack, 100).catch(async (err: unknown) => {
      const s = (await stack.status().catch(() => null))?.services[0];
      throw new Error(`${(err as Error).message}; last status: ${s?.summary ?? '?'}${tail()}`);
    });
    const t1 = performance.now();
    const [n1, s1, h1, mem] = [await nginxCpu(master), await cpuOf(pid), await hostCpu(), await memOf(pid)];
    const metrics = await stack.metrics();
    const reloads = Number(/^nginx_canary_reloads_total\{result="ok"\} (\d+)/m.exec(metrics)?.[1] ?? NaN);
    const end = await endOfLoad(master, samples, wrk, stack, hup0);
    const i0 = await cpuOf(pid);
    await delay(IDLE_MS); // a measurement window: the sidecar's idle CPU over IDLE_MS, not a settle wait
    const i1 = await cpuOf(pid);
    await sidecar.stop();
    if (!s0 || !s1 || !i0 || !i1) throw new Error('the sidecar vanished from /proc');
    return {
      name: `walk, ${v.name}`,
      ...end.result,
      durationS: (t1 - t0) / 1000,
      reloads,
      nginxCpuS: n1 - n0,
      hostBusy: (h1.busy - h0.busy) / (h1.total - h0.total),
      sidecar: {
        cpuS: s1.self - s0.self,
        childrenCpuS: s1.children - s0.children,
        idlePercent: (100 * (i1.self - i0.self) * 1000) / IDLE_MS,
        rssMaxMiB: Math.max(end.rssMax, mem.rss),
        anonMaxMiB: Math.max(end.anonMax, mem.anon),
        hwmMiB: mem.hwm,
      },
    };
  } finally {
    await sc.close();
  }
}

/** What {@link fixedRun} measured over its FIXED_MS window. */
interface FixedResult {
  /** Length of the measurement window, s. */
  durationS: number;
  /** Requests the two backends answered in the window. */
  requests: number;
  /** Access-log lines the sidecar counted in the window (`nginx_canary_log_lines_total`, all results). */
  lines: number;
  /** Reloads the sidecar made in the window (0: the weight stayed fixed). */
  reloads: number;
  /** Sidecar utime+stime in the window, s (its `nginx -t` children apart: none without reloads). */
  sidecarCpuS: number;
  /** nginx master and workers, utime+stime (see the file comment), s. */
  nginxCpuS: number;
  /** Busy share of the whole host in the window, 0–1 (/proc/stat). */
  hostBusy: number;
  wrk: WrkResult;
}

/** Sum of every `nginx_canary_log_lines_total{result=…}` sample of a /metrics text. */
function logLines(metrics: string): number {
  let n = 0;
  for (const m of metrics.matchAll(/^nginx_canary_log_lines_total\{result="[a-z]+"\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

/**
 * FIXED: the shipped config with target FIXED_WEIGHT (the same walk there: slice 5, step 10, 1 s soaks),
 * under the same wrk; once the sidecar reports the target reached (phase complete) and no old worker is
 * left, CPU of the sidecar and of nginx over FIXED_MS with no reload, no bench request to the sidecar
 * (the status is not polled in the window), requests from the backends' counters.
 */
async function fixedRun(bin: string): Promise<FixedResult> {
  const v = VARIANTS['shipped'] as Variant;
  const dir = await mkdtemp(path.join(tmpdir(), 'nginx-canary-bench-fixed-'));
  const sc = scope();
  sc.add(() => rm(dir, { recursive: true, force: true }));
  try {
    const stack = await newStack(sc, dir, v, FIXED_WEIGHT);
    await writeFile(stack.configFile, loosenGates(await readFile(stack.configFile, 'utf8')));
    const lua = path.join(dir, 'count.lua');
    await writeFile(lua, LUA);
    const master = stack.nginx.pid;
    const wrk = startWrk(sc, stack.url, lua);
    await loaded(stack);
    const sidecar = await startSidecar(sc, dir, stack, bin);
    await completion(sidecar, stack, FIXED_WEIGHT).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}${sidecar.tail()}`);
    });
    await waitFor(async () => (await oldWorkers(master)).shuttingDown === 0, {
      timeoutMs: SHUTDOWN_TIMEOUT_MS + 3000,
      intervalMs: 100,
      what: 'no old nginx worker before the fixed-weight window',
    });
    const m0 = await stack.metrics();
    const hits0 = stack.primary.hits + stack.canary.hits;
    const t0 = performance.now();
    const [n0, s0, h0] = [await nginxCpu(master), await cpuOf(sidecar.pid), await hostCpu()];
    await delay(FIXED_MS); // the measurement window itself, not a settle wait
    const [n1, s1, h1] = [await nginxCpu(master), await cpuOf(sidecar.pid), await hostCpu()];
    const t1 = performance.now();
    const hits1 = stack.primary.hits + stack.canary.hits;
    const m1 = await stack.metrics();
    const w = await wrk.stop();
    await sidecar.stop();
    if (!s0 || !s1) throw new Error('the sidecar vanished from /proc');
    const reloads = (m: string): number => sample(m, 'nginx_canary_reloads_total{result="ok"}');
    return {
      durationS: (t1 - t0) / 1000,
      requests: hits1 - hits0,
      lines: logLines(m1) - logLines(m0),
      reloads: reloads(m1) - reloads(m0),
      sidecarCpuS: s1.self - s0.self,
      nginxCpuS: n1 - n0,
      hostBusy: (h1.busy - h0.busy) / (h1.total - h0.total),
      wrk: w,
    };
  } finally {
    await sc.close();
  }
}

/**
 * The readings both runs take when the load ends, in this order: old workers right away, the
 * samplers (old-worker peak; RSS and RssAnon max in MiB, 0 without a sidecar), wrk's result, the
 * SIGHUPs nginx logged since `hup0`, then the old workers draining (see {@link drainOld}).
 */
async function endOfLoad(
  master: number,
  samples: ReturnType<typeof sampler>,
  wrk: { stop(): Promise<WrkResult> },
  stack: Stack,
  hup0: number,
): Promise<{
  result: Pick<RunResult, 'wrk' | 'hups' | 'oldRightAfter' | 'oldPeak' | 'drainedAfterMs' | 'oldAtDeadline'>;
  rssMax: number;
  anonMax: number;
}> {
  const oldRightAfter = await oldWorkers(master);
  const { peak, rssMax, anonMax } = await samples.stop();
  const w = await wrk.stop();
  const hups = (await sighups(stack)) - hup0;
  const drain = await drainOld(master);
  return {
    result: { wrk: w, hups, oldRightAfter, oldPeak: peak, drainedAfterMs: drain.ms, oldAtDeadline: drain.left },
    rssMax,
    anonMax,
  };
}

/** CONTROL of variant `v`: weight 50, `reloads` bare reloads evenly over `durationS`, no sidecar. */
async function controlRun(v: Variant, durationS: number, reloads: number): Promise<RunResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nginx-canary-bench-control-'));
  const sc = scope();
  sc.add(() => rm(dir, { recursive: true, force: true }));
  try {
    const stack = await newStack(sc, dir, v);
    await prepare(stack, v, 50);
    const ctl = new NginxCommand(stack.config.nginx);
    const master = stack.nginx.pid;
    const lua = path.join(dir, 'count.lua');
    await writeFile(lua, LUA);
    const hup0 = await sighups(stack);
    const wrk = startWrk(sc, stack.url, lua);
    await loaded(stack);

    const t0 = performance.now();
    const [n0, h0] = [await nginxCpu(master), await hostCpu()];
    const samples = sampler(master, null);
    const every = (durationS * 1000) / Math.max(1, reloads);
    // Pacing, not settle waits: reloads evenly spread, then the rest of the run's duration.
    for (let i = 0; i < reloads; i++) {
      const wait = t0 + (i + 0.5) * every - performance.now();
      if (wait > 0) await delay(wait);
      await ctl.reload();
    }
    const left = t0 + durationS * 1000 - performance.now();
    if (left > 0) await delay(left);
    const t1 = performance.now();
    const [n1, h1] = [await nginxCpu(master), await hostCpu()];
    const end = await endOfLoad(master, samples, wrk, stack, hup0);
    return {
      name: `control, ${v.name}`,
      ...end.result,
      durationS: (t1 - t0) / 1000,
      reloads,
      nginxCpuS: n1 - n0,
      hostBusy: (h1.busy - h0.busy) / (h1.total - h0.total),
      sidecar: null,
    };
  } finally {
    await sc.close();
  }
}

// ---------------------------------------------------------------- report

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r, ri) => {
      const line = r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
      return ri === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

const int = (n: number): string => Math.round(n).toLocaleString('en');
const connErrors = (w: WrkResult): number => w.connect + w.read + w.write + w.timeout;

function loadTable(runs: RunResult[]): string {
  return table([
    [
      'run',
      'run s',
      'wrk s',
      'reloads (HUPs)',
      'requests',
      'req/s',
      'p50 ms',
      'p99 ms',
      'client 5xx',
      'non-2xx/3xx',
      'conn err c/r/w/t',
      'per reload',
      'nginx CPU',
      'host busy',
    ],
    ...runs.map((r) => [
      r.name,
      r.durationS.toFixed(1),
      r.wrk.seconds.toFixed(1),
      `${r.reloads} (${r.hups})`,
      int(r.wrk.requests),
      int(r.wrk.rps),
      r.wrk.p50Ms.toFixed(1),
      r.wrk.p99Ms.toFixed(1),
      int(r.wrk.c5xx),
      int(r.wrk.non2xx3xx),
      `${r.wrk.connect}/${r.wrk.read}/${r.wrk.write}/${r.wrk.timeout}`,
      (connErrors(r.wrk) / Math.max(1, r.hups)).toFixed(1),
      `${r.nginxCpuS.toFixed(1)} s = ${(r.nginxCpuS / r.durationS).toFixed(2)} cores`,
      `${(100 * r.hostBusy).toFixed(0)} %`,
    ]),
  ]);
}

function oldTable(runs: RunResult[]): string {
  return table([
    ['run', 'peak during run', 'right after', 'all exited', `left at ${SHUTDOWN_TIMEOUT_MS / 1000} s + 3 s`],
    ...runs.map((r) => [
      r.name,
      `${r.oldPeak.shuttingDown} / ${r.oldPeak.generations}`,
      `${r.oldRightAfter.shuttingDown} / ${r.oldRightAfter.generations}`,
      r.drainedAfterMs === null ? 'not yet' : `${(r.drainedAfterMs / 1000).toFixed(2)} s after the load`,
      String(r.oldAtDeadline),
    ]),
  ]);
}

// ---------------------------------------------------------------- main

const variantArg = process.argv.find((a) => a.startsWith('--variants='))?.slice('--variants='.length);
const extra = (variantArg ?? 'no-keepalive,buffer,sampled').split(',').filter(Boolean);
for (const x of extra)
  if (!(x in VARIANTS) || x === 'shipped')
    await abort(`unknown variant "${x}" (known: no-keepalive, buffer, sampled)`, 2);
const variants = [VARIANTS['shipped'], ...extra.map((x) => VARIANTS[x])].filter((v): v is Variant => v !== undefined);
const fixedOnly = process.argv.includes('--fixed-only');

if (process.platform !== 'linux' || !existsSync('/proc/self/stat'))
  await abort('needs Linux /proc (CPU, RSS and old workers are read there)', 2);
if (!existsSync(WRK)) await abort(`needs ${WRK} (Debian: apt-get install wrk)`, 2);
if (process.env['BENCH_WALK_SIDECAR'] === undefined && !existsSync(path.join(repoRoot, 'dist', 'cli', 'main.js')))
  await abort('needs dist/: run `npm run build`', 2);
clkTck = await proc.clockTicks();
const nginxV = (await run('nginx', ['-v']).catch(() => ({ stderr: '?' }))).stderr.trim();
const nproc = (await run('nproc')).stdout.trim();
console.log(
  `bench:walk — ${nginxV}, node ${process.version}, ${nproc} CPUs, CLK_TCK ${clkTck}; ` +
    `wrk -t${WRK_THREADS} -c${WRK_CONNECTIONS} --latency on 127.0.0.1; walk: slice 5, step 10, 1 s soaks, ` +
    `min_reload_interval 1 s; variants: ${variants.map((v) => v.name).join(', ')}; load average ${await loadAverage()}` +
    (process.env['BENCH_WALK_SIDECAR'] === undefined ? '' : `; sidecar ${process.env['BENCH_WALK_SIDECAR']}`) +
    (process.env['BENCH_WALK_SAMPLE'] === undefined
      ? ''
      : `; nginx.access_log_sample ${SAMPLE}: that share of the lines below 500, each weighed back by the sidecar`),
);
const started = performance.now();
const runs: RunResult[] = [];
let fixed: FixedResult | null = null;
const bin = process.env['BENCH_WALK_SIDECAR'] ?? path.join(repoRoot, 'bin', 'nginx-canary');
try {
  if (fixedOnly) {
    fixed = await fixedRun(bin);
    console.log(`  fixed weight ${FIXED_WEIGHT}: ${fixed.durationS.toFixed(1)} s, ${int(fixed.requests)} requests`);
  }
  for (const v of fixedOnly ? [] : variants) {
    // A pair takes about two walks plus ~15 s of setup; skip variants that would not fit the budget.
    const last = runs[runs.length - 2];
    const elapsed = performance.now() - started;
    if (last && elapsed + (2 * last.durationS + 20) * 1000 > BENCH_BUDGET_MS - 10_000) {
      console.log(`  skipping variant ${v.name}: it would not fit the ${BENCH_BUDGET_MS / 1000} s budget`);
      continue;
    }
    const walk = await walkRun(v, bin);
    runs.push(walk);
    console.log(`  ${walk.name}: ${walk.durationS.toFixed(1)} s, ${walk.reloads} reloads`);
    const control = await controlRun(v, walk.durationS, walk.reloads);
    runs.push(control);
    console.log(`  ${control.name}: ${control.durationS.toFixed(1)} s, ${control.reloads} reloads`);
    if (fixed === null) {
      // Right after the shipped pair, before the variants (which the budget may skip): its figure counts.
      fixed = await fixedRun(bin);
      console.log(`  fixed weight ${FIXED_WEIGHT}: ${fixed.durationS.toFixed(1)} s, ${int(fixed.requests)} requests`);
    }
  }
} catch (err) {
  console.error(`bench:walk failed: ${(err as Error).stack ?? String(err)}`);
  await abort('failed', 1);
}

console.log(
  '\nLoad (wrk totals over its whole run; conn err = socket errors connect/read/write/timeout; 5xx counted by the Lua script)\n',
);
console.log(loadTable(runs));
console.log(
  '\nOld nginx workers shutting down (oldWorkers: children of the master titled "worker process is shutting down"; workers / generations)\n',
);
console.log(oldTable(runs));

console.log('\nSidecar while nginx is under the load\n');
/** PASS/FAIL lines; `counts` marks the shipped config's, which alone decide the exit code. */
const checks: { ok: boolean; counts: boolean; line: string }[] = [];
const sideRows: string[][] = [
  [
    'run',
    'sidecar CPU',
    '(+ nginx -t/-s children)',
    'idle after',
    'nginx CPU',
    'sidecar / nginx',
    'VmRSS max',
    'VmHWM (peak)',
    'RssAnon max (private)',
  ],
];
for (let i = 0; i < runs.length; i += 2) {
  const walk = runs[i];
  const control = runs[i + 1];
  if (!walk?.sidecar || !control) continue;
  const s = walk.sidecar;
  const ratio = s.cpuS / walk.nginxCpuS;
  sideRows.push([
    walk.name,
    `${s.cpuS.toFixed(2)} s = ${((100 * s.cpuS) / walk.durationS).toFixed(1)} % of a core`,
    `${s.childrenCpuS.toFixed(2)} s`,
    `${s.idlePercent.toFixed(1)} %`,
    `${walk.nginxCpuS.toFixed(2)} s`,
    `${(100 * ratio).toFixed(1)} %`,
    `${s.rssMaxMiB.toFixed(0)} MiB`,
    `${s.hwmMiB.toFixed(0)} MiB`,
    `${s.anonMaxMiB.toFixed(0)} MiB`,
  ]);
  const shipped = i === 0;
  const tag = shipped ? '' : ` [${walk.name.replace('walk, ', '')}, for information]`;
  const check = (ok: boolean, line: string, counts = shipped): void => {
    checks.push({ ok, counts, line: `${line}${tag}` });
  };
  check(walk.wrk.c5xx === 0, `0 client 5xx in the walk (walk ${walk.wrk.c5xx}, control ${control.wrk.c5xx})`);
  const [we, ce] = [connErrors(walk.wrk), connErrors(control.wrk)];
  const allowed = ce + 3 * Math.sqrt(Math.max(ce, 1));
  const perReload = (r: RunResult): string => (connErrors(r.wrk) / Math.max(1, r.hups)).toFixed(1);
  check(
    we <= allowed,
    `connection errors: walk ≤ control + 3·sqrt(max(control, 1)) (Poisson-like counts; walk ${we}, control ${ce}, ` +
      `allowed ≤ ${allowed.toFixed(1)}; per reload: walk ${perReload(walk)}, control ${perReload(control)})`,
  );
  check(
    ratio <= TARGET_CPU_RATIO,
    `sidecar CPU ≤ ${100 * TARGET_CPU_RATIO} % of nginx's in the walk (${(100 * ratio).toFixed(1)} %: ` +
      `${Math.round(s.cpuS * clkTck)} vs ${Math.round(walk.nginxCpuS * clkTck)} ticks over ${walk.durationS.toFixed(1)} s, ` +
      `${walk.reloads} reloads, ${int(walk.wrk.requests)} requests in wrk's whole run)`,
  );
  check(
    s.hwmMiB <= TARGET_RSS_MIB,
    `sidecar peak RSS (VmHWM) ≤ ${TARGET_RSS_MIB} MiB (${s.hwmMiB.toFixed(0)} MiB; includes the shared node binary)`,
  );
  check(
    s.anonMaxMiB <= TARGET_RSS_MIB,
    `sidecar private memory (RssAnon max) ≤ ${TARGET_RSS_MIB} MiB (${s.anonMaxMiB.toFixed(0)} MiB), for information`,
    false,
  );
  check(
    walk.oldAtDeadline === 0,
    `no old worker left after worker_shutdown_timeout (${walk.oldAtDeadline}; ${walk.oldRightAfter.shuttingDown} right after the walk)`,
  );
}
console.log(table(sideRows));
if (fixed !== null) {
  const f = fixed;
  const ratio = f.sidecarCpuS / f.nginxCpuS;
  const ticks = (sec: number): string => int(sec * clkTck);
  console.log(
    `\nSidecar at a fixed weight (${FIXED_WEIGHT} %, target reached, no reload, no status poll) over ` +
      `${(FIXED_MS / 1000).toFixed(0)} s of the same wrk (CPU in clock ticks of 1/${clkTck} s)\n`,
  );
  console.log(
    table([
      [
        'window s',
        'requests',
        'req/s',
        'log lines',
        'reloads',
        'sidecar CPU',
        'nginx CPU',
        'sidecar / nginx',
        'host busy',
      ],
      [
        f.durationS.toFixed(1),
        int(f.requests),
        int(f.requests / f.durationS),
        int(f.lines),
        String(f.reloads),
        `${ticks(f.sidecarCpuS)} ticks = ${((100 * f.sidecarCpuS) / f.durationS).toFixed(1)} % of a core`,
        `${ticks(f.nginxCpuS)} ticks = ${(f.nginxCpuS / f.durationS).toFixed(2)} cores`,
        `${(100 * ratio).toFixed(1)} %`,
        `${(100 * f.hostBusy).toFixed(0)} %`,
      ],
    ]),
  );
  const w = runs[0];
  if (w?.sidecar && w.reloads > 0) {
    // An estimate: the walk's log fills at about the fixed run's rate (the same wrk, the same log format),
    // so what the walk costs above that rate is its reloads' (each a step: snapshot, write, nginx -t, proof).
    const base = (f.sidecarCpuS / f.durationS) * w.durationS;
    const above = w.sidecar.cpuS - base;
    console.log(
      `
The shipped walk's sidecar CPU split at the fixed weight's rate (an estimate): ${ticks(base)} ticks at that ` +
        `rate over the walk's ${w.durationS.toFixed(1)} s (${((100 * base) / w.nginxCpuS).toFixed(1)} % of the walk's nginx ` +
        `CPU: what a walk without reloads would cost), ${ticks(above)} above it for ${w.reloads} reloads: ` +
        `${((1000 * above) / w.reloads).toFixed(1)} ms of CPU a reload (bench:apply times an apply alone).`,
    );
  }
  checks.push({
    ok: ratio <= TARGET_CPU_RATIO && f.reloads === 0,
    counts: true,
    line:
      `sidecar CPU ≤ ${100 * TARGET_CPU_RATIO} % of nginx's at a fixed weight ${FIXED_WEIGHT} ` +
      `(${(100 * ratio).toFixed(1)} %: ${ticks(f.sidecarCpuS)} vs ${ticks(f.nginxCpuS)} ticks over ` +
      `${f.durationS.toFixed(1)} s, ${int(f.requests)} requests${f.reloads === 0 ? '' : `; ${f.reloads} reloads in the window: not fixed`})`,
  });
}
console.log(
  '\nVmRSS and VmHWM include ~40–46 MiB of the mapped node binary, shared with every Node process on the host;\n' +
    'RssAnon is the private part (heap, stacks). The RSS target is judged on VmHWM; RssAnon is shown against it too.',
);
console.log('\nTargets (docs/design.md "Targets"; the shipped config decides the exit code)\n');
console.log(checks.map((c) => `${c.ok ? 'PASS' : 'FAIL'}  ${c.line}`).join('\n'));
console.log(
  `\nbench:walk took ${((performance.now() - started) / 1000).toFixed(0)} s; load average ${await loadAverage()} ` +
    '(the box is shared: CPU ratios move with what else runs)',
);
process.exitCode = checks.some((c) => c.counts && !c.ok) ? 1 : 0;
