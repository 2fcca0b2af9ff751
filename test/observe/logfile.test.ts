// The access log created by the sidecar before nginx would (src/observe/logfile.ts;
// README "The access log on Debian"): 0640 whatever the umask, and as root the owner and group
// of nginx's other logs in its directory (Debian: www-data:adm), else the
// ownership as created; an existing file is never touched. Then the whole edge
// on the real nginx (src/main.ts): a sidecar started while the log is missing
// creates it and has nginx reopen into it.
import t from 'tap';
import { chmod, chown, lstat, mkdir, readFile, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ACCESS_LOG_MODE, ensureAccessLog, siblingLogOwner } from '../../src/observe/logfile.js';
import { waitFor } from '../../src/util/wait.js';
import { startInProcess } from '../fixtures/in-process.js';
import { captureLogger } from '../fixtures/integration/sidecar.js';
import { sample, startStack } from '../fixtures/stack.js';

const isRoot = process.getuid?.() === 0;
/** Owner and group no account here has: only a chown by the code under test can produce them. */
const UID = 4321;
const GID = 8765;

/** Runs `fn` under `mask`, restoring the umask after. */
async function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const before = process.umask(mask);
  try {
    return await fn();
  } finally {
    process.umask(before);
  }
}

t.test('created 0640 whatever the umask; without sibling logs or not as root, ownership as created', async (t) => {
  const dir = t.testdir({ 'nginx.pid': '1\n', 'canary.json.1': '' });
  const file = path.join(dir, 'canary.json');
  const r = await withUmask(0o077, () => ensureAccessLog(file, { root: false }));
  t.same(r, { created: true, mode: ACCESS_LOG_MODE, owner: null });
  const st = await stat(file);
  t.equal(st.mode & 0o777, 0o640, 'mode 0640 under umask 077');
  t.equal(st.size, 0, 'empty');
  t.equal(st.uid, process.getuid?.(), 'owned by this process');

  // As root but no `*.log` beside it (nginx.pid, a rotated canary.json.1 are not nginx's logs): ownership as created.
  await unlink(file);
  const r2 = await withUmask(0o022, () => ensureAccessLog(file, { root: true }));
  t.same(r2, { created: true, mode: ACCESS_LOG_MODE, owner: null }, 'no sibling log: no chown');
  t.equal((await stat(file)).mode & 0o777, 0o640, 'mode 0640 under umask 022');
});

t.test('as root: the owner and group of the other logs in the directory', async (t) => {
  if (!isRoot) {
    t.plan(0, 'needs root to chown the sibling log and the new file: skipped');
    return;
  }
  const dir = t.testdir({ 'access.log': 'a\n', 'error.log': '', 'nginx.pid': '1\n', 'zz.log': { sub: '' } });
  // A symlinked *.log sorts first but is not a log of this directory; then access.log (by name).
  await symlink('/etc/passwd', path.join(dir, 'a-link.log'));
  await chown(path.join(dir, 'access.log'), UID, GID);
  await chown(path.join(dir, 'error.log'), UID + 1, GID + 1);
  await chown(path.join(dir, 'nginx.pid'), UID + 2, GID + 2);
  t.same(await siblingLogOwner(dir, 'canary.json'), { uid: UID, gid: GID, from: path.join(dir, 'access.log') });

  const file = path.join(dir, 'canary.json');
  const r = await ensureAccessLog(file);
  t.same(r, { created: true, mode: 0o640, owner: { uid: UID, gid: GID, from: path.join(dir, 'access.log') } });
  const st = await stat(file);
  t.equal(st.mode & 0o777, 0o640, 'mode 0640');
  t.same([st.uid, st.gid], [UID, GID], `owner ${UID}:${GID} copied from access.log (as www-data:adm on Debian)`);
  t.equal((await lstat(path.join(dir, 'a-link.log'))).isSymbolicLink(), true, 'the symlink was not followed');

  // `root: false` (the unit's nginx-canary user, which has no CAP_CHOWN): mode only.
  const other = path.join(dir, 'other.json');
  t.same(await ensureAccessLog(other, { root: false }), { created: true, mode: 0o640, owner: null });
  t.same([(await stat(other)).uid, (await stat(other)).gid], [0, 0], 'left as created (root here)');
});

t.test('an existing file is left alone; a missing directory is not created; other errors are thrown', async (t) => {
  const dir = t.testdir({ 'canary.json': 'nginx wrote this\n', 'access.log': '' });
  const file = path.join(dir, 'canary.json');
  await chmod(file, 0o644);
  t.same(await ensureAccessLog(file, { root: true }), { created: false, reason: 'exists' });
  const st = await stat(file);
  t.equal(st.mode & 0o777, 0o644, 'mode untouched');
  t.equal(await readFile(file, 'utf8'), 'nginx wrote this\n', 'content untouched');

  const missing = path.join(dir, 'no', 'such', 'canary.json');
  t.same(await ensureAccessLog(missing), { created: false, reason: 'no-directory' });
  await t.rejects(stat(path.join(dir, 'no')), { code: 'ENOENT' }, 'the directory was not created');
  await writeFile(path.join(dir, 'plain'), '');
  t.same(await ensureAccessLog(path.join(dir, 'plain', 'canary.json')), { created: false, reason: 'no-directory' });

  await t.rejects(ensureAccessLog(path.join(dir, `${'x'.repeat(300)}.json`)), { code: 'ENAMETOOLONG' });
  await mkdir(path.join(dir, 'sub'));
  t.same(await ensureAccessLog(path.join(dir, 'sub')), { created: false, reason: 'exists' }, 'a directory exists');
});

t.test('the sidecar, started while the log is missing, creates it and nginx reopens into it', async (t) => {
  const stack = await startStack(t, { target: 0 });
  // nginx's workers (user nobody under a root master) reopen the log by path: they must reach it.
  await chmod(stack.dir, 0o755);
  const file = stack.config.nginx.accessLog;
  const errorLog = path.join(path.dirname(file), 'error.log');
  if (isRoot) await chown(errorLog, UID, GID);
  // Deleted while nginx runs: nginx goes on writing to the unlinked file.
  await unlink(file);
  t.same(await stack.send(20), Array(20).fill(200), 'nginx serves (and logs to the deleted file)');
  await t.rejects(stat(file), { code: 'ENOENT' }, 'the path stays missing');

  const cap = captureLogger();
  await startInProcess(t, stack.config, { log: cap.log });
  const st = await stat(file);
  t.equal(st.mode & 0o777, 0o640, 'created 0640 at start');
  if (isRoot) t.equal(st.gid, GID, "the group of nginx's error.log beside it (nginx's reopen sets only the user)");
  t.match(cap.text(), /created the access log \(0640, /, 'and said so');

  // Without the reopen nginx would write to the deleted file forever and the gates would see nothing.
  const statuses = await stack.send(50);
  t.equal(statuses.filter((s) => s === 200).length, 50, 'nginx answered 50 requests');
  const parsed = await waitFor(
    async () => {
      const n = sample(await stack.metrics(), 'nginx_canary_log_lines_total{result="parsed"}');
      return n >= 50 ? n : null;
    },
    { timeoutMs: 10_000, intervalMs: 100, what: 'the 50 lines read by the sidecar' },
  );
  t.equal(parsed, 50, 'every line, from the file the sidecar created');
  t.ok((await stat(file)).size > 0, 'nginx writes to it');
  t.equal((await stat(file)).mode & 0o777, 0o640, 'still 0640 after nginx reopened it');
});
