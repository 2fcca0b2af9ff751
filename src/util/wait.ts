/**
 * Waiting on a condition with a deadline — never a bare sleep "to let things
 * settle" (a project rule for tests and I/O alike). Used by the applier
 * (generation polling), the managed-nginx starter and the tests.
 *
 * Deadlines are real time (`performance.now()`), not an injected Clock: this
 * waits on real I/O.
 */
import { setTimeout as delay } from 'node:timers/promises';

/** Options of {@link waitFor}. */
export interface WaitOptions {
  /** Give up after this many ms of real time (default 5000; a chosen default, not a runbook number). */
  timeoutMs?: number;
  /** Pause between two polls, ms (default 25; a chosen default). */
  intervalMs?: number;
  /** Named in the timeout error (default "a condition"). */
  what?: string;
  /** Stops the wait: waitFor rejects with the signal's reason (or an AbortError when it aborts during a pause). */
  signal?: AbortSignal;
  /**
   * Asked after each poll that did not succeed: a `performance.now()` time (ms) before which the
   * condition cannot hold, so the next poll waits for it instead of `intervalMs`: never less than
   * `intervalMs`, never before that time, and no longer than the deadline, where one last poll runs.
   * Null or absent: `intervalMs`.
   * For the caller who knows, from the other side's source, that polls before then can only fail.
   */
  notBefore?: () => number | null;
}

/** Thrown by {@link waitFor} past its deadline; carries the last value seen. */
export class WaitTimeoutError extends Error {
  /** The last value `probe` resolved to, or the last error it threw. */
  readonly last: unknown;
  /**
   * @param what named in the message ("timed out after N ms waiting for <what>").
   * @param timeoutMs the deadline that passed, ms.
   * @param last the last value or error seen.
   */
  constructor(what: string, timeoutMs: number, last: unknown) {
    super(`timed out after ${timeoutMs} ms waiting for ${what}`);
    this.name = 'WaitTimeoutError';
    this.last = last;
  }
}

/**
 * Polls `probe` until it returns a value other than `undefined`, `null` or
 * `false`, and returns that value. Errors thrown by `probe` count as "not yet".
 * The deadline is checked between polls: one `probe` call that never settles
 * holds the wait past `timeoutMs`, so probes must bound themselves.
 *
 * @throws WaitTimeoutError (with the last value or error) once `timeoutMs` has passed;
 *   the abort reason, or an AbortError, when `opts.signal` aborts.
 */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  opts: WaitOptions = {},
): Promise<Exclude<T, undefined | null | false>> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const intervalMs = opts.intervalMs ?? 25;
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v as Exclude<T, undefined | null | false>;
      last = v;
    } catch (err) {
      last = err;
    }
    const now = performance.now();
    if (now >= deadline) throw new WaitTimeoutError(opts.what ?? 'a condition', timeoutMs, last);
    const pauseOpts = opts.signal ? { signal: opts.signal } : undefined;
    const until = opts.notBefore?.() ?? null;
    if (until === null) {
      await delay(intervalMs, undefined, pauseOpts);
      continue;
    }
    // A Node timer counts from the event loop's cached time, so it may fire early against performance.now()
    // by as long as the loop turn had run; a poll that lands short of `until` could only fail, so wait out
    // the rest.
    const wakeAt = Math.max(now + intervalMs, Math.min(until, deadline));
    for (let rest = wakeAt - now; rest > 0; rest = wakeAt - performance.now()) {
      await delay(Math.ceil(rest), undefined, pauseOpts);
    }
  }
}
