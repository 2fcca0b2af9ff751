/**
 * Pure attribution of an upstream attempt to the service, pool and server it
 * hit, by the address nginx logged in `$upstream_addr` (docs/design.md
 * "Observations": each attempt is attributed to the server and pool it hit).
 *
 * nginx logs the address it connected to, not the name written in the
 * config: `127.0.0.1:18890`, IPv6 as `[::1]:18890` (compressed, lower case),
 * a unix socket as `unix:/path` exactly as written in the config (nginx
 * logs the socket's name, not a resolved address). So each configured server
 * is indexed under every form nginx can log for it:
 * - the `server` string as written (for a `unix:` server, the only form);
 * - `host:port` with the host normalized (IPv4 dotted quad, IPv6 in brackets
 *   compressed — `[0:0::1]` → `[::1]` — hostnames lower-cased);
 * - for `localhost`, `127.0.0.1:port` and `[::1]:port` (what nginx resolves it to);
 * - for other hostnames, the addresses the caller resolved
 *   ({@link AttributionOptions.resolved}); this module does no DNS.
 *
 * An address that is none of these — notably an upstream name (`gateway`,
 * `gateway_canary`…), which nginx logs when every server of the upstream is
 * marked failed and none was tried — is not attributed (null).
 *
 * `$proxy_host` is the upstream the route map chose (src/nginx/model.ts):
 * `<service>` (weighted split), `<service>_primary` or `<service>_canary`
 * (split_clients, or the `X-Canary` override in either mode). It only picks
 * the service when an address is shared by services; the pool always comes
 * from the address, so a primary server tried as `backup` inside
 * `<service>_canary` counts for the primary.
 */
import type { Config, Pool, ServerConfig } from '../config/types.js';
import type { Attribution } from './types.js';

/** An attribution plus the configured server (its `server` string, the window key). */
export interface ServerAttribution extends Attribution {
  /** The server as written in weights.yaml (`ServerConfig.server`). */
  server: string;
}

/** Options of {@link buildAttribution}. */
export interface AttributionOptions {
  /**
   * Hostname → IP addresses it resolves to (IPv6 without brackets), for
   * servers written by name. Resolved by the caller (I/O); default none.
   * `localhost` always maps to 127.0.0.1 and ::1.
   */
  resolved?: Readonly<Record<string, readonly string[]>>;
}

/** The lookup table built from a Config. Immutable once built. */
export class AttributionMap {
  readonly #byAddr: Map<string, ServerAttribution[]>;
  /** The ASCII addresses by {@link rangeHash}, as bytes, for {@link serversInBytes}. */
  readonly #byHash = new Map<number, { addr: Uint8Array; list: ServerAttribution[] }[]>();
  /** Logged addresses that more than one configured server claims (resolved by upstream name, else unattributed). */
  readonly conflicts: readonly string[];
  /** Every configured server, in config order (services, then primary before canary). */
  readonly servers: readonly ServerAttribution[];

  /** Use {@link buildAttribution}. */
  constructor(byAddr: Map<string, ServerAttribution[]>, servers: readonly ServerAttribution[]) {
    this.#byAddr = byAddr;
    this.servers = servers;
    this.conflicts = [...byAddr].filter(([, list]) => list.length > 1).map(([addr]) => addr);
    for (const [addr, list] of byAddr) {
      // A non-ASCII address (a unix socket path) never meets the byte path: the cursor leaves such lines to parseLine.
      const bytes = Buffer.from(addr, 'utf8');
      if (bytes.length !== addr.length) continue;
      const h = rangeHash(bytes, 0, bytes.length);
      const bucket = this.#byHash.get(h);
      if (bucket === undefined) this.#byHash.set(h, [{ addr: bytes, list }]);
      else bucket.push({ addr: bytes, list });
    }
  }

  /** Number of distinct logged addresses indexed. */
  get size(): number {
    return this.#byAddr.size;
  }

  /**
   * Every configured server whose logged address is the ASCII `buf[start, end)`, or undefined when none:
   * the list {@link attribute} picks from, found without making a string (the hot path of aggregate.ts).
   * A list of one is the attribution; with more, ask {@link attribute} with the upstream. Never throws.
   */
  serversInBytes(buf: Uint8Array, start: number, end: number): readonly ServerAttribution[] | undefined {
    const bucket = this.#byHash.get(rangeHash(buf, start, end));
    if (bucket === undefined) return undefined;
    const n = end - start;
    for (const e of bucket) {
      const a = e.addr;
      if (a.length !== n) continue;
      let i = 0;
      while (i < n && a[i] === buf[start + i]) i++;
      if (i === n) return e.list;
    }
    return undefined;
  }

