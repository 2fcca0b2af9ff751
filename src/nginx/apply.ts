/**
 * The only path that changes nginx (docs/design.md "Applying a change"):
 *
 *   interval → disk guard → preflight `nginx -t` → snapshot → atomic write
 *   → `nginx -t` → reload → verify the generation is live
 *
 * (the interval — min_reload_interval since the last reload — is skipped for a change that only
 * lowers canary weights: a drain never waits for it; the preflight is skipped when the config
 * directory is byte for byte what the last passing `nginx -t` of this applier tested),
 *
 * and on any failure after the write: restore the snapshot byte for byte
 * (and reload when nginx may have loaded the new file). Expected failures
 * come back as an {@link ApplyResult}; nothing is left half-changed.
 *
 * Live means proven, not timed: the status server answered the new
 * generation (a new worker serves the new file) and, on Linux, every worker
 * that accepted connections before the reload signal has exited or retitled
 * itself `nginx: worker process is shutting down`, which an nginx worker does
 * just before it closes its listening sockets (workers.ts, from nginx's
 * src/os/unix/ngx_process_cycle.c). From then on every new connection reaches
 * the new configuration. The master retires the old workers only 100 ms after
 * it forked the new ones (`ngx_msleep(100)` "allow new processes to start",
 * its signals blocked meanwhile), so that proof comes ~100 ms after the fork
 * at the earliest: nginx's cost, not the sidecar's (bench:apply, stage
 * `retire`). The one case it does not cover: an old worker that crashes and is
 * respawned by the master between the /proc read before the signal and the
 * master's handling of it counts as new (nginx logs `worker process … exited
 * on signal`); the master retires it with the others 100 ms later. Without a
 * /proc view of the master (not Linux, the pid file unreadable, nginx in
 * another pid namespace) the proof falls back to a timer: every answer the
 * new generation for `verifySettleMs`.
 *
 * While the generation is verified, nginx's error log is read from where it
 * ended before the reload signal: an `[emerg]` line of the master (a reload
 * refused at apply time, e.g. a `listen` port taken — `nginx -t` does not
 * bind, so it passes) fails the apply at stage `reload` within a poll
 * (measured: 3–40 ms after the signal) instead of at the verify deadline.
 */
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../clock.js';
import type { Config, NginxConfig } from '../config/types.js';
import { CanaryError, ConfigError, errors } from '../errors.js';
import { waitFor, WaitTimeoutError } from '../util/wait.js';
import { errorLogsOf } from './ctl.js';
import { buildModel } from './model.js';
import { masterPidReader } from './process.js';
import { parseHeader, renderUpstreams, type RenderedHeader } from './render.js';
import {
  manifestOf,
  type ManifestFile,
  type ManifestMemo,
  type SnapshotStore,
  type VerifiedSnapshot,
} from './snapshot.js';
import { writeFileAtomic } from '../util/atomic.js';
import { fileIdentity } from '../util/file-identity.js';
import { oldWorkers, stillAccepting, workerProcesses, type WorkerProcess } from './workers.js';
import { chooseRollback, describeRaises, raisesOf, type WeightRaise } from './rollback-choice.js';
import {
  MIN_FREE_DISK_RATIO,
  type ApplyRequest,
  type ApplyResult,
  type ApplyStage,
  type DiskStat,
  type Flavor,
  type NginxCtl,
  type NginxPort,
  type RollbackResult,
  type RollbackStage,
  type SnapshotInfo,
} from './types.js';

/** The slice of a pino logger the applier uses (object first, then message). */
export interface ApplierLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Dependencies of {@link Applier}. */
export interface ApplierOptions {
  config: Config;
  ctl: NginxCtl;
  disk: DiskStat;
  /** Snapshots of dirname(config.nginx.conf); must own config.nginx.upstreamsFile. */
  snapshots: SnapshotStore;
  /** `monotonic()` spaces reloads and times applies. */
  clock: Clock;
  /** Deadline for the proof that the new generation serves after a reload, ms (default 10 000). */
  verifyTimeoutMs?: number;
  /**
   * Poll spacing of that proof (/proc, error logs, then the status server), ms (default 5: a chosen
   * bound; each poll is a few small /proc reads and a stat per error log, and one loopback request once
   * no old worker accepts, and the spacing adds up to one interval to each of the two waits, old
   * workers retired and first answer — see bench:apply).
   */
  verifyIntervalMs?: number;
  /**
   * Fallback only, without a /proc view of the nginx master (not Linux, no pid file, another pid
   * namespace): how long every answer must stay the new generation before it counts as live, ms
   * (default 150). After a reload the nginx master starts the new workers, sleeps 100 ms, and only then
   * tells the old ones to stop accepting (src/os/unix/ngx_process_cycle.c, `ngx_msleep(100)` "allow new
   * processes to start"); until then old and new workers both answer. On Linux the proof is exact
   * instead (see the module comment) and this is not used.
   */
  verifySettleMs?: number;
  /** Where procfs is mounted (default `/proc`; tests pass a missing directory to force the timer fallback). */
  procRoot?: string;
  /** Called after every apply and rollback that went live, with where its time went (bench:apply prints them). */
  onTimings?: (timings: ApplyTimings) => void;
  /**
   * nginx's error log files, absolute paths, watched for `[emerg]` lines from
   * the master while a reload is verified: a reload that fails at apply time
   * (a listen port taken, a certificate unreadable) passes `nginx -t`, logs
   * `[emerg]` and keeps the old config, so without this it is only noticed
   * when the verify deadline runs out. `[]` watches nothing. Default: read
   * from nginx.conf once, on the first reload (ctl.ts `errorLogsOf`).
   */
  errorLogs?: readonly string[];
  /**
   * Counts nginx's old worker generations still shutting down, for the
   * reload-rate guard (nginx.max_old_generations). Default: the master pid
   * from nginx's pid file, then {@link oldWorkers} over /proc (0 when either
   * is unavailable, which turns the guard off).
   */
  oldGenerations?: () => Promise<number>;
  log?: ApplierLog;
}

/**
 * Where the time of one apply or rollback that went live was spent, ms on the
 * applier's monotonic clock (`Clock.monotonic()`); the stages run in this
 * order (with `proof: 'proc'`, `retire` before `answer`) and add up to
 * `totalMs` (within the rounding of the clock).
 */
