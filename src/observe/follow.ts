/**
 * Follows the nginx access log across rotations without losing lines (docs/design.md
 * "Data flow": "nginx access log ─follow─► parse attempts"). The npm tail
 * libraries were measured losing lines under rename rotation
 * (@logdna/tail-file ≈150 lines per rename at 2 k lines/s; `tail` ≈3,500), so
 * this one is hand-written:
 *
 * - reads with positional reads from a kept-open file descriptor and its own
 *   byte offset; a partial last line is buffered, never emitted half; a line
 *   longer than `maxLineBytes` is dropped and counted (memory stays bounded);
 * - rename rotation (logrotate `create`, then nginx reopens on USR1): the path's
 *   inode (stat) differs from the open fd's (fstat), or the path is gone. The
 *   old fd keeps being read until it has been idle for `drainMs` (nginx writes
 *   to it until its workers reopen), while the new file is read from offset 0;
 * - truncation (logrotate `copytruncate`): the file is shorter than the
 *   offset → restart at 0. Lines written after the truncation but before it is
 *   noticed are only lost if they already extend past the old offset (an
 *   inherent copytruncate race; prefer rename rotation);
 * - a missing file is waited for and read from its start when it appears;
 * - self-healing (with a `reopen` hook, e.g. `nginx -s reopen`): when nginx
 *   writes to a file that is no longer at the path — the path has been
 *   missing for `reopenAfterMs`, or a rotated-away file still gains lines
 *   `reopenAfterMs` after the rotation was seen (a deleted log, or a rotation
 *   without the USR1 that tells nginx) — the hook is called, at most once per
 *   `reopenIntervalMs`; nginx then creates the file at the path again. Until
 *   then the old file is read for as long as nginx writes to it, so no line
 *   is lost either way;
 * - `fs.watch` on the directory only wakes the loop early, and only while
 *   the log is quiet; a poll every `quietPollMs` (default `pollMs`) is always
 *   behind it, every `pollMs` while the watch cannot be armed or a rotated
 *   file is still being drained. While lines
 *   flow (a read returned data) the watch is closed and the loop simply
 *   polls: inotify reports every write, and nginx writes each line
 *   unbuffered, so under load the wake-ups alone cost more than the lines
 *   (measured in `npm run bench:walk`: ~6,000 context switches/s at
 *   ~19,000 requests/s, a third of the sidecar's CPU in the kernel);
 * - a busy log is read less often: a poll that read at least `busyBytes` is
 *   followed by a sleep of `busyPollMs` instead of `pollMs` (each poll is a
 *   few wake-ups whose cost does not shrink with the lines it reads; see
 *   main.ts ACCESS_LOG_BUSY_POLL_MS for the sidecar's figures).
 *
 * Lines of one file are delivered in file order; lines of an old (draining)
 * file and of its successor may interleave between batches.
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { systemClock, type Clock } from '../clock.js';

/** Options of {@link LogFollower}. */
export interface LogFollowerOptions {
  /** Absolute path of the access log. */
  file: string;
  /**
   * Receives complete lines (without `\n`), in file order, in batches of one
   * read. Called synchronously from the follower; an exception is counted in
   * `stats.errors` and passed to `onError`, and the lines are not redelivered.
   * Required unless `onBytes` is given (then it is not called).
   */
  onLines?: (lines: string[]) => void;
  /**
   * Receives the same lines as bytes, without a string per line (the sidecar's
   * hot path: `Observer.addBytes`): `buf[start, end)` holds one or more
   * complete lines separated by `\n` (its last line's newline left out; split
   * on `\n` and decoded as UTF-8 they are exactly the lines `onLines` would
   * get), in file order. `buf` is the follower's read buffer: valid only
   * during the call. Errors as for `onLines`.
   */
  onBytes?: (buf: Buffer, start: number, end: number) => void;
  /** Where to start in a file present at start(): its end (default) or its start. A file appearing later is read from its start. */
  from?: 'end' | 'start';
  /** Poll period, ms > 0 (default 250; a chosen default, not a runbook number). */
  pollMs?: number;
  /**
   * Poll period after a poll that read at least `busyBytes`, ms > 0 (default: `pollMs`, the same period
   * busy or not). {@link LogFollower.hurry} still cuts it to HURRY_POLL_MS.
   */
  busyPollMs?: number;
  /**
   * Poll period while the log is quiet and fs.watch is armed, ms ≥ pollMs (default: `pollMs`). The watch
   * wakes the loop min(WAKE_DELAY_MS, pollMs) after a write, so this poll is only the fallback for a
   * write inotify does not report (a file system without it, such as NFS written from another host) and
   * an idle follower makes ~1000/quietPollMs reads a second instead of ~1000/pollMs. Without an armed
   * watch (its directory missing or not watchable), or while a rotated file is drained, the loop polls
   * every pollMs.
   */
  quietPollMs?: number;
  /**
   * Bytes one poll must read (all files together) for the next sleep to be `busyPollMs`, > 0 (default
   * Infinity: never busy). As a rate this enters at busyBytes / pollMs and leaves below
   * busyBytes / busyPollMs, so a rate between the two keeps the period it has (no flapping).
   */
  busyBytes?: number;
  /** Keep reading a rotated-away file until it has been idle this long, ms ≥ 0 (default 3000; chosen). */
  drainMs?: number;
  /** Longest line kept, bytes > 0 (default 64 KiB; chosen); longer lines are dropped and counted in `stats.overlong`. */
  maxLineBytes?: number;
  /** Clock whose monotonic reading times the drain (default: the system clock). */
  clock?: Clock;
  /** Receives I/O errors other than "file missing" (counted in `stats.errors` either way). */
  onError?: (err: unknown) => void;
  /**
   * Makes the writer reopen its log (the sidecar passes `nginx -s reopen`), called with why: `missing` (the
   * path has been missing for `reopenAfterMs`) or `rotated` (a rotated-away or deleted file still gained lines
   * `reopenAfterMs` after the rotation was seen). A rejection counts in `stats.errors` and goes to `onError`.
   * Without it the follower never asks (it still reads the old file for as long as it is written).
   */
  reopen?: (why: 'missing' | 'rotated') => Promise<void>;
  /**
   * How long the path may be missing, or a rotated file keep being written, before `reopen` is called, ms ≥ 0
   * (default 5000; chosen: logrotate sends USR1 right after its rename, so a rotated file written to 5 s later
   * means nobody told nginx).
   */
  reopenAfterMs?: number;
  /** Least time between two `reopen` calls, ms ≥ 0 (default 60 000; chosen: a reopen that did not help is not repeated every tick). */
  reopenIntervalMs?: number;
}

