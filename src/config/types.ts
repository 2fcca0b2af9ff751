/**
 * The normalized configuration every other part reads. It is produced from
 * weights.yaml by `config/load.ts` (yaml → TypeBox-validated raw object →
 * this shape): durations are milliseconds, percentages are numbers 0–100,
 * ratios are 0–1, paths are absolute (relative ones resolve against the
 * directory of weights.yaml). Every string that reaches an nginx file has been
 * checked against a safe character set.
 *
 * Defaults are the design's numbers (docs/design.md "Numbers", which says
 * where each came from).
 */

/** How traffic is split between the pools. */
export type SplitMode = 'weighted' | 'split_clients';

/** Which pool of a service a server belongs to. */
export type Pool = 'primary' | 'canary';

/** A loopback-or-other `host:port` the sidecar listens on or nginx listens on. */
export interface ListenAddress {
  /** IPv4 address, IPv6 address (without brackets), or hostname; safe characters only. */
  host: string;
  /** TCP port, 1–65535. */
  port: number;
}

/**
 * One nginx `server` line in an upstream: a TCP server (`host:port`) or a
 * unix-domain socket (`unix:/run/app.sock`, {@link ServerConfig.socketPath}
 * set, `host` '' and `port` 0).
 */
export interface ServerConfig {
  /**
   * `host:port` or `unix:/abs/path` exactly as written (IPv6 as `[::1]:18890`); what nginx logs in
   * $upstream_addr (for a socket always this string: nginx logs the name from its config).
   */
  server: string;
  /** The host part of `server`: IPv4, IPv6 (without brackets) or hostname; '' for a unix-socket server. */
  host: string;
  /** The port part of `server`, 1–65535; 0 for a unix-socket server. */
  port: number;
  /**
   * For `unix:/path`: the socket's absolute path (`server` without `unix:`), normalized, safe characters
   * only, at most 107 bytes (sun_path is 108 with its NUL); null for a `host:port` server.
   */
  socketPath: string | null;
  /** nginx `max_fails`, 0–100; 0 disables the accounting of attempts (nginx docs). Default primary 3, canary 1 (docs/design.md "Numbers"). */
  maxFails: number;
  /** nginx `fail_timeout` in ms, whole seconds from 1 s to 1 d (default primary 20 s, canary 10 s; docs/design.md "Numbers"). */
  failTimeoutMs: number;
  /**
   * nginx Plus `slow_start` in ms, whole seconds up to 1 h, or null for none (`0s`) (default canary 30 s,
   * primary none; docs/design.md "Numbers"). Emulated by ramped reloads on open-source nginx.
   */
  slowStartMs: number | null;
}

/** Synthetic probes against each server (docs/design.md "Observations"; TCP connect within 2 s). */
export interface ProbeConfig {
  /** Path of the health endpoint, e.g. `/health`. */
  health: string;
  /** Path of the readiness endpoint, e.g. `/ready`. */
  ready: string;
  /** Spacing of one server's probe rounds, ms, 100 ms–1 h (default 5 s, docs/design.md "Numbers"). */
  intervalMs: number;
  /** Bound of one probe, ms, 10 ms–1 min and ≤ intervalMs (default 2 s, docs/design.md "Numbers"); connect is bounded by min(this, 2 s). */
  timeoutMs: number;
}

/** The walk (docs/design.md "Numbers": slice 5–12 %, 48 h, +10 pp steps). */
export interface RolloutConfig {
  /** Target canary weight, percent 0–100 (one decimal; default 0). */
  target: number;
  /** First weight, percent 5–12 (one decimal; default 5; docs/design.md "Numbers": "5–12% of requests"). */
  slice: number;
  /** Soak at the slice, ms, 0–365 d (default 48 h, docs/design.md "Numbers"). */
  sliceSoakMs: number;
  /** Increase per step, percentage points 1–50 (one decimal; default 10, docs/design.md "Numbers"). */
  step: number;
  /** Soak at each later step, ms, 0–365 d (default 15 min, docs/design.md "Numbers"). */
  stepSoakMs: number;
  /**
   * The canary build's label from the deploy tool (`rollout.version`, e.g. a git sha; letters, digits
   * and `. _ + -`, ≤ 128 characters), or null. With the canary servers it is the canary's identity: a
   * change starts a new walk from the slice (docs/release.md).
   */
  version: string | null;
  /**
   * `promote` runs this first, without a shell (argv[0] and its arguments; a name is looked up on
   * PATH), to deploy the canary's build onto the primary servers; null = the operator deploys it.
   */
  promoteCommand: string[] | null;
  /** Upper bound of the promote command and of the wait for the primary's /ready after it, ms, 1 s–1 h (default 5 min). */
  promoteTimeoutMs: number;
}

