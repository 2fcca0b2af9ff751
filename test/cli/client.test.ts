// The API client (src/cli/client.ts) against a tiny real HTTP server on
// 127.0.0.1:0 that records what it receives and answers per path.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { apiBase, callApi } from '../../src/cli/client.js';
import { CanaryError } from '../../src/errors.js';
import { waitFor } from '../../src/util/wait.js';
import { makeConfig } from '../fixtures/nginx/config.js';
import { freePort } from '../fixtures/nginx/harness.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A server answering by path; every request is recorded in `seen`. */
async function server(t: { teardown(fn: () => unknown): void }): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const send = (status: number, text: string, type = 'application/json'): void => {
        res.writeHead(status, { 'content-type': type });
        res.end(text);
      };
      switch (req.url) {
        case '/ok':
          return send(200, JSON.stringify({ ok: true, n: 3 }));
        case '/missing':
          return send(
            404,
            JSON.stringify({
              code: 'NC_UNKNOWN_SERVICE',
              message: 'no service named "x"',
              fix: 'Use one of the names',
            }),
          );
        case '/bad':
          return send(
            400,
            JSON.stringify({ code: 'NC_BAD_REQUEST', message: 'body/weight must be <= 100', fix: 'See the README' }),
          );
        case '/unauthorized':
          return send(
            401,
            JSON.stringify({ code: 'NC_UNAUTHORIZED', message: 'needs the token', fix: 'Send the bearer' }),
          );
        case '/boom':
          return send(500, 'upstream exploded', 'text/plain');
        case '/empty':
          return send(502, '', 'text/plain');
        case '/json-no-fields':
          return send(503, JSON.stringify({ something: 'else' }));
        case '/hang':
          return undefined; // never answers: only the caller's signal (or the 30 s timeout) ends the call

        default:
          return send(200, JSON.stringify({ echo: true }));
      }
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  return { port: (srv.address() as AddressInfo).port, seen };
}

/** callApi's rejection as a CanaryError (fails the test when it resolves or throws something else). */
async function rejection(p: Promise<unknown>): Promise<CanaryError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CanaryError) return err;
    throw err;
  }
  throw new Error('expected callApi to reject');
}

/** The fields of a CanaryError the CLI prints and exits with, as a plain object (for strictSame). */
function fields(e: CanaryError): Pick<CanaryError, 'code' | 'message' | 'fix' | 'exitCode' | 'statusCode'> {
  return { code: e.code, message: e.message, fix: e.fix, exitCode: e.exitCode, statusCode: e.statusCode };
}

t.test('apiBase', async (t) => {
  const base = (host: string, port = 9464): string =>
    apiBase(makeConfig('/tmp/x', { sidecar: { listen: { host, port } } }));
  t.equal(base('127.0.0.1'), 'http://127.0.0.1:9464');
  t.equal(base('0.0.0.0', 1234), 'http://127.0.0.1:1234', 'the wildcard is reached on loopback');
  t.equal(base('::'), 'http://[::1]:9464', 'the IPv6 wildcard on ::1');
  t.equal(base('::1'), 'http://[::1]:9464', 'IPv6 in brackets');
  t.equal(base('localhost'), 'http://localhost:9464');
});

