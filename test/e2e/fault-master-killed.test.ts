// Fault: the nginx master SIGKILLed mid-walk (its workers killed by pid too,
// as an OOM kill of the whole group would): the sidecar advances nothing while
// nginx is down (weight and generation stay, no step recorded), alerts (failed
// applies counted in nginx_canary_reloads_total{result!="ok"} — the
// NginxCanaryReloadsFailing rule pages on it — and a pino error line), and the
// walk continues to the target once nginx is started again on the same
// prefix and config.
import t from 'tap';
import { startInProcess } from '../fixtures/in-process.js';
import { readdir, readFile } from 'node:fs/promises';
import { startNginx, type ManagedNginx } from '../../src/nginx/process.js';
import { waitFor } from '../../src/util/wait.js';
import { captureLogger, liveGeneration } from '../fixtures/integration/sidecar.js';
import { raisesIn, startStack } from '../fixtures/stack.js';

/** Pids whose parent is `ppid` (Linux /proc; field 4 of /proc/<pid>/stat). */
async function childrenOf(ppid: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // comm (field 2) may hold spaces and parentheses: parse after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === ppid) out.push(Number(name));
  }
  return out;
}

/** True while `pid` exists (signal 0). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The sum of the samples of `name` whose labels match `labels` (a regexp on the label text). */
function sum(metrics: string, name: string, labels: RegExp): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    const m = new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`).exec(line);
    if (m && labels.test(m[1] ?? '')) total += Number(m[2]);
  }
  return total;
}

t.test(
  'nginx master SIGKILLed mid-walk: nothing advances, an alert, the walk resumes when nginx is back',
  async (t) => {
    const stack = await startStack(t, { target: 45 });
    const cap = captureLogger();
    const { close } = await startInProcess(t, stack.config, { log: cap.log });
    let restarted: ManagedNginx | null = null;
    t.teardown(() => restarted?.stop({ graceMs: 2000 }));
    const traffic = stack.traffic();
    try {
      await stack.until('weight 15', (s) => s.weight === 15, 60_000);
      const master = stack.nginx.pid;
      const failedBefore = sum(await stack.metrics(), 'nginx_canary_reloads_total', /result="(?!ok")/);
      // Frozen first, so a reload the sidecar sends right now cannot fork workers we would not know of.
      process.kill(master, 'SIGSTOP');
      const workers = await childrenOf(master);
      t.ok(
        workers.length >= 2,
        `the master has ${workers.length} workers (worker_processes 2, plus old ones draining)`,
      );
      process.kill(master, 'SIGKILL');
      for (const w of workers) {
        try {
          process.kill(w, 'SIGKILL');
        } catch {
          // an old worker of an earlier reload that finished draining meanwhile
        }
      }
      const downAt = Date.now();
      await stack.nginx.exited;
      await waitFor(() => workers.every((w) => !alive(w)), { timeoutMs: 5000, what: 'the workers gone' });
      t.equal(await liveGeneration(stack.config), null, 'nginx is down: the status server does not answer');
      // What the sidecar had committed when nginx died (an apply whose verify passed just before is in it).
      const before = await stack.status();
      t.ok([15, 25].includes(before.services[0]?.weight ?? -1), `weight ${before.services[0]?.weight} at the kill`);

      // The alert: failed applies counted (the step due, or the reconcile of a live generation that vanished).
      await waitFor(
        async () => sum(await stack.metrics(), 'nginx_canary_reloads_total', /result="(?!ok")/) > failedBefore,
        { timeoutMs: 20_000, intervalMs: 100, what: 'a failed apply counted while nginx is down' },
      );
      // The first apply that reached nginx. A reconcile due within min_reload_interval of the last reload
      // (nginx died right after a step) now waits in the runner, but a step decided just inside the
      // applier's interval (its mark is the reload signal, a little after the runner's) is still refused by
      // the interval guard (stage interval, nothing written, nothing to restore) and logged: wait for the
      // attempt that reached nginx, with a deadline.
      const attempted = (l: Record<string, unknown>): boolean =>
        l['msg'] === 'apply failed; weights held' && l['stage'] !== 'interval';
      await waitFor(() => cap.lines.some(attempted), {
        timeoutMs: 20_000,
        intervalMs: 100,
        what: 'a failed apply that reached nginx',
      });
      const errorLine = cap.lines.find(attempted);
      t.match(errorLine, { level: 50, component: 'runner', restored: true }, 'a pino error line');
      t.comment(`first failed apply: stage ${String(errorLine?.['stage'])}: ${String(errorLine?.['err'])}`);
      // Stay down past a gate window (5 s) and a soak (1 s): long enough for a step to have been due.
      await waitFor(() => Date.now() - downAt >= 6500, { timeoutMs: 10_000, intervalMs: 100, what: '6.5 s down' });
      const down = await stack.status();
      t.equal(down.services[0]?.weight, before.services[0]?.weight, 'weight held while nginx is down');
      t.equal(down.generation, before.generation, 'generation held');
      t.same(
        down.history.filter((e) => e.at >= downAt && ['slice', 'step', 'complete'].includes(e.kind)),
        [],
        'no step recorded while nginx is down',
      );
      const failedNow = sum(await stack.metrics(), 'nginx_canary_reloads_total', /result="(?!ok")/);
      t.ok(failedNow > failedBefore, `nginx_canary_reloads_total{result!="ok"} moved ${failedBefore} → ${failedNow}`);
      const metrics = await stack.metrics();
      t.ok(sum(metrics, 'nginx_canary_rollbacks_total', /reason="(?!operator")/) >= 1, 'each failed apply restored');
      t.comment(
        metrics
          .split('\n')
          .filter((l) => /^nginx_canary_(reloads|rollbacks)_total\{.*\} [1-9]/.test(l))
          .join('; '),
      );
      t.equal(await liveGeneration(stack.config), null, 'the sidecar did not start nginx (managed: false)');

      // nginx comes back (the operator, or systemd) on the same prefix and config.
      const backAt = performance.now();
      restarted = await startNginx({
        binary: stack.config.nginx.binary,
        conf: stack.config.nginx.conf,
        prefix: stack.config.nginx.prefix,
      });
      // While nginx is down the sidecar retries the due step with backoff: each try writes the next generation,
      // passes nginx -t, fails the reload and restores the committed file. An nginx started inside that
      // window (~100 ms, longer on a busy machine) loads the tried file; the sidecar then reconciles. Either
      // way it is a file the sidecar wrote and nginx -t passed, never a third one.
      const back = await liveGeneration(stack.config);
      t.ok(
        back === before.generation || back === before.generation + 1,
        `restarted nginx serves the committed generation ${before.generation}, or the step being retried (${back})`,
      );
      const done = await stack.until('the walk to reach 45', (s) => s.weight === 45, 90_000);
      t.comment(`nginx back → weight 45 in ${Math.round(performance.now() - backAt)} ms`);
      const doc = await stack.status();
      t.equal(await liveGeneration(stack.config), doc.generation, 'nginx serves what the sidecar committed');
      t.equal(done.phase, 'complete');
      const raises = raisesIn(doc.history);
      t.same(
        raises.map((e) => e.to),
        [5, 15, 25, 35, 45],
        'no step skipped or repeated across the outage',
      );
    } finally {
      await traffic.stop();
      await close();
      await restarted?.stop({ graceMs: 2000 });
    }
  },
);