export interface ApplyStageTimings {
  /** Reading the include file, the interval, disk and reload-rate guards, rendering (rollback: choosing and loading the snapshot too). */
  guards: number;
  /**
   * The preflight: hashing the config directory and, unless it is byte for byte what the last passing
   * `nginx -t` tested, `nginx -t` of the current config (0 for a bootstrap and a rollback, which have none).
   */
  preflight: number;
  /** The snapshot of the config directory (tarball, manifest). */
  snapshot: number;
  /** The atomic write of the include file (rollback: of the snapshot's files). */
  write: number;
  /** `nginx -t` of the written config. */
  test: number;
  /** Reading the master's workers from /proc and marking the error logs, then the reload signal (`NginxCtl.reload`). */
  reload: number;
  /**
   * `proof: 'proc'`: from the proof that no worker from before the reload accepts connections any more
   * to the first answer of the new generation on the status server (asked only then: see `retire`).
   * `proof: 'timer'`: from the reload signal to that first answer.
   */
  answer: number;
  /**
   * `proof: 'proc'`: from the reload signal to the proof that no worker from before the reload accepts
   * connections any more (nginx's own 100 ms `ngx_msleep` is in here); it runs before `answer`.
   * `proof: 'timer'`: from the first answer to the end of the settle timer.
   */
  retire: number;
}

/** True when two manifests list the same files and links with the same bytes (sha256, size), modes and targets. */
function sameFiles(a: readonly ManifestFile[], b: readonly ManifestFile[]): boolean {
  return (
    a.length === b.length &&
    a.every((f, i) => {
      const g = b[i];
      return (
        g !== undefined &&
        f.path === g.path &&
        f.sha256 === g.sha256 &&
        f.size === g.size &&
        f.mode === g.mode &&
        f.link === g.link
      );
    })
  );
}

/**
 * True when a change waits for min_reload_interval: it `raises` a canary weight, or lowers none (a
 * reconcile, the same weights again). A change that only lowers (a drain, an abort, a lower target) is
 * the safe direction and never waits (docs/design.md "Applying a change"), nor does the reload-rate
 * guard hold it.
 */
function waitsForInterval(raises: boolean, lowers: boolean): boolean {
  return raises || !lowers;
}

/** `stages` with every figure rounded to 0.1 ms, for the log line. */
function roundedStages(stages: ApplyStageTimings): Record<string, number> {
  return Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}

/** What {@link ApplierOptions.onTimings} receives. */
export interface ApplyTimings {
  /** `apply` or `rollback`. */
  kind: 'apply' | 'rollback';
  /** The generation now live. */
  generation: number;
  /** The change lowered a canary weight and raised none (a drain, an abort): min_reload_interval did not hold it. */
  lowersOnly: boolean;
  /**
   * How the reload was proven live: `proc` — the status server answered the generation and every worker
   * that accepted connections before the signal has exited or is shutting down (exact); `timer` — no
   * /proc view of the master, every answer was the generation for `verifySettleMs`.
   */
  proof: 'proc' | 'timer';
  /**
   * The preflight `nginx -t` was not run: the config directory was byte for byte what the last passing
   * `nginx -t` of this applier tested (stage `preflight` is then the time to hash the directory).
   */
  preflightSkipped: boolean;
  stages: ApplyStageTimings;
  /**
   * Polls of the proof after the reload signal (`all`), and how many of them read the error logs
   * (`errorLogs`): with `proof: 'proc'` only those before the master forked the new generation's first
   * worker, after which no `[emerg]` of the reload can follow; with `'timer'` all.
   */
  polls: { all: number; errorLogs: number };
  /** The whole call, as `durationMs` of the result. */
  totalMs: number;
}

/** Records {@link ApplyStageTimings}: each `lap(stage)` charges the time since the previous lap to `stage`. */
class Laps {
  readonly stages: ApplyStageTimings = {
    guards: 0,
    preflight: 0,
    snapshot: 0,
    write: 0,
    test: 0,
    reload: 0,
    answer: 0,
    retire: 0,
  };
  /** The proof's polls (see {@link ApplyTimings.polls}). */
  readonly polls = { all: 0, errorLogs: 0 };
  readonly #clock: Clock;
  #last: number;
  constructor(clock: Clock) {
    this.#clock = clock;
    this.#last = clock.monotonic();
  }
  lap(stage: keyof ApplyStageTimings): void {
    const now = this.#clock.monotonic();
    this.stages[stage] += now - this.#last;
    this.#last = now;
  }
}

/**
 * nginx's old worker generations still shutting down: resolves the pid file
 * nginx uses for `nginx` (process.ts `pidFileOf`: reads nginx.conf, may run
 * `nginx -V`) on every call, reads the master pid from it and counts the
 * master's shutting-down worker generations (workers.ts `oldWorkers`). For
 * one-off callers; a long-lived one uses {@link Applier.oldGenerations},
 * which resolves the path once. Never throws: 0 when the pid file is
 * missing or unreadable, or there is no /proc.
 */
export async function oldGenerationsOf(nginx: Pick<NginxConfig, 'binary' | 'conf' | 'prefix'>): Promise<number> {
  return generationsOfMaster(await masterPidReader(nginx)());
}

/** Old worker generations of the master `pid` (0 for null: no master known). Never throws. */
async function generationsOfMaster(pid: number | null): Promise<number> {
  return pid === null ? 0 : (await oldWorkers(pid)).generations;
}

/** Where one error log was before a reload signal: what is read after it is new. */
interface LogMark {
  file: string;
  /** Inode at the mark; another inode later means the log was rotated (read the new one from 0). */
  ino: number;
  /** Next byte to read. */
  offset: number;
  /** An unterminated last line read so far. */
  partial: string;
}

/** An `[emerg]` line of the master found after a reload signal. */
interface Emerg {
  file: string;
  /** The message after `pid#tid: `. */
  message: string;
  /** ms from the reload signal to the poll that saw it. */
  afterMs: number;
}

/** Most bytes of an error log read per poll (a log flooded after the signal is judged on its first 1 MiB). */
const MAX_ERROR_LOG_READ = 1024 * 1024;
/** `2026/11/21 19:24:10 [emerg] 17257#17257: bind() to 127.0.0.1:28432 failed (98: Address already in use)`. */
const EMERG_LINE = /\[emerg\] (\d+)#\d+: (.*)$/;

/** What the include file on disk holds now. */
interface Current {
  exists: boolean;
  /** From its header; generation 0 and no weights when absent or not written by the renderer. */
  header: RenderedHeader;
}

type Failure = Extract<ApplyResult, { ok: false }>;

const nopLog: ApplierLog = { info: () => undefined, warn: () => undefined };

