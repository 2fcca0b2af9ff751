// oldWorkers on a real nginx: an in-flight request through a slow real backend
// keeps the worker that holds it in "shutting down" after a reload; two reloads
// with one held request each make two generations; releasing them (the client
// goes away, nginx aborts the upstream request) lets them exit well before
// worker_shutdown_timeout (30 s here). Plus the parser on a hand-made /proc, and
// the reads behind the applier's proof that a reload is live (workerProcesses,
// stillAccepting) on one.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { countGenerations, oldWorkers, statFields, stillAccepting, workerProcesses } from '../../src/nginx/workers.js';
import { waitFor } from '../../src/util/wait.js';
import { holdRequest, reloadAndSettle, startTestNginx } from '../fixtures/nginx/harness.js';

/** A /proc/<pid>/stat line with ppid and starttime (ticks) set; comm with a space and a ')' as nginx never has, to test the parse. */
function statLine(pid: number, ppid: number, startTicks: number): string {
  const after = ['S', ppid, ...Array.from({ length: 17 }, () => 0), startTicks, 0, 0];
  return `${pid} (ngi) nx) ${after.join(' ')}\n`;
}

async function fakeProc(
  root: string,
  procs: { pid: number; ppid: number; start: number; title: string }[],
  children: boolean,
): Promise<void> {
  for (const p of procs) {
    await mkdir(path.join(root, String(p.pid), 'task', String(p.pid)), { recursive: true });
    await writeFile(path.join(root, String(p.pid), 'stat'), statLine(p.pid, p.ppid, p.start));
    await writeFile(path.join(root, String(p.pid), 'cmdline'), `${p.title}\0\0\0`);
    if (children)
      await writeFile(
        path.join(root, String(p.pid), 'task', String(p.pid), 'children'),
        procs
          .filter((c) => c.ppid === p.pid)
          .map((c) => `${c.pid} `)
          .join(''),
      );
  }
  await mkdir(path.join(root, 'self'), { recursive: true });
}

t.test('countGenerations clusters start times by gap', async (t) => {
  t.equal(countGenerations([], 100), 0);
  t.equal(countGenerations([500], 100), 1);
  t.equal(countGenerations([1000, 1010, 1000], 100), 1, 'one reload: same tick or one apart');
  t.equal(countGenerations([2000, 1000, 1010, 2010], 100), 2, 'unsorted input, two reloads 1 s apart');
  t.equal(countGenerations([1000, 1100, 1201], 100), 2, 'a gap of exactly 100 joins, 101 splits');
});

t.test('statFields reads past a comm holding spaces and parentheses', async (t) => {
  const f = statFields(statLine(7, 3, 4242));
  t.equal(f?.[1], '3', 'field 4: ppid');
  t.equal(f?.[19], '4242', 'field 22: starttime');
  t.equal(statFields('garbage'), null);
  t.equal(statFields('1 (x) S 0'), null, 'too few fields');
});

t.test('oldWorkers on a hand-made /proc', async (t) => {
  const procs = [
    { pid: 10, ppid: 1, start: 100, title: 'nginx: master process nginx -c x' },
    { pid: 11, ppid: 10, start: 200, title: 'nginx: worker process is shutting down' },
    { pid: 12, ppid: 10, start: 200, title: 'nginx: worker process is shutting down' },
    { pid: 13, ppid: 10, start: 900, title: 'nginx: worker process is shutting down' },
    { pid: 14, ppid: 10, start: 1500, title: 'nginx: worker process' },
    { pid: 20, ppid: 1, start: 300, title: 'nginx: worker process is shutting down' },
  ];
  const dir = t.testdir();
  const withChildren = path.join(dir, 'a');
  await fakeProc(withChildren, procs, true);
  const expected = { shuttingDown: 3, generations: 2, pids: [11, 12, 13] };
  t.same(await oldWorkers(10, { procRoot: withChildren }), expected, 'via task/<pid>/children');
  const scan = path.join(dir, 'b');
  await fakeProc(scan, procs, false);
  await mkdir(path.join(scan, '30'), { recursive: true }); // a process that exited mid-scan: no stat
  t.same(await oldWorkers(10, { procRoot: scan }), expected, 'via a scan of every stat (no CONFIG_PROC_CHILDREN)');
  t.same(
    await oldWorkers(10, { procRoot: scan, gapMs: 10_000 }),
    { ...expected, generations: 1 },
    'a wider gap joins the two reloads',
  );
  t.same(
    await oldWorkers(10, { procRoot: scan, ticksPerSecond: 1000 }),
    expected,
    'at 1000 ticks/s: 1 ms vs 699 ms apart',
  );
  // A child listed but gone before its stat was read is skipped.
  await writeFile(path.join(withChildren, '10', 'task', '10', 'children'), '11 12 13 99 ');
  t.same(await oldWorkers(10, { procRoot: withChildren }), expected, 'a vanished child is skipped');
  await writeFile(path.join(withChildren, '12', 'stat'), 'not a stat line');
  t.same(
    await oldWorkers(10, { procRoot: withChildren }),
    { shuttingDown: 2, generations: 2, pids: [11, 13] },
    'an unreadable stat is skipped',
  );
  const none = { shuttingDown: 0, generations: 0, pids: [] };
  t.same(await oldWorkers(10, { procRoot: path.join(dir, 'no-proc') }), none, 'no /proc: zeros');
  t.same(await oldWorkers(4242, { procRoot: scan }), none, 'master gone: zeros');
});

