// README "Alerts and dashboards": the pager path on the real programs, on loopback.
// 1. A drain → the NginxCanaryDrained rule (prometheus/nginx-canary.rules.yml)
//    fires in Debian's Prometheus → Debian's Alertmanager delivers it to a
//    webhook receiver this test runs.
// 2. The sidecar's direct push (alerts.webhook_url = Alertmanager's
//    /api/v2/alerts) reaches Alertmanager, which delivers it the same way.
// Both must carry the same label set, {alertname, service, reason, severity},
// so that Alertmanager merges the rule's alert and the push into one page.
// 3. Both paths at once: the push pages first, the rule's copy merges into the
//    same Alertmanager alert, and nobody is paged twice.
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { failTrafficOnly, repoRoot, sample, startStack, type Stack } from '../fixtures/stack.js';
import { startAlertmanager, startPrometheus, startWebhookReceiver, type WebhookAlert } from '../fixtures/prometheus.js';
import { waitFor } from '../../src/util/wait.js';

/** The shipped rules file (its path is in the README). */
const RULES = path.join(repoRoot, 'prometheus', 'nginx-canary.rules.yml');
const ALERT = 'NginxCanaryDrained';
/** The label set both the rule and the push must give a drain (README "Alerts and dashboards", direct push). */
const LABELS = { alertname: ALERT, service: 'gateway', reason: 'error_ratio', severity: 'page' };

const isDrainAlert = (a: WebhookAlert): boolean => a.labels['alertname'] === ALERT;

/** Waits (15 s) until Prometheus at `promUrl` has scraped the sidecar (`up{job="nginx-canary"} == 1`), so a rule sees its series. */
async function scraping(promUrl: string): Promise<void> {
  await waitFor(
    async () => {
      const r = await request(`${promUrl}/api/v1/query?query=${encodeURIComponent('up{job="nginx-canary"}')}`);
      const body = (await r.body.json()) as { data?: { result?: { value: [number, string] }[] } };
      return body.data?.result?.[0]?.value[1] === '1';
    },
    { timeoutMs: 15_000, intervalMs: 100, what: 'Prometheus scraping the sidecar (up == 1)' },
  );
}

/** A `.catch` handler for a wait: rethrows its error with each program's output (read at failure time) appended. */
function withOutput(outputs: Record<string, () => string>): (err: unknown) => never {
  return (err) => {
    const logs = Object.entries(outputs).map(([name, out]) => `\n--- ${name} ---\n${out()}`);
    throw new Error(`${(err as Error).message}${logs.join('')}`);
  };
}

/**
 * Walks the stack's gateway to 15 % under traffic, makes the canary answer
 * 500 and waits for the drain. Resolves to the drain event's time (epoch ms,
 * from the sidecar's history) and the traffic, still running.
 */
async function drainAt15(stack: Stack): Promise<{ drainAt: number; traffic: { stop(): Promise<number> } }> {
  const traffic = stack.traffic();
  await stack.until('weight 15', (s) => s.weight === 15, 60_000);
  await failTrafficOnly(stack.canary);
  await stack.until('phase drained at weight 0', (s) => s.weight === 0 && s.phase === 'drained', 10_000);
  const drain = (await stack.status()).history.find((e) => e.kind === 'drain');
  if (!drain) throw new Error('drained, but no drain event in the history');
  return { drainAt: drain.at, traffic };
}

