/**
 * Creates the access log the gates read when it does not exist yet, before
 * nginx would. nginx's root master creates a missing log 0644 root:root; on
 * Debian nginx's logs are 0640 www-data:adm (nginx-common's postinst, and
 * logrotate's `create 0640 www-data adm`), readable by group adm and by no one
 * else. So the sidecar creates it 0640 (whatever the umask) and, when it runs
 * as root, gives it the owner and group of nginx's other logs in the same
 * directory (the `*.log` files there; Debian: access.log and error.log,
 * www-data:adm); without such a file, or not as root (chown needs
 * CAP_CHOWN), the ownership is left as created.
 *
 * An existing file is never touched (nginx may already write to it), and a
 * missing directory is not created: the follower waits for the file.
 */
import { constants } from 'node:fs';
import { lstat, open, readdir, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

/** Mode of a created access log: owner read-write, group read (Debian's logs). */
export const ACCESS_LOG_MODE = 0o640;

/** What {@link ensureAccessLog} did. */
export type EnsureResult =
  /** The file was there already: left as it is. */
  | { created: false; reason: 'exists' }
  /** The directory does not exist: nothing created (the follower waits for nginx to create both). */
  | { created: false; reason: 'no-directory' }
  /** Created with {@link ACCESS_LOG_MODE}; `owner` the uid/gid it was given from `from`, or null when left as created. */
  | { created: true; mode: number; owner: { uid: number; gid: number; from: string } | null };

/** Options of {@link ensureAccessLog}. */
export interface EnsureOptions {
  /** Whether this process may chown (default: running as root, `process.getuid() === 0`). */
  root?: boolean;
}

/**
 * The owner and group to give a new log in `dir`: those of the first regular
 * `*.log` file there by name (not a symlink, not `except`), or null when there
 * is none.
 */
export async function siblingLogOwner(
  dir: string,
  except: string,
): Promise<{ uid: number; gid: number; from: string } | null> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.log') && n !== except).sort();
  for (const name of names) {
    const file = path.join(dir, name);
    const st = await lstat(file).catch(() => null);
    if (st?.isFile()) return { uid: st.uid, gid: st.gid, from: file };
  }
  return null;
}

/**
 * Creates `file` (O_EXCL: never one nginx made in the meantime) with mode 0640
 * and, as root, the owner of its sibling logs (see the module comment).
 *
 * @throws the I/O error when the file cannot be created for another reason than
 *   that it exists or its directory is missing (e.g. EACCES), or cannot be
 *   chmod-ed or chown-ed; a file created before the failure stays.
 */
export async function ensureAccessLog(file: string, opts: EnsureOptions = {}): Promise<EnsureResult> {
  let fh: FileHandle;
  try {
    fh = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_APPEND, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return { created: false, reason: 'exists' };
    if (code === 'ENOENT' || code === 'ENOTDIR') return { created: false, reason: 'no-directory' };
    throw err;
  }
  try {
    // Through the descriptor: the umask cannot narrow it, and no rename in between can redirect it.
    await fh.chmod(ACCESS_LOG_MODE);
    const root = opts.root ?? process.getuid?.() === 0;
    const owner = root ? await siblingLogOwner(path.dirname(file), path.basename(file)) : null;
    if (owner !== null) await fh.chown(owner.uid, owner.gid);
    return { created: true, mode: ACCESS_LOG_MODE, owner };
  } finally {
    await fh.close();
  }
}
