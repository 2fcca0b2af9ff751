/**
 * The runner: the I/O shell around the pure core. Each tick it re-reads
 * weights.yaml when it changed, asks the Observer for the window, calls the
 * pure `decide`, and — only when the weights differ from the live ones or the
 * rendered file drifted from what nginx serves — hands the weights to the
 * Applier. State is committed (state.json) only after an apply succeeded, so
 * a failed reload, a broken nginx.conf or a full disk leaves the live weight
 * and the rollout exactly where they were (docs/design.md "Applying a change").
 *
 * Every tick, command and rollback runs under one lock, so the API, the CLI
 * and the loop never interleave.
 */
import { stat } from 'node:fs/promises';
import type { Clock } from './clock.js';
import type { Config } from './config/types.js';
import { loadConfig } from './config/load.js';
import { checkRolloutEdit, setTarget, setVersion } from './config/edit.js';
import { CanaryError, errors } from './errors.js';
import type { Logger } from './log.js';
import type { Notifier } from './alerts/notifier.js';
import { applyCommand, decide, initialState, soakNeededMs } from './rollout/decide.js';
import type { StateStore } from './rollout/store.js';
import {
  HISTORY_LIMIT,
  type Command,
  type GateResult,
  type Observations,
  type ProbeObservation,
  type Ramp,
  type Phase,
  type RolloutEvent,
  type ServiceState,
  type State,
} from './rollout/types.js';
import type { Observer } from './observe/aggregate.js';
import type { SnapshotStore } from './nginx/snapshot.js';
import type { ApplyResult, NginxPort, SnapshotInfo } from './nginx/types.js';
import type { WeightRaise } from './nginx/rollback-choice.js';
import type { Metrics } from './server/metrics.js';
import { promotedState, promoteRefusal } from './rollout/release.js';
import { runCommand } from './util/exec.js';
import { waitFor, WaitTimeoutError } from './util/wait.js';
import type { FleetHost, FleetStatus } from './fleet/host.js';

/** The probes' view of every service (probe/prober.ts `Prober` is the real one). */
export interface ProbeSource {
  /**
   * Per service, each pool's probes as of `now` (epoch ms); a service's canary probes only from
   * `canarySince[service]` (epoch ms: when its canary build was released) when given.
   */
  observations(
    config: Config,
    now: number,
    canarySince?: Readonly<Record<string, number>>,
  ): Record<string, { primary: ProbeObservation; canary: ProbeObservation }>;
  /** Runs one round of every probe now; resolves when all are recorded (promote waits on fresh /ready answers). */
  probeOnce?(): Promise<void>;
  /** Adopts a reloaded weights.yaml (new servers, paths, intervals). */
  reconfigure(config: Config): void;
}

/**
 * The access-log observations with each service's probe view added (pure).
 * A service the probes do not know keeps no `probes` (its probe gates are inconclusive).
 */
export function withProbes(
  obs: Observations,
  probes: Record<string, { primary: ProbeObservation; canary: ProbeObservation }>,
): Observations {
  const out: Observations = {};
  for (const [name, o] of Object.entries(obs)) {
    const p = Object.hasOwn(probes, name) ? probes[name] : undefined;
    out[name] = p ? { ...o, probes: p } : o;
  }
  return out;
}

/** The services whose canary is drained in `state` (their `X-Canary: always` must not reach it), sorted (pure). */
export function drainedOf(state: State): string[] {
  return Object.entries(state.services)
    .filter(([, s]) => s.phase === 'drained')
    .map(([name]) => name)
    .sort();
}

/** When each service's current canary build was released (epoch ms), for the probes' canary span (pure). */
export function releasedAt(state: State): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, s] of Object.entries(state.services))
    if (typeof s.releasedAt === 'number') out[name] = s.releasedAt;
  return out;
}

/** Everything the runner drives. Each is a port with a real and a test implementation. */
export interface RunnerDeps {
  config: Config;
  store: StateStore;
  /** Everything nginx (nginx/types.ts NginxPort; nginx/apply.ts Applier is the real one). */
  nginx: NginxPort;
  observer: Observer;
  /** The synthetic probes; without them the probe gates (ready, probe failures, crash loop) stay inconclusive and no slice starts. */
  prober?: ProbeSource;
  snapshots: SnapshotStore;
  notifier: Notifier;
  clock: Clock;
  log: Logger;
  metrics?: Metrics;
  /** Called after every tick with what happened (the demo prints it). */
  onTick?: (report: TickReport) => void;
  /**
   * Fleet mode (weights.yaml `fleet:`): the decision comes from the fleet's desired document in etcd
   * (fleet/host.ts), operator commands become fleet intents. Absent: this host walks alone on the pure
   * `decide()` (docs/fleet.md "Data flow in both modes").
   */
  fleet?: FleetHost;
}

