/**
 * Old nginx workers still draining after reloads, read from Linux `/proc`.
 *
 * After `nginx -s reload` the master starts a new set of workers and tells
 * the old ones to quit gracefully: each old worker closes its listening
 * sockets and idle keep-alive connections, retitles itself
 * `nginx: worker process is shutting down` (nginx's `ngx_setproctitle` in
 * src/os/unix/ngx_process_cycle.c, visible in `/proc/<pid>/cmdline`) and exits
 * once its last in-flight request finished or `worker_shutdown_timeout` ran
 * out. Every such worker still holds its own copy of the old configuration
 * (the old weights) and its memory, so reloading faster than they drain piles
 * up generations of old workers.
 *
 * Generations: nginx forks all workers of one (re)load in one loop of the
 * master, so their start times (field 22 of `/proc/<pid>/stat`, clock ticks
 * since boot) lie within a few ms of each other — usually the same 10 ms tick.
 * Start times are sorted and split wherever two neighbours are more than
 * `gapMs` (default 100 ms) apart; each run is one generation. Two reloads less
 * than `gapMs` apart therefore count as one generation (a heuristic; the
 * sidecar's `min_reload_interval` keeps its own reloads far apart), and a
 * worker forked more than `gapMs` after its siblings (a very loaded host)
 * would count as one more.
 *
 * Only Linux has this `/proc`: elsewhere (macOS, the BSDs) every call returns
 * zeros, so a guard built on it never blocks there.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** What {@link oldWorkers} saw. */
export interface OldWorkers {
  /** Children of the master titled `nginx: worker process is shutting down`. */
  shuttingDown: number;
  /** How many reloads they come from (start times clustered, see the module comment); 0 when none. */
  generations: number;
  /** Their pids, oldest start first. */
  pids: number[];
}

/** Options of {@link oldWorkers}; the defaults are right for Linux. */
export interface OldWorkersOptions {
  /** Where procfs is mounted (default `/proc`); a directory that does not exist means "no /proc". */
  procRoot?: string;
  /**
   * Start times further apart than this are different generations, ms (default 100: a chosen bound,
   * ten 10 ms clock ticks, far above the < 1 ms between forks of one reload and far below any sane
   * reload interval).
   */
  gapMs?: number;
  /**
   * Clock ticks per second of field 22 of /proc/<pid>/stat (default 100: USER_HZ, `getconf CLK_TCK`,
   * fixed at 100 on every mainstream Linux architecture; proc(5)).
   */
  ticksPerSecond?: number;
}

/** The title nginx gives a worker that is draining (ngx_process_cycle.c). */
const SHUTTING_DOWN = 'worker process is shutting down';

/** Reads a file, or null when it is gone (a process that exited between two reads) or unreadable. */
async function readOrNull(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return null;
  }
}

/**
 * The fields of a `/proc/<pid>/stat` line after the `(comm)` field, so that
 * field N of proc(5) (1-based) is `result[N - 3]`; null when the line is not
 * one. The comm may hold spaces and parentheses, hence the last `)`.
 */
export function statFields(stat: string): string[] | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const rest = stat
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  return rest.length >= 20 ? rest : null;
}

/**
 * Number of generations among start times (any unit): sorted, split where two
 * neighbours differ by more than `gap` (same unit). 0 for an empty list. Pure.
 */
export function countGenerations(starts: readonly number[], gap: number): number {
  const s = [...starts].sort((a, b) => a - b);
  let generations = 0;
  for (let i = 0; i < s.length; i++) {
    if (i === 0 || (s[i] as number) - (s[i - 1] as number) > gap) generations++;
  }
  return generations;
}

/** Child pids of `pid`: `/proc/<pid>/task/<pid>/children` when the kernel has it, else a scan of every /proc/<n>/stat for ppid. */
async function childrenOf(procRoot: string, pid: number): Promise<number[]> {
  const list = await readOrNull(path.join(procRoot, String(pid), 'task', String(pid), 'children'));
  if (list !== null) return list.split(/\s+/).filter(Boolean).map(Number);
  // CONFIG_PROC_CHILDREN off: walk the whole table (a few hundred small reads).
  let entries: string[];
  try {
    entries = await readdir(procRoot);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const f = statFields((await readOrNull(path.join(procRoot, e, 'stat'))) ?? '');
    if (f?.[1] === String(pid)) out.push(Number(e));
  }
  return out;
}

/**
 * The master's children that are draining after a reload (titled
 * `nginx: worker process is shutting down`), how many reload generations they
 * span (start times clustered within `gapMs`, see the module comment) and
 * their pids, oldest first.
 *
 * @param masterPid the nginx master's pid (the pid file's content).
 * @returns zeros and no pids when there is no `/proc` (not Linux), the master
 *   is gone, or nothing is draining. A worker that exits between two reads is
 *   skipped. Never throws.
 */
export async function oldWorkers(masterPid: number, opts: OldWorkersOptions = {}): Promise<OldWorkers> {
  const procRoot = opts.procRoot ?? '/proc';
  const gapMs = opts.gapMs ?? 100;
  const ticksPerSecond = opts.ticksPerSecond ?? 100;
  const found: { pid: number; startMs: number }[] = [];
  for (const pid of await childrenOf(procRoot, masterPid)) {
    const cmdline = await readOrNull(path.join(procRoot, String(pid), 'cmdline'));
    if (cmdline === null || !cmdline.replaceAll('\0', ' ').includes(SHUTTING_DOWN)) continue;
    const f = statFields((await readOrNull(path.join(procRoot, String(pid), 'stat'))) ?? '');
    const ticks = Number(f?.[19]);
    if (!Number.isFinite(ticks)) continue;
    found.push({ pid, startMs: (ticks * 1000) / ticksPerSecond });
  }
  found.sort((a, b) => a.startMs - b.startMs || a.pid - b.pid);
  return {
    shuttingDown: found.length,
    generations: countGenerations(
      found.map((w) => w.startMs),
      gapMs,
    ),
    pids: found.map((w) => w.pid),
  };
}
