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

/** The real clock: Date.now() and performance.now(). */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
};

/** A clock a test moves by hand. Starts at `startMs` (epoch ms) for both readings. */
export class ManualClock implements Clock {
  #wall: number;
  #mono: number;
  constructor(startMs = 1_700_000_000_000) {
    this.#wall = startMs;
    this.#mono = 0;
  }
  now(): number {
    return this.#wall;
  }
  monotonic(): number {
    return this.#mono;
  }
  /** Moves both readings forward by `ms` (ms ≥ 0). */
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
