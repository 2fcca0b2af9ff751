/**
 * Gates: pure verdicts over one service's observations (docs/design.md "Gates":
 * a gate answers `pass | fail | inconclusive`). No I/O, no clock.
 *
 * Hold gates (a failure pauses the walk; it resumes by itself when green):
 * - `ready`: every canary server's latest `/ready` probe answered 200. The
 *   first slice waits for it (docs/design.md "Numbers": "start canary with weight 0 …
 *   blackhole until ready");
 * - `connect_p95`: canary connect p95 over gates.connect_p95 (default 120 ms),
 *   from the access log (ms resolution) and from the probes (sub-ms; one new
 *   connection each, so upstream keepalive cannot hide a slow connect);
 * - `starved`: the canary's share of attempts under half its weight with
 *   enough traffic — what nginx's max_fails ejection looks like from outside.
 * Drain gates (a failure sets the canary to 0 at once and pages):
 * - `error_ratio`: a sequential test on canary (attempts, 5xx attempts),
 *   valid under continuous monitoring (sequential.ts; default threshold 0.5 %);
 * - `probe_failure_ratio`: canary health-probe failures over 5 %;
 * - `baseline_p95`: canary response p95 over 5 × the primary's;
 * - `crash_loop`: 3 healthy→unhealthy probe transitions in 5 min.
 * Where each default came from: docs/design.md "Numbers".
 *
 * "No data is not green": a gate without enough samples is `inconclusive`,
 * which holds the walk and never drains — except where the verdict is
 * already certain (the sequential test crossed its bound; more probe
 * failures than the threshold allows at the minimum probe count).
 */
import type { ServiceConfig } from '../config/types.js';
import { seriesWidthMs } from '../observe/window.js';
import { errorTest, walkExposureMs, walkStartPoints } from './sequential.js';
import type {
  GateKind,
  GateName,
  GateResult,
  PoolObservation,
  ProbeObservation,
  ServiceObservation,
  Verdict,
} from './types.js';

/** What a gate knows beyond the observations: the live canary weight, percent 0–100. */
export interface GateContext {
  /** The live canary weight, percent 0–100. */
  weight: number;
}

/** One gate: a pure function of a service's config, its observations (undefined = no data at all) and the context. */
export type GateEvaluator = (svc: ServiceConfig, obs: ServiceObservation | undefined, ctx: GateContext) => GateResult;

const NO_DATA: PoolObservation = { requests: 0, errors: 0, connectP95Ms: null, responseP95Ms: null, series: [] };

/**
 * The canary's share counts as starved below this fraction of its weight (docs/design.md
 * "Gates": its share of attempts under half its weight).
 */
export const STARVED_FRACTION = 0.5;

/**
 * Floor of the primary p95 the baseline gate multiplies, ms. nginx logs
 * response times with 1 ms resolution, so a primary at `0.000`–`0.002` s
 * would make any canary above a few ms "5× slower"; below 10 ms a ratio of
 * p95s is noise, not a regression.
 */
export const BASELINE_FLOOR_MS = 10;

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

/** The canary pool's probes, or undefined without a prober. */
function canaryProbes(obs: ServiceObservation | undefined): ProbeObservation | undefined {
  return obs?.probes?.canary;
}

/**
 * Hold gate `ready`: value 1 when every canary server's latest `/ready` probe
 * answered 200, 0 when one did not; threshold 1. Inconclusive (value null)
 * without a prober or before every canary server had a `/ready` probe.
 */
export const readyGate: GateEvaluator = (_svc, obs) => {
  const ready = canaryProbes(obs)?.ready ?? null;
  return {
    gate: 'ready',
    kind: 'hold',
    pool: 'canary',
    verdict: ready === null ? 'inconclusive' : ready ? 'pass' : 'fail',
    value: ready === null ? null : ready ? 1 : 0,
    threshold: 1,
    samples: ready === null ? 0 : 1,
    minSamples: 1,
  };
};

