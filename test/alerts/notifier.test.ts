// The webhook notifier (src/alerts/notifier.ts) against a real HTTP receiver
// on 127.0.0.1:0 whose answers each test scripts.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, type Dispatcher } from 'undici';
import { nopNotifier, WebhookNotifier } from '../../src/alerts/notifier.js';
import type { Page } from '../../src/rollout/types.js';
import { waitFor } from '../../src/util/wait.js';
import { freePort } from '../fixtures/nginx/harness.js';
import { captureLogger } from '../fixtures/integration/sidecar.js';

const AT = Date.UTC(2026, 2, 4, 5, 6, 7, 890);

function page(over: Partial<Page> = {}, at = AT): Page {
  return {
    service: 'gateway',
    reason: 'error_ratio',
    summary: 'drained gateway from 15 % to 0 %: error_ratio canary 1.20 % > 0.50 %',
    event: {
      at,
      service: 'gateway',
      kind: 'drain',
      from: 15,
      to: 0,
      reason: 'drain gate error_ratio canary 1.20 % > 0.50 %',
      gates: [],
    },
    ...over,
  };
}

interface Received {
  path: string;
  contentType: string | undefined;
  body: unknown;
}

/**
 * A receiver whose answers are scripted: `statuses` are used in order (then 200);
 * while `hold` is set, answers wait until `release()`.
 */
async function receiver(t: { teardown(fn: () => unknown): void }, statuses: number[] = []) {
  const got: Received[] = [];
  let held: (() => void)[] = [];
  const ctl = { hold: false };
  const srv = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString()));
    req.on('end', () => {
      got.push({ path: req.url ?? '', contentType: req.headers['content-type'], body: JSON.parse(raw) as unknown });
      const answer = (): void => {
        res.writeHead(statuses.shift() ?? 200, { 'content-type': 'text/plain' });
        res.end('ok');
      };
      if (ctl.hold) held.push(answer);
      else answer();
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const a of held) a();
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  );
  const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return {
    base,
    got,
    ctl,
    release(): void {
      const h = held;
      held = [];
      for (const a of h) a();
    },
  };
}

t.test('nopNotifier sends nothing and flushes at once', async (t) => {
  t.equal(nopNotifier.page(page()), undefined);
  t.equal(await nopNotifier.flush(), undefined);
});

t.test('an Alertmanager v2 URL gets an alert list', async (t) => {
  const r = await receiver(t);
  const cap = captureLogger();
  const n = new WebhookNotifier({ url: `${r.base}/api/v2/alerts`, log: cap.log });
  n.page(page());
  await n.flush();
  t.equal(r.got.length, 1);
  t.equal(r.got[0]?.path, '/api/v2/alerts');
  t.equal(r.got[0]?.contentType, 'application/json');
  t.same(r.got[0]?.body, [
    {
      labels: { alertname: 'NginxCanaryDrained', service: 'gateway', reason: 'error_ratio', severity: 'page' },
      annotations: { summary: page().summary, description: page().event.reason },
      startsAt: '2026-03-04T05:06:07.890Z',
    },
  ]);
  t.ok(
    cap.lines.some((l) => l['msg'] === 'page delivered' && l['service'] === 'gateway' && l['status'] === 200),
    'delivery logged',
  );
});

t.test('body(): Alertmanager detection ignores trailing slashes and nothing else', async (t) => {
  t.ok(Array.isArray(WebhookNotifier.body('http://am:9093/api/v2/alerts/', page())), 'trailing slash: Alertmanager');
  t.ok(
    Array.isArray(WebhookNotifier.body('http://am:9093/prefix/api/v2/alerts', page())),
    'behind a path prefix: Alertmanager',
  );
  t.notOk(Array.isArray(WebhookNotifier.body('http://am:9093/api/v1/alerts', page())), 'v1: plain object');
  t.notOk(
    Array.isArray(WebhookNotifier.body('http://hooks.example/api/v2/alerts-relay', page())),
    'a longer path: plain object',
  );
});

t.test('a generic URL gets the plain object', async (t) => {
  const r = await receiver(t);
  const n = new WebhookNotifier({ url: `${r.base}/hooks/canary`, log: captureLogger().log });
  n.page(page());
  await n.flush();
  t.equal(r.got.length, 1);
  t.equal(r.got[0]?.path, '/hooks/canary');
  t.same(r.got[0]?.body, {
    alert: 'nginx_canary_drained',
    service: 'gateway',
    reason: 'error_ratio',
    summary: page().summary,
    event: page().event,
  });
});

t.test('the same page twice is delivered once', async (t) => {
  const r = await receiver(t);
  const n = new WebhookNotifier({ url: `${r.base}/hook`, log: captureLogger().log });
  n.page(page());
  n.page(page({ summary: 'the same drain, reworded' }));
  await n.flush();
  t.equal(r.got.length, 1, 'same service and event time: one delivery');
  n.page(page());
  await n.flush();
  t.equal(r.got.length, 1, 'also after the first delivery finished');
  n.page(page({}, AT + 1));
  n.page(page({ service: 'api' }));
  await n.flush();
  t.equal(r.got.length, 3, 'another event time or another service is a new page');
});

