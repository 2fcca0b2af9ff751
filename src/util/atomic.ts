/**
 * Atomic file replacement, shared by every writer of a file that a reader
 * (nginx -t, nginx reload, a restarted sidecar, an operator's editor) may
 * look at mid-write: the upstreams include and snapshot manifests
 * (src/nginx), state.json (src/rollout/store.ts), weights.yaml
 * (src/config/edit.ts) and lock records (src/lock.ts). The recipe: write a
 * temp file in the same directory, fsync it, rename it over the target (or,
 * for a lock, hard-link it to the target), fsync the directory. A crash
 * leaves the old or the new bytes, never a mix.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/** Marks a temp file of this project: names holding it are never part of a config snapshot. */
export const TMP_MARK = '.nginx-canary-tmp-';

/**
 * A temp name beside `file`: `.<name>.nginx-canary-tmp-<pid>-<hex>.tmp`, the
 * name cut to 100 bytes so the temp name stays under NAME_MAX (255 bytes, Linux)
 * even for a 255-byte `file` name. Unique per call (4 random bytes).
 */
export function tempBeside(file: string): string {
  const chars = Array.from(path.basename(file));
  while (Buffer.byteLength(chars.join('')) > 100) chars.pop();
  const name = `.${chars.join('')}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  return path.join(path.dirname(file), name);
}

/** True for a file name (not a path) that {@link tempBeside} or another writer of this project marked as a temp file. */
export function isTempName(name: string): boolean {
  return name.includes(TMP_MARK);
}

/** Options of {@link writeTempBeside}. */
export interface TempFileOptions {
  /** Permission bits of the file, set with chmod after the write so the umask does not apply (default 0o644). */
  mode?: number;
  /** Owner to give the file; a refusal (only root may give a file away) is ignored. Default: the caller. */
  owner?: { uid: number; gid: number };
}

/**
 * Writes `data` to a fresh temp file beside `file` (see {@link tempBeside}),
 * chmods it to `opts.mode`, chowns it to `opts.owner` when given, fsyncs it,
 * and returns its path. The caller renames or links it into place and
 * removes it on failure.
 *
 * @throws the fs error (EACCES, ENOSPC, ENOENT for a missing directory …); the temp file is removed.
 */
export async function writeTempBeside(
  file: string,
  data: Buffer | string,
  opts: TempFileOptions = {},
): Promise<string> {
  const mode = opts.mode ?? 0o644;
  const tmp = tempBeside(file);
  const fh = await open(tmp, 'wx', mode);
  try {
    try {
      await fh.writeFile(data);
      await fh.chmod(mode); // open() applied the umask
      if (opts.owner) await fh.chown(opts.owner.uid, opts.owner.gid).catch(() => undefined);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return tmp;
}

/**
 * fsyncs the directory `dir`, making a rename or link in it durable.
 *
 * @throws the fs error when `dir` cannot be opened or synced.
 */
export async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Writes `data` to `file` atomically: {@link writeTempBeside}, rename over
 * `file`, fsync of the directory. Readers see the old or the new bytes,
 * never a mix. The directory must exist.
 *
 * @param mode permission bits of the result (default 0o644).
 * @throws the fs error; the temp file is removed. A failure to fsync the directory comes after the
 *   rename, so `file` already holds the new bytes then.
 */
export async function writeFileAtomic(file: string, data: Buffer | string, mode = 0o644): Promise<void> {
  const tmp = await writeTempBeside(file, data, { mode });
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDir(path.dirname(file));
}