/** What one tick did. */
export interface TickReport {
  at: number;
  /** Live weights after the tick, percent. */
  weights: Record<string, number>;
  events: RolloutEvent[];
  summary: Record<string, string>;
  gates: Record<string, GateResult[]>;
  apply: ApplyResult | null;
}

/** One service as `status` and the API show it. */
export interface ServiceStatus {
  name: string;
  weight: number;
  target: number;
  phase: Phase;
  pausedBy: ServiceState['pausedBy'];
  drainReason: string | null;
  /** Epoch ms when the live weight last changed. */
  since: number;
  /** Green soak accumulated at this weight, ms. */
  soakedMs: number;
  /** Soak the current weight needs before the next step, ms. */
  soakNeededMs: number;
  /** What the walk does now and why, one line with numbers. */
  summary: string;
  gates: GateResult[];
  split: Config['services'][number]['split'];
  /** The slow_start emulation ramp in progress (open-source nginx), or null. */
  ramp: Ramp | null;
  /** The canary build's label (`rollout.version`), or null. */
  version: string | null;
  /** In phase `promoted`: the version that was promoted (null when none was set); else null. */
  promotedVersion: string | null;
}

/** The whole status document (`GET /api/v1/services`, `status --json`). */
export interface StatusDocument {
  generation: number;
  lastReloadAt: number;
  services: ServiceStatus[];
  /** Newest last. */
  history: RolloutEvent[];
  /** Fleet mode only: the leader, every host's live weights, generation, last report and apply error. */
  fleet?: FleetStatus;
}

/** Builds the status document from config, state and the last tick's gates and summaries (pure). */
export function statusOf(
  config: Config,
  state: State,
  gates: Record<string, GateResult[]> = {},
  summary: Record<string, string> = {},
  historyLimit = 50,
): StatusDocument {
  return {
    generation: state.generation,
    lastReloadAt: state.lastReloadAt,
    services: config.services.map((svc) => {
      const s = state.services[svc.name];
      const phase = s?.phase ?? 'idle';
      return {
        name: svc.name,
        weight: s?.weight ?? 0,
        target: svc.rollout.target,
        phase,
        pausedBy: s?.pausedBy ?? null,
        drainReason: s?.drainReason ?? null,
        since: s?.since ?? 0,
        soakedMs: s?.soakedMs ?? 0,
        soakNeededMs: soakNeededMs(svc, s),
        summary: summary[svc.name] ?? '',
        gates: gates[svc.name] ?? [],
        split: svc.split,
        ramp: s?.ramp ?? null,
        version: svc.rollout.version,
        promotedVersion: s?.phase === 'promoted' ? (s.promotedVersion ?? null) : null,
      };
    }),
    history: historyLimit > 0 ? state.history.slice(-historyLimit) : [],
  };
}

/** The live weights of a state for the configured services, percent. */
function weightsOf(config: Config, state: State): Record<string, number> {
  return Object.fromEntries(config.services.map((s) => [s.name, state.services[s.name]?.weight ?? 0]));
}

/**
 * A wall-clock jump is a difference above this between the wall and the
 * monotonic time elapsed from one tick (or command) to the next, ms (a chosen
 * bound: NTP slews the clock by far less, and both readings bracket the same
 * interval).
 */
export const CLOCK_JUMP_MS = 1000;

/**
 * The state with its wall-clock anchors moved by `jumpMs` (may be negative):
 * each service's `since`, `lastTickAt` and ramp start, and `lastReloadAt`.
 * History keeps its times. Pure.
 */
export function shiftClockAnchors(state: State, jumpMs: number): State {
  const services: Record<string, ServiceState> = {};
  for (const [name, s] of Object.entries(state.services)) {
    services[name] = {
      ...s,
      since: s.since + jumpMs,
      lastTickAt: s.lastTickAt + jumpMs,
      ...(s.ramp ? { ramp: { ...s.ramp, startedAt: s.ramp.startedAt + jumpMs } } : {}),
    };
  }
  return { ...state, services, lastReloadAt: state.lastReloadAt > 0 ? state.lastReloadAt + jumpMs : 0 };
}

/**
 * Minimum spacing of two state.json writes when nothing but soak progress (and the tick's own clock
 * anchors) changed, ms: 10,000. A chosen value (README "Decisions"): each write is a temp file, two
 * fsyncs and a rename (docs/design.md "weights.yaml", state.json): at one a second they were most of a
 * sidecar's writes at a fixed weight and all its fsyncs (24 per 10 s in bench:walk's fixed window,
 * beside 430 preads of the access log); a crash (not a stop: stop() saves) now loses at most 10 s of
 * green soak, which the soak then serves again — the safe direction. Weight, phase and event changes
 * are saved at once.
 */
const QUIET_SAVE_INTERVAL_MS = 10_000;

/** Longest wait before retrying an apply that failed with the same weights, ms. */
export const MAX_RETRY_BACKOFF_MS = 60_000;

