/**
 * Reads the nginx flavor (open source or NGINX Plus) from `nginx -V` output.
 * Pure; `ctl.ts` runs the binary and hands the text here.
 */
import { errors } from '../errors.js';
import type { NginxVersion } from './types.js';

/** `nginx version: nginx/1.22.1` or `nginx version: nginx/1.25.3 (nginx-plus-r31)`. */
const VERSION_LINE = /^nginx version: (?:nginx|openresty|[\w.-]+)\/(\S+)(.*)$/m;

/**
 * Parses the output of `nginx -V` (nginx prints it on stderr; pass stdout and
 * stderr joined). The flavor is `plus` when the version line names
 * "nginx-plus" (that is how NGINX Plus identifies itself, e.g.
 * `nginx/1.25.3 (nginx-plus-r31)`), else `oss`.
 *
 * @param output the text `nginx -V` printed.
 * @param binary named in the error.
 * @returns `{ flavor, version }`, version e.g. `1.22.1` or `1.25.3 (nginx-plus-r31)`.
 * @throws CanaryError NC_NGINX_BINARY when there is no `nginx version:` line (not an nginx binary).
 */
export function parseVersion(output: string, binary = 'nginx'): NginxVersion {
  const m = VERSION_LINE.exec(output);
  if (!m) {
    throw errors.nginxBinary(
      binary,
      new Error(`no "nginx version:" line in its -V output: ${output.trim().slice(0, 200)}`),
    );
  }
  const version = `${String(m[1])}${String(m[2]).trimEnd()}`;
  return { flavor: /nginx-plus/i.test(m[0]) ? 'plus' : 'oss', version };
}
