/**
 * The real {@link NginxCtl}: runs the nginx binary with `execFile` (no shell,
 * bounded by a timeout) and reads the generation from the loopback status
 * server the include file renders.
 */
import { execFile } from 'node:child_process';
import { request, type Dispatcher } from 'undici';
import { errors } from '../errors.js';
import type { NginxConfig } from '../config/types.js';
import { parseVersion } from './flavor.js';
import { formatListen } from './model.js';
import type { NginxCtl, NginxVersion, TestResult } from './types.js';

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
   * `nginx [-p prefix] -c <conf> -s reload`. Throws NC_RELOAD_FAILED with nginx's stderr when it exits
   * non-zero or runs past commandTimeoutMs; NC_NGINX_BINARY when the binary cannot run.
   */
  async reload(): Promise<void> {
    const r = await this.#run([...this.#base(), '-s', 'reload']);
    if (r.code !== 0) throw errors.reloadFailed(`${r.stderr}${r.stdout}`.trim() || `exit code ${r.code}`);
  }

  /**
   * GET http://<status_listen>/generation on a fresh connection (`reset`, so an
   * old worker holding a keep-alive connection cannot answer for the new
   * config), bounded by statusTimeoutMs. Always consumes the body.
   *
   * @returns the integer generation (≥ 0), or null on any error, timeout, non-200 or non-integer body; never throws.
   */
  async generation(): Promise<number | null> {
    const url = `http://${formatListen(this.#nginx.statusListen)}/generation`;
    try {
      const res = await request(url, {
        method: 'GET',
        reset: true,
        headersTimeout: this.#statusTimeoutMs,
        bodyTimeout: this.#statusTimeoutMs,
        signal: AbortSignal.timeout(this.#statusTimeoutMs),
        ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}),
      });
      const body = await res.body.text();
      if (res.statusCode !== 200) return null;
      const text = body.trim();
      return /^\d+$/.test(text) ? Number(text) : null;
    } catch {
      return null;
    }
  }
}