t.test('drain → Prometheus rule fires → Alertmanager → webhook', async (t) => {
  const hook = await startWebhookReceiver(t);
  const am = await startAlertmanager(t, { webhookUrl: hook.url });
  const stack = await startStack(t, { target: 30 });
  await stack.startSidecar();
  const prom = await startPrometheus(t, {
    scrapeTarget: new URL(stack.api).host,
    ruleFiles: [RULES],
    alertmanager: am.address,
  });
  t.comment(`Prometheus ready ${Math.round(prom.readyMs)} ms after spawn, Alertmanager ${Math.round(am.readyMs)} ms`);
  const rules = await request(`${prom.url}/api/v1/rules?type=alert`);
  const groups = ((await rules.body.json()) as { data: { groups: { rules: { name: string }[] }[] } }).data.groups;
  t.ok(
    groups.some((g) => g.rules.some((r) => r.name === ALERT)),
    `Prometheus loaded ${ALERT} from ${path.relative(repoRoot, RULES)}`,
  );
  // Prometheus has scraped the sidecar (so the rule sees its series) before the drain.
  await scraping(prom.url);

  const { drainAt, traffic } = await drainAt15(stack);
  t.equal(
    hook.deliveries.flatMap((d) => d.payload.alerts).filter(isDrainAlert).length,
    0,
    `no ${ALERT} delivered before the drain`,
  );
  const got = await hook
    .waitForAlert(isDrainAlert, { timeoutMs: 30_000, what: `${ALERT} at the webhook receiver` })
    .catch(withOutput({ prometheus: () => prom.stderr(), alertmanager: () => am.stderr() }));
  const tookMs = got.delivery.wallAt - drainAt;
  t.comment(`drain → webhook via Prometheus rule and Alertmanager: ${tookMs} ms`);
  t.ok(tookMs < 20_000, `delivered ${tookMs} ms after the drain (< 20 s)`);
  await traffic.stop();

  t.strictSame(got.alert.labels, LABELS, 'the rule alert has exactly {alertname, service, reason, severity=page}');
  t.equal(got.alert.status, 'firing');
  t.equal(got.payload.status, 'firing');
  t.equal(got.payload.version, '4', 'Alertmanager webhook payload v4');
  t.strictSame(got.payload.groupLabels, { alertname: ALERT, service: 'gateway' }, 'grouped by alertname and service');
  const text = `${got.alert.annotations['summary'] ?? ''}\n${got.alert.annotations['description'] ?? ''}`;
  t.ok(got.alert.annotations['summary'], 'has a summary');
  t.ok(got.alert.annotations['description'], 'has a description');
  t.match(text, /gateway/, 'the annotations name the service');
  t.match(text, /error_ratio|error ratio/, 'the annotations name the gate');
  t.match(
    got.alert.annotations['description'] ?? '',
    /threshold 0\.5\s*%/,
    "the description gives the gate's threshold (error_ratio 0.5 % in the stack's weights.yaml)",
  );
  t.comment(`annotations: ${JSON.stringify(got.alert.annotations)}`);

  const r = await request(`${prom.url}/api/v1/alerts`);
  const alerts = ((await r.body.json()) as { data: { alerts: { labels: Record<string, string>; state: string }[] } })
    .data.alerts;
  const mine = alerts.filter((a) => a.labels['alertname'] === ALERT);
  t.equal(mine.length, 1, `Prometheus has one ${ALERT} alert`);
  t.equal(mine[0]?.state, 'firing', 'firing in Prometheus');
  t.strictSame(mine[0]?.labels, LABELS, 'with the same labels in Prometheus');
});

t.test('direct push on drain → Alertmanager → webhook', async (t) => {
  const hook = await startWebhookReceiver(t);
  const am = await startAlertmanager(t, { webhookUrl: hook.url });
  const stack = await startStack(t, { target: 30, webhookUrl: `${am.url}/api/v2/alerts` });
  await stack.startSidecar();

  const { drainAt, traffic } = await drainAt15(stack);
  const got = await hook
    .waitForAlert(isDrainAlert, { timeoutMs: 15_000, what: `${ALERT} at the webhook receiver` })
    .catch(withOutput({ sidecar: () => stack.output(), alertmanager: () => am.stderr() }));
  const tookMs = got.delivery.wallAt - drainAt;
  t.comment(`drain → webhook via the direct push and Alertmanager: ${tookMs} ms`);
  t.ok(tookMs < 10_000, `delivered ${tookMs} ms after the drain (< 10 s)`);
  await traffic.stop();

  t.strictSame(got.alert.labels, LABELS, 'the pushed alert has exactly {alertname, service, reason, severity=page}');
  t.equal(got.alert.status, 'firing');
  t.equal(got.payload.status, 'firing');
  t.match(got.alert.annotations['summary'] ?? '', /gateway/, 'the summary names the service');
  t.match(got.alert.annotations['summary'] ?? '', /error_ratio/, 'the summary names the gate');
  t.comment(`annotations: ${JSON.stringify(got.alert.annotations)}`);
  t.equal(
    hook.deliveries.flatMap((d) => d.payload.alerts).filter(isDrainAlert).length,
    1,
    'one page for one drain (deduplicated)',
  );
});

