// `nginx-canary demo --fleet 3` as a user runs it (bin/nginx-canary, so `npm run build` first): a
// single-member etcd, three hosts behind a front nginx, the walk to the target on every host, then the
// canary fault and a fleet-wide drain; SIGTERM stops every process it started (by pid) and removes its
// temp dir. Without etcd on PATH it says how to install it and starts nothing.
import t from 'tap';
import { spawn } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { waitFor } from '../../src/util/wait.js';
import { EtcdMissingError, EtcdStartError, findOnPath, startDemoEtcd } from '../../src/demo/etcd.js';
import { binPath, userEnv } from '../fixtures/stack.js';

/** Runs `bin/nginx-canary <args>` with `env`, collecting its output; SIGKILLed after `killAfterMs`. */
function demo(args: string[], env: NodeJS.ProcessEnv, killAfterMs: number) {
  const child = spawn(process.execPath, [binPath, ...args], { cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    }),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** The command line of a live (not zombie) process, or null when the pid is gone. */
async function liveCommand(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    if (/\) Z /.test(stat)) return null;
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replaceAll('\0', ' ').trim();
  } catch {
    return null;
  }
}

t.test('demo --fleet 3: every host walks to the target, then a fleet-wide drain; SIGTERM stops it all', async (t) => {
  const run = demo(['demo', '--fleet', '3'], userEnv(), 75_000);
  t.teardown(() => {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
  });
  const out = run.stdout;
  try {
    await waitFor(() => /fleet drain: the leader drained gateway and every host serves 0 %/.test(out()), {
      timeoutMs: 55_000,
      intervalMs: 100,
      what: 'the fleet drain in the demo output',
      signal: AbortSignal.timeout(56_000),
    });
  } catch (err) {
    t.fail(`${(err as Error).message}\n--- stdout ---\n${out()}\n--- stderr ---\n${run.stderr()}`);
  }
  const text = out();
  const pidsLine = /demo: started pids: etcd=(\d+) nginx=([\d,]+) front=(\d+) sidecars=([\d,]+)/.exec(text);
  t.ok(pidsLine, 'it prints the pids it started');
  const dir = /demo: fleet of 3 hosts in (\S+)/.exec(text)?.[1];
  t.ok(dir, 'it names its temp dir');
  t.match(text, /status page of host-1 \(shows every host of the fleet\): http:\/\/127\.0\.0\.1:\d+\//);
  t.match(text, /fleet: host-\d leads/, 'the leader is named');

  const complete = text.indexOf('demo: every host serves gateway 50 % (the target)');
  const drained = text.indexOf('demo: fleet drain: the leader drained gateway and every host serves 0 %');
  t.ok(complete > 0 && drained > complete, 'every host at the target, then the fleet drain');
  for (const h of ['host-1', 'host-2', 'host-3']) {
    t.match(text, new RegExp(`${h}: gateway \\d+ % → 50 %`), `${h}'s weight printed on its step to the target`);
    t.match(text, new RegExp(`${h}: gateway 50 % → 0 %`), `${h}'s drain printed`);
  }
  t.match(text, /fleet \(leader host-\d, generation \d+\): gateway drain 50 % → 0 %/, "the leader's drain decision");
  t.ok(text.indexOf('demo: now making the canary answer 500') < drained, 'the drain follows the fault');

  run.child.kill('SIGTERM');
  const exit = await run.exited;
  t.same(exit, { code: 0, signal: null }, `exit 0 after SIGTERM\n${run.stderr()}`);
  t.match(out(), /demo: stopped by pid: .*temp dir removed/);

  const pids = pidsLine ? [pidsLine[1], pidsLine[2], pidsLine[3], pidsLine[4]].join(',').split(',').map(Number) : [];
  t.equal(pids.length, 8, 'etcd, three nginx, the front and three sidecars');
  for (const pid of pids) t.equal(await liveCommand(pid), null, `pid ${pid} is gone`);
  if (dir) await t.rejects(access(dir), { code: 'ENOENT' }, 'its temp dir is removed');
});

t.test('demo --fleet: without etcd on PATH, and with a host count outside 2–5', async (t) => {
  const empty = t.testdir({});
  const [noEtcd, one, six] = [
    demo(['demo', '--fleet', '3'], { ...userEnv(), PATH: empty }, 20_000),
    demo(['demo', '--fleet', '1'], userEnv(), 20_000),
    demo(['demo', '--fleet', 'six'], userEnv(), 20_000),
  ];
  t.same(await noEtcd.exited, { code: 1, signal: null }, 'no etcd: exit 1');
  t.match(noEtcd.stderr(), /no `etcd` binary is on PATH/);
  t.match(noEtcd.stderr(), /^Install it .*: apt-get install etcd-server$/m, 'the fix, on a line of its own');
  t.equal(noEtcd.stdout(), '', 'nothing started, nothing printed');
  for (const [run, n] of [
    [one, '1'],
    [six, 'six'],
  ] as const) {
    t.same(await run.exited, { code: 2, signal: null }, `--fleet ${n}: exit 2`);
    t.match(run.stderr(), /is not a number of hosts from 2 to 5/);
  }
});

t.test("the demo's etcd: found on PATH, healthy, stopped by pid with its data dir removed", async (t) => {
  const etcdBin = await findOnPath('etcd');
  t.ok(etcdBin, 'etcd is on PATH (CI installs etcd-server)');
  t.equal(await findOnPath('etcd', t.testdir({})), null, 'not in an empty dir');
  t.equal(await findOnPath('etcd', ''), null, 'nor on an empty PATH');

  const etcd = await startDemoEtcd();
  t.teardown(() => etcd.stop(500));
  t.match(etcd.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.not(await liveCommand(etcd.pid), null, 'it runs');
  await etcd.stop();
  t.equal(await liveCommand(etcd.pid), null, 'stopped');
  await t.rejects(access(etcd.dir), { code: 'ENOENT' }, 'its data dir is removed');
  await etcd.stop(); // idempotent

  const saved = process.env['PATH'];
  process.env['PATH'] = t.testdir({});
  try {
    const err = await startDemoEtcd().catch((e: unknown) => e);
    t.type(err, EtcdMissingError);
    t.match((err as EtcdMissingError).toUserString(), /\nInstall it .*: apt-get install etcd-server$/);
  } finally {
    process.env['PATH'] = saved;
  }
  // A binary that exits at once is not a healthy etcd: the start fails with its words, nothing left.
  const dead = await startDemoEtcd({ binary: '/bin/false', readyTimeoutMs: 5000 }).catch((e: unknown) => e);
  t.type(dead, EtcdStartError);
});
