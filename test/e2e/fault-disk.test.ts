// Fault: free disk under 10 % (MIN_FREE_DISK_RATIO) mid-walk, through the
// injectable DiskStat on a real nginx: no snapshot, no write, no reload, the
// weight held and an apply_failed event at stage disk; the walk continues by
// itself once the disk frees up.
import t from 'tap';
import { startInProcess } from '../fixtures/in-process.js';
import { readdir, readFile } from 'node:fs/promises';
import { errors } from '../../src/errors.js';
import { MIN_FREE_DISK_RATIO } from '../../src/nginx/types.js';
import { waitFor } from '../../src/util/wait.js';
import { captureLogger, liveGeneration } from '../fixtures/integration/sidecar.js';
import { sample, startStack } from '../fixtures/stack.js';

t.test('the disk guard message shows MIN_FREE_DISK_RATIO', async (t) => {
  t.equal(MIN_FREE_DISK_RATIO, 0.1, 'docs/design.md "Numbers": 10 %');
  t.match(errors.diskLow('/var/lib/x', 4.25).message, /only 4\.3 % free on the volume of \/var\/lib\/x \(< 10 %\)/);
});

t.test('free disk under 10 %: no change on the real nginx; the walk continues when it frees up', async (t) => {
  const stack = await startStack(t, { target: 30 });
  let free = 0.5;
  const asked = new Set<string>();
  const cap = captureLogger();
  const { sc, close } = await startInProcess(t, stack.config, {
    log: cap.log,
    disk: {
      freeRatio: async (p) => {
        asked.add(p);
        return free;
      },
    },
  });
  const traffic = stack.traffic();
  try {
    await stack.until('weight 15', (s) => s.weight === 15, 60_000);
    // Under the lock: no apply is in flight when the disk fills.
    await sc.runner.command({ kind: 'pause', service: 'gateway' });
    free = 0.05;
    const include = await readFile(stack.config.nginx.upstreamsFile, 'utf8');
    const conf = await readFile(stack.config.nginx.conf, 'utf8');
    const snapshots = (await readdir(stack.config.nginx.snapshots.dir)).sort();
    const before = await stack.status();
    const okReloads = sample(await stack.metrics(), 'nginx_canary_reloads_total{result="ok"}');
    await sc.runner.command({ kind: 'resume', service: 'gateway' });

    const failed = await waitFor(
      async () => (await stack.status()).history.find((e) => e.kind === 'apply_failed' && e.reason.startsWith('disk:')),
      { timeoutMs: 15_000, intervalMs: 50, what: 'an apply_failed at stage disk' },
    );
    t.match(failed, {
      from: 15,
      to: 25,
      reason: /^disk: only 5\.0 % free on the volume of .* \(< 10 %\); no change was made$/,
    });
    // A few more ticks at low disk (the runner retries with backoff): still nothing changes.
    await waitFor(async () => sample(await stack.metrics(), 'nginx_canary_reloads_total{result="disk"}') >= 2, {
      timeoutMs: 15_000,
      intervalMs: 100,
      what: 'a second refused apply',
    });
    const held = await stack.status();
    t.equal(held.services[0]?.weight, 15, 'weight held');
    t.equal(held.generation, before.generation, 'generation held');
    t.equal(await liveGeneration(stack.config), before.generation, 'nginx serves the same generation');
    t.equal(await readFile(stack.config.nginx.upstreamsFile, 'utf8'), include, 'no write to the include file');
    t.equal(await readFile(stack.config.nginx.conf, 'utf8'), conf, 'nginx.conf untouched');
    t.same((await readdir(stack.config.nginx.snapshots.dir)).sort(), snapshots, 'no snapshot taken');
    const metrics = await stack.metrics();
    t.equal(sample(metrics, 'nginx_canary_reloads_total{result="ok"}'), okReloads, 'no reload');
    t.equal(sample(metrics, 'nginx_canary_rollbacks_total{reason="disk"}'), 0, 'nothing to roll back');
    t.ok(asked.has(stack.config.nginx.snapshots.dir), 'the guard measured the snapshot volume');
    t.match(
      cap.lines.find((l) => l['msg'] === 'apply failed; weights held'),
      { level: 50, stage: 'disk', code: 'NC_DISK_LOW', restored: false },
      'a pino error line',
    );
    const said = await stack.until('a summary saying the apply failed', (s) =>
      /not applied \(disk: .*\); retrying/.test(s.summary),
    );
    t.match(said.summary, /^holding at 15 %: 15 → 25 % not applied \(disk: /, `status summary: ${said.summary}`);

    const freedAt = performance.now();
    free = 0.5;
    await stack.until('weight 30 after the disk freed up', (s) => s.weight === 30, 90_000);
    t.comment(`disk freed → weight 30 in ${Math.round(performance.now() - freedAt)} ms (retry backoff included)`);
    t.equal(await liveGeneration(stack.config), (await stack.status()).generation);
  } finally {
    await traffic.stop();
    await close();
  }
});