t.test('oldWorkers on a real nginx: held requests keep old generations alive', async (t) => {
  let edited = false;
  const h = await startTestNginx(t, {
    editConf: (s) => {
      edited = s.includes('worker_shutdown_timeout 10s;');
      // Long enough that this test, not the timeout, ends the old workers.
      return s.replace('worker_shutdown_timeout 10s;', 'worker_shutdown_timeout 30s;');
    },
  });
  t.ok(edited, 'the example nginx.conf sets worker_shutdown_timeout 10s (raised to 30s here)');
  const primary = h.backends.primary[0];
  if (!primary) throw new Error('harness started no primary backend');
  // Weight 0: every request goes to the primary, which now answers after 60 s.
  await primary.setFault({ kind: 'delay', ms: 60_000 });
  const master = h.nginx.pid;
  const sockets: Socket[] = [];
  t.teardown(() => sockets.forEach((s) => s.destroy()));

  t.same(await oldWorkers(master), { shuttingDown: 0, generations: 0, pids: [] }, 'nothing draining at start');

  // The heuristic needs reloads more than gapMs (100 ms) apart; wait for that
  // much real time since the previous set of workers started.
  let lastStart = performance.now();
  const apart = (): Promise<boolean> =>
    waitFor(() => performance.now() - lastStart > 300, { what: 'reloads 300 ms apart', timeoutMs: 2000 });

  sockets.push(await holdRequest(h.port));
  await waitFor(() => primary.openConnections >= 1, { what: 'nginx to forward the held request' });
  await apart();
  // The other old worker has nothing in flight and exits at once; the one holding the request stays. Settled
  // means no old worker still accepts either, so the next held request reaches a new one (see the harness).
  const one = await reloadAndSettle(h, 1);
  lastStart = performance.now();
  t.equal(one.generations, 1, 'one generation after one reload');

  sockets.push(await holdRequest(h.port));
  await waitFor(() => primary.openConnections >= 2, { what: 'a new worker to forward the second held request' });
  await apart();
  const two = await reloadAndSettle(h, 2);
  t.equal(two.generations, 2, 'two generations after two reloads with a held request each');
  t.equal(two.pids[0], one.pids[0], 'the oldest is the first one, still there');

  const released = performance.now();
  for (const s of sockets) s.destroy();
  await waitFor(
    async () => {
      const w = await oldWorkers(master);
      return w.shuttingDown === 0 && w.generations === 0 && w.pids.length === 0;
    },
    { what: 'the old workers to exit once their requests are gone', timeoutMs: 10_000 },
  );
  t.ok(
    performance.now() - released < 10_000,
    'they exited because the requests ended, not at worker_shutdown_timeout (30 s)',
  );
});

