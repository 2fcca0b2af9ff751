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
 * window's 1 s count-series buckets (observe/window.ts seriesWidthMs), the
 * steps of the default walk: 15 min soaks, a weight change (the judged span
 * restarts) at each. Onset cases run from the first step; the 48 h slice soak
 * only matters for false drains (longwalk.ts).
 */
export const PARAMS: SimParams = {
  ratePerS: 20,
  tickMs: 500,
  bucketMs: 1000,
  stages: 6,
  stageMs: 15 * 60_000,
  threshold: THRESHOLD,
};

const STAGE = PARAMS.stageMs;
/** Onset 5–6 min into the first step (uniform), after good traffic at threshold / 2. */
const midSoak = (rng: Rng): number => STAGE + 5 * 60_000 + rng.next() * 60_000;

/** An onset case: good traffic at threshold / 2, then `bad` from the onset on. */
function onsetCase(name: string, bad: number, at: (rng: Rng) => number): Scenario {
  return { name, base: THRESHOLD / 2, bad, firstStage: 1, hasOnset: true, onsetMs: at };
}

/** The onset cases, in print order: the 2 ×, 10 × and 100 % mid-soak, and 10 × at a weight change. */
export const CASES: readonly Scenario[] = [
  onsetCase('2x mid-soak', 2 * THRESHOLD, midSoak),
  onsetCase('10x mid-soak', 10 * THRESHOLD, midSoak),
  onsetCase('100% mid-soak', 1, midSoak),
  onsetCase('10x at a step start', 10 * THRESHOLD, () => STAGE),
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