/**
 * Hold gate `connect_p95` (ms) against gates.connectP95Ms (default 120 ms,
 * docs/design.md "Numbers"), from two sources: the access log's $upstream_connect_time p95
 * over ≥ gates.minRequests canary attempts, and the probes' TCP connect p95
 * over ≥ gates.minProbes canary probes. Value = the larger p95 of the sources
 * with enough samples. Fails when that is over the threshold; passes when at
 * least one source has enough samples and none fails; inconclusive otherwise.
 * `detail`: log_p95_ms, probe_p95_ms, probes.
 */
export const connectP95Gate: GateEvaluator = (svc, obs) => {
  const canary = obs?.canary ?? NO_DATA;
  const probes = canaryProbes(obs);
  const { connectP95Ms: threshold, minRequests, minProbes } = svc.gates;
  const logP95 = canary.requests >= minRequests ? canary.connectP95Ms : null;
  const probeP95 = probes !== undefined && probes.probes >= minProbes ? probes.connectP95Ms : null;
  const known = [logP95, probeP95].filter((v): v is number => v !== null);
  const value = known.length > 0 ? Math.max(...known) : null;
  return {
    gate: 'connect_p95',
    kind: 'hold',
    pool: 'canary',
    verdict: value === null ? 'inconclusive' : value > threshold ? 'fail' : 'pass',
    value,
    threshold,
    samples: canary.requests,
    minSamples: minRequests,
    detail: {
      log_p95_ms: canary.connectP95Ms,
      probe_p95_ms: probes?.connectP95Ms ?? null,
      probes: probes?.probes ?? 0,
    },
  };
};

/**
 * Hold gate `starved`: the canary's share of the service's attempts, percent
 * 0–100, against {@link STARVED_FRACTION} × the live weight. A failure needs
 * the traffic that would bring the canary gates.minRequests attempts at its
 * weight (total ≥ minRequests × 100 / weight); a pass needs that or
 * gates.minRequests canary attempts; otherwise it is inconclusive. At
 * weight 0 it passes (nothing to starve). `detail`: canary, total, weight.
 */
export const starvedGate: GateEvaluator = (svc, obs, ctx) => {
  const canary = obs?.canary.requests ?? 0;
  const total = canary + (obs?.primary.requests ?? 0);
  const threshold = ctx.weight * STARVED_FRACTION;
  const needed = ctx.weight > 0 ? Math.ceil((svc.gates.minRequests * 100) / ctx.weight) : Infinity;
  const value = total > 0 ? (canary / total) * 100 : null;
  // At weight 0 nothing can be starved (and a gate pause at 0 must be able to resume).
  let verdict: Verdict = ctx.weight > 0 ? 'inconclusive' : 'pass';
  if (value !== null && ctx.weight > 0) {
    if (value < threshold) verdict = total >= needed ? 'fail' : 'inconclusive';
    else if (total >= needed || canary >= svc.gates.minRequests) verdict = 'pass';
  }
  return {
    gate: 'starved',
    kind: 'hold',
    pool: 'canary',
    verdict,
    value,
    threshold,
    samples: total,
    minSamples: Number.isFinite(needed) ? needed : 0,
    detail: { canary, total, weight: ctx.weight },
  };
};

/**
 * Fewest canary failures in the judged span the `error_ratio` gate drains on
 * (unless the threshold is 0: zero tolerance). The calibrated bound assumes
 * independent attempts; real failures come in bursts (one reload, one
 * connection reset, one restart of the canary's process can fail two or
 * three attempts together), and a short walk's bound can be crossed by two
 * (10 s window and 1 s soaks: 100 start points, 3 × ln 100 = 13.8 ≥ 10.0). Four
 * is what the default walk's bound needs anyway (a canary answering only 5xx
 * crosses 16.41 on its 4th), so this floor changes nothing there and keeps a
 * short or test walk from draining on a burst. A chosen value (docs/design.md
 * "Gates").
 */
export const MIN_DRAIN_ERRORS = 4;

