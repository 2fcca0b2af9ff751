/**
 * Synthetic probes (docs/design.md "Observations"):
 * every server of every service, both pools, gets `probe.health` then
 * `probe.ready` every `probe.interval`, each over ONE NEW connection (a fresh
 * undici `Client` per probe, destroyed once the body is read), with the connect time and the
 * total time measured separately at sub-millisecond resolution
 * (`performance.now()` around undici's `buildConnector` callback), and the
 * body always read to its end. A `unix:/path` server is probed over its
 * socket (`buildConnector({ socketPath })`, `Host: localhost`); its connect
 * time is the unix-socket connect, and a missing socket file (`ENOENT`), a
 * socket nobody listens on (`ECONNREFUSED`) or one the sidecar may not open
 * (`EACCES`) fails the probe like a refused TCP connect.
 *
 * Timeouts (docs/design.md "Numbers": the cutover playbook's TCP connect
 * "within 2 seconds"): connect = min(probe.timeout, 2 s), for a unix socket
 * too; headers, body and the whole probe = probe.timeout. A timeout is judged
 * only after the I/O already waiting has been read ({@link probe}): when the
 * sidecar itself was stalled (CPU starvation, a GC pause) past the deadline,
 * Node runs the expired timer before it reads the answer that came in time,
 * and a healthy backend would be charged a failed probe for the sidecar's own
 * stall — enough of those drain a healthy canary (probe_failure_ratio,
 * crash_loop).
 *
 * Scheduling uses real timers (unref'd); the timestamps recorded (`at`) come
 * from the injected Clock's `now()`. Durations are measurements of real I/O and
 * always use `performance.now()`, whatever the clock.
 *
 * Probe failures are data: nothing here throws from the loop; only state
 * changes are logged: healthy→unhealthy (and unhealthy at the first probe) at
 * warn, the first healthy probe, recoveries and readiness changes at debug.
 */
