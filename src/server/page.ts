/**
 * The view model of the status page (`GET /`, templates/status.html.ejs):
 * everything the template shows, already formatted, so the template only
 * loops and escapes. Pure: `now` (epoch ms, the injected clock's reading) is
 * a parameter; no I/O.
 */
import {
  NO_LEADER,
  atTarget,
  fleetGenerationText,
  fleetHostMarks,
  fleetWeightsText,
  formatAge,
  formatDuration,
} from '../cli/format.js';
import type { FleetStatus } from '../fleet/host.js';
import { describeGate, formatGateValue, passSide } from '../rollout/gates.js';
import type { GateName, GateResult, Phase, RolloutEvent } from '../rollout/types.js';
import type { ServiceStatus, StatusDocument } from '../runner.js';
import type { SnapshotInfo } from '../nginx/types.js';
import { CHART_EVENT_LIMIT, weightChart } from './chart.js';

/** Events listed per service, newest first (a chosen bound: one screen; the chart shows up to {@link CHART_EVENT_LIMIT}). */
export const PAGE_EVENTS_PER_SERVICE = 20;

/** Snapshots listed, newest first (a chosen bound; `nginx-canary snapshots` lists them all). */
export const PAGE_SNAPSHOTS = 15;

/** One gate row. */
export interface GateRow {
  gate: GateName;
  /** `hold` or `drain`. */
  kind: GateResult['kind'];
  pool: string;
  verdict: GateResult['verdict'];
  /** The value in its unit (`0.42 %`, `85 ms`), or `—` without data. */
  value: string;
  /** What passes, e.g. `≤ 0.50 %`, `≥ 7.5 %` (starved), `< 3` (crash_loop), `= 200` (ready). */
  threshold: string;
  /** `samples / minSamples`. */
  samples: string;
  /** {@link describeGate}: the phrase with the numbers behind the verdict. */
  describe: string;
}

/** One event row. */
export interface EventRow {
  /** Epoch ms. */
  at: number;
  /** `HH:MM:SS` UTC. */
  time: string;
  /** Full ISO 8601 UTC time. */
  iso: string;
  /** How long before `now`, e.g. `12 s ago`. */
  age: string;
  kind: RolloutEvent['kind'];
  /** `5 % → 15 %`, or `target 30 % → 60 %`, or `5 % → 15 % (not applied)`. */
  change: string;
  reason: string;
  /** describeGate of the gates that did not pass, failures first. */
  notPassing: { verdict: GateResult['verdict']; text: string }[];
  /** describeGate of the gates that passed. */
  passing: string[];
  /** Total gates recorded with the event (0 for operator actions). */
  gateCount: number;
}

/** One service section. */
export interface ServiceView {
  name: string;
  /** `gateway: 15 % of 30 % (step)`. */
  heading: string;
  phase: Phase;
  drained: boolean;
  /** Live weight and target, percent 0–100. */
  weight: number;
  target: number;
  /** `15 %`. */
  weightText: string;
  targetText: string;
  /** One line on why it is drained (the gate or `operator`) and how to restart, or null. */
  drainNote: string | null;
  /** Who paused it (`gate`, `operator`) or null. */
  pausedBy: string | null;
  /** `3.2 s of 5.0 s` green soak at this weight, or null when not soaking (idle, drained, complete, at the target). */
  soak: string | null;
  /** Soak done, percent 0–100 (for the bar). */
  soakPct: number;
  /** When the weight last changed, and how long ago. */
  since: string;
  summary: string;
  /** `sub-step 2 of 5 toward 5 %`, or null. */
  ramp: string | null;
  split: string;
  gates: GateRow[];
  /** Counts of gate verdicts now. */
  verdicts: Record<GateResult['verdict'], number>;
  /** The weight chart (already escaped SVG). */
  chart: string;
  events: EventRow[];
  /** Events of this service in the history (the chart draws the newest {@link CHART_EVENT_LIMIT}). */
  eventTotal: number;
}

/** One snapshot row. */
export interface SnapshotRow {
  id: string;
  time: string;
  iso: string;
  age: string;
  generation: number;
  /** `gateway 15 %, api 0 %`. */
  weights: string;
  reason: string;
  /** True for the snapshot whose generation is live (restoring it changes nothing). */
  live: boolean;
}

export { formatAge };

/** One host of the fleet table (text as `nginx-canary status` words it; the template escapes it). */
export interface FleetHostRow {
  host: string;
  /** `leader`, `this host`, both or none. */
  marks: string[];
  live: boolean;
  /** `verified gen 17`, `behind (desired 17)`, `behind (desired 17, verified gen 16)`, `not verified`. */
  generation: string;
  /** It has not verified the desired generation: it holds the barrier. */
  behind: boolean;
  /** `gateway 15 %, api 0 %`. */
  weights: string;
  /** Last report, `HH:MM:SS` UTC of the host's own clock; ISO 8601; how long before `now`. */
  seen: string;
  seenIso: string;
  seenAge: string;
  /** Its last apply's failure as the host reported it (e.g. nginx -t's words, several lines), or null. */
  applyError: string | null;
  /** How its services differ (`gateway.gates differs, extra web`), or null when they agree. */
  differs: string | null;
  /** Services it drained on its own evidence (`gateway`), or null. */
  localDrains: string | null;
}

