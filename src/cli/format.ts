/**
 * Plain-text rendering of the status document for `nginx-canary status`.
 */
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
    for (const g of s.gates) {
      const v =
        g.value === null
          ? '—'
          : g.gate === 'connect_p95'
            ? `${g.value.toFixed(1)} ms`
            : `${(g.value * 100).toFixed(2)} %`;
      const th = g.gate === 'connect_p95' ? `${g.threshold} ms` : `${(g.threshold * 100).toFixed(2)} %`;
      out.push(
        `  gate ${g.gate} (${g.kind}, ${g.pool}): ${v} vs ${th}, ${g.samples}/${g.minSamples} samples → ${g.verdict}`,
      );
    }
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