/** Counters of a {@link LogFollower} since it was built. */
export interface FollowerStats {
  /** Lines delivered to onLines (or onBytes). */
  lines: number;
  /** Bytes read, all files. */
  bytes: number;
  /** Rename (or delete) rotations seen. */
  rotations: number;
  /** Truncations seen (size below the read offset). */
  truncations: number;
  /** Lines dropped for exceeding maxLineBytes. */
  overlong: number;
  /** Unterminated last lines of rotated files discarded when their drain ended. */
  partialDropped: number;
  /** I/O errors (other than a missing file) and onLines / onBytes exceptions. */
  errors: number;
  /** Rotated files still being drained now. */
  draining: number;
}

/**
 * Read size per call, bytes: a busy log's 250 ms of lines in one read (~3.3 MB/s of lines at
 * ~13,000 requests/s in `npm run bench:walk`). Each read is a thread-pool round trip and an event-loop
 * wake-up: at 64 KiB a busy log took ~13 reads per poll, and the follower alone cost ~1.6 µs CPU per
 * line against ~0.8 µs with 1 MiB (issue 13, measured on the shared 2-CPU bench box). Allocated once.
 */
const CHUNK_BYTES = 1024 * 1024;
/**
 * Delay after an fs.watch event before reading, ms: coalesces the burst of writes that ends a quiet
 * spell into one read. (Before the watch was closed while lines flow, this delay was the only brake
 * on per-write wake-ups: `npm run bench:walk` gave sidecar CPU / nginx CPU 41.5 % at 5 ms and
 * 32–36 % at 100 ms; with the watch closed under load it is 15–16 %.) Harmless: reads go on to EOF,
 * and the gates act once per runner tick (half of min_reload_interval, at most 1 s). A follower with a
 * shorter pollMs wakes after pollMs instead: a line that ends a quiet spell is read as soon as the poll
 * it replaces would have read it (see quietPollMs).
 */