/** The fleet section of the page (fleet mode only). */
export interface FleetSection {
  prefix: string;
  /** This host's name. */
  host: string;
  /** The leader's name, or null with {@link FleetSection.leaderText} saying what that means. */
  leader: string | null;
  /** The leader's name, or the no-leader line. */
  leaderText: string;
  etcd: FleetStatus['etcd'];
  /** The desired generation, or `none read`. */
  desiredGeneration: string;
  /** Why the fleet cannot raise now, or null. */
  hold: string | null;
  hosts: FleetHostRow[];
  /** Hosts whose lease expired. */
  stale: number;
}

/** Everything the template shows. */
export interface StatusPage {
  generation: number;
  /** `HH:MM:SS` UTC of `now`. */
  renderedAt: string;
  renderedIso: string;
  /** `12 s ago` or `never`. */
  lastReload: string;
  /** Seconds between refreshes, or null when refreshing is off. */
  refreshSeconds: number | null;
  services: ServiceView[];
  /** Worst phase across services for the title line: a drained service first. */
  alert: string | null;
  snapshots: SnapshotRow[];
  snapshotTotal: number;
  /** Why snapshots could not be listed, or null. */
  snapshotError: string | null;
  /** The fleet's leader and hosts, or null outside fleet mode (no section then). */
  fleet: FleetSection | null;
}

/** Input of {@link buildStatusPage}. */
export interface StatusPageInput {
  /** The status document with the whole history wanted (the chart uses up to {@link CHART_EVENT_LIMIT} per service). */
  status: StatusDocument;
  /** Snapshots newest first, or the error listing them threw. */
  snapshots: readonly SnapshotInfo[] | Error;
  /** Epoch ms; ages and the chart's right edge are measured from it. */
  now: number;
  /** Seconds between refreshes (meta refresh), or null for none. */
  refreshSeconds: number | null;
}

/** Percent with at most one decimal: `15 %`, `2.5 %`. */
function pct(w: number): string {
  return `${Math.round(w * 10) / 10} %`;
}

/** `HH:MM:SS` of an epoch ms in UTC; `—` when not a valid time. */
export function clockTime(at: number): string {
  return Number.isFinite(at) && Math.abs(at) < 8.64e15 ? new Date(at).toISOString().slice(11, 19) : '—';
}

/** ISO 8601 UTC of an epoch ms; '' when not a valid time. */
function isoTime(at: number): string {
  return Number.isFinite(at) && Math.abs(at) < 8.64e15 ? new Date(at).toISOString() : '';
}

/** What passes for a gate, in its unit (see {@link GateRow.threshold}). */
function passWhen(g: GateResult): string {
  const t = formatGateValue({ ...g, value: g.threshold });
  if (g.gate === 'ready') return '= 200';
  const side = passSide(g.gate);
  return `${side === 'at-least' ? '≥' : side === 'below' ? '<' : '≤'} ${t}`;
}

const VERDICT_ORDER: Record<GateResult['verdict'], number> = { fail: 0, inconclusive: 1, pass: 2 };

/** One event as a row. */
function eventRow(e: RolloutEvent, now: number): EventRow {
  const change =
    e.kind === 'target'
      ? `target ${pct(e.from)} → ${pct(e.to)}`
      : e.kind === 'apply_failed'
        ? `${pct(e.from)} → ${pct(e.to)} (not applied)`
        : e.from === e.to
          ? `at ${pct(e.to)}`
          : `${pct(e.from)} → ${pct(e.to)}`;
  const gates = [...e.gates].sort((a, b) => VERDICT_ORDER[a.verdict] - VERDICT_ORDER[b.verdict]);
  return {
    at: e.at,
    time: clockTime(e.at),
    iso: isoTime(e.at),
    age: formatAge(e.at, now),
    kind: e.kind,
    change,
    reason: e.reason,
    notPassing: gates.filter((g) => g.verdict !== 'pass').map((g) => ({ verdict: g.verdict, text: describeGate(g) })),
    passing: gates.filter((g) => g.verdict === 'pass').map(describeGate),
    gateCount: e.gates.length,
  };
}

