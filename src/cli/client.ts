/**
 * A small client for the running sidecar's API, used by the CLI commands that
 * act on a live rollout (status, pause, resume, abort, rollback).
 */
import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import type { Config } from '../config/types.js';
import { CanaryError, errors } from '../errors.js';

/** The API base URL for a config, e.g. http://127.0.0.1:9464. */
export function apiBase(config: Config): string {
  const { host, port } = config.sidecar.listen;
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${port}`;
}

/**
 * Calls the API. Returns the parsed JSON body. Throws NC_SIDECAR_UNREACHABLE
 * when nothing answers, or a CanaryError carrying the API's code, message
 * and fix for a non-2xx answer.
 */
export async function callApi(
  config: Config,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  body?: unknown,
): Promise<unknown> {
  const url = `${apiBase(config)}${path}`;
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (config.sidecar.tokenFile !== null && method !== 'GET') {
    headers['authorization'] = `Bearer ${(await readFile(config.sidecar.tokenFile, 'utf8')).trim()}`;
  }
  let res;
  try {
    res = await request(url, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
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
