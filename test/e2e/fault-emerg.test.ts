// Fault: a reload that fails at apply time. `nginx -t` passes (it does not
// bind), but the master logs `[emerg] bind() … failed` on the reload and keeps
// the old config. The applier watches nginx's error log after the signal and
// fails the apply at stage `reload` with the `[emerg]` line within tens of ms,
// instead of waiting out the verify deadline (10 s in the sidecar); the
// snapshot is restored and reloaded, and the walk goes on once the port is free.
import t from 'tap';
import { startInProcess } from '../fixtures/in-process.js';
import net from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { systemClock } from '../../src/clock.js';
import { Applier } from '../../src/nginx/apply.js';
import { errorLogDirectives, errorLogsOf, NginxCommand } from '../../src/nginx/ctl.js';
import { statfsDisk } from '../../src/nginx/disk.js';
import { waitFor } from '../../src/util/wait.js';
import { startTestNginx } from '../fixtures/nginx/harness.js';
import { captureLogger, liveGeneration } from '../fixtures/integration/sidecar.js';
import { freePort, startStack } from '../fixtures/stack.js';

/** A plain TCP listener on 127.0.0.1:port that nginx cannot bind while it is open. */
async function holdPort(t: { teardown(fn: () => unknown): void }): Promise<{ port: number; release(): Promise<void> }> {
  const port = await freePort();
  const server = net.createServer((sock) => sock.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  let open = true;
  const release = async (): Promise<void> => {
    if (!open) return;
    open = false;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.teardown(release);
  return { port, release };
}

/** nginx.conf with a second `listen` on `port` in the server block. */
function withExtraListen(conf: string, port: number): string {
  const out = conf.replace(/^(\s*)listen 127\.0\.0\.1:\d+;$/m, (line, indent: string) => {
    return `${line}\n${indent}listen 127.0.0.1:${port};`;
  });
  if (out === conf) throw new Error('no listen line in nginx.conf');
  return out;
}

t.test('errorLogDirectives reads the top-level error_log targets only', async (t) => {
  t.same(errorLogDirectives('worker_processes 2;\nerror_log logs/error.log notice;\n'), ['logs/error.log']);
  t.same(
    errorLogDirectives(
      'error_log "/var/log/a b.log" warn; error_log stderr; error_log syslog:server=x;\n' +
        'http { error_log /var/log/http.log; server { error_log /x; } }\n# error_log /commented;\n' +
        "error_log '/var/log/c.log'; error_log memory:32m debug;",
    ),
    ['/var/log/a b.log', '/var/log/c.log'],
    'quoted paths kept; stderr, syslog:, memory:, nested and commented ones left out',
  );
  t.same(errorLogDirectives('error_log stderr;'), [], 'stderr only: nothing to watch');
  t.equal(
    errorLogDirectives('events {}\nhttp { error_log /x; }'),
    null,
    'no top-level error_log: the compiled default',
  );
});

t.test('errorLogsOf resolves against the prefix, else nginx -V', async (t) => {
  const dir = t.testdir({
    'rel.conf': 'error_log logs/error.log notice;\nevents {}\n',
    'none.conf': 'events {}\n',
  });
  t.same(await errorLogsOf({ binary: 'nginx', conf: path.join(dir, 'rel.conf'), prefix: '/srv/ngx' }), [
    '/srv/ngx/logs/error.log',
  ]);
  // No directive: the compiled --error-log-path (Debian's nginx-light: `stderr`, so nothing to watch).
  const compiled = await errorLogsOf({ binary: 'nginx', conf: path.join(dir, 'none.conf'), prefix: null });
  t.ok(
    compiled.every((p) => path.isAbsolute(p) && path.basename(p) !== 'stderr'),
    `compiled default: ${JSON.stringify(compiled)}`,
  );
  await t.rejects(errorLogsOf({ binary: '/nonexistent/nginx', conf: path.join(dir, 'none.conf'), prefix: null }), {
    code: 'NC_NGINX_BINARY',
  });
});

t.test(
  'applier: the [emerg] of a refused reload fails the apply at stage reload, long before the verify deadline',
  async (t) => {
    const h = await startTestNginx(t, { verifyTimeoutMs: 5000 });
    const held = await holdPort(t);
    const conf = h.config.nginx.conf;
    await writeFile(conf, withExtraListen(await readFile(conf, 'utf8'), held.port));
    t.ok((await h.realCtl.test()).ok, 'nginx -t passes: it does not bind the port');
    const fileBefore = await readFile(h.config.nginx.upstreamsFile, 'utf8');

    const watched = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'x' });
    t.match(watched, {
      ok: false,
      stage: 'reload',
      restored: true,
      error: {
        code: 'NC_RELOAD_FAILED',
        message: new RegExp(
          `\\[emerg\\] in .*error\\.log \\d+ ms after the reload signal: bind\\(\\) to 127\\.0\\.0\\.1:${held.port} failed`,
        ),
      },
    });
    const afterMs = Number(/(\d+) ms after the reload signal/.exec(watched.ok ? '' : watched.error.message)?.[1]);
    t.ok(afterMs < 1000, `seen ${afterMs} ms after the signal (verify deadline 5000 ms)`);
    t.ok(watched.durationMs < 2500, `the whole apply took ${Math.round(watched.durationMs)} ms`);
    t.equal(await readFile(h.config.nginx.upstreamsFile, 'utf8'), fileBefore, 'the include file is restored');
    t.equal(await h.realCtl.generation(), 1, 'nginx serves its old generation');

    // The same fault without a readable error log: only the verify deadline notices it.
    const blind = new Applier({
      config: h.config,
      ctl: h.ctl,
      disk: statfsDisk,
      snapshots: h.snapshots,
      clock: systemClock,
      verifyTimeoutMs: 2000,
      // A log that is not there (nginx logs to stderr or syslog): nothing to see in it.
      errorLogs: [path.join(h.dir, 'no-such-error.log')],
    });
    const unwatched = await blind.apply({ weights: { gateway: 30 }, generation: 2, reason: 'x' });
    t.match(unwatched, { ok: false, stage: 'verify', restored: true, error: { code: 'NC_RELOAD_NOT_LIVE' } });
    t.ok(unwatched.durationMs >= 2000, `without the watch: ${Math.round(unwatched.durationMs)} ms (the deadline)`);
    t.comment(
      `detection: [emerg] seen ${afterMs} ms after the signal (apply ${Math.round(watched.durationMs)} ms) ` +
        `vs the verify deadline (${Math.round(unwatched.durationMs)} ms here, 10 000 ms in the sidecar)`,
    );

    await held.release();
    // The master may still be retrying bind() for the earlier reloads (5 × 500 ms); the next try binds.
    const ok = await waitFor(
      async () => {
        const r = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'x' });
        return r.ok ? r : null;
      },
      { timeoutMs: 20_000, intervalMs: 500, what: 'an apply once the port is free' },
    );
    t.equal(ok.generation, 2);
    t.equal(await h.realCtl.generation(), 2, 'live');
  },
);

