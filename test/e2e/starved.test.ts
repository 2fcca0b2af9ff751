// Issue 3: nginx's max_fails ejects the canary after one refused connection
// and sends its share to the primary for fail_timeout (10 s). From outside
// that looks like a canary starved of traffic: the walk holds and says so,
// and nothing is drained (one failed attempt is not evidence of a bad canary).
import t from 'tap';
import { startStack } from '../fixtures/stack.js';
import { waitFor } from '../../src/util/wait.js';

t.test('a canary ejected by max_fails holds the walk (starved)', async (t) => {
  // Target 25: the walk completes there, so the weight cannot move on while the test works.
  const stack = await startStack(t, { target: 25 });
  await stack.startSidecar();
  const traffic = stack.traffic();
  t.teardown(() => traffic.stop());
  await waitFor(async () => (await stack.status()).services[0]?.weight === 25, {
    timeoutMs: 30_000,
    intervalMs: 50,
    what: 'weight 25',
  });

  // Refuse until nginx has tried the canary and failed (it logs a 502 attempt),
  // then serve again: nginx keeps it out for fail_timeout all the same.
  const before = stack.canary.hits;
  await stack.canary.setFault({ kind: 'refuse' });
  await waitFor(
    async () => {
      const g = (await stack.status()).services[0]?.gates.find((x) => x.gate === 'error_ratio');
      return (g?.detail?.errors ?? 0) >= 1;
    },
    { timeoutMs: 10_000, intervalMs: 20, what: 'a refused canary attempt in the window' },
  );
  await stack.canary.setFault({ kind: 'none' });
  // While it refused, /ready failed too (a hold of its own); wait for the starved verdict itself.
  const paused = await waitFor(
    async () => {
      const s = (await stack.status()).services[0];
      const g = s?.gates.find((x) => x.gate === 'starved');
      return s?.phase === 'paused' && g?.verdict === 'fail' ? s : null;
    },
    { timeoutMs: 15_000, intervalMs: 50, what: 'the walk paused by the starved gate' },
  );
  t.equal(paused.weight, 25, 'held at its weight, not drained');
  t.equal(paused.pausedBy, 'gate');
  const starved = paused.gates.find((g) => g.gate === 'starved');
  t.match(starved, { verdict: 'fail', kind: 'hold', threshold: 12.5 });
  t.ok((starved?.value ?? 100) < 12.5, `canary share ${starved?.value?.toFixed(1)} % < half of 25 %`);
  t.match(paused.summary, /starved fail: canary share [\d.]+ % < 12\.5 %/, 'status says why it holds');
  t.ok(stack.canary.hits - before < 50, 'nginx sent the canary (almost) nothing meanwhile');
  t.notOk(
    (await stack.status()).history.some((e) => e.kind === 'drain'),
    'no drain',
  );
});
