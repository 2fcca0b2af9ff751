// `nginx-canary check` with a `fleet:` section (src/cli/check.ts), in-process on a weights.yaml and a copy
// of the repo's nginx.conf in a temp dir (real `nginx -t`), against a real single-member etcd
// (test/fixtures/etcd.ts) and loopback ports nothing listens on: every fleet.etcd endpoint is asked
// GET /health, bounded; none answering → exit 2 naming file:line of fleet.etcd, the endpoints, the
// reasons and the fix; some → one warning line, exit unchanged. Nothing is written.
import t, { type Test } from 'tap';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import path from 'node:path';
import { ETCD_CHECK_TIMEOUT_MS, probeEtcdHealth, reportFleet } from '../../src/cli/check.js';
import type { FleetConfig } from '../../src/config/types.js';
import { pino } from 'pino';
import { nopNotifier } from '../../src/alerts/notifier.js';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { openRunner } from '../../src/main.js';
import { NginxCommand } from '../../src/nginx/ctl.js';
import { startEtcdCluster } from '../fixtures/etcd.js';
import { cli } from '../fixtures/integration/sidecar.js';
import { freePort, repoRoot, weightsYaml } from '../fixtures/stack.js';

/** The fix `check` and `run` both give when no etcd endpoint answers (one wording for both). */
const NO_ETCD_FIX =
  "Start etcd on those hosts, or correct the client URLs in fleet.etcd (etcd's client port is 2379 by default); for a local try, `apt-get install etcd-server` and start etcd, which listens on http://127.0.0.1:2379 by default";

/** A config dir (conf/nginx.conf from the repo, weights.yaml from the stack fixture plus a fleet section with `endpoints`). */
async function setup(t: Test, endpoints: string[]): Promise<{ file: string; etcdLine: number }> {
  const dir = t.testdir();
  await mkdir(path.join(dir, 'conf', 'conf.d'), { recursive: true });
  await writeFile(
    path.join(dir, 'conf', 'nginx.conf'),
    await readFile(path.join(repoRoot, 'nginx', 'nginx.conf'), 'utf8'),
  );
  const yaml = weightsYaml({
    nginxPort: 18080,
    statusPort: await freePort(),
    apiPort: await freePort(),
    primary: '127.0.0.1:18789',
    canary: '127.0.0.1:18890',
    target: 30,
    soak: '1s',
    window: '5s',
    minRequests: 20,
    minReloadInterval: '300ms',
  });
  const fleet = [
    'fleet:',
    '  etcd:',
    ...endpoints.map((e) => `    - ${e}`),
    '  prefix: /nginx-canary/test',
    '  host: edge-1',
  ];
  const file = path.join(dir, 'weights.yaml');
  await writeFile(file, `${yaml.trimEnd()}\n${fleet.join('\n')}\n`);
  const etcdLine = (await readFile(file, 'utf8')).split('\n').indexOf('  etcd:') + 1;
  return { file, etcdLine };
}

