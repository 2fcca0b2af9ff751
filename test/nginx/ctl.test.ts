import t from 'tap';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MockAgent } from 'undici';
import { NginxCommand } from '../../src/nginx/ctl.js';
import { CanaryError } from '../../src/errors.js';
import { spawn } from 'node:child_process';
import { freePort, nginxChildren, startTestNginx, tempDir } from '../fixtures/nginx/harness.js';
import { waitFor } from '../../src/util/wait.js';

async function dir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const d = await tempDir();
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

t.test('version() reads the real binary', async (t) => {
  const v = await new NginxCommand({
    binary: 'nginx',
    conf: '/nonexistent.conf',
    prefix: null,
    statusListen: { host: '127.0.0.1', port: 1 },
  }).version();
  t.equal(v.flavor, 'oss', 'Debian nginx is open source');
  t.match(v.version, /^\d+\.\d+\.\d+/);
});

t.test('a binary that cannot run is NC_NGINX_BINARY for every command', async (t) => {
  const ctl = new NginxCommand({
    binary: '/nonexistent/nginx',
    conf: '/x.conf',
    prefix: null,
    statusListen: { host: '127.0.0.1', port: 1 },
  });
  for (const run of [() => ctl.version(), () => ctl.test(), () => ctl.reload()]) {
    await t.rejects(
      run().then(() => undefined),
      { code: 'NC_NGINX_BINARY' },
    );
  }
});

t.test('a binary that exits non-zero on -V is NC_NGINX_BINARY', async (t) => {
  const d = await dir(t);
  const fake = path.join(d, 'fake-nginx');
  await writeFile(fake, '#!/bin/sh\necho "not nginx" >&2\nexit 3\n');
  await chmod(fake, 0o755);
  const err = await new NginxCommand({
    binary: fake,
    conf: '/x.conf',
    prefix: null,
    statusListen: { host: '127.0.0.1', port: 1 },
  })
    .version()
    .catch((e: unknown) => e);
  t.ok(err instanceof CanaryError);
  t.equal((err as CanaryError).code, 'NC_NGINX_BINARY');
});

t.test('test() reports nginx -t with -p and -c, and never throws for a failing config', async (t) => {
  const d = await dir(t);
  const conf = path.join(d, 'nginx.conf');
  await writeFile(conf, 'pid nginx.pid;\nerror_log stderr;\nevents {}\nhttp {}\n');
  const ctl = new NginxCommand({ binary: 'nginx', conf, prefix: d, statusListen: { host: '127.0.0.1', port: 1 } });
  const good = await ctl.test();
  t.ok(good.ok, good.output);
  t.match(good.output, `${conf} test is successful`);
  await writeFile(conf, 'events {}\nhttp { garbage; }\n');
  const bad = await ctl.test();
  t.notOk(bad.ok);
  t.match(bad.output, /unknown directive "garbage" in .*nginx\.conf:2/);
  const other = await ctl.test(path.join(d, 'missing.conf'));
  t.notOk(other.ok, 'an explicit conf argument is used');
  t.match(other.output, 'missing.conf');
});

t.test('a command past its timeout is killed and reported', async (t) => {
  const d = await dir(t);
  const slow = path.join(d, 'slow-nginx');
  await writeFile(slow, '#!/bin/sh\nexec sleep 5\n');
  await chmod(slow, 0o755);
  const ctl = new NginxCommand(
    { binary: slow, conf: '/x.conf', prefix: null, statusListen: { host: '127.0.0.1', port: 1 } },
    { commandTimeoutMs: 100 },
  );
  const t0 = performance.now();
  const r = await ctl.test();
  t.notOk(r.ok);
  t.match(r.output, 'timed out after 100 ms');
  t.ok(performance.now() - t0 < 3000, 'did not wait for the child');
  t.throws(
    () =>
      new NginxCommand(
        { binary: slow, conf: '/x.conf', prefix: null, statusListen: { host: '127.0.0.1', port: 1 } },
        { commandTimeoutMs: 0 },
      ),
    RangeError,
  );
});

t.test('reload() with no nginx running is NC_RELOAD_FAILED with nginx stderr', async (t) => {
  const d = await dir(t);
  const conf = path.join(d, 'nginx.conf');
  await writeFile(conf, 'pid nginx.pid;\nerror_log stderr;\nevents {}\nhttp {}\n');
  const ctl = new NginxCommand({ binary: 'nginx', conf, prefix: d, statusListen: { host: '127.0.0.1', port: 1 } });
  await t.rejects(ctl.reload(), { code: 'NC_RELOAD_FAILED', message: /nginx\.pid/ });
});

t.test('reload() signals the running master itself: no nginx process is spawned for it', async (t) => {
  const h = await startTestNginx(t);
  const d = await dir(t);
  // A binary that cannot reload: were `nginx -s reload` run, reload() would reject (exit 4) and leave a mark.
  const ran = path.join(d, 'ran');
  const fake = path.join(d, 'fake-nginx');
  await writeFile(fake, `#!/bin/sh\necho "$@" >> ${ran}\nexit 4\n`);
  await chmod(fake, 0o755);
  const before = (await nginxChildren(h.nginx.pid)).map((c) => c.pid);
  await new NginxCommand({ ...h.config.nginx, binary: fake }).reload();
  const fresh = await waitFor(
    async () => {
      const now = await nginxChildren(h.nginx.pid);
      const started = now.filter((c) => c.title === 'nginx: worker process' && !before.includes(c.pid));
      return started.length > 0 ? started : null;
    },
    { what: 'a worker started by the reload' },
  );
  t.ok(fresh.length > 0, 'the master started new workers: it got SIGHUP');
  await t.rejects(readFile(ran, 'utf8'), { code: 'ENOENT' }, 'the nginx binary was not run');
});

