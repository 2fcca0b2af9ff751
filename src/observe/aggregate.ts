/**
 * The Observer: access-log lines in, gate observations out (docs/design.md "Data
 * flow": nginx access log → parse attempts → Window per service/pool/server →
 * Observations for `decide`).
 *
 * Every attempt of a line is charged to the server it hit (attribute.ts), so a
 * canary attempt that failed and was retried on the primary counts as a canary
 * error although the client got 200 (docs/design.md "Observations"). Its response
 * time, when it is a sample (`responseSample`, parse.ts), goes into that
 * server's response-time sketch, the source of the pool's `responseP95Ms`.
 *
 * Line counters, the source of `nginx_canary_log_lines_total{result}`; every
 * line handed in is counted exactly once:
 * - `invalid`: not a line of format `nginx_canary` (blank, not JSON, a field
 *   missing or not a string, unusable `msec`/`status`); see parse.ts;
 * - `unattributed`: valid, and at least one of its attempts hit an address no
 *   configured server has (an upstream the sidecar does not manage, or the
 *   upstream name nginx logs when all its servers are marked failed). Its
 *   attributable attempts are still counted in the windows;
 * - `parsed`: valid, and every attempt (zero or more; a request nginx
 *   answered itself has none) was attributed.
 *
 * Attempts attributed but outside the window (older than `now - window`, or
 * more than one bucket in the future) are dropped and counted in
 * {@link AttemptCounts.dropped}; their line still counts as `parsed`.
 */
import { systemClock, type Clock } from '../clock.js';
import type { Config, Pool, ServiceConfig } from '../config/types.js';
import type { Observations, PoolObservation, ServiceObservation, State } from '../rollout/types.js';
import { buildAttribution, type AttributionMap, type AttributionOptions, type ServerAttribution } from './attribute.js';
import { attemptFailed, LineCursor, parseLine, responseSample, statusFailed } from './parse.js';
import type { LogRecord } from './types.js';
import { collectWindows, observeWindows, seriesWidthMs, ServerWindow } from './window.js';
import { snapshotOf, type PoolSnapshot } from '../fleet/snapshot.js';

/** Label values of `nginx_canary_log_lines_total{result}` (see the module comment). */
export type LogLineResult = 'parsed' | 'invalid' | 'unattributed';

/** Every {@link LogLineResult}, in display order. */
export const LOG_LINE_RESULTS: readonly LogLineResult[] = ['parsed', 'invalid', 'unattributed'];

/** Attempt counters since the Observer was built. */
export interface AttemptCounts {
  /** Charged to a server's window. */
  counted: number;
  /** No configured server has the logged address. */
  unattributed: number;
  /** Attributed but outside the window (too old, or in the future by more than one bucket). */
  dropped: number;
}

/** One server's figures over the judged window (for status pages and logs). */
export interface ServerObservation extends PoolObservation {
  /** Service name. */
  service: string;
  /** Pool of the server. */
  pool: Pool;
  /** The server as written in weights.yaml. */
  server: string;
}

/** Options of {@link Observer}. */
export interface ObserverOptions {
  /** Supplies `now` when {@link Observer.addLines} is called without one (default: the system clock). */
  clock?: Clock;
  /** Hostname resolutions for servers written by name (see attribute.ts). */
  attribution?: AttributionOptions;
}

/** The windows of one service, by pool. */
interface ServiceWindows {
  primary: ServerWindow[];
  canary: ServerWindow[];
}

/**
 * How long after a line logged with `sample` 0 every line counts as one request, ms of log time
 * ($msec): 60 s, a chosen value — long enough to bridge the gaps between such lines in any busy
 * log (at 1 % sampling, 99 of 100 successes carry 0), short enough that an operator who adds the
 * missing `if=` and reloads gets the sampled weights back within a minute.
 */
export const UNFILTERED_HOLD_MS = 60_000;

/** Size of the Observer's scratch buffer for string lines, bytes; a longer line (nginx writes ~250) takes parseLine. */
const SCRATCH_BYTES = 8192;
const NEWLINE = 10;

