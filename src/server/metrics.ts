/**
 * Prometheus metrics (docs/design.md "Interfaces"; README "Metrics"), on a non-global prom-client
 * Registry created here and passed around. Gauges that mirror state are filled
 * in `collect()` from a {@link MetricsSource}, never by timers; counters and
 * histograms are moved by the runner when the thing they count happens.
 *
 * All names carry the `nginx_canary_` prefix and base units: percent 0–100 for
 * weights (named `_percent`), seconds for durations, ratio 0–1 for ratios.
 *
 * In fleet mode (a source with `fleet()`) the `nginx_canary_fleet_*` gauges
 * show the fleet as this host sees it in etcd (leader, hosts, desired weights,
 * how far behind this host is, hosts disagreeing, etcd reachable); without it
 * they are not registered, and `nginx_canary_weight_percent` stays this
 * host's live weight in both modes.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config, Pool, ServiceConfig } from '../config/types.js';
import { APPLY_STAGES } from '../nginx/types.js';
import { soakNeededMs } from '../rollout/decide.js';
import { evaluateGates } from '../rollout/gates.js';
import { PHASES, type GateName, type GateResult, type State } from '../rollout/types.js';

/**
 * How often the event-loop delay behind `nginx_canary_nodejs_eventloop_lag_*_seconds` is sampled, ms
 * (prom-client's `eventLoopMonitoringPrecision`, the resolution of perf_hooks.monitorEventLoopDelay: a
 * timer that wakes the loop this often). 50 ms, not prom-client's 10: each wake-up costs CPU whatever
 * the load (measured on the 2-vCPU bench box, an otherwise idle Node 20 process: 7.7 ms of CPU per
 * second at 10 ms, 3.9 at 20, 1.5 at 50, 0.9 at 100). In the sidecar, where other wake-ups partly
 * coincide with it, 50 ms gave 45 against 47–53 ticks of CPU in `npm run bench:walk`'s 15 s fixed-weight
 * window (issue 13: ≤ 5 % of nginx's). Each sample
 * still measures its delay in ns; a stall shorter than 50 ms shows when a sample falls due during it, so
 * the p99 over a 15 s scrape (300 samples) still catches a stall that recurs every second. Chosen.
 */
export const EVENT_LOOP_MONITOR_MS = 50;

/** What the state-mirroring gauges read at scrape time. */
export interface MetricsSource {
  /** The live config (services, targets in percent 0–100). */
  config(): Config;
  /** The committed state (live weights in percent 0–100, phases). */
  state(): State;
  /** The last gate results per service (from the last tick). */
  gates(): Record<string, GateResult[]>;
  /** Access-log line counters by result, totals since start (see observe/aggregate.ts). */
  logLines(): Record<string, number>;
  /** The injected clock's now, epoch ms (for `paused_seconds`). */
  now(): number;
  /** nginx's old worker generations still shutting down (the reload-rate guard's input); absent → no series. */
  oldGenerations?(): Promise<number>;
  /**
   * The fleet as this host sees it (fleet mode, weights.yaml `fleet:`), read at scrape time. Absent (a
   * single host) → no `nginx_canary_fleet_*` metric is registered, so /metrics is what it was without
   * fleet mode; null (fleet mode not started yet) → the fleet metrics are registered with no sample.
   */
  fleet?(): FleetMetricsView | null;
}

/**
 * What a fleet host exports about its fleet (docs/design.md "Fleet"), as this host sees it in etcd at
 * scrape time. Units: percent 0–100 for weights, seconds for durations.
 */
export interface FleetMetricsView {
  /** This host leads the fleet: it decides, from fleet-wide evidence, and writes the desired weights. */
  leader: boolean;
  /** Hosts of the fleet: `live` holds a liveness lease; `stale` is known but its lease expired. Counts ≥ 0. */
  hosts: { live: number; stale: number };
  /** The fleet's desired canary weight per service name, percent 0–100 (what the leader last wrote). */
  desired: Record<string, number>;
  /** Seconds (≥ 0) this host has not had the fleet's current desired weights applied and verified; 0 when current. */
  behindSeconds: number;
  /** Hosts whose `services` config hash differs from the leader's; only the leader knows, 0 on every other host. */
  disagreeingHosts: number;
  /** This host's last etcd call succeeded. */
  etcdUp: boolean;
}

