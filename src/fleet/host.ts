/**
 * Fleet mode's steering (docs/fleet.md): the host side of one walk across many nginx hosts. The Runner
 * keeps its safe apply path (disk guard, preflight, snapshot, `nginx -t`, reload, verify, restore); this
 * replaces only where its decision comes from:
 *
 * - every tick the host publishes its pool snapshots (`observations/<host>`, leased) and its report
 *   (`hosts/<host>`, leased: live weights, the desired generation it verified, its last apply error, its
 *   services fingerprint);
 * - when this host leads (fleet/etcd.ts: elected, and the lease not past keepalive + TTL − margin), it
 *   runs the leader's step (fleet/leader.ts) on every live host's evidence and writes `desired`, fenced;
 * - every host applies `desired` (the leader's own host too, on the same tick);
 * - local safety stays: the pure `decide()` also runs on this host's own evidence, and when it drains a
 *   service the host drains at once and publishes a `drain` intent, so the fleet drains and the leader
 *   pages once; a host that cannot reach etcd pages its own drain;
 * - a host cut off from etcd keeps its weights and never raises (only lowers).
 */
import { readFile } from 'node:fs/promises';
import type { Clock } from '../clock.js';
import { locateIn } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { waitFor, WaitTimeoutError } from '../util/wait.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Notifier } from '../alerts/notifier.js';
import type { Observer } from '../observe/aggregate.js';
import type { FleetMetricsView } from '../server/metrics.js';
import { decide, type DecideOptions } from '../rollout/decide.js';
import type { Decision, GateResult, Observations, RolloutEvent, ServiceState, State } from '../rollout/types.js';
import { releasedAt as releasedAtOf, type ProbeSource } from '../runner.js';
import type { FleetEtcd, KeyValue } from './etcd.js';
import { leaderStep, type PendingIntent } from './leader.js';
import {
  DESIRED_KEY,
  FLEET_HISTORY_LIMIT,
  HOSTS_PREFIX,
  INTENTS_PREFIX,
  MARKER_KEY,
  MEMBERS_PREFIX,
  OBSERVATIONS_PREFIX,
  parseDesired,
  parseHostReport,
  parseIntent,
  seedDesired,
  servicesDiff,
  servicesFingerprint,
  withFleetTargets,
  type FleetDesired,
  type FleetIntent,
  type HostReport,
} from './protocol.js';
import { parseObservationSnapshot, type ObservationSnapshot } from './snapshot.js';

/** One host as `status` shows it. */
export interface FleetHostStatus {
  host: string;
  /** Its leased report exists (false: its lease expired; shown until this sidecar restarts). */
  live: boolean;
  /** Canary percent 0–100 its nginx serves, by service. */
  weights: Record<string, number>;
  /** The desired generation it verified live, or null. */
  verified: number | null;
  /** Epoch ms of its last report (by its own clock). */
  lastSeen: number;
  /** Its last apply's failure (e.g. nginx -t's words), or null. */
  applyError: string | null;
  /** How its services differ from this host's (empty: they agree). */
  differs: string[];
  /** Services it drained on its own evidence. */
  localDrains: string[];
}

/** The fleet part of the status document. */
export interface FleetStatus {
  /** This host's name. */
  host: string;
  /** The fleet's key prefix. */
  prefix: string;
  /** The leader's host name, as last read, or null (none elected, or etcd unreachable). */
  leader: string | null;
  /** True when this host leads now. */
  isLeader: boolean;
  /** Whether this host's last etcd call succeeded. */
  etcd: 'up' | 'down';
  /** The desired document's generation this host last read, or null. */
  desiredGeneration: number | null;
  /** Why the fleet cannot raise now (barrier, disagreement), or null. */
  hold: string | null;
  /** Every host seen, sorted by name. */
  hosts: FleetHostStatus[];
}

/** Inputs of {@link FleetHost}. */
export interface FleetHostDeps {
  etcd: FleetEtcd;
  config: Config;
  observer: Observer;
  prober?: ProbeSource;
  notifier: Notifier;
  clock: Clock;
  log: Logger;
  /** The sidecar's package version (in the host report). */
  version: string;
}