/** Gate thresholds (docs/design.md "Gates"; defaults and their origins: "Numbers"). */
export interface GatesConfig {
  /** Sliding window the gates judge, ms, 1 s–1 d (default 15 min, docs/design.md "Numbers": "5xx ratio … over 15 min"). */
  windowMs: number;
  /** Attempts a pool needs in the window for a verdict, 1–10⁹; fewer → inconclusive (default 200, docs/design.md "Numbers"). */
  minRequests: number;
  /** Hold gate: canary upstream connect p95 above this, ms, 1 ms–1 min (default 120, docs/design.md "Numbers"). */
  connectP95Ms: number;
  /** Drain gate: canary 5xx attempts / attempts above this, ratio 0–1 exclusive (default 0.005, docs/design.md "Numbers"). */
  errorRatio: number;
  /** Drain gate: canary health-probe failures / probes above this, ratio 0–1 exclusive (default 0.05, docs/design.md "Numbers"). */
  probeFailureRatio: number;
  /** Drain gate: canary response p95 above this × primary response p95; a factor in (1, 1000] (default 5, docs/design.md "Numbers"). */
  baselineP95Factor: number;
  /** Probes a pool needs in the window for a probe verdict, 1–10⁶; fewer → inconclusive (default 20 = 1 / 5 %). */
  minProbes: number;
  /** Drain gate: this many healthy→unhealthy probe transitions of the canary within {@link crashLoopWindowMs}, 1–1000 (default 3, docs/design.md "Numbers"). */
  crashLoopRestarts: number;
  /** The crash-loop window, ms, 1 s–1 d (default 5 min, docs/design.md "Numbers"). */
  crashLoopWindowMs: number;
}

/**
 * The `X-Canary: always|never` smoke-test override of one service
 * (`services.<name>.override` in weights.yaml). Without it the service has no
 * override at all. With it, only clients whose address is in {@link allow}
 * are overridden: nginx `geo` (ngx_http_geo_module) matches the client
 * address (`$remote_addr`, after the realip module when it is configured).
 */
export interface OverrideConfig {
  /**
   * Client addresses and networks in nginx `geo` syntax, as written, in file order, at least one (at
   * most 1024): IPv4 (`127.0.0.1`), IPv4 CIDR (`10.1.2.0/24`), IPv6 in canonical compressed form
   * (`::1`) or IPv6 CIDR (`fd00::/8`); a CIDR has no bits set past its prefix, no IPv4-mapped IPv6, each
   * network listed once. Only the characters `0-9 a-f . : /` reach the nginx file.
   */
  allow: string[];
}

/** One split: a primary pool and a canary pool behind one nginx upstream name. */
export interface ServiceConfig {
  /** `[a-z][a-z0-9_]*`, ≤ 48 chars; also the nginx upstream name. */
  name: string;
  /** How traffic is split (default `weighted`). */
  split: SplitMode;
  /** split_clients key (nginx variables only); default `$remote_addr$http_user_agent`. */
  splitKey: string;
  /** The primary servers, at least one; addresses are unique across every service and pool. */
  primary: ServerConfig[];
  /** The canary servers, at least one; addresses are unique across every service and pool. */
  canary: ServerConfig[];
  /** Synthetic probes of every server of both pools. */
  probe: ProbeConfig;
  /** The walk. */
  rollout: RolloutConfig;
  /** Gate thresholds. */
  gates: GatesConfig;
  /** The `X-Canary` smoke-test override, or null (default): no override, the header does nothing. */
  override: OverrideConfig | null;
}

