// docs/design.md "Gates" (`starved`): nginx's max_fails ejects the canary after one refused connection
// and sends its share to the primary for fail_timeout (10 s). From outside
// that looks like a canary starved of traffic: the walk holds and says so,
// and nothing is drained (one failed attempt is not evidence of a bad canary).
import t from 'tap';
import { startStack } from '../fixtures/stack.js';

t.test('a canary ejected by max_fails holds the walk (starved)', async (t) => {
  // Target 25: the walk completes there, so the weight cannot move on while the test works.
  const stack = await startStack(t, { target: 25 });
  await stack.startSidecar();
  const traffic = stack.traffic();
  t.teardown(() => traffic.stop());
  await stack.until('weight 25', (s) => s.weight === 25, 30_000);

  // Refuse: nginx tries the canary and fails (it logs a 502 attempt).
  const before = stack.canary.hits;
  await stack.canary.setFault({ kind: 'refuse' });
  await stack.until(
    'a refused canary attempt in the window',
    (s) => (s.gates.find((x) => x.gate === 'error_ratio')?.detail?.errors ?? 0) >= 1,
    10_000,
  );
  // Every rendered upstream has a shared zone (docs/design.md "Rendering"), so the first refusal ejects the
  // canary from every nginx worker (test/nginx/zone.test.ts), and nginx keeps it out for fail_timeout (10 s)
  // after that refusal. Off again at once: the refusals also fail the canary's health probes, and a CI run
  // beside two busy loops, refusing until the window's share fell under 6.25 % (seconds at that load), saw
  // enough failed probes to drain by probe_failure_ratio. The window (5 s) then slides past the canary's
  // attempts from before well within the 10 s.
  await stack.canary.setFault({ kind: 'none' });
  await stack.until(
    'the canary ejected by nginx (share < 6.25 %)',
    (s) => (s.gates.find((x) => x.gate === 'starved')?.value ?? 100) < 6.25,
  );
  // While it refused, /ready failed too (a hold of its own, named first in the summary: it comes before starved):
  // wait for the starved verdict itself with /ready answering again (on a loaded machine the probe that sees
  // /ready recover can come after the starved verdict).
  const paused = await stack.until(
    'the walk paused by the starved gate alone',
    (s) =>
      s.phase === 'paused' &&
      s.gates.find((x) => x.gate === 'starved')?.verdict === 'fail' &&
      s.gates.find((x) => x.gate === 'ready')?.verdict === 'pass',
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
