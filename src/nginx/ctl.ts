/**
 * The real {@link NginxCtl}: runs the nginx binary with `execFile` (no shell,
 * bounded by a timeout) and reads the generation from the loopback status
 * server the include file renders.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Client, request, type Dispatcher } from 'undici';
import { errors } from '../errors.js';
import type { NginxConfig } from '../config/types.js';
import { parseVersion } from './flavor.js';
import { formatListen } from './model.js';
import { masterPidReader } from './process.js';
import { isNginxMaster } from './workers.js';
import type { NginxCtl, NginxVersion, TestResult } from './types.js';

/**
 * The error each {@link NginxCommand.generation} destroys its own connection with once the answer is
 * read: made, and its stack formatted, once (destroying a Client without one makes a fresh error per call).
 */
const GENERATION_DONE = new Error('generation asked: its connection is closed');
void GENERATION_DONE.stack;

/** Options of {@link NginxCommand}. */
export interface NginxCommandOptions {
  /**
   * Upper bound of one `nginx -t`/`-s reload`/`-V` run, ms (default 15 000, a chosen bound: `nginx -t`
   * on a large config takes seconds). The run is then killed with SIGKILL.
   */
  commandTimeoutMs?: number;
  /** Upper bound of one `/generation` request, ms (default 1000, chosen: the status server is on loopback). */
  statusTimeoutMs?: number;
  /** undici dispatcher for the status request (default: the global one); tests may pass a MockAgent. */
  dispatcher?: Dispatcher;
  /** Root of the proc filesystem {@link NginxCommand.reload} checks the master pid in (default `/proc`); tests pass a fake tree. */
  procRoot?: string;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** What `execFile` hands its callback on failure (Node's ExecFileException shape). */
interface ExecError extends Error {
  code?: string | number | null;
  killed?: boolean;
}

/** Runs the nginx binary of `nginx.binary` with `-p prefix` (when set) and `-c conf`. */
export class NginxCommand implements NginxCtl {
  readonly #nginx: Pick<NginxConfig, 'binary' | 'conf' | 'prefix' | 'statusListen'>;
  readonly #commandTimeoutMs: number;
  readonly #statusTimeoutMs: number;
  readonly #dispatcher: Dispatcher | undefined;
  readonly #procRoot: string | undefined;
  /** The master's pid from nginx's pid file, or null when it cannot be read (process.ts `masterPidReader`). */
  readonly #masterPid: () => Promise<number | null>;

  /**
   * @param nginx the `nginx` section of the config (binary, conf, prefix, statusListen are read).
   * @throws RangeError on a non-positive timeout.
   */
  constructor(nginx: Pick<NginxConfig, 'binary' | 'conf' | 'prefix' | 'statusListen'>, opts: NginxCommandOptions = {}) {
    this.#nginx = nginx;
    this.#commandTimeoutMs = opts.commandTimeoutMs ?? 15_000;
    this.#statusTimeoutMs = opts.statusTimeoutMs ?? 1000;
    if (!(this.#commandTimeoutMs > 0) || !(this.#statusTimeoutMs > 0))
      throw new RangeError('NginxCommand: timeouts must be > 0 ms');
    this.#dispatcher = opts.dispatcher;
    this.#procRoot = opts.procRoot;
    this.#masterPid = masterPidReader(nginx);
  }

  /** `-p <prefix>` (when set) `-c <conf>`. */
  #base(conf = this.#nginx.conf): string[] {
    return [...(this.#nginx.prefix === null ? [] : ['-p', this.#nginx.prefix]), '-c', conf];
  }

  /** Runs the binary; resolves with its exit code, throws NC_NGINX_BINARY when it cannot start. */
  #run(args: string[]): Promise<RunResult> {
    const binary = this.#nginx.binary;
    return new Promise((resolve, reject) => {
      execFile(
        binary,
        args,
        { timeout: this.#commandTimeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024, encoding: 'utf8' },
        (err: ExecError | null, stdout: string, stderr: string) => {
          if (!err) return resolve({ code: 0, stdout, stderr });
          if (typeof err.code === 'string') return reject(errors.nginxBinary(binary, err));
          const timedOut = err.killed === true;
          resolve({
            code: typeof err.code === 'number' ? err.code : 1,
            stdout,
            stderr: timedOut
              ? `${stderr}\nnginx ${args.join(' ')} timed out after ${this.#commandTimeoutMs} ms`
              : stderr,
          });
        },
      );
    });
  }

  /** `nginx -V` → flavor and version. Throws NC_NGINX_BINARY when the binary cannot run or is not nginx. */
  async version(): Promise<NginxVersion> {
    const r = await this.#run(['-V']);
    if (r.code !== 0) throw errors.nginxBinary(this.#nginx.binary, new Error(r.stderr.trim()));
    return parseVersion(`${r.stdout}\n${r.stderr}`, this.#nginx.binary);
  }

  /**
   * `nginx -t [-p prefix] -c <conf>`; `conf` defaults to the configured nginx.conf.
   * Never throws for a failing test (a run past commandTimeoutMs is killed and reads as
   * failed, its output saying so); throws NC_NGINX_BINARY when the binary cannot run.
   */
  async test(conf?: string): Promise<TestResult> {
    const r = await this.#run(['-t', ...this.#base(conf)]);
    return { ok: r.code === 0, output: `${r.stderr}${r.stdout}`.trim() };
  }

  /**
   * Asks the nginx master to reload its configuration: SIGHUP to the pid in nginx's pid file, when
   * `/proc/<pid>` shows an nginx master (so a stale pid file naming a reused pid signals nothing). That
   * is what `nginx -s reload` does (nginx docs, "Controlling nginx": `-s reload` sends HUP to the
   * master whose pid the pid file holds), without its cost: the signaller is a whole nginx that parses
   * the configuration (every include, every certificate) before it sends the signal: 24 ms per apply on
   * the test config in `npm run bench:apply` (README "Benchmarks"), more on a large one (docs/design.md
   * "Applying a change", step 7). When the pid cannot be read, is not an nginx master, or the signal
   * cannot be sent (EPERM: another user's master), it runs `nginx [-p prefix] -c <conf> -s reload`
   * instead, whose stderr then says why.
   *
   * @throws NC_RELOAD_FAILED with nginx's stderr when `nginx -s reload` exits non-zero or runs past
   *   commandTimeoutMs; NC_NGINX_BINARY when the binary cannot run.
   */
  async reload(): Promise<void> {
    const pid = await this.#masterPid();
    if (pid !== null && isNginxMaster(pid, this.#procRoot === undefined ? {} : { procRoot: this.#procRoot })) {
      try {
        process.kill(pid, 'SIGHUP');
        return;
      } catch {
        // EPERM or gone since: nginx -s reload below reports it in nginx's words.
      }
    }
    const r = await this.#run([...this.#base(), '-s', 'reload']);
    if (r.code !== 0) throw errors.reloadFailed(`${r.stderr}${r.stdout}`.trim() || `exit code ${r.code}`);
  }

  /**
   * `nginx [-p prefix] -c <conf> -s reopen`: the master reopens every log file (USR1, nginx docs
   * "Controlling nginx"), creating a missing access log anew. Changes no config and no worker.
   * Throws NC_RELOAD_FAILED (nginx's stderr; e.g. the master is not running) when it exits non-zero;
   * NC_NGINX_BINARY when the binary cannot run.
   */
  async reopen(): Promise<void> {
    const r = await this.#run([...this.#base(), '-s', 'reopen']);
    if (r.code !== 0)
      throw errors.reloadFailed(`nginx -s reopen: ${`${r.stderr}${r.stdout}`.trim() || `exit code ${r.code}`}`);
  }

  /**
   * GET http://<status_listen>/generation on a connection of its own, opened for this request and closed
   * once the body is read (so an old worker holding a keep-alive connection cannot answer for the new
   * config), bounded by statusTimeoutMs. Always consumes the body. The connection belongs to a Client
   * made for the call and destroyed with {@link GENERATION_DONE}, not to a pooled one asked to `reset`:
   * that made undici build an error, and format its stack, on every call (the proof asks every 5 ms
   * during a reload; the same cost in the prober was measured at ~40 % of a probe, README "Benchmarks").
   * With a `dispatcher` (tests) the request goes through it with `reset`.
   *
   * @returns the integer generation (≥ 0), or null on any error, timeout, non-200 or non-integer body; never throws.
   */
  async generation(): Promise<number | null> {
    const origin = `http://${formatListen(this.#nginx.statusListen)}`;
    const own = this.#dispatcher === undefined ? new Client(origin) : null;
    try {
      const res = await request(`${origin}/generation`, {
        method: 'GET',
        headersTimeout: this.#statusTimeoutMs,
        bodyTimeout: this.#statusTimeoutMs,
        signal: AbortSignal.timeout(this.#statusTimeoutMs),
        ...(own === null ? { reset: true, dispatcher: this.#dispatcher } : { dispatcher: own }),
      });
      const body = await res.body.text();
      if (res.statusCode !== 200) return null;
      const text = body.trim();
      return /^\d+$/.test(text) ? Number(text) : null;
    } catch {
      return null;
    } finally {
      await own?.destroy(GENERATION_DONE).catch(() => undefined);
    }
  }
}

/** An error_log target that is a file (not `stderr`, `syslog:…` or `memory:…`). */
function isFileTarget(target: string): boolean {
  return target !== 'stderr' && !target.startsWith('syslog:') && !target.startsWith('memory:');
}

/**
 * The file targets of the top-level `error_log` directives of an nginx.conf
 * (the main error log, where the master writes `[emerg]` when a reload fails),
 * as written (relative paths are not resolved); `stderr`, `syslog:` and
 * `memory:` targets are left out. `null` when the file has no top-level
 * `error_log` at all (nginx then uses its compiled-in path). Directives in
 * included files are not followed. Pure; never throws.
 */
export function errorLogDirectives(confText: string): string[] | null {
  const tokens: string[] = [];
  // Words, quoted strings and the three punctuation marks; `#` starts a comment outside quotes.
  const re = /"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|(#[^\n]*)|([;{}])|([^\s;{}"'#]+)/g;
  for (let m = re.exec(confText); m !== null; m = re.exec(confText)) {
    if (m[3] !== undefined) continue;
    tokens.push(m[1] ?? m[2] ?? m[4] ?? m[5] ?? '');
  }
  let depth = 0;
  let stmt: string[] = [];
  let found: string[] | null = null;
  for (const tok of tokens) {
    if (tok === '{') {
      depth++;
      stmt = [];
    } else if (tok === '}') {
      depth = Math.max(0, depth - 1);
      stmt = [];
    } else if (tok === ';') {
      if (depth === 0 && stmt[0] === 'error_log' && stmt[1] !== undefined) {
        found ??= [];
        if (isFileTarget(stmt[1])) found.push(stmt[1]);
      }
      stmt = [];
    } else {
      stmt.push(tok);
    }
  }
  return found;
}

/**
 * The absolute paths of nginx's main error log files for `nginx`: the
 * top-level `error_log` targets of nginx.conf ({@link errorLogDirectives}),
 * else the binary's compiled `--error-log-path` (`nginx -V`; Debian's is
 * `stderr`, so nothing); relative paths resolve against the prefix, else
 * the compiled `--prefix`, else `/usr/share/nginx` (Debian's), as nginx
 * resolves them. `[]` when there is no file to watch (stderr or syslog only).
 *
 * @throws the fs error when nginx.conf cannot be read; NC_NGINX_BINARY when `nginx -V` is needed and fails.
 */
export async function errorLogsOf(nginx: Pick<NginxConfig, 'binary' | 'conf' | 'prefix'>): Promise<string[]> {
  const declared = errorLogDirectives(await readFile(nginx.conf, 'utf8'));
  const allAbsolute = declared !== null && declared.every((p) => path.isAbsolute(p));
  let compiled = { prefix: null as string | null, errorLog: null as string | null };
  if (declared === null || (!allAbsolute && nginx.prefix === null)) {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(nginx.binary, ['-V'], { timeout: 10_000, encoding: 'utf8' }, (err, stdout, stderr) =>
        err ? reject(errors.nginxBinary(nginx.binary, err)) : resolve(`${stdout}${stderr}`),
      );
    });
    compiled = {
      prefix: /--prefix=(\S+)/.exec(out)?.[1] ?? null,
      errorLog: /--error-log-path=(\S+)/.exec(out)?.[1] ?? null,
    };
  }
  const targets = (declared ?? [compiled.errorLog ?? 'logs/error.log']).filter(isFileTarget);
  const base = nginx.prefix ?? compiled.prefix ?? '/usr/share/nginx';
  return [...new Set(targets.map((p) => path.resolve(base, p)))];
}
