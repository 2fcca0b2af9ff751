/**
 * Every rendered upstream block has a shared `zone` (docs/design.md
 * "Rendering"), so nginx keeps `max_fails` for all its workers at once: one
 * refused attempt ejects a `max_fails=1` canary from every worker for
 * `fail_timeout` (nginx docs, ngx_http_upstream_module `zone`: the zone keeps
 * "the group's configuration and run-time state that are shared between
 * worker processes").
 *
 * On the real nginx (the example nginx.conf, `worker_processes 2`): the canary
 * address refuses connections, each request comes on a new connection, and
 * `listen … reuseport` makes the kernel spread those connections over both
 * workers (one socket per worker, picked by a hash of the client's address and
 * port), so both workers serve. A second access log writes `$pid` beside
 * `$upstream_addr`: which worker tried which server.
 *
 * Control: the same file with its `zone` lines taken out, reloaded, gives one
 * canary attempt per worker: the test would see the difference.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { Backend } from '../../src/demo/backend.js';
import { upstreamZoneSize } from '../../src/nginx/model.js';
import { waitFor } from '../../src/util/wait.js';
import { makeServer, makeService } from '../fixtures/nginx/config.js';
import { freePort, reloadAndSettle, startTestNginx, type TestNginx } from '../fixtures/nginx/harness.js';

/** Requests per phase: enough that each of the two workers serves dozens. */
const REQUESTS = 120;

t.test('upstreamZoneSize: 64k for every 64 servers or part of them, so ≥ 1 KiB a server', async (t) => {
  t.equal(upstreamZoneSize(1), '64k');
  t.equal(upstreamZoneSize(64), '64k');
  t.equal(upstreamZoneSize(65), '128k');
  t.equal(upstreamZoneSize(128), '128k');
  t.equal(upstreamZoneSize(129), '192k');
  for (let n = 1; n <= 1000; n++) {
    const kib = Number(upstreamZoneSize(n).replace(/k$/, ''));
    if (kib < n || kib >= n + 64 || kib % 64 !== 0) t.fail(`${n} servers: ${kib} KiB`);
  }
});

/** One line of the pid log: the worker and the servers it tried, in order. */
interface Tried {
  pid: string;
  addrs: string[];
}

/** The pid log's lines, parsed (`$pid $upstream_addr`, attempts separated by `, `). */
async function triedLines(file: string): Promise<Tried[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [pid = '', ...rest] = l.split(' ');
      return { pid, addrs: rest.join(' ').split(/, | : /) };
    });
}

/** Sends `n` GETs one after another, each on a new connection (`reset`); all must answer 200. */
async function sendFresh(url: string, n: number): Promise<Record<number, number>> {
  const status: Record<number, number> = {};
  const deadline = performance.now() + 20_000;
  for (let i = 0; i < n; i++) {
    if (performance.now() > deadline) throw new Error(`sendFresh: over 20 s after ${i} requests`);
    const res = await request(`${url}/`, { reset: true, headersTimeout: 5000, bodyTimeout: 5000 });
    await res.body.dump();
    status[res.statusCode] = (status[res.statusCode] ?? 0) + 1;
  }
  return status;
}

/** Sends a phase's requests and returns the pid log lines they wrote (nginx logs after answering). */
async function phase(h: TestNginx, log: string, from: number): Promise<Tried[]> {
  const status = await sendFresh(h.url, REQUESTS);
  if (status[200] !== REQUESTS) throw new Error(`not every request answered 200: ${JSON.stringify(status)}`);
  return waitFor(
    async () => {
      const lines = (await triedLines(log)).slice(from);
      return lines.length >= REQUESTS ? lines : null;
    },
    { timeoutMs: 10_000, what: `${REQUESTS} lines in ${log}` },
  );
}

/** Per worker pid: requests served and attempts on `addr`. */
function perWorker(lines: Tried[], addr: string): Map<string, { served: number; tried: number }> {
  const m = new Map<string, { served: number; tried: number }>();
  for (const l of lines) {
    const w = m.get(l.pid) ?? { served: 0, tried: 0 };
    w.served++;
    w.tried += l.addrs.filter((a) => a === addr).length;
    m.set(l.pid, w);
  }
  return m;
}

t.test('one refused attempt ejects the canary from every nginx worker; without the zone, from one', async (t) => {
  const primary = await Backend.start({ name: 'primary' });
  t.teardown(() => primary.close());
  // Claimed by freePort and never listened on: every connection is refused.
  const refused = `127.0.0.1:${await freePort()}`;
  const svc = makeService('gateway', [primary.addr], [refused]);
  // fail_timeout well past the test's length, so no retry of the canary falls inside it.
  const canary = [makeServer(refused, 'canary', { failTimeoutMs: 300_000 })];
  const h = await startTestNginx(t, {
    services: [{ ...svc, canary }],
    weights: { gateway: 50 },
    editConf: (text) =>
      text
        .replace(/listen 127\.0\.0\.1:(\d+);/, 'listen 127.0.0.1:$1 reuseport;')
        .replace(
          'access_log logs/canary.json nginx_canary;',
          "access_log logs/canary.json nginx_canary;\n    log_format zone_test '$pid $upstream_addr';\n    access_log logs/pid.log zone_test;",
        ),
  });
  const log = path.join(h.config.nginx.prefix ?? h.dir, 'logs', 'pid.log');
  const rendered = await readFile(h.config.nginx.upstreamsFile, 'utf8');
  t.match(rendered, /upstream gateway \{\n {4}zone nginx_canary_gateway 64k;\n/, 'the weighted upstream has its zone');

  const shared = perWorker(await phase(h, log, 0), refused);
  t.equal(shared.size, 2, `both workers served (${JSON.stringify([...shared.values()])})`);
  const sharedTried = [...shared.values()].reduce((a, w) => a + w.tried, 0);
  t.equal(sharedTried, 1, 'with the zone: one canary attempt in all, then every worker keeps the canary out');

  // Control: the same upstreams without their zone lines.
  const before = (await triedLines(log)).length;
  await writeFile(h.config.nginx.upstreamsFile, rendered.replace(/^ {4}zone .*\n/gm, ''));
  await reloadAndSettle(h, 0);
  const own = perWorker(await phase(h, log, before), refused);
  t.equal(own.size, 2, `both new workers served (${JSON.stringify([...own.values()])})`);
  t.same(
    [...own.values()].map((w) => w.tried),
    [1, 1],
    'without the zone: each worker tries the canary once on its own',
  );
});
