/**
 * A file's identity for "has this file changed since I last read it?" — the cheap check that lets a
 * caller skip reading and hashing (or rendering) a file it has seen (the applier's isLive check and the
 * config directory's manifest memo).
 */
import type { BigIntStats } from 'node:fs';

/**
 * The identity of a file from its `stat`/`lstat` with `{ bigint: true }`: inode, size, mtime and ctime
 * in ns, and mode, as one string (`"<ino>:<size>:<mtimeNs>:<ctimeNs>:<mode>"`). Two equal identities of
 * the same path mean "the same bytes", with one caveat: POSIX marks ctime on every write, truncate,
 * chmod and rename, but the kernel's file clock ticks coarsely (a few ms), so a second same-size write
 * within one tick can keep the identity. Callers use it only to skip work that a later, unconditional
 * check repeats (docs/design.md "Applying a change", step 3).
 *
 * @param st stats read with `{ bigint: true }` (ns timestamps; the number form rounds them to ms).
 * @returns the identity string. Pure; never throws.
 */
export function fileIdentity(st: BigIntStats): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.mode}`;
}