/** A local drain this host holds until the fleet's desired document drains the service too (or moves on). */
interface LocalDrain {
  at: number;
  reason: string;
  gates: GateResult[];
  /** The intent reached etcd. */
  published: boolean;
}

/** Input of {@link FleetHost.decide} (what the Runner has each tick). */
export interface SteerInput {
  config: Config;
  /** This host's committed state (its nginx generation, its live weights). */
  state: State;
  /** This host's own observations (access log and probes). */
  obs: Observations;
  now: number;
  opts: DecideOptions;
}

/** See the module comment. */
export class FleetHost {
  readonly #deps: FleetHostDeps;
  readonly #host: string;
  #config: Config;
  #desired: FleetDesired | null = null;
  #hosts = new Map<string, { report: HostReport; live: boolean }>();
  #leaderName: string | null = null;
  #wasLeader = false;
  #etcdOkMono = Number.NEGATIVE_INFINITY;
  #lastError: string | null = null;
  /** FleetEtcd.hostLeaseEpoch when the marker and the name claim were last written; -1 before start. */
  #leasedKeysEpoch = -1;
  /** The value of this host's `members/<host>` claim (null before start). */
  #claimValue: string | null = null;
  /** The value of another sidecar's claim on this host's name, found after a lost lease (null: none). */
  #nameTakenBy: string | null = null;
  #localDrains = new Map<string, LocalDrain>();
  /**
   * Drains this host decided on its own evidence, newest last (at most FLEET_HISTORY_LIMIT): its history is
   * the fleet's plus these, so a drain taken while cut off from etcd stays in `status` and state.json after
   * its tick (the fleet's history has it only when the leader drained because of it).
   */
  #ownEvents: RolloutEvent[] = [];
  #publishing: Promise<void> | null = null;
  #reading: Promise<void> | null = null;
  #behindSinceMono: number | null = null;
  #disagreeing = 0;
  #stopWatch: (() => Promise<void>) | null = null;
  #closed = false;

  /**
   * Builds the host side of fleet mode; starts nothing (see {@link start}).
   * @throws Error when `deps.config` has no `fleet:` section (the composition root only builds one with it).
   */
  constructor(deps: FleetHostDeps) {
    if (!deps.config.fleet) throw new Error('FleetHost needs a config with a fleet section');
    this.#deps = deps;
    this.#config = deps.config;
    this.#host = deps.config.fleet.host;
  }

  /** This host's name. */
  get host(): string {
    return this.#host;
  }

  /** The fleet's desired document as last read, or null. */
  get desired(): FleetDesired | null {
    return this.#desired;
  }

  /**
   * Starts watching `desired`, campaigning, and reads what etcd holds now. Bounded by the etcd wrapper's
   * call timeout. Throws EtcdUnavailableError when etcd cannot be reached at all.
   */
  async start(): Promise<void> {
    const { etcd } = this.#deps;
    await this.#refuseNesting();
    await this.#claimName();
    await etcd.putLeased(MARKER_KEY, this.#markerValue());
    this.#leasedKeysEpoch = etcd.hostLeaseEpoch;
    const kv = await etcd.get(DESIRED_KEY);
    this.#ok();
    if (kv) this.#takeDesired(kv.value);
    this.#stopWatch = etcd.watchPrefix(
      DESIRED_KEY,
      (e) => {
        this.#ok();
        if (e.type === 'put' && e.kv.key === DESIRED_KEY) this.#takeDesired(e.kv.value);
      },
      (kvs) => {
        this.#ok();
        const d = kvs.find((k) => k.key === DESIRED_KEY);
        if (d) this.#takeDesired(d.value);
      },
    );
    etcd.campaign((leader) => {
      this.#deps.log.info({ host: this.#host, leader }, leader ? 'elected fleet leader' : 'no longer the fleet leader');
    });
  }

