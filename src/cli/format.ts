/**
 * Plain-text rendering of the status document for `nginx-canary status`.
 */
import { describeGate } from '../rollout/gates.js';
import type { StatusDocument } from '../runner.js';

/** Seconds with one decimal, or minutes/hours for long spans ("48h 0m"). */
export function formatDuration(ms: number): string {
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  const m = Math.round(ms / 60_000);
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

/** Renders the status document as lines of text (no colour). */
export function formatStatus(doc: StatusDocument, note = ''): string {
  const out: string[] = [];
  if (note) out.push(note);
  out.push(`generation ${doc.generation}`);
  for (const s of doc.services) {
    out.push('');
    out.push(
      `${s.name}: weight ${s.weight} % → target ${s.target} %  phase ${s.phase}${s.pausedBy ? ` (by ${s.pausedBy})` : ''}${s.drainReason ? ` (drained: ${s.drainReason})` : ''}`,
    );
    out.push(
      `  soak ${formatDuration(s.soakedMs)} of ${formatDuration(s.soakNeededMs)} at this weight since ${new Date(s.since).toISOString()}`,
    );
    if (s.summary) out.push(`  ${s.summary}`);
    if (s.ramp)
      out.push(
        `  ramp (slow_start emulation, ${s.ramp.cause}): sub-step ${s.ramp.step} of ${s.ramp.steps} toward ${s.ramp.to} %`,
      );
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
