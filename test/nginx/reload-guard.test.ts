// The reload-rate guard (nginx.max_old_generations) on a real nginx: held
// requests keep old worker generations alive after reloads; a raise then
// stops at stage `workers` while a lowered weight (the safe direction) still
// applies, and once the old workers are gone the raise goes through.
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import t from 'tap';
import { oldGenerationsOf } from '../../src/nginx/apply.js';
import { oldWorkers, statFields } from '../../src/nginx/workers.js';
import { waitFor } from '../../src/util/wait.js';
import { holdRequest, startTestNginx } from '../fixtures/nginx/harness.js';

/** A child of the nginx master: its pid, start time (field 22 of /proc/<pid>/stat) and title. */
interface Child {
  pid: number;
  start: string;
  title: string;
}

/** The children of the master `pid` now (Linux /proc, like the guard itself); one that exits meanwhile is left out. */
async function childrenOf(pid: number): Promise<Child[]> {
  const pids = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).split(/\s+/).filter(Boolean);
  const out: Child[] = [];
  for (const p of pids) {
    const [title, stat] = await Promise.all([
      readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => null),
      readFile(`/proc/${p}/stat`, 'utf8').catch(() => null),
    ]);
    const start = statFields(stat ?? '')?.[19];
    if (title !== null && start !== undefined)
      out.push({ pid: Number(p), start, title: title.replaceAll('\0', ' ').trim() });
  }
  return out;
}

/** True while `c` accepts connections: titled exactly `nginx: worker process` (a draining one has closed its listeners). */
const accepting = (c: Child): boolean => c.title === 'nginx: worker process';

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
    const before = (await childrenOf(h.nginx.pid)).filter(accepting);
    t.ok(
      before.length >= 2,
      `${before.length} workers accept before reload ${i + 1}: an idle one can race the next request`,
    );
    await h.realCtl.reload();
    lastReload = performance.now();
    // Wait until every worker from before this reload has stopped accepting and only the i + 1 holding a
    // request are left draining, one per reload. Waiting for "≥ i + 1 generations" alone let the next held
    // request reach an idle old worker that had not yet handled the master's quit (a busy machine schedules
    // it late): that request then kept an old generation alive, not the new one, and the count stayed at 1.
    await waitFor(
      async () => {
        const now = await childrenOf(h.nginx.pid);
        const stillAccepting = before.some((b) =>
          now.some((c) => c.pid === b.pid && c.start === b.start && accepting(c)),
        );
        const old = await oldWorkers(h.nginx.pid);
        return !stillAccepting && old.shuttingDown === i + 1 && old.generations === i + 1;
      },
      {
        what: `no worker from before reload ${i + 1} accepting, ${i + 1} old generation(s) draining`,
        timeoutMs: 10_000,
      },
    );
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