/**
 * Wait before retrying the same failed apply: min_reload_interval doubled per
 * consecutive failure, capped at {@link MAX_RETRY_BACKOFF_MS}. Pure.
 */
export function retryBackoffMs(minReloadIntervalMs: number, failures: number): number {
  if (failures <= 0) return 0;
  return Math.min(MAX_RETRY_BACKOFF_MS, minReloadIntervalMs * 2 ** (failures - 1));
}

/** See the module comment. */
export class Runner {
  #config: Config;
  #state: State;
  #deps: RunnerDeps;
  #lock: Promise<unknown> = Promise.resolve();
  #gates: Record<string, GateResult[]> = {};
  #summary: Record<string, string> = {};
  #configStamp = '';
  #badConfigStamp = '';
  #lastSaveAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  /** A nudge arrived since the current tick started: the next one runs at once. */
  #nudged = false;
  /** The loop {@link start} runs (for {@link nudge}). */
  #loop: (() => Promise<void>) | null = null;
  #ticking: Promise<unknown> = Promise.resolve();
  /** The last failed apply: its weights, how many times in a row, and when (monotonic ms). */
  #failed: { key: string; count: number; atMono: number; why: string } | null = null;
  /** Wall and monotonic readings at the last tick or command (see #followClockJump). */
  #reading: { wall: number; mono: number };

  private constructor(deps: RunnerDeps, state: State) {
    this.#deps = deps;
    this.#config = deps.config;
    this.#state = state;
    this.#reading = { wall: deps.clock.now(), mono: deps.clock.monotonic() };
  }

