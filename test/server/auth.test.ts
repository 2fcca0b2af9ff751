// Who may call the API (src/server/token.ts and the access hook of
// src/server/app.ts): loopback reads are open; reads from any other address
// and every mutating call need the bearer token; without a token, clients off
// loopback are refused. Checked with app.inject({ remoteAddress }) on a real
// runner and nginx, then for real over this host's own non-loopback address
// (a socket on 0.0.0.0 / ::), including a real Prometheus scraping /metrics
// with `authorization.credentials_file`.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { ManualClock } from '../../src/clock.js';
import { CanaryError, errors } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { startSidecar } from '../../src/main.js';
import { buildApp } from '../../src/server/app.js';
import {
  checkListenToken,
  checkTokenFileMode,
  isLoopbackAddress,
  MAX_TOKEN_FILE_BYTES,
  readTokenFile,
} from '../../src/server/token.js';
import { waitFor } from '../../src/util/wait.js';
import { startStack } from '../fixtures/stack.js';
import { freePort } from '../fixtures/nginx/harness.js';
import { PROMETHEUS_BIN } from '../fixtures/prometheus.js';

const TOKEN = 'f'.repeat(8) + '0123456789abcdef0123456789abcdef';
const READS = ['/healthz', '/metrics', '/api/v1/services', '/api/v1/services/gateway', '/api/v1/snapshots', '/'];

t.test('isLoopbackAddress', async (t) => {
  const yes = [
    '127.0.0.1',
    '127.0.0.2',
    '127.255.255.254',
    '::1',
    '0:0:0:0:0:0:0:1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
  ];
  const no = [
    '10.0.0.7',
    '192.0.2.2',
    '0.0.0.0',
    '::',
    '::2',
    '::ffff:10.0.0.7',
    '::ffff:128.0.0.1',
    'fe80::1%lo',
    'fd00::2',
    '128.0.0.1',
    '1.127.0.0',
    'localhost',
    '127.0.0.1.example.com',
    '',
    undefined,
    null,
  ];
  for (const a of yes) t.ok(isLoopbackAddress(a), `${a} is loopback`);
  for (const a of no) t.notOk(isLoopbackAddress(a), `${String(a)} is not loopback`);
});

t.test('checkListenToken: a non-loopback listen needs a token file', async (t) => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1']) {
    t.doesNotThrow(() => checkListenToken({ host, port: 9464 }, null), `${host} without a token`);
  }
  for (const host of ['0.0.0.0', '::', '192.0.2.2', 'fd00::2', 'localhost']) {
    t.doesNotThrow(() => checkListenToken({ host, port: 9464 }, '/etc/nginx-canary/token'), `${host} with a token`);
    t.throws(
      () => checkListenToken({ host, port: 9464 }, null),
      {
        code: 'NC_LISTEN_NO_TOKEN',
        exitCode: 2,
        message: /not a loopback address/,
        fix: /token_file.*127\.0\.0\.1:9464/,
      },
      `${host} without a token is refused`,
    );
  }
  t.throws(() => checkListenToken({ host: '::', port: 1 }, null), { message: /sidecar\.listen \[::\]:1 / });
});

t.test('checkTokenFileMode: like ssh, nothing for group or others', async (t) => {
  for (const mode of [0o600, 0o400, 0o200, 0o700, 0o100600, 0o100400]) {
    t.doesNotThrow(() => checkTokenFileMode(mode, '/x/token'), `mode ${mode.toString(8)}`);
  }
  for (const mode of [0o644, 0o640, 0o604, 0o660, 0o606, 0o610, 0o601, 0o100644, 0o777]) {
    let caught: unknown;
    try {
      checkTokenFileMode(mode, '/etc/nginx-canary/token');
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof CanaryError, `mode ${mode.toString(8)} is refused`);
    const e = caught as CanaryError;
    t.equal(e.code, 'NC_TOKEN_FILE_MODE');
    t.equal(e.fix, 'Run chmod 600 /etc/nginx-canary/token (owned by the user the sidecar runs as), then start again');
    t.match(e.message, `has mode 0${(mode & 0o777).toString(8)}`);
  }
});

