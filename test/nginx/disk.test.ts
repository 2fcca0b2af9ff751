import t from 'tap';
import os from 'node:os';
import path from 'node:path';
import { statfsDisk } from '../../src/nginx/disk.js';

t.test('statfsDisk gives the free ratio 0–1 of the volume', async (t) => {
  const r = await statfsDisk.freeRatio(os.tmpdir());
  t.ok(r > 0 && r <= 1, `free ratio ${r}`);
});

t.test('a path that does not exist yet is measured at its nearest existing ancestor', async (t) => {
  const base = await statfsDisk.freeRatio(os.tmpdir());
  const deep = await statfsDisk.freeRatio(path.join(os.tmpdir(), 'nginx-canary-no-such-dir', 'a', 'b'));
  t.ok(Math.abs(deep - base) < 0.01, `${deep} ≈ ${base}`);
});

t.test('other errors are thrown', async (t) => {
  await t.rejects(statfsDisk.freeRatio('/etc/hostname/x'), { code: 'ENOTDIR' });
});

t.test('a volume without blocks (procfs) counts as free', async (t) => {
  t.equal(await statfsDisk.freeRatio('/proc'), 1);
});
