/**
 * A single-member etcd for `nginx-canary demo --fleet <n>` (and the fleet
 * bench): Debian's `etcd-server` binary (`etcd` on PATH), listening on
 * 127.0.0.1 on two free ports (client and peer), with a data dir of its own
 * under a fresh temp dir. It runs in the foreground as a child of this
 * process and is stopped by its pid (SIGTERM, SIGKILL after a deadline); the
 * temp dir is removed with it. A single member has no fault tolerance: it is
 * for trying fleet mode, not for production (docs/fleet.md: 3 members).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { request } from 'undici';
import { CanaryError } from '../errors.js';
import { waitFor } from '../util/wait.js';

/** `etcd` is not on PATH: fleet mode's demo cannot run without it. */
export class EtcdMissingError extends CanaryError {
  /**
   * @param searched the PATH that was searched (named in the message).
   */
  constructor(searched: string) {
    super(
      'NC_DEMO_ETCD_MISSING',
      `the fleet demo needs etcd, and no \`etcd\` binary is on PATH (${searched || 'PATH is empty'})`,
      { fix: 'Install it (Debian, Ubuntu): apt-get install etcd-server' },
    );
    this.name = 'EtcdMissingError';
  }

  /** The message, then the fix on a line of its own (the line to copy). */
  override toUserString(): string {
    return `${this.message}.\n${this.fix}`;
  }
}

/** etcd started but did not become healthy (its stderr is in the message). */
export class EtcdStartError extends CanaryError {
  /**
   * @param why what went wrong, one sentence.
   * @param stderr the last of etcd's own output.
   */
  constructor(why: string, stderr: string) {
    super('NC_DEMO_ETCD_START', `etcd did not start: ${why}\n${stderr.trimEnd()}`, {
      fix: 'Read etcd’s output above; `etcd --version` should print 3.4 or later',
    });
    this.name = 'EtcdStartError';
  }
}

/**
 * The absolute path of an executable `name` in `pathVar` (a PATH value), or
 * null when no directory of it holds one. Checks the file is a regular file
 * with the execute bit for this user, as a shell would find it.
 */
export async function findOnPath(name: string, pathVar: string = process.env['PATH'] ?? ''): Promise<string | null> {
  for (const dir of pathVar.split(path.delimiter)) {
    if (dir === '') continue;
    const file = path.join(dir, name);
    try {
      if (!(await stat(file)).isFile()) continue;
      await access(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** Ports {@link freePort} returned in this process. */
const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1, drawn at random from 20000–32000 and checked
 * by binding it (below Linux's ephemeral range, so no outgoing connection
 * takes it as its source port meanwhile), and never one it returned before in
 * this process: the fleet demo takes a host's nginx, status and API ports
 * before it binds any, and two draws met once in a CI run (nginx and the
 * sidecar's API on one port: nginx answered the demo's /healthz, and that
 * host never joined the walk). Another process may still take it before use
 * (rare).
 * @throws Error when 100 draws found none free.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port in 20000–32000 after 100 tries');
}

/** Options of {@link startDemoEtcd}. */
export interface DemoEtcdOptions {
  /** The etcd binary (default: `etcd` found on PATH). */
  binary?: string;
  /** Deadline for `/health` to say true, ms (default 20 000; a chosen bound). */
  readyTimeoutMs?: number;
}

/** A running single-member etcd. */
export interface DemoEtcd {
  /** Its client URL, e.g. `http://127.0.0.1:23456`. */
  readonly endpoint: string;
  /** Its pid. */
  readonly pid: number;
  /** The temp dir holding its data dir (removed by stop). */
  readonly dir: string;
  /** SIGTERM by pid, SIGKILL after `graceMs` (default 3000); removes the temp dir. Never rejects; idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts one etcd member on 127.0.0.1 (free client and peer ports, short raft
 * timings: heartbeat 100 ms, election 1 s) with its own data dir in a fresh
 * temp dir, and resolves once its `/health` answers `"health":"true"`.
 * Registers a `process.on('exit')` hook that SIGKILLs it, so a crashing
 * caller leaves no etcd behind.
 * @throws EtcdMissingError when no `etcd` is on PATH (and no `binary` given);
 *   EtcdStartError when it exits or is not healthy within readyTimeoutMs (it is stopped first).
 */
export async function startDemoEtcd(opts: DemoEtcdOptions = {}): Promise<DemoEtcd> {
  const binary = opts.binary ?? (await findOnPath('etcd'));
  if (binary === null) throw new EtcdMissingError(process.env['PATH'] ?? '');
  const dir = await mkdtemp(path.join(tmpdir(), 'nginx-canary-demo-etcd-'));
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const child: ChildProcess = spawn(
    binary,
    [
      '--name=demo',
      `--data-dir=${path.join(dir, 'demo.etcd')}`,
      `--listen-client-urls=${endpoint}`,
      `--advertise-client-urls=${endpoint}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=demo=${peerUrl}`,
      '--initial-cluster-state=new',
      '--heartbeat-interval=100',
      '--election-timeout=1000',
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => (stderr = (stderr + s).slice(-8192)));
  const exited = new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    child.once('error', (err) => {
      stderr += `\n${err.message}`;
      resolve();
    });
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null && child.pid !== undefined;
  const onExit = (): void => {
    if (running()) child.kill('SIGKILL');
  };
  process.once('exit', onExit);

  let stopping: Promise<void> | null = null;
  const etcd: DemoEtcd = {
    endpoint,
    pid: child.pid ?? -1,
    dir,
    stop(graceMs = 3000) {
      stopping ??= (async () => {
        if (running()) {
          child.kill('SIGCONT'); // a stopped process would not act on SIGTERM
          child.kill('SIGTERM');
          const inTime = await Promise.race([exited.then(() => true), delay(graceMs, false)]);
          if (!inTime && running()) child.kill('SIGKILL');
        }
        await exited;
        process.off('exit', onExit);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };

  const gone = new AbortController();
  void exited.then(() => gone.abort(new Error('etcd exited')));
  try {
    await waitFor(
      async () => {
        const r = await request(`${endpoint}/health`, { headersTimeout: 1000, bodyTimeout: 1000 });
        return /"health"\s*:\s*"true"/.test(await r.body.text());
      },
      {
        timeoutMs: opts.readyTimeoutMs ?? 20_000,
        intervalMs: 50,
        what: `etcd healthy at ${endpoint}/health`,
        signal: gone.signal,
      },
    );
  } catch (err) {
    await etcd.stop(1000);
    throw new EtcdStartError((err as Error).message, stderr);
  }
  return etcd;
}
