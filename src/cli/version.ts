/**
 * The version `nginx-canary --version` prints: read at run time from the
 * package.json that ships beside the running code (two levels up from both
 * `src/cli/` and `dist/cli/`), so an installed copy reports what was
 * installed, never a string compiled in.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** package.json at the package root, relative to this file. */
export const PACKAGE_JSON_URL = new URL('../../package.json', import.meta.url);

/**
 * The `version` of the package.json at `url` (default {@link PACKAGE_JSON_URL}).
 * Never throws: every command builds the program that carries the version, so an
 * unreadable file must not break them; it yields `unknown (<file>: <why>)` instead.
 */
export function packageVersion(url: URL = PACKAGE_JSON_URL): string {
  try {
    const pkg = JSON.parse(readFileSync(url, 'utf8')) as { version?: unknown };
    if (typeof pkg.version === 'string' && pkg.version !== '') return pkg.version;
    return `unknown (${fileURLToPath(url)} has no version)`;
  } catch (err) {
    return `unknown (${fileURLToPath(url)}: ${(err as Error).message})`;
  }
}
