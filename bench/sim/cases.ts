/**
 * The simulated deployment and the cases of bench/gates.ts, and how a case's
 * outcomes are summarized.
 */
import type { Rng } from './prng.js';
import type { Outcome, Scenario, SimParams } from './walk.js';

/** gates.error_ratio default (docs/design.md "Numbers"), ratio. */
export const THRESHOLD = 0.005;

/**
 * 20 canary attempts/s (Poisson), ticks every 0.5 s, the default 15 min
 * window's 15 s buckets, a walk of 6 soaks (slice + 5 steps) × 10 min: each
 * soak is shorter than the window, so the judged span is never trimmed and
 * restarts at every weight change, as on the real gate.
 */
export const PARAMS: SimParams = {
  ratePerS: 20,
  tickMs: 500,
  bucketMs: 15_000,
  stages: 6,
  stageMs: 10 * 60_000,
  threshold: THRESHOLD,
};

const STAGE = PARAMS.stageMs;
/** Onset 5–6 min into the first step (uniform), after good traffic at threshold / 2. */
const midSoak = (rng: Rng): number => STAGE + 5 * 60_000 + rng.next() * 60_000;

/** The cases, in print order. */
export const CASES: readonly Scenario[] = [
  {
    name: 'no onset, p = thr/2, whole walk',
    base: THRESHOLD / 2,
    bad: 0,
    firstStage: 0,
    hasOnset: false,
    onsetMs: () => null,
  },
  {
    name: 'no onset, p = thr, whole walk',
    base: THRESHOLD,
    bad: 0,
    firstStage: 0,
    hasOnset: false,
    onsetMs: () => null,
  },
  {
    name: '10x at a step start',
    base: THRESHOLD / 2,
    bad: 10 * THRESHOLD,
    firstStage: 1,
    hasOnset: true,
    onsetMs: () => STAGE,
  },
  { name: '10x mid-soak', base: THRESHOLD / 2, bad: 10 * THRESHOLD, firstStage: 1, hasOnset: true, onsetMs: midSoak },
  { name: '4x mid-soak', base: THRESHOLD / 2, bad: 4 * THRESHOLD, firstStage: 1, hasOnset: true, onsetMs: midSoak },
  { name: '2x mid-soak', base: THRESHOLD / 2, bad: 2 * THRESHOLD, firstStage: 1, hasOnset: true, onsetMs: midSoak },
];

/** One detector's figures over a case. */
export interface Summary {
  walks: number;
  /** Share of walks drained before the onset (or at all without onset). */
  falseRate: number;
  /** Walks with an onset that never drained before the walk ended. */
  never: number;
  medAttempts: string;
  p95Attempts: string;
  medSeconds: string;
  p95Seconds: string;
}

/** The q-quantile (nearest rank) of sorted values; '—' without values, '> end' when it lands on a walk that never drained. */
function quantile(sorted: readonly number[], q: number, digits: number): string {
  if (sorted.length === 0) return '—';
  const v = sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
  return v === Infinity ? 'never' : v.toFixed(digits);
}

/** Summarizes one detector's outcomes; drain times are over walks with an onset and no false drain. */
export function summarize(outcomes: readonly Outcome[]): Summary {
  const attempts = outcomes.filter((o) => !o.falseDrain && !Number.isNaN(o.attempts)).map((o) => o.attempts);
  const seconds = outcomes.filter((o) => !o.falseDrain && !Number.isNaN(o.seconds)).map((o) => o.seconds);
  attempts.sort((a, b) => a - b);
  seconds.sort((a, b) => a - b);
  return {
    walks: outcomes.length,
    falseRate: outcomes.filter((o) => o.falseDrain).length / Math.max(1, outcomes.length),
    never: attempts.filter((a) => a === Infinity).length,
    medAttempts: quantile(attempts, 0.5, 0),
    p95Attempts: quantile(attempts, 0.95, 0),
    medSeconds: quantile(seconds, 0.5, 1),
    p95Seconds: quantile(seconds, 0.95, 1),
  };
}
