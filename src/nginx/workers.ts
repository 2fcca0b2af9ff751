/**
 * nginx worker processes read from Linux `/proc`: the old ones still draining
 * after reloads ({@link oldWorkers}, the reload-rate guard), and the proof that
 * a reload is complete ({@link workerProcesses} + {@link onlyNewAccept}, the
 * applier's verify).
 *
 * What a reload does, in order (nginx 1.22 src/os/unix/ngx_process_cycle.c,
 * `ngx_master_process_cycle`, the `ngx_reconfigure` branch): the master reads
 * the new config (`ngx_init_cycle`), forks a new set of workers
 * (`ngx_start_worker_processes(…, NGX_PROCESS_JUST_RESPAWN)`), sleeps
 * `ngx_msleep(100)` ("allow new processes to start"), then sends every other
 * worker NGX_CMD_QUIT over its channel (`ngx_signal_worker_processes`). Until
 * then old and new workers all accept connections. An old worker handles the
 * quit in `ngx_worker_process_cycle`: it retitles itself
 * `nginx: worker process is shutting down` (`ngx_setproctitle`, visible in
 * `/proc/<pid>/cmdline`) and, with no event processed in between, closes its
 * listening sockets (`ngx_close_listening_sockets`) and idle keep-alive
 * connections; it exits once its last in-flight request finished or
 * `worker_shutdown_timeout` ran out. So a worker titled "shutting down" never
 * accepts a connection again: once every worker child of the master still
 * titled `nginx: worker process` was forked after the reload, every new
 * connection reaches the new configuration. Every draining worker still holds
 * its own copy of the old configuration (the old weights) and its memory, so
 * reloading faster than they drain piles up generations of old workers.
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
 * Only Linux has this `/proc`: elsewhere (macOS, the BSDs) {@link oldWorkers}
 * returns zeros, so a guard built on it never blocks there, and
 * {@link workerProcesses} returns null, so the applier falls back to its timer.
 */
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
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

/**
 * Reads a procfs file, or null when it is gone (a process that exited between two reads) or unreadable.
 *
 * Synchronous on purpose: a procfs file is made by the kernel from memory when read (no disk I/O, a few
 * µs), while `fs/promises.readFile` costs five thread-pool round trips per file (open, fstat, two reads,
 * close). The applier's proof reads two files per worker every 5 ms until the old workers retire
 * (docs/design.md "Applying a change"); in a `--cpu-prof` of bench:walk (a 14 s walk, 1,823 ms of
 * main-thread samples) the share the profile could not place on our code ("other": the round trips'
 * callbacks) fell from 385 to 156 ms when these reads became synchronous. The one wait a read of
 * `/proc/<pid>/cmdline` can have is the process's memory-map lock, held by the process itself for as
 * long as an mmap or munmap takes, the same wait `ps` has.
 */