t.test('a receiver answering 500 twice then 200 gets the page on the third attempt', async (t) => {
  const r = await receiver(t, [500, 500]);
  const cap = captureLogger();
  const n = new WebhookNotifier({ url: `${r.base}/hook`, log: cap.log, backoffMs: 10, attempts: 4 });
  n.page(page());
  await n.flush();
  t.equal(r.got.length, 3, 'three attempts');
  t.same(r.got[2]?.body, r.got[0]?.body, 'the same body each time');
  t.same(
    cap.lines.filter((l) => l['msg'] === 'page rejected by webhook').map((l) => [l['status'], l['attempt']]),
    [
      [500, 1],
      [500, 2],
    ],
  );
  t.ok(
    cap.lines.some((l) => l['msg'] === 'page delivered'),
    'then delivered',
  );
  t.notOk(cap.lines.some((l) => l['msg'] === 'page not delivered after all attempts'));
});

t.test('a receiver that keeps failing: gives up after `attempts`', async (t) => {
  const r = await receiver(t, [503, 503, 503, 503, 503]);
  const cap = captureLogger();
  const n = new WebhookNotifier({ url: `${r.base}/hook`, log: cap.log, backoffMs: 10, attempts: 3 });
  n.page(page());
  await n.flush();
  t.equal(r.got.length, 3, 'exactly `attempts` tries');
  t.ok(
    cap.lines.some((l) => l['msg'] === 'page not delivered after all attempts' && l['level'] === 50),
    'an error is logged',
  );
});

t.test('a dead port gives up after `attempts` without throwing', async (t) => {
  const port = await freePort();
  const cap = captureLogger();
  const n = new WebhookNotifier({
    url: `http://127.0.0.1:${port}/hook`,
    log: cap.log,
    backoffMs: 10,
    attempts: 3,
    timeoutMs: 1000,
  });
  t.doesNotThrow(() => n.page(page()));
  t.equal(await n.flush(), undefined, 'flush resolves');
  t.same(
    cap.lines.filter((l) => l['msg'] === 'page delivery failed').map((l) => l['attempt']),
    [1, 2, 3],
  );
  t.ok(cap.lines.some((l) => l['msg'] === 'page not delivered after all attempts'));
});

t.test('a receiver that never answers: each attempt ends at timeoutMs', async (t) => {
  const r = await receiver(t);
  r.ctl.hold = true;
  const cap = captureLogger();
  const n = new WebhookNotifier({ url: `${r.base}/hook`, log: cap.log, attempts: 2, backoffMs: 10, timeoutMs: 100 });
  const t0 = performance.now();
  n.page(page());
  await n.flush();
  t.equal(r.got.length, 2, 'both attempts reached the receiver');
  t.ok(performance.now() - t0 < 5000, 'bounded by the timeout');
  t.ok(cap.lines.some((l) => l['msg'] === 'page not delivered after all attempts'));
});

t.test('page() does not wait for delivery; flush() does', async (t) => {
  const r = await receiver(t);
  r.ctl.hold = true;
  const cap = captureLogger();
  const n = new WebhookNotifier({ url: `${r.base}/hook`, log: cap.log });
  const ret: unknown = n.page(page());
  t.equal(ret, undefined, 'page() returns nothing (no promise to await)');
  await waitFor(() => r.got.length === 1, { timeoutMs: 5000, what: 'the request at the receiver' });
  t.notOk(
    cap.lines.some((l) => l['msg'] === 'page delivered'),
    'page() returned while the receiver still holds its answer',
  );

  let flushed = false;
  const f = n.flush().then(() => (flushed = true));
  // The receiver holds its answer: give the event loop several turns; flush must not resolve.
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  t.equal(flushed, false, 'flush() waits while the delivery is in flight');
  r.release();
  await f;
  t.equal(flushed, true);
  t.ok(
    cap.lines.some((l) => l['msg'] === 'page delivered'),
    'delivered by the time flush() resolved',
  );
});

t.test('a given dispatcher carries the request', async (t) => {
  const r = await receiver(t);
  let dispatched = 0;
  const agent = new Agent();
  t.teardown(() => agent.close());
  const counting: Dispatcher = agent.compose((dispatch) => (opts, handler) => {
    dispatched++;
    return dispatch(opts, handler);
  });
  const n = new WebhookNotifier({ url: `${r.base}/hook`, log: captureLogger().log, dispatcher: counting });
  n.page(page());
  await n.flush();
  t.equal(dispatched, 1, 'through the dispatcher');
  t.equal(r.got.length, 1);
});
