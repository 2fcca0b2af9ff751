/**
 * Pid lock files (README "One sidecar per nginx": two sidecars on one nginx,
 * concurrent `target` writes). A lock is a small JSON file naming its holder — pid, hostname,
 * start time, argv — created exclusively: the record is written in full to a
 * temp file and hard-linked to the lock's name (`link` fails with EEXIST when
 * the name is taken), so no reader ever sees a half-written lock.
 *
 * A lock whose holder is gone (a SIGKILLed sidecar) is stale and taken over.
 * Judging "gone" and replacing the file are two steps, so racers must not both
 * win: whoever takes over first claims the stale file by creating, with the
 * same exclusive link, a claim file named after the stale file's bytes
 * (`<lock>.takeover-<hash>`); only the claim's owner may replace the lock,
 * and only after re-reading it unchanged. A claim whose own holder died is
 * claimed in turn (a claim of the claim), so a crash mid-takeover never
 * wedges the lock. A lock held from another host (a shared filesystem) is
 * never taken over: its pid means nothing here.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, readFile, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Config } from './config/types.js';
import { errors } from './errors.js';
import { writeTempBeside } from './util/atomic.js';
import type { Logger } from './log.js';

/** What a lock file holds (JSON). */
export interface LockHolder {
  /** Process id of the holder on `hostname`. */
  pid: number;
  /** `os.hostname()` of the holder. */
  hostname: string;
  /** When the holder took the lock, ISO 8601 (UTC). */
  startedAt: string;
  /** The holder's `process.argv` (for the operator: which command holds it). */
  argv: string[];
  /** Random hex, unique per acquisition: tells two holders with the same pid apart. */
  nonce: string;
  /** Linux `/proc/sys/kernel/random/boot_id` of the holder's boot, or null elsewhere: a lock from an earlier boot is stale. */
  bootId: string | null;
  /** Linux start time of the holder process (`/proc/<pid>/stat` field 22, clock ticks since boot), or null: a reused pid is not the holder. */
  procStart: string | null;
}

/** A held lock. */
export interface Lock {
  /** Absolute path of the lock file. */
  readonly file: string;
  /** The record written into it. */
  readonly holder: LockHolder;
  /** Removes the file if it still holds this lock's record (never someone else's); idempotent. */
  release(): Promise<void>;
}

/** Options of {@link acquireLock}. */
export interface LockOptions {
  /**
   * How long to wait for a live holder to let go, ms (default 0: fail at once
   * with NC_LOCKED). Past it: NC_LOCK_TIMEOUT. A chosen bound, not a runbook number.
   */
  waitMs?: number;
  /** Pause between two attempts while waiting, ms (default 25; a chosen value). */
  intervalMs?: number;
  /** Told (warn) when a stale or unreadable lock was replaced. */
  log?: Pick<Logger, 'warn'>;
}

/** Why a lock file was judged stale. */
type Verdict = 'alive' | 'remote' | 'dead' | 'rebooted' | 'pid reused' | 'unreadable';

/** Nonces of the locks this process holds (a file naming our pid but another nonce is an earlier process's). */
const held = new Set<string>();

/** Immediate retries at most per acquisition (after a release or a lost takeover race); waits are bounded by time. */
const MAX_RETRIES = 100;

/** Claims of claims followed at most (each level needs one more crash mid-takeover). */
const MAX_CLAIM_DEPTH = 8;

