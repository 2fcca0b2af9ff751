/**
 * The template model: config + canary weights + generation → the values the
 * include file shows. Pure (no I/O, no clock); `render.ts` prints it.
 *
 * Every service (docs/design.md "Rendering"):
 * - `upstream <service>_primary` (the primary servers) and
 *   `upstream <service>_canary` (the canary servers, never `down`, then the
 *   primary servers as `backup`: a dead canary falls back, and `max_fails`
 *   applies, which nginx ignores in a one-server group);
 * - a route map setting `$nginx_canary_<service>` to the name of the upstream
 *   to use. The operator's config says `proxy_pass
 *   http://$nginx_canary_<service>;` (nginx docs, proxy_pass: with variables,
 *   "the name is searched among the described server groups").
 *
 * The `X-Canary` smoke-test override (README "The X-Canary override") is off unless the service has
 * `override.allow` in weights.yaml:
 * - off: `map "" $nginx_canary_<service> { default <split>; }`, a map with an
 *   empty source, so every request gets the split and the header is never read;
 * - on: `geo $nginx_canary_<service>_override { default 0; <entry> 1; … }`
 *   (nginx docs, ngx_http_geo_module: the value depends on the client address,
 *   by default `$remote_addr`; the most specific network wins) and
 *   `map "$nginx_canary_<service>_override:$http_x_canary" $nginx_canary_<service>`
 *   with keys `1:always` → `<service>_canary` and `1:never` →
 *   `<service>_primary`, default the split. nginx compares a map's string keys
 *   with the whole source value ignoring letter case (ngx_http_map_find
 *   lower-cases the value; checked on 1.22), so `X-Canary: ALWAYS` counts,
 *   `always-please` does not, and a client outside the list (`0:…`) never
 *   matches, whatever its header says. No regex: no PCRE needed;
 * - a drained canary (buildModel's `drained`) is never reachable through it:
 *   `1:always` → `<service>_primary`.
 *
 * The split:
 * - `weighted`: `upstream <service>` holding both pools; every server gets an
 *   integer `weight=` such that the canary pool's share of the weight sum is
 *   the canary weight to 0.1 %; a pool at 0 % is `down`. The map's default.
 * - `split_clients`: `split_clients "<key>" $nginx_canary_<service>_split`
 *   with a canary bucket of the weight (0.1 % resolution; nginx takes two
 *   decimals) and `*` for the primary. The map's default. Growing the bucket
 *   keeps every key that was in it (nginx maps the hash range to buckets in
 *   order), so a client on the canary stays there as the weight grows.
 */
import type { Config, ListenAddress, Pool, ServerConfig, ServiceConfig, SplitMode } from '../config/types.js';
import type { Flavor } from './types.js';

/** Weight units per 100 % (0.1 % resolution, docs/design.md "Rendering"). */
export const WEIGHT_UNITS = 1000;

/** One `server` line of an upstream. */
export interface ServerLine {
  /** The pool of the configured server (primary servers appear as `backup` in `<service>_canary`). */
  pool: Pool;
  /**
   * `host:port` or `unix:/path` as written in weights.yaml (IPv6 as `[::1]:18890`); nginx takes a unix
   * socket in an upstream `server` line with the same parameters (`server unix:/run/app.sock weight=3
   * max_fails=1 fail_timeout=10s;`, checked with `nginx -t` on 1.22).
   */
  address: string;
  /**
   * nginx `weight=`, an integer ≥ 1 (nginx rejects 0; a pool at 0 % is `down`
   * instead), or null to leave it out (nginx's default 1: the servers of a
   * per-pool upstream share evenly).
   */
  weight: number | null;
  /** True when the server's pool is at 0 % in the weighted `upstream <service>`: rendered `down` (kept in the file, takes no traffic). */
  down: boolean;
  /**
   * nginx `backup`: tried only when every non-backup server of the upstream
   * is unavailable. The primary servers in `<service>_canary`, so a dead
   * canary falls back to the primary (nginx docs, ngx_http_upstream_module
   * `server … backup`). nginx refuses `backup` under `hash`, `ip_hash` and
   * `random` ("balancing method does not support parameter", checked on
   * 1.22); these upstreams use the default round-robin.
   */
  backup: boolean;
  /** nginx `max_fails=`, integer 0–100 (0 disables the accounting of attempts, nginx docs). */
  maxFails: number;
  /** nginx `fail_timeout=` in nginx time syntax, whole seconds (e.g. `20s`); see {@link nginxSeconds}. */
  failTimeout: string;
  /** nginx Plus `slow_start=` (e.g. `30s`), or null: only set when the flavor is `plus` and the server has one. */
  slowStart: string | null;
}

