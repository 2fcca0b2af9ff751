/**
 * The log_format contract against the real nginx (1.22.1): what it writes for
 * a direct attempt, a refused canary attempt retried on the primary, an
 * upstream whose servers are all marked failed, an internal redirect, a
 * request it answers itself, a read timeout and a client that hung up —
 * parsed and attributed end to end, response times included.
 */
import t from 'tap';
import { Backend } from '../../src/demo/backend.js';
import { Observer } from '../../src/observe/aggregate.js';
import { LogFollower } from '../../src/observe/follow.js';
import { parseLine } from '../../src/observe/parse.js';
import type { LogRecord } from '../../src/observe/types.js';
import { waitFor } from '../../src/util/wait.js';
import { config, service, stateSince } from '../fixtures/observe/config.js';
import { refusedPort, startNginx } from '../fixtures/observe/nginx.js';

t.test('what nginx 1.22 writes in format nginx_canary, parsed and attributed', async (t) => {
  const primary = await Backend.start({ name: 'primary' });
  t.teardown(() => primary.close());
  const slow = await Backend.start({ name: 'slow' });
  t.teardown(() => slow.close());
  await slow.setFault({ kind: 'delay', ms: 5000 });
  const canaryPort = await refusedPort(); // a dead canary: connections refused
  const dead1 = await refusedPort();
  const dead2 = await refusedPort();
  const P = primary.addr;
  const C = `127.0.0.1:${canaryPort}`;
  const ngx = await startNginx(
    `upstream gateway { server ${P} max_fails=0; server ${C} max_fails=0; }
     upstream alldead { server 127.0.0.1:${dead1}; server 127.0.0.1:${dead2}; }
     upstream deadone { server ${C}; }
     upstream slow { server ${slow.addr}; }`,
    `location / { proxy_pass http://gateway; proxy_next_upstream error timeout; }
     location /dead { proxy_pass http://alldead; proxy_next_upstream error timeout; }
     location /redirect { proxy_pass http://deadone; error_page 502 = @fallback; }
     location @fallback { proxy_pass http://gateway; }
     location /local { return 200 "local\\n"; }
     location /timeout { proxy_pass http://slow; proxy_read_timeout 200ms; }
     location /abort { proxy_pass http://slow; }`,
  );
  t.teardown(() => ngx.stop());

  // Our follower reads what nginx writes, from the start of the (new) file.
  const followed: string[] = [];
  const follower = new LogFollower({
    file: ngx.accessLog,
    from: 'start',
    pollMs: 20,
    onLines: (l) => followed.push(...l),
  });
  await follower.start();
  t.teardown(() => follower.stop());

  const statuses: number[] = [];
  for (let i = 0; i < 10; i++) statuses.push(await ngx.get(`/req${i}`));
  statuses.push(await ngx.get('/dead1'), await ngx.get('/dead2'));
  statuses.push(await ngx.get('/redirect'));
  statuses.push(await ngx.get('/local'));
  statuses.push(await ngx.get('/timeout'));
  t.same(statuses, [...Array<number>(10).fill(200), 502, 502, 200, 200, 504], 'what the clients got');
  await waitFor(async () => (await ngx.lines()).length === 15, { what: '15 access-log lines' });
  await ngx.abort('/abort', 150); // last, so its 499 line is the last one

  await waitFor(async () => (await ngx.lines()).length === 16, { what: '16 access-log lines' });
  const raw = await ngx.lines();
  const recs = raw.map(parseLine);
  t.equal(
    recs.every((r) => r !== null),
    true,
    'every line nginx wrote parses',
  );
  const [gw, dead, redirect, local, timeout, aborted] = [
    recs.slice(0, 10) as LogRecord[],
    recs.slice(10, 12) as LogRecord[],
    recs[12] as LogRecord,
    recs[13] as LogRecord,
    recs[14] as LogRecord,
    recs[15] as LogRecord,
  ];

  // Through `gateway`: either straight to the primary, or refused by the canary then retried on the primary.
  const direct = gw.filter((r) => r.attempts.length === 1);
  const retried = gw.filter((r) => r.attempts.length === 2);
  t.equal(direct.length + retried.length, 10);
  t.ok(retried.length > 0 && direct.length > 0, `${retried.length} retried, ${direct.length} direct`);
  for (const r of direct) {
    t.match(r.attempts, [{ addr: P, status: 200, connectMs: Number, responseMs: Number }]);
    const ms = r.attempts[0]?.responseMs as number;
    t.ok(ms >= 0 && ms <= r.requestMs + 1, `response ${ms} ms ≈ the request's ${r.requestMs} ms (ms resolution)`);
  }
  for (const r of retried) {
    t.match(
      r.attempts,
      [
        { addr: C, status: 502, connectMs: null },
        { addr: P, status: 200, connectMs: Number },
      ],
      'refused: nginx logs 502 and connect "-" for that attempt',
    );
    t.match(
      r.attempts,
      [{ responseMs: Number }, { responseMs: Number }],
      'a response time for each attempt, the refused one too (its time spent, not a response)',
    );
    t.equal(r.status, 200);
    t.equal(r.upstream, 'gateway');
  }

  // All servers of `alldead` fail, then are marked failed: nginx logs the upstream name.
  t.match(dead[0]?.attempts, [
    { addr: `127.0.0.1:${dead1}`, status: 502, connectMs: null },
    { addr: `127.0.0.1:${dead2}`, status: 502, connectMs: null },
  ]);
  t.match(
    dead[1]?.attempts,
    [{ addr: 'alldead', status: 502, connectMs: null, responseMs: Number }],
    'no live server: the upstream name',
  );
  t.equal(dead[1]?.attempts.length, 1);

  // error_page to a named location: a second group after " : ".
  t.match(redirect.attempts, [
    { addr: C, status: 502, connectMs: null },
    { addr: P, status: 200, connectMs: Number },
  ]);
  t.match(raw[12], / : /, 'groups are separated by " : " in the raw line');
  t.same(local.attempts, [], 'answered by nginx itself: no attempts');
  t.equal(local.upstream, '');
  t.match(timeout.attempts, [{ addr: slow.addr, status: 504, connectMs: Number }], 'a read timeout: 504, connected');
  const waited = timeout.attempts[0]?.responseMs as number;
  t.ok(waited >= 180 && waited < 5000, `the timed-out attempt's response time is the time waited (${waited} ms ≈ 200)`);
  t.equal(aborted.status, 499, 'the client hung up');
  t.match(aborted.attempts, [{ addr: slow.addr, status: null, connectMs: Number }], 'no upstream status: "-" → null');
  const untilHangUp = aborted.attempts[0]?.responseMs as number;
  t.ok(untilHangUp >= 100 && untilHangUp < 5000, `logged until the client hung up (${untilHangUp} ms ≈ 150)`);
  const now = Date.now();
  t.ok(Math.abs(local.atMs - now) < 60_000, '$msec is epoch seconds → epoch ms');

  // The follower saw the same lines, and the Observer charges each attempt to its server.
  await waitFor(() => followed.length === 16, { what: 'the follower' });
  t.same(followed, raw);
  const cfg = config([service('gateway', [P], [C]), service('slow', [slow.addr], [])]);
  const observer = new Observer(cfg);
  observer.addLines(followed, now);
  const o = observer.observations(cfg, stateSince({ gateway: now - 60_000 }), now).gateway;
  t.equal(o?.canary.requests, retried.length + 1, 'every refused canary attempt counts (incl. the redirect)');
  t.equal(o?.canary.errors, retried.length + 1, 'against the canary, though the clients got 200');
  t.equal(o?.canary.connectP95Ms, null, 'refused attempts give no connect sample');
  t.equal(o?.primary.requests, 11);
  t.equal(o?.primary.errors, 0);
  t.ok(o?.primary.connectP95Ms !== null && (o?.primary.connectP95Ms as number) < 100, 'loopback connect time');
  t.equal(o?.canary.responseP95Ms, null, 'refused attempts give no response-time sample');
  t.ok(
    o?.primary.responseP95Ms !== null && (o?.primary.responseP95Ms as number) < 1000,
    `loopback response time ${o?.primary.responseP95Ms} ms`,
  );
  const slowObs = observer.observations(cfg, stateSince({}), now).slow?.primary;
  t.equal(slowObs?.requests, 2);
  t.ok(
    (slowObs?.responseP95Ms as number) >= 0.99 * Math.min(waited, untilHangUp) &&
      (slowObs?.responseP95Ms as number) <= 1.01 * Math.max(waited, untilHangUp),
    `the slow server's response p95 ${slowObs?.responseP95Ms} ms: the timeout and the hang-up count with their times`,
  );
  t.equal(
    o?.canary.series.reduce((n, b) => n + b.errors, 0),
    retried.length + 1,
    "the canary's series holds its errors",
  );
  t.equal(
    slowObs?.errors,
    1,
    'the timeout (504) counts against that server; the client hang-up (499, status -) does not',
  );
  t.same(observer.lineCounts(), { parsed: 14, invalid: 0, unattributed: 2 }, 'the alldead lines are unattributed');
  t.equal(primary.hits, 11, 'the backend agrees: 10 + 1 requests reached the primary');
});
