/**
 * Snapshots of the nginx config directory (docs/design.md "Applying a change";
 * "Numbers": "an explicit rollback nginx tarball"): `<id>.tar.gz` plus a
 * sha256 manifest `<id>.json`, newest N kept, restorable byte for byte.
 *
 * A restore never trusts the tarball: it checks the tarball's sha256, then
 * every entry against the manifest, and refuses absolute paths, `..`, entries
 * under a file or symlink of the snapshot, and links leading out of the config
 * directory — resolved through the snapshot's own links, as the kernel would
 * (`x → .` then `y → x/..` leaves it) — then checks every target on disk, all
 * before it writes anything. The one link leading out that a restore accepts
 * is one the live directory already holds with the same target (Debian's
 * `modules-enabled/*.conf → /usr/share/nginx/modules-available/…`): restoring
 * it writes nothing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { chmod, lstat, mkdir, readFile, readdir, readlink, realpath, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import { NGINX_LOCK_NAME } from '../lock.js';
import { isTempName, tempBeside, TMP_MARK, writeFileAtomic } from '../util/atomic.js';
import { fileIdentity } from '../util/file-identity.js';
import type { Clock } from '../clock.js';
import type { NginxConfig } from '../config/types.js';
import { errors } from '../errors.js';
import type { SnapshotInfo } from './types.js';

/** One file (or symlink) of a config directory, as the manifest records it. */
export interface ManifestFile {
  /** Relative POSIX path inside the config directory, e.g. `conf.d/nginx-canary.conf`. */
  path: string;
  /** Hex sha256 of the content (of the link target text for a symlink). */
  sha256: string;
  /** Bytes (0 for a symlink). */
  size: number;
  /** Permission bits, e.g. 0o644 (0o777 for a symlink). */
  mode: number;
  /** Symlink target exactly as stored, for symlinks only. */
  link?: string;
}

/** `<id>.json` beside each tarball. */
export interface SnapshotManifest {
  /** Manifest format version. */
  format: 1;
  /** `<UTC stamp>-g<generation>` (e.g. `20261121T170501.123Z-g42`; `-<seq>` appended on a clash); `[\w.-]+`. */
  id: string;
  /** Order of taking (1, 2, …); newest = highest. Immune to wall-clock jumps, unlike `at`. */
  seq: number;
  /** Epoch ms when taken. */
  at: number;
  /** Generation of the config the snapshot holds (0: no rendered include file in it). */
  generation: number;
  /** Canary weight per service of that config, percent 0–100. */
  weights: Record<string, number>;
  /** Why it was taken (SnapshotMeta.reason). */
  reason: string;
  /** Every file and symlink, sorted by path (directories are implied). */
  files: ManifestFile[];
  /** Hex sha256 of the `.tar.gz` bytes. */
  tarballSha256: string;
}

/** A snapshot read back and verified, held in memory (see {@link SnapshotStore.load}). */
export interface VerifiedSnapshot {
  /** What `list()` shows for it. */
  info: SnapshotInfo;
  /** Its manifest, checked against the tarball. */
  manifest: SnapshotManifest;
  /** Relative directory paths in the tarball. */
  dirs: string[];
  /** Files and symlinks with their bytes. */
  entries: { file: ManifestFile; data: Buffer }[];
}