/**
 * What an upstream block holds:
 * - `weighted`: `upstream <service>`, both pools with per-server weights
 *   (weighted split only; kept so `proxy_pass http://<service>;` still works);
 * - `primary`: `upstream <service>_primary`, the primary servers;
 * - `canary`: `upstream <service>_canary`, the canary servers (never `down`),
 *   then the primary servers as `backup`.
 */
export type UpstreamRole = 'weighted' | 'primary' | 'canary';

/** One `upstream` block. */
export interface UpstreamModel {
  /** `<service>`, `<service>_primary` or `<service>_canary` (`[a-z][a-z0-9_]*`). */
  name: string;
  /** What the block holds (see {@link UpstreamRole}). */
  role: UpstreamRole;
  /**
   * The block's `zone <name> <size>;`: `name` is `nginx_canary_<upstream>`, `size` nginx size syntax
   * (e.g. `64k`) from {@link upstreamZoneSize}. The zone keeps the group's run-time state (each
   * server's failed attempts, its `max_fails` ejection, the round-robin position) in memory shared by
   * every worker (nginx docs, ngx_http_upstream_module `zone`); without it each worker counts
   * `max_fails` on its own, and one refused attempt ejects a server from one worker only.
   */
  zone: { name: string; size: string };
  /**
   * `server` lines in print order: `weighted` lists the primary then the canary servers, `primary` the
   * primary servers, `canary` the canary servers then the primary servers as `backup`.
   */
  servers: ServerLine[];
}

/** One line of a `split_clients` block: `<percent>% <upstream>;`, or `* <upstream>;`. */
export interface SplitBucket {
  /**
   * Size of the bucket, percent of the 32-bit MurmurHash2 range, 0.1–99.9 with
   * at most one decimal (nginx 1.22 parses two decimals and rejects `0%`;
   * checked with `nginx -t`); null for `*` (every hash not in an earlier bucket).
   */
  percent: number | null;
  /** Upstream name the variable takes in this bucket. */
  upstream: string;
}

/** The `split_clients` block of a split_clients service. */
export interface SplitClientsModel {
  /**
   * The key as variable names without `$`, in order: `['remote_addr',
   * 'http_user_agent']` prints `"$remote_addr$http_user_agent"` (the config
   * loader allows nginx variables only; `$` itself is kept out of model values).
   */
  key: string[];
  /** The variable it sets, without `$`: `nginx_canary_<service>_split`. */
  variable: string;
  /** Canary bucket first (when the weight is above 0), then `*`. */
  buckets: SplitBucket[];
}

/** A value of the route map: an upstream name, or (split_clients) the split variable (name without `$`). */
export type MapTarget = { kind: 'upstream'; name: string } | { kind: 'variable'; name: string };

/** A value of the `X-Canary` request header that overrides the split. */
export type OverrideValue = 'always' | 'never';

/**
 * The `geo` block of a service with an `X-Canary` override:
 * `geo $<variable> { default <other>; <entry> <allowed>; … }`. nginx `geo`
 * (ngx_http_geo_module) sets the variable from the client address
 * (`$remote_addr`, as the realip module leaves it), the most specific
 * matching network winning.
 */
export interface OverrideGeoModel {
  /** The variable it sets, without `$`: `nginx_canary_<service>_override` (see {@link overrideVariable}). */
  variable: string;
  /** Its value for a client in the list: {@link OVERRIDE_ALLOWED}. */
  allowed: string;
  /** Its value for any other client (`default`): {@link OVERRIDE_OTHER}. */
  other: string;
  /** `ServiceConfig.override.allow`: addresses and CIDRs (validated, only `0-9 a-f . : /`), in config order. */
  allow: string[];
}

/** One line of a route map: `<key> <upstream>;`. */
export interface RouteOverride {
  /** The header value it stands for. */
  value: OverrideValue;
  /** The map key: `<allowed>:<value>`, e.g. `1:always` (compared with the whole source value, any case). */
  key: string;
  /** Upstream name the variable takes. */
  upstream: string;
}

/**
 * The route map of a service: `map "<source>" $nginx_canary_<service>`. Its
 * value is the name of the upstream to use; the operator's location says
 * `proxy_pass http://$nginx_canary_<service>;`.
 */
