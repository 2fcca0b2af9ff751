// src/lock.ts on real files and real processes: acquire and release, a live
// holder refused (NC_LOCKED naming its pid), dead, garbage, reused-pid and
// earlier-boot locks taken over, another host's lock refused, and N real node
// processes racing for one stale lock: exactly one wins, every round.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import {
  acquireLock,
  acquireLocks,
  parseLockHolder,
  readLock,
  sidecarLockFiles,
  type LockHolder,
} from '../src/lock.js';
import type { CanaryError } from '../src/errors.js';
import { waitFor } from '../src/util/wait.js';
import { captureLogger } from './fixtures/integration/sidecar.js';
import { repoRoot } from './fixtures/stack.js';

const bootId = ((): string | null => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
})();

/** A lock record as another process would have written it. */
function holder(over: Partial<LockHolder>): LockHolder {
  return {
    pid: 1,
    hostname: hostname(),
    startedAt: '2025-01-01T00:00:00.000Z',
    argv: ['/usr/bin/node', '/usr/bin/nginx-canary', 'run'],
    nonce: 'feedfacefeedface',
    bootId,
    procStart: null,
    ...over,
  };
}

/** The pid of a node process that has exited (so no process has it, barring reuse). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  const pid = child.pid;
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (pid === undefined) throw new Error('spawn gave no pid');
  return pid;
}

/** A node process that lives until killed (killed by the test's teardown). */
function liveChild(t: Test): ChildProcess & { pid: number } {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  if (child.pid === undefined) throw new Error('spawn gave no pid');
  return child as ChildProcess & { pid: number };
}

function procStartOf(pid: number): string {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ')[19] ?? '';
}

async function rejectsCode(p: Promise<unknown>): Promise<CanaryError> {
  try {
    await p;
  } catch (err) {
    return err as CanaryError;
  }
  throw new Error('expected a rejection');
}

t.test('acquire, refuse a second holder, release', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'state', 'state.json.lock');
  const lock = await acquireLock(file);
  t.equal((await stat(path.dirname(file))).mode & 0o777, 0o700, 'a missing directory is created 0700');
  t.equal((await stat(file)).mode & 0o777, 0o600, 'the lock file is 0600');
  const h = await readLock(file);
  t.match(h, { pid: process.pid, hostname: hostname(), argv: process.argv });
  t.ok(h && !Number.isNaN(Date.parse(h.startedAt)), 'startedAt is an ISO time');
  t.same(await readdir(path.dirname(file)), ['state.json.lock'], 'no temp file left');

  const err = await rejectsCode(acquireLock(file));
  t.equal(err.code, 'NC_LOCKED');
  t.equal(err.exitCode, 1);
  t.match(err.message, file, 'the message names the lock file');
  t.match(err.message, `pid ${process.pid}`, "and the holder's pid");
  t.match(err.fix, new RegExp(`Stop the other process \\(pid ${process.pid}\\).*delete ${file}`));
  t.equal((await readLock(file))?.nonce, lock.holder.nonce, 'the refused attempt left the lock alone');

  await lock.release();
  await lock.release();
  t.same(await readdir(path.dirname(file)), [], 'released: the file is gone (twice is fine)');
  const again = await acquireLock(file);
  t.equal((await readLock(file))?.nonce, again.holder.nonce, 'it can be taken again');
  await again.release();
});

t.test("release never removes someone else's lock", async (t) => {
  const file = path.join(t.testdir({}), 'x.lock');
  const lock = await acquireLock(file);
  const other = JSON.stringify(holder({ pid: await deadPid() }));
  await writeFile(file, other);
  await lock.release();
  t.equal(await readFile(file, 'utf8'), other, 'the file holds another record: left in place');
});

t.test('stale locks are taken over and logged', async (t) => {
  const dir = t.testdir({});
  const cases: [string, string | (() => Promise<string>), string][] = [
    ['a dead pid', async () => JSON.stringify(holder({ pid: await deadPid() })), 'dead'],
    ['garbage', '{"pid": 12', 'unreadable'],
    ['an empty file', '', 'unreadable'],
    ['a record of the wrong shape', JSON.stringify({ pid: -1, hostname: hostname() }), 'unreadable'],
    [
      'our own pid but not our lock (an earlier process with the same pid)',
      JSON.stringify(holder({ pid: process.pid })),
      'pid reused',
    ],
  ];
  if (bootId !== null)
    cases.push(['an earlier boot', JSON.stringify(holder({ pid: process.pid, bootId: 'x' })), 'rebooted']);
  for (const [what, content, reason] of cases) {
    const file = path.join(dir, `${reason.replace(/ /g, '-')}-${cases.findIndex((c) => c[0] === what)}.lock`);
    await writeFile(file, typeof content === 'string' ? content : await content());
    const cap = captureLogger();
    const lock = await acquireLock(file, { log: cap.log });
    t.equal((await readLock(file))?.nonce, lock.holder.nonce, `${what}: taken over`);
    t.match(
      cap.lines,
      [{ level: 40, msg: 'replaced a stale lock', file, reason }],
      `${what}: a warning with the reason`,
    );
    await lock.release();
  }
  t.same(await readdir(dir), [], 'no lock, claim or temp file left');
});

