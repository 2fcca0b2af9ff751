// docs/design.md "Gates": a canary whose /health fails is drained on the probes alone,
// even though the traffic it serves is fine (probe failures > 5 %, docs/design.md "Numbers").
import t from 'tap';
import { FAST_PROBES, startStack } from '../fixtures/stack.js';

t.test('failing health probes drain the canary (probe_failure_ratio)', async (t) => {
  const stack = await startStack(t, { target: 30, ...FAST_PROBES });
  await stack.startSidecar();
  const traffic = stack.traffic();
  t.teardown(() => traffic.stop());
  await stack.until('weight 15', (s) => s.weight === 15, 60_000);

  stack.canary.setHealthStatus(503);
  const failAt = performance.now();
  const drained = await stack.until('phase drained', (s) => s.phase === 'drained', 15_000);
  const tookMs = performance.now() - failAt;
  t.equal(drained.weight, 0);
  t.equal(drained.drainReason, 'probe_failure_ratio', 'the probes drained it, not the traffic');
  t.ok(tookMs < 10_000, `drained ${Math.round(tookMs)} ms after /health started failing`);
  t.equal(stack.canary.errors, 0, 'the canary never answered traffic with a 5xx');

  const doc = await stack.status();
  const drain = doc.history.find((e) => e.kind === 'drain');
  const gate = drain?.gates.find((g) => g.gate === 'probe_failure_ratio');
  t.equal(gate?.verdict, 'fail');
  t.ok((gate?.value ?? 0) > 0.2 && (gate?.detail?.failures ?? 0) >= 1, 'the event carries the failures and the ratio');
  t.match(drain?.reason, /probe_failure_ratio fail: canary probe failure ratio [\d.]+ % > 20\.00 % over \d+ probes/);
  t.match(await stack.metrics(), /nginx_canary_drains_total\{service="gateway",reason="probe_failure_ratio"\} 1\b/);
  t.match(
    await stack.metrics(),
    /nginx_canary_probe_duration_seconds_count\{service="gateway",pool="canary",phase="connect"\} [1-9]/,
  );
});