export interface RouteMapModel {
  /**
   * The map's source as variable names without `$`, printed `"$a:$b"`: `[<geo variable>,`
   * {@link OVERRIDE_SOURCE}`]` with an override; `[]` without one, printed `""` (a constant: every
   * request gets the default and the header is not read).
   */
  source: string[];
  /** The variable it sets, without `$`: `nginx_canary_<service>` (see {@link routeVariable}). */
  variable: string;
  /** No override (no header, another value, a client outside the list): the weighted upstream, or the split variable. */
  default: MapTarget;
  /**
   * Empty without an override; with one, `1:always` → `<service>_canary` (`<service>_primary` when
   * the canary is drained) and `1:never` → `<service>_primary`.
   */
  overrides: RouteOverride[];
}

/** Everything one service renders. */
export interface ServiceModel {
  /** Service name (`[a-z][a-z0-9_]*`). */
  name: string;
  /** `ServiceConfig.split`. */
  split: SplitMode;
  /** Canary weight, percent 0–100 rounded to 0.1. */
  weight: number;
  /**
   * `weighted`: `<service>`, `<service>_primary`, `<service>_canary`;
   * `split_clients`: `<service>_primary`, `<service>_canary`.
   */
  upstreams: UpstreamModel[];
  /** The split_clients block, or null for a weighted service. */
  splitClients: SplitClientsModel | null;
  /** The `geo` block of clients allowed to use the `X-Canary` override, or null: no override. */
  override: OverrideGeoModel | null;
  /** True when buildModel was told the canary is drained (`X-Canary: always` then gets the primary). */
  drained: boolean;
  /** The route map. */
  route: RouteMapModel;
}

/** Everything the include file shows. */
export interface UpstreamsModel {
  /** Counter rendered into the status server so a reload can be proven live. */
  generation: number;
  /** `plus` renders `slow_start=`; `oss` leaves it out. */
  flavor: Flavor;
  /** Canary weight per service, percent 0–100 rounded to 0.1 (also in the header comment). */
  weights: Record<string, number>;
  /** `host:port` of the loopback status server (`[v6]:port` for IPv6). */
  statusListen: string;
  /** The access log format name the template defines (nginx.conf refers to it): {@link LOG_FORMAT}. */
  logFormat: typeof LOG_FORMAT;
  /**
   * nginx.access_log_sample, percent 1–100: the share of lines with one successful attempt that
   * `$nginx_canary_log` ({@link LOG_SAMPLE_VARIABLE}) keeps; 100 renders no split_clients.
   */
  logSample: number;
  /** The sampling variables without `$`: {@link LOG_SAMPLE_VARIABLE} and {@link LOG_SAMPLED_VARIABLE}. */
  logVariables: { log: typeof LOG_SAMPLE_VARIABLE; sampled: typeof LOG_SAMPLED_VARIABLE };
  /**
   * `keepalive` and `keepalive_timeout` (nginx time syntax, e.g. `4s`) rendered in every upstream
   * block, or null when nginx.upstream_keepalive is 0.
   */
  keepalive: { connections: number; timeout: string } | null;
  /** One entry per service, in config order. */
  services: ServiceModel[];
}

/** The name of the access log format the include defines: `access_log <path> nginx_canary;` in nginx.conf. */
export const LOG_FORMAT = 'nginx_canary' as const;

/**
 * The variable (without `$`) the access log's `if=` reads and each line records as `sample`: the
 * chance in percent nginx had to log the line — `100` for a line with a failed, retried or no
 * upstream attempt or a final status ≥ 500 (always logged), nginx.access_log_sample for a sampled
 * success, `0` for a success left out (nginx's `access_log … if=` skips a line whose condition is
 * `0` or empty: nginx docs, ngx_http_log_module). docs/design.md "Sampled access log".
 */
export const LOG_SAMPLE_VARIABLE = 'nginx_canary_log' as const;

/** The `split_clients "$request_id"` variable behind {@link LOG_SAMPLE_VARIABLE}: the sample percent, or `0`. */
export const LOG_SAMPLED_VARIABLE = 'nginx_canary_log_sampled' as const;

/** The nginx variable (without `$`) holding the `X-Canary` request header: nginx names header variables `$http_<name lower-cased, - as _>`. */
export const OVERRIDE_SOURCE = 'http_x_canary';

/** Value of the override `geo` variable for a client in the allow list. */
export const OVERRIDE_ALLOWED = '1';