t.test(
  'a live pid is kept; the same pid with another start time is a reused pid',
  { skip: bootId === null ? 'needs /proc' : false },
  async (t) => {
    const child = liveChild(t);
    const file = path.join(t.testdir({}), 'x.lock');
    await waitFor(() => procStartOf(child.pid) !== '', { what: 'the child in /proc' });
    await writeFile(file, JSON.stringify(holder({ pid: child.pid, procStart: procStartOf(child.pid) })));
    const err = await rejectsCode(acquireLock(file));
    t.equal(err.code, 'NC_LOCKED', 'held by a live process');
    t.match(err.message, `pid ${child.pid}`);
    await writeFile(file, JSON.stringify(holder({ pid: child.pid, procStart: '1' })));
    const lock = await acquireLock(file);
    t.equal((await readLock(file))?.pid, process.pid, 'pid alive but started at another time: taken over');
    await lock.release();
  },
);

t.test('pid 1: alive (EPERM for a non-root user counts as alive too)', async (t) => {
  const file = path.join(t.testdir({}), 'x.lock');
  await writeFile(file, JSON.stringify(holder({ pid: 1 })));
  const err = await rejectsCode(acquireLock(file));
  t.equal(err.code, 'NC_LOCKED');
  t.match(err.message, 'pid 1 ');
});

t.test("another host's lock is never taken over", async (t) => {
  const file = path.join(t.testdir({}), 'x.lock');
  const remote = JSON.stringify(holder({ hostname: 'elsewhere.example', pid: await deadPid() }));
  await writeFile(file, remote);
  const err = await rejectsCode(acquireLock(file));
  t.equal(err.code, 'NC_LOCKED');
  t.match(err.message, /on host elsewhere\.example/);
  t.match(err.fix, /never taken over/);
  const timeout = await rejectsCode(acquireLock(file, { waitMs: 100 }));
  t.equal(timeout.code, 'NC_LOCK_TIMEOUT', 'waiting does not help either');
  t.equal(await readFile(file, 'utf8'), remote, 'the file is untouched');
});

t.test('waitMs: a holder that lets go in time, and one that does not', async (t) => {
  const file = path.join(t.testdir({}), 'x.lock');
  const first = await acquireLock(file);
  const timeout = await rejectsCode(acquireLock(file, { waitMs: 100, intervalMs: 10 }));
  t.equal(timeout.code, 'NC_LOCK_TIMEOUT');
  t.equal(timeout.statusCode, 409);
  t.match(timeout.message, /after 100 ms; nothing was changed/);
  const started = performance.now();
  // The scenario, not a settle wait: the holder lets go 200 ms from now, while the second waits.
  const timer = setTimeout(() => void first.release(), 200);
  t.teardown(() => clearTimeout(timer));
  const second = await acquireLock(file, { waitMs: 5000, intervalMs: 10 });
  t.ok(performance.now() - started >= 150, 'it waited for the release');
  await second.release();
});

t.test('a takeover interrupted by a crash does not wedge the lock; a live one is waited for', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'x.lock');
  const stale = JSON.stringify(holder({ pid: await deadPid() }));
  await writeFile(file, stale);
  const claimOf = (subject: string, bytes: string): string =>
    `${file}.takeover-${createHash('sha256').update(subject).update('\0').update(bytes).digest('hex').slice(0, 16)}`;
  // A taker died between its claim and the rename: its claim file is left behind.
  const deadClaim = JSON.stringify(holder({ pid: await deadPid(), nonce: 'deadclaim' }));
  await writeFile(claimOf(file, stale), deadClaim);
  const lock = await acquireLock(file);
  t.equal((await readLock(file))?.nonce, lock.holder.nonce, 'the dead claim is claimed in turn; the lock is ours');
  t.same(await readdir(dir), ['x.lock'], 'both claim files removed');
  await lock.release();

  // A live process is in the middle of taking it over: wait, then NC_LOCKED (nobody finished it).
  await writeFile(file, stale);
  const child = liveChild(t);
  await writeFile(claimOf(file, stale), JSON.stringify(holder({ pid: child.pid, nonce: 'liveclaim' })));
  const started = performance.now();
  const err = await rejectsCode(acquireLock(file, { intervalMs: 20 }));
  t.equal(err.code, 'NC_LOCKED');
  t.match(err.message, /being taken over by another process/);
  t.ok(performance.now() - started >= 900, 'it gave the live taker about a second');
  t.equal(await readFile(file, 'utf8'), stale, 'the lock was left to the live taker');
});

