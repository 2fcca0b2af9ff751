// docs/design.md "slow_start on open-source nginx". Debian's nginx rejects
// `slow_start=`, so the sidecar ramps a canary entering the rotation in
// reloads spaced by min_reload_interval. Here slow_start 3 s over 1 s: three
// sub-steps (4, 8, 12 % of a 12 % slice); at each, the canary's measured share
// of real requests through nginx follows the ramp within ±3 pp, and the walk
// uses at most ceil(3 s / 1 s) = 3 reloads for it. The soak of the slice
// starts only when the ramp ends.
import t from 'tap';
import { startStack } from '../fixtures/stack.js';
import { waitFor } from '../../src/util/wait.js';
import type { RolloutEvent } from '../../src/rollout/types.js';

t.test('a 3 s slow_start ramps the slice in 3 reloads and the share follows it', async (t) => {
  const stack = await startStack(t, { target: 30, slowStart: '3s', minReloadInterval: '1s', soak: '1s' });
  // The slice is 5 % in the stack; 12 % (the largest slice) makes the ramp measurable.
  const { readFile, writeFile } = await import('node:fs/promises');
  await writeFile(stack.configFile, (await readFile(stack.configFile, 'utf8')).replace('slice: 5', 'slice: 12'));
  await stack.startSidecar();

  const measured: { weight: number; share: number; n: number; generation: number }[] = [];
  const seen = new Set<number>();
  const deadline = performance.now() + 20_000;
  // Sample each sub-step: a batch of requests that ran entirely within one generation.
  while (performance.now() < deadline && !seen.has(12)) {
    const before = await stack.status();
    const w = before.services[0]?.weight ?? 0;
    if (w === 0 || seen.has(w)) {
      await waitFor(async () => (await stack.status()).generation !== before.generation, {
        timeoutMs: 5000,
        intervalMs: 20,
        what: 'the next sub-step',
      }).catch(() => undefined);
      continue;
    }
    const c0 = stack.canary.hits;
    const p0 = stack.primary.hits;
    await stack.send(400);
    const after = await stack.status();
    if (after.generation !== before.generation) continue; // the batch straddled a reload: sample again
    const canary = stack.canary.hits - c0;
    const total = canary + stack.primary.hits - p0;
    measured.push({ weight: w, share: (canary / total) * 100, n: total, generation: before.generation });
    seen.add(w);
  }
  t.same(
    measured.map((m) => m.weight),
    [4, 8, 12],
    'three sub-steps: 4 %, 8 %, then the 12 % slice',
  );
  for (const m of measured) {
    t.ok(
      Math.abs(m.share - m.weight) <= 3,
      `at ${m.weight} %: canary share ${m.share.toFixed(2)} % over ${m.n} requests (± 3 pp)`,
    );
  }

  const doc = await waitFor(
    async () => {
      const d = await stack.status();
      return d.history.some((e) => e.kind === 'step') ? d : null;
    },
    { timeoutMs: 15_000, intervalMs: 50, what: 'the first step after the ramp' },
  );
  const changes = doc.history.filter((e) => e.kind === 'slice' || e.kind === 'ramp');
  t.same(
    changes.map((e: RolloutEvent) => [e.kind, e.to]),
    [
      ['slice', 4],
      ['ramp', 8],
      ['ramp', 12],
    ],
  );
  const gens = measured.map((m) => m.generation);
  t.same(
    gens,
    [gens[0], (gens[0] ?? 0) + 1, (gens[0] ?? 0) + 2],
    'one reload per sub-step: 3 reloads for the ramp = ceil(slow_start / min_reload_interval)',
  );
  const rampEnd = changes.at(-1) as RolloutEvent;
  const step = doc.history.find((e) => e.kind === 'step') as RolloutEvent;
  t.ok(step.at - rampEnd.at >= 1000, `the slice soaked ${step.at - rampEnd.at} ms (≥ 1 s) after the ramp ended`);
  t.equal(step.from, 12);
});