/**
 * After forking a reload's new workers the nginx master sleeps this long before it tells the old ones
 * to quit, ms: 100 (ngx_process_cycle.c, `ngx_master_process_cycle`: `ngx_start_worker_processes(…,
 * NGX_PROCESS_JUST_RESPAWN)`, then `ngx_msleep(100)` "to allow new processes to start", then
 * `ngx_signal_worker_processes(…, NGX_SHUTDOWN_SIGNAL)`). So an old worker cannot stop accepting within
 * 100 ms of the last proof poll that saw no new worker, and the proof does not look for it before then:
 * the ~20 polls of 5 ms it made in that window could only fail. A lower bound only: if a build sleeps
 * less, the proof is late by at most the difference, never wrong.
 */
export const NGINX_RELOAD_SPAWN_WAIT_MS = 100;

/**
 * How long a passed {@link Applier.isLive} trusts nginx's answer of the generation while the request and
 * the include file are unchanged, ms: 5,000. A chosen value (docs/design.md "Applying a change", the
 * reconcile paragraph): the check runs every tick (1 s at the default min_reload_interval 2 s), and
 * asking nginx's status server each time is a new connection per second for a drift that only a reload
 * of another config, with the include file left alone, can cause; such a drift is then found within 5 s
 * instead of 1 s.
 */
export const GENERATION_RECHECK_MS = 5000;

/** What {@link Applier.isLive} remembers a passed check by: the weights, drained services and generation. */
function liveKey(req: Pick<ApplyRequest, 'weights' | 'drained' | 'generation'>): string {
  return JSON.stringify([req.weights, req.drained ?? [], req.generation]);
}

function asCanaryError(err: unknown, wrap: (cause: unknown) => CanaryError): CanaryError {
  return err instanceof CanaryError ? err : wrap(err);
}

/**
 * The upstreams file must sit inside the directory of nginx.conf (the
 * snapshots hold that directory) and the snapshot store must cover it.
 * @throws ConfigError for an upstreams file outside; RangeError for a store that does not match.
 */
function checkLayout(config: Config, snapshots: SnapshotStore): void {
  const confDir = path.dirname(path.resolve(config.nginx.conf));
  const rel = path.relative(confDir, path.resolve(config.nginx.upstreamsFile));
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new ConfigError([
      {
        position: null,
        path: 'nginx.upstreams_file',
        message: `${config.nginx.upstreamsFile} is not inside ${confDir}, the directory of nginx.conf that snapshots hold`,
        fix: 'Put the upstreams file under the directory of nginx.conf (e.g. conf.d/nginx-canary.conf) and include it from there',
      },
    ]);
  }
  if (path.resolve(snapshots.confDir) !== confDir) {
    throw new RangeError(`Applier: the snapshot store covers ${snapshots.confDir}, not ${confDir}`);
  }
  if (!snapshots.ownedFiles.includes(path.resolve(config.nginx.upstreamsFile))) {
    throw new RangeError(
      'Applier: the snapshot store must own nginx.upstreams_file (construct it with the `nginx` config section)',
    );
  }
}

/**
 * Applies rendered weights to one nginx. Calls are serialized: a second
 * `apply`/`writeInitial`/`rollback` waits for the first to finish.
 */
