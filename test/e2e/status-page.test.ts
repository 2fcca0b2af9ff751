// README "HTTP API" (the status page): the status page (`GET /`) in headless Chromium during
// a real walk (real nginx, real backends, the sidecar as a child process):
// it renders mid-walk, its chart has one step marker per step event, a drain
// shows in red, and it works — and refreshes itself — without JavaScript. A
// full-page screenshot of the drained page is kept as a test artifact.
import t from 'tap';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { QUIET_GATES, failTrafficOnly, repoRoot, startStack } from '../fixtures/stack.js';
import { waitFor } from '../../src/util/wait.js';

/** Where test artifacts go: `NGINX_CANARY_ARTIFACTS`, else `<repo>/artifacts`. */
const artifacts = process.env['NGINX_CANARY_ARTIFACTS'] ?? path.join(repoRoot, 'artifacts');

/** Debian's Chromium, as CI installs it; the flags keep it off the network and quiet. */
const launchOptions = {
  executablePath: '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    // /dev/shm is 64 MB in a default container: Chromium's renderer can then stall on a large page.
    '--disable-dev-shm-usage',
  ],
};

/**
 * `p`, or a rejection naming `what` after `ms`: Playwright's newPage and close have no timeout of
 * their own, so a stalled browser would otherwise hang the test until tap's 180 s file timeout.
 */
async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from Chromium in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The computed value of a CSS property of the first element matching `selector` (evaluated in the page). */
async function cssOf(page: Page, selector: string, prop: 'color' | 'fill' | 'backgroundColor'): Promise<string> {
  // An expression string: the test is type-checked without the DOM lib.
  return String(await page.evaluate(`getComputedStyle(document.querySelector(${JSON.stringify(selector)})).${prop}`));
}

/** An attribute of every element matching `selector`. */
async function attrs(page: Page, selector: string, name: string): Promise<(string | null)[]> {
  return Promise.all((await page.locator(selector).all()).map((l) => l.getAttribute(name)));
}

/** `--red` of the page's light scheme (#c62828). */
const RED = 'rgb(198, 40, 40)';