  /**
   * Refuses to join when another running fleet's prefix nests with this one (each running host keeps a
   * leased `fleet` marker under its prefix).
   * @throws ConfigError naming `fleet.prefix` (file, line, fix) and the other fleets' prefixes.
   */
  async #refuseNesting(): Promise<void> {
    const fleet = this.#config.fleet;
    if (!fleet) return;
    const others = await this.#deps.etcd.nestingFleets(MARKER_KEY, [
      HOSTS_PREFIX,
      OBSERVATIONS_PREFIX,
      INTENTS_PREFIX,
      MEMBERS_PREFIX,
      'election/',
    ]);
    this.#ok();
    if (others.length === 0) return;
    const file = this.#config.file;
    const text = await readFile(file, 'utf8').catch(() => '');
    throw new ConfigError([
      {
        position: locateIn(text, file, ['fleet', 'prefix']),
        path: 'fleet.prefix',
        message: `${fleet.prefix} nests with the running fleet${others.length > 1 ? 's' : ''} ${others.join(', ')}: one fleet would read the other's keys`,
        fix: 'Give each fleet a prefix that is neither inside nor around another, e.g. /nginx-canary/edge-prod and /nginx-canary/edge-eu',
      },
    ]);
  }

  /**
   * Claims this host's name in the fleet (`members/<host>`, leased, create-only). A key left by this
   * host's previous process (killed before it could revoke its lease) expires within lease_ttl, so the
   * claim is retried for lease_ttl + 1 s before it is refused.
   * @throws ConfigError naming `fleet.host` (file, line, fix) when another running sidecar holds the name.
   */
  async #claimName(): Promise<void> {
    const { etcd, clock } = this.#deps;
    const fleet = this.#config.fleet;
    if (!fleet) return;
    const key = `${MEMBERS_PREFIX}${this.#host}`;
    const value = JSON.stringify({ host: this.#host, pid: process.pid, at: clock.now() });
    this.#claimValue = value;
    const claimed = await waitFor(() => etcd.create(key, value, true), {
      timeoutMs: fleet.leaseTtlMs + 1000,
      intervalMs: 250,
      what: `the name ${this.#host} in the fleet`,
    }).catch((err: unknown) => {
      if (err instanceof WaitTimeoutError) return false;
      throw err;
    });
    this.#ok();
    if (claimed) return;
    const holder = await etcd.get(key).catch(() => null);
    const file = this.#config.file;
    const text = await readFile(file, 'utf8').catch(() => '');
    throw new ConfigError([
      {
        position: locateIn(text, file, ['fleet', 'host']),
        path: 'fleet.host',
        message: `another running sidecar already is host "${this.#host}" of the fleet ${fleet.prefix}${holder ? ` (${holder.value})` : ''}; two hosts with one name would overwrite each other's reports`,
        fix: 'Give every host its own `fleet.host` (the default is the machine hostname), or stop the other sidecar first',
      },
    ]);
  }

  /** The value of this host's fleet marker key (MARKER_KEY). */
  #markerValue(): string {
    return JSON.stringify({ prefix: this.#config.fleet?.prefix ?? '' });
  }

  /**
   * Writes the fleet marker and this host's name claim again when the host lease was replaced since they
   * were written (FleetEtcd.hostLeaseEpoch). A lease etcd let expire (keepalives starved for lease_ttl: a
   * stalled host, a slow etcd) takes every leased key with it; the report keys come back with the next
   * report, but these two are written once at start — without this, a fleet whose prefix nests with this
   * one, or a second sidecar with this host's name, could start beside it. The claim stays create-only:
   * when another sidecar took the name meanwhile, this logs an error naming it and tries again at the
   * next report. @throws what the etcd calls throw (the caller's report handles it).
   */
  async #restoreLeasedKeys(): Promise<void> {
    const { etcd, log } = this.#deps;
    const epoch = etcd.hostLeaseEpoch;
    if (epoch === this.#leasedKeysEpoch || this.#claimValue === null) return;
    await etcd.putLeased(MARKER_KEY, this.#markerValue());
    const key = `${MEMBERS_PREFIX}${this.#host}`;
    if (!(await etcd.create(key, this.#claimValue, true))) {
      const holder = await etcd.get(key);
      if (holder !== null && holder.value !== this.#claimValue) {
        if (this.#nameTakenBy !== holder.value)
          log.error(
            { host: this.#host, holder: holder.value },
            `another sidecar took the host name "${this.#host}" while this host's etcd lease was lost; stop one of them (two hosts with one name overwrite each other's reports)`,
          );
        this.#nameTakenBy = holder.value;
        return;
      }
    }
    this.#nameTakenBy = null;
    this.#leasedKeysEpoch = epoch;
    log.warn(
      { host: this.#host },
      'fleet: the etcd host lease was replaced; the fleet marker and the name claim are written again',
    );
  }

  /** Stops watching, resigns and revokes this host's lease (its keys vanish). Never throws. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#publishing?.catch(() => undefined);
    await this.#reading?.catch(() => undefined);
    await this.#stopWatch?.().catch(() => undefined);
    await this.#deps.etcd.close();
  }

  /** Adopts a reloaded weights.yaml (its services fingerprint is published on the next tick). */
  reconfigure(config: Config): void {
    this.#config = config;
  }

  /** The config `status` shows: the fleet's targets and versions in place of weights.yaml's seeds. */
  view(config: Config): Config {
    const d = this.#desired;
    return d ? withFleetTargets(config, d.targets, d.versions) : config;
  }

  /** True while etcd answered within the last lease TTL. */
  #etcdUp(): boolean {
    const ttl = this.#config.fleet?.leaseTtlMs ?? 5000;
    return this.#deps.clock.monotonic() - this.#etcdOkMono < ttl;
  }

  #ok(): void {
    this.#etcdOkMono = this.#deps.clock.monotonic();
    this.#lastError = null;
  }

  #failed(err: unknown, what: string): void {
    const msg = err instanceof Error ? err.message : String(err);
    if (this.#lastError !== msg)
      this.#deps.log.warn({ err: msg, what }, 'etcd call failed; the fleet holds on this host');
    this.#lastError = msg;
  }

  #takeDesired(text: string): void {
    const p = parseDesired(text);
    if (!p.ok) {
      this.#deps.log.error({ err: p.error }, 'ignoring an unreadable desired document in etcd');
      return;
    }
    if (this.#desired && p.value.generation < this.#desired.generation && p.value.writtenAt < this.#desired.writtenAt)
      return;
    this.#desired = p.value;
  }

  /**
   * This tick's decision: the leader's step when this host leads, then the desired weights, with this
   * host's own drains on top, never raising while cut off from etcd. Never throws for etcd trouble.
   */
  async decide(input: SteerInput): Promise<Decision> {
    const { config, state, obs, now, opts } = input;
    const fp = servicesFingerprint(config);
    if (this.#deps.etcd.isLeader()) {
      await this.#readHosts();
      await this.#lead(config, state, fp, now, opts);
    } else {
      this.#wasLeader = false;
      // A follower reads the fleet in the background: a slow or cut-off etcd must not delay its own drains.
      this.#reading ??= this.#readHosts().finally(() => (this.#reading = null));
    }

    // Local safety: this host's own evidence may drain (never raise).
    const local = decide(this.view(config), state, obs, now, opts);
    const localEvents: RolloutEvent[] = [];
    for (const e of local.events) {
      if (e.kind !== 'drain' || this.#localDrains.has(e.service)) continue;
      const drain: LocalDrain = {
        at: now,
        reason: local.state.services[e.service]?.drainReason ?? 'gate',
        gates: e.gates,
        published: false,
      };
      this.#localDrains.set(e.service, drain);
      const own: RolloutEvent = { ...e, reason: `${e.reason} (this host's own evidence; the fleet follows)` };
      localEvents.push(own);
      this.#ownEvents = [...this.#ownEvents, own].slice(-FLEET_HISTORY_LIMIT);
      const page = local.pages.find((p) => p.service === e.service);
      void this.#sendIntent({ kind: 'drain', service: e.service, reason: drain.reason, gates: e.gates }, now).then(
        () => (drain.published = true),
        () => {
          // Cut off: the leader cannot page for us; page here (the safe direction is already taken).
          if (page)
            this.#deps.notifier.page({ ...page, summary: `${page.summary} (host ${this.#host}, cut off from etcd)` });
        },
      );
    }

    const d = this.#desired;
    const services: Record<string, ServiceState> = { ...(d ? d.state.services : state.services) };
    const summary: Record<string, string> = {};
    const up = this.#etcdUp();
    for (const svc of config.services) {
      const live = state.services[svc.name];
      const fleet = d?.state.services[svc.name];
      const fallback = live ?? local.state.services[svc.name];
      if (!fallback) continue;
      let s: ServiceState = d && fleet ? fleet : fallback;
      let line = d?.summary[svc.name] ?? "waiting for the fleet leader's first desired weights";
      const drain = this.#localDrains.get(svc.name);
      if (drain && fleet && (fleet.phase === 'drained' || fleet.since > drain.at)) this.#localDrains.delete(svc.name);
      else if (drain) {
        const held = local.state.services[svc.name] ?? s;
        s = { ...held, weight: 0, phase: 'drained', drainReason: drain.reason };
        line = `drained on this host's own evidence (${drain.reason}); ${drain.published ? 'the fleet drains' : 'telling the fleet'}`;
      }
      if (!up && live && s.weight > live.weight) {
        s = live;
        line = `cut off from etcd: holding at ${live.weight} % (never raising alone); ${line}`;
      }
      services[svc.name] = s;
      summary[svc.name] = line;
    }
    const weights = Object.fromEntries(config.services.map((s) => [s.name, services[s.name]?.weight ?? 0]));
    const changed = config.services.some((s) => weights[s.name] !== (state.services[s.name]?.weight ?? 0));
    const next: State = {
      ...state,
      services,
      history: d ? withOwnEvents(d.state.history, this.#ownEvents) : [...state.history, ...localEvents],
    };
    return {
      state: next,
      weights,
      changed,
      events: localEvents,
      // The leader pages a fleet drain once; this host pages its own drain only when etcd cannot take it (above).
      pages: [],
      gates: d ? d.gates : local.gates,
      summary,
    };
  }

  /**
   * After the Runner's tick: publishes this host's report and observations (in the background, one
   * publish in flight at a time, each call bounded by the etcd wrapper).
   */
  settled(state: State, failure: string | null): void {
    const d = this.#desired;
    const live = Object.fromEntries(this.#config.services.map((s) => [s.name, state.services[s.name]?.weight ?? 0]));
    const matches =
      d !== null &&
      this.#config.services.every((s) => this.#localDrains.has(s.name) || (d.weights[s.name] ?? 0) === live[s.name]);
    const verified = matches && failure === null && d ? d.generation : null;
    const mono = this.#deps.clock.monotonic();
    if (d && verified === null) this.#behindSinceMono ??= mono;
    else this.#behindSinceMono = null;
    if (this.#publishing || this.#closed) return;
    const fp = servicesFingerprint(this.#config);
    const observations = this.#snapshot(state);
    const report: HostReport = {
      v: 1,
      host: this.#host,
      at: this.#deps.clock.now(),
      weights: live,
      nginxGeneration: state.generation,
      verified,
      applyError: failure,
      servicesHash: fp.hash,
      services: fp.services,
      localDrains: [...this.#localDrains.keys()].sort(),
      version: this.#deps.version,
    };
    const { etcd } = this.#deps;
    this.#publishing = (async () => {
      try {
        await Promise.all([
          etcd.putLeased(`${HOSTS_PREFIX}${this.#host}`, JSON.stringify(report)),
          etcd.putLeased(`${OBSERVATIONS_PREFIX}${this.#host}`, JSON.stringify(observations)),
        ]);
        await this.#restoreLeasedKeys();
        this.#ok();
        for (const [service, drain] of this.#localDrains)
          if (!drain.published)
            await this.#sendIntent({ kind: 'drain', service, reason: drain.reason, gates: drain.gates }, drain.at).then(
              () => {
                drain.published = true;
              },
            );
      } catch (err) {
        this.#failed(err, 'publish host report');
      } finally {
        this.#publishing = null;
      }
    })();
  }

  /** This host's evidence as mergeable pool snapshots, with its probes' view. */
  #snapshot(state: State): ObservationSnapshot {
    const now = this.#deps.clock.now();
    const pools = this.#deps.observer.snapshots(this.#config, state, now);
    const probes = this.#deps.prober?.observations(this.#config, now, releasedAtOf(state)) ?? {};
    const out: ObservationSnapshot = {};
    for (const [name, p] of Object.entries(pools)) {
      const pr = Object.hasOwn(probes, name) ? probes[name] : undefined;
      out[name] = pr ? { ...p, probes: pr } : p;
    }
    return out;
  }

  /** Writes an operator intent (target, pause, resume, abort, version) for the leader. Throws when etcd cannot take it. */
  async send(intent: Omit<FleetIntent, 'v' | 'from' | 'at'>): Promise<void> {
    await this.#sendIntent(intent);
  }

  /** Writes `intent` stamped `at` (epoch ms; default now: a drain carries its tick's time, so the fleet's event matches this host's). */
  async #sendIntent(intent: Omit<FleetIntent, 'v' | 'from' | 'at'>, at?: number): Promise<void> {
    const now = at ?? this.#deps.clock.now();
    const doc: FleetIntent = { v: 1, from: this.#host, at: now, ...intent };
    const id = `${String(now).padStart(15, '0')}-${this.#host}-${Math.random().toString(36).slice(2, 10)}`;
    try {
      await this.#deps.etcd.put(`${INTENTS_PREFIX}${id}`, JSON.stringify(doc));
      this.#ok();
    } catch (err) {
      this.#failed(err, 'write intent');
      throw err;
    }
  }

  async #readHosts(): Promise<void> {
    try {
      const kvs = await this.#deps.etcd.getPrefix(HOSTS_PREFIX);
      this.#ok();
      const seen = new Set<string>();
      for (const kv of kvs) {
        const p = parseHostReport(kv.value);
        if (!p.ok) continue;
        seen.add(p.value.host);
        this.#hosts.set(p.value.host, { report: p.value, live: true });
      }
      for (const [h, v] of this.#hosts) if (!seen.has(h)) v.live = false;
      this.#leaderName = this.#deps.etcd.isLeader() ? this.#host : await this.#deps.etcd.leader();
    } catch (err) {
      this.#failed(err, 'read hosts');
    }
  }

  /** The leader's part of a tick: read evidence and intents, step, write `desired` fenced, then consume and page. */
  async #lead(
    config: Config,
    state: State,
    fp: ReturnType<typeof servicesFingerprint>,
    now: number,
    opts: DecideOptions,
  ): Promise<void> {
    const { etcd, log } = this.#deps;
    const newlyElected = !this.#wasLeader;
    try {
      const [desiredKv, obsKvs, intentKvs] = await Promise.all([
        newlyElected ? etcd.get(DESIRED_KEY) : Promise.resolve(null),
        etcd.getPrefix(OBSERVATIONS_PREFIX),
        etcd.getPrefix(INTENTS_PREFIX),
      ]);
      this.#ok();
      if (desiredKv) this.#takeDesired(desiredKv.value);
      const hosts: Record<string, HostReport> = {};
      for (const [h, v] of this.#hosts) if (v.live) hosts[h] = v.report;
      const observations: Record<string, ObservationSnapshot> = {};
      for (const kv of obsKvs) {
        const host = kv.key.slice(OBSERVATIONS_PREFIX.length);
        if (!Object.hasOwn(hosts, host)) continue;
        const p = parseObservationSnapshot(JSON.parse(kv.value) as unknown);
        if (p.ok) observations[host] = p.value;
        else log.warn({ host, err: p.error }, 'ignoring unreadable observations');
      }
      const intents: PendingIntent[] = [];
      for (const kv of sortByRevision(intentKvs)) {
        const p = parseIntent(kv.value);
        const id = kv.key.slice(INTENTS_PREFIX.length);
        if (p.ok) intents.push({ id, intent: p.value });
        else {
          log.warn({ id, err: p.error }, 'dropping an unreadable intent');
          intents.push({ id, intent: { v: 1, kind: 'pause', service: '', from: '?', at: now } });
        }
      }
      const desired = this.#desired ?? seedDesired(config, state, this.#host, now);
      const out = leaderStep({
        config,
        fingerprint: fp,
        desired,
        hosts,
        observations,
        intents,
        self: this.#host,
        now,
        emulateSlowStart: opts.emulateSlowStart === true,
        newlyElected,
      });
      this.#disagreeing = out.disagreeing.length;
      const wrote = await etcd.fencedPut(DESIRED_KEY, JSON.stringify(out.desired));
      if (!wrote) {
        log.warn({ host: this.#host }, 'a leader write was fenced (a successor leads); not acting as leader');
        this.#wasLeader = false;
        return;
      }
      this.#wasLeader = true;
      this.#desired = out.desired;
      if (out.consumed.length > 0) await etcd.fencedDelete(out.consumed.map((id) => `${INTENTS_PREFIX}${id}`));
      for (const p of out.pages) this.#deps.notifier.page(p);
      for (const e of out.events)
        log[e.kind === 'drain' ? 'warn' : 'info'](
          { service: e.service, kind: e.kind, from: e.from, to: e.to },
          `fleet: ${e.reason}`,
        );
    } catch (err) {
      this.#failed(err, 'lead');
    }
  }

  /** The fleet part of `status`. */
  status(): FleetStatus {
    const d = this.#desired;
    const { services: mine, hash: fpHash } = servicesFingerprint(this.#config);
    const hosts: FleetHostStatus[] = [...this.#hosts.values()]
      .map(({ report: r, live }) => ({
        host: r.host,
        live,
        weights: r.weights,
        verified: r.verified,
        lastSeen: r.at,
        applyError: r.applyError,
        differs: r.servicesHash === fpHash ? [] : orDiffer(servicesDiff(mine, r.services)),
        localDrains: r.localDrains,
      }))
      .sort((a, b) => a.host.localeCompare(b.host));
    return {
      host: this.#host,
      prefix: this.#config.fleet?.prefix ?? '',
      leader: this.#etcdUp() ? this.#leaderName : null,
      isLeader: this.#deps.etcd.isLeader(),
      etcd: this.#etcdUp() ? 'up' : 'down',
      desiredGeneration: d?.generation ?? null,
      hold: d?.hold ?? null,
      hosts,
    };
  }

  /** What the fleet metrics read at scrape time. */
  metricsView(): FleetMetricsView {
    const live = [...this.#hosts.values()].filter((h) => h.live).length;
    const behind = this.#behindSinceMono === null ? 0 : (this.#deps.clock.monotonic() - this.#behindSinceMono) / 1000;
    return {
      leader: this.#deps.etcd.isLeader(),
      hosts: { live, stale: this.#hosts.size - live },
      desired: this.#desired ? { ...this.#desired.weights } : {},
      behindSeconds: behind,
      disagreeingHosts: this.#deps.etcd.isLeader() ? this.#disagreeing : 0,
      etcdUp: this.#etcdUp(),
    };
  }
}

/**
 * The fleet's history with this host's own drains added where it lacks them (same time, service and kind),
 * ordered by time, at most FLEET_HISTORY_LIMIT events. Pure.
 */
function withOwnEvents(fleet: readonly RolloutEvent[], own: readonly RolloutEvent[]): RolloutEvent[] {
  const missing = own.filter((e) => !fleet.some((h) => h.at === e.at && h.service === e.service && h.kind === e.kind));
  if (missing.length === 0) return [...fleet];
  return [...fleet, ...missing].sort((a, b) => a.at - b.at).slice(-FLEET_HISTORY_LIMIT);
}

/** A difference list that says so when the hashes differ but no section does (a fingerprint of another version). */
function orDiffer(diff: string[]): string[] {
  return diff.length > 0 ? diff : ['services differ'];
}

/** Keys sorted by create revision (etcd revisions are decimal strings of up to 64 bits). */
function sortByRevision(kvs: readonly KeyValue[]): KeyValue[] {
  return [...kvs].sort((a, b) => {
    const x = BigInt(a.createRevision);
    const y = BigInt(b.createRevision);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}
