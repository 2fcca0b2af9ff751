/**
 * The leader's step (docs/fleet.md "Leader"): pure. From the fleet's desired document, the live hosts'
 * reports and observations and the pending intents, it computes the next desired document — the same
 * pure `decide()` the single host runs, fed the fleet's merged evidence — with the fleet's rules on top:
 *
 * 1. intents are applied in etcd revision order (target, version, pause, resume, abort, promote, a
 *    host's drain);
 * 2. the evidence is the merge of every live host's pool snapshots (counts summed, sketches merged);
 * 3. barrier: a weight rises only when every live host reports the current desired generation applied
 *    and verified and every host's `services` agree with the leader's; until then the soak does not
 *    grow (it starts when the barrier is met). Lowering (a drain, an abort, a lower target) never waits;
 * 4. a newly elected leader does not count the leaderless gap as soak (`lastTickAt` moves to now): the
 *    soak continues from what the old leader last wrote, never shortened.
 */
import type { Config } from '../config/types.js';
import { applyCommand, decide } from '../rollout/decide.js';
import { promotedState, promoteRefusal } from '../rollout/release.js';
import type { GateResult, Observations, Page, RolloutEvent, ServiceState, State } from '../rollout/types.js';
import {
  FLEET_HISTORY_LIMIT,
  servicesDiff,
  withFleetTargets,
  type FleetDesired,
  type FleetIntent,
  type HostReport,
} from './protocol.js';
import { mergeSnapshots, outlierHosts, type ObservationSnapshot } from './snapshot.js';

/** One pending intent with its etcd key id. */
export interface PendingIntent {
  /** The key relative to `intents/` (deleted once consumed). */
  id: string;
  intent: FleetIntent;
}

/** Input of {@link leaderStep}. */
export interface LeaderInput {
  /** The leader's own weights.yaml (its services are the fleet's reference). */
  config: Config;
  /** The leader's services fingerprint (protocol.ts servicesFingerprint). */
  fingerprint: { hash: string; services: Record<string, Record<string, string>> };
  /** The current desired document (seedDesired when etcd held none). */
  desired: FleetDesired;
  /** Reports of the live hosts (their leased keys exist), by host name; the leader is one of them. */
  hosts: Readonly<Record<string, HostReport>>;
  /** Observations of the live hosts, by host name. */
  observations: Readonly<Record<string, ObservationSnapshot>>;
  /** Pending intents, oldest first. */
  intents: readonly PendingIntent[];
  /** This leader's host name. */
  self: string;
  /** Epoch ms. */
  now: number;
  /** True on open-source nginx (decide's slow_start emulation). */
  emulateSlowStart: boolean;
  /** True on the first step after this host was elected. */
  newlyElected: boolean;
}

/** A host that holds the barrier, and why. */
export interface BarrierWait {
  host: string;
  /** One phrase: `applying generation 7`, `apply failed: nginx -t: …`, `services differ: gateway.gates differs`. */
  reason: string;
}

/** Output of {@link leaderStep}. */
export interface LeaderOutput {
  /** The next desired document (write it, fenced). */
  desired: FleetDesired;
  /** True when the weights changed (generation + 1). */
  changed: boolean;
  /** Intent ids consumed this step (delete them after the write landed). */
  consumed: string[];
  /** Pages to send (fleet drains, once each). */
  pages: Page[];
  /** Events added to the fleet history. */
  events: RolloutEvent[];
  /** Hosts holding the barrier (empty when it is met). */
  waiting: BarrierWait[];
  /** Hosts whose services differ from the leader's, with how. */
  disagreeing: { host: string; diff: string[] }[];
}

/** A host's drain intent applied to the fleet state: weight 0, phase drained, event `drain`, one page. Pure. */
function hostDrain(
  state: State,
  intent: FleetIntent,
  now: number,
): { state: State; events: RolloutEvent[]; pages: Page[] } {
  const prev = state.services[intent.service];
  if (!prev || (prev.phase === 'drained' && prev.weight === 0)) return { state, events: [], pages: [] };
  const reason = `${intent.reason ?? 'gate'} on host ${intent.from}`;
  const next: ServiceState = {
    ...prev,
    weight: 0,
    phase: 'drained',
    pausedBy: null,
    resumePhase: null,
    drainReason: intent.reason ?? 'gate',
    ramp: null,
    soakedMs: 0,
    since: Math.max(prev.since, now),
  };
  const event: RolloutEvent = {
    // The host's own drain time: its history holds the same event, so the two merge into one.
    at: intent.at,
    service: intent.service,
    kind: 'drain',
    from: prev.weight,
    to: 0,
    reason: `host ${intent.from} drained on its own evidence (${reason}); the fleet drains`,
    gates: intent.gates ?? [],
  };
  const page: Page = {
    service: intent.service,
    reason: intent.reason ?? 'gate',
    summary: `drained ${intent.service} from ${prev.weight} % to 0 % on every host: ${reason}`,
    event,
  };
  return {
    state: {
      ...state,
      lastReloadAt: now,
      services: { ...state.services, [intent.service]: next },
      history: [...state.history, event],
    },
    events: [event],
    pages: [page],
  };
}