/**
 * The requests a sampled line stands for under the configured nginx.access_log_sample: 100 / it
 * (1 at 100). The observations carry at least this, not only the largest weight counted so far: a
 * judged span that holds only failures so far (just after a weight change) must still be judged
 * with the bounds of the log it comes from (rollout/sequential.ts: the calibration for w = 1 is not
 * valid for a log that leaves successes out).
 */
export function configuredWeight(config: Config): number {
  const s = config.nginx.accessLogSample;
  return s > 0 && s < 100 ? 100 / s : 1;
}

/** Raises a pool's `sampleWeight` to at least `w` (set only when > 1, as toObservation and snapshotOf do). */
function raiseWeight(pool: { sampleWeight?: number }, w: number): void {
  if (w > (pool.sampleWeight ?? 1)) pool.sampleWeight = w;
}

/** A pool without data (a fresh object each time: `series` is an array the caller may keep). */
function emptyPool(): PoolObservation {
  return { requests: 0, errors: 0, connectP95Ms: null, responseP95Ms: null, series: [] };
}

/** Turns access-log lines into per-server windows and answers the gates' observations. */
export class Observer {
  readonly #clock: Clock;
  readonly #attributionOpts: AttributionOptions;
  #attribution: AttributionMap;
  /** Window of each configured server, keyed by the attribution object (identity). */
  #windowOf = new Map<ServerAttribution, ServerWindow>();
  /** Windows by service name. */
  #services = new Map<string, ServiceWindows>();
  readonly #lines: Record<LogLineResult, number> = { parsed: 0, invalid: 0, unattributed: 0 };
  readonly #attempts: AttemptCounts = { counted: 0, unattributed: 0, dropped: 0 };
  /** Windows of canary servers (so a failed attempt can be told apart by pool without a lookup per attempt). */
  #canaryWindows = new WeakSet<ServerWindow>();
  /** Failed attempts counted into a canary server's window since the Observer was built. */
  #canaryFailures = 0;
  /** Reader of the hot path (one per Observer, reused line after line). */
  readonly #cursor = new LineCursor();
  /** Where {@link addLine} copies a line's bytes for the cursor. */
  readonly #scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  /** $msec (epoch ms) of the last line logged with `sample` 0 (see `#weight`); -Infinity: none. */
  #unfilteredAtMs = -Infinity;
  /** Lines with `sample` 0 seen so far ({@link unfilteredLines}). */
  #unfilteredLines = 0;

  /** Builds the attribution table and one empty window per configured server. Never throws. */
  constructor(config: Config, opts: ObserverOptions = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#attributionOpts = opts.attribution ?? {};
    this.#attribution = buildAttribution(config, this.#attributionOpts);
    this.#build(config, new Map());
  }

  /**
   * Feeds a batch of raw lines (as the follower delivers them), all judged
   * against one `nowMs` (epoch ms; default: the clock, read once per batch).
   */
  addLines(lines: readonly string[], nowMs: number = this.#clock.now()): void {
    for (const line of lines) this.addLine(line, nowMs);
  }

