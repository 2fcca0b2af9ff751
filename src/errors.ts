/**
 * The error catalogue: every error a user can meet has a stable code, one
 * sentence saying what is wrong, and the fix. Codes are never reused.
 *
 * `exitCode` is what the CLI exits with (docs/design.md "Interfaces": 0 ok,
 * 1 failure, 2 usage or invalid config); `statusCode` is what the HTTP API
 * answers. 5xx messages are not shown to API clients (see server/app.ts).
 */
import { MIN_FREE_DISK_RATIO } from './nginx/types.js';

/** Where in a file a problem sits (1-based line and column). */
export interface SourcePosition {
  /** The file as the loader was given it (weights.yaml). */
  file: string;
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  column: number;
}

/** One problem found in a config file; many may be reported at once. */
export interface ConfigProblem {
  /** Position of the offending key or value; null when the file could not be read at all. */
  position: SourcePosition | null;
  /** Key path in dotted form, e.g. `services.gateway.canary[0].max_fails`; '' for the whole file. */
  path: string;
  /** What is wrong, one sentence without a trailing period. */
  message: string;
  /** How to fix it, one sentence. */
  fix: string;
}

/** Options for {@link CanaryError}. */
export interface CanaryErrorOptions {
  /** How to fix it, one sentence. */
  fix: string;
  /** CLI exit code: 1 failure (default), 2 usage or invalid config (docs/design.md "Interfaces"). */
  exitCode?: 1 | 2;
  /** HTTP status the API answers with (default 500). */
  statusCode?: number;
  /** The underlying error, kept as `Error.cause`. */
  cause?: unknown;
}

/** Base class of every error this project throws on purpose. */
export class CanaryError extends Error {
  /** Stable `NC_*` code, never reused. */
  readonly code: string;
  /** How to fix it, one sentence. */
  readonly fix: string;
  /** CLI exit code: 1 failure, 2 usage or invalid config. */
  readonly exitCode: 1 | 2;
  /** HTTP status the API answers with. */
  readonly statusCode: number;
  /**
   * @param code stable `NC_*` code.
   * @param message what is wrong, one sentence without a trailing period.
   * @param opts fix, exit code (default 1), HTTP status (default 500), cause.
   */
  constructor(code: string, message: string, opts: CanaryErrorOptions) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CanaryError';
    this.code = code;
    this.fix = opts.fix;
    this.exitCode = opts.exitCode ?? 1;
    this.statusCode = opts.statusCode ?? 500;
  }
  /**
   * "message. fix" as the CLI prints it on stderr; a message of several lines (nginx's own output)
   * gets the fix on a line of its own.
   */
  toUserString(): string {
    return this.message.includes('\n') ? `${this.message.trimEnd()}\n${this.fix}` : `${this.message}. ${this.fix}`;
  }
}

/** Formats one config problem as `file:line:col: path: message (fix)`. */
export function formatProblem(p: ConfigProblem): string {
  const where = p.position ? `${p.position.file}:${p.position.line}:${p.position.column}: ` : '';
  const key = p.path === '' ? '' : `${p.path}: `;
  return `${where}${key}${p.message}. Fix: ${p.fix}`;
}

/** weights.yaml (or an API body validated by the same schema) is invalid. Exit 2, HTTP 400. */
export class ConfigError extends CanaryError {
  /** Every problem found, in file order. */
  readonly problems: readonly ConfigProblem[];
  /** Code NC_CONFIG_INVALID; the message is the first problem plus a count of the others. */
  constructor(problems: readonly ConfigProblem[]) {
    const first = problems[0];
    const head = first ? formatProblem(first) : 'invalid configuration';
    const more =
      problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : '';
    super('NC_CONFIG_INVALID', `${head}${more}`, {
      fix: 'Correct the file and run `nginx-canary check`; nothing was changed',
      exitCode: 2,
      statusCode: 400,
    });
    this.name = 'ConfigError';
    this.problems = problems;
  }
  /** Every problem on its own line. */
  override toUserString(): string {
    return this.problems.map(formatProblem).join('\n');
  }
}

