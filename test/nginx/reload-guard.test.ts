// The reload-rate guard (nginx.max_old_generations) on a real nginx: held
// requests keep old worker generations alive after reloads; a raise then
// stops at stage `workers` while a lowered weight (the safe direction) still
// applies, and once the old workers are gone the raise goes through.
import type { Socket } from 'node:net';
import t from 'tap';
import { oldGenerationsOf } from '../../src/nginx/apply.js';
import { waitFor } from '../../src/util/wait.js';
import { holdRequest, reloadAndSettle, startTestNginx } from '../fixtures/nginx/harness.js';

t.test('a raise waits while more than max_old_generations are draining; a lower never does', async (t) => {
  const h = await startTestNginx(t, {
    editConf: (s) => s.replace('worker_shutdown_timeout 10s;', 'worker_shutdown_timeout 30s;'),
    configure: (c) => ({
      ...c,
      nginx: { ...c.nginx, maxOldGenerations: 1, minReloadIntervalMs: 100 },
      // The held requests pin the primary with `X-Canary: never`, honoured from the allowed 127.0.0.1 only.
      services: c.services.map((s) => ({ ...s, override: { allow: ['127.0.0.1'] } })),
    }),
    weights: { gateway: 10 },
  });
  const primary = h.backends.primary[0];
  if (!primary) throw new Error('harness started no primary backend');
  await primary.setFault({ kind: 'delay', ms: 60_000 });
  const sockets: Socket[] = [];
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  t.equal(await oldGenerationsOf(h.config.nginx), 0, 'nothing draining at start (read through the pid file)');

  // Two generations of old workers, each holding one request: reload with a request in flight, twice.
  let generation = 1;
  let lastReload = performance.now();
  for (let i = 0; i < 2; i++) {
    sockets.push(await holdRequest(h.port, { 'X-Canary': 'never' }));
    await waitFor(() => primary.openConnections >= i + 1, { what: `held request ${i + 1} at the backend` });
    // Reloads > 100 ms apart count as distinct generations (workers.ts).
    await waitFor(() => performance.now() - lastReload > 350, { what: 'reloads 350 ms apart', timeoutMs: 2000 });
    // Settled: only the held requests' workers drain, one per reload, and no old worker still accepts, so
    // the next held request reaches a new worker (harness.ts reloadAndSettle says why a count is not enough).
    const old = await reloadAndSettle(h, i + 1);
    lastReload = performance.now();
    t.equal(old.generations, i + 1, `${i + 1} old generation(s) draining after reload ${i + 1}`);
  }
  t.equal(await oldGenerationsOf(h.config.nginx), 2, 'two old generations');

  generation++;
  const raise = await h.applier.apply({ weights: { gateway: 20 }, generation, reason: 'raise' });
  t.equal(raise.ok, false, 'the raise is held');
  if (!raise.ok) {
    t.equal(raise.stage, 'workers');
    t.equal(raise.error.code, 'NC_OLD_WORKERS');
    t.match(raise.error.message, /2 generations of old nginx workers are still shutting down/);
    t.equal(raise.restored, false, 'nothing was written, nothing to restore');
  }
  t.equal(await h.realCtl.generation(), 1, 'nginx still serves generation 1');

  const lower = await h.applier.apply({ weights: { gateway: 0 }, generation, reason: 'drain' });
  t.ok(lower.ok, 'a drain applies whatever the old workers');
  t.equal(await h.realCtl.generation(), generation);

  // Release the held requests: the old workers exit and a raise applies again.
  sockets.forEach((s) => s.destroy());
  await waitFor(async () => (await oldGenerationsOf(h.config.nginx)) <= 1, {
    what: 'old workers to exit',
    timeoutMs: 15_000,
  });
  generation++;
  const again = await h.applier.apply({ weights: { gateway: 20 }, generation, reason: 'raise again' });
  t.ok(again.ok, `the raise applies once the old workers are gone (${again.ok ? 'ok' : again.stage})`);
});
