/**
 * Gates: pure verdicts over one service's observations (design.md "Rollout",
 * style.md: a gate answers `pass | fail | inconclusive`). No I/O, no clock.
 *
 * This release judges the canary pool with two gates (seed 003):
 * - `connect_p95` (hold): canary upstream connect p95 > gates.connect_p95 (ms) → pause the walk;
 * - `error_ratio` (drain): canary 5xx attempts / attempts > gates.error_ratio (ratio 0–1) → canary to 0.
 * A pool with fewer than gates.min_requests attempts in the window makes its
 * gates `inconclusive`: thin data never passes and never fails ("No data is
 * not green"). Issue 3 adds gates by appending evaluators to {@link GATES}.
 */
import type { ServiceConfig } from '../config/types.js';
import type { GateKind, GateResult, PoolObservation, ServiceObservation, Verdict } from './types.js';

/** One gate: a pure function of a service's config and its observations (undefined = no data at all). */
export type GateEvaluator = (svc: ServiceConfig, obs: ServiceObservation | undefined) => GateResult;

const NO_DATA: PoolObservation = { requests: 0, errors: 0, connectP95Ms: null };

/**
 * The verdict of a "value above threshold fails" gate: `inconclusive` when the
 * value is unknown (null) or rests on fewer than `minSamples` samples, else
 * `fail` when value > threshold, else `pass` (the threshold itself passes).
 */
export function thresholdVerdict(
  value: number | null,
  threshold: number,
  samples: number,
  minSamples: number,
): Verdict {
  if (value === null || samples < minSamples) return 'inconclusive';
  return value > threshold ? 'fail' : 'pass';
}

/**
 * Hold gate `connect_p95`: canary $upstream_connect_time p95 in ms against
 * gates.connectP95Ms (default 120 ms, seed 003). Inconclusive below
 * gates.minRequests canary attempts or when no attempt connected (p95 null).
 */
export const connectP95Gate: GateEvaluator = (svc, obs) => {
  const canary = obs?.canary ?? NO_DATA;
  const { connectP95Ms: threshold, minRequests } = svc.gates;
  return {
    gate: 'connect_p95',
    kind: 'hold',
    pool: 'canary',
    verdict: thresholdVerdict(canary.connectP95Ms, threshold, canary.requests, minRequests),
    value: canary.connectP95Ms,
    threshold,
    samples: canary.requests,
    minSamples: minRequests,
  };
};

/**
 * Drain gate `error_ratio`: canary attempts with upstream status ≥ 500 divided
 * by canary attempts (ratio 0–1) against gates.errorRatio (default 0.005 =
 * 0.5 %, seed 003). Value null without attempts; inconclusive below gates.minRequests.
 */
export const errorRatioGate: GateEvaluator = (svc, obs) => {
  const canary = obs?.canary ?? NO_DATA;
  const { errorRatio: threshold, minRequests } = svc.gates;
  const value = canary.requests > 0 ? canary.errors / canary.requests : null;
  return {
    gate: 'error_ratio',
    kind: 'drain',
    pool: 'canary',
    verdict: thresholdVerdict(value, threshold, canary.requests, minRequests),
    value,
    threshold,
    samples: canary.requests,
    minSamples: minRequests,
  };
};

/** Every gate of this release, in evaluation order (hold gates first, then drain gates). */
export const GATES: readonly GateEvaluator[] = [connectP95Gate, errorRatioGate];

/**
 * Evaluates every gate of {@link GATES} for one service. `obs` covers the
 * judged window `[max(now - gates.window, since), now]`; undefined means no
 * data (every gate inconclusive). Pure; never throws.
 */
export function evaluateGates(svc: ServiceConfig, obs: ServiceObservation | undefined): GateResult[] {
  return GATES.map((gate) => gate(svc, obs));
}

/** True when every result is `pass` (false for an empty list: no gate, no green). */
export function allPass(results: readonly GateResult[]): boolean {
  return results.length > 0 && results.every((r) => r.verdict === 'pass');
}

/** True when every result of `kind` is `pass` (false when there is none of that kind). */
export function allPassOfKind(results: readonly GateResult[], kind: GateKind): boolean {
  return allPass(results.filter((r) => r.kind === kind));
}

/** The first `fail` result, of `kind` when given; undefined when none fails. */
export function firstFailing(results: readonly GateResult[], kind?: GateKind): GateResult | undefined {
  return results.find((r) => r.verdict === 'fail' && (kind === undefined || r.kind === kind));
}

/** The first result that is not `pass` (fail or inconclusive); undefined when all pass. */
export function firstNotPassing(results: readonly GateResult[]): GateResult | undefined {
  return results.find((r) => r.verdict !== 'pass');
}

/** Formats a gate value in its unit: ratios as percent with two decimals, p95 gates as whole ms. */
function formatValue(r: GateResult, value: number): string {
  return r.gate.endsWith('_ratio') ? `${(value * 100).toFixed(2)} %` : `${Math.round(value)} ms`;
}

/** What each gate measures, for humans. */
const MEASURES: Record<GateResult['gate'], string> = {
  connect_p95: 'connect p95',
  error_ratio: '5xx ratio',
  probe_failure_ratio: 'probe failure ratio',
  baseline_p95: 'p95',
  crash_loop: 'restarts',
  starved: 'p95 after reload',
};

/**
 * One human phrase with the numbers behind a verdict, e.g.
 * `error_ratio fail: canary 5xx ratio 2.00 % > 0.50 % over 200 requests` or
 * `connect_p95 inconclusive: canary 12 of 20 requests`.
 */
export function describeGate(r: GateResult): string {
  const head = `${r.gate} ${r.verdict}: ${r.pool}`;
  if (r.samples < r.minSamples) return `${head} ${r.samples} of ${r.minSamples} requests`;
  if (r.value === null) return `${head} ${MEASURES[r.gate]} unknown over ${r.samples} requests`;
  const op = r.verdict === 'fail' ? '>' : '≤';
  return `${head} ${MEASURES[r.gate]} ${formatValue(r, r.value)} ${op} ${formatValue(r, r.threshold)} over ${r.samples} requests`;
}
