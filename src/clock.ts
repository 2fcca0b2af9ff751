/**
 * The clock port. Everything that needs "now" or a timer takes a Clock, so a
 * 48 h soak is a 2 s soak in a test and the pure core never reads time itself.
 */
export interface Clock {
  /** Wall-clock time in ms since the Unix epoch (what state.json stores). */
  now(): number;
  /** Monotonic time in ms (only differences are meaningful); immune to host clock jumps. */
  monotonic(): number;
}

/** The real clock: `Date.now()` (epoch ms) and `performance.now()` (ms since process start, sub-ms resolution). */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
};

/** A clock a test moves by hand: the wall reading starts at `startMs` (epoch ms), the monotonic one at 0 ms. */
export class ManualClock implements Clock {
  #wall: number;
  #mono: number;
  /**
   * @param startMs first wall reading, epoch ms (default 1_700_000_000_000 =
   *   2023-11-14T22:13:20Z: an arbitrary fixed instant so test output is reproducible).
   */
  constructor(startMs = 1_700_000_000_000) {
    this.#wall = startMs;
    this.#mono = 0;
  }
  /** The wall reading, epoch ms. */
  now(): number {
    return this.#wall;
  }
  /** The monotonic reading, ms: 0 at construction plus every {@link advance}. */
  monotonic(): number {
    return this.#mono;
  }
  /** Moves both readings forward by `ms` (ms ≥ 0). @throws RangeError when `ms` is negative. */
  advance(ms: number): void {
    if (ms < 0) throw new RangeError('ManualClock.advance: ms must be ≥ 0; use jumpWall to move the wall clock back');
    this.#wall += ms;
    this.#mono += ms;
  }
  /** Moves only the wall clock (a host clock jump), by `ms` which may be negative. */
  jumpWall(ms: number): void {
    this.#wall += ms;
  }
}