export class Applier implements NginxPort {
  #config: Config;
  readonly #ctl: NginxCtl;
  readonly #disk: DiskStat;
  readonly #snapshots: SnapshotStore;
  readonly #clock: Clock;
  readonly #verifyTimeoutMs: number;
  readonly #verifyIntervalMs: number;
  readonly #verifySettleMs: number;
  readonly #procRoot: string;
  readonly #onTimings: ((timings: ApplyTimings) => void) | null;
  /** The timer fallback was logged (once per applier). */
  #warnedTimer = false;
  /**
   * The config directory (its manifest: every file's sha256, size and mode) as the last `nginx -t`
   * that passed saw it, or null when unknown (start, or any failure since). A preflight on the same
   * bytes is redundant.
   */
  #tested: ManifestFile[] | null = null;
  readonly #log: ApplierLog;
  #flavor: Promise<Flavor> | null = null;
  #errorLogs: Promise<readonly string[]> | null;
  readonly #oldGenerations: () => Promise<number>;
  /** The master's pid from its pid file, or null when it cannot be read (then any pid's `[emerg]` counts). */
  readonly #masterPid: () => Promise<number | null>;
  #lastReloadMono: number | null = null;
  /**
   * The last {@link isLive} that passed, or live apply that proved its generation: its request (JSON), the
   * file's identity then, and when nginx last answered that generation (monotonic ms). Null after any
   * failure, rollback or reconfigure, and while an apply runs.
   */
  #liveSeen: { key: string; file: string; generationAt: number } | null = null;
  /** What #confManifest hashed, by file identity (snapshot.ts manifestOf): unchanged files are not read again. */
  readonly #confMemo: ManifestMemo = new Map();
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * @throws ConfigError when nginx.upstreams_file is not inside the directory of nginx.conf (the snapshot could not hold it);
   *   RangeError when the snapshot store does not cover that directory or own the upstreams file, or a timeout is not > 0.
   */
  constructor(opts: ApplierOptions) {
    this.#config = opts.config;
    this.#ctl = opts.ctl;
    this.#disk = opts.disk;
    this.#snapshots = opts.snapshots;
    this.#clock = opts.clock;
    this.#verifyTimeoutMs = opts.verifyTimeoutMs ?? 10_000;
    this.#verifyIntervalMs = opts.verifyIntervalMs ?? 5;
    this.#verifySettleMs = opts.verifySettleMs ?? 150;
    this.#procRoot = opts.procRoot ?? '/proc';
    this.#onTimings = opts.onTimings ?? null;
    this.#log = opts.log ?? nopLog;
    this.#errorLogs = opts.errorLogs === undefined ? null : Promise.resolve(opts.errorLogs);
    // The pid file's path is resolved once: binary, conf and prefix cannot change (reconfigure).
    this.#masterPid = masterPidReader(opts.config.nginx);
    this.#oldGenerations = opts.oldGenerations ?? (async () => generationsOfMaster(await this.#masterPid()));
    if (!(this.#verifyTimeoutMs > 0) || !(this.#verifyIntervalMs > 0) || !(this.#verifySettleMs >= 0)) {
      throw new RangeError('Applier: verify timeouts must be > 0 ms (settle ≥ 0)');
    }
    checkLayout(opts.config, opts.snapshots);
  }

  /**
   * Swaps in a reloaded config (weights.yaml changed): services, servers and
   * `min_reload_interval` take effect on the next apply. Waits for a running
   * apply to finish first.
   *
   * @throws ConfigError when a setting the running nginx control depends on changed (nginx binary, conf, prefix,
   *   upstreams_file, status_listen, snapshots): those need a restart of the sidecar. Nothing is swapped then.
   */
  reconfigure(config: Config): Promise<void> {
    this.#liveSeen = null;
    const cur = this.#config.nginx;
    const next = config.nginx;
    const fixed: [string, unknown, unknown][] = [
      ['binary', cur.binary, next.binary],
      ['conf', cur.conf, next.conf],
      ['prefix', cur.prefix, next.prefix],
      ['upstreams_file', cur.upstreamsFile, next.upstreamsFile],
      [
        'status_listen',
        `${cur.statusListen.host}:${cur.statusListen.port}`,
        `${next.statusListen.host}:${next.statusListen.port}`,
      ],
      ['snapshots', `${cur.snapshots.dir}:${cur.snapshots.keep}`, `${next.snapshots.dir}:${next.snapshots.keep}`],
    ];
    const changed = fixed.filter(([, a, b]) => a !== b);
    if (changed.length > 0) {
      throw new ConfigError(
        changed.map(([key]) => ({
          position: null,
          path: `nginx.${key}`,
          message: 'cannot change while nginx-canary runs',
          fix: 'Restart nginx-canary to use the new value (the old one stays in effect until then)',
        })),
      );
    }
    return this.#serial(() => {
      this.#config = config;
      return Promise.resolve();
    });
  }

  /**
   * Old worker generations of the running nginx still shutting down, as the
   * reload-rate guard counts them ({@link ApplierOptions.oldGenerations};
   * by default the master pid from the pid file, whose path is resolved once,
   * then /proc). Never throws: 0 when unknown. Cheap enough per metrics scrape.
   */
  oldGenerations(): Promise<number> {
    return this.#oldGenerations();
  }

  /**
   * Records a reload made elsewhere (e.g. at startup) so the next apply keeps
   * `min_reload_interval` from it.
   * @param monoMs `clock.monotonic()` reading of that reload.
   */
  noteReload(monoMs: number): void {
    this.#lastReloadMono = monoMs;
  }

  /** nginx flavor from `ctl.version()`, read once and cached (a failed read is retried next time). */
  flavor(): Promise<Flavor> {
    this.#flavor ??= this.#ctl.version().then(
      (v) => v.flavor,
      (err: unknown) => {
        this.#flavor = null;
        throw err;
      },
    );
    return this.#flavor;
  }

  /**
   * Makes `req.weights` live at `req.generation`: interval → disk → preflight
   * → snapshot → write → test → reload → verify (an `[emerg]` of the master in
   * the error log during verify fails it at stage `reload`, NC_RELOAD_FAILED
   * with the line); restores the snapshot on any failure after the write.
   * Preflight is skipped when the include file does not exist yet (bootstrap:
   * nginx.conf cannot pass without it), and when the config directory is byte
   * for byte what the last passing `nginx -t` of this applier tested (then a
   * rejection after the write is told apart by testing the restored directory:
   * stage `preflight`, NC_NGINX_CONFIG_BROKEN, restored, when that fails too).
   *
   * @returns ok with the snapshot id and duration (ms, monotonic clock), or the failed stage, its CanaryError and whether the snapshot was restored.
   * @throws RangeError when `req.generation` equals the generation of the file on disk (a reload could not be proven live),
   *   or the weights are invalid (see buildModel); unexpected errors while restoring.
   */
  apply(req: ApplyRequest): Promise<ApplyResult> {
    return this.#serial(() => this.#apply(req, true));
  }

  /**
   * Writes the include file for `req` without reload or verify, for a managed
   * nginx that has not started yet or a missing include: disk → snapshot →
   * write → test (restored on failure). No preflight (nothing is served from
   * this config yet, and the new file may be what makes it valid), no interval check.
   *
   * @returns as {@link apply}.
   */
  writeInitial(req: ApplyRequest): Promise<ApplyResult> {
    return this.#serial(() => this.#apply(req, false));
  }

  /**
   * True when the include file on disk is exactly what `req` renders (this config, the flavor, the
   * drained services) and nginx's status server answers `req.generation`: the reconcile check the
   * runner makes when nothing changed (a hand edit of the file, or a reload of another config, makes it
   * false). Never throws: an unreadable file or a silent nginx is "not live".
   *
   * The runner asks this every tick (1 s at the default min_reload_interval), so a check that passed is
   * remembered with the file's identity ({@link fileIdentity}): while `req` and that
   * identity are unchanged, the file is not read and rendered again (one stat instead of an open, a read,
   * a close and a render), and nginx's generation is asked again only once {@link GENERATION_RECHECK_MS}
   * has passed since it last answered `req.generation`. Any edit of the file (in place or by rename)
   * changes the identity and is caught at the next tick; a reload of another config that leaves the file
   * alone is caught within GENERATION_RECHECK_MS. A live apply that proved its generation served counts
   * as such a pass, with the file's identity taken right after its write (a later edit differs from it):
   * the tick after a step then costs a stat, not a read, a render and a loopback request (~2 ms of CPU a
   * step in bench:walk).
   */
  async isLive(req: ApplyRequest): Promise<boolean> {
    try {
      const key = liveKey(req);
      const file = this.#config.nginx.upstreamsFile;
      const st = await stat(file, { bigint: true });
      const id = fileIdentity(st);
      const seen = this.#liveSeen;
      if (seen === null || seen.key !== key || seen.file !== id) {
        this.#liveSeen = null;
        const want = renderUpstreams(
          buildModel(this.#config, req.weights, req.generation, await this.flavor(), { drained: req.drained ?? [] }),
        );
        if ((await readFile(file, 'utf8')) !== want) return false;
      } else if (this.#clock.monotonic() - seen.generationAt < GENERATION_RECHECK_MS) {
        return true;
      }
      if ((await this.#ctl.generation()) !== req.generation) return false;
      this.#liveSeen = { key, file: id, generationAt: this.#clock.monotonic() };
      return true;
    } catch {
      this.#liveSeen = null;
      return false;
    }
  }

  /**
   * The generation in the header of the include file on disk, or 0 (no file, no header). A fresh state
   * (no state.json) continues from it so generations keep increasing per config directory and "the
   * snapshot before the live one" stays well defined. Never throws.
   */
  async fileGeneration(): Promise<number> {
    try {
      return parseHeader(await readFile(this.#config.nginx.upstreamsFile, 'utf8'))?.generation ?? 0;
    } catch {
      return 0;
    }
  }

  /**
   * Restores a snapshot and makes it live: select → interval → disk →
   * snapshot of the current config (so the rollback can be undone) → write
   * → `nginx -t` → reload → verify nginx serves the snapshot's generation. On
   * failure after the write the pre-rollback snapshot is restored (and
   * reloaded when needed). No preflight: restoring a known-good snapshot is
   * how a broken config is repaired.
   *
   * @param id snapshot id (restored even when it raises a canary weight; the result's `raises` says
   *   which); default: the newest snapshot whose generation is below the live one (the status server's
   *   answer, else the file's header) and above 0 and that raises no canary weight above the include
   *   file's (see rollback-choice.ts); when every older one raises, stage `select` with NC_ROLLBACK_RAISES.
   * @returns ok with the restored snapshot, or the failed stage.
   */
  rollback(id?: string): Promise<RollbackResult> {
    return this.#serial(() => this.#rollback(id));
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const go = (): Promise<T> => {
      // An apply or rollback rewrites the include file (a new identity) and may change the committed
      // generation: the reconcile check's memory (isLive) holds for neither.
      this.#liveSeen = null;
      return fn();
    };
    const run = this.#tail.then(go, go);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #current(): Promise<Current> {
    let text: string;
    try {
      text = await readFile(this.#config.nginx.upstreamsFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        return { exists: false, header: { generation: 0, weights: {} } };
      throw err;
    }
    return { exists: true, header: parseHeader(text) ?? { generation: 0, weights: {} } };
  }

  /** Snapshots the config directory as it is now (labelled with the include's header), or the error to report. */
  async #snapshotCurrent(cur: Current, reason: string): Promise<SnapshotInfo | CanaryError> {
    try {
      return await this.#snapshots.take({ generation: cur.header.generation, weights: cur.header.weights, reason });
    } catch (err) {
      return asCanaryError(err, (c) => errors.snapshotFailed(this.#snapshots.dir, c));
    }
  }

  /** The config directory's manifest now (the snapshot store's own excluded), or null when it cannot be read. Never throws. */
  #confManifest(): ManifestFile[] | null {
    try {
      return manifestOf(this.#snapshots.confDir, [this.#snapshots.dir], this.#confMemo);
    } catch {
      return null;
    }
  }

  /**
   * Milliseconds until {@link apply} of `req` would pass the interval guard (0 = now): for a change that
   * raises a canary weight or lowers none against the include file on disk, nginx.min_reload_interval
   * (ms) since this applier's last reload signal, on the monotonic clock; 0 for one that only lowers (the
   * safe direction never waits). The runner holds a drift reconcile for it. Never throws: an unreadable
   * include file counts as the interval's wait.
   */
  async reloadWaitMs(req: Pick<ApplyRequest, 'weights'>): Promise<number> {
    const cur = await this.#current().catch(() => null);
    if (cur === null) return this.#intervalWait();
    const waits = waitsForInterval(this.#raises(req.weights, cur), this.#lowers(req.weights, cur));
    return waits ? this.#intervalWait() : 0;
  }

  /** True when `weights` raises a canary weight above the include file `cur`. */
  #raises(weights: Readonly<Record<string, number>>, cur: Current): boolean {
    return Object.entries(weights).some(([s, w]) => w > (cur.header.weights[s] ?? 0));
  }

  /** True when `weights` lowers a canary weight below the include file `cur`. */
  #lowers(weights: Readonly<Record<string, number>>, cur: Current): boolean {
    return Object.entries(weights).some(([s, w]) => w < (cur.header.weights[s] ?? 0));
  }

  /** Milliseconds until the next reload is allowed (0 = now). */
  #intervalWait(): number {
    if (this.#lastReloadMono === null) return 0;
    const since = this.#clock.monotonic() - this.#lastReloadMono;
    return Math.max(0, Math.ceil(this.#config.nginx.minReloadIntervalMs - since));
  }

  /** The disk guard: the first volume (snapshots, then nginx config) below MIN_FREE_DISK_RATIO, or null. */
  async #lowDisk(): Promise<CanaryError | null> {
    for (const p of [this.#snapshots.dir, this.#snapshots.confDir]) {
      const ratio = await this.#disk.freeRatio(p);
      if (ratio < MIN_FREE_DISK_RATIO) return errors.diskLow(p, ratio * 100);
    }
    return null;
  }

  async #reload(): Promise<void> {
    await this.#ctl.reload();
    this.#lastReloadMono = this.#clock.monotonic();
  }

  /** The error logs to watch (resolved once; none when nginx.conf cannot be read or `nginx -V` fails). */
  #watchedLogs(): Promise<readonly string[]> {
    this.#errorLogs ??= errorLogsOf(this.#config.nginx).catch((err: unknown) => {
      this.#log.warn(
        { err: (err as Error).message },
        'cannot tell where nginx logs errors; a failed reload is noticed at the verify deadline only',
      );
      return [];
    });
    return this.#errorLogs;
  }

  /** Marks the end of every watched error log (a missing one is marked empty). Never throws. */
  async #markErrorLogs(): Promise<LogMark[]> {
    const marks: LogMark[] = [];
    for (const file of await this.#watchedLogs()) {
      const st = await stat(file).catch(() => null);
      marks.push({ file, ino: st?.ino ?? -1, offset: st?.size ?? 0, partial: '' });
    }
    return marks;
  }

  /**
   * Reads what the error log of `m` gained since the mark and returns the
   * first complete `[emerg]` line of `pid` (any pid when null), or null. A
   * rotated (other inode) or truncated log is read from its start. Never throws.
   */
  async #newEmerg(m: LogMark, pid: number | null): Promise<string | null> {
    // The proof polls every verifyIntervalMs (5 ms): a stat says "nothing new" in one thread-pool round
    // trip, where an open, fstat and close take three (in bench:walk's profile the open-first read was
    // 135 ms of 1,528 ms of main-thread samples over a 14 s walk).
    const quick = await stat(m.file).catch(() => null);
    if (quick === null || (quick.ino === m.ino && quick.size === m.offset)) return null;
    let fh;
    try {
      fh = await open(m.file, 'r');
    } catch {
      return null;
    }
    try {
      const st = await fh.stat();
      if (st.ino !== m.ino || st.size < m.offset) Object.assign(m, { ino: st.ino, offset: 0, partial: '' });
      const len = Math.min(st.size - m.offset, MAX_ERROR_LOG_READ);
      if (len <= 0) return null;
      const buf = Buffer.alloc(len);
      const { bytesRead } = await fh.read(buf, 0, len, m.offset);
      m.offset += bytesRead;
      const lines = (m.partial + buf.toString('utf8', 0, bytesRead)).split('\n');
      m.partial = lines.pop() ?? '';
      for (const line of lines) {
        const hit = EMERG_LINE.exec(line);
        if (hit && (pid === null || Number(hit[1]) === pid)) return (hit[2] ?? '').trim();
      }
      return null;
    } catch {
      return null;
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /**
   * False once the master `pid` has a worker that is not one of `before` (its workers before the reload
   * signal): nginx forks the new generation's workers only after the new configuration loaded
   * (ngx_process_cycle.c, `ngx_master_process_cycle`: `ngx_init_cycle` returns NULL on a refused
   * config, and the master logs `[emerg]` and keeps the old cycle without forking), so no `[emerg]` of
   * this reload can follow, and reading the error logs on each of the ~20 polls of the retire wait was
   * a thread-pool stat each for nothing. True while there is none, and always without a /proc view
   * (`before` or `pid` null). A worker the master respawned for the old generation after a crash in
   * that window counts as new too: a refused reload is then found at the proof's deadline (verify)
   * instead of at once (reload). Never throws.
   */
  async #watchErrorLogs(pid: number | null, before: readonly WorkerProcess[] | null): Promise<boolean> {
    if (pid === null || before === null) return true;
    const now = await workerProcesses(pid, { procRoot: this.#procRoot });
    if (now === null) return true;
    return !now.some((w) => !before.some((b) => b.pid === w.pid && b.startTicks === w.startTicks));
  }

  /**
   * The worker processes of the master `pid` before a reload signal, the
   * basis of the exact proof; null when there is none to be had (no pid, no
   * /proc view of an nginx master): then the timer fallback is used, and
   * said once in the log.
   */
  async #workersBefore(pid: number | null): Promise<WorkerProcess[] | null> {
    const before = pid === null ? null : await workerProcesses(pid, { procRoot: this.#procRoot });
    if (before === null && !this.#warnedTimer) {
      this.#warnedTimer = true;
      this.#log.warn(
        { pid, procRoot: this.#procRoot, settleMs: this.#verifySettleMs },
        'no /proc view of the nginx master: a reload counts as live once every answer of the status server was the new generation for settleMs, not on the proof that old workers stopped accepting',
      );
    }
    return before;
  }

  /**
   * Proves the reload live, polling every verifyIntervalMs until
   * verifyTimeoutMs. With `before` (the master's workers before the signal,
   * see {@link #workersBefore}): first none of those workers still accepts
   * connections (workers.ts `stillAccepting`: each has exited or is titled
   * `… is shutting down`), then the status server answers `want`. The status
   * server is asked only once no old worker accepts: until then an old worker
   * may take the request and answer the old generation, and nginx retires
   * the old workers only ~100 ms after the signal (its own `ngx_msleep(100)`
   * in ngx_process_cycle.c), so asking earlier spent a loopback request
   * (~1.7 ms of CPU, bench:apply) on every 5 ms poll of that wait for
   * nothing. Once the master has forked a worker that is not one of `before`,
   * the next poll waits until {@link NGINX_RELOAD_SPAWN_WAIT_MS} after the
   * last poll that saw none: no old worker can stop accepting before then.
   * Without `before` (null): the status server answered `want`, and
   * every answer stayed `want` for verifySettleMs. Reads the error logs from
   * `marks` on every poll until the master has forked a worker that is not
   * one of `before` ({@link #watchErrorLogs}). Charges the wait to the laps
   * `retire` (signal to no old worker accepting; with null, the settle after
   * the first answer) and `answer` (to the first answer of `want`).
   *
   * @returns null when live; the `[emerg]` line when the master logged one
   *   (the reload failed: nginx keeps the old config); else what was seen
   *   last at the deadline (the last answer, and which old workers still accept).
   */
  async #verify(
    want: number,
    marks: LogMark[],
    pid: number | null,
    before: readonly WorkerProcess[] | null,
    signalAt: number,
    laps: Laps,
  ): Promise<string | Emerg | null> {
    let last: string | null = null;
    let answered = false;
    let retired = false;
    /** The master forked a worker after the signal: the reload was accepted, no `[emerg]` of it can follow. */
    let forked = false;
    /** performance.now() before the last poll that saw no worker forked after the signal (the fork came later). */
    let unforkedAt = signalAt;
    /** No worker from before can stop accepting before then (see {@link NGINX_RELOAD_SPAWN_WAIT_MS}); null: unknown. */
    let retireNotBefore: number | null = null;
    let since: number | null = null;
    let emerg: Emerg | null = null;
    const ask = async (): Promise<boolean> => {
      const answer = await this.#ctl.generation();
      last = answer === null ? 'no answer' : String(answer);
      return answer === want;
    };
    const proven = async (): Promise<boolean> => {
      if (before === null) {
        if (!(await ask())) {
          since = null;
          return false;
        }
        if (!answered) laps.lap('answer');
        answered = true;
        // Timer fallback: old workers answer the old generation until the master retires them.
        since ??= performance.now();
        return performance.now() - since >= this.#verifySettleMs;
      }
      if (!retired) {
        const left = stillAccepting(before, { procRoot: this.#procRoot });
        if (left.length > 0) {
          last = `worker(s) ${left.map((w) => w.pid).join(', ')} from before the reload still accept connections`;
          return false;
        }
        laps.lap('retire');
        retired = true;
      }
      if (!(await ask())) return false;
      laps.lap('answer');
      return true;
    };
    try {
      await waitFor(
        async () => {
          // Both at once, so watching the error logs adds no latency to the proof.
          const polledAt = performance.now();
          const watch = !forked && (await this.#watchErrorLogs(pid, before));
          if (watch) unforkedAt = polledAt;
          else if (!forked) retireNotBefore = unforkedAt + NGINX_RELOAD_SPAWN_WAIT_MS;
          forked = !watch;
          laps.polls.all++;
          if (watch) laps.polls.errorLogs++;
          const early = retireNotBefore !== null && performance.now() < retireNotBefore;
          const [found, live] = await Promise.all([
            watch ? Promise.all(marks.map(async (m) => ({ file: m.file, message: await this.#newEmerg(m, pid) }))) : [],
            early ? false : proven(),
          ]);
          for (const { file, message } of found) {
            if (message === null) continue;
            emerg = { file, message, afterMs: Math.round(performance.now() - signalAt) };
            return true;
          }
          return live;
        },
        {
          timeoutMs: this.#verifyTimeoutMs,
          intervalMs: this.#verifyIntervalMs,
          what: `generation ${want}`,
          notBefore: () => retireNotBefore,
        },
      );
      // The timer's settle after the first answer, or the wait until an `[emerg]`; with /proc, a proven
      // reload charged `retire` and then `answer` as they ended.
      if (before === null || emerg !== null) laps.lap('retire');
      return emerg;
    } catch (err) {
      if (!(err instanceof WaitTimeoutError)) throw err;
      if (before !== null && !retired) {
        // Asked once for the message: what nginx answers while the old workers still accept.
        const answer = await this.#ctl.generation();
        return `${answer === null ? 'no answer' : String(answer)}, but ${last ?? 'old workers still accept'}`;
      }
      return last ?? 'no answer';
    }
  }

  /** Restores snapshot `id` (and reloads when nginx may hold the new file). Returns whether the files were restored. */
  async #restore(id: string, reload: boolean, why: ApplyStage): Promise<boolean> {
    // Whatever the directory holds after this, no passing nginx -t has seen it.
    this.#tested = null;
    try {
      await this.#snapshots.restore(id);
    } catch (err) {
      this.#log.warn({ snapshot: id, stage: why, err: (err as Error).message }, 'restoring the snapshot failed');
      return false;
    }
    if (reload) {
      try {
        await this.#reload();
      } catch (err) {
        this.#log.warn(
          { snapshot: id, stage: why, err: (err as Error).message },
          'reload after restoring the snapshot failed',
        );
      }
    }
    this.#log.info({ snapshot: id, stage: why }, 'snapshot restored');
    return true;
  }

  async #apply(req: ApplyRequest, live: boolean): Promise<ApplyResult> {
    const t0 = this.#clock.monotonic();
    const laps = new Laps(this.#clock);
    const fail = (stage: ApplyStage, error: CanaryError, restored: boolean): Failure => {
      const r: Failure = { ok: false, stage, error, restored, durationMs: this.#clock.monotonic() - t0 };
      this.#log.warn(
        { stage, code: error.code, restored, generation: req.generation, durationMs: r.durationMs },
        `apply stopped at ${stage}: ${error.message}`,
      );
      return r;
    };

    const cur = await this.#current();
    const raises = this.#raises(req.weights, cur);
    const lowers = this.#lowers(req.weights, cur);
    if (live && waitsForInterval(raises, lowers)) {
      const wait = this.#intervalWait();
      if (wait > 0) return fail('interval', errors.reloadTooSoon(wait), false);
    }
    const low = await this.#lowDisk();
    if (low) return fail('disk', low, false);

    if (live) {
      // Reload-rate guard: a reload that raises a weight waits while too many old worker generations still
      // serve old weights. Drains and lowered weights are never held (the safe direction must not wait).
      if (raises) {
        const generations = await this.#oldGenerations();
        const max = this.#config.nginx.maxOldGenerations;
        if (generations > max) return fail('workers', errors.tooManyOldWorkers(generations, max), false);
      }
    }
    if (live && cur.exists && cur.header.generation === req.generation) {
      throw new RangeError(
        `apply: generation ${req.generation} is already the generation of ${this.#config.nginx.upstreamsFile}; pass a new one`,
      );
    }
    let flavor: Flavor;
    try {
      flavor = await this.flavor();
    } catch (err) {
      return fail(
        'preflight',
        asCanaryError(err, (c) => errors.nginxBinary(this.#config.nginx.binary, c)),
        false,
      );
    }
    const text = renderUpstreams(
      buildModel(this.#config, req.weights, req.generation, flavor, { drained: req.drained ?? [] }),
    );
    laps.lap('guards');

    // Preflight guards what nginx serves, so only for a live apply. writeInitial runs before a managed
    // nginx starts (or when the include is missing): an include left by an older release can make the
    // current config fail (e.g. nginx.conf already routes to a variable only the new file defines), and
    // the new file is what repairs it. The candidate is still tested below and restored on failure.
    // The preflight is skipped when it is redundant: the config directory is byte for byte (sha256, size,
    // mode of every file and link) what the last passing `nginx -t` of this applier tested. What that does
    // not cover — a change outside the directory (an included file elsewhere, a certificate, a module,
    // the binary) — fails the test after the write instead, and is told apart there (#testReloadVerify).
    let preflightSkipped = false;
    if (cur.exists && live) {
      const seen = this.#confManifest();
      preflightSkipped = seen !== null && this.#tested !== null && sameFiles(seen, this.#tested);
      if (!preflightSkipped) {
        try {
          const pre = await this.#ctl.test();
          if (!pre.ok) {
            this.#tested = null;
            return fail('preflight', errors.nginxConfigBroken(pre.output), false);
          }
          this.#tested = seen;
        } catch (err) {
          return fail(
            'preflight',
            asCanaryError(err, (c) => errors.nginxBinary(this.#config.nginx.binary, c)),
            false,
          );
        }
      }
    }
    laps.lap('preflight');

    const snap = await this.#snapshotCurrent(cur, req.reason);
    if (snap instanceof CanaryError) return fail('snapshot', snap, false);
    laps.lap('snapshot');

    let written: string | null;
    try {
      const file = this.#config.nginx.upstreamsFile;
      await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
      const mode = await stat(file).then(
        (s) => s.mode & 0o7777,
        () => 0o644,
      );
      await writeFileAtomic(file, text, mode);
      // The identity of the bytes written, before nginx -t reads them: what isLive may trust once proven.
      written = await stat(file, { bigint: true }).then(fileIdentity, () => null);
    } catch (err) {
      return fail(
        'write',
        errors.upstreamsWriteFailed(this.#config.nginx.upstreamsFile, err),
        await this.#restore(snap.id, false, 'write'),
      );
    }
    laps.lap('write');

    const done = await this.#testReloadVerify(snap.id, req.generation, live, '', laps, preflightSkipped);
    if ('stage' in done) return fail(done.stage, done.error, done.restored);
    // Proven: the status server answered req.generation (both proofs end on that answer).
    if (done.proof !== null && written !== null)
      this.#liveSeen = { key: liveKey(req), file: written, generationAt: this.#clock.monotonic() };

    const durationMs = this.#clock.monotonic() - t0;
    this.#log.info(
      {
        generation: req.generation,
        weights: req.weights,
        snapshot: snap.id,
        durationMs,
        reload: live,
        ...(done.proof === null ? {} : { proof: done.proof, preflightSkipped, stagesMs: roundedStages(laps.stages) }),
      },
      live ? 'applied' : 'written',
    );
    if (done.proof !== null) {
      this.#onTimings?.({
        kind: 'apply',
        generation: req.generation,
        lowersOnly: lowers && !raises,
        proof: done.proof,
        preflightSkipped,
        stages: laps.stages,
        polls: { ...laps.polls },
        totalMs: durationMs,
      });
    }
    return { ok: true, generation: req.generation, snapshotId: snap.id, durationMs };
  }

  /**
   * The tail shared by apply and rollback, after the new files are written:
   * `nginx -t`, then (when `live`) reload and proof that the status server
   * answers `generation`. Any failure restores snapshot `restoreId` (and
   * reloads it when nginx may already have loaded the new config).
   *
   * @param label prefixed to nginx's output when `nginx -t` rejects the files.
   * @param laps charged `test`, `reload`, `answer` and `retire`.
   * @param preflightSkipped the caller skipped its preflight (the directory was what the last passing
   *   `nginx -t` tested): when `nginx -t` now rejects the files, the restored directory is tested too, and
   *   a failure there is reported as stage `preflight` (NC_NGINX_CONFIG_BROKEN: something outside the
   *   directory broke the config nginx runs), not as a rejected render.
   * @returns how the reload was proven live (`proof`, null when not `live`) when everything passed, else
   *   the failed stage, its error and whether the restore succeeded.
   */
  async #testReloadVerify(
    restoreId: string,
    generation: number,
    live: boolean,
    label: string,
    laps: Laps,
    preflightSkipped = false,
  ): Promise<
    | { stage: 'preflight' | 'test' | 'reload' | 'verify'; error: CanaryError; restored: boolean }
    | { proof: 'proc' | 'timer' | null }
  > {
    let tested;
    // The directory's manifest right before nginx -t reads it: if it passes, these are the bytes it passed
    // (a change in between leaves the next apply's manifest different from this one, so its preflight runs).
    const manifest = this.#confManifest();
    try {
      tested = await this.#ctl.test();
    } catch (err) {
      const error = asCanaryError(err, (c) => errors.nginxBinary(this.#config.nginx.binary, c));
      return { stage: 'test', error, restored: await this.#restore(restoreId, false, 'test') };
    }
    if (!tested.ok) {
      const restored = await this.#restore(restoreId, false, 'test');
      if (preflightSkipped && restored) {
        const base = await this.#ctl.test().catch(() => null);
        if (base !== null && !base.ok) {
          return { stage: 'preflight', error: errors.nginxConfigBroken(base.output), restored };
        }
      }
      return { stage: 'test', error: errors.nginxRejectedRender(`${label}${tested.output}`), restored };
    }
    this.#tested = manifest;
    laps.lap('test');
    if (!live) return { proof: null };
    const pid = await this.#masterPid();
    // Read before the signal: the master cannot fork the new generation before it gets it.
    const [before, marks] = await Promise.all([this.#workersBefore(pid), this.#markErrorLogs()]);
    try {
      await this.#reload();
    } catch (err) {
      const error = asCanaryError(err, (c) => errors.reloadFailed(String(c)));
      return { stage: 'reload', error, restored: await this.#restore(restoreId, true, 'reload') };
    }
    laps.lap('reload');
    const seen = await this.#verify(generation, marks, pid, before, performance.now(), laps);
    if (seen !== null && typeof seen === 'object') {
      // nginx refused the new config at apply time and kept the old one; put the files back so they match.
      const error = errors.reloadFailed(
        `nginx logged [emerg] in ${seen.file} ${seen.afterMs} ms after the reload signal: ${seen.message}`,
      );
      return { stage: 'reload', error, restored: await this.#restore(restoreId, true, 'reload') };
    }
    if (seen !== null) {
      return {
        stage: 'verify',
        error: errors.reloadNotLive(generation, seen),
        restored: await this.#restore(restoreId, true, 'verify'),
      };
    }
    return { proof: before === null ? 'timer' : 'proc' };
  }

  async #rollback(id: string | undefined): Promise<RollbackResult> {
    const t0 = this.#clock.monotonic();
    const laps = new Laps(this.#clock);
    let target: SnapshotInfo | null = null;
    const fail = (stage: RollbackStage, error: CanaryError, restored: boolean): RollbackResult => {
      this.#log.warn(
        { stage, code: error.code, restored, snapshot: target?.id ?? id ?? null },
        `rollback stopped at ${stage}: ${error.message}`,
      );
      return { ok: false, stage, error, restored, snapshot: target, durationMs: this.#clock.monotonic() - t0 };
    };

    const cur = await this.#current();
    let loaded: VerifiedSnapshot;
    let raises: WeightRaise[];
    try {
      let pick = id;
      if (pick === undefined) {
        const live = (await this.#ctl.generation()) ?? cur.header.generation;
        const choice = chooseRollback(await this.#snapshots.list(), cur.header.weights, live);
        if (choice === null || !choice.ok) {
          const error =
            choice?.ok === false && choice.reason === 'all-raise'
              ? errors.rollbackRaises(choice.newest.id, describeRaises(choice.raises))
              : errors.noOlderSnapshot(live);
          return fail('select', error, false);
        }
        pick = choice.snapshot.id;
      }
      loaded = await this.#snapshots.load(pick);
      raises = raisesOf(loaded.info, cur.header.weights);
      target = loaded.info;
    } catch (err) {
      return fail(
        'select',
        asCanaryError(err, (c) => errors.snapshotInvalid(id ?? '?', String(c))),
        false,
      );
    }

    const wait = this.#intervalWait();
    if (wait > 0) return fail('interval', errors.reloadTooSoon(wait), false);
    const low = await this.#lowDisk();
    if (low) return fail('disk', low, false);
    laps.lap('guards');

    const before = await this.#snapshotCurrent(cur, `before rollback to ${target.id}`);
    if (before instanceof CanaryError) return fail('snapshot', before, false);
    laps.lap('snapshot');

    try {
      await this.#snapshots.write(loaded);
    } catch (err) {
      return fail(
        'write',
        asCanaryError(err, (c) => errors.upstreamsWriteFailed(this.#snapshots.confDir, c)),
        await this.#restore(before.id, false, 'write'),
      );
    }
    laps.lap('write');
    const done = await this.#testReloadVerify(before.id, target.generation, true, `snapshot ${target.id}: `, laps);
    if ('stage' in done) return fail(done.stage, done.error, done.restored);

    const durationMs = this.#clock.monotonic() - t0;
    const proof = done.proof ?? 'timer';
    this.#log.info(
      {
        snapshot: target.id,
        generation: target.generation,
        weights: target.weights,
        raises,
        durationMs,
        proof,
        stagesMs: roundedStages(laps.stages),
      },
      'rolled back',
    );
    this.#onTimings?.({
      kind: 'rollback',
      generation: target.generation,
      preflightSkipped: false,
      lowersOnly: raises.length === 0 && this.#lowers(target.weights, cur),
      proof,
      stages: laps.stages,
      polls: { ...laps.polls },
      totalMs: durationMs,
    });
    return { ok: true, snapshot: target, generation: target.generation, raises, durationMs };
  }
}