  /**
   * The server an attempt to `addr` (as in `$upstream_addr`) hit, or null when
   * no configured server has that address. When several servers of different
   * services share the address, `upstream` (`$proxy_host`: `<service>`,
   * `<service>_primary` or `<service>_canary`) picks the service; if it
   * cannot, null.
   */
  attribute(addr: string, upstream?: string): ServerAttribution | null {
    const list = this.#byAddr.get(addr);
    if (list === undefined) return null;
    if (list.length === 1) return list[0] as ServerAttribution;
    if (upstream === undefined) return null;
    const service = serviceOfUpstream(upstream);
    const hits = list.filter((a) => a.service === upstream || a.service === service);
    return hits.length === 1 ? (hits[0] as ServerAttribution) : null;
  }
}

/** Builds the attribution table of every server of every service. Pure; never throws. */
export function buildAttribution(config: Pick<Config, 'services'>, opts: AttributionOptions = {}): AttributionMap {
  const byAddr = new Map<string, ServerAttribution[]>();
  const servers: ServerAttribution[] = [];
  for (const svc of config.services) {
    const pools: [Pool, ServerConfig[]][] = [
      ['primary', svc.primary],
      ['canary', svc.canary],
    ];
    for (const [pool, list] of pools) {
      for (const s of list) {
        const att: ServerAttribution = { service: svc.name, pool, server: s.server };
        servers.push(att);
        for (const key of loggedAddresses(s, opts.resolved)) {
          const have = byAddr.get(key);
          if (have === undefined) byAddr.set(key, [att]);
          else if (!have.includes(att)) have.push(att);
        }
      }
    }
  }
  return new AttributionMap(byAddr, servers);
}

/**
 * Every `$upstream_addr` form nginx can log for one server (see the module
 * comment), without duplicates: for a unix-socket server only `unix:/path`
 * as written (a path is case-sensitive and has no other form).
 */
export function loggedAddresses(s: ServerConfig, resolved?: Readonly<Record<string, readonly string[]>>): string[] {
  if (s.socketPath !== null) return [s.server];
  const keys = new Set<string>([s.server]);
  const host = normalizeHost(s.host);
  keys.add(hostPort(host, s.port));
  const ips = host === 'localhost' ? ['127.0.0.1', '::1'] : (resolved?.[host] ?? resolved?.[s.host] ?? []);
  for (const ip of ips) keys.add(hostPort(normalizeHost(ip), s.port));
  return [...keys];
}

/** `host:port`, bracketing an IPv6 host as nginx logs it. */
function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Normalizes a host the way nginx prints a resolved address: IPv6 compressed
 * and lower-cased (returned without brackets), IPv4 and names through the
 * WHATWG URL host parser (lower case, `127.1` → `127.0.0.1`). A host the
 * URL parser rejects is returned unchanged.
 */
export function normalizeHost(host: string): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  try {
    const h = new URL(bare.includes(':') ? `http://[${bare}]/` : `http://${bare}/`).hostname;
    return h.startsWith('[') ? h.slice(1, -1) : h;
  } catch {
    return bare;
  }
}

/**
 * A 32-bit hash of the bytes `b[start, end)` (multiplier 31, as Java's String.hashCode), for
 * {@link AttributionMap.serversInBytes}: equal ranges hash equal; collisions are resolved by comparing.
 */
function rangeHash(b: Uint8Array, start: number, end: number): number {
  let h = 0;
  for (let i = start; i < end; i++) h = (Math.imul(h, 31) + (b[i] as number)) | 0;
  return h;
}

/** The service an upstream name belongs to: `gateway`, `gateway_primary` and `gateway_canary` → `gateway`. */
export function serviceOfUpstream(upstream: string): string {
  if (upstream.endsWith('_primary')) return upstream.slice(0, -'_primary'.length);
  if (upstream.endsWith('_canary')) return upstream.slice(0, -'_canary'.length);
  return upstream;
}
