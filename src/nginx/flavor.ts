/**
 * Reads the nginx flavor (open source or NGINX Plus) from `nginx -V` output.
 * Pure; `ctl.ts` runs the binary and hands the text here.
 */
import { errors } from '../errors.js';
import type { NginxVersion } from './types.js';

/** `nginx version: nginx/1.22.1` or `nginx version: nginx/1.25.3 (nginx-plus-r31)`. */
const VERSION_LINE = /^nginx version: (?:nginx|openresty|[\w.-]+)\/(\S+)(.*)$/m;

/** `--prefix=/usr/share/nginx` among the configure arguments. */
const PREFIX_ARG = /(?:^|\s)--prefix=(\S+)/m;

/** The prefix nginx is built with when `./configure` gets no `--prefix` (nginx docs, "Building nginx from Sources"). */
const DEFAULT_PREFIX = '/usr/local/nginx';

/**
 * Parses the output of `nginx -V` (nginx prints it on stderr; pass stdout and
 * stderr joined). The flavor is `plus` when the version line names
 * "nginx-plus" (that is how NGINX Plus identifies itself, e.g.
 * `nginx/1.25.3 (nginx-plus-r31)`), else `oss`.
 *
 * @param output the text `nginx -V` printed.
 * @param binary named in the error.
 * @returns `{ flavor, version, prefix }`, version e.g. `1.22.1` or `1.25.3 (nginx-plus-r31)`;
 *   prefix the compiled `--prefix` (Debian: `/usr/share/nginx`), `/usr/local/nginx` when none is printed.
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
  const prefix = PREFIX_ARG.exec(output)?.[1] ?? DEFAULT_PREFIX;
  return { flavor: /nginx-plus/i.test(m[0]) ? 'plus' : 'oss', version, prefix };
}
