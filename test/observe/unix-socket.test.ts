/**
 * Unix-socket servers in the access log (README "Backends on unix sockets"): nginx logs an
 * attempt to `server unix:/run/app.sock;` as `unix:/run/app.sock` in
 * $upstream_addr, also inside `a, b` and `a : b` lists beside TCP servers;
 * each attempt is charged to its server and pool. Unit cases, then what the
 * real nginx 1.22 writes for a live socket, a missing socket file and a
 * socket nobody listens on.
 */
import t from 'tap';
import { chmod, link, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Backend } from '../../src/demo/backend.js';
import { Observer } from '../../src/observe/aggregate.js';
import { buildAttribution, loggedAddresses } from '../../src/observe/attribute.js';
import { parseLine } from '../../src/observe/parse.js';
import type { LogRecord } from '../../src/observe/types.js';
import { waitFor } from '../../src/util/wait.js';
import { config, logLine, server, service, stateSince } from '../fixtures/observe/config.js';
import { startNginx } from '../fixtures/observe/nginx.js';

const A = 'unix:/run/api/primary.sock';
const B = 'unix:/run/api/canary.sock';
const T = '127.0.0.1:7000';

t.test('a unix server is indexed under its unix:/path as written, and only that', async (t) => {
  t.same(loggedAddresses(server(A)), [A]);
  t.same(loggedAddresses(server('unix:/run/App.sock'), { '': ['127.0.0.1'] }), ['unix:/run/App.sock'], 'no host forms');
  const map = buildAttribution(config([service('api', [A, T], [B]), service('web', ['unix:/run/web.sock'], [])]));
  t.same(map.attribute(A), { service: 'api', pool: 'primary', server: A });
  t.same(map.attribute(B), { service: 'api', pool: 'canary', server: B });
  t.same(map.attribute(T), { service: 'api', pool: 'primary', server: T });
  t.same(map.attribute('unix:/run/web.sock')?.service, 'web');
  t.equal(map.attribute('unix:/run/API/primary.sock'), null, 'a path is case-sensitive');
  t.equal(map.attribute('/run/api/primary.sock'), null, 'nginx always logs the unix: prefix');
  t.equal(map.size, 4, 'one key per server');
  t.same(map.conflicts, []);
});

t.test('a unix socket shared by two services is resolved by the upstream name like host:port', async (t) => {
  const map = buildAttribution(config([service('alpha', [A], [B]), service('beta', [A], [T])]));
  t.same(map.conflicts, [A]);
  t.equal(map.attribute(A), null);
  t.equal(map.attribute(A, 'beta_canary')?.service, 'beta');
});

t.test('attempts in "a, b" and "a : b" lists mixing unix and TCP servers land on their pools', async (t) => {
  const now = 1_763_744_701_000;
  const cfg = config([service('api', [A, T], [B])]);
  const lines = [
    // The canary's socket refused, retried on the primary's socket.
    logLine({ atMs: now, addr: `${B}, ${A}`, ustatus: '502, 200', connect: '-, 0.000', response: '0.000, 0.002' }),
    // The canary's socket answered 500, retried on the TCP primary.
    logLine({ atMs: now, addr: `${B}, ${T}`, ustatus: '500, 200', connect: '0.000, 0.001', upstream: 'api_canary' }),
    // An internal redirect: the first group on the canary's socket, the second on the TCP primary.
    logLine({ atMs: now, addr: `${B} : ${T}`, ustatus: '502 : 200', connect: '- : 0.001' }),
    // Three groups, both separators.
    logLine({ atMs: now, addr: `${T}, ${A} : ${B}`, ustatus: '502, 502 : 200', connect: '-, - : 0.000' }),
    // One attempt each (the single-attempt fast path).
    logLine({ atMs: now, addr: A, ustatus: '200', connect: '0.000' }),
    logLine({ atMs: now, addr: B, ustatus: '200', connect: '0.001' }),
  ];
  const recs = lines.map(parseLine) as LogRecord[];
  t.same(
    recs.map((r) => r.attempts.map((a) => a.addr)),
    [[B, A], [B, T], [B, T], [T, A, B], [A], [B]],
    'the addresses survive the split',
  );
  const map = buildAttribution(cfg);
  t.same(
    recs.map((r) => r.attempts.map((a) => `${map.attribute(a.addr, r.upstream)?.pool}:${a.status}`)),
    [
      ['canary:502', 'primary:200'],
      ['canary:500', 'primary:200'],
      ['canary:502', 'primary:200'],
      ['primary:502', 'primary:502', 'canary:200'],
      ['primary:200'],
      ['canary:200'],
    ],
  );
  const observer = new Observer(cfg);
  observer.addLines(lines, now);
  const o = observer.observations(cfg, stateSince({ api: now - 60_000 }), now).api;
  t.equal(o?.canary.requests, 5);
  t.equal(o?.canary.errors, 3, 'the refused, the 500 and the redirected attempt');
  t.equal(o?.primary.requests, 6);
  t.equal(o?.primary.errors, 2);
  t.same(observer.lineCounts(), { parsed: 6, invalid: 0, unattributed: 0 });
});

