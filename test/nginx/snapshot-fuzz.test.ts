// Property: a snapshot restore (src/nginx/snapshot.ts SnapshotStore.restore)
// given a hostile tarball either refuses it with a clear CanaryError before
// writing anything, or restores it only inside the config directory: never a
// byte outside (a sentinel directory beside the config directory stays empty),
// never a symlink there that leads out of it.
//
// Tarballs are built entry by entry with the `tar` library's Header and Pax
// encoders (so any name, type and link target can be written, which tar.c
// would refuse to archive): `..`, absolute names, symlinks out (directly,
// absolutely, or through other links of the same tarball: `x → .`,
// `y → x/..`), hard links, devices, FIFOs, names past ustar's 100 bytes (PAX
// and GNU long-name headers), unicode, duplicates, files under files. Most
// cases carry an honest manifest (the tarball's own sha256 and entries), so
// the path and link checks — not the checksum — must catch them; the others
// forge or drop the manifest. Seeded; the case counts are printed.
import t from 'tap';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import * as tar from 'tar';
import { ManualClock } from '../../src/clock.js';
import { CanaryError } from '../../src/errors.js';
import { manifestOf, SnapshotStore } from '../../src/nginx/snapshot.js';

/** fast-check seed: every run explores the same cases. */
const SEED = 0x5eed;
/** Cases of the main property (measured: 15–30 ms each on the dev container, with other tests running). */
const RUNS = 1000;

type Kind = 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'BlockDevice' | 'FIFO';

/** One entry to write into a tarball. `longName`: how a name over 100 bytes is carried. */
interface RawEntry {
  name: string;
  kind: Kind;
  mode: number;
  linkpath?: string;
  data: Buffer;
  longName: 'pax' | 'gnu';
}

/** Where a case lives: `<root>/conf` is restored into, `<root>/outside` must stay empty. */
interface Layout {
  root: string;
  conf: string;
  outside: string;
  snaps: string;
}

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** A 512-byte-padded block list for `data`. */
function padded(data: Buffer): Buffer[] {
  const pad = (512 - (data.length % 512)) % 512;
  return pad === 0 ? [data] : [data, Buffer.alloc(pad)];
}

/** One header block for `h` (throws nothing; `needPax` says whether a PAX header must precede it). */
function headerBlock(h: tar.HeaderData): { block: Buffer; needPax: boolean } {
  const block = Buffer.alloc(512);
  const needPax = new tar.Header({ uid: 0, gid: 0, mtime: new Date(0), ...h }).encode(block, 0);
  return { block, needPax };
}

/** The gzipped tarball of `entries`, written header by header (no filesystem involved). */
function buildTarball(entries: readonly RawEntry[]): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const data = e.kind === 'File' ? e.data : Buffer.alloc(0);
    const h: tar.HeaderData = {
      path: e.name,
      type: e.kind,
      mode: e.mode,
      size: data.length,
      ...(e.linkpath === undefined ? {} : { linkpath: e.linkpath }),
    };
    let { block, needPax } = headerBlock(h);
    if (needPax && e.longName === 'gnu' && Buffer.byteLength(e.name) > 100 && e.linkpath === undefined) {
      // GNU long name: an `L` entry whose body is the name, then the entry under a short name.
      const body = Buffer.from(`${e.name}\0`);
      out.push(
        headerBlock({ path: '././@LongLink', type: 'NextFileHasLongPath', size: body.length }).block,
        ...padded(body),
      );
      ({ block, needPax } = headerBlock({ ...h, path: e.name.slice(-90) }));
    }
    if (needPax) {
      out.push(
        new tar.Pax({
          path: e.name,
          ...(e.linkpath === undefined ? {} : { linkpath: e.linkpath }),
          mtime: new Date(0),
        }).encode(),
      );
    }
    out.push(block, ...padded(data));
  }
  out.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(out));
}

/** The manifest the sidecar would have written for `entries` (files and symlinks, names as stored). */
function honestFiles(entries: readonly RawEntry[]): object[] {
  return entries
    .filter((e) => e.kind === 'File' || (e.kind === 'SymbolicLink' && e.linkpath !== undefined))
    .map((e) =>
      e.kind === 'File'
        ? { path: e.name, sha256: sha(e.data), size: e.data.length, mode: e.mode & 0o7777 }
        : { path: e.name, sha256: sha(e.linkpath ?? ''), size: 0, mode: 0o777, link: e.linkpath },
    );
}

