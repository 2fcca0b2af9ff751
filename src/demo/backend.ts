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
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

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
  /** Start ready (default true). */
  ready?: boolean;
}

/**
 * A running backend. `hits` and `errors` count traffic requests only (not
 * /health or /ready); `probes` counts those; `connections` counts every
 * accepted TCP connection.
 */
export class Backend {
  /** Shown in `x-backend` and the body (BackendOptions.name). */
  readonly name: string;
  /** The address it listens on (BackendOptions.host, default 127.0.0.1). */
  readonly host: string;
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
    this.host = opts.host ?? '127.0.0.1';
    this.#port = opts.port ?? 0;
    this.#ready = opts.ready ?? true;
    this.#server = http.createServer((req, res) => this.#handle(req, res));
    this.#server.keepAliveTimeout = 5000;
    this.#server.on('connection', (socket: Socket) => {
      this.connections++;
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  /** Starts a backend and resolves once it listens. Rejects with the listen error (EADDRINUSE when the port is taken). */
  static async start(opts: BackendOptions): Promise<Backend> {
    const b = new Backend(opts);
    await b.#listen();
    return b;
  }

  /** The port it listens on (stable across refuse/crash_loop restarts). */
  get port(): number {
    return this.#port;
  }

  /** `host:port` as nginx logs it. */
  get addr(): string {
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

  /** TCP connections open now (accepted and not yet closed). */
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
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#server.once('error', onError);
      this.#server.listen({ host: this.host, port: this.#port }, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    this.#listening = true;
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