/**
 * Drain gate `error_ratio`: canary 5xx attempts / attempts (ratio 0–1)
 * against gates.errorRatio (default 0.005 = 0.5 %, docs/design.md "Numbers"), judged by the
 * sequential test of sequential.ts on the per-second counts, its bounds
 * calibrated to the walk this service's rollout settings imply (soaks, steps
 * to the target, the window's series width: `walkExposureMs`,
 * `walkStartPoints`; the canary's observed attempt rate × that exposure for
 * `walkAttempts`; the observation's `sampleWeight` for a sampled access log). Fails as soon as the test crosses a bound and at least
 * {@link MIN_DRAIN_ERRORS} canary attempts failed, whatever the sample count
 * (the bound is what makes that safe); otherwise inconclusive below gates.minRequests
 * attempts or while the ratio is above the threshold without significance
 * (the walk holds, nothing drains), else pass.
 * `detail`: errors, statistic, bound, multiple (the alternative the statistic tests).
 */
export const errorRatioGate: GateEvaluator = (svc, obs) => {
  const canary = obs?.canary ?? NO_DATA;
  const { errorRatio: threshold, minRequests } = svc.gates;
  const exposureMs = walkExposureMs(svc.rollout, svc.gates.windowMs);
  const widthMs = seriesWidthMs(svc.gates.windowMs);
  const startPoints = walkStartPoints(exposureMs, widthMs);
  // Attempts the walk will see at the rate observed now (sets the run a bucket being filled must show).
  let attempts = 0;
  for (const b of canary.series) attempts += b.attempts > 0 ? b.attempts : 0;
  const spanMs = canary.series.length * widthMs;
  const walkAttempts = spanMs > 0 ? (attempts / spanMs) * exposureMs : 0;
  // A sampled log (docs/design.md "Sampled access log"): bounds calibrated for the most one line stood for.
  const sampleWeight = canary.sampleWeight ?? 1;
  const test = errorTest(canary.series, threshold, { startPoints, walkAttempts, sampleWeight });
  const value = canary.requests > 0 ? canary.errors / canary.requests : null;
  let verdict: Verdict;
  if (test.crossed && (canary.errors >= MIN_DRAIN_ERRORS || !(threshold > 0))) verdict = 'fail';
  else if (value === null || canary.requests < minRequests || value > threshold) verdict = 'inconclusive';
  else verdict = 'pass';
  return {
    gate: 'error_ratio',
    kind: 'drain',
    pool: 'canary',
    verdict,
    value,
    threshold,
    samples: canary.requests,
    minSamples: minRequests,
    detail: { errors: canary.errors, statistic: test.statistic, bound: test.bound, multiple: test.multiple },
  };
};

/**
 * Drain gate `probe_failure_ratio`: canary health-probe failures / probes over
 * the window (ratio 0–1) against gates.probeFailureRatio (default 0.05,
 * docs/design.md "Numbers"). The ratio is taken over max(probes, gates.minProbes): below the
 * minimum it fails only when the failures already exceed what the threshold
 * allows at the minimum (a certain verdict), else it is inconclusive.
 * `detail`: failures.
 */
export const probeFailureGate: GateEvaluator = (svc, obs) => {
  const p = canaryProbes(obs);
  const { probeFailureRatio: threshold, minProbes } = svc.gates;
  const probes = p?.probes ?? 0;
  const failures = p?.failures ?? 0;
  const value = probes > 0 ? failures / probes : null;
  const certain = failures / Math.max(probes, minProbes) > threshold;
  const verdict: Verdict = certain ? 'fail' : probes < minProbes ? 'inconclusive' : 'pass';
  return {
    gate: 'probe_failure_ratio',
    kind: 'drain',
    pool: 'canary',
    verdict,
    value,
    threshold,
    samples: probes,
    minSamples: minProbes,
    detail: { failures },
  };
};

/**
 * Drain gate `baseline_p95`: canary $upstream_response_time p95 (ms) against
 * gates.baselineP95Factor × max(primary p95, {@link BASELINE_FLOOR_MS})
 * (default factor 5, docs/design.md "Numbers"). Both pools need gates.minRequests attempts;
 * else inconclusive. `detail`: primary_p95_ms, factor.
 */
