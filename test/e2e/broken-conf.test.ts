// Acceptance 4: nginx.conf broken by hand mid-walk: no reload, weight held,
// nginx still serving; fixed → the walk resumes.
import t from 'tap';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { sample, startStack } from '../fixtures/stack.js';
import { waitFor } from '../../src/util/wait.js';

t.test('a hand-broken nginx.conf holds the walk; fixing it resumes', async (t) => {
  const stack = await startStack(t, { target: 30 });
  await stack.startSidecar();
  const traffic = stack.traffic();
  await stack.until('weight 15', (s) => s.weight === 15, 60_000);

  const conf = stack.config.nginx.conf;
  const good = await readFile(conf, 'utf8');
  await appendFile(conf, '\nthis is not nginx syntax\n');
  const reloadsBefore = sample(await stack.metrics(), 'nginx_canary_reloads_total{result="ok"}');
  t.ok(reloadsBefore > 0, `${reloadsBefore} reloads counted on the way to 15 (the series is exposed)`);

  // Wait until the sidecar has tried (and refused) to step: an apply_failed at preflight.
  const failed = await waitFor(
    async () =>
      (await stack.status()).history.find((e) => e.kind === 'apply_failed' && e.reason.startsWith('preflight')),
    { timeoutMs: 15_000, intervalMs: 100, what: 'a refused step (apply_failed at preflight)' },
  );
  t.equal(failed.from, 15);
  t.equal(failed.to, 25, 'the refused change was the step to 25');
  const s = await stack.status();
  t.equal(s.services[0]?.weight, 15, 'weight held at 15');
  const reloadsAfter = sample(await stack.metrics(), 'nginx_canary_reloads_total{result="ok"}');
  t.equal(reloadsAfter, reloadsBefore, 'no reload while nginx.conf is broken');
  t.match(await stack.metrics(), /nginx_canary_reloads_total\{result="preflight"\} [1-9]/);
  const statuses = await stack.send(200);
  t.ok(
    statuses.every((x) => x === 200),
    'nginx still serves on the old config',
  );

  await writeFile(conf, good);
  await t.resolves(
    stack.until('the walk to reach 30 after the fix', (s) => s.weight === 30, 30_000),
    'the walk resumed and reached 30',
  );
  await traffic.stop();
});
