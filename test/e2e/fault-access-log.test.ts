// Fault: the access log deleted, or not written, while the canary weight is
// above 0, on the real nginx.
// - Not written (nginx.conf's access_log pointed elsewhere and nginx reloaded
//   by hand): no line reaches the gates, so they go inconclusive and the walk
//   holds — no step while no lines arrive — and nginx_canary_log_lines_total
//   stops moving (NginxCanaryGateDataStale pages on that; promtool-tested in
//   test/alerts/rules.test.ts). Put back, the walk goes on.
// - Deleted (unlink): nginx keeps writing to the unlinked file through its
//   open descriptor, and so does the follower read it: no line is lost and the
//   walk goes on. With the follower's `reopen` hook (`nginx -s reopen`) the
//   file comes back at its path (self-healing; also for a log replaced by an
//   empty file nginx does not write to, and for a sidecar started while the log
//   is missing).
import t from 'tap';
import { startInProcess } from '../fixtures/in-process.js';
import { chmod, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SidecarHandle } from '../../src/main.js';
import { NginxCommand } from '../../src/nginx/ctl.js';
import { LogFollower } from '../../src/observe/follow.js';
import { waitFor } from '../../src/util/wait.js';
import { captureLogger } from '../fixtures/integration/sidecar.js';
import { sample, startStack, type Stack } from '../fixtures/stack.js';

const PARSED = 'nginx_canary_log_lines_total{result="parsed"}';

/** Starts the in-process sidecar on the stack; closed by the returned function (idempotent) and at teardown. */
async function sidecar(
  t: { teardown(fn: () => unknown): void },
  stack: Stack,
): Promise<[SidecarHandle, () => Promise<void>]> {
  const { sc, close } = await startInProcess(t, stack.config, { log: captureLogger().log });
  return [sc, close];
}

t.test(
  'access log not written while weight > 0: the walk holds, the line counter stops; written again, it goes on',
  async (t) => {
    const stack = await startStack(t, { target: 30 });
    const [sc, close] = await sidecar(t, stack);
    const ctl = new NginxCommand(stack.config.nginx);
    const conf = stack.config.nginx.conf;
    const good = await readFile(conf, 'utf8');
    const elsewhere = path.join(path.dirname(stack.config.nginx.accessLog), 'elsewhere.json');
    const traffic = stack.traffic();
    try {
      await stack.until('weight 15', (s) => s.weight === 15, 60_000);
      // Paused (under the runner's lock) while nginx.conf is edited, so no apply snapshots it half-way.
      await sc.runner.command({ kind: 'pause', service: 'gateway' });
      const moved = good.replace(
        /access_log logs\/canary\.json nginx_canary;/,
        'access_log logs/elsewhere.json nginx_canary;',
      );
      t.not(moved, good, 'the access_log line was found');
      await writeFile(conf, moved);
      await ctl.reload();
      await waitFor(async () => (await stat(elsewhere).catch(() => null))?.size ?? 0 > 0, {
        timeoutMs: 10_000,
        what: 'nginx writing the other log',
      });
      // Old workers write canary.json until they exit: wait until its size holds still for a second.
      let size = -1;
      let since = performance.now();
      await waitFor(
        async () => {
          const now = (await stat(stack.config.nginx.accessLog)).size;
          if (now !== size) [size, since] = [now, performance.now()];
          return performance.now() - since >= 1000;
        },
        { timeoutMs: 15_000, intervalMs: 100, what: 'canary.json to stop growing' },
      );
      // Still paused for one gate window (5 s), so the lines from before the switch have left the window.
      const lastLineAt = Date.now() - 1000;
      await waitFor(() => Date.now() - lastLineAt >= 5500, { timeoutMs: 10_000, intervalMs: 100, what: 'a window' });
      const parsed0 = sample(await stack.metrics(), PARSED);
      await sc.runner.command({ kind: 'resume', service: 'gateway' });
      const stoppedAt = Date.now();

      // Three soaks (1 s each) of ticks with traffic flowing: on fresh data a step would have been due.
      await waitFor(() => Date.now() - stoppedAt >= 3000, { timeoutMs: 10_000, intervalMs: 100, what: '3 s' });
      const doc = await stack.status();
      const svc = doc.services[0];
      t.equal(svc?.weight, 15, 'weight held');
      t.same(
        doc.history.filter((e) => e.at >= stoppedAt && ['step', 'complete', 'slice'].includes(e.kind)),
        [],
        'no step while no lines arrive',
      );
      t.equal(sample(await stack.metrics(), PARSED), parsed0, 'nginx_canary_log_lines_total{result="parsed"} stopped');
      const verdict = (gate: string): string | undefined => svc?.gates.find((g) => g.gate === gate)?.verdict;
      t.equal(verdict('error_ratio'), 'inconclusive', 'the error gate is inconclusive, not green');
      t.equal(verdict('starved'), 'inconclusive');
      t.match(svc?.summary, /^holding at 15 % .*inconclusive: canary 0 of \d+ requests/, `summary: ${svc?.summary}`);
      const requests = svc?.gates.find((g) => g.gate === 'error_ratio')?.samples;
      t.equal(requests, 0, 'the window holds no canary requests');

      // Written again: the walk goes on.
      await sc.runner.command({ kind: 'pause', service: 'gateway' });
      await writeFile(conf, good);
      await ctl.reload();
      await sc.runner.command({ kind: 'resume', service: 'gateway' });
      await stack.until('weight 30 once the log is written again', (s) => s.weight === 30, 40_000);
      t.ok(sample(await stack.metrics(), PARSED) > parsed0, 'lines are counted again');
    } finally {
      await traffic.stop();
      await close();
    }
  },
);

