import t from 'tap';
import net from 'node:net';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { masterPidReader, pidDirective, pidFileOf, startNginx } from '../../src/nginx/process.js';
import { CanaryError } from '../../src/errors.js';
import { freePort, tempDir } from '../fixtures/nginx/harness.js';

async function minimalConf(
  t: { teardown(fn: () => unknown): void },
  port: number,
  pid = 'logs/nginx.pid',
): Promise<{ dir: string; conf: string; prefix: string }> {
  const dir = await tempDir();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(
    conf,
    `worker_processes 1;\npid ${pid};\nerror_log logs/error.log;\nevents {}\nhttp {\n  access_log off;\n  client_body_temp_path tmp/body;\n  proxy_temp_path tmp/proxy;\n  fastcgi_temp_path tmp/fastcgi;\n  uwsgi_temp_path tmp/uwsgi;\n  scgi_temp_path tmp/scgi;\n  server { listen 127.0.0.1:${port}; return 204; }\n}\n`,
  );
  return { dir, conf, prefix: path.join(dir, 'prefix') };
}

const connects = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

t.test('startNginx runs nginx in the foreground until stopped by pid', async (t) => {
  const port = await freePort();
  const { conf, prefix } = await minimalConf(t, port);
  const t0 = performance.now();
  const nginx = await startNginx({ binary: 'nginx', conf, prefix });
  t.comment(`nginx start: ${(performance.now() - t0).toFixed(0)} ms`);
  t.teardown(() => nginx.stop());
  t.equal(nginx.pidFile, path.join(prefix, 'logs', 'nginx.pid'), 'pid file from the conf, relative to the prefix');
  t.equal((await readFile(nginx.pidFile, 'utf8')).trim(), String(nginx.pid), 'the master is the child (daemon off)');
  t.ok(await connects(port), 'it accepts connections once started');
  await nginx.stop();
  t.equal(await nginx.exited, 0, 'SIGQUIT: graceful exit, code 0');
  t.notOk(await connects(port), 'no longer listening');
  await t.resolves(nginx.stop(), 'stop twice is safe');
});

t.test(
  'a start that fails (port taken) is NC_NGINX_START_FAILED with nginx stderr, fast, not after the 2.5 s of nginx bind retries',
  async (t) => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const port = (blocker.address() as net.AddressInfo).port;
    const { conf, prefix } = await minimalConf(t, port);
    const t0 = performance.now();
    const err = await startNginx({ binary: 'nginx', conf, prefix, timeoutMs: 5000 }).catch((e: unknown) => e);
    t.ok(performance.now() - t0 < 1500, 'failed on the first [emerg] line');
    t.ok(err instanceof CanaryError);
    t.equal((err as CanaryError).code, 'NC_NGINX_START_FAILED');
    t.match((err as CanaryError).message, /Address already in use/);
  },
);

t.test('a pid file that never appears is a start failure past the deadline; the child is killed', async (t) => {
  const port = await freePort();
  const { conf, prefix, dir } = await minimalConf(t, port);
  const err = await startNginx({
    binary: 'nginx',
    conf,
    prefix,
    pidFile: path.join(dir, 'never.pid'),
    timeoutMs: 300,
  }).catch((e: unknown) => e);
  t.match(err, { code: 'NC_NGINX_START_FAILED', message: /timed out after 300 ms/ });
  t.notOk(await connects(port), 'the nginx it started is gone');
});

t.test('a binary that cannot run is NC_NGINX_BINARY', async (t) => {
  const { conf, prefix, dir } = await minimalConf(t, 1);
  await t.rejects(startNginx({ binary: '/nonexistent/nginx', conf, prefix, pidFile: path.join(dir, 'x.pid') }), {
    code: 'NC_NGINX_BINARY',
  });
});

t.test('pidDirective reads the top-level pid directive only', async (t) => {
  t.equal(pidDirective('worker_processes 1;\npid logs/nginx.pid;\nevents {}\n'), 'logs/nginx.pid');
  t.equal(pidDirective('# pid /commented.pid;\nevents {}\n'), null);
  t.equal(pidDirective('http {\n  pid /nested.pid;\n}\npid /top.pid; # trailing comment\n'), '/top.pid');
  t.equal(pidDirective('events {}\n'), null);
});

t.test('pidFileOf: explicit, the conf pid directive, else the compiled --pid-path', async (t) => {
  const { conf, prefix, dir } = await minimalConf(t, 1);
  t.equal(
    await pidFileOf({ binary: 'nginx', conf, prefix, pidFile: path.join(dir, 'x.pid') }),
    path.join(dir, 'x.pid'),
  );
  t.equal(await pidFileOf({ binary: 'nginx', conf, prefix }), path.join(prefix, 'logs', 'nginx.pid'));
  await writeFile(conf, (await readFile(conf, 'utf8')).replace('pid logs/nginx.pid;', 'pid /abs/n.pid;'));
  t.equal(await pidFileOf({ binary: 'nginx', conf, prefix: null }), '/abs/n.pid');
  await writeFile(conf, (await readFile(conf, 'utf8')).replace('pid /abs/n.pid;', 'pid rel.pid;'));
  t.equal(
    await pidFileOf({ binary: 'nginx', conf, prefix: null }),
    '/usr/share/nginx/rel.pid',
    'relative to the compiled --prefix',
  );
  await writeFile(conf, (await readFile(conf, 'utf8')).replace('pid rel.pid;\n', ''));
  // Debian's nginx is built with --pid-path=/run/nginx.pid (read from nginx -V; nginx is not started here).
  t.equal(await pidFileOf({ binary: 'nginx', conf, prefix }), '/run/nginx.pid');
});

t.test(
  'masterPidReader reads the pid file nginx.conf names on every call, null while it is missing or holds no pid',
  async (t) => {
    const dir = await tempDir();
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const conf = path.join(dir, 'nginx.conf');
    await writeFile(conf, 'pid run/master.pid;\nevents {}\n');
    const read = masterPidReader({ binary: 'nginx', conf, prefix: dir });
    t.equal(await read(), null, 'no pid file yet');
    await mkdir(path.join(dir, 'run'));
    await writeFile(path.join(dir, 'run', 'master.pid'), '4242\n');
    t.equal(await read(), 4242, 'the pid nginx wrote');
    await writeFile(path.join(dir, 'run', 'master.pid'), 'garbage\n');
    t.equal(await read(), null, 'not a pid');
    await writeFile(path.join(dir, 'run', 'master.pid'), '4343\n');
    t.equal(await read(), 4343, 'read again on each call');
    await rm(conf);
    t.equal(await read(), 4343, 'the path was resolved once: nginx.conf is not read again');
  },
);