t.test('acquireLocks releases what it took when a later lock is held', async (t) => {
  const dir = t.testdir({});
  const config = {
    sidecar: { stateFile: path.join(dir, 'state', 'state.json') },
    nginx: { upstreamsFile: path.join(dir, 'conf.d', 'nginx-canary.conf') },
  } as Parameters<typeof sidecarLockFiles>[0];
  const files = sidecarLockFiles(config);
  t.same(files, [path.join(dir, 'state', 'state.json.lock'), path.join(dir, 'conf.d', '.nginx-canary.lock')]);
  const nginxLock = await acquireLock(files[1] ?? '');
  const err = await rejectsCode(acquireLocks(files));
  t.equal(err.code, 'NC_LOCKED');
  t.match(err.message, files[1] ?? '');
  t.same(await readdir(path.join(dir, 'state')), [], 'the state lock taken first was released');
  await nginxLock.release();
  const both = await acquireLocks(files);
  t.equal(both.length, 2);
  for (const l of both) await l.release();
});

t.test('parseLockHolder', async (t) => {
  const h = holder({});
  t.same(parseLockHolder(JSON.stringify(h)), h);
  t.same(parseLockHolder(Buffer.from(JSON.stringify({ ...h, extra: 1 }))), { ...h, extra: 1 }, 'extra keys are kept');
  t.equal(parseLockHolder('null'), null);
  t.equal(parseLockHolder(JSON.stringify({ ...h, pid: 0 })), null, 'pid 0 would signal our process group');
  t.equal(parseLockHolder(JSON.stringify({ ...h, argv: [1] })), null);
});

/** The racing child: on "go <file>" tries the lock and reports; holds every lock it won until "exit". */
const RACER = `
import { createInterface } from 'node:readline';
const { acquireLock } = await import(process.argv[2]);
const locks = [];
console.log(JSON.stringify({ ready: true }));
for await (const line of createInterface({ input: process.stdin })) {
  if (line.startsWith('go ')) {
    const file = line.slice(3);
    try {
      const lock = await acquireLock(file);
      locks.push(lock);
      console.log(JSON.stringify({ file, won: true, pid: process.pid, nonce: lock.holder.nonce }));
    } catch (err) {
      console.log(JSON.stringify({ file, won: false, pid: process.pid, code: err.code, message: err.message }));
    }
  } else if (line === 'exit') {
    for (const l of locks) await l.release();
    process.exit(0);
  }
}
`;

interface Report {
  ready?: boolean;
  file?: string;
  won?: boolean;
  pid: number;
  nonce?: string;
  code?: string;
  message?: string;
}

t.test('N processes racing for one stale lock: exactly one wins, every round', async (t) => {
  const dir = t.testdir({ 'racer.mjs': RACER, locks: {} });
  const lockModule = pathToFileURL(path.join(repoRoot, 'dist', 'lock.js')).href;
  const N = 8;
  const ROUNDS = 30;
  const dead = await deadPid();
  const children = Array.from({ length: N }, () =>
    spawn(process.execPath, [path.join(dir, 'racer.mjs'), lockModule], { stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  t.teardown(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });
  const exited = children.map((c) => new Promise<number | null>((resolve) => c.once('exit', (code) => resolve(code))));
  const reports: Report[] = [];
  for (const c of children)
    createInterface({ input: c.stdout }).on('line', (l) => reports.push(JSON.parse(l) as Report));
  await waitFor(() => reports.filter((r) => r.ready).length === N, { timeoutMs: 30_000, what: 'all racers ready' });

  const winners = new Set<number>();
  for (let round = 0; round < ROUNDS; round++) {
    const file = path.join(dir, 'locks', `round-${round}.lock`);
    // Alternate the kind of staleness: a dead holder, then garbage.
    await writeFile(file, round % 2 === 0 ? JSON.stringify(holder({ pid: dead })) : 'garbage\n');
    for (const c of children) c.stdin.write(`go ${file}\n`);
    const results = await waitFor(
      () => {
        const r = reports.filter((x) => x.file === file);
        return r.length === N ? r : null;
      },
      { timeoutMs: 15_000, what: `every racer to report on round ${round}` },
    );
    const won = results.filter((r) => r.won);
    t.equal(won.length, 1, `round ${round}: exactly one of ${N} wins`);
    const lost = results.filter((r) => !r.won);
    t.ok(
      lost.every((r) => r.code === 'NC_LOCKED' && r.message?.includes(`pid ${won[0]?.pid} `)),
      `round ${round}: the ${lost.length} others get NC_LOCKED naming the winner's pid`,
    );
    t.equal((await readLock(file))?.nonce, won[0]?.nonce, `round ${round}: the file holds the winner's record`);
    winners.add(won[0]?.pid ?? 0);
  }
  t.same(
    (await readdir(path.join(dir, 'locks'))).filter((n) => !/^round-\d+\.lock$/.test(n)),
    [],
    'no claim or temp file left',
  );
  for (const c of children) c.stdin.end('exit\n');
  t.same(await Promise.all(exited), Array<number>(N).fill(0), 'every racer exited 0');
  t.same(await readdir(path.join(dir, 'locks')), [], 'the winners released their locks');
  t.comment(`${ROUNDS} rounds of ${N} racers; ${winners.size} different processes won`);
});
