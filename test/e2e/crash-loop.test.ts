// docs/design.md "Gates": a canary that keeps dying and coming back (3 crashes
// in 5 min, docs/design.md "Numbers") is drained by the crash-loop gate. The probe failure ratio is set
// high here so that the transitions, not the failed probes, decide.
import t from 'tap';
import { FAST_PROBES, startStack } from '../fixtures/stack.js';

t.test('a crash-looping canary is drained (crash_loop)', async (t) => {
  const stack = await startStack(t, { target: 30, ...FAST_PROBES, probeFailureRatio: '60%' });
  await stack.startSidecar();
  const traffic = stack.traffic();
  t.teardown(() => traffic.stop());
  await stack.until('weight 15', (s) => s.weight === 15, 60_000);

  // Down 250 ms in every 850 ms: each outage catches about one probe.
  await stack.canary.setFault({ kind: 'crash_loop', upMs: 600, downMs: 250 });
  const drained = await stack.until('phase drained', (s) => s.phase === 'drained', 20_000);
  await stack.canary.setFault({ kind: 'none' });
  t.equal(drained.weight, 0);
  t.equal(drained.drainReason, 'crash_loop');
  const drain = (await stack.status()).history.find((e) => e.kind === 'drain');
  const gate = drain?.gates.find((g) => g.gate === 'crash_loop');
  t.match(gate, { verdict: 'fail', threshold: 3 });
  t.ok((gate?.value ?? 0) >= 3, `${gate?.value} healthy→unhealthy transitions`);
  t.match(drain?.reason, /crash_loop fail: canary restarts \d+ ≥ 3 over \d+ probes/);
  const statuses = await stack.send(200);
  t.ok(
    statuses.every((s) => s === 200),
    'clients never saw the crashes: nginx retried on the primary, then the canary was drained',
  );
});