/** Path segments: ordinary names, hostile ones, long ones, unicode. */
function segment(): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom('a', 'b', 'x', 'y', 'conf.d', 'sites', 'nginx.conf', 'z.conf') },
    { weight: 4, arbitrary: fc.constantFrom('..', '.', '', '...', '..\\..', 'outside') },
    {
      weight: 1,
      arbitrary: fc.constantFrom('ü.conf', '日本.conf', 'a b', 'tab\tname', 'new\nline', '.nginx-canary-tmp-x'),
    },
    { weight: 1, arbitrary: fc.integer({ min: 90, max: 300 }).map((n) => 'n'.repeat(n)) },
  );
}

/** An entry name: joined segments, sometimes absolute (pointing into the sentinel), sometimes very deep. */
function entryName(l: Layout): fc.Arbitrary<string> {
  const rel = fc.array(segment(), { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
  return fc.oneof(
    { weight: 10, arbitrary: rel },
    { weight: 2, arbitrary: rel.map((r) => `../outside/${r}`) },
    { weight: 2, arbitrary: rel.map((r) => `${l.outside}/${r}`) },
    { weight: 1, arbitrary: rel.map((r) => `/proc/self/root${l.outside}/${r}`) },
    { weight: 1, arbitrary: rel.map((r) => `./${r}/`) },
    {
      weight: 1,
      arbitrary: fc.integer({ min: 20, max: 80 }).map((n) => `${'d/'.repeat(n)}../${'../'.repeat(n)}outside/deep`),
    },
    { weight: 1, arbitrary: fc.integer({ min: 20, max: 200 }).map((n) => `${'d/'.repeat(n)}f`) },
  );
}

/** A symlink or hard-link target: inside, outside, through other links, absolute. */
function linkTarget(l: Layout): fc.Arbitrary<string> {
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.constantFrom('.', 'a', 'x', 'conf.d', 'nginx.conf', 'conf.d/../nginx.conf', 'x/..', 'y/../..'),
    },
    {
      weight: 3,
      arbitrary: fc.constantFrom('..', '../outside', '../outside/f', '../../', 'a/../../outside', 'x/../outside'),
    },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        l.outside,
        `${l.outside}/f`,
        l.root,
        `${l.conf}/../outside`,
        `/proc/self/root${l.outside}`,
      ),
    },
    { weight: 1, arbitrary: fc.constantFrom(l.conf, `${l.conf}/conf.d`, `${l.conf}/nginx.conf`) },
    { weight: 1, arbitrary: entryName(l) },
  );
}

function rawEntry(l: Layout): fc.Arbitrary<RawEntry> {
  const kind = fc.oneof(
    { weight: 6, arbitrary: fc.constant<Kind>('File') },
    { weight: 2, arbitrary: fc.constant<Kind>('Directory') },
    { weight: 4, arbitrary: fc.constant<Kind>('SymbolicLink') },
    { weight: 1, arbitrary: fc.constantFrom<Kind>('Link', 'CharacterDevice', 'BlockDevice', 'FIFO') },
  );
  return fc
    .record({
      name: entryName(l),
      kind,
      mode: fc.constantFrom(0o644, 0o600, 0o640, 0o755, 0o4755, 0o777),
      target: linkTarget(l),
      data: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
      longName: fc.constantFrom<'pax' | 'gnu'>('pax', 'gnu'),
    })
    .map(({ target, ...e }) => ({
      ...e,
      // A trailing slash makes the tar encoder write a directory header for a file, which no parser reads back.
      name: e.kind === 'Directory' ? e.name : e.name.replace(/\/+$/, '') || e.name,
      ...(e.kind === 'SymbolicLink' || e.kind === 'Link' ? { linkpath: target } : {}),
    }));
}

type ManifestMode = 'honest' | 'forged-sha' | 'dropped-entry' | 'none' | 'garbage';

/** Every entry under `dir` (not following links): relative path → `dir/`, `file:<sha>` or `link:<target>`. */
async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const visit = async (rel: string): Promise<void> => {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      const abs = path.join(dir, r);
      if (e.isSymbolicLink()) out.set(r, `link:${await readlink(abs)}`);
      else if (e.isDirectory()) {
        out.set(r, 'dir/');
        await visit(r);
      } else out.set(r, `file:${sha(await readFile(abs))}`);
    }
  };
  await visit('');
  return out;
}

/** True when `p` (absolute, resolved) is `root` or under it. */
function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (rel.split(path.sep)[0] !== '..' && !path.isAbsolute(rel));
}