import { Client, buildConnector } from 'undici';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import type { Config, Pool, ProbeConfig, ServerConfig, ServiceConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { ProbeObservation } from '../rollout/types.js';
import type { ProbeKind, ProbeResult, ProbeWindowOptions } from './window.js';
import { ServerProbeWindow, observePool } from './window.js';

/** Upper bound of the TCP connect timeout, ms (docs/design.md "Numbers": TCP connect within 2 s). */
export const MAX_CONNECT_TIMEOUT_MS = 2000;
/** User-Agent of every probe request. */
export const PROBE_USER_AGENT = 'nginx-canary-probe';

/**
 * Where a probe connects: a host (IPv4, IPv6 without brackets, or name) and a
 * TCP port, or a unix-domain socket (`socketPath`; host and port then unused).
 * A `ServerConfig` and a demo `Backend` are both targets.
 */
export interface ProbeTarget {
  /** IPv4, IPv6 without brackets, or a hostname (unused with a socketPath). */
  host: string;
  /** TCP port, 1–65535 (unused with a socketPath). */
  port: number;
  /** Absolute path of a unix-domain socket to probe over instead of TCP; null or absent for TCP. */
  socketPath?: string | null;
}

/** One probe to run with {@link probe}. */
export interface ProbeRequest {
  /** `health` (ok on 2xx) or `ready` (ok on exactly 200). */
  kind: ProbeKind;
  /** URL path, e.g. `/health`. */
  path: string;
  /** probe.timeout, ms > 0: bounds headers, body and the whole probe; connect is bounded by min(this, 2 s). */
  timeoutMs: number;
  /** Source of `at` (default systemClock). */
  clock?: Clock;
  /** Aborts the probe (the result then has `error: 'aborted'`). */
  signal?: AbortSignal;
}

/**
 * What each probe's Client is destroyed with, made once. Destroying a socket reads its error's `stack`
 * (Node's stream destroy), and formatting a fresh stack trace per probe — undici's `ClientDestroyedError`,
 * or its `InformationalError('reset')` when the request said `connection: close` — was ~40 % of a probe's
 * CPU (`npm run bench`, "probe": ~400 → ~240 µs). This one's stack is formatted here, once.
 */
const PROBE_DONE = new Error('probe done: its connection is closed');
void PROBE_DONE.stack;

/** The reason a probe's overall timer aborts it with. */
class ProbeTimeoutError extends Error {
  constructor(ms: number) {
    super(`probe timed out after ${ms} ms`);
    this.name = 'ProbeTimeoutError';
  }
}

/**
 * The short reason recorded for a probe that failed with `err` (no status):
 * the error's string `code` (`ECONNREFUSED`, `UND_ERR_SOCKET`, …), else its
 * message, else `String(err)`.
 */
export function probeErrorReason(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs one probe over a new connection (TCP, or the unix socket of a target
 * with a `socketPath`) and resolves with its result; never rejects. `ok` is
 * status 2xx for `health`, exactly 200 for `ready`. The body is read to its
 * end (its bytes are discarded) before the connection is destroyed; an error
 * while reading it fails the probe. `connectMs` is the TCP handshake (or the
 * unix-socket connect) as seen by undici's connector, ms (null when no
 * connection was made); `totalMs` runs from the start of the probe to the
 * last body byte, ms (null without a complete response); `at` is
 * `clock.now()` when the probe ended. A failed connect records its error code
 * (`ECONNREFUSED`; `ENOENT` for a missing socket file).
 */
export async function probe(target: ProbeTarget, req: ProbeRequest): Promise<ProbeResult> {
  const clock = req.clock ?? systemClock;
  const socketPath = target.socketPath ?? null;
  const timeout = Math.min(req.timeoutMs, MAX_CONNECT_TIMEOUT_MS);
  const base = buildConnector(socketPath === null ? { timeout } : { timeout, socketPath });
  // Over a socket the origin only names the Host header.
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const origin = socketPath === null ? `http://${host}:${target.port}` : 'http://localhost';
  let connectMs: number | null = null;
  const client = new Client(origin, {
    connect: (opts, callback) => {
      const c0 = performance.now();
      base(opts, (...args) => {
        if (args[0] === null) connectMs = performance.now() - c0;
        callback(...args);
      });
    },
    // Our own timer below decides the timeout; undici's would destroy the socket before its waiting answer is read.
    headersTimeout: 2 * req.timeoutMs,
    bodyTimeout: 2 * req.timeoutMs,
    pipelining: 1,
  });
  const ac = new AbortController();
  let timedOut = false;
  let answered = false;
  // Expired timers run before the event loop reads sockets: let two turns of I/O (the poll phase) read an answer
  // that is already waiting before calling it a timeout — as undici's connect timeout does for socket events.
  const timer = setTimeout(() => {
    setImmediate(() =>
      setImmediate(() => {
        if (answered) return;
        timedOut = true;
        ac.abort(new ProbeTimeoutError(req.timeoutMs));
      }),
    );
  }, req.timeoutMs);
  timer.unref();
  const onOuterAbort = (): void => ac.abort(req.signal?.reason);
  if (req.signal?.aborted) onOuterAbort();
  else req.signal?.addEventListener('abort', onOuterAbort, { once: true });

  const t0 = performance.now();
  let status: number | null = null;
  let result: ProbeResult;
  try {
    const res = await client.request({
      method: 'GET',
      path: req.path,
      headers: { 'user-agent': PROBE_USER_AGENT },
      signal: ac.signal,
    });
    status = res.statusCode;
    // Read the body to its end (discarding it), so the connection closes cleanly and totalMs ends at the last byte.
    for await (const chunk of res.body) void chunk;
    answered = true;
    const totalMs = performance.now() - t0;
    const ok = req.kind === 'ready' ? status === 200 : status >= 200 && status < 300;
    result = { at: clock.now(), kind: req.kind, ok, status, connectMs, totalMs };
  } catch (err) {
    const error = timedOut ? 'timeout' : ac.signal.aborted ? 'aborted' : probeErrorReason(err);
    result = { at: clock.now(), kind: req.kind, ok: false, status, connectMs, totalMs: null, error };
  }
  clearTimeout(timer);
  req.signal?.removeEventListener('abort', onOuterAbort);
  await client.destroy(PROBE_DONE).catch(() => undefined);
  return result;
}

/** One probe result with where it came from (the `onResult` hook, e.g. metrics). */
export interface ProbeReport extends ProbeResult {
  /** Service name. */
  service: string;
  /** Pool of the probed server. */
  pool: Pool;
  /** The server string as written in the config, e.g. `127.0.0.1:18890` or `unix:/run/app.sock`. */
  server: string;
}

/** Options of {@link Prober}. */
export interface ProberOptions {
  /** Source of the results' `at` (default systemClock). */
  clock?: Clock;
  /** Parent logger; the prober logs under `component: 'prober'` (default silent). */
  log?: Logger;
  /** Called for every recorded result (not for probes aborted by stop); an exception is logged and ignored. */
  onResult?: (report: ProbeReport) => void;
}

/** One probed server: its config, its history and its serialized rounds. */
interface Lane {
  service: string;
  pool: Pool;
  server: ServerConfig;
  probe: ProbeConfig;
  window: ServerProbeWindow;
  /** Tail of this server's rounds: every round is chained on it, so probes of one server never overlap. */
  chain: Promise<void>;
  timer: NodeJS.Timeout | undefined;
  /** Set when a reconfigure dropped the server: its late results are discarded. */
  removed: boolean;
}

/** The key of a lane: same service, pool and server string = same history. */
function laneKey(service: string, pool: Pool, server: string): string {
  return JSON.stringify([service, pool, server]);
}

function windowOptions(svc: ServiceConfig): ProbeWindowOptions {
  return {
    intervalMs: svc.probe.intervalMs,
    windowMs: svc.gates.windowMs,
    crashLoopWindowMs: svc.gates.crashLoopWindowMs,
  };
}

const POOLS: readonly Pool[] = ['primary', 'canary'];

/**
 * Probes every server of every service and keeps each server's history
 * (see window.ts). Rounds of one server (health, then ready) are serialized;
 * servers run independently, each on its own timer, at `probe.interval` from
 * the start of its previous round (at once if that round took longer).
 */
export class Prober {
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #onResult: ((report: ProbeReport) => void) | undefined;
  #lanes = new Map<string, Lane>();
  /** Rounds of lanes dropped by reconfigure that may still be running (awaited by stop). */
  readonly #draining = new Set<Promise<void>>();
  #running = false;
  /** Bumped by stop(): a round finishing after it does not reschedule its lane (guards a quick stop → start). */
  #epoch = 0;
  #abort = new AbortController();

  /**
   * Builds the lanes of `config` (no probe runs before start or probeOnce).
   * @throws RangeError when a service's probe.interval, gates.window or gates.crash_loop_window is not a
   *   finite duration > 0 ms (the config loader rules that out).
   */
  constructor(config: Config, opts: ProberOptions = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#log = (opts.log ?? silentLogger).child({ component: 'prober' });
    this.#onResult = opts.onResult;
    this.reconfigure(config);
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return this.#running;
  }

  /** Starts the loops: a first round of every server at once, then one every probe.interval. Idempotent. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    for (const lane of this.#lanes.values()) this.#tick(lane);
  }

  /**
   * Stops the timers, aborts in-flight probes (their results are discarded)
   * and resolves once every probe has settled and its connection is destroyed.
   */
  async stop(): Promise<void> {
    this.#running = false;
    this.#epoch++;
    for (const lane of this.#lanes.values()) {
      clearTimeout(lane.timer);
      lane.timer = undefined;
    }
    const ac = this.#abort;
    this.#abort = new AbortController(); // probeOnce after stop runs again
    ac.abort();
    await Promise.all([...[...this.#lanes.values()].map((l) => l.chain), ...this.#draining]);
  }

  /**
   * Adopts a new config: servers still configured (same service, pool and
   * server string) keep their history (rings resized for the new interval and
   * windows) and take the new probe paths and timeouts from their next round;
   * new servers start probing at once if running; dropped servers stop (a
   * probe in flight finishes, its result is discarded). Throws RangeError like the constructor.
   */
  reconfigure(config: Config): void {
    const next = new Map<string, Lane>();
    for (const svc of config.services) {
      for (const pool of POOLS) {
        for (const server of svc[pool]) {
          const key = laneKey(svc.name, pool, server.server);
          if (next.has(key)) continue;
          const old = this.#lanes.get(key);
          if (old) {
            old.server = server;
            old.probe = svc.probe;
            old.window.resize(windowOptions(svc));
            next.set(key, old);
          } else {
            const lane: Lane = {
              service: svc.name,
              pool,
              server,
              probe: svc.probe,
              window: new ServerProbeWindow(windowOptions(svc)),
              chain: Promise.resolve(),
              timer: undefined,
              removed: false,
            };
            next.set(key, lane);
            if (this.#running) this.#tick(lane);
          }
        }
      }
    }
    for (const [key, lane] of this.#lanes) {
      if (next.has(key)) continue;
      lane.removed = true;
      clearTimeout(lane.timer);
      lane.timer = undefined;
      const settled = lane.chain.then(() => {
        this.#draining.delete(settled);
      });
      this.#draining.add(settled);
    }
    this.#lanes = next;
  }

  /** Runs one round (health, then ready) of every server now and resolves when all are recorded; never rejects. */
  async probeOnce(): Promise<void> {
    await Promise.all([...this.#lanes.values()].map((lane) => this.#enqueue(lane)));
  }

  /**
   * The probes' view per service of `config` at `now` (epoch ms), over
   * `[now - gates.window, now]` and `[now - gates.crash_loop_window, now]`
   * (see observePool). A configured server this prober does not know yet
   * counts as one without results (ready and healthy null). `canarySince` (epoch ms per service):
   * when the service's current canary build was released; its canary probes are judged only from
   * then (both spans shortened), so the old build's restart during a redeploy does not count.
   */
  observations(
    config: Config,
    now: number,
    canarySince: Readonly<Record<string, number>> = {},
  ): Record<string, { primary: ProbeObservation; canary: ProbeObservation }> {
    const out: Record<string, { primary: ProbeObservation; canary: ProbeObservation }> = {};
    for (const svc of config.services) {
      const released = Object.hasOwn(canarySince, svc.name) ? canarySince[svc.name] : undefined;
      const span = (p: Pool, ms: number): number =>
        p === 'canary' && released !== undefined ? Math.max(0, Math.min(ms, now - released)) : ms;
      const pool = (p: Pool): ProbeObservation =>
        observePool(
          [...new Set(svc[p].map((s) => s.server))].map(
            (s) => this.#lanes.get(laneKey(svc.name, p, s))?.window ?? new ServerProbeWindow(windowOptions(svc)),
          ),
          now,
          span(p, svc.gates.windowMs),
          span(p, svc.gates.crashLoopWindowMs),
        );
      out[svc.name] = { primary: pool('primary'), canary: pool('canary') };
    }
    return out;
  }

  /** Runs a round now and schedules the next one interval after this one started. */
  #tick(lane: Lane): void {
    const started = performance.now();
    const epoch = this.#epoch;
    void this.#enqueue(lane).then(() => {
      if (!this.#running || lane.removed || epoch !== this.#epoch) return;
      const delay = Math.max(0, lane.probe.intervalMs - (performance.now() - started));
      lane.timer = setTimeout(() => this.#tick(lane), delay);
      lane.timer.unref();
    });
  }

  /** Chains a round on the lane (never two at once on one server); the returned promise never rejects. */
  #enqueue(lane: Lane): Promise<void> {
    const signal = this.#abort.signal; // a round queued before stop() is aborted by it
    const run = lane.chain.then(() => this.#round(lane, signal));
    lane.chain = run;
    return run;
  }

  async #round(lane: Lane, signal: AbortSignal): Promise<void> {
    for (const kind of ['health', 'ready'] as const) {
      if (signal.aborted || lane.removed) return;
      const result = await probe(lane.server, {
        kind,
        path: kind === 'health' ? lane.probe.health : lane.probe.ready,
        timeoutMs: lane.probe.timeoutMs,
        clock: this.#clock,
        signal,
      });
      if (signal.aborted || lane.removed) return;
      this.#record(lane, result);
    }
  }

  #record(lane: Lane, result: ProbeResult): void {
    const where = { service: lane.service, pool: lane.pool, server: lane.server.server };
    const prevReady = lane.window.latestReady?.ok;
    const first = result.kind === 'health' && lane.window.health === null;
    const transition = lane.window.add(result);
    const detail = { ...where, status: result.status, error: result.error, connectMs: result.connectMs };
    if (transition?.to === 'unhealthy') this.#log.warn(detail, 'server became unhealthy');
    else if (transition) this.#log.debug(detail, 'server recovered');
    else if (first && !result.ok) this.#log.warn(detail, 'server unhealthy at its first probe');
    else if (first) this.#log.debug(detail, 'server healthy at its first probe');
    else if (result.kind === 'ready' && prevReady !== result.ok)
      this.#log.debug({ ...detail, ready: result.ok }, 'readiness changed');
    if (!this.#onResult) return;
    try {
      this.#onResult({ ...result, ...where });
    } catch (err) {
      this.#log.warn({ ...where, err }, 'onResult hook threw; ignored');
    }
  }
}