t.test(
  'access log deleted while weight > 0: the unlinked file is still read, nothing lost, the walk goes on',
  async (t) => {
    const stack = await startStack(t, { target: 30 });
    const [, close] = await sidecar(t, stack);
    const traffic = stack.traffic();
    try {
      await stack.until('weight 15', (s) => s.weight === 15, 60_000);
      await unlink(stack.config.nginx.accessLog);
      const parsed0 = sample(await stack.metrics(), PARSED);
      await t.resolves(
        waitFor(async () => sample(await stack.metrics(), PARSED) >= parsed0 + 200, {
          timeoutMs: 10_000,
          intervalMs: 100,
          what: '200 more lines read after the unlink',
        }),
        'lines keep arriving from the file nginx still writes',
      );
      await stack.until('weight 30 with the log deleted', (s) => s.weight === 30, 40_000);
    } finally {
      await traffic.stop();
      await close();
    }
  },
);

t.test(
  'self-healing: with the reopen hook the follower has nginx recreate a deleted, replaced or missing log',
  async (t) => {
    const stack = await startStack(t, { target: 0 });
    // nginx's workers (user nobody under a root master) reopen the log by path, as after logrotate's USR1:
    // they must be able to reach it. mkdtemp made the stack's directory 0700; a real log directory is not.
    await chmod(stack.dir, 0o755);
    const ctl = new NginxCommand(stack.config.nginx);
    const file = stack.config.nginx.accessLog;
    let lines = 0;
    const whys: string[] = [];
    const errors: unknown[] = [];
    const follow = async (): Promise<LogFollower> => {
      const f = new LogFollower({
        file,
        onLines: (ls) => (lines += ls.length),
        pollMs: 50,
        reopenAfterMs: 300,
        reopenIntervalMs: 1000,
        reopen: async (why) => {
          whys.push(why);
          await ctl.reopen();
        },
        onError: (err) => errors.push(err),
      });
      t.teardown(() => f.stop());
      await f.start();
      return f;
    };
    /** Sends n requests and waits until the follower has delivered every line of them. */
    const sendAndSee = async (n: number, what: string): Promise<void> => {
      const want = lines + n;
      const statuses = await stack.send(n);
      t.equal(statuses.filter((s) => s === 200).length, n, `${what}: nginx answered every request`);
      await waitFor(() => lines >= want, { timeoutMs: 10_000, what: `${what}: ${n} lines delivered` });
    };

    let f = await follow();
    await sendAndSee(50, 'before');

    // Deleted: nginx writes to the unlinked file; the follower reads it, then asks nginx to reopen.
    const t0 = performance.now();
    await unlink(file);
    const traffic = stack.traffic();
    await waitFor(async () => ((await stat(file).catch(() => null))?.size ?? 0) > 0, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'nginx to recreate the deleted log and write to it',
    });
    t.comment(`deleted → recreated by nginx -s reopen in ${Math.round(performance.now() - t0)} ms (reopenAfterMs 300)`);
    await traffic.stop();
    t.equal(f.reopens, 1, `one reopen (${whys.join(', ')})`);
    await sendAndSee(50, 'after the deletion');
    t.equal(f.stats.rotations, 1);

    // Replaced by an empty file nginx does not write to (a rotation without USR1).
    const t1 = performance.now();
    await writeFile(`${file}.new`, '');
    const newIno = (await stat(`${file}.new`)).ino;
    await rename(`${file}.new`, file);
    const traffic2 = stack.traffic();
    await waitFor(async () => (await stat(file)).size > 0, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'nginx to write the replacement',
    });
    await traffic2.stop();
    t.equal((await stat(file)).ino, newIno, 'nginx writes the file now at the path');
    t.comment(`replaced → written by nginx after reopen in ${Math.round(performance.now() - t1)} ms`);
    t.same(whys.slice(1), ['rotated'], 'asked because the rotated-away file was still written');
    await sendAndSee(50, 'after the replacement');
    await f.stop();

    // A follower (a sidecar) started while the log is missing.
    await unlink(file);
    whys.length = 0;
    const t2 = performance.now();
    f = await follow();
    const traffic3 = stack.traffic();
    await waitFor(async () => ((await stat(file).catch(() => null))?.size ?? 0) > 0, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'nginx to create the missing log and write to it',
    });
    await traffic3.stop();
    t.comment(`missing at start → created in ${Math.round(performance.now() - t2)} ms`);
    t.same(whys, ['missing']);
    await sendAndSee(50, 'after the start on a missing log');
    t.same(errors, [], 'no follower errors');

    // Without nginx (stopped), the hook fails: counted as an error, not repeated before reopenIntervalMs.
    await stack.nginx.stop();
    await unlink(file);
    await waitFor(() => errors.length >= 1, { timeoutMs: 10_000, what: 'the failed reopen reported' });
    t.match(errors[0], { code: 'NC_RELOAD_FAILED', message: /nginx -s reopen/ });
    t.equal(f.stats.errors, 1);
  },
);