t.test('readTokenFile on real files', async (t) => {
  const dir = t.testdir();
  const file = (name: string): string => path.join(dir, name);

  await writeFile(file('ok'), `  ${TOKEN}\n`, { mode: 0o600 });
  await chmod(file('ok'), 0o600); // the umask may have narrowed it further, never widened it
  t.equal(await readTokenFile(file('ok')), TOKEN, 'trimmed contents');
  await symlink(file('ok'), file('link'));
  t.equal(await readTokenFile(file('link')), TOKEN, 'a symlink to a 0600 file is read (its target is checked)');

  await writeFile(file('wide'), TOKEN);
  await chmod(file('wide'), 0o644);
  await t.rejects(readTokenFile(file('wide')), {
    code: 'NC_TOKEN_FILE_MODE',
    fix: `Run chmod 600 ${file('wide')} (owned by the user the sidecar runs as), then start again`,
  });
  await chmod(file('wide'), 0o640);
  await t.rejects(readTokenFile(file('wide')), { code: 'NC_TOKEN_FILE_MODE' }, 'group-readable');

  const unusable = async (name: string, why: RegExp): Promise<void> => {
    await t.rejects(
      readTokenFile(file(name)),
      { code: 'NC_TOKEN_FILE', message: why, fix: /at least 16 characters/ },
      name,
    );
  };
  await unusable('missing', /ENOENT/);
  await writeFile(file('short'), 'short\n', { mode: 0o600 });
  await unusable('short', /shorter than 16 characters/);
  await mkdir(file('dir'), { mode: 0o700 });
  await unusable('dir', /not a regular file/);
  await writeFile(file('big'), 'x'.repeat(MAX_TOKEN_FILE_BYTES + 1), { mode: 0o600 });
  await unusable('big', /larger than 4096 bytes/);
  const fifo = spawnSync('mkfifo', ['-m', '600', file('fifo')]);
  if (fifo.status === 0) await unusable('fifo', /not a regular file/);
  else t.comment('mkfifo is not available: the FIFO case is skipped');
});

