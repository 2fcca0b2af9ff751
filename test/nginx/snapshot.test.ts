import t from 'tap';
import { chmod, mkdir, readFile, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import { createHash } from 'node:crypto';
import { ManualClock } from '../../src/clock.js';
import {
  checkEntryPath,
  manifestOf,
  parseManifest,
  SnapshotStore,
  type ManifestMemo,
  type SnapshotManifest,
} from '../../src/nginx/snapshot.js';
import { writeFileAtomic } from '../../src/util/atomic.js';
import { tempDir } from '../fixtures/nginx/harness.js';

interface Setup {
  root: string;
  conf: string;
  snaps: string;
  owned: string;
  clock: ManualClock;
  store: SnapshotStore;
}

async function setup(t: { teardown(fn: () => unknown): void }, keep = 3): Promise<Setup> {
  const root = await tempDir();
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const conf = path.join(root, 'conf');
  const snaps = path.join(root, 'snapshots');
  const owned = path.join(conf, 'conf.d', 'nginx-canary.conf');
  await mkdir(path.join(conf, 'conf.d'), { recursive: true });
  await writeFile(path.join(conf, 'nginx.conf'), 'events {}\nhttp { include conf.d/nginx-canary.conf; }\n');
  await writeFile(path.join(conf, 'mime.types'), 'types { text/plain txt; }\n');
  await chmod(path.join(conf, 'mime.types'), 0o640);
  const clock = new ManualClock(Date.UTC(2026, 10, 21, 17, 5, 1, 123));
  const store = new SnapshotStore(snaps, keep, { conf: path.join(conf, 'nginx.conf'), upstreamsFile: owned }, clock);
  return { root, conf, snaps, owned, clock, store };
}

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

t.test('take writes a 0600 tarball and manifest in a 0700 dir; list is newest first; keep N is honoured', async (t) => {
  const s = await setup(t, 3);
  await writeFile(s.owned, 'generation 1\n');
  const first = await s.store.take({ generation: 1, weights: { gateway: 0 }, reason: 'one' });
  t.equal(first.id, '20261121T170501.123Z-g1', 'sortable id from the clock and generation');
  t.equal(first.file, path.join(s.snaps, `${first.id}.tar.gz`));
  t.equal((await stat(s.snaps)).mode & 0o777, 0o700);
  t.equal((await stat(first.file)).mode & 0o777, 0o600);
  t.equal((await stat(path.join(s.snaps, `${first.id}.json`))).mode & 0o777, 0o600);

  const manifest = JSON.parse(await readFile(path.join(s.snaps, `${first.id}.json`), 'utf8')) as SnapshotManifest;
  t.equal(manifest.tarballSha256, sha(await readFile(first.file)));
  t.same(manifest.files, manifestOf(s.conf), 'the manifest equals the live directory byte for byte');
  t.same(
    manifest.files.map((f) => [f.path, f.mode]),
    [
      ['conf.d/nginx-canary.conf', 0o644],
      ['mime.types', 0o640],
      ['nginx.conf', 0o644],
    ],
  );
  t.match(manifest, { generation: 1, weights: { gateway: 0 }, reason: 'one', seq: 1, at: s.clock.now() });

  const again = await s.store.take({ generation: 1, weights: { gateway: 0 }, reason: 'same ms, same generation' });
  t.equal(again.id, `${first.id}-2`, 'a colliding id gets the sequence number');
  for (let g = 2; g <= 4; g++) {
    s.clock.advance(1000);
    await s.store.take({ generation: g, weights: { gateway: g * 10 }, reason: `g${g}` });
  }
  const list = await s.store.list();
  t.same(
    list.map((x) => x.generation),
    [4, 3, 2],
    'newest first, only the newest 3 kept',
  );
  const files = (await readdir(s.snaps)).sort();
  t.equal(files.length, 6, 'three tarballs and three manifests, nothing else');
  t.same(await s.store.get(list[1]!.id), list[1]);
  await t.rejects(s.store.get('nope'), { code: 'NC_SNAPSHOT_NOT_FOUND' });
});

t.test(
  'restore makes the directory byte-identical and deletes the owned file when the snapshot lacks it',
  async (t) => {
    const s = await setup(t);
    const empty = await s.store.take({ generation: 0, weights: {}, reason: 'bootstrap' });
    const before = manifestOf(s.conf);
    await writeFile(s.owned, 'upstream gateway { server 127.0.0.1:1; }\n');
    s.clock.advance(10);
    const withFile = await s.store.take({ generation: 1, weights: { gateway: 0 }, reason: 'rendered' });
    const rendered = manifestOf(s.conf);

    await writeFile(path.join(s.conf, 'nginx.conf'), 'garbage;\n');
    await chmod(path.join(s.conf, 'mime.types'), 0o600);
    await writeFile(s.owned, 'something else\n');
    await writeFile(path.join(s.conf, 'operator-notes.txt'), 'not ours\n');
    await s.store.restore(withFile.id);
    const now = manifestOf(s.conf);
    t.same(
      now.filter((f) => f.path !== 'operator-notes.txt'),
      rendered,
      'content and modes restored',
    );
    t.ok(
      now.some((f) => f.path === 'operator-notes.txt'),
      'a file the sidecar does not own is left alone',
    );
    await rm(path.join(s.conf, 'operator-notes.txt'));

    await s.store.restore(empty.id);
    t.same(manifestOf(s.conf), before, 'the owned upstreams file is deleted: it was absent in the snapshot');
    await s.store.restore(empty.id);
    t.same(manifestOf(s.conf), before, 'restoring twice is a no-op');
  },
);

t.test('restore refuses a tampered tarball and a manifest that does not match its tarball', async (t) => {
  const s = await setup(t);
  await writeFile(s.owned, 'v1\n');
  const snap = await s.store.take({ generation: 1, weights: {}, reason: 'x' });
  const live = manifestOf(s.conf);
  const original = await readFile(snap.file);

  const flipped = Buffer.from(original);
  flipped[flipped.length - 10] = (flipped[flipped.length - 10] ?? 0) ^ 0xff;
  await writeFile(snap.file, flipped);
  await writeFile(s.owned, 'v2\n');
  await t.rejects(s.store.restore(snap.id), { code: 'NC_SNAPSHOT_INVALID', message: /tarball sha256 differs/ });
  t.equal(await readFile(s.owned, 'utf8'), 'v2\n', 'nothing was written');

  // A consistent tarball with other content: the tarball sha is updated, the entries no longer match.
  const other = path.join(s.root, 'other');
  await mkdir(path.join(other, 'conf.d'), { recursive: true });
  await writeFile(path.join(other, 'nginx.conf'), 'events {}\nhttp { include evil.conf; }\n');
  await writeFile(path.join(other, 'mime.types'), 'types { text/plain txt; }\n');
  await chmod(path.join(other, 'mime.types'), 0o640);
  await writeFile(path.join(other, 'conf.d', 'nginx-canary.conf'), 'v1\n');
  await tar.c({ gzip: true, file: snap.file, cwd: other, portable: true }, ['conf.d', 'mime.types', 'nginx.conf']);
  const mfile = path.join(s.snaps, `${snap.id}.json`);
  const m = JSON.parse(await readFile(mfile, 'utf8')) as SnapshotManifest;
  await writeFile(mfile, JSON.stringify({ ...m, tarballSha256: sha(await readFile(snap.file)) }));
  await t.rejects(s.store.restore(snap.id), {
    code: 'NC_SNAPSHOT_INVALID',
    message: /"nginx\.conf" differs from its manifest sha256/,
  });

  // An extra entry not in the manifest.
  await writeFile(path.join(other, 'nginx.conf'), await readFile(path.join(s.conf, 'nginx.conf')));
  await writeFile(path.join(other, 'extra.conf'), 'x\n');
  await tar.c({ gzip: true, file: snap.file, cwd: other, portable: true }, [
    'conf.d',
    'mime.types',
    'nginx.conf',
    'extra.conf',
  ]);
  await writeFile(mfile, JSON.stringify({ ...m, tarballSha256: sha(await readFile(snap.file)) }));
  await t.rejects(s.store.restore(snap.id), {
    code: 'NC_SNAPSHOT_INVALID',
    message: /"extra\.conf" is in the tarball but not in the manifest/,
  });

  // A manifest entry missing from the tarball.
  await writeFile(snap.file, original);
  const missing = { ...m, files: [...m.files, { path: 'gone.conf', sha256: sha(''), size: 0, mode: 0o644 }] };
  await writeFile(mfile, JSON.stringify(missing));
  await t.rejects(s.store.restore(snap.id), { message: /"gone\.conf" is in the manifest but not in the tarball/ });

  // A changed mode.
  const mode = { ...m, files: m.files.map((f) => (f.path === 'mime.types' ? { ...f, mode: 0o666 } : f)) };
  await writeFile(mfile, JSON.stringify(mode));
  await t.rejects(s.store.restore(snap.id), { message: /"mime\.types" differs from its manifest mode/ });

  // Not a gzip at all (sha matches because the manifest was forged too).
  await writeFile(snap.file, 'not a tarball');
  await writeFile(mfile, JSON.stringify({ ...m, tarballSha256: sha('not a tarball') }));
  await t.rejects(s.store.restore(snap.id), { message: /cannot be read/ });

  await writeFile(mfile, '{ not json');
  await t.rejects(s.store.restore(snap.id), { message: /not JSON/ });
  await writeFile(mfile, JSON.stringify({ ...m, format: 2 }));
  await t.rejects(s.store.restore(snap.id), { message: /unknown manifest format/ });
  await writeFile(mfile, JSON.stringify({ ...m, id: 'other' }));
  await t.rejects(s.store.restore(snap.id), { message: /names id "other"/ });
  await writeFile(mfile, JSON.stringify(m));
  await rm(snap.file);
  await t.rejects(s.store.restore(snap.id), { message: /tarball is missing/ });
  await t.rejects(s.store.restore('../../etc/passwd'), { code: 'NC_SNAPSHOT_NOT_FOUND' });
  t.same(
    manifestOf(s.conf),
    live.map((f) => (f.path === 'conf.d/nginx-canary.conf' ? { ...f, sha256: sha('v2\n') } : f)),
    'no refused restore wrote anything',
  );
  t.same(
    await s.store.list(),
    [await s.store.get(snap.id)],
    'a manifest without a tarball is still listed (restore reports it)',
  );
});

t.test('restore refuses entries that escape the config directory', async (t) => {
  const s = await setup(t);
  await writeFile(s.owned, 'v1\n');
  const snap = await s.store.take({ generation: 1, weights: {}, reason: 'x' });
  const mfile = path.join(s.snaps, `${snap.id}.json`);
  const m = JSON.parse(await readFile(mfile, 'utf8')) as SnapshotManifest;
  const work = path.join(s.root, 'work', 'inner');
  await mkdir(work, { recursive: true });
  await writeFile(path.join(s.root, 'work', 'escape.conf'), 'pwned\n');

  // `../escape.conf`, listed in a forged manifest so only the path check can catch it.
  await tar.c({ gzip: true, file: snap.file, cwd: work, portable: true, preservePaths: true }, ['../escape.conf']);
  const escaping = {
    ...m,
    files: [{ path: '../escape.conf', sha256: sha('pwned\n'), size: 6, mode: 0o644 }],
    tarballSha256: sha(await readFile(snap.file)),
  };
  await writeFile(mfile, JSON.stringify(escaping));
  await t.rejects(s.store.restore(snap.id), { code: 'NC_SNAPSHOT_INVALID', message: /leaves the config directory/ });

  await tar.c({ gzip: true, file: snap.file, cwd: work, portable: true, preservePaths: true }, [
    path.join(s.root, 'work', 'escape.conf'),
  ]);
  await writeFile(mfile, JSON.stringify({ ...escaping, tarballSha256: sha(await readFile(snap.file)) }));
  await t.rejects(s.store.restore(snap.id), { code: 'NC_SNAPSHOT_INVALID', message: /absolute path/ });

  // A symlink leading out of the directory.
  await symlink('../../../etc/passwd', path.join(work, 'passwd.conf'));
  await tar.c({ gzip: true, file: snap.file, cwd: work, portable: true }, ['passwd.conf']);
  await writeFile(
    mfile,
    JSON.stringify({
      ...m,
      files: [
        { path: 'passwd.conf', sha256: sha('../../../etc/passwd'), size: 0, mode: 0o777, link: '../../../etc/passwd' },
      ],
      tarballSha256: sha(await readFile(snap.file)),
    }),
  );
  await t.rejects(s.store.restore(snap.id), {
    code: 'NC_SNAPSHOT_INVALID',
    message: /symlink "passwd\.conf" .* leads out of/,
  });
  await t.rejects(stat(path.join(s.conf, 'passwd.conf')), { code: 'ENOENT' }, 'nothing written');
  t.equal(await readFile(path.join(s.root, 'work', 'escape.conf'), 'utf8'), 'pwned\n');
});

t.test('symlinks inside the directory round-trip; the snapshot dir inside the conf dir is skipped', async (t) => {
  const root = await tempDir();
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const conf = path.join(root, 'conf');
  await mkdir(path.join(conf, 'sites-available'), { recursive: true });
  await mkdir(path.join(conf, 'sites-enabled'), { recursive: true });
  await mkdir(path.join(conf, 'empty.d'), { recursive: true });
  await writeFile(path.join(conf, 'nginx.conf'), 'events {}\n');
  await writeFile(path.join(conf, 'sites-available', 'default'), 'server {}\n');
  await symlink('../sites-available/default', path.join(conf, 'sites-enabled', 'default'));
  await symlink(path.join(conf, 'nginx.conf'), path.join(conf, 'absolute-inside.conf'));
  const store = new SnapshotStore(path.join(conf, '.snapshots'), 2, conf, new ManualClock());
  const snap = await store.take({ generation: 3, weights: {}, reason: 'links' });
  const want = manifestOf(conf, [path.join(conf, '.snapshots')]);
  t.same(
    want.filter((f) => f.link !== undefined).map((f) => [f.path, f.link]),
    [
      ['absolute-inside.conf', path.join(conf, 'nginx.conf')],
      ['sites-enabled/default', '../sites-available/default'],
    ],
  );
  await rm(path.join(conf, 'sites-enabled'), { recursive: true });
  await rm(path.join(conf, 'empty.d'), { recursive: true });
  await rm(path.join(conf, 'absolute-inside.conf'));
  await symlink('nginx.conf', path.join(conf, 'absolute-inside.conf'));
  await store.restore(snap.id);
  t.same(manifestOf(conf, [path.join(conf, '.snapshots')]), want);
  t.ok((await stat(path.join(conf, 'empty.d'))).isDirectory(), 'empty directories come back');
  t.same(store.ownedFiles, [], 'a string conf dir owns nothing');
});

t.test('list skips unreadable manifests and an absent directory', async (t) => {
  const s = await setup(t);
  t.same(await s.store.list(), [], 'no snapshot dir yet');
  await s.store.take({ generation: 1, weights: {}, reason: 'x' });
  await writeFile(path.join(s.snaps, 'junk.json'), '{');
  await writeFile(path.join(s.snaps, 'other.json'), JSON.stringify({ format: 1 }));
  t.equal((await s.store.list()).length, 1);
});

t.test('a manifest is read once: later lists read only new names and drop deleted ones', async (t) => {
  const s = await setup(t, 5);
  await writeFile(s.owned, 'generation 1\n');
  const a = await s.store.take({ generation: 1, weights: { gateway: 0 }, reason: 'a' });
  s.clock.advance(1000);
  const b = await s.store.take({ generation: 2, weights: { gateway: 10 }, reason: 'b' });
  // Overwritten in place (never done by the store: manifests are written once, by rename): the store
  // answers from what it read, so it did not read the file again.
  await writeFile(path.join(s.snaps, `${a.id}.json`), '{');
  t.same(
    (await s.store.list()).map((x) => x.id),
    [b.id, a.id],
    'the known manifest is not read again',
  );
  const fresh = new SnapshotStore(
    s.snaps,
    5,
    { conf: path.join(s.conf, 'nginx.conf'), upstreamsFile: s.owned },
    s.clock,
  );
  t.same(
    (await fresh.list()).map((x) => x.id),
    [b.id],
    'a new store reads it and skips it',
  );
  await rm(path.join(s.snaps, `${b.id}.json`));
  t.same(
    (await s.store.list()).map((x) => x.id),
    [a.id],
    'a manifest deleted by someone else is dropped',
  );
  s.clock.advance(1000);
  const c = await fresh.take({ generation: 3, weights: { gateway: 20 }, reason: 'c' });
  t.same(
    (await s.store.list()).map((x) => x.id).sort(),
    [a.id, c.id],
    'a manifest written by another store is read when it appears',
  );
  const listed = await s.store.list();
  listed[0]!.weights.gateway = 99;
  t.same(
    (await s.store.get(c.id)).weights,
    { gateway: 20 },
    'a caller changing a listed snapshot changes nothing stored',
  );
});

t.test('manifestOf with a memo reads only files whose identity changed', async (t) => {
  const s = await setup(t);
  await writeFile(s.owned, 'generation 1\n');
  const memo: ManifestMemo = new Map();
  const plain = manifestOf(s.conf);
  t.same(manifestOf(s.conf, [], memo), plain, 'the first call hashes everything: the same as without a memo');
  t.same(
    [...memo.keys()].sort(),
    plain.map((f) => f.path),
  );
  // Mark what the memo holds: a file hashed again would lose the mark.
  for (const v of memo.values()) v.file.sha256 = 'f'.repeat(64);
  const mime = path.join(s.conf, 'mime.types');
  await writeFile(mime, 'types { text/plain tx2; }\n');
  await utimes(mime, new Date(Date.UTC(2020, 0, 1)), new Date(Date.UTC(2020, 0, 1))); // same size: only the times differ
  await rm(s.owned);
  const second = manifestOf(s.conf, [], memo);
  t.same(
    second.map((f) => [f.path, f.sha256]),
    [
      ['mime.types', sha('types { text/plain tx2; }\n')],
      ['nginx.conf', 'f'.repeat(64)],
    ],
    'the changed file is read again, the unchanged one is not, the deleted one is gone',
  );
  t.same([...memo.keys()].sort(), ['mime.types', 'nginx.conf'], 'the memo drops the deleted file');
  await chmod(path.join(s.conf, 'nginx.conf'), 0o600);
  t.equal(
    manifestOf(s.conf, [], memo).find((f) => f.path === 'nginx.conf')?.mode,
    0o600,
    'a mode change is a changed identity',
  );
});

t.test('constructor checks', async (t) => {
  const clock = new ManualClock();
  t.throws(() => new SnapshotStore('/s', 0, '/c', clock), RangeError);
  t.throws(() => new SnapshotStore('relative', 1, '/c', clock), RangeError);
  t.throws(() => new SnapshotStore('/s', 1, '/c', clock, ['relative']), RangeError);
  t.same(new SnapshotStore('/s', 1, { conf: '/c/nginx.conf', upstreamsFile: '/c/conf.d/x.conf' }, clock).ownedFiles, [
    '/c/conf.d/x.conf',
  ]);
});

t.test('checkEntryPath', async (t) => {
  t.same(checkEntryPath('./conf.d//a.conf'), { ok: true, path: 'conf.d/a.conf' });
  t.same(checkEntryPath('dir/'), { ok: true, path: 'dir' });
  for (const bad of ['/etc/passwd', '\\x', 'C:/x', '../x', 'a/../../x', '', '.', 'a\0b'])
    t.notOk(checkEntryPath(bad).ok, JSON.stringify(bad));
});

t.test('parseManifest rejects malformed manifests', async (t) => {
  const good = {
    format: 1,
    id: 'a',
    seq: 1,
    at: 1,
    generation: 1,
    weights: { g: 1 },
    reason: 'r',
    files: [],
    tarballSha256: 'a'.repeat(64),
  };
  t.ok(parseManifest(good).ok);
  const bad: unknown[] = [
    null,
    [],
    { ...good, id: 'a/b' },
    { ...good, seq: 'x' },
    { ...good, tarballSha256: 'zz' },
    { ...good, weights: { g: 'x' } },
    { ...good, files: {} },
    { ...good, files: [{ path: 'a' }] },
    { ...good, files: [{ path: 'a', sha256: 'x', size: 1, mode: 1, link: 3 }] },
  ];
  for (const b of bad) t.notOk(parseManifest(b).ok, JSON.stringify(b));
});

t.test('writeFileAtomic replaces the file with the given mode and leaves no temp file', async (t) => {
  const root = await tempDir();
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const f = path.join(root, 'a.conf');
  await writeFileAtomic(f, 'one');
  await writeFileAtomic(f, 'two', 0o600);
  t.equal(await readFile(f, 'utf8'), 'two');
  t.equal((await stat(f)).mode & 0o777, 0o600);
  t.same(await readdir(root), ['a.conf']);
  await t.rejects(writeFileAtomic(path.join(root, 'missing-dir', 'x'), 'x'), { code: 'ENOENT' });
  await mkdir(path.join(root, 'd'));
  await t.rejects(writeFileAtomic(path.join(root, 'd'), 'x'), { code: 'EISDIR' }, 'rename over a directory fails');
  t.same((await readdir(root)).sort(), ['a.conf', 'd'], 'the temp file was removed');
});
