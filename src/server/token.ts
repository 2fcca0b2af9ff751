/**
 * Who may call the API (README "Security"): loopback clients read freely; a
 * client on any other address, and every mutating call when a token is set,
 * needs `Authorization: Bearer <token>`. The token lives in
 * `sidecar.token_file`, which must not be readable by group or others (the
 * rule ssh applies to private keys). Pure checks plus the one reader of the
 * token file; the composition root (main.ts) and the app (app.ts) call them.
 */
import { constants as fsc } from 'node:fs';
import { open } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { errors, type CanaryError } from '../errors.js';

/** Shortest token accepted, characters (a chosen floor: 16 random hex characters are 64 bits). */
export const MIN_TOKEN_LENGTH = 16;

/** Largest token file read, bytes (a chosen bound: a token is one line; this stops a mistaken path to a big file). */
export const MAX_TOKEN_FILE_BYTES = 4096;

/**
 * True for a loopback IP literal: IPv4 127.0.0.0/8, IPv6 `::1` in any
 * spelling, and IPv4-mapped `::ffff:127.x.y.z` (what a dual-stack socket
 * reports for an IPv4 loopback client). Anything else — `0.0.0.0`, `::`,
 * a hostname (even `localhost`: only an address can be checked), an IPv6
 * zone, undefined (a socket already closed) — is false.
 *
 * @param addr `req.socket.remoteAddress`, or a `sidecar.listen` host.
 */
export function isLoopbackAddress(addr: string | null | undefined): boolean {
  if (typeof addr !== 'string') return false;
  if (isIPv4(addr)) return addr.startsWith('127.');
  if (!isIPv6(addr) || addr.includes('%')) return false;
  // The WHATWG URL parser canonicalizes IPv6: `0:0:0:0:0:0:0:1` → `::1`, `::ffff:127.0.0.1` → `::ffff:7f00:1`.
  const canonical = new URL(`http://[${addr}]/`).hostname;
  return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}

/**
 * Refuses a `sidecar.listen` that is not a loopback address when no token
 * file is set: without a token the API would let anyone on the network pause,
 * abort, retarget or roll back the canary.
 *
 * @param listen the parsed `sidecar.listen` (`host` without brackets).
 * @param tokenFile `sidecar.token_file`, absolute, or null.
 * @throws CanaryError NC_LISTEN_NO_TOKEN (exit 2) naming the address and both ways out.
 */
export function checkListenToken(listen: { host: string; port: number }, tokenFile: string | null): void {
  if (tokenFile !== null || isLoopbackAddress(listen.host)) return;
  const at = listen.host.includes(':') ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}`;
  throw errors.listenNoToken(at, listen.port);
}

/**
 * Refuses a token file that group or others may read or write
 * (`mode & 0o077`), like ssh refuses such a private key.
 *
 * @param mode `stat.mode` of the token file (file type bits are ignored).
 * @param file its path, named in the message and the fix.
 * @throws CanaryError NC_TOKEN_FILE_MODE whose fix is `chmod 600 <file>`.
 */
export function checkTokenFileMode(mode: number, file: string): void {
  const perm = mode & 0o777;
  if ((perm & 0o077) === 0) return;
  throw errors.tokenFileMode(file, perm);
}

/**
 * Reads the bearer token from `file`: opens it once (no symlink race between
 * the checks and the read), checks it is a regular file of at most
 * {@link MAX_TOKEN_FILE_BYTES} with mode 0600 or stricter
 * ({@link checkTokenFileMode}), and returns its contents trimmed of
 * surrounding whitespace.
 *
 * @returns the token, at least {@link MIN_TOKEN_LENGTH} characters.
 * @throws CanaryError NC_TOKEN_FILE_MODE for a group/other-accessible file; NC_TOKEN_FILE (fix: write a random
 *   token of at least 16 characters) when it cannot be opened, is not a regular file, is too big or too short.
 */
export async function readTokenFile(file: string): Promise<string> {
  const unusable = (why: string, cause?: unknown): CanaryError => errors.tokenFile(file, why, MIN_TOKEN_LENGTH, cause);
  let fh;
  try {
    fh = await open(file, fsc.O_RDONLY | fsc.O_NOCTTY | fsc.O_NONBLOCK);
  } catch (err) {
    throw unusable((err as Error).message, err);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw unusable('not a regular file');
    checkTokenFileMode(st.mode, file);
    if (st.size > MAX_TOKEN_FILE_BYTES) throw unusable(`larger than ${MAX_TOKEN_FILE_BYTES} bytes`);
    const token = (await fh.readFile('utf8')).trim();
    if (token.length < MIN_TOKEN_LENGTH) throw unusable(`shorter than ${MIN_TOKEN_LENGTH} characters`);
    return token;
  } finally {
    await fh.close();
  }
}