/** What {@link SnapshotStore.take} records besides the files. */
export interface SnapshotMeta {
  /** Generation of the config being snapshotted (0 when it has no rendered include file). */
  generation: number;
  /** Canary weight per service of that config, percent 0–100. */
  weights: Record<string, number>;
  /** Why (recorded in the manifest and shown by `nginx-canary snapshots`). */
  reason: string;
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Longest file name, bytes (NAME_MAX of Linux and of most filesystems). */
const NAME_MAX = 255;
/** Longest path the kernel takes, bytes including the NUL (Linux PATH_MAX). */
const PATH_MAX = 4096;

/**
 * Normalizes a path found in a tarball or manifest to `a/b/c`, or returns an
 * error sentence: absolute paths, `..` segments, empty paths, NUL bytes and
 * names longer than 255 bytes (NAME_MAX: no filesystem could hold them) are
 * refused.
 */
export function checkEntryPath(p: string): { ok: true; path: string } | { ok: false; reason: string } {
  if (p.includes('\0')) return { ok: false, reason: `path ${JSON.stringify(p)} contains a NUL byte` };
  if (p.startsWith('/') || p.startsWith('\\') || /^[A-Za-z]:/.test(p))
    return { ok: false, reason: `absolute path "${p}"` };
  const parts = p.split(/[/\\]+/).filter((s) => s !== '' && s !== '.');
  if (parts.length === 0) return { ok: false, reason: `empty path "${p}"` };
  if (parts.includes('..')) return { ok: false, reason: `path "${p}" leaves the config directory ("..")` };
  if (parts.some((s) => Buffer.byteLength(s) > NAME_MAX))
    return { ok: false, reason: `path "${p.slice(0, 60)}…" has a name longer than ${NAME_MAX} bytes` };
  return { ok: true, path: parts.join('/') };
}

/** True when `target` (absolute) is `root` or inside it. */
function isInside(root: string, target: string): boolean {
  const rel = path.relative(root, target);
  // `..` as a whole first segment, not any name that starts with it (`...`, `..foo` are inside).
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/** Most links followed while resolving one link target (Linux's SYMLOOP_MAX, 40). */
const MAX_LINK_HOPS = 40;

/**
 * Resolves the symlink at `linkPath` (relative POSIX path) the way the kernel would once the snapshot
 * is written, following the snapshot's own `links` (relative path → target) on the way.
 * @returns the relative path it leads to (`''` = the root), or null when it leaves `root` at any point or
 *   needs more than {@link MAX_LINK_HOPS} links.
 */
function resolveInSnapshot(root: string, links: ReadonlyMap<string, string>, linkPath: string): string | null {
  let hops = 0;
  const follow = (dir: readonly string[], target: string): string[] | null => {
    if (++hops > MAX_LINK_HOPS) return null;
    let cur: string[];
    let rest: string;
    if (path.isAbsolute(target)) {
      const rel = path.relative(root, path.resolve(target));
      if (rel.split(path.sep)[0] === '..' || path.isAbsolute(rel)) return null;
      cur = [];
      rest = rel.split(path.sep).join('/');
    } else {
      cur = [...dir];
      rest = target;
    }
    for (const seg of rest.split('/')) {
      if (seg === '' || seg === '.') continue;
      if (seg === '..') {
        if (cur.length === 0) return null;
        cur.pop();
        continue;
      }
      cur.push(seg);
      const next = links.get(cur.join('/'));
      if (next !== undefined) {
        const r = follow(cur.slice(0, -1), next);
        if (r === null) return null;
        cur = r;
      }
    }
    return cur;
  };
  const target = links.get(linkPath);
  if (target === undefined) return null;
  const r = follow(linkPath.split('/').slice(0, -1), target);
  return r === null ? null : r.join('/');
}

interface WalkEntry {
  rel: string;
  kind: 'dir' | 'file' | 'link';
}

/**
 * Every directory, regular file and symlink under `root`, sorted, skipping temp files and `exclude`
 * (absolute). Synchronous, as {@link manifestOf} is (see there why).
 */
function walk(root: string, exclude: readonly string[]): WalkEntry[] {
  const out: WalkEntry[] = [];
  const visit = (relDir: string): void => {
    const entries = readdirSync(path.join(root, relDir), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      // The sidecar's own lock (src/lock.ts) lives in this directory but belongs to the running process:
      // a restore must never put an old holder's record back.
      if (isTempName(e.name) || e.name.startsWith(NGINX_LOCK_NAME)) continue;
      const rel = relDir === '' ? e.name : `${relDir}/${e.name}`;
      const abs = path.join(root, rel);
      if (exclude.some((x) => isInside(x, abs))) continue;
      if (e.isDirectory()) {
        out.push({ rel, kind: 'dir' });
        visit(rel);
      } else if (e.isFile()) {
        out.push({ rel, kind: 'file' });
      } else if (e.isSymbolicLink()) {
        out.push({ rel, kind: 'link' });
      }
    }
  };
  visit('');
  return out;
}

/**
 * What {@link manifestOf} remembers of a directory from one call to the next: per relative path, the
 * file's identity when it was hashed ({@link fileIdentity}) and its manifest entry.
 * Create an empty Map and pass the same one to every call on the same directory.
 */
export type ManifestMemo = Map<string, { id: string; file: ManifestFile }>;

/**
 * The manifest of a live directory: every regular file and symlink, sorted
 * by path, with sha256, size and permission bits — the same shape a snapshot
 * manifest records, so a test (or an operator) can compare "byte for byte".
 *
 * With `memo`, a file whose identity (lstat, {@link fileIdentity}) is the one it had
 * when it was last hashed is not read again: one lstat instead of an open, reads and a close per file,
 * on every apply (the applier asks twice per apply; a stock Debian `/etc/nginx` holds 15 files and
 * links). Any write to a file changes its ctime (POSIX: write, truncate, chmod and rename mark it), so
 * a changed file is read again; a second same-size write within one tick of the kernel's file clock
 * (a few ms) can go unseen until the next change, which is why the applier uses this only to skip a
 * redundant preflight `nginx -t` and always tests the written files (docs/design.md "Applying a change").
 *
 * Synchronous: a config directory is small (a stock Debian `/etc/nginx`: 15 files and links), and one
 * `lstatSync` costs a few µs where a promise of `fs/promises` costs tens of µs of CPU between the main
 * thread and libuv's pool: on a copy of it, 0.17 ms of CPU per call against 1.1 ms with promises, twice
 * per apply (`npm run bench`, "snapshot"; README "Benchmarks"). The event loop waits about that long.
 *
 * @param dir absolute directory.
 * @param exclude absolute paths left out (e.g. a snapshot dir inside it).
 * @param memo remembered identities of this directory, updated in place (paths gone are dropped).
 * @throws the fs error when a directory, file or link cannot be read.
 */
export function manifestOf(dir: string, exclude: readonly string[] = [], memo?: ManifestMemo): ManifestFile[] {
  const m: ManifestMemo = memo ?? (new Map() as ManifestMemo);
  const files: ManifestFile[] = [];
  const seen: [string, { id: string; file: ManifestFile }][] = [];
  for (const e of walk(dir, exclude)) {
    const abs = path.join(dir, e.rel);
    if (e.kind === 'file') {
      // lstat before the read: a write in between leaves the old identity beside the new bytes, so the
      // next call sees a changed identity and reads the file again (never new identity, old bytes).
      const st = lstatSync(abs, { bigint: true });
      const id = fileIdentity(st);
      const known = m.get(e.rel);
      let file: ManifestFile;
      if (known?.id === id) file = known.file;
      else {
        const data = readFileSync(abs);
        file = { path: e.rel, sha256: sha256(data), size: data.length, mode: Number(st.mode) & 0o7777 };
      }
      seen.push([e.rel, { id, file }]);
      files.push({ ...file });
    } else if (e.kind === 'link') {
      const target = readlinkSync(abs);
      files.push({ path: e.rel, sha256: sha256(target), size: 0, mode: 0o777, link: target });
    }
  }
  m.clear();
  for (const [rel, v] of seen) m.set(rel, v);
  return files;
}

interface TarEntry {
  path: string;
  type: string;
  mode: number;
  linkpath: string | undefined;
  data: Buffer;
}

/**
 * Parses a `.tar.gz` held in memory into its entries, synchronously (strict: a corrupt or truncated
 * archive, or one that is not a tarball at all, throws tar's or zlib's error, e.g. `TAR_BAD_ARCHIVE`,
 * `Z_DATA_ERROR`). The caller passes the very bytes whose sha256 it recorded or checked, so what is parsed
 * is what was hashed (reading the file again could see other bytes). tar's `Parser` is what `tar.t`
 * runs; fed one buffer, it gunzips and parses in this call, without the stream and thread-pool round
 * trips of reading the file through `tar.t` (`npm run bench`, "snapshot").
 */
function readTarball(bytes: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  const parser = new tar.Parser({
    strict: true,
    onReadEntry: (e) => {
      const chunks: Buffer[] = [];
      e.on('data', (c: Buffer) => chunks.push(c));
      e.on('end', () => {
        entries.push({
          path: e.path,
          type: e.type,
          mode: (e.mode ?? 0) & 0o7777,
          linkpath: e.linkpath,
          data: Buffer.concat(chunks),
        });
      });
    },
  });
  parser.end(bytes);
  return entries;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks the shape of a parsed `<id>.json`.
 * @returns the manifest, or an error sentence.
 */
export function parseManifest(v: unknown): { ok: true; manifest: SnapshotManifest } | { ok: false; reason: string } {
  if (!isRecord(v)) return { ok: false, reason: 'manifest is not a JSON object' };
  const { format, id, seq, at, generation, weights, reason, files, tarballSha256 } = v;
  if (format !== 1) return { ok: false, reason: `unknown manifest format ${JSON.stringify(format)}` };
  if (typeof id !== 'string' || !/^[\w.-]+$/.test(id)) return { ok: false, reason: 'manifest id is missing or unsafe' };
  if (!Number.isSafeInteger(seq) || !Number.isFinite(at) || !Number.isSafeInteger(generation)) {
    return { ok: false, reason: 'manifest seq/at/generation are not numbers' };
  }
  if (typeof reason !== 'string' || typeof tarballSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(tarballSha256)) {
    return { ok: false, reason: 'manifest reason/tarballSha256 are missing' };
  }
  if (!isRecord(weights) || !Object.values(weights).every((w) => typeof w === 'number')) {
    return { ok: false, reason: 'manifest weights are not numbers' };
  }
  if (!Array.isArray(files)) return { ok: false, reason: 'manifest files is not a list' };
  for (const f of files as unknown[]) {
    if (
      !isRecord(f) ||
      typeof f.path !== 'string' ||
      typeof f.sha256 !== 'string' ||
      typeof f.size !== 'number' ||
      typeof f.mode !== 'number' ||
      (f.link !== undefined && typeof f.link !== 'string')
    ) {
      return { ok: false, reason: 'a manifest file entry lacks path/sha256/size/mode' };
    }
  }
  return { ok: true, manifest: v as unknown as SnapshotManifest };
}

function infoOf(dir: string, m: SnapshotManifest): SnapshotInfo {
  return {
    id: m.id,
    file: path.join(dir, `${m.id}.tar.gz`),
    at: m.at,
    generation: m.generation,
    weights: { ...m.weights },
    reason: m.reason,
  };
}

/** `20261121T170501.123Z` from epoch ms (sortable, filename-safe). */
function stamp(at: number): string {
  return new Date(at).toISOString().replace(/[-:]/g, '');
}

/**
 * Tarball snapshots of one nginx config directory.
 *
 * Files are written 0600 in a 0700 directory (they can hold secrets of the
 * nginx config). Not safe for two processes at once; the Applier serializes
 * its own calls.
 */
export class SnapshotStore {
  /** Absolute directory of the tarballs and manifests. */
  readonly dir: string;
  /** Newest N kept, integer ≥ 1 (nginx.snapshots.keep, default 20). */
  readonly keep: number;
  /** Absolute config directory snapshotted (dirname of nginx.conf). */
  readonly confDir: string;
  readonly #clock: Clock;
  readonly #owned: string[];
  /**
   * Manifests already read, by file name. A manifest is written once, whole, by rename under a name
   * no other snapshot takes (the id holds the time and generation, and a clash gets the seq appended),
   * and never changed after: so listing the directory and reading only names not seen before gives
   * the same answer as reading every manifest again, at one readdir instead of one readFile per kept
   * snapshot (20 by default) on every take. Names gone from the directory are dropped.
   */
  readonly #read = new Map<string, SnapshotManifest>();

  /** Absolute paths of the files the sidecar owns here (deleted by a restore when the snapshot lacks them). */
  get ownedFiles(): readonly string[] {
    return this.#owned;
  }

  /**
   * @param dir absolute snapshot directory (created 0700 on first take).
   * @param keep newest N kept, integer ≥ 1.
   * @param conf the config directory to snapshot (absolute), or the `nginx` config section: then the directory of
   *   `conf` is snapshotted and `upstreamsFile` is owned.
   * @param clock wall clock for `at` and ids.
   * @param ownedFiles absolute paths of files the sidecar writes (the upstreams file): a restore deletes them when the
   *   snapshot lacks them. Added to the `upstreamsFile` of an `nginx` section.
   * @throws RangeError on keep < 1 or relative paths.
   */
  constructor(
    dir: string,
    keep: number,
    conf: string | Pick<NginxConfig, 'conf' | 'upstreamsFile'>,
    clock: Clock,
    ownedFiles: readonly string[] = [],
  ) {
    const confDir = typeof conf === 'string' ? conf : path.dirname(conf.conf);
    const owned = typeof conf === 'string' ? [...ownedFiles] : [conf.upstreamsFile, ...ownedFiles];
    if (!Number.isSafeInteger(keep) || keep < 1)
      throw new RangeError(`SnapshotStore: keep must be an integer ≥ 1, got ${keep}`);
    if (!path.isAbsolute(dir) || !path.isAbsolute(confDir) || !owned.every((f) => path.isAbsolute(f))) {
      throw new RangeError('SnapshotStore: dir, the config directory and owned files must be absolute paths');
    }
    this.dir = path.resolve(dir);
    this.keep = keep;
    this.confDir = path.resolve(confDir);
    this.#clock = clock;
    this.#owned = owned.map((f) => path.resolve(f));
  }

  /**
   * Snapshots the config directory now: writes `<id>.tar.gz` and `<id>.json`,
   * then deletes snapshots beyond the newest `keep`.
   *
   * @returns the new snapshot.
   * @throws the fs/tar error when it cannot be written; nothing of the new snapshot is left then (temp
   *   tarball, tarball and manifest are removed). Pruning is best effort: a failure to delete an old
   *   snapshot is not thrown (the new one is complete) and the next take tries again.
   */
  async take(meta: SnapshotMeta): Promise<SnapshotInfo> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    const existing = await this.#manifests();
    const seq = existing.reduce((m, x) => Math.max(m, x.seq), 0) + 1;
    const at = this.#clock.now();
    let id = `${stamp(at)}-g${meta.generation}`;
    if (existing.some((x) => x.id === id)) id = `${id}-${seq}`;
    const tarball = path.join(this.dir, `${id}.tar.gz`);
    const tmp = path.join(this.dir, `${id}${TMP_MARK}${randomBytes(4).toString('hex')}.tar.gz`);
    let manifest: SnapshotManifest;
    try {
      const entries = walk(this.confDir, [this.dir]);
      // Synchronous: a config directory is small (a stock Debian /etc/nginx: 15 files and links, 84 KiB), and
      // the stream and thread-pool round trips of the async form cost more CPU than the reads themselves.
      tar.c(
        {
          sync: true,
          gzip: true,
          file: tmp,
          cwd: this.confDir,
          portable: true,
          noDirRecurse: true,
          follow: false,
          // Never store hard links as links: every file carries its own bytes.
          linkCache: new NoCache(),
        },
        entries.map((e) => e.rel),
      );
      await chmod(tmp, 0o600);
      const bytes = await readFile(tmp);
      const files = manifestFilesOf(readTarball(bytes));
      manifest = {
        format: 1,
        id,
        seq,
        at,
        generation: meta.generation,
        weights: { ...meta.weights },
        reason: meta.reason,
        files,
        tarballSha256: sha256(bytes),
      };
      await rename(tmp, tarball);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const manifestFile = path.join(this.dir, `${id}.json`);
    try {
      await writeFileAtomic(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`, 0o600);
    } catch (err) {
      // No half snapshot: a tarball without its manifest (or a manifest whose directory entry is not durable).
      await rm(tarball, { force: true });
      await rm(manifestFile, { force: true });
      throw err;
    }
    this.#read.set(`${id}.json`, manifest);
    // Best effort: the new snapshot is complete, and the next take prunes whatever this one could not.
    await this.#prune([manifest, ...existing]).catch(() => undefined);
    return infoOf(this.dir, manifest);
  }

  /**
   * Every snapshot with a readable manifest, newest (highest seq) first; [] when the directory does not
   * exist. Unreadable manifests are skipped. Rejects with the fs error when the directory cannot be listed.
   */
  async list(): Promise<SnapshotInfo[]> {
    return (await this.#manifests()).map((m) => infoOf(this.dir, m));
  }

  /**
   * One snapshot's info (from its manifest; the tarball is not checked).
   * @throws CanaryError NC_SNAPSHOT_NOT_FOUND; the fs error when the directory cannot be listed.
   */
  async get(id: string): Promise<SnapshotInfo> {
    const m = (await this.#manifests()).find((x) => x.id === id);
    if (!m) throw errors.snapshotNotFound(id);
    return infoOf(this.dir, m);
  }

  /**
   * Reads a snapshot into memory and verifies it: tarball sha256, every entry
   * against the manifest (same set, sha256, size, mode, link target), no
   * absolute path, no `..`, no hard link or device, nothing under a file or
   * symlink of the snapshot, and no link leading out of the config directory
   * once resolved through the snapshot's own links — unless the live
   * directory already holds that very link (see the module comment).
   *
   * @throws CanaryError NC_SNAPSHOT_NOT_FOUND, or NC_SNAPSHOT_INVALID naming the first problem.
   */
  async load(id: string): Promise<VerifiedSnapshot> {
    if (!/^[\w.-]+$/.test(id) || id.includes('..')) throw errors.snapshotNotFound(id);
    let raw: string;
    try {
      raw = await readFile(path.join(this.dir, `${id}.json`), 'utf8');
    } catch {
      throw errors.snapshotNotFound(id);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw errors.snapshotInvalid(id, 'the manifest is not JSON');
    }
    const pm = parseManifest(parsed);
    if (!pm.ok) throw errors.snapshotInvalid(id, pm.reason);
    const manifest = pm.manifest;
    if (manifest.id !== id) throw errors.snapshotInvalid(id, `the manifest names id "${manifest.id}"`);
    const file = path.join(this.dir, `${id}.tar.gz`);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      throw errors.snapshotInvalid(id, 'the tarball is missing');
    }
    if (sha256(bytes) !== manifest.tarballSha256)
      throw errors.snapshotInvalid(id, 'the tarball sha256 differs from the manifest');
    let raws: TarEntry[];
    try {
      raws = readTarball(bytes);
    } catch (err) {
      throw errors.snapshotInvalid(id, `the tarball cannot be read (${(err as Error).message})`);
    }
    const dirs: string[] = [];
    const byPath = new Map<string, { file: ManifestFile; data: Buffer }>();
    for (const e of raws) {
      const p = checkEntryPath(e.path);
      if (!p.ok) throw errors.snapshotInvalid(id, p.reason);
      if (Buffer.byteLength(path.join(this.confDir, p.path)) >= PATH_MAX)
        throw errors.snapshotInvalid(
          id,
          `path "${p.path.slice(0, 60)}…" is longer than ${PATH_MAX - 1} bytes in ${this.confDir}`,
        );
      if (byPath.has(p.path) || dirs.includes(p.path))
        throw errors.snapshotInvalid(id, `entry "${p.path}" appears twice`);
      if (e.type === 'Directory') {
        dirs.push(p.path);
      } else if (e.type === 'File' || e.type === 'OldFile' || e.type === 'ContiguousFile') {
        byPath.set(p.path, {
          file: { path: p.path, sha256: sha256(e.data), size: e.data.length, mode: e.mode },
          data: e.data,
        });
      } else if (e.type === 'SymbolicLink' && e.linkpath !== undefined) {
        byPath.set(p.path, {
          file: { path: p.path, sha256: sha256(e.linkpath), size: 0, mode: 0o777, link: e.linkpath },
          data: Buffer.alloc(0),
        });
      } else {
        throw errors.snapshotInvalid(
          id,
          `entry "${p.path}" is a ${e.type}; only files, directories and symlinks are restored`,
        );
      }
    }
    // Nothing lies under a file or a symlink of the snapshot: take() never archives such a tree, and a
    // file under a symlink would be written wherever the link points.
    const kinds = new Map<string, 'file' | 'symlink'>();
    for (const [p, e] of byPath) kinds.set(p, e.file.link === undefined ? 'file' : 'symlink');
    for (const p of [...dirs, ...byPath.keys()]) {
      const parts = p.split('/');
      for (let i = 1; i < parts.length; i++) {
        const up = parts.slice(0, i).join('/');
        const kind = kinds.get(up);
        if (kind !== undefined)
          throw errors.snapshotInvalid(id, `entry "${p}" lies under "${up}", a ${kind} in the snapshot`);
      }
    }
    const links = new Map<string, string>();
    for (const [p, e] of byPath) if (e.file.link !== undefined) links.set(p, e.file.link);
    for (const [p, target] of links) {
      if (resolveInSnapshot(this.confDir, links, p) !== null) continue;
      // Already on disk with this very target (restoring it writes nothing): accepted, e.g. Debian's modules-enabled.
      const live = path.join(this.confDir, p);
      const same = await lstat(live).then(
        async (st) => st.isSymbolicLink() && (await readlink(live)) === target,
        () => false,
      );
      if (!same) throw errors.snapshotInvalid(id, `symlink "${p}" → "${target}" leads out of ${this.confDir}`);
    }
    const listed = new Set<string>();
    for (const f of manifest.files) {
      const p = checkEntryPath(f.path);
      if (!p.ok) throw errors.snapshotInvalid(id, `manifest: ${p.reason}`);
      listed.add(p.path);
      const got = byPath.get(p.path);
      if (!got) throw errors.snapshotInvalid(id, `"${p.path}" is in the manifest but not in the tarball`);
      if (got.file.sha256 !== f.sha256 || got.file.size !== f.size)
        throw errors.snapshotInvalid(id, `"${p.path}" differs from its manifest sha256`);
      if (got.file.mode !== f.mode || got.file.link !== f.link)
        throw errors.snapshotInvalid(id, `"${p.path}" differs from its manifest mode or link`);
    }
    for (const p of byPath.keys()) {
      if (!listed.has(p)) throw errors.snapshotInvalid(id, `"${p}" is in the tarball but not in the manifest`);
    }
    return { info: infoOf(this.dir, manifest), manifest, dirs, entries: [...byPath.values()] };
  }

  /**
   * Verifies snapshot `id` ({@link load}) and makes the config directory's
   * files byte-identical to it: each differing file is written atomically
   * with its mode, symlinks recreated, and owned files (the upstreams file)
   * the snapshot lacks are deleted. Other files not in the snapshot are left
   * alone (the sidecar writes only its own file).
   *
   * @throws CanaryError NC_SNAPSHOT_NOT_FOUND / NC_SNAPSHOT_INVALID before anything is written; an fs error while writing.
   */
  async restore(id: string): Promise<void> {
    await this.write(await this.load(id));
  }

  /**
   * Writes a snapshot already verified by {@link load} into the config
   * directory (see {@link restore}). First checks every target on disk
   * without writing: its existing parents must be directories that resolve
   * inside the config directory, and a file or link must not replace a
   * directory.
   * @throws CanaryError NC_SNAPSHOT_INVALID, before anything is written, when a target fails those checks; an fs
   *   error while writing.
   */
  async write(snap: VerifiedSnapshot): Promise<void> {
    const id = snap.info.id;
    // Directories a restore creates are 0755 at most (masked by the umask): never writable by others,
    // whatever umask the sidecar runs under (nginx would load a file anyone could drop there).
    await mkdir(this.confDir, { recursive: true, mode: 0o755 });
    const realRoot = await realpath(this.confDir);
    // Before writing anything: every target's existing ancestors must be directories inside the config
    // directory on disk, and no file or link may replace a directory (rename would fail half-way through).
    for (const rel of [...snap.dirs, ...snap.entries.map((e) => e.file.path)]) {
      const isDir = snap.dirs.includes(rel);
      const parts = rel.split('/');
      for (let i = 1; i <= parts.length; i++) {
        const abs = path.join(this.confDir, ...parts.slice(0, i));
        const st = await lstat(abs).catch(() => null);
        if (st === null) break; // created by the write, under a checked parent
        const last = i === parts.length;
        if (last && !isDir) {
          if (st.isDirectory()) throw errors.snapshotInvalid(id, `"${rel}" is a directory on disk, not a file`);
          break;
        }
        const real = await realpath(abs).catch(() => null);
        if (real === null || !isInside(realRoot, real)) {
          throw errors.snapshotInvalid(id, `"${parts.slice(0, i).join('/')}" resolves out of ${this.confDir} on disk`);
        }
        if (!(await lstat(real)).isDirectory()) {
          throw errors.snapshotInvalid(id, `"${parts.slice(0, i).join('/')}" is not a directory on disk`);
        }
      }
    }
    const ensureParent = async (rel: string): Promise<string> => {
      const parent = path.join(this.confDir, path.dirname(rel));
      await mkdir(parent, { recursive: true, mode: 0o755 });
      if (!isInside(realRoot, await realpath(parent))) {
        throw errors.snapshotInvalid(id, `the directory of "${rel}" resolves out of ${this.confDir} on disk`);
      }
      return path.join(this.confDir, rel);
    };
    for (const d of snap.dirs) await ensureParent(`${d}/.`);
    for (const { file, data } of snap.entries) {
      const abs = await ensureParent(file.path);
      const cur = await lstat(abs).catch(() => null);
      if (file.link !== undefined) {
        if (cur?.isSymbolicLink() && (await readlink(abs)) === file.link) continue;
        const tmp = tempBeside(abs);
        await symlink(file.link, tmp);
        await rename(tmp, abs);
        continue;
      }
      if (
        cur?.isFile() &&
        (cur.mode & 0o7777) === file.mode &&
        cur.size === data.length &&
        (await readFile(abs)).equals(data)
      )
        continue;
      await writeFileAtomic(abs, data, file.mode);
    }
    const present = new Set(snap.entries.map((e) => path.join(this.confDir, e.file.path)));
    for (const owned of this.#owned) {
      if (!present.has(owned)) await rm(owned, { force: true });
    }
  }

  /** Readable manifests, newest (highest seq) first. */
  async #manifests(): Promise<SnapshotManifest[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: SnapshotManifest[] = [];
    const present = new Set(names);
    for (const n of this.#read.keys()) if (!present.has(n)) this.#read.delete(n);
    for (const n of names) {
      if (!n.endsWith('.json') || isTempName(n)) continue;
      const known = this.#read.get(n);
      if (known !== undefined) {
        out.push(known);
        continue;
      }
      try {
        const pm = parseManifest(JSON.parse(await readFile(path.join(this.dir, n), 'utf8')));
        if (pm.ok && `${pm.manifest.id}.json` === n) {
          this.#read.set(n, pm.manifest);
          out.push(pm.manifest);
        }
      } catch {
        // unreadable: not listed (load() reports it as invalid when asked by id), and read again next time
      }
    }
    return out.sort((a, b) => b.seq - a.seq);
  }

  async #prune(newestFirst: SnapshotManifest[]): Promise<void> {
    for (const m of newestFirst.slice(this.keep)) {
      await rm(path.join(this.dir, `${m.id}.tar.gz`), { force: true });
      await rm(path.join(this.dir, `${m.id}.json`), { force: true });
    }
  }
}

/** A Map that never remembers: tar then never writes a hard-link entry. */
class NoCache<K, V> extends Map<K, V> {
  override set(): this {
    return this;
  }
}

/** Manifest file list from tarball entries (files and symlinks, sorted by path). */
function manifestFilesOf(entries: TarEntry[]): ManifestFile[] {
  const files: ManifestFile[] = [];
  for (const e of entries) {
    const p = e.path.replace(/\/+$/, '');
    if (e.type === 'File' || e.type === 'OldFile' || e.type === 'ContiguousFile') {
      files.push({ path: p, sha256: sha256(e.data), size: e.data.length, mode: e.mode });
    } else if (e.type === 'SymbolicLink' && e.linkpath !== undefined) {
      files.push({ path: p, sha256: sha256(e.linkpath), size: 0, mode: 0o777, link: e.linkpath });
    }
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
