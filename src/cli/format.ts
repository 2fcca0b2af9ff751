/**
 * Plain-text rendering of the status document for `nginx-canary status`.
 */
import { describeGate } from '../rollout/gates.js';
import type { Ramp } from '../rollout/types.js';
import type { ServiceStatus, StatusDocument } from '../runner.js';

/**
 * A duration given in ms (≥ 0) for humans: seconds with one decimal under
 * 59.95 s (`3.2 s`; the cut keeps `60.0 s` from showing), `Xm Ys` rounded to
 * the second under 1 h, else `Xh Ym` rounded to the minute (`48h 0m`). Not
 * the weights.yaml syntax: see `formatDuration` in config/units.ts for that.
 */
export function formatDuration(ms: number): string {
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  const m = Math.round(ms / 60_000);
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

/**
 * A service's phase with who paused it and why it drained, as both text views
 * print it: `step`, `paused (by gate)`, `drained (drained: error_ratio)`.
 */
export function phaseText(s: Pick<ServiceStatus, 'phase' | 'pausedBy' | 'drainReason'>): string {
  return s.phase + (s.pausedBy ? ` (by ${s.pausedBy})` : '') + (s.drainReason ? ` (drained: ${s.drainReason})` : '');
}

/**
 * True when a service is at its target (phase `complete`, or the live weight
 * equals the target, 0 included): there is no next step to soak for, so the
 * views show no soak. Its counter keeps growing on green ticks, so showing it
 * would read `soak 14.4 s of 5.0 s`.
 */
export function atTarget(s: Pick<ServiceStatus, 'phase' | 'weight' | 'target'>): boolean {
  return s.phase === 'complete' || s.weight === s.target;
}

/**
 * The slow_start emulation ramp in progress, as both text views print it:
 * `ramp (slow_start emulation, <cause>): sub-step 2 of 5 toward 5 %` (`to` in percent 0–100).
 */
export function rampText(r: Ramp): string {
  return `ramp (slow_start emulation, ${r.cause}): sub-step ${r.step} of ${r.steps} toward ${r.to} %`;
}

/**
 * Renders the status document as lines of text (no colour, no trailing
 * newline): `note` first when given, the generation, then per service its
 * weight and target (percent 0–100), phase, soak (ms, via
 * {@link formatDuration}; `at the target` instead when {@link atTarget}, `promoted` once promoted),
 * `since` (epoch ms, printed as UTC ISO 8601),
 * summary, ramp and one line per gate; then the newest 10 history events.
 *
 * @throws RangeError (from `Date.toISOString`) when a `since` or event `at` is not a valid epoch ms.
 */
export function formatStatus(doc: StatusDocument, note = ''): string {
  const out: string[] = [];
  if (note) out.push(note);
  out.push(`generation ${doc.generation}`);
  for (const s of doc.services) {
    out.push('');
    out.push(`${s.name}: weight ${s.weight} % → target ${s.target} %  phase ${phaseText(s)}`);
    // A walk that ended (promoted) or stands at its target has no next step to soak for.
    const soak =
      s.phase === 'promoted'
        ? 'promoted'
        : atTarget(s)
          ? 'at the target'
          : `soak ${formatDuration(s.soakedMs)} of ${formatDuration(s.soakNeededMs)} at this weight`;
    out.push(`  ${soak} since ${new Date(s.since).toISOString()}`);
    if (s.summary) out.push(`  ${s.summary}`);
    if (s.ramp) out.push(`  ${rampText(s.ramp)}`);
    // One line per gate with the numbers behind its verdict (counts, p95, the test statistic and its bound).
    for (const g of s.gates) out.push(`  ${g.kind} gate ${describeGate(g)}`);
  }
  const recent = doc.history.slice(-10);
  if (recent.length > 0) {
    out.push('');
    out.push('recent events:');
    for (const e of recent)
      out.push(`  ${new Date(e.at).toISOString()} ${e.service} ${e.kind} ${e.from} → ${e.to}: ${e.reason}`);
  }
  return out.join('\n');
}