/** Value of the override `geo` variable for every other client (its `default`). */
export const OVERRIDE_OTHER = '0';

/** The variable (without `$`) of a service's override `geo` block: `nginx_canary_<service>_override`. */
export function overrideVariable(service: string): string {
  return `${routeVariable(service)}_override`;
}

/**
 * The variable (without `$`) a service's route map sets, which the
 * operator's config passes to: `proxy_pass http://$nginx_canary_<service>;`.
 */
export function routeVariable(service: string): string {
  return `nginx_canary_${service}`;
}

/** Greatest common divisor of two non-negative integers (gcd(x, 0) = x). */
export function gcd(a: number, b: number): number {
  let x = Math.abs(a);
  let y = Math.abs(b);
  while (y !== 0) {
    [x, y] = [y, x % y];
  }
  return x;
}

/**
 * Milliseconds → nginx time in whole seconds (`20s`), rounded up. nginx parses
 * `fail_timeout` and `slow_start` in seconds mode, which rejects `ms`
 * (checked on nginx 1.22: `invalid parameter "fail_timeout=500ms"`); rounding
 * up keeps a sub-second setting from becoming 0 (which would disable it).
 *
 * @param ms duration in ms, ≥ 0.
 * @throws RangeError when ms is negative or not finite.
 */
export function nginxSeconds(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`nginxSeconds: ${ms} is not a duration in ms ≥ 0`);
  return `${Math.ceil(ms / 1000)}s`;
}

