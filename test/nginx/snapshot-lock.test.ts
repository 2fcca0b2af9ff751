// The sidecar's lock file (src/lock.ts, `.nginx-canary.lock`) lives in the
// nginx config directory but belongs to the running process: a snapshot must
// not contain it and a restore must leave the live lock exactly as it is.
import t from 'tap';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ManualClock } from '../../src/clock.js';
import { NGINX_LOCK_NAME } from '../../src/lock.js';
import { manifestOf, SnapshotStore } from '../../src/nginx/snapshot.js';
import { tempDir } from '../fixtures/nginx/harness.js';

t.test('lock files are neither snapshotted nor restored over', async (t) => {
  const root = await tempDir();
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const conf = path.join(root, 'conf');
  const owned = path.join(conf, 'conf.d', 'nginx-canary.conf');
  await mkdir(path.join(conf, 'conf.d'), { recursive: true });
  await writeFile(path.join(conf, 'nginx.conf'), 'events {}\n');
  await writeFile(owned, 'generation 1\n');
  const lock = path.join(conf, 'conf.d', NGINX_LOCK_NAME);
  await writeFile(lock, '{"pid":111,"old":true}');
  await writeFile(`${lock}.takeover-abc`, 'claim');
  const clock = new ManualClock(Date.UTC(2026, 10, 21, 17, 0, 0));
  const store = new SnapshotStore(
    path.join(root, 'snaps'),
    3,
    { conf: path.join(conf, 'nginx.conf'), upstreamsFile: owned },
    clock,
  );

  const snap = await store.take({ generation: 1, weights: { gateway: 0 }, reason: 'before' });
  t.notOk(
    manifestOf(conf).some((f) => path.basename(f.path).startsWith(NGINX_LOCK_NAME)),
    'the manifest of the live directory leaves the lock out',
  );

  // A later sidecar holds the lock now; the config changes; the old snapshot is restored.
  await writeFile(lock, '{"pid":222,"live":true}');
  await writeFile(owned, 'generation 2\n');
  clock.advance(1000);
  await store.restore(snap.id);
  t.equal(await readFile(owned, 'utf8'), 'generation 1\n', 'the config came back');
  t.equal(await readFile(lock, 'utf8'), '{"pid":222,"live":true}', 'the live lock is untouched');
});
