/**
 * What fleet hosts write to etcd and read back (docs/fleet.md "Keys"): the key
 * names under the fleet's prefix and the JSON documents stored at them, with
 * strict validation (a document that is not exactly the shape is ignored and
 * logged, never guessed at). Pure: no I/O.
 *
 * Keys, relative to `fleet.prefix` + `/`:
 * - `election/…`: the leader election (etcd3's Election recipe; see fleet/etcd.ts);
 * - `desired`: {@link FleetDesired}, written only by the leader, fenced;
 * - `intents/<id>`: {@link FleetIntent}, written by any host's CLI or API, consumed (deleted) by the leader;
 * - `hosts/<host>`: {@link HostReport}, leased by the host (its liveness);
 * - `observations/<host>`: the host's pool snapshots (fleet/snapshot.ts), leased, refreshed every tick.
 */
import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Config, ServiceConfig } from '../config/types.js';
import { GateResultSchema, StateSchema } from '../rollout/store.js';
import type { GateResult, State } from '../rollout/types.js';

/** Key of the leader's desired document. */
export const DESIRED_KEY = 'desired';
/** Prefix of operator intents (one key each). */
export const INTENTS_PREFIX = 'intents/';
/** Prefix of host reports (one leased key per host). */
export const HOSTS_PREFIX = 'hosts/';
/** Prefix of host observations (one leased key per host). */
export const OBSERVATIONS_PREFIX = 'observations/';
/** Prefix of the hosts' name claims (one leased key per running host; see fleet/host.ts). */
export const MEMBERS_PREFIX = 'members/';
/** Marker key every running host of the fleet keeps (leased): two fleets whose prefixes nest find each other's marker. */
export const MARKER_KEY = 'fleet';

/** How many history events the desired document carries (it travels on every leader write; etcd's request limit is 1.5 MiB). */
export const FLEET_HISTORY_LIMIT = 100;

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

/** TypeBox schema of {@link FleetDesired}. */
export const FleetDesiredSchema = Type.Object(
  {
    v: Type.Literal(1),
    generation: Type.Integer({ minimum: 0 }),
    leader: Type.String(),
    writtenAt: Type.Number(),
    state: StateSchema,
    weights: Type.Record(Type.String(), Type.Number({ minimum: 0, maximum: 100 })),
    targets: Type.Record(Type.String(), Type.Number({ minimum: 0, maximum: 100 })),
    versions: Type.Record(Type.String(), Nullable(Type.String())),
    summary: Type.Record(Type.String(), Type.String()),
    gates: Type.Record(Type.String(), Type.Array(GateResultSchema)),
    hold: Nullable(Type.String()),
  },
  { additionalProperties: false },
);

/**
 * The fleet's desired state, written by the leader (fenced) and applied by every host.
 * - `generation`: +1 on every change of `weights` (hosts report which generation they verified);
 * - `state`: the fleet's walk (phases, soak in ms, `since` epoch ms, history newest last, at most
 *   {@link FLEET_HISTORY_LIMIT} events); its `generation` field is unused (each host has its own);
 * - `weights`: canary percent 0–100 per service, what every host must serve;
 * - `targets` / `versions`: the fleet's target (percent 0–100) and canary version per service — set by
 *   intents; weights.yaml's `rollout.target` / `rollout.version` seed them only where these hold none;
 * - `summary` / `gates`: what the leader's last tick said and measured (fleet-wide evidence);
 * - `hold`: why the walk cannot raise now (barrier, hosts disagreeing), or null.
 */
export type FleetDesired = Static<typeof FleetDesiredSchema>;

/** TypeBox schema of {@link HostReport}. */
export const HostReportSchema = Type.Object(
  {
    v: Type.Literal(1),
    host: Type.String(),
    at: Type.Number(),
    weights: Type.Record(Type.String(), Type.Number({ minimum: 0, maximum: 100 })),
    nginxGeneration: Type.Integer({ minimum: 0 }),
    verified: Nullable(Type.Integer({ minimum: 0 })),
    applyError: Nullable(Type.String()),
    servicesHash: Type.String(),
    services: Type.Record(Type.String(), Type.Record(Type.String(), Type.String())),
    localDrains: Type.Array(Type.String()),
    version: Type.String(),
  },
  { additionalProperties: false },
);

/**
 * A host's report (`hosts/<host>`, leased: it vanishes lease_ttl after the host stops or is cut off).
 * - `weights`: the canary percent 0–100 its nginx serves (verified live);
 * - `nginxGeneration`: its own include-file generation;
 * - `verified`: the desired generation its nginx serves, applied and verified, or null (never, or its
 *   live weights differ from that desired document's);
 * - `applyError`: its last apply's failure (stage and nginx's words, e.g. the `nginx -t` output), or null;
 * - `servicesHash` / `services`: {@link servicesFingerprint} of its weights.yaml `services`;
 * - `localDrains`: services it drained on its own evidence and holds at 0;
 * - `version`: the sidecar's package version.
 */
export type HostReport = Static<typeof HostReportSchema>;

/** TypeBox schema of {@link FleetIntent}. */
export const FleetIntentSchema = Type.Object(
  {
    v: Type.Literal(1),
    kind: Type.Union([
      Type.Literal('target'),
      Type.Literal('pause'),
      Type.Literal('resume'),
      Type.Literal('abort'),
      Type.Literal('drain'),
      Type.Literal('version'),
      Type.Literal('promote'),
    ]),
    service: Type.String(),
    from: Type.String(),
    at: Type.Number(),
    weight: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    version: Type.Optional(Type.String()),
    reason: Type.Optional(Type.String()),
    gates: Type.Optional(Type.Array(GateResultSchema)),
  },
  { additionalProperties: false },
);