/** Applies the pending intents in order to the fleet state, targets and versions. Pure. */
function applyIntents(
  config: Config,
  desired: FleetDesired,
  intents: readonly PendingIntent[],
  now: number,
): {
  state: State;
  targets: Record<string, number>;
  versions: Record<string, string | null>;
  events: RolloutEvent[];
  pages: Page[];
} {
  let state = desired.state;
  const targets = { ...desired.targets };
  const versions = { ...desired.versions };
  const events: RolloutEvent[] = [];
  const pages: Page[] = [];
  for (const { intent } of intents) {
    if (!config.services.some((s) => s.name === intent.service)) continue;
    if (intent.kind === 'target' && intent.weight !== undefined) targets[intent.service] = intent.weight;
    else if (intent.kind === 'version' && intent.version !== undefined) versions[intent.service] = intent.version;
    else if (intent.kind === 'drain') {
      const r = hostDrain(state, intent, now);
      state = r.state;
      events.push(...r.events);
      pages.push(...r.pages);
    } else if (intent.kind === 'promote') {
      const svc = withFleetTargets(config, targets, versions).services.find((c) => c.name === intent.service);
      const prev = state.services[intent.service];
      // The host checked the gates and the primaries; the walk must still be complete at its target here.
      if (svc && prev && promoteRefusal(svc, prev, [], true) === null) {
        const next = promotedState(svc, prev, now);
        const event: RolloutEvent = {
          at: now,
          service: intent.service,
          kind: 'promote',
          from: prev.weight,
          to: 0,
          reason: `promoted${next.promotedVersion ? ` ${next.promotedVersion}` : ''} from host ${intent.from}: every primary server answers /ready; canary ${prev.weight} % → 0 % on every host`,
          gates: [],
        };
        state = {
          ...state,
          lastReloadAt: now,
          services: { ...state.services, [intent.service]: next },
          history: [...state.history, event],
        };
        events.push(event);
      }
    } else if (intent.kind === 'pause' || intent.kind === 'resume' || intent.kind === 'abort') {
      const r = applyCommand(
        withFleetTargets(config, targets, versions),
        state,
        {
          kind: intent.kind,
          service: intent.service,
        },
        now,
      );
      state = r.state;
      events.push(...r.events.map((e) => ({ ...e, reason: `${e.reason} (from host ${intent.from})` })));
    }
  }
  return { state, targets, versions, events, pages };
}

/** Which live hosts hold the barrier for `generation`, and which disagree on services. Pure. */
export function barrierOf(
  fingerprint: LeaderInput['fingerprint'],
  hosts: Readonly<Record<string, HostReport>>,
  generation: number,
): { waiting: BarrierWait[]; disagreeing: { host: string; diff: string[] }[] } {
  const waiting: BarrierWait[] = [];
  const disagreeing: { host: string; diff: string[] }[] = [];
  for (const [host, r] of Object.entries(hosts).sort(([a], [b]) => a.localeCompare(b))) {
    if (r.servicesHash !== fingerprint.hash) {
      const diff = servicesDiff(fingerprint.services, r.services);
      disagreeing.push({ host, diff: diff.length > 0 ? diff : ['services differ'] });
      waiting.push({ host, reason: `services differ from the leader's: ${diff.join(', ') || 'services differ'}` });
    } else if (r.applyError !== null) {
      waiting.push({ host, reason: `apply failed: ${r.applyError}` });
    } else if (r.verified !== generation) {
      waiting.push({ host, reason: `applying generation ${generation} (verified ${r.verified ?? 'none'})` });
    }
  }
  return { waiting, disagreeing };
}

/** One line naming the hosts that hold the barrier (at most three named, then a count). */
function holdLine(waiting: readonly BarrierWait[]): string {
  const shown = waiting.slice(0, 3).map((w) => `${w.host} (${w.reason})`);
  const more = waiting.length > 3 ? ` and ${waiting.length - 3} more` : '';
  return `barrier: waiting for ${shown.join('; ')}${more}`;
}

/**
 * The basis the leader's own decisions name: `fleet evidence from 3 of 3 live hosts: a, b, c`, at most
 * five hosts named (chosen: a line a pager can show), then a count. Pure; never throws.
 *
 * @param hosts the hosts whose snapshots were merged (agreeing on services; none when they did not merge).
 * @param live the hosts with a live report.
 * @param unmerged snapshots left out because they did not merge (another window width), 0 otherwise.
 */
export function evidenceLine(hosts: readonly string[], live: number, unmerged = 0): string {
  const sorted = [...hosts].sort((a, b) => a.localeCompare(b));
  const shown = sorted.slice(0, 5).join(', ');
  const more = sorted.length > 5 ? ` and ${sorted.length - 5} more` : '';
  const names = sorted.length > 0 ? `: ${shown}${more}` : '';
  const left =
    unmerged > 0 ? `; ${unmerged} snapshot${unmerged === 1 ? '' : 's'} not merged: window widths differ` : '';
  return `fleet evidence from ${sorted.length} of ${live} live host${live === 1 ? '' : 's'}${names}${left}`;
}

