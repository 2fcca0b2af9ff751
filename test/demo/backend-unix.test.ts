/**
 * The demo backend on a unix-domain socket (README "Backends on unix sockets"): what tests
 * and the demo use as a `server unix:/path;` backend, fault switches included.
 */
import t, { type Test } from 'tap';
import http from 'node:http';
import { link, lstat, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Backend, isStaleSocket } from '../../src/demo/backend.js';

async function socketDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nc-backend-uds-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** GET `p` over the socket; resolves with the status and the `x-backend` header. */
function get(socketPath: string, p: string): Promise<{ status: number; backend: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: p, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, backend: res.headers['x-backend'] }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('no answer in 5 s')));
  });
}

/** A socket file nobody listens on, at `<dir>/<name>`: a hard link to a live socket outlives its listener. */
async function staleSocket(dir: string, name: string): Promise<string> {
  const b = await Backend.start({ name: 'gone', socketPath: path.join(dir, `${name}.live`) });
  await link(path.join(dir, `${name}.live`), path.join(dir, name));
  await b.close();
  return path.join(dir, name);
}

t.test('a backend on a socket: addr unix:/path, any user may connect, traffic and faults', async (t) => {
  const dir = await socketDir(t);
  const socketPath = path.join(dir, 'app.sock');
  const b = await Backend.start({ name: 'app', socketPath, host: '127.0.0.1', port: 18789 });
  t.teardown(() => b.close());
  t.same([b.addr, b.host, b.port, b.socketPath], [`unix:${socketPath}`, '', 0, socketPath], 'host and port ignored');
  const st = await lstat(socketPath);
  t.ok(st.isSocket());
  t.equal(st.mode & 0o777, 0o777, 'readable and writable by every user (nginx workers run as another one)');

  t.same(await get(socketPath, '/x'), { status: 200, backend: 'app' });
  t.same(await get(socketPath, '/ready'), { status: 200, backend: 'app' });
  await b.setFault({ kind: 'status', status: 500 });
  t.same(await get(socketPath, '/x'), { status: 500, backend: 'app' });
  t.same([b.hits, b.errors, b.probes], [2, 1, 1]);
  t.ok(b.connections >= 3, `${b.connections} connections counted`);

  await b.setFault({ kind: 'refuse' });
  await t.rejects(lstat(socketPath), { code: 'ENOENT' }, 'refuse removes the socket file');
  await t.rejects(get(socketPath, '/x'), { code: 'ENOENT' });
  await b.setFault({ kind: 'none' });
  t.same(await get(socketPath, '/x'), { status: 200, backend: 'app' }, 'listening again on the same path');
  t.equal((await lstat(socketPath)).mode & 0o777, 0o777, 'with the same mode');
  await b.close();
  await t.rejects(lstat(socketPath), { code: 'ENOENT' }, 'close removes the socket file');
});

t.test('a stale socket at the path is replaced; a live one is not', async (t) => {
  const dir = await socketDir(t);
  const stale = await staleSocket(dir, 'app.sock');
  t.equal(await isStaleSocket(stale), true);
  const b = await Backend.start({ name: 'app', socketPath: stale });
  t.teardown(() => b.close());
  t.same(await get(stale, '/x'), { status: 200, backend: 'app' }, 'listening where the stale socket was');
  t.equal(await isStaleSocket(stale), false, 'a live socket is not stale');

  await t.rejects(Backend.start({ name: 'second', socketPath: stale }), { code: 'EADDRINUSE' });
  t.same(await get(stale, '/x'), { status: 200, backend: 'app' }, 'the live one keeps its socket');

  const file = path.join(dir, 'plain');
  await writeFile(file, 'not a socket');
  t.equal(await isStaleSocket(file), false, 'a regular file is not a socket');
  await t.rejects(Backend.start({ name: 'x', socketPath: file }), { code: 'EADDRINUSE' }, 'and is never removed');
  t.equal(await isStaleSocket(path.join(dir, 'missing')), false, 'a missing path is not stale');
});
