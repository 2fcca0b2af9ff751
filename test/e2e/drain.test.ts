// Acceptance 3: the canary starts answering 500 at 15 %: weight 0 within 5 s,
// drains_total 1, phase drained, and no request reaches the canary afterwards.
import t from 'tap';
import { failTrafficOnly, startStack } from '../fixtures/stack.js';

t.test('a failing canary is drained to 0 and stays there', async (t) => {
  const stack = await startStack(t, { target: 30 });
  await stack.startSidecar();
  const traffic = stack.traffic();
  await stack.until('weight 15', (s) => s.weight === 15, 60_000);

  await failTrafficOnly(stack.canary);
  const faultAt = performance.now();
  const drained = await stack.until(
    'phase drained at weight 0',
    (s) => s.weight === 0 && s.phase === 'drained',
    10_000,
  );
  const tookMs = performance.now() - faultAt;
  t.ok(tookMs < 5000, `drained ${Math.round(tookMs)} ms after the canary started answering 500 (< 5 s)`);
  t.equal(drained.drainReason, 'error_ratio');

  const metrics = await stack.metrics();
  t.match(metrics, /nginx_canary_drains_total\{service="gateway",reason="error_ratio"\} 1\b/);
  t.match(metrics, /nginx_canary_phase\{service="gateway",phase="drained"\} 1/);

  await traffic.stop();
  stack.canary.resetCounts();
  stack.primary.resetCounts();
  const statuses = await stack.send(500);
  t.equal(stack.canary.hits, 0, 'no request reaches the canary after the drain');
  t.equal(stack.primary.hits, 500);
  t.ok(statuses.every((s) => s === 200));

  const doc = await stack.status();
  const drain = doc.history.find((e) => e.kind === 'drain');
  t.ok(drain, 'a drain event is in the history');
  const gate = drain?.gates.find((g) => g.gate === 'error_ratio');
  t.equal(gate?.verdict, 'fail');
  // The numbers behind it: the sequential test's statistic reached its bound on the errors it counted.
  // Not a sample count: a canary answering only 5xx drains on its first few attempts (drain-fast.test.ts),
  // so right after a step (the window starts at the weight change) the count can be as low as 4.
  const detail = gate?.detail ?? {};
  const errors = detail['errors'] ?? 0;
  const numbers = `value ${gate?.value}, samples ${gate?.samples}, errors ${errors}, statistic ${detail['statistic']}, bound ${detail['bound']}`;
  t.ok((gate?.value ?? 0) > 0.005, `the canary's 5xx ratio is over the 0.5 % threshold (${numbers})`);
  t.ok(errors >= 1 && (gate?.samples ?? 0) >= errors, `errors counted among the attempts (${numbers})`);
  t.ok((detail['statistic'] ?? 0) >= (detail['bound'] ?? Infinity), `the statistic reached its bound (${numbers})`);
  t.equal(doc.services[0]?.weight, 0, 'still drained');
});