const WAKE_DELAY_MS = 100;
/**
 * Poll period while {@link LogFollower.hurry} holds, ms: how late the consumer sees a line that must be
 * judged at once (the sidecar: a canary failure; issue 13 — a canary answering only 5xx drains after at
 * most 5 of its attempts, so at 60 attempts/s a read may lag by less than one attempt, ~16 ms). 10 ms: an
 * average lag of 5 ms at 100 reads/s, only while such lines flow (chosen; a read costs ~200 µs of CPU
 * while lines flow: `npm run bench`, "follower reads").
 */
export const HURRY_POLL_MS = 10;
/**
 * How long one {@link LogFollower.hurry} keeps the poll at {@link HURRY_POLL_MS}, ms: 500, so a failing
 * canary at ≥ 2 attempts/s keeps it from one failure to the next (chosen; a failure every 500 ms is
 * already slower than the sidecar's 20 ms poll matters for).
 */
export const HURRY_HOLD_MS = 500;
const NEWLINE = 10;
/**
 * How often the size (truncation) and the path (rotation) are checked, ms, counted in the poll periods
 * slept (pollMs, busyPollMs or HURRY_POLL_MS): the first poll after they add up to 250 checks (every
 * poll when pollMs ≥ 250). 250 ms was the poll and so the check period before the sidecar polled every
 * 50 ms, now 20 (main.ts ACCESS_LOG_POLL_MS); checking at every 50 ms poll tripled the async calls of a
 * poll (measured: ~10 ms CPU/s more at ~13,000 lines/s; issue 13).
 * A rotation or truncation is seen up to this much later; no line is lost meanwhile (the old file is
 * read on, as between two polls).
 */
const CHECK_MS = 250;

/** One open file being read. */
interface Reader {
  fh: FileHandle;
  dev: number;
  ino: number;
  /** Next byte to read. */
  offset: number;
  /** Bytes of an unterminated line (a copy), or null. */
  partial: Buffer | null;
  /** Discarding bytes up to the next newline (an over-long line, or started mid-line). */
  skipping: boolean;
  /** Monotonic ms of the last read that returned data (drain timing). */
  lastDataAt: number;
  /** Monotonic ms when its rotation (rename or delete) was seen; null while it is the current file. */
  rotatedAt: number | null;
}

/**
 * The sleep after a poll, ms (pure): `busyPollMs` after a poll that read at least `busyBytes`; else
 * `quietPollMs` when the fs.watch was armed before the poll's reads began and still is, and no rotated
 * file is being drained (a write wakes the loop anyway); else `pollMs`. The first empty poll after lines
 * flowed arms the watch after its read, so a line written between that read and the arming wakes
 * nothing: it is followed by `pollMs`, and only the next empty poll, read under the watch, by
 * `quietPollMs`. {@link LogFollower.hurry} shortens the sleep further, in the sleep itself.
 *
 * @param poll bytes the poll read (all files), whether the watch was armed before its reads and still
 *   is, rotated files draining.
 * @param periods the follower's validated options (ms; bytes for busyBytes).
 */
