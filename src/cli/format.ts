/**
 * Plain-text rendering of the status document for `nginx-canary status`.
 */
import type { FleetHostStatus, FleetStatus } from '../fleet/host.js';
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
 * How long before `now` an epoch ms was, for humans: `just now` under 1 s,
 * `12 s ago`, `4 min ago`, `3 h ago`, `2 d ago`; `in 5 s` for a time after
 * `now` (clock skew); `—` for a non-finite input. The status page shows ages
 * the same way (server/page.ts re-exports this).
 */
export function formatAge(at: number, now: number): string {
  const d = now - at;
  if (!Number.isFinite(d)) return '—';
  const a = Math.abs(d);
  const n =
    a < 1000
      ? null
      : a < 60_000
        ? `${Math.floor(a / 1000)} s`
        : a < 3_600_000
          ? `${Math.floor(a / 60_000)} min`
          : a < 86_400_000
            ? `${Math.floor(a / 3_600_000)} h`
            : `${Math.floor(a / 86_400_000)} d`;
  if (n === null) return 'just now';
  return d >= 0 ? `${n} ago` : `in ${n}`;
}

/**
 * The no-leader line of both views: without a leader nobody raises, and an
 * SRE needs to know that is why the walk stands still.
 */
export const NO_LEADER = 'no leader — etcd quorum lost or every host cut off: no host raises';

/**
 * A fleet host's live weights (percent 0–100, at most one decimal) in the
 * host's own service order: `gateway 15 %, api 0 %`; `no weights reported`
 * when it reported none.
 */
export function fleetWeightsText(weights: Readonly<Record<string, number>>): string {
  const parts = Object.entries(weights).map(([k, v]) => `${k} ${Math.round(v * 10) / 10} %`);
  return parts.length > 0 ? parts.join(', ') : 'no weights reported';
}

/**
 * Where a fleet host stands against the desired generation: `verified gen 17`,
 * `behind (desired 17)` or `behind (desired 17, verified gen 16)`; with no
 * desired generation read, `verified gen N` or `not verified`. A host that
 * verified a newer generation than this host read is not behind.
 */
export function fleetGenerationText(h: Pick<FleetHostStatus, 'verified'>, desired: number | null): string {
  const behind = desired !== null && (h.verified === null || h.verified < desired);
  if (!behind) return h.verified === null ? 'not verified' : `verified gen ${h.verified}`;
  return h.verified === null
    ? `behind (desired ${desired})`
    : `behind (desired ${desired}, verified gen ${h.verified})`;
}

/**
 * A fleet host's marks: `leader`, `this host`, both, or none (a host is the
 * leader when its name is the fleet's leader's).
 */
export function fleetHostMarks(f: Pick<FleetStatus, 'host' | 'leader'>, host: string): string[] {
  const marks: string[] = [];
  if (f.leader !== null && host === f.leader) marks.push('leader');
  if (host === f.host) marks.push('this host');
  return marks;
}

/**
 * Text from other hosts (an apply error, a hold, a host name) made safe for a
 * terminal and one line: control characters (newlines too) show as `\uXXXX`
 * escapes, so a hostile or garbled report cannot move the cursor, recolour the
 * screen or break the layout. Multi-line text is split before.
 */
function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Lines of an apply error shown per host (nginx -t says what failed in its first lines). */
const APPLY_ERROR_LINES = 8;

/**
 * The fleet block of `nginx-canary status` (lines, no trailing newline): the
 * prefix, this host, the leader (or {@link NO_LEADER}), etcd up or down, the
 * desired generation, the hold when set, then one line per host — its name
 * with its marks ({@link fleetHostMarks}), live or stale, its weights, where it
 * stands ({@link fleetGenerationText}), when it was last seen (relative to
 * `now`, epoch ms, by {@link formatAge}) — and under it, indented, its apply
 * error (every line of it, up to {@link APPLY_ERROR_LINES}), how its services
 * differ, and the services it drained on its own evidence.
 */
export function formatFleet(f: FleetStatus, now: number): string[] {
  const out: string[] = [];
  out.push(`fleet ${printable(f.prefix)}`);
  out.push(`  this host: ${printable(f.host)}`);
  out.push(`  leader: ${f.leader === null ? NO_LEADER : printable(f.leader)}`);
  out.push(`  etcd: ${f.etcd}`);
  out.push(`  desired generation: ${f.desiredGeneration ?? 'none read'}`);
  if (f.hold !== null) out.push(`  hold: ${printable(f.hold)}`);
  if (f.hosts.length === 0) {
    out.push('  hosts: none seen yet');
    return out;
  }
  out.push('  hosts:');
  const cells = (h: FleetHostStatus): string[] => {
    const marks = fleetHostMarks(f, h.host);
    return [
      printable(h.host) + (marks.length > 0 ? ` (${marks.join(', ')})` : ''),
      h.live ? 'live' : 'stale',
      fleetWeightsText(h.weights),
      fleetGenerationText(h, f.desiredGeneration),
      `seen ${formatAge(h.lastSeen, now)}`,
    ];
  };
  // Columns aligned across hosts (the last one is not padded: no trailing spaces).
  const widths: number[] = [];
  for (const h of f.hosts) cells(h).forEach((c, j) => (widths[j] = Math.max(widths[j] ?? 0, c.length)));
  for (const h of f.hosts) {
    const row = cells(h);
    out.push(`    ${row.map((c, j) => (j < row.length - 1 ? c.padEnd(widths[j] ?? 0) : c)).join('  ')}`);
    if (h.applyError !== null) {
      const lines = h.applyError.trimEnd().split(/\r?\n/).map(printable);
      out.push(`      apply error: ${lines[0] ?? ''}`);
      for (const l of lines.slice(1, APPLY_ERROR_LINES)) out.push(`        ${l}`);
      if (lines.length > APPLY_ERROR_LINES) out.push(`        … ${lines.length - APPLY_ERROR_LINES} more lines`);
    }
    if (h.differs.length > 0) out.push(`      services differ: ${h.differs.map(printable).join(', ')}`);
    if (h.localDrains.length > 0)
      out.push(`      drained on its own evidence: ${h.localDrains.map(printable).join(', ')}`);
  }
  return out;
}

/**
 * Renders the status document as lines of text (no colour, no trailing
 * newline): `note` first when given, the generation, then per service its
 * weight and target (percent 0–100), phase, soak (ms, via
 * {@link formatDuration}; `at the target` instead when {@link atTarget}, `promoted` once promoted),
 * `since` (epoch ms, printed as UTC ISO 8601),
 * summary, ramp and one line per gate; then, in fleet mode (`doc.fleet`), the
 * fleet block ({@link formatFleet}, host ages relative to `now`, epoch ms);
 * then the newest 10 history events. Without `doc.fleet` the output does not
 * depend on `now`.
 *
 * @throws RangeError (from `Date.toISOString`) when a `since` or event `at` is not a valid epoch ms.
 */
export function formatStatus(doc: StatusDocument, note = '', now = Date.now()): string {
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
  if (doc.fleet) {
    out.push('');
    out.push(...formatFleet(doc.fleet, now));
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