t.test('what nginx 1.22 logs for unix-socket servers: live, missing file, nobody listening', async (t) => {
  // nginx's workers run as another user (nobody here, www-data on Debian): the directory must let them
  // through and the sockets must be writable by them (Backend creates its sockets 0777).
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nc-uds-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const primary = await Backend.start({ name: 'primary', socketPath: path.join(dir, 'primary.sock') });
  t.teardown(() => primary.close());
  const tcp = await Backend.start({ name: 'tcp' });
  t.teardown(() => tcp.close());
  const missing = `unix:${path.join(dir, 'missing.sock')}`;
  // A socket file nobody listens on: a hard link to a live one outlives its listener.
  const gone = await Backend.start({ name: 'gone', socketPath: path.join(dir, 'gone.sock') });
  await link(path.join(dir, 'gone.sock'), path.join(dir, 'stale.sock'));
  await gone.close();
  const stale = `unix:${path.join(dir, 'stale.sock')}`;
  const P = primary.addr;
  t.equal(P, `unix:${dir}/primary.sock`);

  const ngx = await startNginx(
    `upstream gateway { server ${missing} max_fails=0; server ${P} max_fails=0; }
     upstream mixed { server ${stale} max_fails=0; server ${tcp.addr} max_fails=0; }
     upstream deadsock { server ${missing}; }`,
    `location / { proxy_pass http://gateway; proxy_next_upstream error timeout; }
     location /mixed { proxy_pass http://mixed; proxy_next_upstream error timeout; }
     location /redirect { proxy_pass http://deadsock; error_page 502 = @fallback; }
     location @fallback { proxy_pass http://mixed; proxy_next_upstream error timeout; }`,
  );
  t.teardown(() => ngx.stop());

  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) statuses.push(await ngx.get(`/req${i}`));
  for (let i = 0; i < 6; i++) statuses.push(await ngx.get(`/mixed${i}`));
  statuses.push(await ngx.get('/redirect'));
  t.same(statuses, Array<number>(13).fill(200), 'every client got 200: nginx retried past the dead sockets');
  await waitFor(async () => (await ngx.lines()).length === 13, { what: '13 access-log lines' });
  const raw = await ngx.lines();
  const recs = raw.map(parseLine) as LogRecord[];
  t.ok(
    recs.every((r) => r !== null),
    'every line parses',
  );

  const gw = recs.slice(0, 6);
  t.ok(
    gw.some((r) => r.attempts.length === 2),
    'some requests tried the missing socket first',
  );
  for (const r of gw) {
    if (r.attempts.length === 1) t.match(r.attempts, [{ addr: P, status: 200, connectMs: Number }]);
    else
      t.match(
        r.attempts,
        [
          { addr: missing, status: 502, connectMs: null },
          { addr: P, status: 200, connectMs: Number },
        ],
        'a missing socket file: nginx logs unix:/path, 502 and connect "-"',
      );
  }
  const mixed = recs.slice(6, 12);
  t.ok(
    mixed.some((r) => r.attempts.length === 2),
    'some requests tried the stale socket first',
  );
  for (const r of mixed.filter((x) => x.attempts.length === 2)) {
    t.match(
      r.attempts,
      [
        { addr: stale, status: 502, connectMs: null },
        { addr: tcp.addr, status: 200, connectMs: Number },
      ],
      'nobody listening: the same shape as a refused TCP connect',
    );
  }
  t.match(raw[12], new RegExp(`"addr":"${missing}( : |, ${stale} : )`), 'groups separated by " : " in the raw line');
  t.match(recs[12]?.attempts.at(-1), { addr: tcp.addr, status: 200 });
  t.equal(recs[12]?.attempts[0]?.addr, missing);

  const now = Date.now();
  const cfg = config([service('gateway', [P], [missing]), service('mixed', [tcp.addr], [stale])]);
  const observer = new Observer(cfg);
  observer.addLines(raw, now);
  const obs = observer.observations(cfg, stateSince({ gateway: now - 60_000, mixed: now - 60_000 }), now);
  const attempts = (addr: string): number => recs.flatMap((r) => r.attempts).filter((a) => a.addr === addr).length;
  t.equal(obs.gateway?.primary.requests, attempts(P));
  t.equal(obs.gateway?.primary.errors, 0);
  t.ok((obs.gateway?.primary.connectP95Ms ?? -1) >= 0, `unix connect time p95 ${obs.gateway?.primary.connectP95Ms} ms`);
  t.equal(obs.gateway?.canary.requests, attempts(missing));
  t.equal(obs.gateway?.canary.errors, attempts(missing), 'every attempt at the missing socket is an error');
  t.equal(obs.gateway?.canary.connectP95Ms, null, 'and gives no connect sample');
  t.equal(obs.mixed?.canary.errors, attempts(stale));
  t.equal(obs.mixed?.primary.requests, attempts(tcp.addr));
  t.same(observer.lineCounts(), { parsed: 13, invalid: 0, unattributed: 0 }, 'every attempt attributed');
  t.equal(primary.hits, attempts(P), 'the backend agrees');
});
