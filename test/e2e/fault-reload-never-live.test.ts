// Fault: a reload accepted but never live. The nginx master is SIGSTOPped
// while a step is due: `nginx -s reload` delivers SIGHUP and exits 0, the
// workers keep answering the old generation, so the new generation never
// shows. The applier's verify runs out (10 s in the sidecar), the snapshot is
// restored and reloaded again, nginx_canary_rollbacks_total{reason="verify"}
// counts it, and nothing is committed. Once the master is continued
// (SIGCONT) it handles the pending SIGHUP and the walk proceeds. The master is
// always continued, also when an assertion fails.
import t from 'tap';
import { startInProcess } from '../fixtures/in-process.js';
import { readFile } from 'node:fs/promises';
import { waitFor } from '../../src/util/wait.js';
import { captureLogger, liveGeneration } from '../fixtures/integration/sidecar.js';
import { sample, startStack } from '../fixtures/stack.js';

/** The process state letter of /proc/<pid>/stat (`T` = stopped). */
async function procState(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '?';
}

t.test(
  'a master that ignores SIGHUP: verify fails, the snapshot is restored; continued, the walk proceeds',
  async (t) => {
    const stack = await startStack(t, { target: 30 });
    const master = stack.nginx.pid;
    let stopped = false;
    const resume = (): void => {
      if (!stopped) return;
      stopped = false;
      process.kill(master, 'SIGCONT');
    };
    t.teardown(resume);
    const cap = captureLogger();
    const { sc, close } = await startInProcess(t, stack.config, { log: cap.log });
    const traffic = stack.traffic();
    try {
      await stack.until('weight 15', (s) => s.weight === 15, 60_000);
      await sc.runner.command({ kind: 'pause', service: 'gateway' });
      const before = await stack.status();
      const include = await readFile(stack.config.nginx.upstreamsFile, 'utf8');
      process.kill(master, 'SIGSTOP');
      stopped = true;
      // kill() returns before the kernel has stopped the master: wait for it, or the resume below could race a live HUP.
      await t.resolves(
        waitFor(async () => (await procState(master)) === 'T', { timeoutMs: 5000, intervalMs: 10, what: 'state T' }),
        'the master is stopped',
      );
      const stoppedAt = performance.now();
      await sc.runner.command({ kind: 'resume', service: 'gateway' });

      await waitFor(async () => sample(await stack.metrics(), 'nginx_canary_rollbacks_total{reason="verify"}') >= 1, {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: 'a rollback after a failed verify',
      });
      const detectedMs = performance.now() - stoppedAt;
      const doc = await stack.status();
      const failed = doc.history.find((e) => e.kind === 'apply_failed' && e.reason.startsWith('verify:'));
      t.match(
        failed,
        {
          from: 15,
          to: 25,
          reason: new RegExp(
            `^verify: nginx did not serve generation ${before.generation + 1} before the deadline \\(last seen: ${before.generation}, but worker\\(s\\) [\\d, ]+ from before the reload still accept connections\\); the snapshot was restored`,
          ),
        },
        'the step to 25 failed at verify: the workers kept answering the old generation',
      );
      t.match(
        cap.lines.find((l) => l['msg'] === 'apply failed; weights held'),
        { level: 50, stage: 'verify', code: 'NC_RELOAD_NOT_LIVE', restored: true },
        'a pino error line',
      );
      const metrics = await stack.metrics();
      t.ok(sample(metrics, 'nginx_canary_reloads_total{result="verify"}') >= 1, 'reloads_total{result="verify"}');
      t.equal(doc.services[0]?.weight, 15, 'weight unchanged');
      t.equal(doc.generation, before.generation, 'generation unchanged');
      t.equal(await readFile(stack.config.nginx.upstreamsFile, 'utf8'), include, 'the include file is restored');
      t.equal(await liveGeneration(stack.config), before.generation, 'the workers serve the old generation');
      const statuses = await stack.send(100);
      t.ok(
        statuses.every((s) => s === 200),
        'nginx keeps serving while its master is stopped',
      );
      t.comment(
        `SIGSTOP → rollback{reason="verify"} counted in ${Math.round(detectedMs)} ms (verify deadline 10 000 ms)`,
      );

      const contAt = performance.now();
      resume();
      await t.resolves(
        waitFor(async () => (await procState(master)) !== 'T', { timeoutMs: 5000, intervalMs: 10, what: 'not T' }),
        'the master runs again',
      );
      const done = await stack.until('weight 30 after SIGCONT', (s) => s.weight === 30, 60_000);
      t.comment(`SIGCONT → weight 30 in ${Math.round(performance.now() - contAt)} ms (retry backoff included)`);
      t.equal(done.phase, 'complete');
      t.equal(
        await liveGeneration(stack.config),
        (await stack.status()).generation,
        'nginx serves the committed generation',
      );
    } finally {
      resume();
      await traffic.stop();
      await close();
    }
  },
);