export const baselineP95Gate: GateEvaluator = (svc, obs) => {
  const canary = obs?.canary ?? NO_DATA;
  const primary = obs?.primary ?? NO_DATA;
  const { baselineP95Factor: factor, minRequests } = svc.gates;
  const base = primary.responseP95Ms;
  const threshold = factor * Math.max(base ?? 0, BASELINE_FLOOR_MS);
  const enough = canary.requests >= minRequests && primary.requests >= minRequests && base !== null;
  return {
    gate: 'baseline_p95',
    kind: 'drain',
    pool: 'canary',
    verdict: enough ? thresholdVerdict(canary.responseP95Ms, threshold, canary.requests, minRequests) : 'inconclusive',
    value: canary.responseP95Ms,
    threshold,
    samples: Math.min(canary.requests, primary.requests),
    minSamples: minRequests,
    detail: { primary_p95_ms: base, factor },
  };
};

/**
 * Drain gate `crash_loop`: healthy→unhealthy transitions of the canary
 * servers seen by the health probes within gates.crashLoopWindowMs, against
 * gates.crashLoopRestarts (default 3 in 5 min, docs/design.md "Numbers"): fails at ≥ the
 * threshold; inconclusive before the first probe.
 */
export const crashLoopGate: GateEvaluator = (svc, obs) => {
  const p = canaryProbes(obs);
  const threshold = svc.gates.crashLoopRestarts;
  const value = p === undefined || p.healthy === null ? null : p.downTransitions;
  return {
    gate: 'crash_loop',
    kind: 'drain',
    pool: 'canary',
    verdict: value === null ? 'inconclusive' : value >= threshold ? 'fail' : 'pass',
    value,
    threshold,
    samples: p?.probes ?? 0,
    minSamples: 0,
  };
};

/** Every gate, in evaluation order (hold gates first, then drain gates). */
export const GATES: readonly GateEvaluator[] = [
  readyGate,
  connectP95Gate,
  starvedGate,
  errorRatioGate,
  probeFailureGate,
  baselineP95Gate,
  crashLoopGate,
];

/**
 * Evaluates every gate of {@link GATES} for one service. `obs` covers the
 * judged window (see ServiceObservation); undefined means no data (every gate
 * inconclusive). `ctx.weight` is the live canary weight, percent. Pure; never throws.
 */
