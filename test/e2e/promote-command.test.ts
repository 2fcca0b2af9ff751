// promote with rollout.promote_command on the real nginx, the sidecar in-process: a failing command
// refuses with its exit code and output (nothing changed); a primary whose /ready is not 200 after the
// command refuses once promote_timeout has passed; then the command runs, the primary is ready, and the
// canary goes to 0 in phase promoted, the command's output in the log.
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { loadConfig } from '../../src/config/load.js';
import { startInProcess } from '../fixtures/in-process.js';
import { captureLogger } from '../fixtures/integration/sidecar.js';
import { startStack } from '../fixtures/stack.js';

t.test('promote runs rollout.promote_command, waits for the primary, and refuses with the reason', async (t) => {
  // Probes every second with a 1 s bound, and a connect_p95 hold far above loopback: on a busy machine a
  // slow probe must not pause the walk in the middle of this test, which is about promote, not the gates.
  const stack = await startStack(t, { target: 15, probeInterval: '1s', minProbes: 2 });
  const marker = path.join(stack.dir, 'first-try-done');
  // Fails the first time (exit 3, a line on stderr), succeeds afterwards (a line on stdout). A shell, as an
  // operator's deploy command is: a node child took longer than the whole promote_timeout to start in CI
  // beside two busy loops (load 9).
  const script = `if [ ! -e '${marker}' ]; then : > '${marker}'; echo 'deploy failed: disk full' >&2; exit 3; fi; echo 'deployed v2 to the primary'`;
  const command = ['/bin/sh', '-c', script];
  // What the operator writes in weights.yaml (the running sidecar reads the file, so the test writes it there).
  const text = await readFile(stack.configFile, 'utf8');
  const withCommand = text
    .replace('connect_p95: 120ms', 'connect_p95: 5s')
    .replace(
      /^( +)slice: 5$/m,
      (m, indent: string) =>
        `${indent}version: v2\n${indent}promote_command: ${JSON.stringify(command)}\n${indent}promote_timeout: 3s\n${m}`,
    );
  t.not(withCommand, text);
  await writeFile(stack.configFile, withCommand);
  const config = await loadConfig(stack.configFile);
  t.same(config.services[0]?.rollout.promoteCommand, command);
  const cap = captureLogger();
  const { sc } = await startInProcess(t, config, { log: cap.log });
  const traffic = stack.traffic();
  t.teardown(() => traffic.stop());
  await stack.until('complete at 15', (s) => s.weight === 15 && s.phase === 'complete', 60_000);

  await t.rejects(sc.runner.promote('gateway'), {
    code: 'NC_PROMOTE_REFUSED',
    message: /rollout\.promote_command exited with 3: deploy failed: disk full; nothing was changed/,
  });
  t.ok(existsSync(marker), 'the command ran');
  t.match(sc.runner.status().services[0], { weight: 15, phase: 'complete' }, 'nothing changed');

  stack.primary.setReady(false);
  const t0 = performance.now();
  await t.rejects(sc.runner.promote('gateway'), {
    code: 'NC_PROMOTE_REFUSED',
    message: /not every primary server answers \/ready with 200/,
  });
  t.ok(performance.now() - t0 >= 2900, 'it waited for the primary up to promote_timeout');
  t.match(sc.runner.status().services[0], { weight: 15, phase: 'complete' }, 'still nothing changed');

  stack.primary.setReady(true);
  const s = await sc.runner.promote('gateway');
  t.match(s, { weight: 0, phase: 'promoted', promotedVersion: 'v2' });
  const finished = cap.lines.filter((l) => l['msg'] === 'rollout.promote_command finished');
  t.same(
    finished.map((l) => [l['code'], l['output']]),
    [
      [3, 'deploy failed: disk full'],
      [0, 'deployed v2 to the primary'],
      [0, 'deployed v2 to the primary'],
    ],
    'each run of the command is logged with its exit code and output',
  );
  await traffic.stop();
  const metrics = await sc.app.inject({ method: 'GET', url: '/metrics' });
  t.match(metrics.body, /nginx_canary_promotions_total\{service="gateway"\} 1\b/);
});
