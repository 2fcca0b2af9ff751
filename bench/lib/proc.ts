/**
 * Linux `/proc` readers the benches share: CPU time of a process (and of an nginx master with its
 * workers), its memory (VmRSS, VmHWM, RssAnon, RssFile), the whole host's CPU and the load average,
 * and a reset of a process's peak resident set. Field meanings are proc(5) (man7.org/linux/man-pages/
 * man5/proc.5.html, sections /proc/pid/stat, /proc/pid/status, /proc/stat, /proc/loadavg,
 * /proc/pid/clear_refs).
 *
 * Units: CPU in seconds (from clock ticks, `getconf CLK_TCK`, see {@link clockTicks}); memory in
 * MiB (the kernel prints kB = KiB). A process that is gone, or a file that cannot be read, gives null
 * (never throws), since a process can exit between two reads. Linux only: elsewhere every reader
 * returns null (or zeros, where said).
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { statFields } from '../../src/nginx/workers.js';

const run = promisify(execFile);

/**
 * Clock ticks per second of `/proc/<pid>/stat`'s time fields (`getconf CLK_TCK`; USER_HZ, 100 on
 * every mainstream Linux architecture, proc(5)); 100 when getconf fails. Never throws.
 */
export async function clockTicks(): Promise<number> {
  try {
    return Number((await run('getconf', ['CLK_TCK'])).stdout.trim()) || 100;
  } catch {
    return 100;
  }
}

/** CPU time of one process, seconds. */
export interface ProcessCpu {
  /** utime + stime (fields 14, 15 of /proc/<pid>/stat): the process itself, all its threads. */
  self: number;
  /** cutime + cstime (fields 16, 17): children it has waited for (an nginx master: its exited workers). */
  children: number;
}

/**
 * {@link ProcessCpu} of `pid` from `/proc/<pid>/stat`, seconds (ticks / `clkTck`, see
 * {@link clockTicks}); null when the process is gone or the line cannot be parsed. Never throws.
 */
export async function cpuOf(pid: number, clkTck: number): Promise<ProcessCpu | null> {
  try {
    const f = statFields(await readFile(`/proc/${pid}/stat`, 'utf8'));
    if (!f) return null;
    const n = (i: number): number => Number(f[i - 3]);
    return { self: (n(14) + n(15)) / clkTck, children: (n(16) + n(17)) / clkTck };
  } catch {
    return null;
  }
}

/**
 * CPU seconds an nginx master and all its workers ever used: the master's utime+stime+cutime+cstime
 * plus utime+stime of its live children (`/proc/<pid>/task/<pid>/children`). An exited (old) worker's
 * whole CPU lands in the master's cutime+cstime when the master reaps it, so nothing is lost between
 * two readings. 0 when the master is gone. Never throws.
 */
export async function nginxCpu(master: number, clkTck: number): Promise<number> {
  const kids = (await readFile(`/proc/${master}/task/${master}/children`, 'utf8').catch(() => ''))
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  let sum = 0;
  for (const k of kids) sum += (await cpuOf(k, clkTck))?.self ?? 0;
  const m = await cpuOf(master, clkTck);
  return sum + (m ? m.self + m.children : 0);
}

/**
 * Memory of one process from `/proc/<pid>/status`, MiB. VmRSS = RssAnon + RssFile + RssShmem. For a
 * Node process RssFile is mostly the mapped node binary and libraries (~40–46 MiB on Node 20, shared
 * with every Node process on the host); RssAnon is its private memory (V8 heap, malloc, stacks).
 */
export interface ProcessMemory {
  /** VmRSS: resident set now. */
  rss: number;
  /** VmHWM: the peak of VmRSS since the process started or since {@link resetPeak}. */
  hwm: number;
  /** RssAnon: resident anonymous (private) memory now. */
  anon: number;
  /** RssFile: resident file-backed memory now (the binary, libraries, other mapped files). */
  file: number;
}

/**
 * Parses the text of a `/proc/<pid>/status` file into {@link ProcessMemory} (MiB from the kB the
 * kernel prints); null when VmRSS is missing (a zombie or kernel thread has no Vm* lines; not a
 * status file). A missing VmHWM, RssAnon or RssFile line (kernels before 4.5 lack Rss*) reads as 0.
 * Pure.
 */
export function parseStatusMemory(text: string): ProcessMemory | null {
  const kb = (k: string): number | null => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  };
  const rss = kb('VmRSS');
  if (rss === null) return null;
  return {
    rss: rss / 1024,
    hwm: (kb('VmHWM') ?? 0) / 1024,
    anon: (kb('RssAnon') ?? 0) / 1024,
    file: (kb('RssFile') ?? 0) / 1024,
  };
}

/** {@link ProcessMemory} of `pid` now, MiB; null when the process is gone or has no memory lines. Never throws. */
export async function memOf(pid: number): Promise<ProcessMemory | null> {
  try {
    return parseStatusMemory(await readFile(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return null;
  }
}

/**
 * Resets `pid`'s VmHWM (peak RSS) to its current VmRSS by writing 5 to `/proc/<pid>/clear_refs`
 * (Linux ≥ 4.0, proc(5)), so that a later VmHWM is the peak since now. Needs the right to write that
 * file (the process's owner, or root). Resolves to whether it worked; never throws.
 */
export async function resetPeak(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Busy and total jiffies of the whole host since boot (first line of /proc/stat; idle and iowait are not busy). */
export interface HostCpu {
  /** Every jiffy but idle and iowait. */
  busy: number;
  /** All jiffies. */
  total: number;
}

/**
 * {@link HostCpu} now, in clock ticks; the share of the host that was busy between two readings is
 * Δbusy / Δtotal (ratio 0–1). Zeros when /proc/stat cannot be read. Never throws.
 */
export async function hostCpu(): Promise<HostCpu> {
  const line = ((await readFile('/proc/stat', 'utf8').catch(() => '')).split('\n')[0] ?? '').trim();
  if (!line.startsWith('cpu ')) return { busy: 0, total: 0 };
  const v = line.split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - (v[3] ?? 0) - (v[4] ?? 0), total };
}

/**
 * The 1-, 5- and 15-minute load averages (`/proc/loadavg`: runnable plus uninterruptible tasks,
 * exponentially averaged); null when it cannot be read. Never throws.
 */
export async function loadAverage(): Promise<[number, number, number] | null> {
  const t = await readFile('/proc/loadavg', 'utf8').catch(() => '');
  const v = t.trim().split(/\s+/).slice(0, 3).map(Number);
  return v.length === 3 && v.every(Number.isFinite) ? [v[0] ?? 0, v[1] ?? 0, v[2] ?? 0] : null;
}