/** A fresh case directory at `root`: conf (nginx.conf, conf.d/nginx-canary.conf, sites/), an empty outside/, snaps/. */
async function layout(root: string): Promise<Layout> {
  await rm(root, { recursive: true, force: true });
  const l = {
    root,
    conf: path.join(root, 'conf'),
    outside: path.join(root, 'outside'),
    snaps: path.join(root, 'snaps'),
  };
  await mkdir(path.join(l.conf, 'conf.d'), { recursive: true });
  await mkdir(path.join(l.conf, 'sites'));
  await mkdir(l.outside);
  await mkdir(l.snaps);
  await writeFile(path.join(l.conf, 'nginx.conf'), 'events {}\nhttp { include conf.d/*.conf; }\n');
  await writeFile(path.join(l.conf, 'conf.d', 'nginx-canary.conf'), '# generation 1\n');
  return l;
}

t.test('hostile tarballs: refused with a CanaryError before any write, or restored only inside', async (t) => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'nginx-canary-snapfuzz-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  // The layout's paths are fixed per case number, so the generators can name them; one template builds them.
  const template: Layout = {
    root: path.join(base, 'case'),
    conf: path.join(base, 'case', 'conf'),
    outside: path.join(base, 'case', 'outside'),
    snaps: path.join(base, 'case', 'snaps'),
  };
  const counts = { cases: 0, restored: 0, refused: 0 };
  const reasons = new Map<string, number>();
  let n = 0;

  const property = fc.asyncProperty(
    fc.array(rawEntry(template), { minLength: 1, maxLength: 6 }),
    fc.oneof(
      { weight: 12, arbitrary: fc.constant<ManifestMode>('honest') },
      { weight: 1, arbitrary: fc.constantFrom<ManifestMode>('forged-sha', 'dropped-entry', 'none', 'garbage') },
    ),
    async (entries, mode) => {
      // Every case starts from fresh directories at the template's paths (the generators named them).
      await layout(template.root);
      n++;
      counts.cases++;
      const id = `20260101T000000.000Z-g${n}`;
      const tgz = buildTarball(entries);
      await writeFile(path.join(template.snaps, `${id}.tar.gz`), tgz);
      const files = honestFiles(entries);
      const manifest = {
        format: 1,
        id,
        seq: n,
        at: 0,
        generation: 1,
        weights: { gateway: 5 },
        reason: 'fuzz',
        files: mode === 'dropped-entry' ? files.slice(1) : files,
        tarballSha256: mode === 'forged-sha' ? sha('forged') : sha(tgz),
      };
      if (mode === 'garbage') await writeFile(path.join(template.snaps, `${id}.json`), '{"format": 1, "files": 7');
      else if (mode !== 'none') await writeFile(path.join(template.snaps, `${id}.json`), JSON.stringify(manifest));

      const store = new SnapshotStore(
        template.snaps,
        20,
        {
          conf: path.join(template.conf, 'nginx.conf'),
          upstreamsFile: path.join(template.conf, 'conf.d', 'nginx-canary.conf'),
        },
        new ManualClock(),
      );
      const before = await tree(template.conf);
      const rootBefore = (await readdir(template.root)).sort();
      let error: unknown = null;
      try {
        await store.restore(id);
      } catch (err) {
        error = err;
      }

      // Never a byte outside: the sentinel stays empty, nothing new beside conf/.
      const out = await readdir(template.outside);
      if (out.length !== 0) throw new Error(`written outside: ${out.join(', ')}`);
      const rootAfter = (await readdir(template.root)).sort();
      if (rootAfter.join('\0') !== rootBefore.join('\0')) throw new Error(`beside conf/: ${rootAfter.join(', ')}`);
      const after = await tree(template.conf);
      if (error !== null) {
        if (!(error instanceof CanaryError))
          throw new Error(`not a CanaryError: ${error instanceof Error ? error.stack : JSON.stringify(error)}`, {
            cause: error,
          });
        if (!['NC_SNAPSHOT_INVALID', 'NC_SNAPSHOT_NOT_FOUND'].includes(error.code) || error.fix === '')
          throw new Error(`unexpected error ${error.code}: ${error.message}`);
        counts.refused++;
        const reason = error.message
          .replace(/^snapshot "[^"]*" fails its manifest check: /, '')
          .replace(/"[^"]*"/g, '…')
          .replace(/\/\S+/g, '…')
          .slice(0, 60);
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        // Refused before anything was written.
        if (JSON.stringify([...after]) !== JSON.stringify([...before]))
          throw new Error(`refused (${error.message}) after writing: ${JSON.stringify([...after])}`);
        return true;
      }
      counts.restored++;
      // Restored: every symlink in conf/ resolves inside it (or dangles inside it).
      const realConf = await realpath(template.conf);
      for (const [rel, what] of after) {
        if (!what.startsWith('link:')) continue;
        const abs = path.join(template.conf, rel);
        const real = await realpath(abs).catch(() => null);
        const dest = real ?? path.resolve(path.dirname(abs), what.slice(5));
        if (!inside(realConf, dest) && !inside(template.conf, dest)) throw new Error(`link ${rel} leads to ${dest}`);
      }
      // Only what the snapshot holds (and what was there) is in conf/.
      const stored = new Set(
        entries.map((e) =>
          e.name
            .split('/')
            .filter((s) => s !== '' && s !== '.')
            .join('/'),
        ),
      );
      for (const rel of after.keys()) {
        if (before.has(rel) || stored.has(rel)) continue;
        if ([...stored].some((s) => s.startsWith(`${rel}/`))) continue; // a parent directory of an entry
        throw new Error(`${rel} is in conf/ but not in the snapshot`);
      }
      return true;
    },
  );
  await fc.assert(property, { seed: SEED, numRuns: RUNS, endOnFailure: true });
  t.comment(
    `${counts.cases} hostile tarballs: ${counts.restored} restored inside the directory, ${counts.refused} refused`,
  );
  for (const [reason, k] of [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 20)) t.comment(`  ${k} × ${reason}`);
  t.equal(counts.cases, RUNS, `${RUNS} cases ran`);
  t.ok(
    counts.restored >= RUNS / 20,
    `some tarballs were harmless and restored (${counts.restored}), so the property is not vacuous`,
  );
  t.ok(counts.refused >= RUNS / 2, `most were refused (${counts.refused})`);
});

