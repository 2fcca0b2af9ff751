// Acceptance 2: real nginx, two real backends, real traffic: target 30 with
// ~1 s soaks walks 5 → 15 → 25 → 30, and the split measured at the backends
// over 2,000 requests is 30 % ± 2.
import t from 'tap';
import { startStack, raisesIn } from '../fixtures/stack.js';
import { waitFor } from '../../src/util/wait.js';

t.test('a walk to 30 % through the real nginx', async (t) => {
  const stack = await startStack(t, { target: 30 });
  await stack.startSidecar();
  const traffic = stack.traffic();
  const doc = await waitFor(
    async () => {
      const s = await stack.status();
      return s.services[0]?.weight === 30 && s.services[0].phase === 'complete' ? s : null;
    },
    { timeoutMs: 40_000, intervalMs: 100, what: 'weight 30, phase complete' },
  );
  await traffic.stop();

  const raises = raisesIn(doc.history);
  t.same(
    raises.map((e) => e.to),
    [5, 15, 25, 30],
    'the walk went 5 → 15 → 25 → 30',
  );
  for (const e of raises.slice(1)) {
    t.ok(e.gates.length > 0 && e.gates.every((g) => g.verdict === 'pass'), `step to ${e.to} rested on passing gates`);
  }

  stack.primary.resetCounts();
  stack.canary.resetCounts();
  const statuses = await stack.send(2000);
  t.equal(statuses.length, 2000);
  t.ok(
    statuses.every((s) => s === 200),
    'every request answered 200',
  );
  const share = (100 * stack.canary.hits) / (stack.canary.hits + stack.primary.hits);
  t.ok(Math.abs(share - 30) <= 2, `canary share measured at the backends is ${share.toFixed(2)} % (30 ± 2)`);

  const metrics = await stack.metrics();
  t.match(metrics, /nginx_canary_weight_percent\{service="gateway"\} 30/);
  t.match(metrics, /nginx_canary_phase\{service="gateway",phase="complete"\} 1/);
  t.match(metrics, /nginx_canary_reloads_total\{result="ok"\} [1-9]/);
  t.equal(await stack.stopSidecar(), 0, 'SIGTERM stops the sidecar cleanly');
});