/** One service as its page section. */
function serviceView(s: ServiceStatus, history: readonly RolloutEvent[], now: number): ServiceView {
  const mine = history.filter((e) => e.service === s.name);
  // No soak at the target (complete, or paused there): nothing left to soak for (cli/format.ts atTarget).
  const soaking = (s.phase === 'slice' || s.phase === 'step' || (s.phase === 'paused' && s.weight > 0)) && !atTarget(s);
  const verdicts = { pass: 0, fail: 0, inconclusive: 0 };
  for (const g of s.gates) verdicts[g.verdict]++;
  const restart = `set a new target or run \`nginx-canary resume ${s.name}\` to restart from the slice`;
  return {
    name: s.name,
    heading: `${s.name}: ${s.weight} % of ${s.target} % (${s.phase})`,
    phase: s.phase,
    drained: s.phase === 'drained',
    weight: s.weight,
    target: s.target,
    weightText: pct(s.weight),
    targetText: pct(s.target),
    drainNote:
      s.phase === 'drained'
        ? s.drainReason === 'operator'
          ? `Drained by the operator (abort): canary at 0 %; ${restart}.`
          : `Drained by the ${s.drainReason ?? 'a drain'} gate: canary at 0 %; ${restart}.`
        : null,
    pausedBy: s.pausedBy,
    soak: soaking ? `${formatDuration(s.soakedMs)} of ${formatDuration(s.soakNeededMs)}` : null,
    soakPct: s.soakNeededMs > 0 ? Math.min(100, Math.max(0, (100 * s.soakedMs) / s.soakNeededMs)) : 100,
    since: s.since > 0 ? `${clockTime(s.since)} UTC (${formatAge(s.since, now)})` : '—',
    summary: s.summary,
    ramp: s.ramp ? `sub-step ${s.ramp.step} of ${s.ramp.steps} toward ${pct(s.ramp.to)} (${s.ramp.cause})` : null,
    split: s.split,
    gates: s.gates.map((g) => ({
      gate: g.gate,
      kind: g.kind,
      pool: g.pool,
      verdict: g.verdict,
      value: formatGateValue(g),
      threshold: passWhen(g),
      samples: `${g.samples} / ${g.minSamples}`,
      describe: describeGate(g),
    })),
    verdicts,
    chart: weightChart({
      history: mine.slice(-CHART_EVENT_LIMIT),
      now,
      weight: s.weight,
      target: s.target,
      label: `${s.name}: canary weight over time`,
    }),
    events: mine
      .slice(-PAGE_EVENTS_PER_SERVICE)
      .reverse()
      .map((e) => eventRow(e, now)),
    eventTotal: mine.length,
  };
}

/** The fleet section: the same facts as the CLI's fleet block (cli/format.ts formatFleet), ages from `now`. */
export function fleetSection(f: FleetStatus, now: number): FleetSection {
  return {
    prefix: f.prefix,
    host: f.host,
    leader: f.leader,
    leaderText: f.leader ?? NO_LEADER,
    etcd: f.etcd,
    desiredGeneration: f.desiredGeneration === null ? 'none read' : String(f.desiredGeneration),
    hold: f.hold,
    hosts: f.hosts.map((h) => ({
      host: h.host,
      marks: fleetHostMarks(f, h.host),
      live: h.live,
      generation: fleetGenerationText(h, f.desiredGeneration),
      behind: f.desiredGeneration !== null && (h.verified === null || h.verified < f.desiredGeneration),
      weights: fleetWeightsText(h.weights),
      seen: clockTime(h.lastSeen),
      seenIso: isoTime(h.lastSeen),
      seenAge: formatAge(h.lastSeen, now),
      applyError: h.applyError,
      differs: h.differs.length > 0 ? h.differs.join(', ') : null,
      localDrains: h.localDrains.length > 0 ? h.localDrains.join(', ') : null,
    })),
    stale: f.hosts.filter((h) => !h.live).length,
  };
}

/**
 * Builds the page's view model (pure; never throws for a well-formed status
 * document). Services keep the config order; a drained service sets `alert`;
 * `fleet` is set in fleet mode only.
 */
export function buildStatusPage(input: StatusPageInput): StatusPage {
  const { status, now } = input;
  const services = status.services.map((s) => serviceView(s, status.history, now));
  const drained = services.filter((s) => s.drained).map((s) => s.name);
  const snaps = input.snapshots instanceof Error ? [] : input.snapshots;
  return {
    generation: status.generation,
    renderedAt: clockTime(now),
    renderedIso: isoTime(now),
    lastReload:
      status.lastReloadAt > 0
        ? `${clockTime(status.lastReloadAt)} UTC (${formatAge(status.lastReloadAt, now)})`
        : 'never',
    refreshSeconds: input.refreshSeconds,
    services,
    alert: drained.length > 0 ? `DRAINED: ${drained.join(', ')}` : null,
    snapshots: snaps.slice(0, PAGE_SNAPSHOTS).map((x) => ({
      id: x.id,
      time: clockTime(x.at),
      iso: isoTime(x.at),
      age: formatAge(x.at, now),
      generation: x.generation,
      weights:
        Object.entries(x.weights)
          .map(([k, v]) => `${k} ${pct(v)}`)
          .join(', ') || '—',
      reason: x.reason,
      live: x.generation === status.generation,
    })),
    snapshotTotal: snaps.length,
    snapshotError: input.snapshots instanceof Error ? input.snapshots.message : null,
    fleet: status.fleet ? fleetSection(status.fleet, now) : null,
  };
}
