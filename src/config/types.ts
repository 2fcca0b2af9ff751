/**
 * The normalized configuration every other part reads. It is produced from
 * weights.yaml by `config/load.ts` (yaml → TypeBox-validated raw object →
 * this shape): durations are milliseconds, percentages are numbers 0–100,
 * ratios are 0–1, paths are absolute (relative ones resolve against the
 * directory of weights.yaml). Every string that reaches an nginx file has been
 * checked against a safe character set.
 *
 * Defaults are the design's numbers (design.md "Numbers the product is built
 * around", from seeds 002 and 003).
 */

/** How traffic is split between the pools. */
export type SplitMode = 'weighted' | 'split_clients';

/** Which pool of a service a server belongs to. */
export type Pool = 'primary' | 'canary';

/** A loopback-or-other `host:port` the sidecar listens on or nginx listens on. */
export interface ListenAddress {
  /** IPv4 address, `[v6]` without brackets, or hostname; safe characters only. */
  host: string;
  port: number;
}

/** One nginx `server` line in an upstream. */
export interface ServerConfig {
  /** `host:port` exactly as written (IPv6 as `[::1]:18890`); what nginx logs in $upstream_addr. */
  server: string;
  host: string;
  port: number;
  /** nginx `max_fails` (default primary 3, canary 1; seed 003). */
  maxFails: number;
  /** nginx `fail_timeout` in ms (default primary 20 s, canary 10 s; seed 003). */
  failTimeoutMs: number;
  /** nginx Plus `slow_start` in ms, or null (default canary 30 s; seed 003). */
  slowStartMs: number | null;
}

/** Synthetic probes against each server (seed 002: TCP connect within 2 s). */
export interface ProbeConfig {
  /** Path of the health endpoint, e.g. `/health`. */
  health: string;
  /** Path of the readiness endpoint, e.g. `/ready`. */
  ready: string;
  intervalMs: number;
  timeoutMs: number;
}

/** The walk (seed 003: slice 5–12 %, 48 h, +10 pp steps). */
export interface RolloutConfig {
  /** Target canary weight, percent 0–100 (one decimal). */
  target: number;
  /** First weight, percent 5–12. */
  slice: number;
  /** Soak at the slice, ms (default 48 h). */
  sliceSoakMs: number;
  /** Increase per step, percentage points (default 10). */
  step: number;
  /** Soak at each later step, ms (default 15 min). */
  stepSoakMs: number;
}

/** Gate thresholds (seed 003 for connect p95 and 5xx; seed 002 for the rest). */
export interface GatesConfig {
  /** Sliding window the gates judge, ms (default 15 min). */
  windowMs: number;
  /** Attempts a pool needs in the window for a verdict; fewer → inconclusive. */
  minRequests: number;
  /** Hold gate: canary upstream connect p95 above this, ms (default 120). */
  connectP95Ms: number;
  /** Drain gate: canary 5xx attempts / attempts above this, ratio 0–1 (default 0.005). */
  errorRatio: number;
  /** Drain gate: canary health-probe failures / probes above this, ratio 0–1 (default 0.05, seed 002). */
  probeFailureRatio: number;
  /** Drain gate: canary response p95 above this × primary response p95 (default 5, seed 002). */
  baselineP95Factor: number;
  /** Probes a pool needs in the window for a probe-failure verdict; fewer → inconclusive (default 20 = 1 / 5 %). */
  minProbes: number;
  /** Drain gate: this many healthy→unhealthy probe transitions of the canary within {@link crashLoopWindowMs} (default 3, seed 002). */
  crashLoopRestarts: number;
  /** The crash-loop window, ms (default 5 min, seed 002). */
  crashLoopWindowMs: number;
}

/** One split: a primary pool and a canary pool behind one nginx upstream name. */
export interface ServiceConfig {
  /** `[a-z][a-z0-9_]*`, ≤ 48 chars; also the nginx upstream name. */
  name: string;
  split: SplitMode;
  /** split_clients key (nginx variables only); default `$remote_addr$http_user_agent`. */
  splitKey: string;
  primary: ServerConfig[];
  canary: ServerConfig[];
  probe: ProbeConfig;
  rollout: RolloutConfig;
  gates: GatesConfig;
}

/** Snapshot store settings. */
export interface SnapshotsConfig {
  /** Absolute directory of the tarballs. */
  dir: string;
  /** Newest N kept (default 20). */
  keep: number;
}

/** The nginx the sidecar drives. */
export interface NginxConfig {
  /** Name on PATH or absolute path. */
  binary: string;
  /** Absolute path of the main nginx.conf (`nginx -c`). */
  conf: string;
  /** Absolute `nginx -p` prefix, or null to use the binary's default. */
  prefix: string | null;
  /** True: the sidecar starts/stops this nginx itself (demo, dev). */
  managed: boolean;
  /** Absolute path of the one include file the sidecar writes. */
  upstreamsFile: string;
  /** Absolute path of the JSON-lines access log in format `nginx_canary`. */
  accessLog: string;
  /** Loopback server rendered into the include file: answers the generation and stub_status. */
  statusListen: ListenAddress;
  snapshots: SnapshotsConfig;
  /** Minimum spacing of two reloads (two weight changes), ms (default 2 s). */
  minReloadIntervalMs: number;
}

/** The sidecar process itself. */
export interface SidecarConfig {
  /** API, /metrics and status page (default 127.0.0.1:9464). */
  listen: ListenAddress;
  /** Absolute path of state.json. */
  stateFile: string;
  /** Absolute path of a file holding the bearer token, or null (no token). */
  tokenFile: string | null;
}

/** Where a drain pages. */
export interface AlertsConfig {
  /** Alertmanager v2 base or JSON webhook URL, or null (no push; Prometheus rules still fire). */
  webhookUrl: string | null;
}

/** The whole normalized configuration. */
export interface Config {
  /** Absolute path of the weights.yaml this came from. */
  file: string;
  nginx: NginxConfig;
  sidecar: SidecarConfig;
  alerts: AlertsConfig;
  /** Services in file order; names are unique. */
  services: ServiceConfig[];
}
