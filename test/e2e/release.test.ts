// The whole release on the real nginx: a new canary build (new servers, or a new version at the same
// address) is a new walk from the slice; promote ends a release that reached its target.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { Backend } from '../../src/demo/backend.js';
import { sample, spawnCli, startStack } from '../fixtures/stack.js';

t.test('a new canary build walks from the slice; promote ends the release', async (t) => {
  // Probes every second with a 1 s bound and a connect_p95 hold far above loopback: on a busy machine a
  // slow probe must not pause the walk just before promote (this test is about releases, not the gates).
  const stack = await startStack(t, { target: 35, probeInterval: '1s', minProbes: 2 });
  await writeFile(
    stack.configFile,
    (await readFile(stack.configFile, 'utf8')).replace('connect_p95: 120ms', 'connect_p95: 5s'),
  );
  const next = await Backend.start({ name: 'canary-v2' });
  t.teardown(() => next.close());
  await stack.startSidecar();
  const traffic = stack.traffic();
  t.teardown(() => traffic.stop());

  // promote before the target: refused with the reason, nothing changed. The canary's /ready answers 503 meanwhile
  // (the ready gate holds the walk at the slice): spawning the CLI takes seconds on a loaded machine, and with 1 s
  // soaks the walk had reached its target before the promote landed.
  await stack.until('the slice', (s) => s.weight >= 5, 60_000);
  stack.canary.setReady(false);
  const early = spawnCli(stack.dir, stack.configFile, ['promote', 'gateway']);
  t.equal((await early.exited).code, 1, 'promote before the target exits 1');
  t.match(
    early.stderr(),
    /cannot promote gateway: the walk has not reached its target: [\d.]+ % of 35 % \(phase \w+\); nothing was changed\. Wait until/,
  );
  stack.canary.setReady(true);

  await stack.until('the walk complete at 35', (s) => s.weight === 35 && s.phase === 'complete', 90_000);

  // 1. The operator points the canary at a new build's address.
  const text = await readFile(stack.configFile, 'utf8');
  await writeFile(stack.configFile, text.replace(`server: ${stack.canary.addr},`, `server: ${next.addr},`));
  const dropped = await stack.until('the new canary at or below the slice', (s) => s.weight <= 5, 15_000);
  t.ok(dropped.weight <= 5, `weight ${dropped.weight} % ≤ the slice right after the edit was read`);
  let doc = await stack.status();
  const release = doc.history.find((e) => e.kind === 'release');
  t.match(release, { from: 35, to: 0, reason: new RegExp(`canary servers ${stack.canary.addr} → ${next.addr}`) });
  t.notOk(
    doc.history.some((e) => e.kind !== 'release' && e.at >= (release?.at ?? 0) && e.to > 5 && e.kind !== 'target'),
    'no weight above the slice after the release event before the slice soak',
  );
  await stack.until('the new build walks: slice then a step', (s) => s.weight >= 15, 60_000);
  doc = await stack.status();
  const after = doc.history.filter((e) => e.at >= (release?.at ?? 0));
  t.match(
    after.filter((e) => e.kind === 'slice' || e.kind === 'step').map((e) => e.to),
    [5, 15],
    'the new build walked 0 → 5 → 15',
  );

  // 2. A new version at the same address is a new build too.
  const v2 = spawnCli(stack.dir, stack.configFile, ['release', 'gateway', 'v2']);
  t.equal((await v2.exited).code, 0, v2.output());
  t.match(v2.stdout(), /gateway: version \(none\) → v2 written to/);
  t.match(await readFile(stack.configFile, 'utf8'), /^ +version: "?v2"?$/m, 'weights.yaml now names v2');
  await stack.until('the v2 release drops the canary', (s) => s.weight <= 5, 15_000);
  doc = await stack.status();
  t.match(doc.history.filter((e) => e.kind === 'release').at(-1), { reason: /version \(none\) → v2/ });

  // 3. Walk to the target, then promote: canary 0, phase promoted, no page, the primary serves.
  await stack.until('v2 complete at 35', (s) => s.weight === 35 && s.phase === 'complete', 90_000);
  const promote = spawnCli(stack.dir, stack.configFile, ['promote', 'gateway']);
  t.equal((await promote.exited).code, 0, promote.output());
  t.match(promote.stdout(), /gateway: promoted v2; weight 0 %, phase promoted/);
  const promoted = await stack.until('phase promoted', (s) => s.phase === 'promoted', 5000);
  t.equal(promoted.weight, 0);
  const metrics = await stack.metrics();
  t.equal(sample(metrics, 'nginx_canary_promotions_total{service="gateway"}'), 1);
  t.equal(sample(metrics, 'nginx_canary_drains_total{service="gateway",reason="operator"}'), 0, 'not a drain');
  t.equal(sample(metrics, 'nginx_canary_drained{service="gateway",reason="operator"}') || 0, 0, 'nothing to page');
  await traffic.stop();
  next.resetCounts();
  stack.primary.resetCounts();
  const statuses = await stack.send(200);
  t.equal(next.hits, 0, 'the promoted canary gets no request');
  t.equal(stack.primary.hits, 200, 'the primary serves everything');
  t.ok(statuses.every((s) => s === 200));
  doc = await stack.status();
  t.match(doc.history.at(-1), { kind: 'promote', from: 35, to: 0, reason: /^promoted v2/ });
  t.match(doc.services[0]?.summary, /^promoted v2: the primary serves it/);
});
