/**
 * The probe history of one server and the pool view the gates read
 * (docs/design.md "Observations" and "Gates"). Pure: no I/O, no clock
 * reads — every time is a parameter in epoch ms.
 *
 * Per server it keeps, in bounded memory:
 * - the newest health-probe results in a ring sized for the gate window
 *   (`ceil(window / interval) + slack`, never more than {@link MAX_RING});
 * - the latest ready-probe result (readiness only needs the latest);
 * - a health state machine (rise = fall = 1: the latest health probe decides)
 *   and a ring of its transitions sized for the crash-loop window.
 *
 * Quantiles are exact (nearest rank over a sort), not a DDSketch: a pool holds
 * at most a few hundred probes per window (15 min / 5 s = 180 per server with
 * the defaults), so sorting them costs microseconds and keeps the probes'
 * sub-millisecond resolution exactly.
 */
import type { ProbeObservation } from '../rollout/types.js';

/** Which endpoint a probe hit: `probe.health` or `probe.ready`. */
export type ProbeKind = 'health' | 'ready';

/** One probe's outcome. */
export interface ProbeResult {
  /** When the probe finished (or failed), epoch ms. */
  at: number;
  /** Which endpoint it hit. */
  kind: ProbeKind;
  /** Health: status 2xx. Ready: status exactly 200. False on any connect error, timeout or body error. */
  ok: boolean;
  /** HTTP status, or null when no response head arrived. */
  status: number | null;
  /** TCP (or unix-socket) connect time, ms with sub-ms resolution; null when the connection was not established. */
  connectMs: number | null;
  /** Start of the probe to the last body byte, ms with sub-ms resolution; null without a complete response. */
  totalMs: number | null;
  /**
   * Why the probe did not complete (absent when the response was read to its end, whatever its status):
   * an error code (`ECONNREFUSED`, `UND_ERR_SOCKET`, …), `timeout` (probe.timeout reached) or `aborted` (stopped).
   */
  error?: string;
}

/** Health state of a server from its latest health probe. */
export type HealthState = 'healthy' | 'unhealthy';

/** A change of a server's health state, caused by the probe finished at `at` (epoch ms). */
export interface HealthTransition {
  /** Epoch ms of the probe that caused it. */
  at: number;
  /** The state entered: `unhealthy` is a down transition (a probe-seen crash), `healthy` a recovery. */
  to: HealthState;
}

/** Sizes of a {@link ServerProbeWindow}, all ms > 0 and finite (from the service's config). */
export interface ProbeWindowOptions {
  /** probe.interval. */
  intervalMs: number;
  /** gates.window: the span the health ring must cover. */
  windowMs: number;
  /** gates.crash_loop_window: the span the transition ring must cover. */
  crashLoopWindowMs: number;
}

/**
 * Entries a ring holds beyond `span / interval`: one for the probe on the
 * window's closing edge, the rest for extra rounds (the immediate first round,
 * `probeOnce` calls, a round run at once after a slow one). A chosen value.
 */
export const RING_SLACK = 8;
/**
 * Hard cap of one ring, entries (a chosen bound: ≈ 1 MB of results, estimated). Reached only by extreme
 * configs (e.g. window 1 d at interval 100 ms); the window then sees the
 * newest MAX_RING probes.
 */
export const MAX_RING = 10_000;
/** The quantile the gates read (docs/design.md "Gates": connect p95). */
export const PROBE_QUANTILE = 0.95;

/**
 * Ring capacity for `spanMs` at one entry per `intervalMs`:
 * `min(ceil(span / interval) + RING_SLACK, MAX_RING)`.
 * Throws RangeError unless both are > 0 and finite.
 */
export function ringCapacity(spanMs: number, intervalMs: number): number {
  for (const [name, v] of [
    ['span', spanMs],
    ['interval', intervalMs],
  ] as const) {
    if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`${name} must be > 0 ms and finite, got ${v}`);
  }
  return Math.min(Math.ceil(spanMs / intervalMs) + RING_SLACK, MAX_RING);
}

/**
 * Nearest-rank quantile of `values` (`q` in (0, 1]): the value at rank
 * `ceil(q × n)` of the ascending sort; null for an empty list. Does not
 * modify `values`.
 */
export function nearestRank(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1] as number;
}

/** A fixed-capacity ring; the oldest entry is overwritten when full. */
class Ring<T> {
  #items: T[] = [];
  /** Index of the oldest entry once full. */
  #head = 0;
  #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  get capacity(): number {
    return this.#capacity;
  }

  get size(): number {
    return this.#items.length;
  }

  push(item: T): void {
    if (this.#items.length < this.#capacity) {
      this.#items.push(item);
      return;
    }
    this.#items[this.#head] = item;
    this.#head = (this.#head + 1) % this.#capacity;
  }

  /** Entries oldest first (a copy). */
  toArray(): T[] {
    return [...this.#items.slice(this.#head), ...this.#items.slice(0, this.#head)];
  }

  /** Changes the capacity, keeping the newest entries that fit. */
  resize(capacity: number): void {
    const kept = this.toArray().slice(-capacity);
    this.#capacity = capacity;
    this.#items = kept;
    this.#head = 0;
  }
}

/**
 * The probe history of one (service, pool, server). Results are expected in
 * the order the probes finished; the health state follows arrival order
 * (the newest result is the latest, whatever its `at`).
 */