/** See the module comment. Pure: never throws on valid input, never mutates its arguments. */
export function leaderStep(input: LeaderInput): LeaderOutput {
  const { config, desired, now } = input;
  const intents = applyIntents(config, desired, input.intents, now);
  let state = intents.state;
  if (input.newlyElected) {
    const services: Record<string, ServiceState> = {};
    for (const [name, s] of Object.entries(state.services))
      services[name] = { ...s, lastTickAt: Math.max(s.lastTickAt, now) };
    state = { ...state, services };
  }
  const cfg = withFleetTargets(config, intents.targets, intents.versions);
  // Evidence from hosts whose services agree with the leader's (a host with other gates or servers
  // measures something else; it holds the barrier below anyway).
  const agreeingByHost = Object.fromEntries(
    Object.entries(input.observations).filter(([host]) => input.hosts[host]?.servicesHash === input.fingerprint.hash),
  );
  const agreeing = Object.values(agreeingByHost);
  let obs: Observations;
  let merged = true;
  try {
    obs = mergeSnapshots(agreeing);
  } catch {
    // A snapshot that does not merge (another window width): no evidence, so every gate is inconclusive
    // and nothing raises; drains from hosts' own evidence still arrive as intents.
    obs = {};
    merged = false;
  }
  const d = decide(cfg, state, obs, now, { emulateSlowStart: input.emulateSlowStart });
  const { waiting, disagreeing } = barrierOf(input.fingerprint, input.hosts, desired.generation);
  if (Object.keys(input.hosts).length === 0) waiting.push({ host: input.self, reason: 'no host report yet' });
  const met = waiting.length === 0;

  const services: Record<string, ServiceState> = { ...d.state.services };
  const weights: Record<string, number> = {};
  const summary: Record<string, string> = { ...d.summary };
  const kept = new Set<string>();
  for (const svc of cfg.services) {
    const before = state.services[svc.name];
    const after = d.state.services[svc.name];
    if (!after) continue;
    const raised = after.weight > (before?.weight ?? 0);
    if (!met && before && raised) {
      // Held by the barrier: the service stays as it was, its soak frozen (not counted while waiting).
      services[svc.name] = { ...before, lastTickAt: Math.max(before.lastTickAt, now) };
      summary[svc.name] = `holding at ${before.weight} %: ${holdLine(waiting)}`;
    } else if (!met && before && after.weight === before.weight) {
      services[svc.name] = { ...after, soakedMs: Math.min(after.soakedMs, before.soakedMs) };
      if (after.phase !== 'drained' && after.phase !== 'promoted')
        summary[svc.name] = `${d.summary[svc.name] ?? ''}; ${holdLine(waiting)}`;
      kept.add(svc.name);
    } else {
      kept.add(svc.name);
    }
    weights[svc.name] = services[svc.name]?.weight ?? 0;
  }
  // A host whose own canary errs far above the rest is named (snapshot.ts outlierHosts: a Chernoff bound).
  for (const svc of cfg.services) {
    const out = outlierHosts(agreeingByHost, svc.name);
    if (out.length === 0) continue;
    const named = out
      .slice(0, 3)
      .map(
        (o) =>
          `${o.host} (${(o.errorRatio * 100).toFixed(1)} % of ${o.attempts} vs ${(o.restErrorRatio * 100).toFixed(1)} % elsewhere)`,
      )
      .join(', ');
    summary[svc.name] = `${summary[svc.name] ?? ''}; canary errors stand out on ${named}`;
  }
  // Every event decided here says whose evidence it was decided on: a post-mortem of a drain can tell a
  // decision on the whole fleet's evidence from one on part of it (a host whose snapshot had expired).
  const basis = evidenceLine(
    merged ? Object.keys(agreeingByHost) : [],
    Object.keys(input.hosts).length,
    merged ? 0 : agreeing.length,
  );
  const withBasis = (e: RolloutEvent): RolloutEvent => ({ ...e, reason: `${e.reason} (${basis})` });
  const decided = d.events.filter((e) => kept.has(e.service)).map(withBasis);
  const events = [...intents.events, ...decided];
  const pages = [
    ...intents.pages,
    ...d.pages.filter((p) => kept.has(p.service)).map((p) => ({ ...p, event: withBasis(p.event) })),
  ];
  const changed = cfg.services.some((s) => (weights[s.name] ?? 0) !== (desired.weights[s.name] ?? 0));
  const lastReloadAt = changed ? now : desired.state.lastReloadAt;
  const gates: Record<string, GateResult[]> = d.gates;
  const next: FleetDesired = {
    v: 1,
    generation: changed ? desired.generation + 1 : desired.generation,
    leader: input.self,
    writtenAt: now,
    state: {
      ...d.state,
      generation: 0,
      lastReloadAt,
      services,
      history: [...desired.state.history, ...events].slice(-FLEET_HISTORY_LIMIT),
    },
    weights,
    targets: intents.targets,
    versions: intents.versions,
    summary,
    gates,
    hold: met ? null : holdLine(waiting),
  };
  return {
    desired: next,
    changed,
    consumed: input.intents.map((i) => i.id),
    pages,
    events,
    waiting,
    disagreeing,
  };
}