  /**
   * Parses and feeds one raw line, judged at `nowMs` (epoch ms); returns how it was counted. Never throws.
   * An ASCII line as nginx writes it is copied into a scratch buffer and read there by
   * {@link LineCursor}; any other goes through parseLine and {@link addRecord}. Both count and charge
   * exactly the same (test/observe/aggregate.test.ts compares them on random lines).
   */
  addLine(line: string, nowMs: number): LogLineResult {
    // write() fills at most the scratch's length; written === length means every char was one byte
    // (ASCII) or, if not, the cursor sees a byte ≥ 0x80 and declines.
    if (line.length <= SCRATCH_BYTES) {
      const n = this.#scratch.write(line, 0, 'utf8');
      if (n === line.length) {
        const c = this.#cursor;
        const read = c.read(this.#scratch, 0, n);
        if (read === 'ok') return this.#addCursor(c, nowMs);
        if (read === 'invalid') return this.#invalid();
      }
    }
    return this.#addReference(line, nowMs);
  }

  /**
   * Feeds the lines of `buf[start, end)` — split on `\n`; the range does not hold the newline ending
   * its last line — as {@link addLines} feeds strings, all judged at `nowMs` (epoch ms; default: the
   * clock, read once), reading them in place: no string per line. Counts exactly as addLines would
   * for the same lines decoded as UTF-8 (the follower's `onBytes`; test/observe/aggregate.test.ts).
   * Never throws.
   */
  addBytes(buf: Buffer, start: number, end: number, nowMs: number = this.#clock.now()): void {
    const c = this.#cursor;
    let s = start;
    for (;;) {
      let e = buf.indexOf(NEWLINE, s);
      if (e === -1 || e > end) e = end;
      const read = c.read(buf, s, e);
      if (read === 'ok') this.#addCursor(c, nowMs);
      else if (read === 'invalid') this.#invalid();
      else this.#addReference(buf.toString('utf8', s, e), nowMs);
      if (e >= end) return;
      s = e + 1;
    }
  }

  /** Counts one invalid line. */
  #invalid(): LogLineResult {
    this.#lines.invalid++;
    return 'invalid';
  }

