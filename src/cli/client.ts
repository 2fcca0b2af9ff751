/**
 * A small client for the running sidecar's API, used by the CLI commands that
 * act on a live rollout (status, pause, resume, abort, rollback).
 */
import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import type { Config } from '../config/types.js';
import { CanaryError, errors } from '../errors.js';

/**
 * The API base URL for a config (sidecar.listen), e.g. http://127.0.0.1:9464:
 * a wildcard listen address is reached on loopback (`0.0.0.0` → 127.0.0.1,
 * `::` → [::1]) and any other IPv6 host is bracketed. Never throws.
 */
export function apiBase(config: Config): string {
  const { host, port } = config.sidecar.listen;
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${port}`;
}

/**
 * Calls the API at `path` (e.g. `/api/v1/services`) with `body` sent as
 * JSON, and the bearer token from sidecar.token_file on every call but GET.
 * Header and body timeouts are 30 000 ms each (a chosen bound, not a
 * runbook number). Returns the parsed JSON body, or `{ message: <text> }` when the body
 * is not JSON. `opts.signal` aborts the request (the watch view's Ctrl-C),
 * which then throws like an unreachable sidecar.
 *
 * @throws CanaryError NC_SIDECAR_UNREACHABLE when the request fails (nothing listens, or no headers
 *   within 30 s); a CanaryError with the API's code (NC_API when it sent none), message and fix for a
 *   status ≥ 300 (exit code 2 for 400 and 404, else 1); on a mutating call, the fs error when the token file cannot be
 *   read; undici's error when the body stalls past 30 s.
 */
export async function callApi(
  config: Config,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  body?: unknown,
  opts: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<unknown> {
  const url = `${apiBase(config)}${path}`;
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (config.sidecar.tokenFile !== null) {
    // Mutating calls need the token; a read sends it when this user can read the file (a read from
    // a non-loopback address needs it, from loopback it is optional).
    const token =
      method === 'GET'
        ? await readFile(config.sidecar.tokenFile, 'utf8').catch(() => null)
        : await readFile(config.sidecar.tokenFile, 'utf8');
    if (token !== null) headers['authorization'] = `Bearer ${token.trim()}`;
  }
  let res;
  try {
    res = await request(url, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      headersTimeout: opts.timeoutMs ?? 30_000,
      bodyTimeout: opts.timeoutMs ?? 30_000,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (err) {
    throw errors.sidecarUnreachable(apiBase(config), err);
  }
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = { message: text };
  }
  if (res.statusCode >= 300) {
    const j = (json ?? {}) as { code?: string; message?: string; fix?: string };
    throw new CanaryError(j.code ?? 'NC_API', j.message || `HTTP ${res.statusCode}`, {
      fix: j.fix ?? 'See the sidecar log',
      exitCode: res.statusCode === 400 || res.statusCode === 404 ? 2 : 1,
      statusCode: res.statusCode,
    });
  }
  return json;
}