t.test('reload() runs nginx -s reload when the pid file names no nginx master (stale pid, reused)', async (t) => {
  const d = await dir(t);
  // A live process that is not nginx holds the pid the pid file names: it must not get SIGHUP.
  const other = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => other.kill('SIGKILL'));
  const pid = other.pid;
  if (pid === undefined) throw new Error('sleep did not start');
  await writeFile(path.join(d, 'nginx.pid'), `${pid}\n`);
  const conf = path.join(d, 'nginx.conf');
  await writeFile(conf, 'pid nginx.pid;\nerror_log stderr;\nevents {}\nhttp {}\n');
  const ran = path.join(d, 'ran');
  const fake = path.join(d, 'fake-nginx');
  await writeFile(fake, `#!/bin/sh\necho "$@" >> ${ran}\nexit 0\n`);
  await chmod(fake, 0o755);
  await new NginxCommand({ binary: fake, conf, prefix: d, statusListen: { host: '127.0.0.1', port: 1 } }).reload();
  t.equal((await readFile(ran, 'utf8')).trim(), `-p ${d} -c ${conf} -s reload`, 'nginx -s reload ran instead');
  t.equal(other.exitCode, null, 'the other process is alive');
  t.equal(other.signalCode, null, 'and got no signal');
});

t.test('a silent failing reload names the exit code', async (t) => {
  const d = await dir(t);
  const fake = path.join(d, 'fake-nginx');
  await writeFile(fake, '#!/bin/sh\nexit 4\n');
  await chmod(fake, 0o755);
  await t.rejects(
    new NginxCommand({
      binary: fake,
      conf: '/x.conf',
      prefix: null,
      statusListen: { host: '127.0.0.1', port: 1 },
    }).reload(),
    {
      code: 'NC_RELOAD_FAILED',
      message: /exit code 4/,
    },
  );
});

t.test('generation() uses an injected dispatcher', async (t) => {
  const agent = new MockAgent();
  agent.disableNetConnect();
  agent.get('http://[::1]:9465').intercept({ path: '/generation', method: 'GET' }).reply(200, '7\n');
  t.teardown(() => agent.close());
  const ctl = new NginxCommand(
    { binary: 'nginx', conf: '/x.conf', prefix: null, statusListen: { host: '::1', port: 9465 } },
    { dispatcher: agent },
  );
  t.equal(await ctl.generation(), 7, 'IPv6 status_listen is bracketed in the URL');
});

t.test('generation() answers the integer, or null on any error', async (t) => {
  let answer: { status: number; body: string } = { status: 200, body: '42\n' };
  const srv = http.createServer((_req, res) => {
    res.writeHead(answer.status, { 'content-type': 'text/plain' });
    res.end(answer.body);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  const port = (srv.address() as AddressInfo).port;
  const ctl = new NginxCommand(
    { binary: 'nginx', conf: '/x.conf', prefix: null, statusListen: { host: '127.0.0.1', port } },
    { statusTimeoutMs: 500 },
  );
  t.equal(await ctl.generation(), 42);
  answer = { status: 503, body: '42\n' };
  t.equal(await ctl.generation(), null, 'non-200');
  answer = { status: 200, body: 'forty-two' };
  t.equal(await ctl.generation(), null, 'not an integer');
  const closed = new NginxCommand({
    binary: 'nginx',
    conf: '/x.conf',
    prefix: null,
    statusListen: { host: '127.0.0.1', port: await freePort() },
  });
  t.equal(await closed.generation(), null, 'nothing listening');
});

t.test('generation() asks on a connection of its own, closed once answered', async (t) => {
  const sockets: Socket[] = [];
  const srv = http.createServer((_req, res) => res.end('9\n'));
  srv.keepAliveTimeout = 60_000; // the server would keep each connection: only the client can be closing them
  srv.on('connection', (s) => sockets.push(s));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    srv.closeAllConnections();
    return new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  const port = (srv.address() as AddressInfo).port;
  const ctl = new NginxCommand({
    binary: 'nginx',
    conf: '/x.conf',
    prefix: null,
    statusListen: { host: '127.0.0.1', port },
  });
  for (let i = 1; i <= 3; i++) {
    t.equal(await ctl.generation(), 9);
    t.equal(sockets.length, i, `call ${i} opened connection ${i}`);
    await waitFor(() => sockets.every((s) => s.destroyed || s.readableEnded), {
      timeoutMs: 5000,
      what: `connection ${i} closed by the client`,
    });
  }
});

t.test('generation() gives up after statusTimeoutMs', async (t) => {
  const srv = http.createServer(() => undefined);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    srv.closeAllConnections();
    return new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  const port = (srv.address() as AddressInfo).port;
  const ctl = new NginxCommand(
    { binary: 'nginx', conf: '/x.conf', prefix: null, statusListen: { host: '127.0.0.1', port } },
    { statusTimeoutMs: 150 },
  );
  const t0 = performance.now();
  t.equal(await ctl.generation(), null);
  t.ok(performance.now() - t0 < 2000);
});