function readOrNull(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
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

/** Child pids of `pid`: `/proc/<pid>/task/<pid>/children` when the kernel has it, else {@link scanChildren}. */
async function childrenOf(procRoot: string, pid: number): Promise<number[]> {
  const list = readOrNull(path.join(procRoot, String(pid), 'task', String(pid), 'children'));
  if (list !== null) return list.split(/\s+/).filter(Boolean).map(Number);
  return scanChildren(procRoot, pid);
}

/**
 * Child pids of `pid` from a walk of every `/proc/<n>/stat` (a few hundred small reads): for a kernel
 * without CONFIG_PROC_CHILDREN, and as the exact fallback of {@link workerProcesses} (the kernel lists
 * /proc by increasing pid, so a process alive during the whole walk is never skipped). [] without /proc.
 */
async function scanChildren(procRoot: string, pid: number): Promise<number[]> {
  let entries: string[];
  try {
    entries = await readdir(procRoot);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const f = statFields(readOrNull(path.join(procRoot, e, 'stat')) ?? '');
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
    const cmdline = readOrNull(path.join(procRoot, String(pid), 'cmdline'));
    if (cmdline === null || !cmdline.replaceAll('\0', ' ').includes(SHUTTING_DOWN)) continue;
    const f = statFields(readOrNull(path.join(procRoot, String(pid), 'stat')) ?? '');
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

/** One worker child of an nginx master as `/proc` showed it (see {@link workerProcesses}). */
export interface WorkerProcess {
  pid: number;
  /**
   * Start time, clock ticks since boot (field 22 of `/proc/<pid>/stat`). With the pid, the identity of
   * the process: a pid freed by an exited worker may be reused, the pair not (the reuse would have to
   * wrap pid_max within one 10 ms tick).
   */
  startTicks: number;
  /** Titled `nginx: worker process is shutting down`: its listening sockets are closed or closing, it accepts nothing more. */
  shuttingDown: boolean;
}

/** Options of {@link workerProcesses} and {@link stillAccepting}. */
export interface ProcOptions {
  /** Where procfs is mounted (default `/proc`); a directory that does not exist means "no /proc". */
  procRoot?: string;
}

/** The process title nginx set (`ngx_setproctitle`): `/proc/<pid>/cmdline` up to its first NUL. */
function titleOf(cmdline: string): string {
  const nul = cmdline.indexOf('\0');
  return (nul < 0 ? cmdline : cmdline.slice(0, nul)).trim();
}

/** `nginx: master process nginx -c …` (any program name before the colon: ngx_setproctitle writes `nginx: `). */
const MASTER_TITLE = /^[^:\s]+: master process(?: |$)/;
/** A worker's title, accepting (`nginx: worker process`) or draining (`… is shutting down`); group 1 set when draining. */
const WORKER_TITLE = /^[^:\s]+: worker process( is shutting down)?$/;

/** Parent pid and start time (ticks) of `pid` from its stat line, or null when it is gone or the line is not one. */
function statOf(procRoot: string, pid: number): { ppid: number; startTicks: number } | null {
  const f = statFields(readOrNull(path.join(procRoot, String(pid), 'stat')) ?? '');
  const ppid = Number(f?.[1]);
  const startTicks = Number(f?.[19]);
  return Number.isSafeInteger(ppid) && Number.isSafeInteger(startTicks) ? { ppid, startTicks } : null;
}

/** Most reads of the children list before {@link workerProcesses} gives up on a stable one. */
const MAX_CHILDREN_READS = 5;

/**
 * The worker children of the nginx master `masterPid` now: pid, start time and
 * whether each is shutting down, sorted by pid. Children that are no worker
 * (cache manager, cache loader, a new master during a binary upgrade, a child
 * forked a moment ago that has not set its title yet) are left out.
 *
 * Complete for every worker alive during the whole call: the kernel's
 * `/proc/<pid>/task/<pid>/children` may skip a child when the child listed
 * before it is reaped while the file is read (fs/proc/array.c
 * `get_children_pid`: "We might miss some children here if children are
 * exited while we were not holding the lock"), so the list counts only when
 * every pid in it is still alive afterwards, else it is read again (at most 5
 * times, then the whole of `/proc` is scanned for processes whose parent is
 * the master: a directory walk by pid, which skips no process that lives
 * through it).
 *
 * @param masterPid the nginx master's pid (the pid file's content).
 * @returns null when `/proc/<masterPid>` is not an nginx master titled
 *   `nginx: master process …` (no /proc: not Linux; the master is gone; it
 *   runs in another pid namespace; `master_process off`). Never throws.
 */
export async function workerProcesses(masterPid: number, opts: ProcOptions = {}): Promise<WorkerProcess[] | null> {
  const procRoot = opts.procRoot ?? '/proc';
  if (!isNginxMaster(masterPid, opts)) return null;
  let pids: number[] | null = null;
  const listFile = path.join(procRoot, String(masterPid), 'task', String(masterPid), 'children');
  for (let i = 0; i < MAX_CHILDREN_READS && pids === null; i++) {
    const list = readOrNull(listFile);
    if (list === null) break; // CONFIG_PROC_CHILDREN off
    const listed = [...new Set(list.split(/\s+/).filter(Boolean).map(Number))];
    const alive = listed.map((p) => statOf(procRoot, p));
    if (alive.every((st) => st?.ppid === masterPid)) pids = listed;
  }
  pids ??= await scanChildren(procRoot, masterPid);
  const out: WorkerProcess[] = [];
  for (const pid of pids) {
    // stat before cmdline: a pid reused in between shows another start time next time, never a stale title.
    const st = statOf(procRoot, pid);
    const cmdline = readOrNull(path.join(procRoot, String(pid), 'cmdline'));
    if (st?.ppid !== masterPid || cmdline === null) continue;
    const m = WORKER_TITLE.exec(titleOf(cmdline));
    if (m) out.push({ pid, startTicks: st.startTicks, shuttingDown: m[1] !== undefined });
  }
  return out.sort((a, b) => a.pid - b.pid);
}

/**
 * Of `workers` (read by {@link workerProcesses} before a reload signal), the
 * ones that may still accept connections: the same process (pid and start
 * time) still alive and not titled `nginx: worker process is shutting down`.
 * Empty means none of them will accept a connection again (module comment:
 * an nginx worker retitles itself, then closes its listening sockets with no
 * event processed in between). A title read half-written counts as still
 * accepting, so a wrong answer can only be "not yet". Never throws.
 *
 * @returns the still-accepting subset of `workers`, in their order.
 */
export function stillAccepting(workers: readonly WorkerProcess[], opts: ProcOptions = {}): WorkerProcess[] {
  const procRoot = opts.procRoot ?? '/proc';
  const accepting = (w: WorkerProcess): boolean => {
    if (w.shuttingDown) return false;
    if (statOf(procRoot, w.pid)?.startTicks !== w.startTicks) return false; // exited (or the pid was reused)
    const cmdline = readOrNull(path.join(procRoot, String(w.pid), 'cmdline'));
    if (cmdline === null) return false; // exited since
    return WORKER_TITLE.exec(titleOf(cmdline))?.[1] === undefined;
  };
  return workers.filter(accepting);
}

/**
 * True when `/proc/<pid>` is an nginx master (titled `nginx: master process …`), so a signal sent to
 * `pid` reaches nginx and nothing else (a stale pid file may name a pid reused by another process).
 * False without /proc (not Linux), when the process is gone or is anything else. Never throws.
 */
export function isNginxMaster(pid: number, opts: ProcOptions = {}): boolean {
  const cmdline = readOrNull(path.join(opts.procRoot ?? '/proc', String(pid), 'cmdline'));
  return cmdline !== null && MASTER_TITLE.test(titleOf(cmdline));
}
