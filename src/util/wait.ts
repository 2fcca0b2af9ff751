/**
 * Waiting on a condition with a deadline — never a bare sleep "to let things
 * settle" (DEVELOPERS.md). Used by the applier (generation polling), the
 * managed-nginx starter and the tests.
 */
import { setTimeout as delay } from 'node:timers/promises';

/** Options of {@link waitFor}. */
export interface WaitOptions {
  /** Give up after this many ms (default 5000). */
  timeoutMs?: number;
  /** Poll spacing in ms (default 25). */
  intervalMs?: number;
  /** Named in the timeout error. */
  what?: string;
  signal?: AbortSignal;
}

/** Thrown by {@link waitFor} past its deadline; carries the last value seen. */
export class WaitTimeoutError extends Error {
  readonly last: unknown;
  constructor(what: string, timeoutMs: number, last: unknown) {
    super(`timed out after ${timeoutMs} ms waiting for ${what}`);
    this.name = 'WaitTimeoutError';
    this.last = last;
  }
}

/**
 * Polls `probe` until it returns a value other than `undefined`, `null` or
 * `false`, and returns that value. Errors thrown by `probe` count as "not yet".
 * Throws WaitTimeoutError (with the last value or error) past `timeoutMs`.
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
    if (performance.now() >= deadline) throw new WaitTimeoutError(opts.what ?? 'a condition', timeoutMs, last);
    await delay(intervalMs, undefined, opts.signal ? { signal: opts.signal } : undefined);
  }
}