function readOr(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

const BOOT_ID = readOr('/proc/sys/kernel/random/boot_id');

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or null off Linux / when gone. */
function procStart(pid: number): string | null {
  const stat = readOr(`/proc/${pid}/stat`);
  if (stat === null) return null;
  // "pid (comm) state ppid ..." — comm may hold spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] ?? null; // fields[0] is field 3 (state), so field 22 is fields[19]
}

function record(): LockHolder {
  return {
    pid: process.pid,
    hostname: hostname(),
    startedAt: new Date().toISOString(),
    argv: [...process.argv],
    nonce: randomBytes(8).toString('hex'),
    bootId: BOOT_ID,
    procStart: procStart(process.pid),
  };
}

const LockHolderSchema = Type.Object({
  pid: Type.Integer({ minimum: 1 }),
  hostname: Type.String(),
  startedAt: Type.String(),
  argv: Type.Array(Type.String()),
  nonce: Type.String(),
  bootId: Type.Union([Type.String(), Type.Null()]),
  procStart: Type.Union([Type.String(), Type.Null()]),
});

/** Compile-time proof that the schema and LockHolder are the same shape. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _schemaMatchesHolder: Same<Static<typeof LockHolderSchema>, LockHolder> = true;

/** Parses a lock file's bytes; null when they are not a LockHolder (garbage, truncated, empty). Pure. */
export function parseLockHolder(bytes: Buffer | string): LockHolder | null {
  try {
    const v: unknown = JSON.parse(bytes.toString());
    return Value.Check(LockHolderSchema, v) ? v : null;
  } catch {
    return null;
  }
}

/** Whether `h` still holds its lock, as far as this host can tell. */
function judge(h: LockHolder | null): Verdict {
  if (h === null) return 'unreadable';
  if (h.hostname !== hostname()) return 'remote';
  if (h.bootId !== null && BOOT_ID !== null && h.bootId !== BOOT_ID) return 'rebooted';
  if (h.pid === process.pid) return held.has(h.nonce) ? 'alive' : 'pid reused';
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    // ESRCH: no such process. EPERM: it exists but belongs to another user — alive.
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return 'dead';
  }
  if (h.procStart !== null) {
    const now = procStart(h.pid);
    if (now !== null && now !== h.procStart) return 'pid reused';
  }
  return 'alive';
}