t.test('targeted: escapes through the snapshot’s own links, files under files, long names', async (t) => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'nginx-canary-snapfuzz-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  let n = 0;
  const run = async (entries: Omit<RawEntry, 'mode' | 'data' | 'longName'>[]): Promise<{ l: Layout; err: unknown }> => {
    const l = await layout(path.join(base, `case-${++n}`));
    const full = entries.map((e) => ({
      mode: e.kind === 'Directory' ? 0o755 : 0o644,
      data: Buffer.from('x'),
      longName: 'pax' as const,
      ...e,
    }));
    const tgz = buildTarball(full);
    const id = `t${n}`;
    await writeFile(path.join(l.snaps, `${id}.tar.gz`), tgz);
    const m = {
      format: 1,
      id,
      seq: 1,
      at: 0,
      generation: 1,
      weights: {},
      reason: 'x',
      files: honestFiles(full),
      tarballSha256: sha(tgz),
    };
    await writeFile(path.join(l.snaps, `${id}.json`), JSON.stringify(m));
    const store = new SnapshotStore(l.snaps, 5, path.join(l.conf), new ManualClock());
    const err = await store.restore(id).then(
      () => null,
      (e: unknown) => e,
    );
    return { l, err };
  };
  const refused = async (what: string, entries: Parameters<typeof run>[0], why: RegExp): Promise<void> => {
    const { l, err } = await run(entries);
    t.match(err, { code: 'NC_SNAPSHOT_INVALID', message: why }, what);
    t.same(await readdir(l.outside), [], `${what}: nothing outside`);
    t.same(
      [...(await tree(l.conf)).keys()].sort(),
      ['conf.d', 'conf.d/nginx-canary.conf', 'nginx.conf', 'sites'],
      `${what}: nothing written`,
    );
  };
  // Each of these passed the lexical check before: `x/..` is `.` on paper, the parent of conf/ on disk.
  await refused(
    'a link leading out through another link (x → ., y → x/../outside)',
    [
      { name: 'x', kind: 'SymbolicLink', linkpath: '.' },
      { name: 'y', kind: 'SymbolicLink', linkpath: 'x/../outside' },
    ],
    /symlink "y" → "x\/\.\.\/outside" leads out of/,
  );
  await refused(
    'a file written through such a link',
    [
      { name: 'x', kind: 'SymbolicLink', linkpath: '.' },
      { name: 'y', kind: 'SymbolicLink', linkpath: 'x/..' },
      { name: 'y/outside/pwn', kind: 'File' },
    ],
    /entry "y\/outside\/pwn" lies under "y", a symlink in the snapshot/,
  );
  await refused(
    'a loop of links',
    [
      { name: 'p', kind: 'SymbolicLink', linkpath: 'q' },
      { name: 'q', kind: 'SymbolicLink', linkpath: 'p' },
    ],
    /symlink "p" → "q" leads out of/,
  );
  await refused(
    'a file under a file',
    [
      { name: 'a', kind: 'File' },
      { name: 'a/b', kind: 'File' },
    ],
    /entry "a\/b" lies under "a", a file in the snapshot/,
  );
  await refused(
    'a file where a directory is on disk',
    [{ name: 'sites', kind: 'File' }],
    /"sites" is a directory on disk/,
  );
  await refused('a hard link', [{ name: 'h', kind: 'Link', linkpath: 'nginx.conf' }], /is a Link/);
  await refused('a FIFO', [{ name: 'f', kind: 'FIFO' }], /is a FIFO/);

  const deep = `${'d/'.repeat(150)}f.conf`;
  const { l, err } = await run([
    { name: deep, kind: 'File' },
    { name: 'ok', kind: 'SymbolicLink', linkpath: 'x/../nginx.conf' },
    { name: 'x', kind: 'Directory' },
  ]);
  t.equal(err, null, 'a 300-byte path (PAX) and a link that stays inside are restored');
  t.equal(await readFile(path.join(l.conf, deep), 'utf8'), 'x');
  t.equal(await readlink(path.join(l.conf, 'ok')), 'x/../nginx.conf');

  // Found by the property: a 240-byte name overflowed NAME_MAX in its temp name; `...` was taken for `..`.
  const n255 = 'n'.repeat(255);
  const edge = await run([
    { name: n255, kind: 'File' },
    { name: `l${'n'.repeat(254)}`, kind: 'SymbolicLink', linkpath: 'nginx.conf' },
    { name: '.../..a/f', kind: 'File' },
  ]);
  t.equal(edge.err, null, 'a 255-byte file name, a 255-byte link name and `.../..a/f` are restored');
  t.equal(await readFile(path.join(edge.l.conf, n255), 'utf8'), 'x');
  t.equal(await readFile(path.join(edge.l.conf, '...', '..a', 'f'), 'utf8'), 'x');
  await refused(
    'a 256-byte name',
    [{ name: `a/${'n'.repeat(256)}`, kind: 'File' }],
    /has a name longer than 255 bytes/,
  );
});