t.test(
  'sidecar: a listen port taken at reload time is detected, rolled back, and the walk resumes when it frees',
  async (t) => {
    const stack = await startStack(t, { target: 30 });
    const cap = captureLogger();
    const { sc, close } = await startInProcess(t, stack.config, { log: cap.log });
    const traffic = stack.traffic();
    try {
      await stack.until('weight 15', (s) => s.weight === 15, 60_000);
      // Paused while the conf is edited, so no apply in flight snapshots the old nginx.conf.
      await sc.runner.command({ kind: 'pause', service: 'gateway' });
      const held = await holdPort(t);
      const conf = stack.config.nginx.conf;
      await writeFile(conf, withExtraListen(await readFile(conf, 'utf8'), held.port));
      t.ok((await new NginxCommand(stack.config.nginx).test()).ok, 'nginx -t passes');
      const before = await stack.status();
      const fileBefore = await readFile(stack.config.nginx.upstreamsFile, 'utf8');
      const resumedAt = performance.now();
      await sc.runner.command({ kind: 'resume', service: 'gateway' });

      const failed = await waitFor(
        async () =>
          (await stack.status()).history.find((e) => e.kind === 'apply_failed' && e.reason.includes('[emerg]')),
        { timeoutMs: 20_000, intervalMs: 50, what: 'an apply_failed with the [emerg] line' },
      );
      const detectedMs = performance.now() - resumedAt;
      t.match(
        failed,
        {
          from: 15,
          to: 25,
          reason: new RegExp(`^reload: nginx reload failed.*bind\\(\\) to 127\\.0\\.0\\.1:${held.port} failed`),
        },
        'the step to 25 failed at stage reload, with the [emerg] text',
      );
      t.match(failed.reason, /\(snapshot restored\)$/);
      const applyLine = cap.lines.find(
        (l) =>
          l['component'] === 'apply' && typeof l['msg'] === 'string' && l['msg'].startsWith('apply stopped at reload'),
      );
      t.ok(applyLine, 'the applier logged the stop');
      const runnerLine = cap.lines.find((l) => l['msg'] === 'apply failed; weights held' && l['stage'] === 'reload');
      t.match(
        runnerLine,
        { level: 50, code: 'NC_RELOAD_FAILED', restored: true, err: /\[emerg\]/ },
        'a pino error line',
      );
      const afterMs = Number(/(\d+) ms after the reload signal/.exec(failed.reason)?.[1]);
      t.ok(afterMs < 1000, `[emerg] seen ${afterMs} ms after the signal; verify deadline 10 000 ms`);
      t.comment(
        `sidecar: [emerg] seen ${afterMs} ms after the signal; apply ${Math.round(Number(applyLine?.['durationMs']))} ms; ` +
          `resume → apply_failed in the status ${Math.round(detectedMs)} ms`,
      );

      const metrics = await stack.metrics();
      t.match(metrics, /^nginx_canary_rollbacks_total\{reason="reload"\} [1-9]/m, 'counted as a rollback');
      t.match(metrics, /^nginx_canary_reloads_total\{result="reload"\} [1-9]/m);
      const now = await stack.status();
      t.equal(now.services[0]?.weight, 15, 'weight unchanged');
      t.equal(now.generation, before.generation, 'no generation committed');
      t.equal(await liveGeneration(stack.config), before.generation, 'nginx serves its old generation');
      t.equal(await readFile(stack.config.nginx.upstreamsFile, 'utf8'), fileBefore, 'the include file is the old one');
      const statuses = await stack.send(100);
      t.ok(
        statuses.every((s) => s === 200),
        'nginx keeps serving',
      );

      await held.release();
      await stack.until('weight 30 once the port is free', (s) => s.weight === 30, 40_000);
      t.equal(
        await liveGeneration(stack.config),
        (await stack.status()).generation,
        'nginx serves the committed generation',
      );
    } finally {
      await traffic.stop();
      await close();
    }
  },
);
