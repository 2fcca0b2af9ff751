/**
 * Releases (docs/release.md): what makes a canary a new build, and when a
 * finished walk may be promoted. Pure: no I/O, no clock reads.
 *
 * A canary's identity is its servers plus the optional `rollout.version`
 * label of its build. Flagger and Argo Rollouts restart their analysis from
 * the first step whenever the canary's revision changes; so does this: a
 * new identity drops the canary to 0 at once (the safe direction), discards
 * the old walk's evidence and walks the new build from the slice.
 */
import type { ServiceConfig } from '../config/types.js';
import type { GateResult, ServiceState } from './types.js';

/**
 * The identity of a service's canary: its server addresses, sorted (the order
 * in weights.yaml does not matter), joined by `,`, then `@<version>` when
 * `rollout.version` is set. E.g. `127.0.0.1:18890,unix:/run/c.sock@v2.4.1`.
 */
export function canaryIdentity(svc: ServiceConfig): string {
  const servers = svc.canary.map((s) => s.server).sort();
  const version = svc.rollout.version;
  return `${servers.join(',')}${version === null ? '' : `@${version}`}`;
}

/** Splits an identity back into its servers and version (null when none). */
function parts(identity: string): { servers: string[]; version: string | null } {
  const at = identity.lastIndexOf('@');
  const servers = at < 0 ? identity : identity.slice(0, at);
  return { servers: servers === '' ? [] : servers.split(','), version: at < 0 ? null : identity.slice(at + 1) };
}

/**
 * One phrase saying what changed between two identities, for the event and
 * the log: `canary servers 127.0.0.1:18890 → 127.0.0.1:18891`, `version v1 →
 * v2`, `version (none) → v2`, or both joined by `; `.
 */
export function describeIdentityChange(before: string, after: string): string {
  const a = parts(before);
  const b = parts(after);
  const out: string[] = [];
  if (a.servers.join(',') !== b.servers.join(',')) {
    out.push(`canary servers ${a.servers.join(', ') || '(none)'} → ${b.servers.join(', ') || '(none)'}`);
  }
  if (a.version !== b.version) out.push(`version ${a.version ?? '(none)'} → ${b.version ?? '(none)'}`);
  return out.join('; ');
}

/** Why `promote` is refused, with the fix; null when it may go ahead. */
export interface PromoteRefusal {
  /** One sentence with the numbers, e.g. `the walk has not reached its target: 15 % of 35 % (phase step)`. */
  reason: string;
  /** What the operator does about it. */
  fix: string;
}

/**
 * The preconditions of `promote` (docs/release.md), in this order:
 * the walk reached its target (phase `complete`, weight = target > 0); no
 * gate is failing now; and every primary server's latest `/ready` probe
 * answered 200 (`primaryReady` true: the primary runs the canary's build and
 * is up). `gates` are this service's gate results of the last tick.
 *
 * @returns null when promote may proceed, else the first refusal.
 */
export function promoteRefusal(
  svc: ServiceConfig,
  state: ServiceState | undefined,
  gates: readonly GateResult[],
  primaryReady: boolean | null,
): PromoteRefusal | null {
  const target = svc.rollout.target;
  const weight = state?.weight ?? 0;
  const phase = state?.phase ?? 'idle';
  if (phase === 'promoted') {
    return {
      reason: `${svc.name} is already promoted${state?.promotedVersion ? ` (${state.promotedVersion})` : ''}`,
      fix: 'A new canary build (new servers or `nginx-canary release <service> <version>`) starts the next walk',
    };
  }
  if (phase !== 'complete' || target === 0 || weight !== target) {
    return {
      reason: `the walk has not reached its target: ${weight} % of ${target} % (phase ${phase})`,
      fix: `Wait until \`nginx-canary status\` shows ${svc.name} complete at its target, then promote`,
    };
  }
  const red = gates.find((g) => g.verdict === 'fail');
  if (red !== undefined) {
    return {
      reason: `gate ${red.gate} is red (${red.kind})`,
      fix: 'Promote only a canary whose gates are green; wait for them, or abort the release',
    };
  }
  if (primaryReady !== true) {
    return {
      reason:
        primaryReady === null
          ? 'the primary servers have not all answered a /ready probe yet'
          : 'not every primary server answers /ready with 200',
      fix: 'Deploy the canary build onto the primary servers first (or set rollout.promote_command), and make sure each answers /ready with 200',
    };
  }
  return null;
}

/**
 * The state after a promotion (pure; `now` epoch ms): weight 0, phase
 * `promoted` with the promoted version, soak and ramp cleared, `since` =
 * `now`. The caller applies weight 0 and records the event.
 */
export function promotedState(svc: ServiceConfig, prev: ServiceState, now: number): ServiceState {
  return {
    ...prev,
    weight: 0,
    phase: 'promoted',
    pausedBy: null,
    resumePhase: null,
    drainReason: null,
    ramp: null,
    soakedMs: 0,
    since: Math.max(prev.since, now),
    canary: canaryIdentity(svc),
    promotedVersion: svc.rollout.version,
  };
}