/** GET `url` over a real socket to `host` (an address of this host), with an optional bearer. */
async function get(
  host: string,
  port: number,
  url: string,
  bearer?: string,
): Promise<{ status: number; body: string; auth: string | undefined }> {
  const h = host.includes(':') ? `[${host}]` : host;
  const res = await request(`http://${h}:${port}${url}`, {
    headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` },
    headersTimeout: 5000,
    bodyTimeout: 5000,
  });
  const auth = res.headers['www-authenticate'];
  return { status: res.statusCode, body: await res.body.text(), auth: typeof auth === 'string' ? auth : undefined };
}

/** This host's own non-loopback addresses (never another host's). */
function ownAddresses(family: 'IPv4' | 'IPv6'): string[] {
  return Object.values(os.networkInterfaces())
    .flat()
    .filter((a): a is os.NetworkInterfaceInfo => a !== undefined && !a.internal && a.family === family)
    .filter((a) => !a.address.startsWith('fe80:')) // link-local needs a zone id
    .map((a) => a.address);
}

t.test('the access rules on a real runner and nginx', async (t) => {
  const stack = await startStack(t, { target: 30 });
  const sidecar = await startSidecar(stack.config, {
    log: silentLogger,
    clock: new ManualClock(),
    listen: false,
    tickMs: 3_600_000,
  });
  t.teardown(() => sidecar.close());
  await sidecar.runner.tick();
  const deps = { runner: sidecar.runner, metrics: sidecar.metrics, log: silentLogger };
  const secured = await buildApp({ ...deps, token: TOKEN });
  const open = await buildApp({ ...deps, token: null });
  t.teardown(() => secured.close());
  t.teardown(() => open.close());
  const weightsBefore = await readFile(stack.configFile, 'utf8');

  t.test('inject: loopback reads are open, other addresses need the bearer', async (t) => {
    for (const remoteAddress of ['127.0.0.1', '127.9.9.9', '::1', '::ffff:127.0.0.1']) {
      for (const url of READS) {
        const res = await secured.inject({ method: 'GET', url, remoteAddress });
        t.equal(res.statusCode, 200, `GET ${url} from ${remoteAddress} without a token`);
      }
      t.equal(
        (await secured.inject({ method: 'HEAD', url: '/healthz', remoteAddress })).statusCode,
        200,
        `HEAD from ${remoteAddress}`,
      );
    }
    for (const remoteAddress of ['10.0.0.7', '192.0.2.2', 'fd00::2', '::ffff:10.0.0.7']) {
      for (const url of [...READS, '/no/such/path']) {
        const res = await secured.inject({ method: 'GET', url, remoteAddress });
        t.equal(res.statusCode, 401, `GET ${url} from ${remoteAddress} without a token → 401 (before routing)`);
        t.same(res.json(), {
          code: 'NC_UNAUTHORIZED',
          message: errors.unauthorizedRead().message,
          fix: errors.unauthorizedRead().fix,
        });
        t.equal(res.headers['www-authenticate'], 'Bearer realm="nginx-canary"', 'RFC 6750 challenge');
        const wrong = await secured.inject({
          method: 'GET',
          url,
          remoteAddress,
          headers: { authorization: `Bearer ${TOKEN}0` },
        });
        t.equal(wrong.statusCode, 401, `GET ${url} from ${remoteAddress} with a wrong token → 401`);
        if (url === '/no/such/path') continue;
        const ok = await secured.inject({
          method: 'GET',
          url,
          remoteAddress,
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        t.equal(ok.statusCode, 200, `GET ${url} from ${remoteAddress} with the token`);
      }
      t.equal(
        (await secured.inject({ method: 'HEAD', url: '/healthz', remoteAddress })).statusCode,
        401,
        `HEAD from ${remoteAddress}`,
      );
    }
    const metrics = await secured.inject({
      method: 'GET',
      url: '/metrics',
      remoteAddress: '10.0.0.7',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    t.match(
      metrics.body,
      /nginx_canary_weight_percent\{service="gateway"\} 5/,
      '/metrics with the bearer is the real exposition',
    );
  });

  t.test('inject: mutating calls need the bearer from every address', async (t) => {
    for (const remoteAddress of ['127.0.0.1', '10.0.0.7']) {
      const res = await secured.inject({ method: 'POST', url: '/api/v1/services/gateway/pause', remoteAddress });
      t.equal(res.statusCode, 401, `POST pause from ${remoteAddress} without a token`);
      t.equal(res.json<{ message: string }>().message, 'this call changes the rollout and needs the bearer token');
    }
    const ok = await secured.inject({
      method: 'POST',
      url: '/api/v1/services/gateway/pause',
      remoteAddress: '10.0.0.7',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    t.equal(ok.statusCode, 200, 'POST pause from 10.0.0.7 with the token');
    t.match(ok.json(), { phase: 'paused' });
    const back = await secured.inject({
      method: 'POST',
      url: '/api/v1/services/gateway/resume',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    t.equal(back.statusCode, 200, 'resume from loopback with the token');
    t.equal(await readFile(stack.configFile, 'utf8'), weightsBefore, 'weights.yaml untouched');
  });

  t.test('inject: without a token, clients off loopback are refused whatever they ask', async (t) => {
    for (const remoteAddress of ['10.0.0.7', 'fd00::2']) {
      for (const [method, url] of [
        ['GET', '/metrics'],
        ['GET', '/healthz'],
        ['POST', '/api/v1/services/gateway/abort'],
        ['PUT', '/api/v1/services/gateway/target'],
      ] as const) {
        const res = await open.inject({ method, url, remoteAddress, headers: { authorization: `Bearer ${TOKEN}` } });
        t.equal(res.statusCode, 403, `${method} ${url} from ${remoteAddress} → 403`);
        t.same(res.json(), {
          code: 'NC_FORBIDDEN',
          message: errors.forbiddenWithoutToken(remoteAddress).message,
          fix: errors.forbiddenWithoutToken(remoteAddress).fix,
        });
      }
    }
    t.equal((await open.inject({ method: 'GET', url: '/metrics' })).statusCode, 200, 'loopback reads without a token');
    t.match(sidecar.runner.status().services[0], { weight: 5 }, 'no refused call changed the rollout');
    t.equal(await readFile(stack.configFile, 'utf8'), weightsBefore, 'weights.yaml untouched');
  });

  t.test('for real over this host’s own non-loopback addresses', async (t) => {
    const v4 = ownAddresses('IPv4');
    const v6 = ownAddresses('IPv6');
    if (v4.length === 0 && v6.length === 0) {
      t.plan(0, 'this host has no non-loopback address: the over-the-network part is skipped');
      return;
    }
    const listen = async (app: FastifyInstance, host: string): Promise<number> => {
      await app.listen({ host, port: 0 });
      return (app.server.address() as AddressInfo).port;
    };
    // Dual-stack socket on `::` (IPv4 clients appear as ::ffff:a.b.c.d), or 0.0.0.0 without IPv6.
    const app = await buildApp({ ...deps, token: TOKEN });
    t.teardown(() => app.close());
    const port = await listen(app, v6.length > 0 ? '::' : '0.0.0.0');
    t.comment(`listening on ${v6.length > 0 ? '[::]' : '0.0.0.0'}:${port}; own addresses ${[...v4, ...v6].join(', ')}`);

    const loop = await get('127.0.0.1', port, '/metrics');
    t.equal(loop.status, 200, 'loopback (127.0.0.1) scrape without a token');
    for (const addr of [...v4, ...v6]) {
      const anon = await get(addr, port, '/metrics');
      t.equal(anon.status, 401, `GET /metrics via ${addr} without a token → 401`);
      t.equal(anon.auth, 'Bearer realm="nginx-canary"');
      t.match(JSON.parse(anon.body) as unknown, { code: 'NC_UNAUTHORIZED' });
      const bearer = await get(addr, port, '/metrics', TOKEN);
      t.equal(bearer.status, 200, `GET /metrics via ${addr} with the token`);
      t.match(bearer.body, /nginx_canary_weight_percent/);
      const page = await get(addr, port, '/', undefined);
      t.equal(page.status, 401, `the status page via ${addr} needs the token too`);
    }
    if (v6.length > 0) t.equal((await get('::1', port, '/healthz')).status, 200, '::1 without a token');

    const noToken = await buildApp({ ...deps, token: null });
    t.teardown(() => noToken.close());
    const p2 = await listen(noToken, '0.0.0.0');
    for (const addr of v4) t.equal((await get(addr, p2, '/healthz')).status, 403, `no token: ${addr} is refused`);
    t.equal((await get('127.0.0.1', p2, '/healthz')).status, 200, 'no token: loopback is served');

    const target = v4[0] ?? `[${v6[0]}]`;
    await prometheusScrape(t, `${target}:${port}`);
  });
});

/**
 * A real Prometheus scrapes `target` (this host's own non-loopback address) as two jobs: with
 * `authorization.credentials_file` (up) and without (down, 401). Skipped when Prometheus is not installed.
 */
async function prometheusScrape(t: Test, target: string): Promise<void> {
  if (spawnSync(PROMETHEUS_BIN, ['--version']).status !== 0) {
    t.comment(`${PROMETHEUS_BIN} is not installed: the Prometheus scrape is skipped`);
    return;
  }
  const dir = t.testdir();
  const credentials = path.join(dir, 'nginx-canary.token');
  await writeFile(credentials, `${TOKEN}\n`, { mode: 0o600 });
  const job = (name: string, auth: boolean): object => ({
    job_name: name,
    scrape_interval: '1s',
    scrape_timeout: '1s',
    static_configs: [{ targets: [target] }],
    ...(auth ? { authorization: { type: 'Bearer', credentials_file: credentials } } : {}),
  });
  await writeFile(
    path.join(dir, 'prometheus.yml'),
    JSON.stringify({ scrape_configs: [job('with_token', true), job('without_token', false)] }),
  );
  const port = await freePort();
  const child = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.console.templates=${path.join(dir, 'consoles')}`,
      `--web.console.libraries=${path.join(dir, 'console_libraries')}`,
    ],
    { stdio: 'ignore' },
  );
  t.teardown(async () => {
    if (child.exitCode !== null || child.pid === undefined) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid, 'SIGTERM');
    await exited;
  });
  interface Target {
    labels: { job: string };
    health: string;
    lastError: string;
  }
  const targets = await waitFor(
    async () => {
      const res = await request(`http://127.0.0.1:${port}/api/v1/targets`).catch(() => null);
      if (!res) return undefined;
      if (res.statusCode !== 200) return void (await res.body.dump());
      const body = (await res.body.json()) as { data: { activeTargets: Target[] } };
      const all = body.data.activeTargets;
      return all.length === 2 && all.every((x) => x.health !== 'unknown') ? all : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 100, what: 'Prometheus to scrape both jobs' },
  );
  const by = (job: string): Target | undefined => targets.find((x) => x.labels.job === job);
  t.equal(by('with_token')?.health, 'up', 'Prometheus with authorization.credentials_file scrapes /metrics');
  t.equal(by('without_token')?.health, 'down', 'Prometheus without it is refused');
  t.match(by('without_token')?.lastError, /401/, `its error: ${by('without_token')?.lastError}`);
}