  /**
   * When the wall clock jumped since the last reading (by more than
   * CLOCK_JUMP_MS against the monotonic clock), moves the state's wall-clock
   * anchors with it (shiftClockAnchors): soak time then grows by the time
   * that really passed — a jump back neither restarts the soak nor freezes it
   * until the clock catches up, a jump forward adds nothing early.
   */
  #followClockJump(): void {
    const wall = this.#deps.clock.now();
    const mono = this.#deps.clock.monotonic();
    const jumpMs = wall - this.#reading.wall - (mono - this.#reading.mono);
    this.#reading = { wall, mono };
    if (Math.abs(jumpMs) <= CLOCK_JUMP_MS) return;
    this.#commit(shiftClockAnchors(this.#state, jumpMs));
    this.#deps.log.warn({ jumpMs }, 'the wall clock jumped; soak and reload spacing follow the monotonic clock');
  }

  /**
   * Loads state.json (or starts fresh at weight 0) and returns a runner.
   * Throws NC_STATE_CORRUPT for an unreadable state file — never a guess.
   */
  static async open(deps: RunnerDeps): Promise<Runner> {
    const loaded = await deps.store.load();
    const state = loaded ?? {
      ...initialState(deps.config, deps.clock.now()),
      generation: await deps.nginx.fileGeneration(),
    };
    const r = new Runner(deps, state);
    // Empty: the first tick re-reads weights.yaml, so an edit made while the caller was starting is not missed.
    r.#configStamp = '';
    deps.observer.reconfigure(deps.config);
    return r;
  }

  /** Current config (the last valid weights.yaml). */
  get config(): Config {
    return this.#config;
  }

  /** Current committed state. */
  get state(): State {
    return this.#state;
  }

  /** The injected clock (the status page reads its time from it, so a test's ManualClock governs ages). */
  get clock(): Clock {
    return this.#deps.clock;
  }

  /** Gate results of the last tick. */
  get gates(): Record<string, GateResult[]> {
    return this.#gates;
  }

  /** The status document. */
  status(historyLimit?: number): StatusDocument {
    const fleet = this.#deps.fleet;
    const doc = statusOf(
      fleet ? fleet.view(this.#config) : this.#config,
      this.#state,
      this.#gates,
      this.#summary,
      historyLimit,
    );
    return fleet ? { ...doc, fleet: fleet.status() } : doc;
  }

  /** Snapshots on disk, newest first. */
  snapshots(): Promise<SnapshotInfo[]> {
    return this.#deps.snapshots.list();
  }

  /**
   * Writes the include file for the committed state without reloading, for a
   * managed nginx that is not started yet. Throws the apply error on failure.
   */
  async writeInitial(): Promise<void> {
    await this.#locked(async () => {
      if (await this.#isLive()) return;
      const generation = this.#state.generation + 1;
      const res = await this.#deps.nginx.writeInitial({
        weights: weightsOf(this.#config, this.#state),
        drained: drainedOf(this.#state),
        generation,
        reason: 'initial render',
      });
      if (!res.ok) throw res.error;
      this.#state = { ...this.#state, generation };
      await this.#save(true);
    });
  }

  /** Runs one tick now (the loop calls this; tests call it directly). Never throws. */
  tick(): Promise<TickReport> {
    const p = this.#locked(() => this.#tick());
    this.#ticking = p;
    return p;
  }

  /**
   * Starts the loop: a tick every `intervalMs` (default: half of min_reload_interval, at most 1 s), or
   * sooner after {@link nudge}.
   */
  start(intervalMs = Math.min(1000, Math.max(50, this.#config.nginx.minReloadIntervalMs / 2))): void {
    if (this.#running) return;
    this.#running = true;
    const loop = async (): Promise<void> => {
      if (!this.#running) return;
      this.#timer = undefined;
      this.#nudged = false;
      await this.tick();
      if (this.#running) this.#timer = setTimeout(() => void loop(), this.#nudged ? 0 : intervalMs);
    };
    this.#loop = loop;
    void loop();
  }

  /**
   * Runs the next tick now instead of at the next interval — at once when the
   * loop is waiting, right after the tick in progress otherwise. The sidecar
   * calls it when the access log brought canary failures (Observer
   * canaryFailures), so a drain waits for evidence, not for the clock: with
   * ticks every 1 s, a canary answering only 5xx at 20 attempts/s would
   * otherwise get up to 20 more attempts before the tick that drains it.
   * No-op when the loop is not running; several nudges before the tick runs
   * are one.
   */
  nudge(): void {
    if (!this.#running || this.#nudged) return;
    this.#nudged = true;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      const loop = this.#loop;
      this.#timer = setTimeout(() => void loop?.(), 0);
    }
  }

  /** Stops the loop and waits for a tick in progress. Never touches nginx. */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    await this.#ticking.catch(() => undefined);
    await this.#lock.catch(() => undefined);
    await this.#save(true);
  }

  /**
   * Applies an operator command (pause, resume, abort). A command that changes
   * the weight is applied to nginx before it is committed; throws the apply
   * error (nothing committed) when that fails.
   */
  async command(cmd: Command): Promise<ServiceStatus> {
    const fleet = this.#deps.fleet;
    if (fleet) {
      this.#serviceStatus(cmd.service);
      const sent = this.#deps.clock.now();
      await this.#sendToFleet(fleet, { kind: cmd.kind, service: cmd.service }, `${cmd.kind} ${cmd.service}`);
      await this.#fleetCaughtUp(
        fleet,
        (d) =>
          d.state.history.some(
            (e) => e.service === cmd.service && e.at >= sent && (e.kind === cmd.kind || e.kind === 'drain'),
          ) ||
          (cmd.kind === 'pause' && d.state.services[cmd.service]?.phase === 'paused') ||
          (cmd.kind === 'abort' && d.state.services[cmd.service]?.phase === 'drained'),
      );
      return this.#serviceStatus(cmd.service);
    }
    return this.#locked(async () => {
      this.#followClockJump();
      const now = this.#deps.clock.now();
      const r = applyCommand(this.#config, this.#state, cmd, now);
      if (r.changed) {
        const res = await this.#apply(weightsOf(this.#config, r.state), `operator ${cmd.kind}`, r.state);
        if (!res.ok) throw res.error;
        this.#commit({ ...r.state, generation: res.generation, lastReloadAt: now });
      } else {
        this.#commit(r.state);
      }
      this.#afterEvents(r.events);
      await this.#save(true);
      return this.#serviceStatus(cmd.service);
    });
  }

  /**
   * Sets a service's target by editing weights.yaml in place (comments kept,
   * atomic), then ticks so the change takes effect. Throws ConfigError or
   * NC_UNKNOWN_SERVICE (file unchanged).
   */
  async setTarget(service: string, weight: number): Promise<{ from: number; to: number; status: ServiceStatus }> {
    const fleet = this.#deps.fleet;
    if (fleet) {
      const from = this.#serviceStatus(service).target;
      const to = await checkRolloutEdit(this.#config.file, service, { key: 'target', value: weight });
      await this.#sendToFleet(fleet, { kind: 'target', service, weight: to }, `target ${service} ${to}`);
      await this.#fleetCaughtUp(fleet, (d) => d.targets[service] === to);
      return { from, to, status: this.#serviceStatus(service) };
    }
    const r = await this.#locked(() => setTarget(this.#config.file, service, weight));
    await this.tick();
    return { ...r, status: this.#serviceStatus(service) };
  }

  /**
   * Sets a service's canary version (`rollout.version`) by editing weights.yaml in place, as
   * {@link setTarget} does, then ticks: a new version is a new canary build, walked from the slice.
   * Throws ConfigError (a version outside the safe characters; file unchanged) or NC_UNKNOWN_SERVICE.
   */
  async setVersion(
    service: string,
    version: string,
  ): Promise<{ from: string | null; to: string; status: ServiceStatus }> {
    const fleet = this.#deps.fleet;
    if (fleet) {
      const from = this.#serviceStatus(service).version;
      await checkRolloutEdit(this.#config.file, service, { key: 'version', value: version });
      await this.#sendToFleet(fleet, { kind: 'version', service, version }, `release ${service} ${version}`);
      await this.#fleetCaughtUp(fleet, (d) => d.versions[service] === version);
      return { from, to: version, status: this.#serviceStatus(service) };
    }
    const r = await this.#locked(() => setVersion(this.#config.file, service, version));
    await this.tick();
    return { ...r, status: this.#serviceStatus(service) };
  }

  /**
   * Ends a release that reached its target (docs/release.md): checks the
   * preconditions (rollout/release.ts promoteRefusal: phase complete at the
   * target, no red gate), runs `rollout.promote_command` when set (no shell,
   * bounded by rollout.promote_timeout, output logged), waits up to that
   * timeout for a fresh `/ready` 200 from every primary server, then, under
   * the lock and with the preconditions checked again, applies canary 0 and
   * commits phase `promoted`. Not a drain: no page; counted in
   * `nginx_canary_promotions_total`. The command and the wait run outside
   * the lock, so ticks (and drains) go on meanwhile.
   *
   * @throws CanaryError NC_UNKNOWN_SERVICE; NC_PROMOTE_REFUSED with the reason and the fix (nothing
   *   changed); the apply error when nginx could not be changed (nothing committed).
   */
  async promote(service: string): Promise<ServiceStatus> {
    const fleet = this.#deps.fleet;
    const svcNow = () => {
      const config = fleet ? fleet.view(this.#config) : this.#config;
      const svc = config.services.find((s) => s.name === service);
      if (!svc) throw errors.unknownService(service);
      return svc;
    };
    const check = (primaryReady: boolean | null): void => {
      const svc = svcNow();
      const refusal = promoteRefusal(svc, this.#state.services[service], this.#gates[service] ?? [], primaryReady);
      if (refusal) throw errors.promoteRefused(service, refusal.reason, refusal.fix);
    };
    await this.#locked(() => Promise.resolve(check(true)));
    const svc = svcNow();
    const log = this.#deps.log.child({ service, component: 'promote' });
    const cmd = svc.rollout.promoteCommand;
    if (cmd !== null) {
      log.info({ command: cmd }, 'running rollout.promote_command');
      const r = await runCommand(cmd, svc.rollout.promoteTimeoutMs);
      log[r.code === 0 ? 'info' : 'error'](
        { command: cmd, code: r.code, timedOut: r.timedOut, durationMs: Math.round(r.durationMs), output: r.output },
        'rollout.promote_command finished',
      );
      if (r.code !== 0) {
        throw errors.promoteRefused(
          service,
          `rollout.promote_command ${r.timedOut ? `ran past rollout.promote_timeout (${svc.rollout.promoteTimeoutMs} ms)` : `exited with ${r.code ?? 'no code'}`}: ${r.output.split('\n').slice(-5).join(' / ') || '(no output)'}`,
          'Fix the deploy of the canary build onto the primary servers, then promote again',
        );
      }
    }
    const primaryReady = async (): Promise<boolean | null> => {
      const prober = this.#deps.prober;
      if (!prober) return null;
      await prober.probeOnce?.();
      return prober.observations(this.#config, this.#deps.clock.now())[service]?.primary.ready ?? null;
    };
    let ready: boolean | null = null;
    try {
      await waitFor(async () => (ready = await primaryReady()) === true, {
        timeoutMs: svc.rollout.promoteTimeoutMs,
        intervalMs: Math.min(1000, svc.probe.intervalMs),
        what: `every primary server of ${service} to answer /ready with 200`,
      });
    } catch (err) {
      if (!(err instanceof WaitTimeoutError)) throw err;
    }
    if (fleet) {
      // The command ran once, here; the leader ends the release on every host (canary 0, promoted).
      check(ready);
      await this.#sendToFleet(fleet, { kind: 'promote', service }, `promote ${service}`);
      await this.#fleetCaughtUp(fleet, (d) => d.state.services[service]?.phase === 'promoted');
      this.#deps.metrics?.promotions.inc({ service });
      return this.#serviceStatus(service);
    }
    return this.#locked(async () => {
      this.#followClockJump();
      check(ready);
      const now = this.#deps.clock.now();
      const prev = this.#state.services[service];
      if (!prev) throw errors.unknownService(service);
      const next = promotedState(svcNow(), prev, now);
      const event: RolloutEvent = {
        at: now,
        service,
        kind: 'promote',
        from: prev.weight,
        to: 0,
        reason: `promoted${next.promotedVersion ? ` ${next.promotedVersion}` : ''}: every primary server answers /ready; canary ${prev.weight} % → 0 %, the primary serves the build`,
        gates: this.#gates[service] ?? [],
      };
      const state: State = {
        ...this.#state,
        services: { ...this.#state.services, [service]: next },
        history: [...this.#state.history, event].slice(-HISTORY_LIMIT),
      };
      const res = await this.#apply(weightsOf(this.#config, state), `operator promote of ${service}`, state);
      if (!res.ok) throw res.error;
      this.#commit({ ...state, generation: res.generation, lastReloadAt: now });
      this.#deps.metrics?.promotions.inc({ service });
      this.#afterEvents([event]);
      await this.#save(true);
      return this.#serviceStatus(service);
    });
  }

  /**
   * Restores a snapshot and reloads: `id`, or by default the newest snapshot
   * older than the live config that raises no canary weight (nginx/rollback-choice.ts).
   * The walk's state follows what was restored: each service's live weight
   * becomes the snapshot's, paused by the operator, so the sidecar does not
   * walk away from it (a drained canary stays unpaged but paused at 0).
   *
   * @returns the restored snapshot and the canary weights it raised (non-empty only for a named one).
   * @throws CanaryError NC_SNAPSHOT_NONE_OLDER / NC_ROLLBACK_RAISES / NC_SNAPSHOT_NOT_FOUND /
   *   NC_SNAPSHOT_INVALID when no snapshot is chosen (nothing changed); NC_ROLLBACK_FAILED naming the
   *   stage and nginx's output when the restore stopped (the previous config is back when it says so).
   */
  async rollback(id?: string): Promise<{ snapshot: SnapshotInfo; raises: WeightRaise[] }> {
    return this.#locked(async () => {
      this.#followClockJump();
      const res = await this.#deps.nginx.rollback(id);
      if (!res.ok) {
        if (res.stage === 'select' || res.snapshot === null) throw res.error;
        throw errors.rollbackFailed(res.snapshot.id, res.stage, res.error.message, res.restored);
      }
      const snap = res.snapshot;
      const now = this.#deps.clock.now();
      const services: Record<string, ServiceState> = { ...this.#state.services };
      const events: RolloutEvent[] = [];
      for (const svc of this.#config.services) {
        const prev = services[svc.name];
        const weight = snap.weights[svc.name] ?? prev?.weight ?? 0;
        const firstSlice = Math.min(svc.rollout.target, svc.rollout.slice);
        const resumePhase =
          weight === 0 ? 'idle' : weight >= svc.rollout.target ? 'complete' : weight <= firstSlice ? 'slice' : 'step';
        services[svc.name] = {
          weight,
          phase: 'paused',
          pausedBy: 'operator',
          resumePhase,
          target: svc.rollout.target,
          since: weight === prev?.weight ? prev.since : now,
          soakedMs: weight === prev?.weight ? prev.soakedMs : 0,
          lastTickAt: Math.max(prev?.lastTickAt ?? now, now),
          drainReason: null,
          ramp: null,
        };
        events.push({
          at: now,
          service: svc.name,
          kind: 'rollback',
          from: prev?.weight ?? 0,
          to: weight,
          reason: `operator rollback to snapshot ${snap.id}; walk paused (resume to continue)`,
          gates: [],
        });
      }
      this.#commit({
        ...this.#state,
        services,
        generation: snap.generation,
        lastReloadAt: now,
        history: [...this.#state.history, ...events].slice(-HISTORY_LIMIT),
      });
      this.#deps.metrics?.rollbacks.inc({ reason: 'operator' });
      this.#afterEvents(events);
      await this.#save(true);
      return { snapshot: snap, raises: res.raises };
    });
  }

  async #tick(): Promise<TickReport> {
    const { clock, observer, log } = this.#deps;
    let apply: ApplyResult | null = null;
    let events: RolloutEvent[] = [];
    try {
      this.#followClockJump();
      await this.#maybeReloadConfig();
      const now = clock.now();
      const config = this.#config;
      const logObs = observer.observations(config, this.#state, now);
      const obs = this.#deps.prober
        ? withProbes(logObs, this.#deps.prober.observations(config, now, releasedAt(this.#state)))
        : logObs;
      const opts = { emulateSlowStart: (await this.#deps.nginx.flavor()) === 'oss' };
      const d = this.#deps.fleet
        ? await this.#deps.fleet.decide({ config, state: this.#state, obs, now, opts })
        : decide(config, this.#state, obs, now, opts);
      this.#gates = d.gates;
      this.#summary = d.summary;
      const drift = d.changed ? false : !(await this.#isLive());
      const key = JSON.stringify(d.weights);
      const backoff =
        this.#failed?.key === key ? retryBackoffMs(config.nginx.minReloadIntervalMs, this.#failed.count) : 0;
      const backingOff = this.#failed !== null && backoff > 0 && clock.monotonic() - this.#failed.atMono < backoff;
      // A drift right after a reload (nginx restarted, a hand edit) waits for the applier's own
      // min_reload_interval, counted from its reload signal: trying now would only fail at stage
      // `interval` and be logged and counted as a failed apply.
      const reconcileWaitMs = drift && !backingOff ? await this.#deps.nginx.reloadWaitMs({ weights: d.weights }) : 0;
      if ((d.changed || drift) && backingOff) {
        // The same change failed moments ago: hold (no reload storm) and retry after the backoff.
        const waitS = ((backoff - (clock.monotonic() - (this.#failed?.atMono ?? 0))) / 1000).toFixed(1);
        this.#summary = this.#notApplied(d, `retrying in ${waitS} s`);
      } else if (d.changed || (drift && reconcileWaitMs === 0)) {
        const reason = d.changed
          ? d.events.map((e) => `${e.service}: ${e.kind} ${e.from} → ${e.to}`).join('; ')
          : 'reconcile: the rendered file or the live generation drifted';
        apply = await this.#apply(d.weights, reason, d.state);
        if (apply.ok) {
          this.#failed = null;
          this.#commit({ ...d.state, generation: apply.generation, lastReloadAt: now });
          events = d.events;
        } else {
          this.#failed = {
            key,
            count: this.#failed?.key === key ? this.#failed.count + 1 : 1,
            atMono: clock.monotonic(),
            why: `${apply.stage}: ${apply.error.message}`,
          };
          this.#summary = this.#notApplied(d, 'retrying');
          events = this.#recordApplyFailure(d.weights, apply, now);
        }
        for (const p of d.pages) {
          const delivered = apply.ok
            ? p
            : { ...p, summary: `${p.summary} — DRAIN NOT APPLIED: ${apply.error.message}` };
          this.#deps.notifier.page(delivered);
        }
      } else {
        this.#commit(d.state);
        events = d.events;
        for (const p of d.pages) this.#deps.notifier.page(p);
        if (reconcileWaitMs > 0) {
          const note = `; nginx drifted from the rendered weights: reconcile in ${reconcileWaitMs} ms (min_reload_interval)`;
          this.#summary = Object.fromEntries(Object.entries(d.summary).map(([k, v]) => [k, `${v}${note}`]));
          log.info(
            { waitMs: reconcileWaitMs },
            'nginx drifted from the rendered weights; reconcile after min_reload_interval',
          );
        }
      }
      // Counters and logs before the (awaited) save, so a scrape never sees the new state with old counters.
      this.#afterEvents(events);
      this.#deps.fleet?.settled(this.#state, this.#failed?.why ?? null);
      await this.#save(apply !== null || events.length > 0);
    } catch (err) {
      log.error({ err }, 'tick failed; the walk holds and retries on the next tick');
    }
    const report: TickReport = {
      at: clock.now(),
      weights: weightsOf(this.#config, this.#state),
      events,
      summary: this.#summary,
      gates: this.#gates,
      apply,
    };
    this.#deps.onTick?.(report);
    return report;
  }

  /**
   * Summaries while a decided change is not live because its apply failed: a service whose weight was to
   * change says it holds at its live weight and why, with what was decided after it.
   */
  #notApplied(d: { weights: Record<string, number>; summary: Record<string, string> }, retry: string) {
    const why = this.#failed?.why ?? 'apply failed';
    return Object.fromEntries(
      Object.entries(d.summary).map(([k, v]) => {
        const live = this.#state.services[k]?.weight ?? 0;
        const want = d.weights[k] ?? live;
        return [
          k,
          want === live
            ? `${v}; last apply failed (${why}), ${retry}`
            : `holding at ${live} %: ${live} → ${want} % not applied (${why}); ${retry}. Decided: ${v}`,
        ];
      }),
    );
  }

  /** Applies `weights` for the state `next` will be once they are live (its drained services lock their override). */
  async #apply(weights: Record<string, number>, reason: string, next: State): Promise<ApplyResult> {
    const res = await this.#deps.nginx.apply({
      weights,
      drained: drainedOf(next),
      generation: this.#state.generation + 1,
      reason,
    });
    const m = this.#deps.metrics;
    if (res.ok) {
      m?.reloads.inc({ result: 'ok' });
      m?.reloadDuration.observe(res.durationMs / 1000);
      this.#deps.log.info(
        { generation: res.generation, weights, durationMs: res.durationMs, snapshot: res.snapshotId },
        'applied',
      );
    } else {
      m?.reloads.inc({ result: res.stage });
      if (res.restored) m?.rollbacks.inc({ reason: res.stage });
      this.#deps.log.error(
        { stage: res.stage, code: res.error.code, err: res.error.message, restored: res.restored, weights },
        'apply failed; weights held',
      );
    }
    return res;
  }

  /**
   * Adds an `apply_failed` event for each service whose weight was to change,
   * or for every service when the apply was a reconcile (no weight change);
   * a failure identical to the service's last event is not repeated.
   */
  #recordApplyFailure(
    weights: Record<string, number>,
    res: Extract<ApplyResult, { ok: false }>,
    now: number,
  ): RolloutEvent[] {
    const events: RolloutEvent[] = [];
    const reason = `${res.stage}: ${res.error.message}${res.restored ? ' (snapshot restored)' : ''}`;
    const liveOf = (service: string): number => this.#state.services[service]?.weight ?? 0;
    const changing = Object.keys(weights).filter((s) => weights[s] !== liveOf(s));
    const affected = changing.length > 0 ? changing : Object.keys(weights);
    for (const service of affected) {
      const from = liveOf(service);
      const to = weights[service] ?? from;
      const last = [...this.#state.history].reverse().find((e) => e.service === service);
      if (last?.kind === 'apply_failed' && last.reason === reason && last.to === to) continue;
      events.push({ at: now, service, kind: 'apply_failed', from, to, reason, gates: this.#gates[service] ?? [] });
    }
    if (events.length > 0)
      this.#commit({ ...this.#state, history: [...this.#state.history, ...events].slice(-HISTORY_LIMIT) });
    return events;
  }

  #afterEvents(events: RolloutEvent[]): void {
    for (const e of events) {
      if (e.kind === 'drain' || e.kind === 'abort') {
        this.#deps.metrics?.drains.inc({
          service: e.service,
          reason: e.kind === 'abort' ? 'operator' : (this.#state.services[e.service]?.drainReason ?? 'gate'),
        });
      }
      const level = e.kind === 'drain' || e.kind === 'apply_failed' ? 'warn' : 'info';
      this.#deps.log[level]({ service: e.service, kind: e.kind, from: e.from, to: e.to, gates: e.gates }, e.reason);
    }
  }

  /** Writes an operator intent to etcd (fleet mode). Throws NC_FLEET_UNAVAILABLE when etcd cannot take it. */
  async #sendToFleet(fleet: FleetHost, intent: Parameters<FleetHost['send']>[0], what: string): Promise<void> {
    try {
      await fleet.send(intent);
    } catch (err) {
      throw errors.fleetUnavailable(what, err);
    }
  }

  /**
   * Waits (bounded: two lease TTLs) until the fleet's desired document shows `done`, so the CLI answers
   * with the leader's decision; past the bound the command stays queued in etcd and the answer says what
   * the fleet shows now.
   */
  async #fleetCaughtUp(fleet: FleetHost, done: (d: NonNullable<FleetHost['desired']>) => boolean): Promise<void> {
    const ttl = this.#config.fleet?.leaseTtlMs ?? 5000;
    await waitFor(() => (fleet.desired ? done(fleet.desired) : false), {
      timeoutMs: 2 * ttl,
      intervalMs: 50,
      what: 'the fleet leader to take the command',
    }).catch((err: unknown) => {
      if (!(err instanceof WaitTimeoutError)) throw err;
      this.#deps.log.warn({}, 'the fleet leader has not taken the command yet; it stays queued in etcd');
    });
  }

  #commit(state: State): void {
    this.#state = state;
  }

  async #save(force: boolean): Promise<void> {
    const now = this.#deps.clock.monotonic();
    if (!force && now - this.#lastSaveAt < QUIET_SAVE_INTERVAL_MS) return;
    this.#lastSaveAt = now;
    await this.#deps.store.save(this.#state);
  }

  #serviceStatus(name: string): ServiceStatus {
    const s = this.status(0).services.find((x) => x.name === name);
    if (!s) throw errors.unknownService(name);
    return s;
  }

  async #maybeReloadConfig(): Promise<void> {
    const file = this.#config.file;
    const stamp = await this.#stampOf(file);
    if (stamp === this.#configStamp || stamp === this.#badConfigStamp) return;
    try {
      const next = await loadConfig(file);
      if (JSON.stringify(next.fleet) !== JSON.stringify(this.#config.fleet))
        throw errors.usage(
          `the fleet: section of ${file} changed`,
          'A fleet section change (etcd endpoints, prefix, host, lease_ttl) needs a restart of the sidecar: `systemctl restart nginx-canary`',
        );
      // Refuses (ConfigError) changes to nginx paths and listen addresses, which need a restart.
      await this.#deps.nginx.reconfigure(next);
      this.#config = next;
      this.#configStamp = stamp;
      this.#badConfigStamp = '';
      this.#deps.observer.reconfigure(next);
      this.#deps.prober?.reconfigure(next);
      this.#deps.fleet?.reconfigure(next);
      this.#deps.log.info({ file }, 'weights.yaml reloaded');
    } catch (err) {
      this.#badConfigStamp = stamp;
      const msg = err instanceof CanaryError ? err.toUserString() : String(err);
      this.#deps.log.error(
        { file, err: msg },
        'weights.yaml is invalid; keeping the last valid config, nothing changed',
      );
    }
  }

  async #stampOf(file: string): Promise<string> {
    try {
      const s = await stat(file);
      return `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch {
      return 'missing';
    }
  }

  /** True when nginx serves exactly what the committed state renders (file and live generation). */
  #isLive(): Promise<boolean> {
    return this.#deps.nginx.isLive({
      weights: weightsOf(this.#config, this.#state),
      drained: drainedOf(this.#state),
      generation: this.#state.generation,
      reason: 'reconcile check',
    });
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }
}