/** An alert as Alertmanager's `GET /api/v2/alerts` lists it (the fields read here). */
interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** RFC 3339. */
  startsAt: string;
  /** Absent or empty for an alert posted without one (the sidecar's push); Prometheus's graph link otherwise. */
  generatorURL?: string;
  status: { state: string };
}

/** One sample of Alertmanager's own `/metrics` (0 when absent). */
async function amSample(amUrl: string, series: string): Promise<number> {
  const r = await request(`${amUrl}/metrics`, { headersTimeout: 1000, bodyTimeout: 1000 });
  const v = sample(await r.body.text(), series);
  return Number.isNaN(v) ? 0 : v;
}

t.test('push and rule together → one alert in Alertmanager → one page', async (t) => {
  // Alertmanager flushes a group every group_interval; a flush notifies only
  // when the group's set of firing alerts changed or repeat_interval passed.
  // With 1 s / 1 h, a second alert in the group (the rule's copy under other
  // labels) would be paged within ~1 s of reaching Alertmanager, while the
  // merged one must not be paged again for an hour.
  const GROUP_INTERVAL_MS = 1000;
  const hook = await startWebhookReceiver(t);
  const am = await startAlertmanager(t, {
    webhookUrl: hook.url,
    groupWait: '0s',
    groupInterval: `${GROUP_INTERVAL_MS / 1000}s`,
    repeatInterval: '1h',
  });
  const stack = await startStack(t, { target: 30, webhookUrl: `${am.url}/api/v2/alerts` });
  await stack.startSidecar();
  // resendDelay 1s: Prometheus re-sends the firing alert every evaluation or
  // two, so Alertmanager keeps receiving updates of the merged alert during
  // the counting window below (at the default 1m it would send once).
  const prom = await startPrometheus(t, {
    scrapeTarget: new URL(stack.api).host,
    ruleFiles: [RULES],
    alertmanager: am.address,
    resendDelay: '1s',
  });
  await scraping(prom.url);
  const failWithOutput = withOutput({
    sidecar: () => stack.output(),
    prometheus: () => prom.stderr(),
    alertmanager: () => am.stderr(),
  });
  const isMine = (a: { labels: Record<string, string> }): boolean =>
    a.labels['alertname'] === ALERT && a.labels['service'] === 'gateway';
  /** Notifications (webhook POSTs) that carry this service's drain alert. */
  const pages = (): number => hook.deliveries.filter((d) => d.payload.alerts.some(isMine)).length;
  const amAlerts = async (): Promise<AmAlert[]> => {
    const r = await request(`${am.url}/api/v2/alerts`, { headersTimeout: 1000, bodyTimeout: 1000 });
    return ((await r.body.json()) as AmAlert[]).filter((a) => isMine(a) && a.status.state === 'active');
  };

  const { drainAt, traffic } = await drainAt15(stack);
  try {
    // 1. The push pages.
    const first = await hook
      .waitForAlert(isMine, { timeoutMs: 10_000, what: `${ALERT} at the webhook receiver` })
      .catch(failWithOutput);
    t.comment(`drain → page (push): ${first.delivery.wallAt - drainAt} ms`);

    // 2. The rule fires in Prometheus ...
    const fired = await waitFor(
      async () => {
        const r = await request(`${prom.url}/api/v1/alerts`);
        const body = (await r.body.json()) as {
          data: { alerts: { labels: Record<string, string>; state: string; activeAt: string }[] };
        };
        return body.data.alerts.find((a) => isMine(a) && a.state === 'firing');
      },
      { timeoutMs: 15_000, intervalMs: 100, what: `${ALERT} firing in Prometheus` },
    ).catch(failWithOutput);
    const activeAt = Date.parse(fired.activeAt);
    t.comment(`drain → rule active in Prometheus: ${activeAt - drainAt} ms`);
    t.strictSame(fired.labels, LABELS, 'the rule alert has the push’s label set');

    // ... and its copy reaches Alertmanager: the newer copy's generatorURL
    // (Prometheus's graph link) replaces the push's empty one in the merged alert.
    const merged = await waitFor(
      async () => {
        const mine = await amAlerts();
        // Alertmanager leaves an empty generatorURL out of its answer: wait for Prometheus's link itself.
        return mine.some((a) => /nginx_canary_drained/.test(a.generatorURL ?? '')) ? mine : null;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: `Prometheus's ${ALERT} in Alertmanager` },
    ).catch(failWithOutput);
    const mergedAt = performance.now();
    const mergedWall = Date.now();
    t.comment(`drain → rule's copy merged in Alertmanager: ${mergedWall - drainAt} ms`);
    t.equal(merged.length, 1, `Alertmanager holds exactly one active ${ALERT} for gateway`);
    t.strictSame(merged[0]?.labels, LABELS, 'with the shared label set');
    t.match(merged[0]?.generatorURL ?? '', /nginx_canary_drained/, "updated by Prometheus's copy (its generatorURL)");
    t.equal(
      Date.parse(merged[0]?.startsAt ?? ''),
      drainAt,
      "startsAt is the push's (the drain event's time): the merge kept the earlier start",
    );
    t.ok(activeAt > drainAt, "the rule's copy starts later (its activeAt), so the merge is visible in startsAt");

    // 3. Count pages only after Alertmanager has run the group's notify pipeline
    // at least twice with the merged alert (each run queries the notification
    // log once: alertmanager_nflog_queries_total; a run ends with its webhook
    // POST, so the second run proves the first one's page, if any, was
    // recorded) and at least two group_intervals have passed. A second page
    // ends the wait at once.
    const q0 = await amSample(am.url, 'alertmanager_nflog_queries_total');
    const windowEnd = await waitFor(
      async () => {
        if (pages() > 1) return 'a second page';
        const q = await amSample(am.url, 'alertmanager_nflog_queries_total');
        return performance.now() - mergedAt >= 2 * GROUP_INTERVAL_MS && q >= q0 + 2 ? `${q - q0} pipeline runs` : null;
      },
      { timeoutMs: 10 * GROUP_INTERVAL_MS, intervalMs: 100, what: 'two group_intervals and two notify runs' },
    );
    const windowMs = Math.round(performance.now() - mergedAt);
    const received = await amSample(am.url, 'alertmanager_alerts_received_total{status="firing",version="v2"}');
    const sent = await amSample(am.url, 'alertmanager_notifications_total{integration="webhook"}');
    t.comment(
      `counting window: ${windowMs} ms after the merge (${windowEnd}); Alertmanager received ${received} firing alerts, sent ${sent} notifications`,
    );
    t.equal(pages(), 1, `exactly one page for ${ALERT} on gateway (push and rule merged, repeat_interval 1h)`);
    t.equal(sent, 1, 'Alertmanager counts one webhook notification');
    t.ok(received >= 2, 'Alertmanager received both the push and at least one copy from Prometheus');
    t.equal(first.payload.alerts.length, 1, 'the page carries one alert');
    t.equal(first.alert.generatorURL, '', "the page is the push's (no generatorURL): the push arrived first");
    // A figure, not an assertion: the margin depends on where the drain falls between scrapes.
    t.comment(`page ${activeAt - first.delivery.wallAt} ms before the rule became active in Prometheus`);
    t.strictSame(first.alert.labels, LABELS, 'the page has the shared label set');
    t.equal((await amAlerts()).length, 1, `still exactly one active ${ALERT} in Alertmanager after the window`);
  } finally {
    await traffic.stop();
  }
});