/** Verdicts a gate can give, one `gate_verdict` series each. */
const VERDICTS = ['pass', 'fail', 'inconclusive'] as const;

/**
 * A gate's value or threshold (GateResult units) in the metric's base unit:
 * ms → seconds for connect_p95 and baseline_p95, percent → ratio 0–1 for
 * starved (the canary's share of attempts); other gates are already a ratio
 * 0–1 (error_ratio, probe_failure_ratio), a count (crash_loop) or 1/0 (ready).
 * Pure.
 */
export function gateBaseUnit(gate: GateName, v: number): number {
  if (gate === 'connect_p95' || gate === 'baseline_p95') return v / 1000;
  if (gate === 'starved') return v / 100;
  return v;
}

/** When `service` paused: the newest `pause` event of its history, else its `since` (epoch ms). */
function pausedAt(state: State, service: string): number {
  for (let i = state.history.length - 1; i >= 0; i--) {
    const e = state.history[i];
    if (e?.service === service && e.kind === 'pause') return e.at;
  }
  return state.services[service]?.since ?? 0;
}

/** The failing gate result behind a service's drain: from its newest `drain` event, or undefined (operator abort, history trimmed). */
function drainGate(state: State, service: string, reason: string): GateResult | undefined {
  for (let i = state.history.length - 1; i >= 0; i--) {
    const e = state.history[i];
    if (e?.service === service && e.kind === 'drain') return e.gates.find((g) => g.gate === reason);
  }
  return undefined;
}

/** Labels of a pool-level gauge. */
type ServicePoolLabels = 'service' | 'pool';

/**
 * The project's metrics. One instance per process (per test: a new Registry).
 * Histogram buckets are chosen to span the expected range, not taken from a
 * runbook (docs/design.md "Numbers").
 */
export class Metrics {
  /** The non-global prom-client Registry every metric here registers on; `GET /metrics` serializes it. */
  readonly registry: Registry;
  /** `nginx_canary_drains_total{service,reason}`: reason is the failing drain gate's name, or `operator`. */
  readonly drains: Counter<'service' | 'reason'>;
  /** `nginx_canary_promotions_total{service}`: releases ended by `promote` (the primary took the canary's build). */
  readonly promotions: Counter<'service'>;
  /** `nginx_canary_reloads_total{result}`: `ok`, or the ApplyStage that failed. */
  readonly reloads: Counter<'result'>;
  /** `nginx_canary_reload_duration_seconds`: observe seconds (not ms); buckets 0.01–10 s. */
  readonly reloadDuration: Histogram;
  /** `nginx_canary_rollbacks_total{reason}`: the failed apply stage, or `operator`. */
  readonly rollbacks: Counter<'reason'>;
  /**
   * `nginx_canary_probe_duration_seconds{service,pool,phase}`, phase `connect` or `total`: observe seconds
   * (not ms); buckets 0.5 ms–2 s (2 s: the probe connect bound, docs/design.md "Numbers").
   */
  readonly probeDuration: Histogram<'service' | 'pool' | 'phase'>;

