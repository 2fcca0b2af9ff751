/**
 * Probes of `unix:/path` servers (README "Backends on unix sockets"): /health and /ready over
 * the socket, one new connection per probe, connect and total timed
 * separately; a missing socket file or a socket nobody listens on fails the
 * probe like a refused TCP connect. Real HTTP servers on sockets in a temp dir.
 */
import t, { type Test } from 'tap';
import http from 'node:http';
import { link, mkdtemp, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Backend } from '../../src/demo/backend.js';
import { Prober, probe, type ProbeReport } from '../../src/probe/prober.js';
import { waitFor } from '../../src/util/wait.js';
import { probeConfigFor } from '../fixtures/probe/config.js';

/** A fresh temp dir for sockets, removed at teardown. */
async function socketDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nc-probe-uds-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A demo backend on `<dir>/<name>.sock`, closed at teardown. */
async function backend(t: Test, dir: string, name: string, ready = true): Promise<Backend> {
  const b = await Backend.start({ name, socketPath: path.join(dir, `${name}.sock`), ready });
  t.teardown(() => b.close());
  return b;
}

t.test('unix-socket servers: health and ready over the socket, one connection each, connect ≤ total', async (t) => {
  const dir = await socketDir(t);
  const primary = await backend(t, dir, 'primary');
  const canary = await backend(t, dir, 'canary', false);
  const tcp = await Backend.start({ name: 'tcp' });
  t.teardown(() => tcp.close());
  const config = probeConfigFor([primary.addr, tcp.addr], [canary.addr]);
  t.same(
    config.services[0]?.primary.map((s) => s.socketPath),
    [path.join(dir, 'primary.sock'), null],
  );
  const reports: ProbeReport[] = [];
  const p = new Prober(config, { onResult: (r) => reports.push(r) });
  t.teardown(() => p.stop());
  const rounds = 5;
  for (let i = 0; i < rounds; i++) await p.probeOnce();

  for (const b of [primary, canary, tcp]) {
    t.equal(b.probes, rounds * 2, `${b.name}: health + ready per round`);
    t.equal(b.connections, b.probes, `${b.name}: one new connection per probe`);
  }
  await t.resolves(
    waitFor(() => primary.openConnections + canary.openConnections === 0, { what: 'probe sockets closed' }),
    'every probe connection closed',
  );
  const unix = reports.filter((r) => r.server.startsWith('unix:'));
  t.equal(unix.length, rounds * 4);
  t.ok(
    unix.every((r) => r.status === 200 || (r.server === canary.addr && r.kind === 'ready' && r.status === 503)),
    'answers came from the backends: 200, and 503 from the canary that is not ready',
  );
  t.ok(
    unix.every((r) => r.connectMs !== null && r.totalMs !== null && r.connectMs > 0 && r.connectMs <= r.totalMs),
    'connect measured and ≤ total',
  );
  const obs = p.observations(config, Date.now()).gateway!;
  t.equal(obs.primary.probes, rounds * 2, 'both primary servers, unix and TCP');
  t.equal(obs.primary.failures, 0);
  t.equal(obs.canary.ready, false);
  t.equal(obs.canary.healthy, true);
  t.ok(
    obs.canary.connectP95Ms !== null && obs.canary.connectP95Ms > 0,
    `canary connect p95 ${obs.canary.connectP95Ms}`,
  );
  t.ok((obs.canary.totalP95Ms as number) >= (obs.canary.connectP95Ms as number));
});