t.test('the status page in headless Chromium: a walk, then a drain', async (t) => {
  const started = performance.now();
  // The page is the subject, not the gates: on a busy machine a 200 ms probe timing out (crash_loop) or one
  // slow answer among the slice's first (baseline_p95) drained or held the walk short of 15 % (CI, beside
  // two CPU hogs). The drain at the end is error_ratio's, which QUIET_GATES leaves as it is.
  const stack = await startStack(t, { target: 30, ...QUIET_GATES });
  const browser = await chromium.launch(launchOptions);
  t.teardown(() => within(20_000, 'browser.close', browser.close()));
  await stack.startSidecar();
  const traffic = stack.traffic();
  let trafficStopped = false;
  t.teardown(async () => {
    if (!trafficStopped) await traffic.stop();
  });

  const context = await within(20_000, 'newContext', browser.newContext({ viewport: { width: 1280, height: 900 } }));
  context.setDefaultTimeout(20_000);
  const page = await within(20_000, 'newPage', context.newPage());

  // Mid-walk: the first step is live.
  await stack.until('weight 15 or more', (s) => s.weight >= 15, 60_000);
  const res = await page.goto(`${stack.api}/`);
  t.equal(res?.status(), 200);
  t.match(res?.headers()['content-type'], /^text\/html/);
  const heading = (await page.locator('section.service h2').first().textContent()) ?? '';
  t.match(
    heading,
    /^gateway: (15|25|30) % of 30 % \((step|paused|complete)\)$/,
    `the heading says weight, target and phase mid-walk: "${heading}"`,
  );
  const section = page.locator('section.service[data-service="gateway"]');
  t.equal(await section.getAttribute('data-target'), '30');
  t.match(await section.locator('.bignums').textContent(), /live (15|25|30) % · target 30 %/);
  t.equal(await page.locator('table.gates tbody tr').count(), 7, 'a row per gate');
  const verdicts = await attrs(page, 'table.gates tbody tr', 'data-verdict');
  t.ok(
    verdicts.every((v) => ['pass', 'fail', 'inconclusive'].includes(String(v))),
    `each gate has a verdict: ${JSON.stringify(verdicts)}`,
  );
  t.match(
    await page.locator('table.gates tr[data-gate="error_ratio"] td').last().textContent(),
    /^error_ratio (pass|inconclusive|fail): canary /,
    'the numbers behind the error gate',
  );
  t.equal(await page.locator('svg.weight-chart').count(), 1, 'the chart is inline SVG');
  t.ok((await page.locator('svg.weight-chart .marker.slice').count()) >= 1, 'the slice is on the chart');

  // The walk completes: the chart has one step marker per step event in the history.
  const done = await stack.until('weight 30, complete', (s) => s.weight === 30 && s.phase === 'complete', 60_000);
  t.equal(done.weight, 30);
  await page.reload();
  const doc = await stack.status();
  const history = doc.history.filter((e) => e.service === 'gateway');
  const stepEvents = history.filter((e) => e.kind === 'step');
  t.equal(stepEvents.length, 3, 'the walk stepped 5 → 15 → 25 → 30');
  t.equal(await page.locator('svg.weight-chart .marker.step').count(), stepEvents.length, 'one step marker per step');
  t.equal(await page.locator('svg.weight-chart .marker.slice').count(), 1, 'one slice marker');
  const stepWeights = (await attrs(page, 'svg.weight-chart .marker.step', 'data-weight'))
    .map(Number)
    .sort((a, b) => a - b);
  t.same(stepWeights, [15, 25, 30], 'the step markers sit at the weights stepped to');
  t.match(await page.locator('section.service h2').first().textContent(), 'gateway: 30 % of 30 % (complete)');
  t.equal(await page.locator('table.events tr[data-kind="step"]').count(), 3, 'each step is in the event table');
  t.match(
    await page.locator('table.events tr[data-kind="step"] details').first().textContent(),
    /7 of 7 gates passed[\s\S]*error_ratio pass: canary 5xx ratio 0\.00 % ≤ 0\.50 % over \d+ requests/,
    'a step shows the numbers behind it',
  );
  t.ok((await page.locator('table.snapshots tbody tr').count()) >= 4, 'a snapshot per change is listed');

  // The canary fails: it drains, and the page shows it in red.
  await failTrafficOnly(stack.canary);
  const drained = await stack.until('drained', (s) => s.phase === 'drained' && s.weight === 0, 10_000);
  t.equal(drained.drainReason, 'error_ratio');
  await traffic.stop();
  trafficStopped = true;
  await page.reload();
  t.equal(
    await page.locator('section.service h2').first().textContent(),
    'gateway: 0 % of 30 % (drained)',
    'the heading says drained',
  );
  t.equal(await cssOf(page, 'section.service h2.drained', 'color'), RED, 'the drained heading is red');
  t.equal(await page.locator('svg.weight-chart .marker.drain').count(), 1, 'one drain marker');
  t.equal(await cssOf(page, 'svg.weight-chart .marker.drain', 'fill'), RED, 'the drain marker is red');
  t.equal(await page.locator('svg.weight-chart .span.drained').count(), 1, 'the drained span is shaded');
  t.equal(await cssOf(page, 'p.alert', 'backgroundColor'), RED, 'a red banner names the drained service');
  t.equal(await page.locator('p.alert').textContent(), 'DRAINED: gateway');
  t.match(await page.locator('p.drain-note').textContent(), /Drained by the error_ratio gate/);
  const drainRow = page.locator('table.events tr[data-kind="drain"]');
  t.equal(await drainRow.count(), 1);
  t.match(
    await drainRow.locator('ul.numbers li.fail').first().textContent(),
    /^error_ratio fail: canary 5xx ratio \d+\.\d\d % > 0\.50 % over \d+ requests \(\d+ errors; sequential test/,
    'the drain shows the numbers behind it',
  );
  t.match(await page.title(), /^DRAINED: gateway · nginx-canary$/);

  await mkdir(artifacts, { recursive: true });
  const shot = path.join(artifacts, 'status-page.png');
  await page.screenshot({ path: shot, fullPage: true });
  t.comment(`screenshot: ${shot}`);
  await within(20_000, 'context.close', context.close());

  // Without JavaScript: the same content, no script at all, and the page still refreshes itself (meta refresh).
  const noJs = await within(
    20_000,
    'newContext',
    browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 900 } }),
  );
  noJs.setDefaultTimeout(20_000);
  const plain = await within(20_000, 'newPage', noJs.newPage());
  await plain.goto(`${stack.api}/`);
  t.equal(await plain.locator('script').count(), 0, 'the page ships no script');
  t.equal(await plain.locator('section.service h2').first().textContent(), 'gateway: 0 % of 30 % (drained)');
  t.equal(await plain.locator('svg.weight-chart .marker.step').count(), 3, 'the chart without JavaScript');
  t.equal(await plain.locator('svg.weight-chart .marker.drain').count(), 1);
  t.equal(await plain.locator('table.gates tbody tr').count(), 7);
  t.ok((await plain.locator('table.events tbody tr').count()) >= 5, 'the events without JavaScript');
  const refresh = await plain.locator('meta[http-equiv="refresh"]').getAttribute('content');
  t.equal(refresh, '5', 'a meta refresh every 5 s');
  await t.resolves(
    plain.waitForRequest((r) => r.url() === `${stack.api}/` && r.isNavigationRequest(), { timeout: 8000 }),
    'the page reloaded itself without JavaScript',
  );
  // The same tab to ?refresh=off. (Closing a tab that refreshes itself stalled Chromium under load:
  // page.close() never answered.) A refresh due at that moment can interrupt the goto: retry it.
  await waitFor(
    () =>
      plain.goto(`${stack.api}/?refresh=off`).then(
        () => true,
        () => false,
      ),
    { timeoutMs: 30_000, intervalMs: 100, what: 'the tab on ?refresh=off' },
  );
  t.equal(await plain.locator('meta[http-equiv="refresh"]').count(), 0, '?refresh=off stops refreshing');
  await within(20_000, 'context.close', noJs.close());

  t.equal(await stack.stopSidecar(), 0, 'SIGTERM stops the sidecar cleanly');
  t.comment(`status page test took ${Math.round(performance.now() - started)} ms`);
});