/** What the lock errors show of a lock file's holder (src/lock.ts LockHolder). */
export interface LockHolderInfo {
  /** Process id on `hostname`. */
  pid: number;
  hostname: string;
  /** ISO 8601 time the lock was taken. */
  startedAt: string;
  /** The holder's process.argv. */
  argv: readonly string[];
}

/** `since <startedAt>: <command>` for a lock holder (argv without the node binary, at most 160 characters). */
function describeHolder(h: LockHolderInfo): string {
  const cmd = h.argv.slice(1).join(' ');
  return `since ${h.startedAt}: ${cmd.length > 160 ? `${cmd.slice(0, 159)}…` : cmd}`;
}

/** Constructors for every other catalogued error. One entry per code; codes are never reused. */
export const errors = {
  fleetUnavailable: (what: string, cause: unknown) =>
    new CanaryError(
      'NC_FLEET_UNAVAILABLE',
      `cannot send ${what} to the fleet: etcd did not take it (${cause instanceof Error ? cause.message : String(cause)})`,
      {
        fix: 'Check that etcd has quorum and that this host reaches it (`nginx-canary status` shows etcd up or down); the command changed nothing',
        statusCode: 503,
        cause,
      },
    ),
  usage: (message: string, fix: string) => new CanaryError('NC_USAGE', message, { fix, exitCode: 2, statusCode: 400 }),
  unknownService: (name: string) =>
    new CanaryError('NC_UNKNOWN_SERVICE', `no service named "${name}" in weights.yaml`, {
      fix: 'Use one of the names under `services:` (see `nginx-canary status`)',
      exitCode: 2,
      statusCode: 404,
    }),
  configWrite: (file: string, cause: unknown) =>
    new CanaryError('NC_CONFIG_WRITE', `cannot write ${file}; it was left unchanged`, {
      fix: 'Check the permissions of the file and of its directory (a temp file is written beside it, then renamed over it)',
      cause,
    }),
  nginxBinary: (binary: string, cause: unknown) =>
    new CanaryError('NC_NGINX_BINARY', `cannot run nginx binary "${binary}"`, {
      fix: 'Install nginx (Debian: apt-get install nginx-light) or set nginx.binary to its absolute path',
      cause,
    }),
  nginxConfigBroken: (detail: string) =>
    new CanaryError('NC_NGINX_CONFIG_BROKEN', `nginx -t fails on the current config before any change: ${detail}`, {
      fix: 'Repair nginx.conf by hand (run `nginx -t`); the sidecar changes nothing until it passes',
    }),
  nginxRejectedRender: (detail: string) =>
    new CanaryError(
      'NC_NGINX_REJECTED_RENDER',
      `nginx -t rejected the rendered upstreams file; the snapshot was restored: ${detail}`,
      {
        fix: 'Run `nginx-canary check` to see the rendered file and the nginx error',
      },
    ),
  reloadFailed: (detail: string) =>
    new CanaryError('NC_RELOAD_FAILED', `nginx reload failed; the snapshot was restored: ${detail}`, {
      fix: 'Check the nginx error log; the sidecar retries on its next tick',
    }),
  /** `want`: the generation rendered; `seen`: what the status server last answered (text, e.g. `41` or `no answer`). */
  reloadNotLive: (want: number, seen: string) =>
    new CanaryError(
      'NC_RELOAD_NOT_LIVE',
      `nginx did not serve generation ${want} before the deadline (last seen: ${seen}); the snapshot was restored`,
      {
        fix: 'Check that nginx is running and that nginx.status_listen is reachable',
      },
    ),
  /**
   * `freePercent`: free space of the volume, percent 0–100 (not a ratio). The message's floor is
   * MIN_FREE_DISK_RATIO (nginx/types.ts, docs/design.md "Numbers": 0.1, shown as "< 10 %").
   */
  diskLow: (path: string, freePercent: number) =>
    new CanaryError(
      'NC_DISK_LOW',
      `only ${freePercent.toFixed(1)} % free on the volume of ${path} (< ${Number((MIN_FREE_DISK_RATIO * 100).toFixed(1))} %); no change was made`,
      {
        fix: 'Free disk space on that volume; the walk resumes by itself',
      },
    ),
  /** `waitMs`: ms until nginx.min_reload_interval has passed. HTTP 429. */
  /**
   * The reload-rate guard held a reload that raises a weight: more old nginx
   * worker generations are still shutting down than nginx.max_old_generations.
   */
  tooManyOldWorkers: (generations: number, max: number) =>
    new CanaryError(
      'NC_OLD_WORKERS',
      `${generations} generations of old nginx workers are still shutting down (more than nginx.max_old_generations ${max}); the weight is held`,
      {
        fix: 'Wait: old workers exit when their last connection ends or worker_shutdown_timeout runs out (set it in nginx.conf); or raise nginx.max_old_generations',
        statusCode: 429,
      },
    ),
  reloadTooSoon: (waitMs: number) =>
    new CanaryError(
      'NC_RELOAD_TOO_SOON',
      `a reload happened less than nginx.min_reload_interval ago; retry in ${waitMs} ms`,
      {
        fix: 'Wait; the sidecar never reloads nginx faster than min_reload_interval',
        statusCode: 429,
      },
    ),
  snapshotNotFound: (id: string) =>
    new CanaryError('NC_SNAPSHOT_NOT_FOUND', `no snapshot with id "${id}"`, {
      fix: 'List them with `nginx-canary snapshots`',
      exitCode: 2,
      statusCode: 404,
    }),
  snapshotInvalid: (id: string, detail: string) =>
    new CanaryError('NC_SNAPSHOT_INVALID', `snapshot "${id}" fails its manifest check: ${detail}`, {
      fix: 'Pick another snapshot (`nginx-canary snapshots`); this one was not written by the sidecar or was altered',
      statusCode: 409,
    }),
  stateCorrupt: (file: string, detail: string) =>
    new CanaryError('NC_STATE_CORRUPT', `state file ${file} is unreadable: ${detail}`, {
      fix: `Inspect it; to start over from the live nginx config move it aside (mv ${file} ${file}.bad) and run again`,
      exitCode: 1,
    }),
  sidecarUnreachable: (url: string, cause: unknown) =>
    new CanaryError('NC_SIDECAR_UNREACHABLE', `the sidecar does not answer at ${url}`, {
      fix: 'Start it with `nginx-canary run` (or check sidecar.listen in weights.yaml)',
      cause,
    }),
  snapshotFailed: (dir: string, cause: unknown) =>
    new CanaryError(
      'NC_SNAPSHOT_FAILED',
      `could not write a snapshot to ${dir} (${cause instanceof Error ? cause.message : String(cause)}); no change was made`,
      {
        fix: 'Check that nginx.snapshots.dir is writable by the sidecar and the nginx config directory is readable',
        cause,
      },
    ),
  /** The API could not bind `host:port` (sidecar.listen) at start-up; nothing was changed yet. */
  listenFailed: (host: string, port: number, cause: unknown) =>
    new CanaryError(
      'NC_LISTEN',
      `cannot listen on ${host}:${port}: ${cause instanceof Error ? cause.message : String(cause)}; nothing was changed`,
      {
        fix: 'Stop the other process on that port (another sidecar?) or change sidecar.listen',
        cause,
      },
    ),
  upstreamsWriteFailed: (file: string, cause: unknown) =>
    new CanaryError(
      'NC_UPSTREAMS_WRITE_FAILED',
      `could not write ${file} (${cause instanceof Error ? cause.message : String(cause)}); the snapshot was restored`,
      {
        fix: 'Check that the directory of nginx.upstreams_file is writable by the sidecar',
        cause,
      },
    ),
  /** `liveGeneration`: the generation nginx serves now. */
  noOlderSnapshot: (liveGeneration: number) =>
    new CanaryError(
      'NC_SNAPSHOT_NONE_OLDER',
      `no snapshot holds a config older than the live generation ${liveGeneration}`,
      {
        fix: 'Name a snapshot explicitly (`nginx-canary snapshots`, then `nginx-canary rollback <id>`)',
        exitCode: 1,
        statusCode: 404,
      },
    ),
  /**
   * A plain rollback found snapshots older than the live config, but restoring any of them would
   * raise a canary weight above the live one (`raises`: e.g. "gateway 0 % → 30 %"); `newest` is the
   * id of the newest of them. Nothing was changed. HTTP 409.
   */
  rollbackRaises: (newest: string, raises: string) =>
    new CanaryError(
      'NC_ROLLBACK_RAISES',
      `every snapshot older than the live config would raise a canary weight (the newest, ${newest}: ${raises}); nothing was restored`,
      {
        fix: `A rollback never raises a canary behind the walk's back. To restore it anyway, name it: \`nginx-canary rollback ${newest}\` (the walk is then paused at its weights); to lower the canary use \`nginx-canary abort <service>\``,
        exitCode: 1,
        statusCode: 409,
      },
    ),
  /**
   * The restore of snapshot `id` stopped at `stage` (nginx -t, reload, verify, disk, …); `detail` is
   * the cause's message (nginx's own output for -t and reload). `restored`: the config that was live
   * before the rollback was put back. HTTP 409: the snapshot, not the sidecar, is at fault.
   */
  rollbackFailed: (id: string, stage: string, detail: string, restored: boolean) =>
    new CanaryError(
      'NC_ROLLBACK_FAILED',
      `rollback to snapshot ${id} stopped at stage ${stage}; ${restored ? 'the config that was live before it is back and serving' : 'nothing was changed'}:\n${detail}`,
      {
        fix:
          stage === 'test'
            ? 'That snapshot fails `nginx -t` with this nginx (a module or an included file it names has changed since); pick another with `nginx-canary snapshots`'
            : stage === 'interval' || stage === 'disk' || stage === 'workers'
              ? 'Retry once the condition above has cleared'
              : 'Check that nginx is running (`nginx -t`, its error log), then retry',
        exitCode: 1,
        statusCode: 409,
      },
    ),
  /** `promote` was refused: `reason` and `fix` from rollout/release.ts promoteRefusal (or the promote command). HTTP 409. */
  promoteRefused: (service: string, reason: string, fix: string) =>
    new CanaryError('NC_PROMOTE_REFUSED', `cannot promote ${service}: ${reason}; nothing was changed`, {
      fix,
      exitCode: 1,
      statusCode: 409,
    }),
  nginxStartFailed: (binary: string, detail: string) =>
    new CanaryError('NC_NGINX_START_FAILED', `the managed nginx (${binary}) did not start: ${detail}`, {
      fix: 'Run `nginx-canary check`, and make sure the ports nginx.conf listens on are free',
    }),
  /**
   * A lock file (src/lock.ts) is held by a live process on this host, or by any process on another
   * host (`remote`: never taken over, since its pid cannot be checked from here). `holder`: the
   * file's record, or null when a takeover by another process was still under way.
   */
  locked: (file: string, holder: LockHolderInfo | null, remote: boolean) =>
    new CanaryError(
      'NC_LOCKED',
      holder === null
        ? `lock file ${file} is being taken over by another process`
        : `lock file ${file} is held by pid ${holder.pid}${remote ? ` on host ${holder.hostname}` : ''} (${describeHolder(holder)}): another nginx-canary uses the same files`,
      {
        fix:
          holder === null
            ? 'Retry in a moment'
            : remote
              ? `Stop that process on ${holder.hostname} (pid ${holder.pid}); if you are sure it is gone, delete ${file} (a lock from another host is never taken over: its pid means nothing here)`
              : `Stop the other process (pid ${holder.pid}) first; if you are sure it is gone, delete ${file}`,
        exitCode: 1,
        statusCode: 409,
      },
    ),
  /** Still held after `waitMs` (ms) of waiting (weights.yaml edits wait up to 5 s: a chosen bound). */
  lockTimeout: (file: string, holder: LockHolderInfo, waitMs: number) =>
    new CanaryError(
      'NC_LOCK_TIMEOUT',
      `lock file ${file} is still held by pid ${holder.pid} on host ${holder.hostname} (${describeHolder(holder)}) after ${waitMs} ms; nothing was changed`,
      {
        fix: `Retry; if pid ${holder.pid} is stuck, stop it, or delete ${file} if you are sure it is gone`,
        exitCode: 1,
        statusCode: 409,
      },
    ),
  /** weights.yaml changed between read and rename `attempts` times in a row (another writer, e.g. an editor). */
  configBusy: (file: string, attempts: number) =>
    new CanaryError(
      'NC_CONFIG_BUSY',
      `${file} was changed by another writer during each of ${attempts} attempts to set the target; it was left as that writer saved it`,
      {
        fix: 'Retry once the other writer (an editor saving in a loop?) has finished',
        exitCode: 1,
        statusCode: 409,
      },
    ),
  unauthorized: () =>
    new CanaryError('NC_UNAUTHORIZED', 'this call changes the rollout and needs the bearer token', {
      fix: 'Send `Authorization: Bearer <contents of sidecar.token_file>`',
      statusCode: 401,
    }),
  /** A read from a non-loopback client without the right bearer token (same code as {@link errors.unauthorized}). */
  unauthorizedRead: () =>
    new CanaryError('NC_UNAUTHORIZED', 'reads from an address other than loopback need the bearer token', {
      fix: 'Send `Authorization: Bearer <contents of sidecar.token_file>` (Prometheus: authorization.credentials_file)',
      statusCode: 401,
    }),
  /** Any call from a non-loopback client when no token is configured; `remote` is the client address. */
  forbiddenWithoutToken: (remote: string | undefined) =>
    new CanaryError(
      'NC_FORBIDDEN',
      `the API has no token (sidecar.token_file) and answers loopback clients only, not ${remote ?? 'an unknown address'}`,
      {
        fix: 'Call it from the sidecar host (127.0.0.1), or set sidecar.token_file and send the bearer token',
        statusCode: 403,
      },
    ),
  /** A non-loopback `sidecar.listen` (`at`: `host:port`, IPv6 bracketed) without `sidecar.token_file`. */
  listenNoToken: (at: string, port: number) =>
    new CanaryError(
      'NC_LISTEN_NO_TOKEN',
      `sidecar.listen ${at} is not a loopback address and sidecar.token_file is not set: anyone who can reach it could change the rollout`,
      {
        fix: `Set sidecar.token_file to a 0600 file holding a random token (openssl rand -hex 32), or listen on 127.0.0.1:${port}`,
        exitCode: 2,
      },
    ),
  /** A token file group or others may read or write; `perm` is its permission bits. */
  tokenFileMode: (file: string, perm: number) =>
    new CanaryError(
      'NC_TOKEN_FILE_MODE',
      `sidecar.token_file ${file} has mode ${perm.toString(8).padStart(4, '0')}: group or others can read or change the API token`,
      { fix: `Run chmod 600 ${file} (owned by the user the sidecar runs as), then start again` },
    ),
  /** A token file that cannot be used (`why`: cannot be opened, not a regular file, too big, too short); `minLength` characters at least. */
  tokenFile: (file: string, why: string, minLength: number, cause?: unknown) =>
    new CanaryError('NC_TOKEN_FILE', `cannot use sidecar.token_file ${file}: ${why}`, {
      fix: `Write a random token of at least ${minLength} characters into it (e.g. openssl rand -hex 32 > token; chmod 600 token) or set token_file: ~`,
      cause,
    }),
} as const;