/** `host:port`, brackets around an IPv6 host (ListenAddress holds it without). Never throws. */
export function formatListen(addr: ListenAddress): string {
  return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

/**
 * Canary weight percent → canary units of {@link WEIGHT_UNITS} (0.1 % each),
 * rounded to the nearest unit (`33.33` → 333).
 * @throws RangeError when the weight is not a finite number within 0–100.
 */
export function canaryUnits(weightPercent: number): number {
  if (!Number.isFinite(weightPercent) || weightPercent < 0 || weightPercent > 100) {
    throw new RangeError(`canary weight ${weightPercent} is not a percent within 0–100`);
  }
  return Math.round(weightPercent * 10);
}

/**
 * Per-server nginx weights for one service. With canaryUnits c (0–1000),
 * primaryUnits p = 1000 − c, nP primary and nC canary servers, each canary
 * server gets c·nP and each primary server p·nC, both divided by their gcd —
 * so the canary pool's sum is c/1000 of the total (30 % with one server each
 * → 3:7). A pool at 0 gets weight 1 and `down`.
 *
 * @returns `{ primary, canary, primaryDown, canaryDown }` (weights ≥ 1).
 * @throws RangeError when a pool has no server (the config loader requires one in each).
 */
export function poolWeights(
  units: number,
  nPrimary: number,
  nCanary: number,
): { primary: number; canary: number; primaryDown: boolean; canaryDown: boolean } {
  if (nPrimary < 1 || nCanary < 1)
    throw new RangeError('every service needs at least one primary and one canary server');
  const c = units * nPrimary;
  const p = (WEIGHT_UNITS - units) * nCanary;
  if (c === 0) return { primary: 1, canary: 1, primaryDown: false, canaryDown: true };
  if (p === 0) return { primary: 1, canary: 1, primaryDown: true, canaryDown: false };
  const g = gcd(c, p);
  return { primary: p / g, canary: c / g, primaryDown: false, canaryDown: false };
}

interface LineOptions {
  weight: number | null;
  down: boolean;
  backup: boolean;
}

function serverLine(s: ServerConfig, pool: Pool, flavor: Flavor, o: LineOptions): ServerLine {
  return {
    pool,
    address: s.server,
    weight: o.weight,
    down: o.down,
    backup: o.backup,
    maxFails: s.maxFails,
    failTimeout: nginxSeconds(s.failTimeoutMs),
    slowStart: flavor === 'plus' && s.slowStartMs !== null ? nginxSeconds(s.slowStartMs) : null,
  };
}

/** Prefix of every rendered upstream zone name: keeps them apart from the operator's own shared zones (nginx refuses a name declared twice for different uses). */
export const ZONE_PREFIX = 'nginx_canary_';

/**
 * Size of an upstream block's shared zone: 64 KiB for every 64 server lines or part of them (64k up to
 * 64 servers, 128k up to 128, …). 64 KiB is the size nginx's docs use in their `zone` example
 * (ngx_http_upstream_module); nginx needs "roughly 500 bytes per upstream server" and refuses a zone
 * under 8 pages (nginx developer Sergey Kandaurov, nginx mailing list, 2022-08), and NGINX's own
 * Gateway Fabric measured 512k holding 648 servers (~810 bytes a server with the zone's overhead). So
 * 1 KiB a server holds with room; the sources are cited in docs/design.md "Rendering".
 *
 * @param servers number of `server` lines in the block, integer ≥ 1.
 * @returns the size in nginx syntax: `64k`, `128k`, …
 */
export function upstreamZoneSize(servers: number): string {
  return `${64 * Math.max(1, Math.ceil(servers / 64))}k`;
}

/** The `upstream` block of `name` holding `servers`, with its zone. */
function upstreamOf(name: string, role: UpstreamRole, servers: ServerLine[]): UpstreamModel {
  return { name, role, zone: { name: `${ZONE_PREFIX}${name}`, size: upstreamZoneSize(servers.length) }, servers };
}

/** The per-pool upstreams every service renders: `<service>_primary` and `<service>_canary` (primary servers as `backup`). */
function poolUpstreams(svc: ServiceConfig, flavor: Flavor): UpstreamModel[] {
  const plain: LineOptions = { weight: null, down: false, backup: false };
  return [
    upstreamOf(
      `${svc.name}_primary`,
      'primary',
      svc.primary.map((s) => serverLine(s, 'primary', flavor, plain)),
    ),
    upstreamOf(`${svc.name}_canary`, 'canary', [
      ...svc.canary.map((s) => serverLine(s, 'canary', flavor, plain)),
      ...svc.primary.map((s) => serverLine(s, 'primary', flavor, { ...plain, backup: true })),
    ]),
  ];
}

/** Splits a validated split key (`$a$b`) into its variable names (`['a', 'b']`). */
function keyVariables(service: string, key: string): string[] {
  const names = key.split('$').slice(1);
  if (!key.startsWith('$') || names.length === 0 || names.some((n) => !/^[a-z_][a-z0-9_]*$/.test(n)))
    throw new RangeError(`service "${service}": split key ${JSON.stringify(key)} is not nginx variables only`);
  return names;
}

/** The override geo block and the route map's source and lines of one service (none without `override`). */
function overrideOf(
  svc: ServiceConfig,
  drained: boolean,
): { geo: OverrideGeoModel | null; source: string[]; overrides: RouteOverride[] } {
  if (svc.override === null) return { geo: null, source: [], overrides: [] };
  const geo: OverrideGeoModel = {
    variable: overrideVariable(svc.name),
    allowed: OVERRIDE_ALLOWED,
    other: OVERRIDE_OTHER,
    allow: [...svc.override.allow],
  };
  const primary = `${svc.name}_primary`;
  const line = (value: OverrideValue, upstream: string): RouteOverride => ({
    value,
    key: `${OVERRIDE_ALLOWED}:${value}`,
    upstream,
  });
  return {
    geo,
    source: [geo.variable, OVERRIDE_SOURCE],
    overrides: [line('always', drained ? primary : `${svc.name}_canary`), line('never', primary)],
  };
}

function serviceOf(svc: ServiceConfig, weightPercent: number, flavor: Flavor, drained: boolean): ServiceModel {
  const units = canaryUnits(weightPercent);
  const primary = `${svc.name}_primary`;
  const canary = `${svc.name}_canary`;
  const { geo, source, overrides } = overrideOf(svc, drained);
  const variable = routeVariable(svc.name);
  if (svc.split === 'split_clients') {
    const splitVar = `${variable}_split`;
    const buckets: SplitBucket[] =
      units === 0
        ? [{ percent: null, upstream: primary }]
        : units === WEIGHT_UNITS
          ? [{ percent: null, upstream: canary }]
          : [
              { percent: units / 10, upstream: canary },
              { percent: null, upstream: primary },
            ];
    return {
      name: svc.name,
      split: svc.split,
      weight: units / 10,
      upstreams: poolUpstreams(svc, flavor),
      splitClients: { key: keyVariables(svc.name, svc.splitKey), variable: splitVar, buckets },
      override: geo,
      drained,
      route: { source, variable, default: { kind: 'variable', name: splitVar }, overrides },
    };
  }
  const w = poolWeights(units, svc.primary.length, svc.canary.length);
  const weighted = upstreamOf(svc.name, 'weighted', [
    ...svc.primary.map((s) =>
      serverLine(s, 'primary', flavor, { weight: w.primary, down: w.primaryDown, backup: false }),
    ),
    ...svc.canary.map((s) => serverLine(s, 'canary', flavor, { weight: w.canary, down: w.canaryDown, backup: false })),
  ]);
  return {
    name: svc.name,
    split: svc.split,
    weight: units / 10,
    upstreams: [weighted, ...poolUpstreams(svc, flavor)],
    splitClients: null,
    override: geo,
    drained,
    route: { source, variable, default: { kind: 'upstream', name: svc.name }, overrides },
  };
}

/** Options of {@link buildModel}. */
export interface BuildOptions {
  /**
   * Services whose canary is drained (the runner's phase `drained`), by name; default none. Their
   * `X-Canary: always` goes to the primary (a drained canary is reachable by no request), and their
   * comment line in the file says `drained`. Order and repeats do not matter; a name that is not a
   * service of the config is ignored (nothing of it is rendered), so a stale name can never block the
   * render that drains.
   */
  drained?: readonly string[];
}

/**
 * Builds the template model.
 *
 * @param config the normalized config (services in file order).
 * @param weights canary weight per service, percent 0–100; a service missing here is rendered at 0 (the safe direction).
 * @param generation integer ≥ 0 rendered into the status server.
 * @param flavor `plus` renders `slow_start=` (on the canary servers, in every upstream they appear in); `oss` leaves it out (open-source nginx rejects it).
 * @param opts `drained`: see {@link BuildOptions}.
 * @throws RangeError on a weight outside 0–100, a weight for an unknown service, a bad generation, an empty pool
 *   or a split key that is not nginx variables only (the config loader refuses both).
 */
export function buildModel(
  config: Config,
  weights: Record<string, number>,
  generation: number,
  flavor: Flavor,
  opts: BuildOptions = {},
): UpstreamsModel {
  if (!Number.isSafeInteger(generation) || generation < 0)
    throw new RangeError(`generation ${generation} is not an integer ≥ 0`);
  const known = new Set(config.services.map((s) => s.name));
  for (const name of Object.keys(weights)) {
    if (!known.has(name)) throw new RangeError(`weight given for "${name}", which is not a service in the config`);
  }
  const drained = new Set(opts.drained ?? []);
  const services = config.services.map((svc) => serviceOf(svc, weights[svc.name] ?? 0, flavor, drained.has(svc.name)));
  return {
    generation,
    flavor,
    weights: Object.fromEntries(services.map((s) => [s.name, s.weight])),
    statusListen: formatListen(config.nginx.statusListen),
    logFormat: LOG_FORMAT,
    logSample: config.nginx.accessLogSample,
    logVariables: { log: LOG_SAMPLE_VARIABLE, sampled: LOG_SAMPLED_VARIABLE },
    keepalive:
      config.nginx.upstreamKeepalive > 0
        ? {
            connections: config.nginx.upstreamKeepalive,
            timeout: `${Math.max(1, Math.round(config.nginx.upstreamKeepaliveTimeoutMs / 1000))}s`,
          }
        : null,
    services,
  };
}

/**
 * The canary share of one service as nginx will split it, percent 0–100:
 * - `weighted`: the canary weight sum over the weight sum of the servers of
 *   `upstream <service>` that are not `down` (share of requests);
 * - `split_clients`: the size of the canary bucket (share of split keys,
 *   i.e. of clients), 0 when there is none, 100 when `*` is the canary.
 * Used by tests to prove the rendered split equals the requested weight.
 *
 * @throws RangeError when the model has no service of that name.
 */
export function canaryShare(model: UpstreamsModel, service: string): number {
  const svc = model.services.find((x) => x.name === service);
  if (!svc) throw new RangeError(`no service "${service}" in the model`);
  if (svc.splitClients) {
    const b = svc.splitClients.buckets.find((x) => x.upstream === `${service}_canary`);
    return b === undefined ? 0 : (b.percent ?? 100);
  }
  const u = svc.upstreams.find((x) => x.role === 'weighted');
  if (!u) throw new RangeError(`service "${service}" has no weighted upstream`);
  let canary = 0;
  let total = 0;
  for (const s of u.servers) {
    if (s.down) continue;
    total += s.weight ?? 1;
    if (s.pool === 'canary') canary += s.weight ?? 1;
  }
  // buildModel never marks both pools down, so total > 0.
  return (canary / total) * 100;
}