/** Every file under `dir` with its size and mtime: what "nothing written" compares. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    const s = await stat(p);
    out.push(`${path.relative(dir, p)} ${e.isDirectory() ? 'dir' : `${s.size} ${s.mtimeMs}`}`);
  }
  return out.sort();
}

t.test('against a real etcd and ports nothing listens on', async (t) => {
  const etcd = await startEtcdCluster({ members: 1, t });
  const live = etcd.endpoints[0] ?? '';

  t.test('every endpoint answers: ok, a note, nothing on stderr', async (t) => {
    const { file } = await setup(t, [live]);
    const r = await cli(['-c', file, 'check']);
    t.equal(r.code, 0, r.err);
    t.equal(r.err, '');
    t.match(
      r.out,
      /^note: fleet \/nginx-canary\/test as host edge-1 \(lease_ttl 5s\): etcd answers at 1 of 1 endpoints\.$/m,
    );
    t.match(r.out, /^ok: /m);
  });

  t.test('some answer: one warning line naming the unreachable ones, exit unchanged', async (t) => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const { file, etcdLine } = await setup(t, [live, dead]);
    const r = await cli(['-c', file, 'check']);
    t.equal(r.code, 0, r.err);
    const lines = r.err.trim().split('\n');
    t.equal(lines.length, 1, 'one line');
    t.equal(
      lines[0],
      `warning: fleet.etcd (${file}:${etcdLine}): 1 of 2 etcd endpoints do not answer: ${dead} (connect ECONNREFUSED ${dead.slice('http://'.length)}). The sidecar uses the ones that answer; start the member or correct its URL. This warning does not fail check.`,
    );
    t.notMatch(lines[0], live, 'the live endpoint is not named');
    t.match(r.out, /etcd answers at 1 of 2 endpoints\./);
    t.match(r.out, /^ok: /m);
  });

  t.test('none answers: exit 2 at the line of fleet.etcd with the endpoints, the reasons and the fix', async (t) => {
    const dead = [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`];
    const { file, etcdLine } = await setup(t, dead);
    const dir = path.dirname(file);
    const before = await tree(dir);
    const r = await cli(['-c', file, 'check']);
    t.equal(r.code, 2);
    const reasons = dead.map((u) => `${u} (connect ECONNREFUSED ${u.slice('http://'.length)})`).join(', ');
    t.equal(
      r.err.trim(),
      `${file}:${etcdLine}:3: fleet.etcd: no etcd endpoint answers, so this host cannot join fleet /nginx-canary/test: ${reasons}. Fix: ${NO_ETCD_FIX}`,
    );
    t.notMatch(r.out, /^ok:/m);
    t.same(await tree(dir), before, 'nothing written');
  });
});

t.test('an endpoint that accepts and never answers: no answer within the 2 s bound, not later', async (t) => {
  const sockets = new Set<Socket>();
  const server = createTcpServer((s) => {
    sockets.add(s); // accepted, never answered
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as { port: number };
  const dead = `http://127.0.0.1:${await freePort()}`;
  const { file } = await setup(t, [`http://127.0.0.1:${port}`, dead]);
  const t0 = performance.now();
  const r = await cli(['-c', file, 'check']);
  const took = performance.now() - t0;
  t.equal(r.code, 2);
  t.match(
    r.err,
    `http://127.0.0.1:${port} (no answer within ${ETCD_CHECK_TIMEOUT_MS} ms), ${dead} (connect ECONNREFUSED`,
  );
  t.ok(
    took >= ETCD_CHECK_TIMEOUT_MS - 50 && took < ETCD_CHECK_TIMEOUT_MS + 8000,
    `bounded, endpoints asked together: ${took} ms`,
  );
  t.ok(sockets.size >= 1, 'it did connect');
});

t.test('probeEtcdHealth: answered and healthy only on 200 "health":"true"', async (t) => {
  let status = 200;
  let body = '{"health":"true"}';
  const paths: string[] = [];
  const server = createHttpServer((req, res) => {
    paths.push(`${req.method} ${req.url}`);
    res.statusCode = status;
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  t.same(await probeEtcdHealth(url, 2000), {
    url,
    answered: true,
    healthy: true,
    detail: 'HTTP 200 {"health":"true"}',
  });
  t.same(paths, ['GET /health']);
  status = 503;
  body = '{"health":"false"}';
  t.same(await probeEtcdHealth(url, 2000), {
    url,
    answered: true,
    healthy: false,
    detail: 'HTTP 503 {"health":"false"}',
  });
  status = 200;
  body = 'not json';
  t.match(await probeEtcdHealth(url, 2000), { answered: true, healthy: false });
  body = 'x'.repeat(500);
  const long = await probeEtcdHealth(url, 2000);
  t.ok(long.answered && long.detail.length < 220, 'a long body is cut');
  t.match(await probeEtcdHealth(`https://127.0.0.1:${(server.address() as { port: number }).port}`, 2000), {
    answered: false,
    reason: /./,
  });
});

t.test('reportFleet: an unhealthy answer is a warning; the position falls back to the file', async (t) => {
  const fleet: FleetConfig = {
    endpoints: ['http://10.0.0.5:2379', 'http://10.0.0.6:2379'],
    prefix: '/f',
    host: 'h',
    leaseTtlMs: 3000,
  };
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (s: string) => out.push(s), err: (s: string) => err.push(s) };
  const missing = path.join(t.testdir(), 'gone.yaml');
  const code = await reportFleet(
    fleet,
    missing,
    [
      { url: 'http://10.0.0.5:2379', answered: true, healthy: false, detail: 'HTTP 503 {"health":"false"}' },
      { url: 'http://10.0.0.6:2379', answered: true, healthy: true, detail: 'HTTP 200 {"health":"true"}' },
    ],
    io,
  );
  t.equal(code, 0);
  t.same(err, [
    `warning: fleet.etcd (${missing}): etcd answers but reports itself unhealthy at http://10.0.0.5:2379 (HTTP 503 {"health":"false"}): the cluster may have lost its quorum (a majority of its members), and no host raises a weight until it has one again. This warning does not fail check.`,
  ]);
  t.same(out, ['note: fleet /f as host h (lease_ttl 3s): etcd answers at 2 of 2 endpoints.']);

  err.length = 0;
  t.equal(await reportFleet(fleet, missing, [{ url: 'http://10.0.0.5:2379', answered: false, reason: 'x' }], io), 2);
  t.match(err[0], /^fleet\.etcd: no etcd endpoint answers/, 'no file position when the file cannot be read');
});

t.test('run, no etcd endpoint answering: ConfigError at the line of fleet.etcd, nothing written', async (t) => {
  // openRunner is what `run` builds the sidecar with; it loads the etcd client only in fleet mode
  // (src/main.ts openFleet), and this is the error that client's EtcdUnavailableError becomes there.
  const dead = [`http://127.0.0.1:${await freePort()}`];
  const { file, etcdLine } = await setup(t, dead);
  const dir = path.dirname(file);
  const before = await tree(dir);
  const config = await loadConfig(file);
  const err: unknown = await openRunner(config, {
    clock: systemClock,
    log: pino({ level: 'silent' }),
    ctl: new NginxCommand(config.nginx),
    notifier: nopNotifier,
    defaultMetrics: false,
  }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof ConfigError, `a ConfigError (${String(err)})`);
  t.match(
    (err as Error).message,
    `${file}:${etcdLine}:3: fleet.etcd: no etcd endpoint answers, so this host cannot join fleet /nginx-canary/test: etcd at ${dead[0]}`,
  );
  t.ok(
    (err as ConfigError).toUserString().endsWith(`. Fix: ${NO_ETCD_FIX}`),
    `the same fix as check's: ${(err as ConfigError).toUserString()}`,
  );
  t.same(await tree(dir), before, 'nothing written');
});