export class ServerProbeWindow {
  readonly #health: Ring<ProbeResult>;
  readonly #transitions: Ring<HealthTransition>;
  #state: HealthState | null = null;
  #latestHealth: ProbeResult | null = null;
  #latestReady: ProbeResult | null = null;

  /** Throws RangeError unless every option is > 0 ms and finite. */
  constructor(opts: ProbeWindowOptions) {
    this.#health = new Ring(ringCapacity(opts.windowMs, opts.intervalMs));
    this.#transitions = new Ring(ringCapacity(opts.crashLoopWindowMs, opts.intervalMs));
  }

  /** Health results the ring can hold, and transitions. */
  get capacity(): { results: number; transitions: number } {
    return { results: this.#health.capacity, transitions: this.#transitions.capacity };
  }

  /** Health results held now (≤ capacity.results). */
  get size(): number {
    return this.#health.size;
  }

  /** From the latest health probe (rise = fall = 1); null before the first. */
  get health(): HealthState | null {
    return this.#state;
  }

  /** The latest health-probe result, or null. */
  get latestHealth(): ProbeResult | null {
    return this.#latestHealth;
  }

  /** The latest ready-probe result, or null. */
  get latestReady(): ProbeResult | null {
    return this.#latestReady;
  }

  /** Health results held, oldest first (a copy). */
  healthResults(): ProbeResult[] {
    return this.#health.toArray();
  }

  /** Health transitions held, oldest first (a copy). The first result sets the state without a transition. */
  transitions(): HealthTransition[] {
    return this.#transitions.toArray();
  }

  /**
   * Records one probe result. A health result updates the state machine and
   * returns the transition it caused, if any (none for the first result: from
   * "unknown" is not a crash). A ready result only replaces the latest one.
   */
  add(result: ProbeResult): HealthTransition | null {
    if (result.kind === 'ready') {
      this.#latestReady = result;
      return null;
    }
    this.#health.push(result);
    this.#latestHealth = result;
    const next: HealthState = result.ok ? 'healthy' : 'unhealthy';
    const prev = this.#state;
    this.#state = next;
    if (prev === null || prev === next) return null;
    const transition = { at: result.at, to: next };
    this.#transitions.push(transition);
    return transition;
  }

  /** Resizes both rings for new options (a config reload), keeping the newest entries that fit. Throws like the constructor. */
  resize(opts: ProbeWindowOptions): void {
    const results = ringCapacity(opts.windowMs, opts.intervalMs);
    const transitions = ringCapacity(opts.crashLoopWindowMs, opts.intervalMs);
    this.#health.resize(results);
    this.#transitions.resize(transitions);
  }
}

/**
 * Pool rule over the servers' latest results: false when any latest result
 * failed, else null when a server has none (or the pool has no server), else true.
 */
function allLatest(latest: (ProbeResult | null)[]): boolean | null {
  if (latest.some((r) => r !== null && !r.ok)) return false;
  if (latest.length === 0 || latest.some((r) => r === null)) return null;
  return true;
}

/**
 * Merges the servers of one pool into the gates' view at `now` (epoch ms):
 * - `probes`, `failures`: health results with `at` in `[now - windowMs, now]`;
 * - `connectP95Ms`, `totalP95Ms`: exact nearest-rank p95 (ms) of those results'
 *   non-null connect / total times, null without one;
 * - `ready`, `healthy`: false when any server's latest ready / health result
 *   failed, null when a server has none yet (or the pool is empty), else true;
 * - `downTransitions`: healthy→unhealthy transitions with `at` in
 *   `[now - crashLoopWindowMs, now]`, summed over servers;
 * - `recoveredAt`: the newest unhealthy→healthy transition of any server, epoch ms, or null.
 */
export function observePool(
  windows: Iterable<ServerProbeWindow>,
  now: number,
  windowMs: number,
  crashLoopWindowMs: number,
): ProbeObservation {
  const from = now - windowMs;
  const crashFrom = now - crashLoopWindowMs;
  let probes = 0;
  let failures = 0;
  let downTransitions = 0;
  let recoveredAt: number | null = null;
  const connect: number[] = [];
  const total: number[] = [];
  const readies: (ProbeResult | null)[] = [];
  const healths: (ProbeResult | null)[] = [];
  for (const w of windows) {
    readies.push(w.latestReady);
    healths.push(w.latestHealth);
    for (const r of w.healthResults()) {
      if (r.at < from || r.at > now) continue;
      probes++;
      if (!r.ok) failures++;
      if (r.connectMs !== null) connect.push(r.connectMs);
      if (r.totalMs !== null) total.push(r.totalMs);
    }
    for (const tr of w.transitions()) {
      if (tr.to === 'unhealthy') {
        if (tr.at >= crashFrom && tr.at <= now) downTransitions++;
      } else if (recoveredAt === null || tr.at > recoveredAt) {
        recoveredAt = tr.at;
      }
    }
  }
  return {
    probes,
    failures,
    connectP95Ms: nearestRank(connect, PROBE_QUANTILE),
    totalP95Ms: nearestRank(total, PROBE_QUANTILE),
    ready: allLatest(readies),
    healthy: allLatest(healths),
    downTransitions,
    recoveredAt,
  };
}
