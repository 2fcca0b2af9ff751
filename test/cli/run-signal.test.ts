// `nginx-canary run` stopped while it starts: a SIGTERM that lands after the
// locks are taken but before the API is up (systemd stopping a unit that is
// still starting) must end in a clean stop: exit 0, both lock files removed,
// nginx untouched. Before the handlers were installed ahead of the start, the
// default action killed the process and left the locks behind as stale.
import t from 'tap';
import { exists, spawnCli, startStack } from '../fixtures/stack.js';
import { sidecarLockFiles } from '../../src/lock.js';
import { waitFor } from '../../src/util/wait.js';

t.test('SIGTERM while run is starting: it finishes the start, stops cleanly and removes its locks', async (t) => {
  const stack = await startStack(t, { target: 30 });
  const [stateLock, nginxLock] = sidecarLockFiles(stack.config) as [string, string];
  const run = spawnCli(stack.dir, stack.configFile, ['run'], 30_000);
  t.teardown(() => {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
  });

  // The state lock is the first thing the start takes; the API comes up about a second later.
  await waitFor(() => exists(stateLock), { timeoutMs: 15_000, intervalMs: 5, what: 'the state lock' });
  const apiUp = run.output().includes('nginx-canary: serving');
  run.child.kill('SIGTERM');
  const { code, signal } = await run.exited;
  t.equal(apiUp, false, 'the signal landed before the API was up');
  t.equal(signal, null, 'not killed by the signal', { output: run.output().slice(-2000) });
  t.equal(code, 0, 'exit 0');
  t.equal(await exists(stateLock), false, 'the state lock is removed');
  t.equal(await exists(nginxLock), false, 'and the nginx lock');
  const statuses = await stack.send(20);
  t.same(
    statuses.filter((s) => s !== 200),
    [],
    'nginx serves every request',
  );
});
