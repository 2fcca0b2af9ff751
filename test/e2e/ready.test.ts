// docs/design.md "Gates": the canary gets its first slice only after /ready answers 200
// (docs/design.md "Numbers": "start canary with weight 0 … blackhole until ready").
import t from 'tap';
import { FAST_PROBES, startStack } from '../fixtures/stack.js';
import { waitFor } from '../../src/util/wait.js';

t.test('weight stays 0 until the canary is ready, then the slice starts', async (t) => {
  const stack = await startStack(t, { target: 30, ...FAST_PROBES });
  stack.canary.setReady(false);
  await stack.startSidecar();
  const traffic = stack.traffic();
  t.teardown(() => traffic.stop());

  // The sidecar has probed /ready several times and says why it waits.
  const waiting = await stack.until(
    'the sidecar waiting for /ready',
    (s) => stack.canary.probes >= 10 && s.summary.includes('/ready not 200'),
  );
  t.equal(waiting.weight, 0, 'weight 0 while not ready');
  t.match(waiting.summary, /waiting to start \(target 30 %\): ready fail: canary \/ready not 200/);
  t.equal(stack.canary.hits, 0, 'no traffic reached the canary');
  t.match(
    waiting.gates.find((g) => g.gate === 'ready'),
    { verdict: 'fail', kind: 'hold', value: 0 },
  );

  const readyAt = Date.now();
  stack.canary.setReady(true);
  const started = await stack.until('the first slice', (s) => s.weight > 0);
  t.equal(started.weight, 5, 'the slice, once ready');
  const slice = (await stack.status()).history.find((e) => e.kind === 'slice');
  t.ok(slice && slice.at >= readyAt, 'the slice event comes after /ready turned 200');
  await t.resolves(
    waitFor(() => stack.canary.hits > 0, { timeoutMs: 10_000, what: 'canary traffic after the slice' }),
    'traffic reaches the canary after the slice',
  );
});
