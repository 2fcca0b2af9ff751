// Issue 4, acceptance 2: the pager path on the real programs, on loopback.
// 1. A drain → the NginxCanaryDrained rule (prometheus/nginx-canary.rules.yml)
//    fires in Debian's Prometheus → Debian's Alertmanager delivers it to a
//    webhook receiver this test runs.
// 2. The sidecar's direct push (alerts.webhook_url = Alertmanager's
//    /api/v2/alerts) reaches Alertmanager, which delivers it the same way.
// Both must carry the same label set, {alertname, service, reason, severity},
// so that Alertmanager merges the rule's alert and the push into one page.
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { startStack, repoRoot, type Stack } from '../fixtures/stack.js';
import { startAlertmanager, startPrometheus, startWebhookReceiver, type WebhookAlert } from '../fixtures/prometheus.js';
import { waitFor } from '../../src/util/wait.js';

/** The shipped rules file (its path is in the README). */
const RULES = path.join(repoRoot, 'prometheus', 'nginx-canary.rules.yml');
const ALERT = 'NginxCanaryDrained';
/** The label set both the rule and the push must give a drain (metrics contract, issue 4). */
const LABELS = { alertname: ALERT, service: 'gateway', reason: 'error_ratio', severity: 'page' };

const isDrainAlert = (a: WebhookAlert): boolean => a.labels['alertname'] === ALERT;

/**
 * Walks the stack's gateway to 15 % under traffic, makes the canary answer
 * 500 and waits for the drain. Resolves to the drain event's time (epoch ms,
 * from the sidecar's history) and the traffic, still running.
 */
async function drainAt15(stack: Stack): Promise<{ drainAt: number; traffic: { stop(): Promise<number> } }> {
  const traffic = stack.traffic();
  await stack.until('weight 15', (s) => s.weight === 15, 30_000);
  await stack.canary.setFault({ kind: 'status', status: 500 });
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
  await waitFor(
    async () => {
      const r = await request(`${prom.url}/api/v1/query?query=${encodeURIComponent('up{job="nginx-canary"}')}`);
      const body = (await r.body.json()) as { data?: { result?: { value: [number, string] }[] } };
      return body.data?.result?.[0]?.value[1] === '1';
    },
    { timeoutMs: 15_000, intervalMs: 100, what: 'Prometheus scraping the sidecar (up == 1)' },
  );

  const { drainAt, traffic } = await drainAt15(stack);
  t.equal(
    hook.deliveries.flatMap((d) => d.payload.alerts).filter(isDrainAlert).length,
    0,
    `no ${ALERT} delivered before the drain`,
  );
  const got = await hook
    .waitForAlert(isDrainAlert, { timeoutMs: 30_000, what: `${ALERT} at the webhook receiver` })
    .catch((err: unknown) => {
      throw new Error(
        `${(err as Error).message}\n--- prometheus ---\n${prom.stderr()}\n--- alertmanager ---\n${am.stderr()}`,
      );
    });
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
    .catch((err: unknown) => {
      throw new Error(
        `${(err as Error).message}\n--- sidecar ---\n${stack.output()}\n--- alertmanager ---\n${am.stderr()}`,
      );
    });
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