/**
 * An operator intent or a host's drain, written by any host (`intents/<id>`) and consumed by the leader
 * in etcd revision order:
 * - `target` (with `weight`, percent 0–100), `pause`, `resume`, `abort`, `version` (with `version`):
 *   the CLI/API commands, fleet-wide;
 * - `drain`: host `from` drained the service on its own evidence (`reason`: the gate, `gates`: the
 *   numbers); the leader drains the fleet and pages once;
 * - `promote`: host `from` ran `rollout.promote_command` and saw every primary ready; the leader ends
 *   the release (canary 0, phase promoted) when the walk is still complete at its target.
 * `at` is the writer's epoch ms.
 */
export type FleetIntent = Static<typeof FleetIntentSchema>;

/** Result of parsing a document read from etcd. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** Parses `text` (JSON) against `schema`; the error names the first problems by JSON pointer. Pure. */
function parseDoc<T>(schema: Parameters<typeof Value.Check>[0], text: string, what: string): Parsed<T> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `${what} is not JSON: ${(err as Error).message}` };
  }
  if (Value.Check(schema, data)) return { ok: true, value: data as T };
  const problems = [...Value.Errors(schema, data)].slice(0, 3).map((e) => `${e.path || '/'}: ${e.message}`);
  return { ok: false, error: `${what} is not a nginx-canary document: ${problems.join('; ')}` };
}

/** Parses the `desired` document. Pure; never throws. */
export function parseDesired(text: string): Parsed<FleetDesired> {
  return parseDoc<FleetDesired>(FleetDesiredSchema, text, 'desired');
}

/** Parses a `hosts/<host>` report. Pure; never throws. */
export function parseHostReport(text: string): Parsed<HostReport> {
  return parseDoc<HostReport>(HostReportSchema, text, 'host report');
}

/** Parses an `intents/<id>` document. Pure; never throws. */
export function parseIntent(text: string): Parsed<FleetIntent> {
  return parseDoc<FleetIntent>(FleetIntentSchema, text, 'intent');
}

/** The parts of a service's config that must agree across the fleet, one hash each (see {@link servicesFingerprint}). */
const SECTIONS = ['split', 'primary', 'canary', 'probe', 'rollout', 'gates', 'override'] as const;

/** sha256 of `value`'s JSON, hex, first 16 characters (a fingerprint to compare, not a secret). */
function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

/**
 * The fingerprint of a config's `services` the hosts publish and the leader compares: per service, one
 * hash per section (split, primary, canary, probe, rollout, gates, override) and one hash of them all.
 * `rollout.target` and `rollout.version` are left out: in fleet mode they are fleet-wide values in etcd
 * (weights.yaml only seeds them). Pure.
 */
export function servicesFingerprint(config: Config): {
  hash: string;
  services: Record<string, Record<string, string>>;
} {
  const services: Record<string, Record<string, string>> = {};
  for (const svc of config.services) {
    const parts: Record<string, string> = {};
    for (const k of SECTIONS) {
      const v: unknown = k === 'rollout' ? { ...svc.rollout, target: null, version: null } : svc[k];
      parts[k] = hashOf(v);
    }
    services[svc.name] = parts;
  }
  return { hash: hashOf(services), services };
}

/**
 * How a host's services differ from the leader's, one phrase per difference (`gateway.gates differs`,
 * `api missing`, `extra web`), empty when they agree. Pure.
 */
export function servicesDiff(
  mine: Readonly<Record<string, Readonly<Record<string, string>>>>,
  theirs: Readonly<Record<string, Readonly<Record<string, string>>>>,
): string[] {
  const out: string[] = [];
  for (const [name, parts] of Object.entries(mine)) {
    const other = Object.hasOwn(theirs, name) ? theirs[name] : undefined;
    if (!other) {
      out.push(`${name} missing`);
      continue;
    }
    for (const [k, h] of Object.entries(parts)) if (other[k] !== h) out.push(`${name}.${k} differs`);
  }
  for (const name of Object.keys(theirs)) if (!Object.hasOwn(mine, name)) out.push(`extra ${name}`);
  return out;
}

/**
 * The config the leader decides with: each service's `rollout.target` and `rollout.version` replaced by
 * the fleet's (`targets`, `versions`) where those hold one. Pure.
 */
export function withFleetTargets(
  config: Config,
  targets: Readonly<Record<string, number>>,
  versions: Readonly<Record<string, string | null>>,
): Config {
  const services: ServiceConfig[] = config.services.map((svc) => {
    const target = Object.hasOwn(targets, svc.name) ? targets[svc.name] : undefined;
    const version = Object.hasOwn(versions, svc.name) ? versions[svc.name] : undefined;
    if (target === undefined && version === undefined) return svc;
    return {
      ...svc,
      rollout: {
        ...svc.rollout,
        ...(target !== undefined ? { target } : {}),
        ...(version !== undefined ? { version } : {}),
      },
    };
  });
  return { ...config, services };
}

/** The fleet's first desired document, seeded from the leader's state and weights.yaml (targets, versions). Pure. */
export function seedDesired(config: Config, state: State, leader: string, now: number): FleetDesired {
  const weights: Record<string, number> = {};
  const targets: Record<string, number> = {};
  const versions: Record<string, string | null> = {};
  for (const svc of config.services) {
    weights[svc.name] = state.services[svc.name]?.weight ?? 0;
    targets[svc.name] = svc.rollout.target;
    versions[svc.name] = svc.rollout.version;
  }
  const gates: Record<string, GateResult[]> = {};
  return {
    v: 1,
    generation: 1,
    leader,
    writtenAt: now,
    state: { ...state, generation: 0, history: state.history.slice(-FLEET_HISTORY_LIMIT) },
    weights,
    targets,
    versions,
    summary: {},
    gates,
    hold: null,
  };
}
