// SnapshotStore.take when the manifest cannot be written: no half snapshot
// (the tarball is removed too) and the error reaches the caller; a later take
// works. writeFileAtomic is mocked to fail on the manifest only.
import t from 'tap';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ManualClock } from '../../src/clock.js';
import type * as SnapshotModule from '../../src/nginx/snapshot.js';
import * as atomic from '../../src/util/atomic.js';
import { tempDir } from '../fixtures/nginx/harness.js';

t.test('a manifest that cannot be written leaves no tarball behind', async (t) => {
  let failManifest = true;
  const { SnapshotStore } = await t.mockImport<typeof SnapshotModule>('../../src/nginx/snapshot.js', {
    '../../src/util/atomic.js': {
      ...atomic,
      writeFileAtomic: async (file: string, data: string | Buffer, mode?: number): Promise<void> => {
        if (failManifest && file.endsWith('.json')) throw new Error('ENOSPC: no space left on device');
        return atomic.writeFileAtomic(file, data, mode);
      },
    },
  });
  const root = await tempDir();
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const conf = path.join(root, 'conf');
  const snaps = path.join(root, 'snaps');
  const owned = path.join(conf, 'conf.d', 'nginx-canary.conf');
  await mkdir(path.dirname(owned), { recursive: true });
  await writeFile(path.join(conf, 'nginx.conf'), 'events {}\n');
  await writeFile(owned, 'generation 1\n');
  const clock = new ManualClock(Date.UTC(2026, 10, 21, 17, 0, 0));
  const store = new SnapshotStore(snaps, 3, { conf: path.join(conf, 'nginx.conf'), upstreamsFile: owned }, clock);

  await t.rejects(store.take({ generation: 1, weights: { gateway: 0 }, reason: 'x' }), /ENOSPC/);
  t.same(await readdir(snaps), [], 'no tarball, no manifest, no temp file');
  t.same(await store.list(), []);

  failManifest = false;
  clock.advance(1000);
  const ok = await store.take({ generation: 1, weights: { gateway: 0 }, reason: 'y' });
  t.same((await readdir(snaps)).sort(), [`${ok.id}.json`, `${ok.id}.tar.gz`], 'the next take writes a whole snapshot');
});