t.test('the request over a socket: GET path, Host localhost, and the connection closed after it', async (t) => {
  const dir = await socketDir(t);
  const seen: { url?: string; host?: string; connection?: string; ua?: string }[] = [];
  const srv = http.createServer((req, res) => {
    seen.push({
      url: req.url,
      host: req.headers.host,
      connection: req.headers.connection,
      ua: req.headers['user-agent'],
    });
    res.end('ok\n');
  });
  const sockets = new Set<Socket>();
  srv.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const socketPath = path.join(dir, 'raw.sock');
  await new Promise<void>((resolve) => srv.listen(socketPath, resolve));
  t.teardown(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  const r = await probe({ host: '', port: 0, socketPath }, { kind: 'health', path: '/-/healthy', timeoutMs: 1000 });
  t.match(r, { ok: true, status: 200, connectMs: Number, totalMs: Number });
  t.equal(r.error, undefined);
  t.same(seen, [{ url: '/-/healthy', host: 'localhost', connection: 'keep-alive', ua: 'nginx-canary-probe' }]);
  await t.resolves(waitFor(() => sockets.size === 0, { what: 'the probe connection closed' }));
});

t.test('a missing socket file and a socket nobody listens on fail like a refused connect', async (t) => {
  const dir = await socketDir(t);
  const missing = path.join(dir, 'missing.sock');
  const gone = await Backend.start({ name: 'gone', socketPath: path.join(dir, 'gone.sock') });
  await link(path.join(dir, 'gone.sock'), path.join(dir, 'stale.sock'));
  await gone.close();
  const stale = path.join(dir, 'stale.sock');
  const failed = { ok: false, status: null, connectMs: null, totalMs: null };
  t.match(
    await probe({ host: '', port: 0, socketPath: missing }, { kind: 'health', path: '/health', timeoutMs: 500 }),
    {
      ...failed,
      kind: 'health',
      error: 'ENOENT',
    },
  );
  t.match(await probe({ host: '', port: 0, socketPath: stale }, { kind: 'ready', path: '/ready', timeoutMs: 500 }), {
    ...failed,
    kind: 'ready',
    error: 'ECONNREFUSED',
  });

  const config = probeConfigFor([], [`unix:${missing}`, `unix:${stale}`]);
  const reports: ProbeReport[] = [];
  const p = new Prober(config, { onResult: (r) => reports.push(r) });
  t.teardown(() => p.stop());
  await p.probeOnce();
  t.same(reports.map((r) => [r.server, r.kind, r.error]).sort(), [
    [`unix:${missing}`, 'health', 'ENOENT'],
    [`unix:${missing}`, 'ready', 'ENOENT'],
    [`unix:${stale}`, 'health', 'ECONNREFUSED'],
    [`unix:${stale}`, 'ready', 'ECONNREFUSED'],
  ]);
  const o = p.observations(config, Date.now()).gateway!.canary;
  t.equal(o.failures, 2);
  t.equal(o.healthy, false);
  t.equal(o.ready, false);
  t.equal(o.connectP95Ms, null, 'no connected probe, no connect sample');
});

t.test('a backend that stops listening removes its socket; probes fail, then recover', async (t) => {
  const dir = await socketDir(t);
  const b = await backend(t, dir, 'canary');
  const config = probeConfigFor([], [b.addr]);
  const p = new Prober(config);
  t.teardown(() => p.stop());
  await p.probeOnce();
  t.equal(p.observations(config, Date.now()).gateway!.canary.healthy, true);
  await b.setFault({ kind: 'refuse' });
  const down = await probe(b, { kind: 'health', path: '/health', timeoutMs: 500 });
  t.equal(down.error, 'ENOENT', 'the socket file is gone');
  await p.probeOnce();
  t.equal(p.observations(config, Date.now()).gateway!.canary.healthy, false);
  await b.setFault({ kind: 'none' });
  await p.probeOnce();
  const o = p.observations(config, Date.now()).gateway!.canary;
  t.equal(o.healthy, true, 'listening again: healthy');
  t.equal(o.downTransitions, 1);
});

t.test('a socket server that never answers fails at probe.timeout, connected', async (t) => {
  const dir = await socketDir(t);
  const b = await backend(t, dir, 'slow');
  await b.setFault({ kind: 'delay', ms: 10_000 });
  const t0 = performance.now();
  const r = await probe(b, { kind: 'health', path: '/health', timeoutMs: 150 });
  const elapsed = performance.now() - t0;
  t.match(r, { ok: false, error: 'timeout', status: null, connectMs: Number, totalMs: null });
  t.ok(elapsed >= 149 && elapsed < 1150, `failed after ${elapsed.toFixed(1)} ms`);
  await t.resolves(waitFor(() => b.openConnections === 0, { what: 'the timed-out socket closed' }));
});
