// Acceptance 5: sidecar SIGKILLed at 15 %: restarted, it reports 15 and walks
// on to the target. Stopping the sidecar never changes nginx.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import { startStack } from '../fixtures/stack.js';
import { waitFor } from '../../src/util/wait.js';

async function liveGeneration(statusUrl: string): Promise<string> {
  const r = await request(statusUrl);
  return (await r.body.text()).trim();
}

t.test('SIGKILL at 15 % resumes at 15 and walks on', async (t) => {
  const stack = await startStack(t, { target: 30, soak: '2s' });
  const { host, port } = stack.config.nginx.statusListen;
  const genUrl = `http://${host}:${port}/generation`;
  await stack.startSidecar();
  const traffic = stack.traffic();
  const at15 = await waitFor(
    async () => {
      const s = await stack.status();
      return s.services[0]?.weight === 15 ? s : null;
    },
    { timeoutMs: 30_000, intervalMs: 50, what: 'weight 15' },
  );
  const genBefore = await liveGeneration(genUrl);
  t.equal(genBefore, String(at15.generation), 'nginx serves the generation the sidecar reports');
  // The status shows a step as soon as it is applied; state.json has it once the tick's save returns (a moment
  // later: on a loaded machine the kill landed in between, and the restart rightly resumed from the saved 5).
  // Kill at 15 % means: once 15 % is on disk.
  await waitFor(
    async () => {
      const saved = JSON.parse(await readFile(stack.config.sidecar.stateFile, 'utf8')) as {
        generation?: number;
        services?: Record<string, { weight?: number }>;
      };
      return saved.generation === at15.generation && saved.services?.['gateway']?.weight === 15;
    },
    { timeoutMs: 10_000, intervalMs: 20, what: 'state.json at 15 %' },
  );

  t.equal(await stack.stopSidecar('SIGKILL'), null, 'killed');
  t.equal(await liveGeneration(genUrl), genBefore, 'killing the sidecar did not change nginx');
  stack.primary.resetCounts();
  stack.canary.resetCounts();
  await stack.send(400);
  t.ok(stack.canary.hits > 0, 'nginx still sends the canary its share while the sidecar is down');

  await stack.startSidecar();
  const after = await stack.status();
  t.equal(after.services[0]?.weight, 15, 'restarted, it reports 15');
  t.equal(after.generation, at15.generation, 'no reload on restart');
  await waitFor(async () => (await stack.status()).services[0]?.weight === 30, {
    timeoutMs: 30_000,
    intervalMs: 100,
    what: 'weight 30',
  });
  await traffic.stop();
  const doc = await stack.status();
  const raises = doc.history
    .filter((e) => e.to > e.from && ['slice', 'step', 'complete'].includes(e.kind))
    .map((e) => e.to);
  t.same(raises, [5, 15, 25, 30], 'no jump, no reset to 0: 5 → 15 → (restart) → 25 → 30');
});
