/**
 * A real HTTP backend with fault switches, used by the demo (`npm start`) and
 * by every test that needs traffic to land somewhere. It answers:
 *
 * - `GET /health` → 200 `ok` (or the fault, or {@link Backend.setHealthStatus});
 * - `GET /ready`  → 200 when ready (see {@link Backend.setReady}), else 503;
 * - anything else → 200 with body and header `x-backend: <name>` (or the fault).
 *
 * Faults: `status` (answer e.g. 500), `delay` (answer after N ms), `refuse`
 * (close the listener: connections are refused), `crash_loop` (listen for
 * `upMs`, refuse for `downMs`, repeat). A slow TCP connect cannot be made from
 * user space on loopback (the kernel completes the handshake), so it is not a
 * switch here; the connect-p95 gate is tested from its inputs.
 *
 * It listens on TCP (`host`, `port`) or on a unix-domain socket
 * (`socketPath`, as `server unix:/path;` in nginx names it). A socket is
 * created readable and writable by every user, so an nginx worker running as
 * another user (Debian: `www-data`; `nobody` when nginx.conf has no `user`)
 * may connect; the directories above it must let that user through (x).
 * `refuse` removes the socket file (nginx then logs `No such file or
 * directory`), listening again creates it anew.
 */
import http from 'node:http';
import { lstat, unlink } from 'node:fs/promises';
import net, { type AddressInfo, type Socket } from 'node:net';

/**
 * A fault switch: `status` answers traffic and `/health` with that HTTP
 * status; `delay` answers after `ms` milliseconds; `refuse` closes the
 * listener; `crash_loop` listens for `upMs` then refuses for `downMs` (ms),
 * starting with the refusing half; `none` is normal service.
 */
export type Fault =
  | { kind: 'none' }
  | { kind: 'status'; status: number }
  | { kind: 'delay'; ms: number }
  | { kind: 'refuse' }
  | { kind: 'crash_loop'; upMs: number; downMs: number };

/** Options of {@link Backend.start}. */
export interface BackendOptions {
  /** Shown in `x-backend` and the body. */
  name: string;
  /** Address to listen on (default 127.0.0.1); keep it loopback (not enforced here). */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /**
   * Listen on this unix-socket path instead of TCP (`host` and `port` are then ignored). A socket file
   * left at that path by a process that died (connecting to it is refused) is removed first; a live one
   * makes start reject with EADDRINUSE. Null or absent: TCP.
   */
  socketPath?: string | null;
  /** Start ready (default true). */
  ready?: boolean;
}

/**
 * A running backend. `hits` and `errors` count traffic requests only (not
 * /health or /ready); `probes` counts those; `connections` counts every
 * accepted connection (TCP or unix socket).
 */
export class Backend {
  /** Shown in `x-backend` and the body (BackendOptions.name). */
  readonly name: string;
  /** The address it listens on (BackendOptions.host, default 127.0.0.1); '' on a unix socket. */
  readonly host: string;
  /** The unix-socket path it listens on (BackendOptions.socketPath), or null on TCP. */
  readonly socketPath: string | null;
  #port: number;
  #server: http.Server;
  #fault: Fault = { kind: 'none' };
  #ready: boolean;
  #healthStatus: number | null = null;
  #listening = false;
  #closed = false;
  #loopTimer: NodeJS.Timeout | undefined;
  /** Traffic requests answered, any status. */
  hits = 0;
  /** Traffic requests answered with ≥ 500. */
  errors = 0;
  /** Probe requests (/health, /ready) answered. */
  probes = 0;
  /** TCP connections accepted, any path (probes open one per request; keep-alive clients fewer). */
  connections = 0;
  /** Connections currently open. */
  readonly #sockets = new Set<Socket>();

