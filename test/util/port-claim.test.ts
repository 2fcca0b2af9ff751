// The test ports' claims across test processes (test/fixtures/nginx/harness.ts `claimPort`).
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { claimPort } from '../fixtures/nginx/harness.js';

const dir = path.join(os.tmpdir(), 'nginx-canary-test-ports');
/** Ports above every range the suite draws from (the tests' 10000–20000, the demos' 20000–32000): no other test process takes them. */
const ports = [32_101, 32_102, 32_103].map((p) => p + (process.pid % 500) * 4);

t.teardown(() => {
  for (const p of ports) rmSync(path.join(dir, String(p)), { force: true });
});

t.test('a port is claimed once: the file holds this pid, a second claim is refused', async (t) => {
  const [p] = ports as [number];
  rmSync(path.join(dir, String(p)), { force: true });
  t.equal(claimPort(p), true, 'the first claim');
  t.equal(readFileSync(path.join(dir, String(p)), 'utf8'), String(process.pid));
  t.equal(claimPort(p), false, 'claimed already (by this process, as by any live one)');
});

t.test('a claim of a running process is respected; one of an exited process is taken over', async (t) => {
  const [, live, dead] = ports as [number, number, number];
  writeFileSync(path.join(dir, String(live)), String(process.ppid));
  t.equal(claimPort(live), false, `held by the running pid ${process.ppid}`);
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const gone = Number(child.stdout);
  t.ok(gone > 0, `a child ran and exited (pid ${gone})`);
  writeFileSync(path.join(dir, String(dead)), String(gone));
  t.equal(claimPort(dead), true, 'the exited pid’s claim is taken over');
  t.equal(readFileSync(path.join(dir, String(dead)), 'utf8'), String(process.pid), 'and now holds this pid');
});