/** Snapshot store settings. */
export interface SnapshotsConfig {
  /** Absolute directory of the tarballs. */
  dir: string;
  /** Newest N kept, 1–1000 (default 20, docs/design.md "Numbers"). */
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
  /** Loopback server rendered into the include file: answers the generation and stub_status (default 127.0.0.1:9465, docs/design.md "Numbers"). */
  statusListen: ListenAddress;
  /** Where the config tarballs go (default `<dir of state_file>/snapshots`). */
  snapshots: SnapshotsConfig;
  /** Minimum spacing of two reloads (two weight changes), ms, 100 ms–1 h (default 2 s, docs/design.md "Numbers"). */
  minReloadIntervalMs: number;
  /**
   * `keepalive <n>;` in every rendered upstream: idle connections to the
   * upstream servers each worker caches, 0–1024, 0 = none (default 32, a
   * chosen value: bench:walk measured ~2.5× the requests/s with it; the nginx
   * docs' example uses 16–32). Needs `proxy_http_version 1.1` and
   * `proxy_set_header Connection ""` in nginx.conf.
   */
  upstreamKeepalive: number;
  /**
   * `keepalive_timeout` of every rendered upstream, ms, 1 s–1 h (default 4 s:
   * under Node's 5 s server keep-alive timeout, so nginx drops an idle
   * connection before the backend does; nginx's own default is 60 s).
   */
  upstreamKeepaliveTimeoutMs: number;
  /**
   * Reload-rate guard: no reload that raises a weight while more than this
   * many generations of old nginx workers are still shutting down, 1–100
   * (default 3, chosen: with worker_shutdown_timeout 10 s and 2 s between
   * reloads at most 5 can exist). Drains and lowered weights are never held.
   */
  maxOldGenerations: number;
  /**
   * `nginx.access_log_sample`: the percent (1–100) of the lines with one
   * successful attempt that nginx writes to the access log; every line with a
   * failed or retried attempt is always written (default 100: every line;
   * docs/design.md "Sampled access log"). Below 100 each sampled line stands
   * for 100 / percent requests, the drain gate's bounds are calibrated for
   * that weight (rollout/sequential.ts), and the `access_log` line must carry
   * `if=$nginx_canary_log`.
   */
  accessLogSample: number;
}

/** The sidecar process itself. */
export interface SidecarConfig {
  /** API, /metrics and status page (default 127.0.0.1:9464, docs/design.md "Numbers"); never the same as nginx.statusListen. */
  listen: ListenAddress;
  /** Absolute path of state.json (default `.nginx-canary/state.json` beside weights.yaml); outside nginx's config directory. */
  stateFile: string;
  /** Absolute path of a file holding the bearer token, or null (no token). */
  tokenFile: string | null;
}

/** Where a drain pages. */
export interface AlertsConfig {
  /** Alertmanager v2 base or JSON webhook URL, or null (no push; Prometheus rules still fire). */
  webhookUrl: string | null;
  /**
   * How long a walk may stay paused before the `NginxCanaryPausedTooLong`
   * ticket fires, ms (default 30 min: a chosen value, not a runbook number; the
   * sidecar exports it as `nginx_canary_alert_paused_after_seconds` so the
   * shipped Prometheus rule reads it).
   */
  pausedAfterMs: number;
}

/**
 * The `fleet:` section: several hosts' sidecars walk as one, through an etcd v3
 * cluster (docs/design.md "Fleet"). One fleet is one key prefix; every host of
 * it has the same `services` section and its own {@link FleetConfig.host}.
 */
export interface FleetConfig {
  /**
   * The etcd members' client URLs as written in `fleet.etcd`, in file order, at least one, each listed
   * once: `http://` or `https://`, a host (IPv4, hostname or `[IPv6]` in canonical form) and an explicit
   * port, nothing else (no credentials, path, query or fragment; a trailing `/` is dropped), e.g.
   * `http://10.0.0.5:2379`.
   */
  endpoints: string[];
  /**
   * The etcd key prefix every key of this fleet lives under, e.g. `/nginx-canary/edge-prod`: starts
   * with `/`, no trailing `/`, no empty, `.` or `..` segment, only `A-Z a-z 0-9 . _ / -`, at most 256
   * characters.
   */
  prefix: string;
  /** This host's name in the fleet, 1–63 characters of `A-Z a-z 0-9 . _ -` (default: the machine's hostname). */
  host: string;
  /**
   * TTL of the leader's lease and of each host's liveness lease, ms: whole seconds from 2 s to 60 s
   * (default 5 s). etcd lease TTLs are whole seconds (https://etcd.io/docs/v3.4/learning/api/#lease-api,
   * LeaseGrant `TTL`); the 2–60 s bounds are sanity bounds chosen here: a shorter TTL lets one slow
   * keepalive round trip expire a lease, a longer one leaves a dead leader in place for over a minute.
   */
  leaseTtlMs: number;
}

/** The whole normalized configuration. */
export interface Config {
  /** Absolute path of the weights.yaml this came from. */
  file: string;
  /** The `nginx:` section. */
  nginx: NginxConfig;
  /** The `sidecar:` section. */
  sidecar: SidecarConfig;
  /** The `alerts:` section. */
  alerts: AlertsConfig;
  /** Services in file order; names are unique. */
  services: ServiceConfig[];
  /** The `fleet:` section, or null without one (the sidecar walks this host alone, as before fleet mode). */
  fleet: FleetConfig | null;
}