  private constructor(opts: BackendOptions) {
    this.name = opts.name;
    this.socketPath = opts.socketPath ?? null;
    this.host = this.socketPath === null ? (opts.host ?? '127.0.0.1') : '';
    this.#port = this.socketPath === null ? (opts.port ?? 0) : 0;
    this.#ready = opts.ready ?? true;
    this.#server = http.createServer((req, res) => this.#handle(req, res));
    this.#server.keepAliveTimeout = 5000;
    this.#server.on('connection', (socket: Socket) => {
      this.connections++;
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  /**
   * Starts a backend and resolves once it listens. Rejects with the listen error (EADDRINUSE when the
   * port, or a live socket at socketPath, is taken; ENAMETOOLONG or EACCES for a bad socket path).
   */
  static async start(opts: BackendOptions): Promise<Backend> {
    const b = new Backend(opts);
    await b.#listen();
    return b;
  }

  /** The port it listens on (stable across refuse/crash_loop restarts); 0 on a unix socket. */
  get port(): number {
    return this.#port;
  }

  /** `host:port` (`[v6]:port`), or `unix:/path` on a unix socket: what weights.yaml names and nginx logs. */
  get addr(): string {
    if (this.socketPath !== null) return `unix:${this.socketPath}`;
    return this.host.includes(':') ? `[${this.host}]:${this.#port}` : `${this.host}:${this.#port}`;
  }

  /**
   * Turns a fault on (or off with `{kind:'none'}`). Resolves when the listener
   * state matches; rejects with the listen error when listening again fails
   * (the port was taken meanwhile).
   */
  async setFault(fault: Fault): Promise<void> {
    this.#fault = fault;
    clearTimeout(this.#loopTimer);
    this.#loopTimer = undefined;
    if (fault.kind === 'refuse') {
      await this.#unlisten();
    } else if (fault.kind === 'crash_loop') {
      await this.#crashLoop(fault);
    } else {
      await this.#listen();
    }
  }

  /** Sets what `/ready` answers (200 when true, 503 when false). */
  setReady(ready: boolean): void {
    this.#ready = ready;
  }

  /**
   * Makes `/health` alone answer `status` (null: back to normal), while
   * traffic is served as usual: a failing health check behind a working
   * service, which only the probes can see.
   */
  setHealthStatus(status: number | null): void {
    this.#healthStatus = status;
  }

  /** Connections open now (accepted and not yet closed). */
  get openConnections(): number {
    return this.#sockets.size;
  }

  /** Zeroes the counters. */
  resetCounts(): void {
    this.hits = 0;
    this.errors = 0;
    this.probes = 0;
    this.connections = 0;
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#loopTimer);
    await this.#unlisten();
  }

  async #crashLoop(f: { upMs: number; downMs: number }): Promise<void> {
    const cycle = async (up: boolean): Promise<void> => {
      if (this.#closed || this.#fault.kind !== 'crash_loop') return;
      if (up) await this.#listen();
      else await this.#unlisten();
      this.#loopTimer = setTimeout(() => void cycle(!up), up ? f.upMs : f.downMs);
      this.#loopTimer.unref();
    };
    await cycle(false);
  }

  async #listen(): Promise<void> {
    if (this.#listening || this.#closed) return;
    try {
      await this.#bind();
    } catch (err) {
      const path = this.socketPath;
      if (path === null || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || !(await isStaleSocket(path)))
        throw err;
      await unlink(path);
      await this.#bind();
    }
    if (this.socketPath === null) this.#port = (this.#server.address() as AddressInfo).port;
    this.#listening = true;
  }

  /** One listen(): TCP on host:port, or the unix socket with mode 0777 (any user may connect). */
  #bind(): Promise<void> {
    const where: net.ListenOptions =
      this.socketPath === null
        ? { host: this.host, port: this.#port }
        : { path: this.socketPath, readableAll: true, writableAll: true };
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(where, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
  }

  async #unlisten(): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.resume();
    const path = (req.url ?? '/').split('?')[0];
    const fault = this.#fault;
    const send = (status: number, body: string): void => {
      res.writeHead(status, { 'content-type': 'text/plain', 'x-backend': this.name });
      res.end(body);
    };
    if (path === '/ready') {
      this.probes++;
      send(this.#ready ? 200 : 503, this.#ready ? 'ready\n' : 'not ready\n');
      return;
    }
    const isProbe = path === '/health';
    if (isProbe) this.probes++;
    const answer = (): void => {
      const status =
        isProbe && this.#healthStatus !== null ? this.#healthStatus : fault.kind === 'status' ? fault.status : 200;
      if (!isProbe) {
        this.hits++;
        if (status >= 500) this.errors++;
      }
      send(status, isProbe ? 'ok\n' : `${this.name}\n`);
    };
    if (fault.kind === 'delay') setTimeout(answer, fault.ms).unref();
    else answer();
  }
}

/**
 * True when `file` is a unix socket nobody listens on (left behind by a
 * process that died): connecting to it is refused. False for anything else,
 * including a live socket and a path that does not exist. Bounded: a connect
 * that neither succeeds nor fails within 1 s counts as live.
 */
export async function isStaleSocket(file: string): Promise<boolean> {
  const st = await lstat(file).catch(() => null);
  if (!st?.isSocket()) return false;
  return new Promise<boolean>((resolve) => {
    const c = net.connect({ path: file });
    const done = (stale: boolean): void => {
      clearTimeout(timer);
      c.destroy();
      resolve(stale);
    };
    const timer = setTimeout(() => done(false), 1000);
    timer.unref();
    c.once('connect', () => done(false));
    c.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED'));
  });
}