t.test('a link out that the live directory already holds is restorable (Debian modules-enabled)', async (t) => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'nginx-canary-snapfuzz-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const l = await layout(path.join(base, 'case'));
  const shared = path.join(l.outside, 'modules-available');
  await mkdir(shared);
  await writeFile(path.join(shared, 'mod-http-echo.conf'), 'load_module modules/ngx_http_echo_module.so;\n');
  await mkdir(path.join(l.conf, 'modules-enabled'));
  // As Debian installs it: /etc/nginx/modules-enabled/50-mod-http-echo.conf → /usr/share/nginx/modules-available/…
  const link = path.join(l.conf, 'modules-enabled', '50-mod-http-echo.conf');
  await symlink(path.join(shared, 'mod-http-echo.conf'), link);
  const store = new SnapshotStore(
    l.snaps,
    5,
    { conf: path.join(l.conf, 'nginx.conf'), upstreamsFile: path.join(l.conf, 'conf.d', 'nginx-canary.conf') },
    new ManualClock(),
  );
  const snap = await store.take({ generation: 1, weights: {}, reason: 'x' });
  const want = manifestOf(l.conf);
  await writeFile(path.join(l.conf, 'conf.d', 'nginx-canary.conf'), '# generation 2\n');
  await store.restore(snap.id);
  t.same(manifestOf(l.conf), want, 'restored byte for byte, the link out left as it was');
  t.equal((await lstat(link)).isSymbolicLink(), true);

  // The same snapshot after the link changed on disk: restoring it would create a link out — refused.
  await rm(link);
  await symlink('../nginx.conf', link);
  await t.rejects(store.restore(snap.id), {
    code: 'NC_SNAPSHOT_INVALID',
    message: /symlink "modules-enabled\/50-mod-http-echo\.conf" → ".*" leads out of/,
  });
  t.equal(await readlink(link), '../nginx.conf', 'nothing written');
});
