/**
 * What `nginx-canary check` says about the `X-Canary: always|never`
 * smoke-test override of each service (README "The X-Canary override"): who may use it. Pure (no
 * I/O); the rendering itself is in model.ts.
 */
import type { Config } from '../config/types.js';

/**
 * One line per service, in config order, saying which clients the
 * `X-Canary` override is honoured from:
 * - `gateway: X-Canary override off (no services.gateway.override)`;
 * - `gateway: X-Canary: always|never honoured from 127.0.0.1, 10.1.2.0/24 only; never to a drained canary`;
 *   an entry with prefix 0 (`0.0.0.0/0`, `::/0`) admits every client of its
 *   address family, and the line says so (`; 0.0.0.0/0 admits every IPv4 client`).
 *
 * The addresses are matched by nginx `geo` against `$remote_addr`
 * (ngx_http_geo_module), so behind a proxy they are the proxy's unless the
 * realip module restores the client's.
 *
 * @param config the normalized config (its `override.allow` entries are validated addresses and CIDRs).
 * @returns one line per service, without a trailing newline. Never throws.
 */
export function describeOverride(config: Config): string[] {
  return config.services.map((s) => {
    if (s.override === null) return `${s.name}: X-Canary override off (no services.${s.name}.override)`;
    const everyone = s.override.allow
      .filter((a) => a.endsWith('/0'))
      .map((a) => `; ${a} admits every IPv${a.includes(':') ? 6 : 4} client`);
    const note = everyone.join('');
    return `${s.name}: X-Canary: always|never honoured from ${s.override.allow.join(', ')} only${note}; never to a drained canary`;
  });
}
