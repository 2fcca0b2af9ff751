/**
 * A managed nginx: started by the sidecar (demo, dev, `managed: true`) or by
 * a test, in the foreground (`-g 'daemon off;'`) so the master's pid is the
 * child's pid and it can be stopped by pid.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { errors } from '../errors.js';
import { waitFor } from '../util/wait.js';

/**
 * Creates the `logs/` and `tmp/` directories a prefix needs: nginx -t opens
 * the pid and log paths under it, so they must exist before the first test.
 *
 * @throws the fs error when a directory cannot be created.
 */
export async function preparePrefix(prefix: string): Promise<void> {
  await mkdir(path.join(prefix, 'logs'), { recursive: true });
  await mkdir(path.join(prefix, 'tmp'), { recursive: true });
}

/** Options of {@link startNginx}. */
export interface StartNginxOptions {
  /** nginx binary (name on PATH or absolute). */
  binary: string;
  /** Absolute nginx.conf. */
  conf: string;
  /** Absolute `-p` prefix (its `logs/` and `tmp/` are created), or null for the binary's default. */
  prefix: string | null;
  /** Pid file to wait for; default: the `pid` directive of nginx.conf, else the binary's compiled pid path (`nginx -V`). */
  pidFile?: string;
  /** Deadline for the master to write its pid file, ms (default 10 000; a chosen bound, not a runbook number). */
  timeoutMs?: number;
}

/** A running nginx master. */
export interface ManagedNginx {
  /** Master pid (= the child's pid). */
  readonly pid: number;
  /** Absolute pid file the master wrote. */
  readonly pidFile: string;
  /**
   * Stops it by pid: SIGQUIT (graceful: workers finish their requests, nginx
   * docs "Controlling nginx"), then SIGTERM after `graceMs` ms (default 5000),
   * then SIGKILL after 2000 ms more (both chosen bounds). Resolves once the
   * master exited; never rejects. Safe to call twice.
   */
  stop(opts?: { graceMs?: number }): Promise<void>;
  /** Resolves with the exit code (null when killed by a signal) when the master exits. */
  readonly exited: Promise<number | null>;
}

/**
 * The `pid` directive of an nginx.conf (top level, uncommented), or null.
 * Pure.
 */
export function pidDirective(confText: string): string | null {
  let depth = 0;
  for (const raw of confText.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (depth === 0) {
      const m = /^pid\s+([^\s;]+)\s*;/.exec(line);
      if (m?.[1]) return m[1];
    }
    for (const ch of line) {
      if (ch === '{') depth++;
      else if (ch === '}') depth = Math.max(0, depth - 1);
    }
  }
  return null;
}

/** `--prefix=` and `--pid-path=` of `nginx -V` (Debian: /usr/share/nginx and /run/nginx.pid). */
async function compiledPaths(binary: string): Promise<{ prefix: string | null; pidPath: string | null }> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(binary, ['-V'], { timeout: 10_000, encoding: 'utf8' }, (err, stdout, stderr) =>
      err ? reject(errors.nginxBinary(binary, err)) : resolve(`${stdout}${stderr}`),
    );
  });
  return { prefix: /--prefix=(\S+)/.exec(out)?.[1] ?? null, pidPath: /--pid-path=(\S+)/.exec(out)?.[1] ?? null };
}

/**
 * The pid file a start with `opts` will produce: `opts.pidFile`, else the
 * `pid` directive of nginx.conf, else the binary's compiled `--pid-path`,
 * else `logs/nginx.pid` (nginx's default); relative paths resolve against the
 * prefix, else the compiled `--prefix`, else `/usr/share/nginx` (Debian's).
 *
 * @throws the fs error when nginx.conf cannot be read; NC_NGINX_BINARY when `nginx -V` is needed and fails.
 */
export async function pidFileOf(
  opts: Pick<StartNginxOptions, 'binary' | 'conf' | 'prefix' | 'pidFile'>,
): Promise<string> {
  if (opts.pidFile) return path.resolve(opts.pidFile);
  const fromConf = pidDirective(await readFile(opts.conf, 'utf8'));
  const needCompiled = fromConf === null || (!path.isAbsolute(fromConf) && opts.prefix === null);
  const compiled = needCompiled ? await compiledPaths(opts.binary) : { prefix: null, pidPath: null };
  const rel = fromConf ?? compiled.pidPath ?? 'logs/nginx.pid';
  if (path.isAbsolute(rel)) return rel;
  return path.resolve(opts.prefix ?? compiled.prefix ?? '/usr/share/nginx', rel);
}

/**
 * The master pid nginx wrote into `pidFile` (see {@link pidFileOf}); null when the file is missing or
 * unreadable or does not hold a positive integer (nginx not running, or mid-restart). Never throws.
 */