export function pollPeriod(
  poll: { read: number; watched: boolean; draining: number },
  periods: { pollMs: number; quietPollMs: number; busyPollMs: number; busyBytes: number },
): number {
  if (poll.read >= periods.busyBytes) return periods.busyPollMs;
  return poll.watched && poll.draining === 0 ? periods.quietPollMs : periods.pollMs;
}

/** Follows one log file; see the module comment. */
export class LogFollower {
  readonly #file: string;
  readonly #onLines: ((lines: string[]) => void) | undefined;
  readonly #onBytes: ((buf: Buffer, start: number, end: number) => void) | undefined;
  readonly #from: 'end' | 'start';
  readonly #pollMs: number;
  /** The periods {@link pollPeriod} chooses from, made once (the options, validated). */
  readonly #periods: Parameters<typeof pollPeriod>[1];
  readonly #drainMs: number;
  readonly #maxLine: number;
  readonly #clock: Clock;
  readonly #onError: ((err: unknown) => void) | undefined;
  readonly #reopen: ((why: 'missing' | 'rotated') => Promise<void>) | undefined;
  readonly #reopenAfterMs: number;
  readonly #reopenIntervalMs: number;
  readonly #buf = Buffer.allocUnsafe(CHUNK_BYTES);
  readonly #stats: Omit<FollowerStats, 'draining'> = {
    lines: 0,
    bytes: 0,
    rotations: 0,
    truncations: 0,
    overlong: 0,
    partialDropped: 0,
    errors: 0,
  };
  #reopens = 0;
  /** Monotonic ms since when the path has been missing; null while it exists. */
  #missingSince: number | null = null;
  #lastReopenAt: number | null = null;
  #current: Reader | null = null;
  #draining: Reader[] = [];
  #watcher: FSWatcher | null = null;
  #started = false;
  #stopped = false;
  #loop: Promise<void> | null = null;
  #pendingWake = false;
  /**
   * Poll periods slept since the last check of the size (truncation) and of the path (rotation), ms: a
   * poll checks once this reaches CHECK_MS (so the first one does). Counted from the chosen periods, not
   * the clock, so it holds with a manual clock, at any mix of pollMs, busyPollMs and HURRY_POLL_MS.
   */
  #sinceCheckMs = CHECK_MS;
  /** The period the loop chose for its last sleep, ms (before it first sleeps: pollMs). */
  #sleptMs: number;
  /** Whether a read of the current tick returned data (then the loop polls without the watch). */
  #readData = false;
  #wake: (() => void) | null = null;
  /** Cuts the current sleep to HURRY_POLL_MS (set while sleeping). */
  #hurryWake: (() => void) | null = null;
  /** Monotonic ms until which the loop polls every HURRY_POLL_MS ({@link hurry}); -Infinity: not hurried. */
  #hurryUntil = -Infinity;

  /**
   * Validates the options; throws RangeError for a non-positive pollMs, busyPollMs, busyBytes or
   * maxLineBytes, or a negative drainMs, reopenAfterMs or reopenIntervalMs, and TypeError when neither
   * onLines nor onBytes is given.
   */
  constructor(opts: LogFollowerOptions) {
    this.#file = opts.file;
    this.#onLines = opts.onLines;
    this.#onBytes = opts.onBytes;
    if (this.#onLines === undefined && this.#onBytes === undefined)
      throw new TypeError('LogFollower: give onLines or onBytes');
    this.#from = opts.from ?? 'end';
    this.#pollMs = opts.pollMs ?? 250;
    const busyPollMs = opts.busyPollMs ?? this.#pollMs;
    const quietPollMs = opts.quietPollMs ?? this.#pollMs;
    const busyBytes = opts.busyBytes ?? Infinity;
    this.#sleptMs = this.#pollMs;
    this.#drainMs = opts.drainMs ?? 3000;
    this.#maxLine = opts.maxLineBytes ?? 64 * 1024;
    this.#clock = opts.clock ?? systemClock;
    this.#onError = opts.onError;
    this.#reopen = opts.reopen;
    this.#reopenAfterMs = opts.reopenAfterMs ?? 5000;
    this.#reopenIntervalMs = opts.reopenIntervalMs ?? 60_000;
    if (!(this.#reopenAfterMs >= 0) || !(this.#reopenIntervalMs >= 0))
      throw new RangeError('reopenAfterMs and reopenIntervalMs must be ≥ 0');
    if (!(this.#pollMs > 0)) throw new RangeError(`pollMs must be > 0, got ${this.#pollMs}`);
    if (!(busyPollMs > 0)) throw new RangeError(`busyPollMs must be > 0, got ${busyPollMs}`);
    if (!(quietPollMs >= this.#pollMs))
      throw new RangeError(`quietPollMs must be ≥ pollMs (${this.#pollMs}), got ${quietPollMs}`);
    if (!(busyBytes > 0)) throw new RangeError(`busyBytes must be > 0, got ${busyBytes}`);
    this.#periods = { pollMs: this.#pollMs, quietPollMs, busyPollMs, busyBytes };
    if (!(this.#drainMs >= 0)) throw new RangeError(`drainMs must be ≥ 0, got ${this.#drainMs}`);
    if (!(this.#maxLine > 0)) throw new RangeError(`maxLineBytes must be > 0, got ${this.#maxLine}`);
  }

  /** Calls of the `reopen` hook so far (failed ones included). */
  get reopens(): number {
    return this.#reopens;
  }

  /** True while fs.watch is armed (the log was quiet at the last poll); false while lines flow and the loop only polls. */
  get watching(): boolean {
    return this.#watcher !== null;
  }

  /**
   * Reads every {@link HURRY_POLL_MS} (10 ms) instead of every pollMs for the next {@link HURRY_HOLD_MS}
   * (500 ms): the consumer calls it from onBytes / onLines when a batch held lines that must be judged
   * without waiting a whole poll (the sidecar: a canary failure, so that the attempts nginx sends a failing
   * canary before its drain is decided stay few; issue 13, test/e2e/drain-fast.test.ts). Each call
   * extends the hold; a sleep already begun is cut short to HURRY_POLL_MS. Never throws.
   */
  hurry(): void {
    this.#hurryUntil = this.#clock.monotonic() + HURRY_HOLD_MS;
    this.#hurryWake?.();
  }

  /**
   * The period the loop chose for its last sleep, ms: pollMs, busyPollMs after a poll that read at least
   * busyBytes, quietPollMs after one that read nothing with the watch armed, or HURRY_POLL_MS while
   * {@link hurry} holds. Before the first sleep: pollMs.
   */
  get pollingMs(): number {
    return this.#sleptMs;
  }

  /** True while {@link hurry} holds: the loop polls every HURRY_POLL_MS. */
  get hurried(): boolean {
    return this.#clock.monotonic() < this.#hurryUntil;
  }

  /** Counters (a copy). */
  get stats(): FollowerStats {
    return { ...this.#stats, draining: this.#draining.length };
  }

  /**
   * Opens the file if it exists (positioned per `from`) and starts the loop.
   * Resolves once the start position is fixed: every line completed after
   * that is delivered. Throws if called twice.
   */
  async start(): Promise<void> {
    if (this.#started) throw new Error('LogFollower.start: already started');
    this.#started = true;
    await this.#openCurrent(this.#from);
    this.#ensureWatch();
    this.#loop = this.#run();
  }

  /** Stops the loop and closes every file. Lines not yet read are not delivered. Idempotent; never rejects. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    this.#closeWatch();
    const readers = this.#current ? [this.#current, ...this.#draining] : this.#draining;
    this.#current = null;
    this.#draining = [];
    await Promise.all(readers.map((r) => r.fh.close().catch(() => undefined)));
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      this.#readData = false;
      const bytesBefore = this.#stats.bytes;
      // The watch this poll's reads began under: only a write after it was armed is sure to wake the loop.
      const watcherBefore = this.#watcher;
      try {
        await this.#tick();
      } catch (err) {
        this.#error(err);
      }
      // Lines flow: the next poll finds lines anyway, so stop the per-write wake-ups. Quiet: watch for the next line.
      if (this.#readData) this.#closeWatch();
      else this.#ensureWatch();
      if (this.#stopped) break;
      await this.#sleep(
        pollPeriod(
          {
            read: this.#stats.bytes - bytesBefore,
            watched: watcherBefore !== null && this.#watcher === watcherBefore,
            draining: this.#draining.length,
          },
          this.#periods,
        ),
      );
    }
  }

  /** Waits `periodMs` (HURRY_POLL_MS while {@link hurry} holds), or less when fs.watch reports a change or hurry() is called. */
  #sleep(periodMs: number): Promise<void> {
    const hurriedMs = Math.min(HURRY_POLL_MS, periodMs);
    this.#sleptMs = this.hurried ? hurriedMs : periodMs;
    this.#sinceCheckMs += this.#sleptMs;
    return new Promise((resolve) => {
      let early: NodeJS.Timeout | undefined;
      let hurried: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        clearTimeout(early);
        clearTimeout(hurried);
        this.#wake = null;
        this.#hurryWake = null;
        resolve();
      };
      const timer = setTimeout(done, this.#sleptMs);
      this.#wake = (): void => {
        if (this.#stopped) done();
        else early ??= setTimeout(done, Math.min(WAKE_DELAY_MS, this.#pollMs));
      };
      this.#hurryWake = (): void => {
        hurried ??= setTimeout(done, hurriedMs);
      };
      if (this.#pendingWake) this.#wake();
      this.#pendingWake = false;
    });
  }

  /**
   * One pass: drain rotated files, read, and every CHECK_MS check truncation (when there was nothing to
   * read) and rotation.
   */
  async #tick(): Promise<void> {
    for (const r of [...this.#draining]) {
      try {
        if (await this.#read(r)) {
          // nginx still writes to a file that is not at the path any more: ask it to reopen.
          if (r.rotatedAt !== null && this.#clock.monotonic() - r.rotatedAt >= this.#reopenAfterMs)
            await this.#maybeReopen('rotated');
          continue;
        }
        if (this.#clock.monotonic() - r.lastDataAt < this.#drainMs) continue;
        if (r.partial !== null) this.#stats.partialDropped++;
      } catch (err) {
        this.#error(err); // an unreadable old file is given up, the current one is still read
      }
      this.#draining.splice(this.#draining.indexOf(r), 1);
      await r.fh.close().catch(() => undefined);
    }
    if (this.#current === null) {
      await this.#openCurrent('start');
      if (this.#current === null) {
        const now = this.#clock.monotonic();
        this.#missingSince ??= now;
        if (now - this.#missingSince >= this.#reopenAfterMs) await this.#maybeReopen('missing');
        return;
      }
    }
    this.#missingSince = null;
    const r: Reader = this.#current;
    // The file's size and the path's inode are asked every CHECK_MS, not every poll: a poll is one read.
    const check = this.#sinceCheckMs >= CHECK_MS;
    if (check) this.#sinceCheckMs = 0;
    // Truncation shows as nothing to read at our offset and a size below it, so the size is only asked
    // when a read found nothing: a busy log costs no fstat.
    if (!(await this.#read(r)) && check && (await r.fh.stat()).size < r.offset) {
      this.#stats.truncations++;
      r.offset = 0;
      r.partial = null;
      r.skipping = false;
      await this.#read(r);
    }
    if (!check) return;
    const st = await statOrNull(this.#file);
    if (st !== null && st.ino === r.ino && st.dev === r.dev) return;
    // Renamed away (or deleted): drain the old file, follow the new one from its start.
    this.#stats.rotations++;
    r.lastDataAt = this.#clock.monotonic();
    r.rotatedAt = r.lastDataAt;
    this.#draining.push(r);
    this.#current = null;
    await this.#openCurrent('start');
    if (this.#current !== null) await this.#read(this.#current);
  }

  /** Opens the path as the current file; stays closed (null) when it is missing. */
  async #openCurrent(from: 'end' | 'start'): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await open(this.#file, 'r');
    } catch (err) {
      if (!isMissing(err)) this.#error(err);
      return;
    }
    try {
      const st = await fh.stat();
      const r: Reader = {
        fh,
        dev: st.dev,
        ino: st.ino,
        offset: from === 'end' ? st.size : 0,
        partial: null,
        skipping: false,
        lastDataAt: this.#clock.monotonic(),
        rotatedAt: null,
      };
      if (from === 'end' && st.size > 0) {
        // Starting mid-line (the writer is between two writes) would emit half a line: skip to the next newline.
        const { bytesRead } = await fh.read(this.#buf, 0, 1, st.size - 1);
        r.skipping = bytesRead === 1 && this.#buf[0] !== NEWLINE;
      }
      this.#current = r;
    } catch (err) {
      await fh.close().catch(() => undefined);
      this.#error(err);
    }
  }

  /** Reads `r` to (about) its end, delivering complete lines. True when any byte was read. */
  async #read(r: Reader): Promise<boolean> {
    let any = false;
    for (;;) {
      const { bytesRead } = await r.fh.read(this.#buf, 0, CHUNK_BYTES, r.offset);
      if (bytesRead === 0) break;
      any = true;
      r.offset += bytesRead;
      this.#stats.bytes += bytesRead;
      this.#consume(r, this.#buf.subarray(0, bytesRead));
      if (bytesRead < CHUNK_BYTES) break;
    }
    if (any) {
      r.lastDataAt = this.#clock.monotonic();
      this.#readData = true;
    }
    return any;
  }

  /** Splits a chunk into lines, joining the buffered partial line; buffers the new tail. */
  #consume(r: Reader, chunk: Buffer): void {
    if (this.#onBytes !== undefined) {
      this.#consumeBytes(r, chunk);
      return;
    }
    const out: string[] = [];
    let pos = 0;
    if (r.skipping || r.partial !== null) {
      const nl = chunk.indexOf(NEWLINE);
      if (nl === -1) {
        this.#hold(r, chunk);
        return;
      }
      if (r.skipping) {
        r.skipping = false;
      } else {
        const head = r.partial as Buffer;
        r.partial = null;
        if (head.length + nl > this.#maxLine) this.#stats.overlong++;
        else out.push(Buffer.concat([head, chunk.subarray(0, nl)]).toString('utf8'));
      }
      pos = nl + 1;
    }
    const last = chunk.lastIndexOf(NEWLINE);
    if (last >= pos) {
      if (last - pos <= this.#maxLine) {
        // Fast path: no line here can be over-long.
        for (const line of chunk.toString('utf8', pos, last).split('\n')) out.push(line);
      } else {
        for (let start = pos; start <= last;) {
          const nl = chunk.indexOf(NEWLINE, start);
          if (nl - start > this.#maxLine) this.#stats.overlong++;
          else out.push(chunk.toString('utf8', start, nl));
          start = nl + 1;
        }
      }
      pos = last + 1;
    }
    if (pos < chunk.length) this.#hold(r, chunk.subarray(pos));
    if (out.length > 0) this.#emit(out);
  }

  /** {@link #consume} for `onBytes`: the same lines, handed over as ranges of the chunk. */
  #consumeBytes(r: Reader, chunk: Buffer): void {
    let pos = 0;
    if (r.skipping || r.partial !== null) {
      const nl = chunk.indexOf(NEWLINE);
      if (nl === -1) {
        this.#hold(r, chunk);
        return;
      }
      if (r.skipping) {
        r.skipping = false;
      } else {
        const head = r.partial as Buffer;
        r.partial = null;
        if (head.length + nl > this.#maxLine) this.#stats.overlong++;
        else {
          const line = Buffer.concat([head, chunk.subarray(0, nl)]);
          this.#emitBytes(line, 0, line.length, 1);
        }
      }
      pos = nl + 1;
    }
    const last = chunk.lastIndexOf(NEWLINE);
    if (last >= pos) {
      if (last - pos <= this.#maxLine) {
        // Fast path: no line here can be over-long.
        let lines = 1;
        for (let i = chunk.indexOf(NEWLINE, pos); i !== -1 && i < last; i = chunk.indexOf(NEWLINE, i + 1)) lines++;
        this.#emitBytes(chunk, pos, last, lines);
      } else {
        for (let start = pos; start <= last;) {
          const nl = chunk.indexOf(NEWLINE, start);
          if (nl - start > this.#maxLine) this.#stats.overlong++;
          else this.#emitBytes(chunk, start, nl, 1);
          start = nl + 1;
        }
      }
      pos = last + 1;
    }
    if (pos < chunk.length) this.#hold(r, chunk.subarray(pos));
  }

  /** Buffers an unterminated tail (copied), or drops it once the line exceeds maxLineBytes. */
  #hold(r: Reader, tail: Buffer): void {
    if (r.skipping) return;
    const len = (r.partial?.length ?? 0) + tail.length;
    if (len > this.#maxLine) {
      r.partial = null;
      r.skipping = true;
      this.#stats.overlong++;
      return;
    }
    r.partial = r.partial === null ? Buffer.from(tail) : Buffer.concat([r.partial, tail]);
  }

  #emit(lines: string[]): void {
    this.#stats.lines += lines.length;
    try {
      this.#onLines?.(lines);
    } catch (err) {
      this.#error(err);
    }
  }

  /** Hands `buf[start, end)`, `lines` lines, to onBytes. */
  #emitBytes(buf: Buffer, start: number, end: number, lines: number): void {
    this.#stats.lines += lines;
    try {
      this.#onBytes?.(buf, start, end);
    } catch (err) {
      this.#error(err);
    }
  }

  /** Stops watching (the loop polls); a no-op when not watching. */
  #closeWatch(): void {
    this.#watcher?.close();
    this.#watcher = null;
    this.#pendingWake = false;
  }

  /** Watches the directory (a wake-up only); retried each quiet tick while the directory is missing. */
  #ensureWatch(): void {
    if (this.#watcher !== null || this.#stopped) return;
    const base = path.basename(this.#file);
    try {
      const w = watch(path.dirname(this.#file), { persistent: false }, (_event, name) => {
        if (name === null || name.startsWith(base)) this.#poke();
      });
      w.on('error', () => {
        w.close();
        if (this.#watcher === w) this.#watcher = null;
      });
      this.#watcher = w;
    } catch {
      // Directory missing (or not watchable): polling covers it.
    }
  }

  /** Calls the reopen hook unless there is none or it ran less than reopenIntervalMs ago. */
  async #maybeReopen(why: 'missing' | 'rotated'): Promise<void> {
    if (this.#reopen === undefined) return;
    const now = this.#clock.monotonic();
    if (this.#lastReopenAt !== null && now - this.#lastReopenAt < this.#reopenIntervalMs) return;
    this.#lastReopenAt = now;
    this.#reopens++;
    try {
      await this.#reopen(why);
    } catch (err) {
      this.#error(err);
    }
  }

  #poke(): void {
    if (this.#wake) this.#wake();
    else this.#pendingWake = true;
  }

  #error(err: unknown): void {
    this.#stats.errors++;
    this.#onError?.(err);
  }
}

async function statOrNull(file: string): Promise<{ dev: number; ino: number } | null> {
  try {
    return await stat(file);
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
}

/** ENOENT, or ENOTDIR (a directory on the path was replaced by a file): the log is not there. */
function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