t.test('answers', async (t) => {
  const { port, seen } = await server(t);
  const config = makeConfig(t.testdir(), { sidecar: { listen: { host: '127.0.0.1', port } } });

  t.test('200 JSON → the parsed body', async (t) => {
    t.same(await callApi(config, 'GET', '/ok'), { ok: true, n: 3 });
    const last = seen.at(-1);
    t.equal(last?.method, 'GET');
    t.equal(last?.headers['content-type'], undefined, 'no body, no content-type');
    t.equal(last?.headers['authorization'], undefined, 'no token configured, no header');
  });

  t.test('an abort signal ends a call the sidecar never answers', async (t) => {
    const ac = new AbortController();
    const started = performance.now();
    const p = rejection(callApi(config, 'GET', '/hang', undefined, { signal: ac.signal }));
    await waitFor(() => seen.some((s) => s.url === '/hang'), {
      timeoutMs: 5000,
      what: 'the request reached the server',
    });
    ac.abort();
    const err = await p;
    t.equal(err.code, 'NC_SIDECAR_UNREACHABLE');
    t.ok(performance.now() - started < 10_000, 'well before the 30 s client timeout');
  });

  t.test('a body is sent as JSON', async (t) => {
    await callApi(config, 'PUT', '/echo', { weight: 60 });
    const last = seen.at(-1);
    t.equal(last?.method, 'PUT');
    t.equal(last?.headers['content-type'], 'application/json');
    t.same(JSON.parse(last?.body ?? ''), { weight: 60 });
  });

  t.test('404 with {code, message, fix} → a CanaryError carrying them, exit 2', async (t) => {
    t.strictSame(fields(await rejection(callApi(config, 'GET', '/missing'))), {
      code: 'NC_UNKNOWN_SERVICE',
      message: 'no service named "x"',
      fix: 'Use one of the names',
      exitCode: 2,
      statusCode: 404,
    });
  });

  t.test('400 → exit 2; 401 → exit 1', async (t) => {
    const bad = await rejection(callApi(config, 'PUT', '/bad', { weight: 101 }));
    t.equal(bad.code, 'NC_BAD_REQUEST');
    t.equal(bad.exitCode, 2);
    const unauth = await rejection(callApi(config, 'POST', '/unauthorized'));
    t.equal(unauth.code, 'NC_UNAUTHORIZED');
    t.equal(unauth.exitCode, 1);
    t.equal(unauth.statusCode, 401);
  });

  t.test('500 with a non-JSON body → NC_API with the text, exit 1', async (t) => {
    t.strictSame(fields(await rejection(callApi(config, 'GET', '/boom'))), {
      code: 'NC_API',
      message: 'upstream exploded',
      fix: 'See the sidecar log',
      exitCode: 1,
      statusCode: 500,
    });
  });

  t.test('an error JSON without the fields → NC_API, "HTTP <status>"', async (t) => {
    const e = await rejection(callApi(config, 'GET', '/json-no-fields'));
    t.equal(e.code, 'NC_API');
    t.equal(e.message, 'HTTP 503');
    t.equal(e.statusCode, 503);
  });

  t.test('an error with an empty body still says something', async (t) => {
    const e = await rejection(callApi(config, 'GET', '/empty'));
    t.equal(e.code, 'NC_API');
    t.equal(e.statusCode, 502);
    t.equal(e.message, 'HTTP 502', 'the status instead of an empty sentence');
  });

  t.test('the bearer token from token_file on every call; a GET goes without it when unreadable', async (t) => {
    const dir = t.testdir();
    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, `${'a1'.repeat(16)}\n`);
    const withToken = makeConfig(dir, { sidecar: { listen: { host: '127.0.0.1', port }, tokenFile } });
    await callApi(withToken, 'POST', '/echo', {});
    t.equal(seen.at(-1)?.headers['authorization'], `Bearer ${'a1'.repeat(16)}`, 'POST: bearer sent, trimmed');
    await callApi(withToken, 'PUT', '/echo', { weight: 1 });
    t.equal(seen.at(-1)?.headers['authorization'], `Bearer ${'a1'.repeat(16)}`, 'PUT: bearer sent');
    await callApi(withToken, 'GET', '/ok');
    t.equal(seen.at(-1)?.headers['authorization'], `Bearer ${'a1'.repeat(16)}`, 'GET: bearer sent too');
    const missing = makeConfig(dir, {
      sidecar: { listen: { host: '127.0.0.1', port }, tokenFile: path.join(dir, 'absent') },
    });
    await callApi(missing, 'GET', '/ok');
    t.equal(seen.at(-1)?.headers['authorization'], undefined, 'GET with an unreadable token file: sent without');
    await rejection(callApi(missing, 'POST', '/echo', {})).catch((err: unknown) => {
      t.match((err as NodeJS.ErrnoException).code, 'ENOENT', 'POST with an unreadable token file: the fs error');
    });
  });
});

t.test('nothing listening → NC_SIDECAR_UNREACHABLE naming the URL', async (t) => {
  const port = await freePort();
  const config = makeConfig(t.testdir(), { sidecar: { listen: { host: '127.0.0.1', port } } });
  const e = await rejection(callApi(config, 'GET', '/api/v1/services'));
  t.equal(e.code, 'NC_SIDECAR_UNREACHABLE');
  t.equal(e.message, `the sidecar does not answer at http://127.0.0.1:${port}`);
  t.match(e.fix, /nginx-canary run/);
  t.equal(e.exitCode, 1);
  t.ok(e.cause instanceof Error, 'the connection error is kept as the cause');
  const post = await rejection(callApi(config, 'POST', '/api/v1/services/gateway/pause'));
  t.equal(post.code, 'NC_SIDECAR_UNREACHABLE');
});