export async function readPidFile(pidFile: string): Promise<number | null> {
  try {
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * A reader of the running master's pid for `nginx`: the pid file's path is resolved once (see
 * {@link pidFileOf}: binary, conf and prefix cannot change while the sidecar runs), the file is read on
 * every call ({@link readPidFile}). The reader resolves to null when either fails; it never throws.
 */
export function masterPidReader(
  nginx: Pick<StartNginxOptions, 'binary' | 'conf' | 'prefix'>,
): () => Promise<number | null> {
  let pidFile: Promise<string | null> | null = null;
  return async () => {
    pidFile ??= pidFileOf(nginx).catch(() => null);
    const file = await pidFile;
    return file === null ? null : readPidFile(file);
  };
}

/**
 * Starts `nginx [-p prefix] -c conf -g 'daemon off;'` and resolves once the
 * master wrote its own pid into the pid file (nginx writes it after it bound
 * every listening socket, so connections are accepted from then on).
 *
 * Registers a `process.on('exit')` hook that SIGTERMs the child, so a dying
 * test or sidecar leaves no foreground nginx behind.
 *
 * @throws CanaryError NC_NGINX_START_FAILED (with nginx's stderr) when it exits, logs an `[emerg]`
 *   line, or does not write its pid file before `timeoutMs` (it is stopped: SIGTERM, SIGKILL after
 *   2 s); NC_NGINX_BINARY when it cannot run; the fs error when the prefix directories cannot be
 *   created or nginx.conf cannot be read.
 */
export async function startNginx(opts: StartNginxOptions): Promise<ManagedNginx> {
  if (opts.prefix !== null) {
    await preparePrefix(opts.prefix);
  }
  const pidFile = await pidFileOf(opts);
  const args = [...(opts.prefix === null ? [] : ['-p', opts.prefix]), '-c', opts.conf, '-g', 'daemon off;'];
  const child = spawn(opts.binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let sawEmerg: () => void = () => undefined;
  // An [emerg] line before the pid file means the start failed (nginx would first retry a busy port for 2.5 s).
  const emerg = new Promise<void>((resolve) => (sawEmerg = resolve));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    stderr = (stderr + s).slice(-8192);
    if (stderr.includes('[emerg]')) sawEmerg();
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  // A test or the sidecar dying must not leave a foreground nginx behind.
  const onExit = (): void => {
    child.kill('SIGTERM');
  };
  process.once('exit', onExit);
  void exited.then(() => process.off('exit', onExit));

  const waitExit = async (ms: number): Promise<boolean> => {
    const ac = new AbortController();
    try {
      return await Promise.race([exited.then(() => true), delay(ms, false, { signal: ac.signal })]);
    } finally {
      ac.abort();
    }
  };

  type Outcome =
    | { kind: 'ready' }
    | { kind: 'exit'; code: number | null }
    | { kind: 'spawn'; err: Error }
    | { kind: 'emerg' }
    | { kind: 'timeout'; err: Error };
  const pid = child.pid;
  const stopPolling = new AbortController();
  const ready = (async (): Promise<Outcome> => {
    if (pid === undefined) return new Promise<never>(() => undefined);
    try {
      await waitFor(async () => (await readFile(pidFile, 'utf8')).trim() === String(pid), {
        timeoutMs: opts.timeoutMs ?? 10_000,
        intervalMs: 10,
        what: `nginx to write its pid ${pid} to ${pidFile}`,
        signal: stopPolling.signal,
      });
      return { kind: 'ready' };
    } catch (err) {
      return { kind: 'timeout', err: err as Error };
    }
  })();
  const outcome = await Promise.race<Outcome>([
    ready,
    exited.then((code) => ({ kind: 'exit', code })),
    spawnError.then((err) => ({ kind: 'spawn', err })),
    emerg.then(() => ({ kind: 'emerg' })),
  ]);
  stopPolling.abort();
  if (outcome.kind === 'spawn') throw errors.nginxBinary(opts.binary, outcome.err);
  if (outcome.kind !== 'ready') {
    if (child.exitCode === null && child.signalCode === null) {
      // SIGTERM first: the master stops its workers. A SIGKILLed master would orphan them, still listening.
      child.kill('SIGTERM');
      if (!(await waitExit(2000))) child.kill('SIGKILL');
      await exited;
    }
    const why =
      outcome.kind === 'timeout'
        ? outcome.err.message
        : outcome.kind === 'emerg'
          ? 'it reported an error'
          : `it exited with code ${String(outcome.code)}`;
    throw errors.nginxStartFailed(opts.binary, `${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
  }

  let stopping: Promise<void> | null = null;
  const send = (signal: NodeJS.Signals): void => {
    try {
      process.kill(pid as number, signal);
    } catch {
      // already gone
    }
  };
  return {
    pid: pid as number,
    pidFile,
    exited,
    stop(stopOpts = {}) {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        send('SIGQUIT');
        if (await waitExit(stopOpts.graceMs ?? 5000)) return;
        send('SIGTERM');
        if (await waitExit(2000)) return;
        send('SIGKILL');
        await exited;
      })();
      return stopping;
    },
  };
}