  /** The reference path: parseLine, then {@link addRecord}. */
  #addReference(line: string, nowMs: number): LogLineResult {
    const rec = parseLine(line);
    return rec === null ? this.#invalid() : this.addRecord(rec, nowMs);
  }

  /** {@link addRecord} for the line `c` has read (`ok`), attempt by attempt, in place. */
  #addCursor(c: LineCursor, nowMs: number): LogLineResult {
    let result: LogLineResult = 'parsed';
    while (c.next()) {
      const list = this.#attribution.serversInBytes(c.buf, c.addrStart, c.addrEnd);
      const att =
        list === undefined
          ? null
          : list.length === 1
            ? (list[0] as ServerAttribution)
            : this.#attribution.attribute(c.addr(), c.upstream());
      const win = att === null ? undefined : this.#windowOf.get(att);
      const failed = win !== undefined && statusFailed(c.attemptStatus, c.last && c.status === 499);
      const w = failed || c.sample === 100 ? 1 : this.#weight(c.sample, c.atMs);
      if (!this.#charge(win, c.atMs, failed, c.connectMs, c.connectMs === null ? null : c.responseMs, nowMs, w))
        result = 'unattributed';
    }
    this.#lines[result]++;
    return result;
  }

  /**
   * Feeds one parsed line, judged at `nowMs` (epoch ms): charges each attempt to its server's window;
   * returns how it was counted. Never throws.
   */
  addRecord(rec: LogRecord, nowMs: number): LogLineResult {
    let result: LogLineResult = 'parsed';
    const last = rec.attempts.length - 1;
    for (let i = 0; i <= last; i++) {
      const a = rec.attempts[i] as (typeof rec.attempts)[number];
      const att = this.#attribution.attribute(a.addr, rec.upstream);
      const win = att === null ? undefined : this.#windowOf.get(att);
      const failed = win !== undefined && attemptFailed(a, i === last && rec.status === 499);
      const sample = rec.sample ?? 100;
      const w = failed || sample === 100 ? 1 : this.#weight(sample, rec.atMs);
      if (!this.#charge(win, rec.atMs, failed, a.connectMs, responseSample(a), nowMs, w)) result = 'unattributed';
    }
    this.#lines[result]++;
    return result;
  }

  /**
   * The requests a successful attempt of a line logged with `sample` percent (0–99; observe/parse.ts
   * `parseSample`) stands for: 100 / sample. A `sample` of 0 means nginx wrote a line it was told to
   * leave out: the `access_log` line lacks `if=$nginx_canary_log`, so every line is in the log and
   * each stands for itself; from such a line on, for {@link UNFILTERED_HOLD_MS} of log time, every
   * line counts 1 (README "Sampled access log").
   */
  #weight(sample: number, atMs: number): number {
    if (sample === 0) {
      this.#unfilteredAtMs = Math.max(this.#unfilteredAtMs, atMs);
      this.#unfilteredLines++;
      return 1;
    }
    return atMs - this.#unfilteredAtMs < UNFILTERED_HOLD_MS ? 1 : 100 / sample;
  }

  /**
   * Lines nginx wrote with `sample` 0 since the Observer was built: > 0 means the `access_log` line
   * lacks `if=$nginx_canary_log` while `nginx.access_log_sample` is below 100 (every line is logged;
   * the sidecar counts each as one request, so the gates stay right, but the log costs what an
   * unsampled one does).
   */
  unfilteredLines(): number {
    return this.#unfilteredLines;
  }

  /**
   * Charges one attempt to its server's window (`undefined`: no configured server) and counts its
   * fate: counted, dropped (outside the window, ServerWindow.add) or unattributed — the latter is the
   * one case it returns false for. `atMs` epoch ms, `connectMs`/`responseMs` ms or null, `weight` the
   * requests the attempt stands for (as add takes).
   */
  #charge(
    win: ServerWindow | undefined,
    atMs: number,
    failed: boolean,
    connectMs: number | null,
    responseMs: number | null,
    nowMs: number,
    weight: number,
  ): boolean {
    if (win === undefined) {
      this.#attempts.unattributed++;
      return false;
    }
    if (win.add(atMs, failed, connectMs, responseMs, nowMs, weight)) {
      this.#attempts.counted++;
      if (failed && this.#canaryWindows.has(win)) this.#canaryFailures++;
    } else {
      this.#attempts.dropped++;
    }
    return true;
  }

  /** Lines seen so far by result (a copy; what `nginx_canary_log_lines_total` exports). */
  lineCounts(): Record<LogLineResult, number> {
    return { ...this.#lines };
  }

  /** Attempts seen so far by fate (a copy). */
  attemptCounts(): AttemptCounts {
    return { ...this.#attempts };
  }

  /**
   * Failed attempts (5xx, or no answer: parse.ts `attemptFailed`) counted into
   * a canary server's window since the Observer was built; only grows. The
   * sidecar compares it before and after a batch of lines to run the next
   * tick at once when the canary failed (Runner.nudge).
   */
  canaryFailures(): number {
    return this.#canaryFailures;
  }

  /**
   * Adopts a reloaded config: rebuilds the attribution table; a server that is
   * still configured (same service, pool and `server` string) keeps its
   * window — re-bucketed if gates.window changed —, a new server starts empty,
   * a removed one is forgotten. Counters are kept.
   */
  reconfigure(config: Config): void {
    const old = new Map<string, ServerWindow>();
    for (const [att, win] of this.#windowOf) old.set(windowKey(att.service, att.pool, att.server), win);
    this.#attribution = buildAttribution(config, this.#attributionOpts);
    this.#build(config, old);
  }

  /**
   * Observations for `decide`: for every configured service, its primary and
   * canary pools over `[from, now]` with
   * `from = max(now - gates.window, state.services[name].since)` — only
   * traffic at the current weight is judged (up to one bucket of earlier
   * traffic may be included; see window.ts). `now` is epoch ms. Each pool
   * carries attempts, 5xx attempts, connect and response p95 (ms, null
   * without samples) and `series`, the per-bucket counts over `[from, now]`
   * oldest first (bucket width max(100 ms, gates.window / 60); see
   * `countSeries` in window.ts). A service this Observer has no windows for
   * gets empty pools (requests 0: inconclusive; series empty), and so does a
   * pool without servers. `sampleWeight` is at least the configured one
   * ({@link configuredWeight}).
   */
  observations(config: Config, state: State, now: number): Observations {
    const out: Observations = {};
    const w = configuredWeight(config);
    for (const svc of config.services) {
      const from = judgedFrom(svc, state, now);
      const wins = this.#services.get(svc.name);
      const obs: ServiceObservation = wins
        ? { primary: observeWindows(wins.primary, from, now), canary: observeWindows(wins.canary, from, now) }
        : { primary: emptyPool(), canary: emptyPool() };
      raiseWeight(obs.primary, w);
      raiseWeight(obs.canary, w);
      out[svc.name] = obs;
    }
    return out;
  }

  /**
   * The evidence of {@link observations} before any quantile is taken, as
   * mergeable pool snapshots (fleet/snapshot.ts: counts, the per-bucket series
   * with its bucket width and first bucket's start, and the connect and
   * response sketches serialized): for every configured service, its primary
   * and canary pools over exactly the same span — `[from, now]`,
   * `from = max(now - gates.window, state.services[name].since)` (the same
   * `judgedFrom`), the same buckets and the same series cut. `now` is epoch ms.
   * A service without windows, or a pool without servers, gets an empty
   * snapshot (requests 0, series empty, sketches null; width
   * `seriesWidthMs(gates.window)`). `mergeSnapshots([o.snapshots(c, s, n)])`
   * equals `o.observations(c, s, n)` (`sampleWeight` included). Probes are not included (the runner adds
   * them, as for observations). Never throws.
   */
  snapshots(
    config: Config,
    state: State,
    now: number,
  ): Record<string, { primary: PoolSnapshot; canary: PoolSnapshot }> {
    const out: Record<string, { primary: PoolSnapshot; canary: PoolSnapshot }> = {};
    const w = configuredWeight(config);
    for (const svc of config.services) {
      const from = judgedFrom(svc, state, now);
      const width = seriesWidthMs(svc.gates.windowMs);
      const wins = this.#services.get(svc.name);
      const pools = {
        primary: snapshotOf(collectWindows(wins?.primary ?? [], from, now, width)),
        canary: snapshotOf(collectWindows(wins?.canary ?? [], from, now, width)),
      };
      raiseWeight(pools.primary, w);
      raiseWeight(pools.canary, w);
      out[svc.name] = pools;
    }
    return out;
  }

  /**
   * The same window as {@link observations}, broken down per server (primary
   * servers first, each pool in config order), for the status page and logs;
   * each entry has every field of a pool observation (its own p95s, ms, and series).
   * `now` is epoch ms.
   */
  serverObservations(config: Config, state: State, now: number): Record<string, ServerObservation[]> {
    const out: Record<string, ServerObservation[]> = {};
    for (const svc of config.services) {
      const from = judgedFrom(svc, state, now);
      const list: ServerObservation[] = [];
      for (const [att, win] of this.#windowOf) {
        if (att.service !== svc.name) continue;
        list.push({ service: att.service, pool: att.pool, server: att.server, ...win.observe(from, now) });
      }
      out[svc.name] = list;
    }
    return out;
  }

  /** (Re)creates the window maps for the current attribution, reusing `old` windows by key. */
  #build(config: Config, old: Map<string, ServerWindow>): void {
    const windowMsOf = new Map(config.services.map((s) => [s.name, s.gates.windowMs]));
    this.#windowOf = new Map();
    this.#services = new Map();
    this.#canaryWindows = new WeakSet();
    for (const att of this.#attribution.servers) {
      const windowMs = windowMsOf.get(att.service) as number;
      const prev = old.get(windowKey(att.service, att.pool, att.server));
      let win: ServerWindow;
      if (prev !== undefined && prev.windowMs === windowMs) {
        win = prev;
      } else {
        win = new ServerWindow(windowMs);
        if (prev !== undefined) win.absorb(prev);
      }
      this.#windowOf.set(att, win);
      let wins = this.#services.get(att.service);
      if (wins === undefined) {
        wins = { primary: [], canary: [] };
        this.#services.set(att.service, wins);
      }
      wins[att.pool].push(win);
      if (att.pool === 'canary') this.#canaryWindows.add(win);
    }
  }
}

/** Start of the judged span, epoch ms: max(now - gates.window, since of the live weight). */
function judgedFrom(svc: ServiceConfig, state: State, now: number): number {
  const since = state.services[svc.name]?.since;
  return Math.max(now - svc.gates.windowMs, since ?? -Infinity);
}

/** Identity of a window across reloads. */
function windowKey(service: string, pool: Pool, server: string): string {
  return `${service}\u0000${pool}\u0000${server}`;
}