  /**
   * Registers every metric on a new Registry. The state-mirroring gauges read
   * `source` at scrape time.
   *
   * @param opts.defaultMetrics register Node's process metrics with the `nginx_canary_` prefix (default
   *   true; false when several instances share a process, as in tests).
   */
  constructor(source: MetricsSource, opts: { defaultMetrics?: boolean } = {}) {
    const registry = new Registry();
    this.registry = registry;
    if (opts.defaultMetrics ?? true)
      collectDefaultMetrics({
        register: registry,
        prefix: 'nginx_canary_',
        eventLoopMonitoringPrecision: EVENT_LOOP_MONITOR_MS,
      });

    /** A gauge with one series per configured service, read at scrape time; `pick` null → no series for it. */
    const serviceGauge = (name: string, help: string, pick: (svc: ServiceConfig, state: State) => number | null) => {
      new Gauge({
        name,
        help,
        labelNames: ['service'],
        registers: [registry],
        collect() {
          this.reset();
          const state = source.state();
          for (const svc of source.config().services) {
            const v = pick(svc, state);
            if (v !== null) this.set({ service: svc.name }, v);
          }
        },
      });
    };
    serviceGauge(
      'nginx_canary_weight_percent',
      'Live canary weight: share of the service requests nginx sends to the canary pool, percent 0-100.',
      (svc, state) => state.services[svc.name]?.weight ?? 0,
    );
    serviceGauge(
      'nginx_canary_target_weight_percent',
      'Target canary weight from weights.yaml, percent 0-100.',
      (svc) => svc.rollout.target,
    );
    new Gauge({
      name: 'nginx_canary_phase',
      help: 'Rollout phase: 1 on the current phase of each service, 0 on the others.',
      labelNames: ['service', 'phase'],
      registers: [registry],
      collect() {
        this.reset();
        const state = source.state();
        for (const svc of source.config().services) {
          const current = state.services[svc.name]?.phase ?? 'idle';
          for (const phase of PHASES) this.set({ service: svc.name, phase }, phase === current ? 1 : 0);
        }
      },
    });
    const gateGauge = (name: string, help: string, pick: (g: GateResult[], pool: Pool) => number | null): void => {
      new Gauge<ServicePoolLabels>({
        name,
        help,
        labelNames: ['service', 'pool'],
        registers: [registry],
        collect() {
          this.reset();
          const all = source.gates();
          for (const svc of source.config().services) {
            for (const pool of ['primary', 'canary'] as const) {
              const v = pick(all[svc.name] ?? [], pool);
              if (v !== null) this.set({ service: svc.name, pool }, v);
            }
          }
        },
      });
    };
    const find = (g: GateResult[], gate: GateResult['gate'], pool: Pool): GateResult | undefined =>
      g.find((r) => r.gate === gate && r.pool === pool);
    gateGauge(
      'nginx_canary_gate_connect_p95_seconds',
      'Upstream connect time p95 over the gate window, seconds (hold gate: the walk pauses above gates.connect_p95, default 120 ms).',
      (g, pool) => {
        const v = find(g, 'connect_p95', pool)?.value ?? null;
        return v === null ? null : gateBaseUnit('connect_p95', v);
      },
    );
    gateGauge(
      'nginx_canary_gate_error_ratio',
      'Upstream 5xx attempts / attempts over the gate window, ratio 0-1 (drain gate: gates.error_ratio, default 0.005, judged by a sequential test).',
      (g, pool) => find(g, 'error_ratio', pool)?.value ?? null,
    );
    gateGauge('nginx_canary_gate_requests', 'Upstream attempts in the gate window.', (g, pool) => {
      const r = find(g, 'error_ratio', pool);
      return r === undefined ? null : r.samples;
    });
    const eachGate = (each: (service: string, r: GateResult) => void): void => {
      const all = source.gates();
      for (const svc of source.config().services) for (const r of all[svc.name] ?? []) each(svc.name, r);
    };
    new Gauge({
      name: 'nginx_canary_gate_value',
      help: 'Last value of every gate, in base units by gate: seconds (connect_p95, baseline_p95), ratio 0-1 (error_ratio, probe_failure_ratio, starved = canary share of attempts), count (crash_loop down transitions), 1/0 (ready). Absent without data.',
      labelNames: ['service', 'pool', 'gate'],
      registers: [registry],
      collect() {
        this.reset();
        eachGate((service, r) => {
          if (r.value !== null) this.set({ service, pool: r.pool, gate: r.gate }, gateBaseUnit(r.gate, r.value));
        });
      },
    });
    new Gauge({
      name: 'nginx_canary_gate_threshold',
      help: 'Threshold of every gate, in the units of nginx_canary_gate_value for the same gate.',
      labelNames: ['service', 'pool', 'gate'],
      registers: [registry],
      collect() {
        this.reset();
        eachGate((service, r) => this.set({ service, pool: r.pool, gate: r.gate }, gateBaseUnit(r.gate, r.threshold)));
      },
    });
    new Gauge({
      name: 'nginx_canary_gate_verdict',
      help: 'Last verdict of every gate: 1 on the current verdict (pass, fail, inconclusive), 0 on the others; kind hold or drain.',
      labelNames: ['service', 'pool', 'gate', 'kind', 'verdict'],
      registers: [registry],
      collect() {
        this.reset();
        eachGate((service, r) => {
          for (const verdict of VERDICTS)
            this.set({ service, pool: r.pool, gate: r.gate, kind: r.kind, verdict }, r.verdict === verdict ? 1 : 0);
        });
      },
    });
    new Gauge({
      name: 'nginx_canary_drained',
      help: 'Set to 1 while a service is drained, by reason (the drain gate, or operator); absent otherwise. The NginxCanaryDrained alert pages on it.',
      labelNames: ['service', 'reason'],
      registers: [registry],
      collect() {
        this.reset();
        const state = source.state();
        for (const svc of source.config().services) {
          const s = state.services[svc.name];
          if (s?.phase === 'drained') this.set({ service: svc.name, reason: s.drainReason ?? 'unknown' }, 1);
        }
      },
    });
    const drainGateGauge = (name: string, help: string, pick: (r: GateResult) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['service', 'gate'],
        registers: [registry],
        collect() {
          this.reset();
          const state = source.state();
          for (const svc of source.config().services) {
            const s = state.services[svc.name];
            if (s?.phase !== 'drained' || !s.drainReason) continue;
            const r = drainGate(state, svc.name, s.drainReason);
            if (r && r.value !== null) this.set({ service: svc.name, gate: r.gate }, gateBaseUnit(r.gate, pick(r)));
          }
        },
      });
    };
    drainGateGauge(
      'nginx_canary_drain_gate_value',
      'While a service is drained by a gate: that gate value at the drain, in the units of nginx_canary_gate_value.',
      (r) => r.value ?? 0,
    );
    drainGateGauge(
      'nginx_canary_drain_gate_threshold',
      'While a service is drained by a gate: that gate threshold at the drain, in the units of nginx_canary_gate_value.',
      (r) => r.threshold,
    );
    serviceGauge(
      'nginx_canary_paused_seconds',
      'While a walk is paused (by a hold gate or the operator): seconds since it paused; absent otherwise.',
      (svc, state) =>
        state.services[svc.name]?.phase === 'paused'
          ? Math.max(0, source.now() - pausedAt(state, svc.name)) / 1000
          : null,
    );
    if (source.oldGenerations) {
      const count = source.oldGenerations.bind(source);
      new Gauge({
        name: 'nginx_canary_old_worker_generations',
        help: 'Reload generations of nginx workers still shutting down (serving old weights); a reload that raises a weight waits while this exceeds nginx.max_old_generations.',
        registers: [registry],
        async collect() {
          this.set(await count());
        },
      });
    }
    if (source.fleet) registerFleetGauges(registry, source.fleet.bind(source));
    new Gauge({
      name: 'nginx_canary_alert_paused_after_seconds',
      help: 'alerts.paused_after from weights.yaml, seconds: the NginxCanaryPausedTooLong ticket fires when paused_seconds exceeds it.',
      registers: [registry],
      collect() {
        this.set(source.config().alerts.pausedAfterMs / 1000);
      },
    });
    serviceGauge(
      'nginx_canary_soak_seconds',
      'Green soak accumulated at the live weight, seconds.',
      (svc, state) => (state.services[svc.name]?.soakedMs ?? 0) / 1000,
    );
    serviceGauge(
      'nginx_canary_soak_needed_seconds',
      'Soak the live weight needs before the next step, seconds.',
      (svc, state) => soakNeededMs(svc, state.services[svc.name]) / 1000,
    );

    this.drains = new Counter({
      name: 'nginx_canary_drains_total',
      help: 'Canary drains (weight set to 0) by reason: the gate that failed, or operator.',
      labelNames: ['service', 'reason'],
      registers: [registry],
      // Every scrape: a service added by a weights.yaml reload gets its zeroed series too.
      collect() {
        for (const svc of source.config().services) {
          const reasons = evaluateGates(svc, undefined)
            .filter((r) => r.kind === 'drain')
            .map((r) => r.gate as string);
          for (const reason of [...reasons, 'operator']) this.inc({ service: svc.name, reason }, 0);
        }
      },
    });
    this.promotions = new Counter({
      name: 'nginx_canary_promotions_total',
      help: 'Releases ended by promote: the primary servers took the canary build and all traffic (not a drain; no page).',
      labelNames: ['service'],
      registers: [registry],
      collect() {
        for (const svc of source.config().services) this.inc({ service: svc.name }, 0);
      },
    });
    this.reloads = new Counter({
      name: 'nginx_canary_reloads_total',
      help: 'Applies of a rendered config, by result: ok, or the stage that failed (disk, preflight, test, reload, verify, ...).',
      labelNames: ['result'],
      registers: [registry],
    });
    this.reloadDuration = new Histogram({
      name: 'nginx_canary_reload_duration_seconds',
      help: 'Duration of a successful apply: snapshot, write, nginx -t, reload and proof of the new generation, seconds.',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.rollbacks = new Counter({
      name: 'nginx_canary_rollbacks_total',
      help: 'Snapshot restores, by reason: the failed apply stage, or operator.',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.probeDuration = new Histogram({
      name: 'nginx_canary_probe_duration_seconds',
      help: 'Synthetic probe durations by phase (connect, total), seconds.',
      labelNames: ['service', 'pool', 'phase'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2],
      registers: [registry],
    });
    // Counters start at 0 for every known label value, so rate()/increase() see the first event
    // (Prometheus instrumentation practice: a series born at 1 hides its first increment).
    this.reloads.inc({ result: 'ok' }, 0);
    for (const stage of APPLY_STAGES) {
      this.reloads.inc({ result: stage }, 0);
      this.rollbacks.inc({ reason: stage }, 0);
    }
    this.rollbacks.inc({ reason: 'operator' }, 0);
    new Counter({
      name: 'nginx_canary_log_lines_total',
      help: 'Access-log lines read, by result (parsed, invalid, unattributed).',
      labelNames: ['result'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [result, n] of Object.entries(source.logLines())) this.inc({ result }, n);
      },
    });
  }
}

/**
 * Registers the `nginx_canary_fleet_*` gauges on `registry`, each filled from `view()` at scrape time;
 * while `view()` answers null none of them has a sample (a label-less gauge included, which prom-client
 * would otherwise report as 0).
 */
function registerFleetGauges(registry: Registry, view: () => FleetMetricsView | null): void {
  const fleetGauge = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    fill: (g: Gauge<L>, v: FleetMetricsView) => void,
  ): void => {
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        const v = view();
        if (v !== null) fill(this, v);
        else if (labelNames.length === 0) this.remove(); // reset() left the label-less series at 0
      },
    });
  };
  fleetGauge(
    'nginx_canary_fleet_leader',
    'Fleet mode: 1 on the host that leads the fleet (it decides for every host and writes the desired weights to etcd), 0 on the others. Summed over the fleet it must be 1; 0 means no host decides (etcd lost its quorum, or every sidecar is cut off from etcd): weights hold and nothing raises until a leader is back.',
    [],
    (g, v) => g.set(v.leader ? 1 : 0),
  );
  fleetGauge(
    'nginx_canary_fleet_hosts',
    "Fleet mode: hosts of this fleet as this host sees them in etcd, by state: live (its sidecar holds its lease) or stale (known, but its lease expired: the sidecar is down or cut off from etcd; check it). A stale host's weights are its last applied ones.",
    ['state'],
    (g, v) => {
      g.set({ state: 'live' }, v.hosts.live);
      g.set({ state: 'stale' }, v.hosts.stale);
    },
  );
  fleetGauge(
    'nginx_canary_fleet_desired_weight_percent',
    "Fleet mode: the fleet's desired canary weight per service, percent 0-100, as the leader wrote it to etcd. nginx_canary_weight_percent is this host's live weight; the two differ while the host applies, and stay apart when it cannot (see nginx_canary_fleet_behind_seconds).",
    ['service'],
    (g, v) => {
      for (const [service, weight] of Object.entries(v.desired)) g.set({ service }, weight);
    },
  );
  fleetGauge(
    'nginx_canary_fleet_behind_seconds',
    "Fleet mode: seconds this host has not had the fleet's current desired weights applied and verified, 0 when it has. It grows while this host's apply fails (nginx-canary status on it shows the nginx -t error); the fleet does not raise any weight while a live host is behind. A host cut off from etcd compares with the last desired weights it read, so it shows 0 here and 0 in nginx_canary_fleet_etcd_up.",
    [],
    (g, v) => g.set(v.behindSeconds),
  );
  fleetGauge(
    'nginx_canary_fleet_disagreeing_hosts',
    "Fleet mode, on the leader: hosts whose services section of weights.yaml differs from the leader's (0 on every other host). The walk holds until every host has the same services section; nginx-canary status names the hosts that differ and how.",
    [],
    (g, v) => g.set(v.disagreeingHosts),
  );
  fleetGauge(
    'nginx_canary_fleet_etcd_up',
    "Fleet mode: 1 when this host's last etcd call succeeded, 0 when it failed (etcd down, unreachable or without quorum). While 0 this host keeps its weights, never raises one, and may still drain on its own evidence.",
    [],
    (g, v) => g.set(v.etcdUp ? 1 : 0),
  );
}