async function readBytes(file: string): Promise<Buffer | null> {
  try {
    return await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Writes `h` to a fresh temp file beside `file` (0600, fsynced); returns its path. */
function writeTemp(file: string, h: LockHolder): Promise<string> {
  return writeTempBeside(file, `${JSON.stringify(h)}\n`, { mode: 0o600 });
}

/** Creates `file` holding `h`, complete, if no such file exists: true when created, false on EEXIST. */
async function createExclusive(file: string, h: LockHolder): Promise<boolean> {
  const tmp = await writeTemp(file, h);
  try {
    await link(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Claims the file `subject` whose stale content is `bytes`: creates the claim
 * file named after both, or — when a dead holder's claim is already there —
 * claims that claim. Resolves to the claim files to delete once done (ours
 * and the dead ones we superseded), or null when a live process is taking
 * over (or the chain is too deep).
 */
async function claim(
  lockFile: string,
  subject: string,
  bytes: Buffer,
  h: LockHolder,
  depth: number,
): Promise<string[] | null> {
  if (depth > MAX_CLAIM_DEPTH) return null;
  const key = createHash('sha256').update(subject).update('\0').update(bytes).digest('hex').slice(0, 16);
  const claimFile = `${lockFile}.takeover-${key}`;
  if (await createExclusive(claimFile, h)) return [claimFile];
  const claimBytes = await readBytes(claimFile);
  if (claimBytes === null) return null; // finished meanwhile: start over
  const verdict = judge(parseLockHolder(claimBytes));
  if (verdict === 'alive' || verdict === 'remote') return null;
  const chain = await claim(lockFile, claimFile, claimBytes, h, depth + 1);
  return chain === null ? null : [...chain, claimFile];
}

/**
 * Takes the lock file `file` (absolute or relative to the cwd), creating its
 * directory 0700 when missing; the file is 0600 and holds a {@link LockHolder}.
 * A lock whose holder is dead on this host (ESRCH for its pid, a pid reused
 * by another process, an earlier boot), or whose content is unreadable, is
 * replaced — by exactly one of several racing processes — and `opts.log` is
 * warned.
 *
 * @throws CanaryError NC_LOCKED (exit 1) naming the file and the holder's pid when a live process
 *   on this host holds it, or any process on another host (never taken over: its pid cannot be
 *   checked from here), and `opts.waitMs` is 0; NC_LOCK_TIMEOUT when it is still held after
 *   `opts.waitMs`; the fs error when the directory or file cannot be created or read.
 */
export async function acquireLock(file: string, opts: LockOptions = {}): Promise<Lock> {
  const abs = path.resolve(file);
  const waitMs = opts.waitMs ?? 0;
  const intervalMs = opts.intervalMs ?? 25;
  // A takeover in progress by a live process settles within ms; wait at least 1 s for it.
  const deadline = performance.now() + Math.max(waitMs, 1000);
  const waitDeadline = performance.now() + waitMs;
  await mkdir(path.dirname(abs), { recursive: true, mode: 0o700 });
  const me = record();
  held.add(me.nonce); // before the file exists: from then on it must judge as ours
  let last: LockHolder | null = null;
  try {
    for (let retries = 0; retries < MAX_RETRIES;) {
      // Read first: a refused attempt writes nothing at all (not even a temp file beside the lock).
      const bytes = await readBytes(abs);
      if (bytes === null) {
        if (await createExclusive(abs, me)) return handle(abs, me);
        retries++; // created by another process meanwhile: judge it
        continue;
      }
      const holder = parseLockHolder(bytes);
      const verdict = judge(holder);
      if (holder !== null && (verdict === 'alive' || verdict === 'remote')) {
        last = holder;
        if (performance.now() >= waitDeadline) {
          if (waitMs > 0) throw errors.lockTimeout(abs, holder, waitMs);
          throw errors.locked(abs, holder, verdict === 'remote');
        }
        await delay(intervalMs);
        continue;
      }
      const chain = await claim(abs, abs, bytes, me, 0);
      if (chain !== null) {
        let won = false;
        try {
          const now = await readBytes(abs);
          if (now === null) won = await createExclusive(abs, me);
          else if (now.equals(bytes)) {
            const tmp = await writeTemp(abs, me);
            try {
              await rename(tmp, abs);
            } catch (err) {
              await unlink(tmp).catch(() => undefined);
              throw err;
            }
            won = true;
          }
        } finally {
          for (const c of chain) await unlink(c).catch(() => undefined);
        }
        if (won) {
          opts.log?.warn(
            { file: abs, reason: verdict, previous: holder ?? bytes.toString('utf8').slice(0, 200) },
            'replaced a stale lock',
          );
          return handle(abs, me);
        }
        retries++; // someone else replaced it first: judge the new holder
        continue;
      }
      // Another live process is taking the stale lock over: it will hold it in a moment.
      if (performance.now() >= deadline) throw errors.locked(abs, null, false);
      await delay(intervalMs);
    }
    throw errors.locked(abs, last, false);
  } catch (err) {
    held.delete(me.nonce);
    throw err;
  }
}

function handle(file: string, me: LockHolder): Lock {
  let released = false;
  return {
    file,
    holder: me,
    async release() {
      if (released) return;
      released = true;
      try {
        const h = parseLockHolder((await readBytes(file)) ?? '');
        if (h?.nonce === me.nonce && h.pid === me.pid) await unlink(file).catch(() => undefined);
      } finally {
        held.delete(me.nonce);
      }
    },
  };
}

/**
 * Reads the holder of lock file `file`: the record, or null when there is
 * no such file or it is unreadable. For status output and tests.
 * @throws the fs error other than ENOENT.
 */
export async function readLock(file: string): Promise<LockHolder | null> {
  const bytes = await readBytes(path.resolve(file));
  return bytes === null ? null : parseLockHolder(bytes);
}

/** Name of the lock file beside nginx.upstreams_file: one sidecar per nginx. */
export const NGINX_LOCK_NAME = '.nginx-canary.lock';

/**
 * The lock files a sidecar on `config` holds while it runs, in the order
 * taken: `<sidecar.state_file>.lock` (one writer of state.json and the
 * snapshots), then `<dir of nginx.upstreams_file>/.nginx-canary.lock` (one
 * writer of the include file, hence one sidecar per nginx even with different
 * state files). Pure.
 */
export function sidecarLockFiles(config: Pick<Config, 'sidecar' | 'nginx'>): string[] {
  return [`${config.sidecar.stateFile}.lock`, path.join(path.dirname(config.nginx.upstreamsFile), NGINX_LOCK_NAME)];
}

/**
 * Takes every lock of `files` in order with `opts` ({@link acquireLock});
 * when one cannot be taken, releases those already taken and rethrows.
 * @throws what acquireLock throws.
 */
export async function acquireLocks(files: readonly string[], opts: LockOptions = {}): Promise<Lock[]> {
  const locks: Lock[] = [];
  try {
    for (const f of files) locks.push(await acquireLock(f, opts));
    return locks;
  } catch (err) {
    await releaseLocks(locks);
    throw err;
  }
}

/** Releases `locks` in reverse order; every release runs even if one throws (the first error is rethrown). */
export async function releaseLocks(locks: readonly Lock[]): Promise<void> {
  let first: Error | undefined;
  for (const l of [...locks].reverse()) {
    try {
      await l.release();
    } catch (err) {
      first ??= err instanceof Error ? err : new Error(`cannot release ${l.file}`, { cause: err });
    }
  }
  if (first !== undefined) throw first;
}