export function evaluateGates(
  svc: ServiceConfig,
  obs: ServiceObservation | undefined,
  ctx: GateContext = { weight: 0 },
): GateResult[] {
  return GATES.map((gate) => gate(svc, obs, ctx));
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

/** The result of gate `name`, if evaluated. */
export function gateNamed(results: readonly GateResult[], name: GateName): GateResult | undefined {
  return results.find((r) => r.gate === name);
}

/** How each gate's value reads: what it measures, its unit, and the word for its samples. */
const READS: Record<GateName, { measures: string; unit: 'ratio' | 'ms' | 'percent' | 'count'; samples: string }> = {
  ready: { measures: '/ready', unit: 'count', samples: 'probes' },
  connect_p95: { measures: 'connect p95', unit: 'ms', samples: 'requests' },
  starved: { measures: 'share', unit: 'percent', samples: 'requests' },
  error_ratio: { measures: '5xx ratio', unit: 'ratio', samples: 'requests' },
  probe_failure_ratio: { measures: 'probe failure ratio', unit: 'ratio', samples: 'probes' },
  baseline_p95: { measures: 'p95', unit: 'ms', samples: 'requests' },
  crash_loop: { measures: 'restarts', unit: 'count', samples: 'probes' },
};

/** Formats a number in a gate unit: ratios as percent with two decimals, ms whole (two decimals under 10 ms), percent one decimal. */
function formatIn(unit: (typeof READS)[GateName]['unit'], value: number): string {
  switch (unit) {
    case 'ratio':
      return `${(value * 100).toFixed(2)} %`;
    case 'ms':
      return value < 10 ? `${value.toFixed(2)} ms` : `${Math.round(value)} ms`;
    case 'percent':
      return `${value.toFixed(1)} %`;
    case 'count':
      return String(value);
  }
}

/** A gate's value in its unit (`0.42 %`, `85 ms`, `12.0 %` share, `3` restarts, `200` for /ready), or `—` when unknown. */
export function formatGateValue(r: GateResult): string {
  if (r.value === null) return '—';
  if (r.gate === 'ready') return r.value === 1 ? '200' : 'not 200';
  return formatIn(READS[r.gate].unit, r.value);
}

/** The numbers of `detail` worth a human's attention, per gate, as a parenthesis (or ''). */
function detailText(r: GateResult): string {
  const d = r.detail ?? {};
  const n = (k: string): number | null => d[k] ?? null;
  switch (r.gate) {
    case 'error_ratio': {
      const stat = n('statistic');
      const bound = n('bound');
      if (stat === null || bound === null) return '';
      const op = stat >= bound ? '≥' : '<';
      return ` (${n('errors') ?? 0} errors; sequential test ${stat.toFixed(2)} ${op} bound ${bound.toFixed(2)} vs ${n('multiple') ?? '?'}× threshold)`;
    }
    case 'connect_p95': {
      const log = n('log_p95_ms');
      const probe = n('probe_p95_ms');
      const parts = [
        log === null ? null : `log ${formatIn('ms', log)}`,
        probe === null ? null : `probes ${formatIn('ms', probe)} over ${n('probes') ?? 0}`,
      ].filter((x) => x !== null);
      return parts.length > 0 ? ` (${parts.join(', ')})` : '';
    }
    case 'starved':
      return ` (${n('canary') ?? 0} of ${n('total') ?? 0} attempts at weight ${n('weight') ?? 0} %)`;
    case 'probe_failure_ratio':
      return ` (${n('failures') ?? 0} failed)`;
    case 'baseline_p95': {
      const base = n('primary_p95_ms');
      return base === null ? '' : ` (${n('factor') ?? '?'} × primary ${formatIn('ms', base)})`;
    }
    default:
      return '';
  }
}

/**
 * Which side of its threshold a gate passes on — the one place that says it (the status text and the
 * status page both read it): `at-least` (≥: starved, the canary's share), `below` (<: crash_loop, a
 * restart count), `at-most` (≤: the latency and ratio gates). `ready` compares no number (HTTP 200).
 */
export function passSide(gate: Exclude<GateName, 'ready'>): 'at-least' | 'below' | 'at-most' {
  if (gate === 'starved') return 'at-least';
  if (gate === 'crash_loop') return 'below';
  return 'at-most';
}

/**
 * One human phrase with the numbers behind a verdict, e.g.
 * `error_ratio fail: canary 5xx ratio 5.00 % > 0.50 % over 200 requests (10 errors; sequential test 13.08 ≥ bound 7.60 vs 6× threshold)`,
 * `connect_p95 inconclusive: canary 12 of 20 requests` or `ready fail: canary /ready not 200`.
 * Ratios print as percent with two decimals, ms whole (two decimals under 10 ms). Never throws.
 */
export function describeGate(r: GateResult): string {
  const head = `${r.gate} ${r.verdict}: ${r.pool}`;
  const read = READS[r.gate];
  if (r.gate === 'ready') {
    if (r.value === null) return `${head} /ready not probed yet`;
    return r.value === 1 ? `${head} /ready answered 200 on every server` : `${head} /ready not 200`;
  }
  const tail = detailText(r);
  if (r.verdict !== 'fail' && r.samples < r.minSamples)
    return `${head} ${r.samples} of ${r.minSamples} ${read.samples}${tail}`;
  if (r.value === null) return `${head} ${read.measures} unknown over ${r.samples} ${read.samples}${tail}`;
  const side = passSide(r.gate);
  const failed = r.verdict === 'fail';
  const op =
    side === 'at-least'
      ? failed
        ? '<'
        : '≥'
      : side === 'below'
        ? failed
          ? '≥'
          : '<'
        : r.value > r.threshold
          ? '>'
          : '≤';
  return `${head} ${read.measures} ${formatIn(read.unit, r.value)} ${op} ${formatIn(read.unit, r.threshold)} over ${r.samples} ${read.samples}${tail}`;
}