t.test('workerProcesses on a hand-made /proc: the workers of a master, draining or not', async (t) => {
  const procs = [
    { pid: 10, ppid: 1, start: 100, title: 'nginx: master process nginx -c x' },
    { pid: 15, ppid: 10, start: 900, title: 'nginx: worker process' },
    { pid: 11, ppid: 10, start: 900, title: 'nginx: worker process' },
    { pid: 12, ppid: 10, start: 200, title: 'nginx: worker process is shutting down' },
    { pid: 13, ppid: 10, start: 900, title: 'nginx: cache manager process' },
    // Forked a moment ago: still the master's title (a new master of a binary upgrade looks the same).
    { pid: 14, ppid: 10, start: 950, title: 'nginx: master process nginx -c x' },
    { pid: 20, ppid: 1, start: 300, title: 'nginx: worker process' },
  ];
  const dir = t.testdir();
  const expected = [
    { pid: 11, startTicks: 900, shuttingDown: false },
    { pid: 12, startTicks: 200, shuttingDown: true },
    { pid: 15, startTicks: 900, shuttingDown: false },
  ];
  const listed = path.join(dir, 'a');
  await fakeProc(listed, procs, true);
  t.same(await workerProcesses(10, { procRoot: listed }), expected, 'via task/<pid>/children, sorted by pid');
  const scan = path.join(dir, 'b');
  await fakeProc(scan, procs, false);
  t.same(await workerProcesses(10, { procRoot: scan }), expected, 'via a scan of every stat');

  // The kernel's list skipped 15 because the child listed before it (99) was reaped mid-read: a listed
  // pid gone afterwards means the list may be short, so it is read again and then the whole /proc scanned.
  await writeFile(path.join(listed, '10', 'task', '10', 'children'), '11 12 13 99 14 ');
  t.same(await workerProcesses(10, { procRoot: listed }), expected, 'a list with a vanished pid is not trusted');
  // A listed pid that is alive but no longer the master's child (reused by another process) is not trusted either.
  await mkdir(path.join(listed, '99'), { recursive: true });
  await writeFile(path.join(listed, '99', 'stat'), statLine(99, 1, 5000));
  t.same(await workerProcesses(10, { procRoot: listed }), expected, 'a listed pid now of another parent');

  await writeFile(path.join(listed, '10', 'cmdline'), 'bash\0-c\0x\0');
  t.equal(await workerProcesses(10, { procRoot: listed }), null, 'not an nginx master (another pid namespace)');
  t.equal(await workerProcesses(4242, { procRoot: listed }), null, 'master gone');
  t.equal(await workerProcesses(10, { procRoot: path.join(dir, 'no-proc') }), null, 'no /proc (not Linux)');
});

t.test(
  'stillAccepting: gone, retitled or reused means it accepts no more; a half-written title still does',
  async (t) => {
    const procs = [
      { pid: 10, ppid: 1, start: 100, title: 'nginx: master process nginx -c x' },
      { pid: 11, ppid: 10, start: 900, title: 'nginx: worker process' },
      { pid: 12, ppid: 10, start: 900, title: 'nginx: worker process' },
      { pid: 13, ppid: 10, start: 200, title: 'nginx: worker process is shutting down' },
    ];
    const root = t.testdir();
    await fakeProc(root, procs, true);
    const before = await workerProcesses(10, { procRoot: root });
    if (before === null) throw new Error('fake master not seen');
    const pids = (): number[] => stillAccepting(before, { procRoot: root }).map((w) => w.pid);
    t.same(pids(), [11, 12], 'before the reload: both accepting workers (13 was draining already)');

    const title = (pid: number, text: string): Promise<void> =>
      writeFile(path.join(root, String(pid), 'cmdline'), `${text}\0\0\0\0\0\0\0\0`);
    await title(11, 'nginx: worker process is sh');
    t.same(pids(), [11, 12], 'a title caught half-written counts as still accepting');
    await title(11, 'nginx: worker process is shutting down');
    t.same(pids(), [12], 'retitled: accepts no more (it closes its listeners next, nginx ngx_process_cycle.c)');
    await writeFile(path.join(root, '12', 'stat'), statLine(12, 10, 1700));
    t.same(pids(), [], 'pid 12 now a new worker (another start time): the old one is gone');
    await writeFile(path.join(root, '12', 'stat'), statLine(12, 10, 900));
    await rm(path.join(root, '11'), { recursive: true });
    t.same(pids(), [12], 'an exited worker is gone');
    await rm(path.join(root, '12', 'cmdline'));
    t.same(pids(), [], 'one that exits between its stat and its cmdline is gone');
  },
);
