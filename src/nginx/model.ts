/**
 * The template model: config + canary weights + generation → the values the
 * include file shows. Pure (no I/O, no clock); `render.ts` prints it.
 *
 * Weighted split (design.md "Rendering"): one `upstream <service>` per service
 * holding both pools; every server gets an integer `weight=` such that the
 * canary pool's share of the weight sum is the canary weight to 0.1 %.
 */
import type { Config, ListenAddress, Pool, ServerConfig, ServiceConfig, SplitMode } from '../config/types.js';
import type { Flavor } from './types.js';

/** Weight units per 100 % (0.1 % resolution, design.md "weights are scaled so 0.1 % is representable"). */
export const WEIGHT_UNITS = 1000;

/** One `server` line of an upstream. */
export interface ServerLine {
  pool: Pool;
  /** `host:port` as written in weights.yaml (IPv6 as `[::1]:18890`). */
  address: string;
  /** nginx `weight=`, an integer ≥ 1 (nginx rejects 0; a pool at 0 % is `down` instead). */
  weight: number;
  /** True when the server's pool is at 0 %: rendered `down` (kept in the file, takes no traffic). */
  down: boolean;
  /** nginx `max_fails=`. */
  maxFails: number;
  /** nginx `fail_timeout=` in nginx time syntax, whole seconds (e.g. `20s`); see {@link nginxSeconds}. */
  failTimeout: string;
  /** nginx Plus `slow_start=` (e.g. `30s`), or null: only set when the flavor is `plus` and the server has one. */
  slowStart: string | null;
}

/** One `upstream` block. */
export interface UpstreamModel {
  /** Upstream name = service name (`[a-z][a-z0-9_]*`). */
  name: string;
  /** The service's split mode. This release renders every service as `weighted`. */
  split: SplitMode;
  /** Canary weight, percent 0–100 rounded to 0.1. */
  weight: number;
  servers: ServerLine[];
}

/** Everything the include file shows. */
export interface UpstreamsModel {
  /** Counter rendered into the status server so a reload can be proven live. */
  generation: number;
  flavor: Flavor;
  /** Canary weight per service, percent 0–100 rounded to 0.1 (also in the header comment). */
  weights: Record<string, number>;
  /** `host:port` of the loopback status server (`[v6]:port` for IPv6). */
  statusListen: string;
  /** The access log format name the template defines (nginx.conf refers to it). */
  logFormat: 'nginx_canary';
  upstreams: UpstreamModel[];
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

/** `host:port`, brackets around an IPv6 host (ListenAddress holds it without). */
export function formatListen(addr: ListenAddress): string {
  return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

/**
 * Canary weight percent → canary units of {@link WEIGHT_UNITS} (0.1 % each).
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

function serverLine(s: ServerConfig, pool: Pool, weight: number, down: boolean, flavor: Flavor): ServerLine {
  return {
    pool,
    address: s.server,
    weight,
    down,
    maxFails: s.maxFails,
    failTimeout: nginxSeconds(s.failTimeoutMs),
    slowStart: flavor === 'plus' && s.slowStartMs !== null ? nginxSeconds(s.slowStartMs) : null,
  };
}

function upstreamOf(svc: ServiceConfig, weightPercent: number, flavor: Flavor): UpstreamModel {
  const units = canaryUnits(weightPercent);
  const w = poolWeights(units, svc.primary.length, svc.canary.length);
  return {
    name: svc.name,
    split: svc.split,
    weight: units / 10,
    servers: [
      ...svc.primary.map((s) => serverLine(s, 'primary', w.primary, w.primaryDown, flavor)),
      ...svc.canary.map((s) => serverLine(s, 'canary', w.canary, w.canaryDown, flavor)),
    ],
  };
}

/**
 * Builds the template model.
 *
 * @param config the normalized config (services in file order).
 * @param weights canary weight per service, percent 0–100; a service missing here is rendered at 0 (the safe direction).
 * @param generation integer ≥ 0 rendered into the status server.
 * @param flavor `plus` renders `slow_start=`; `oss` leaves it out (open-source nginx rejects it).
 * @throws RangeError on a weight outside 0–100, a weight for an unknown service, a bad generation or an empty pool.
 */
export function buildModel(
  config: Config,
  weights: Record<string, number>,
  generation: number,
  flavor: Flavor,
): UpstreamsModel {
  if (!Number.isSafeInteger(generation) || generation < 0)
    throw new RangeError(`generation ${generation} is not an integer ≥ 0`);
  const known = new Set(config.services.map((s) => s.name));
  for (const name of Object.keys(weights)) {
    if (!known.has(name)) throw new RangeError(`weight given for "${name}", which is not a service in the config`);
  }
  const upstreams = config.services.map((svc) => upstreamOf(svc, weights[svc.name] ?? 0, flavor));
  return {
    generation,
    flavor,
    weights: Object.fromEntries(upstreams.map((u) => [u.name, u.weight])),
    statusListen: formatListen(config.nginx.statusListen),
    logFormat: 'nginx_canary',
    upstreams,
  };
}

/**
 * The canary share of one upstream as nginx will split it: canary weight sum
 * over the weight sum of servers not `down`, percent 0–100. Used by tests to
 * prove the rendered ratio equals the requested weight.
 *
 * @throws RangeError when the model has no upstream of that name.
 */
export function canaryShare(model: UpstreamsModel, service: string): number {
  const u = model.upstreams.find((x) => x.name === service);
  if (!u) throw new RangeError(`no upstream "${service}" in the model`);
  let canary = 0;
  let total = 0;
  for (const s of u.servers) {
    if (s.down) continue;
    total += s.weight;
    if (s.pool === 'canary') canary += s.weight;
  }
  // buildModel never marks both pools down, so total > 0.
  return (canary / total) * 100;
}
