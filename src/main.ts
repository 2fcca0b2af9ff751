/**
 * Composition root for `nginx-canary run` (and the demo): builds the real
 * adapters, starts the access-log follower, the decision loop and the API,
 * and closes them on request. Stopping never changes nginx — except that a
 * `managed: true` nginx (demo, dev) is stopped with the sidecar.
 */
import { access, readFile } from 'node:fs/promises';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { Config } from './config/types.js';
import { ConfigError, errors } from './errors.js';
import { acquireLocks, releaseLocks, sidecarLockFiles } from './lock.js';
import type { Logger } from './log.js';
import { nopNotifier, WebhookNotifier, type Notifier } from './alerts/notifier.js';
import { StateStore } from './rollout/store.js';
import { Observer } from './observe/aggregate.js';
import { Prober } from './probe/prober.js';
import { LogFollower } from './observe/follow.js';
import { ensureAccessLog } from './observe/logfile.js';
import { NginxCommand } from './nginx/ctl.js';
import { statfsDisk } from './nginx/disk.js';
import { SnapshotStore } from './nginx/snapshot.js';
import { LOG_SAMPLE_VARIABLE } from './nginx/model.js';
import { Applier } from './nginx/apply.js';
import { preparePrefix, startNginx, type ManagedNginx } from './nginx/process.js';
import { Runner, type TickReport } from './runner.js';
import { Metrics } from './server/metrics.js';
import { buildApp } from './server/app.js';
import { checkListenToken, readTokenFile } from './server/token.js';
import type { FastifyInstance } from 'fastify';
import type { DiskStat, NginxCtl } from './nginx/types.js';
import type { FleetEtcd } from './fleet/etcd.js';
import { locateIn } from './config/load.js';
import { noEtcdAnswersProblem } from './config/validate.js';
import { FleetHost } from './fleet/host.js';
import { packageVersion } from './cli/version.js';

/**
 * How often the access-log follower reads while lines flow, ms (observe/follow.ts `pollMs`). 20 ms: a
 * canary failure reaches the gate within ~20 ms (then Runner.nudge judges it at once), and after one the
 * follower reads every 10 ms for 500 ms (LogFollower.hurry). A chosen value, by measurement
 * (test/e2e/drain-fast.test.ts, issue 13: a canary answering only 5xx drains after at most 5 of its
 * attempts): at 50 ms the fault's first 4 failures at 40–60 canary attempts/s often fell in one poll, and
 * the decision saw 4–6 of them; at 20 ms it saw 4–5. The cost is the reads: +6 ms CPU/s against 50 ms
 * (a follower alone, 50 vs 20 reads/s: ~200 µs per read; `npm run bench`, "follower reads"). That cost
 * is now paid only by a quiet log: once reads fill up (13,000 lines/s in `npm run bench:walk`) the
 * follower waits {@link ACCESS_LOG_BUSY_POLL_MS} instead. The follower's own default of 250 ms let a
 * failing canary take 5 more attempts at 20/s before its drain.
 */
export const ACCESS_LOG_POLL_MS = 20;
/**
 * How often the follower reads a quiet access log, ms (observe/follow.ts `quietPollMs`): after a read that
 * found nothing, while its fs.watch on the log's directory is armed. The watch wakes the follower
 * {@link ACCESS_LOG_POLL_MS} after nginx writes, as soon as a 20 ms poll would have read the line, so this
 * poll only backs up a write inotify does not report. 250 ms (the follower's own default, chosen): an idle
 * sidecar read its log 50 times a second, ~2.8 % of a core on the main thread alone (strace of an idle
 * sidecar: 48 reads and ~240 event-loop wake-ups a second; README "Benchmarks").
 */
export const ACCESS_LOG_QUIET_POLL_MS = 250;
/**
 * How often the follower reads a busy access log, ms (observe/follow.ts `busyPollMs`): after a read of at
 * least {@link ACCESS_LOG_BUSY_BYTES}. Each poll costs a few wake-ups (a timer, the thread-pool read and
 * its completion) that do not shrink with the lines read: ~400 µs of sidecar CPU per poll on the 2-vCPU
 * bench box (`npm run bench:walk --fixed-only`, an A/B of 20 against 100 ms polls: 74–75 against 48–53
 * ticks of sidecar CPU over 15 s at 9,000–11,500 requests/s). At a busy nginx that fixed cost is what
 * keeps the sidecar above 5 % of nginx's CPU (issue 13). The price: while busy, a canary failure reaches
 * the gate up to 100 ms after nginx logs it (then LogFollower.hurry reads every 10 ms); at 10,000
 * requests/s and a 5 % slice that is ~25 more canary attempts on average before a drain's decision,
 * beside the ~100 the drain's apply (~200 ms) lets through anyway. A chosen value, by that measurement.
 */
export const ACCESS_LOG_BUSY_POLL_MS = 100;
/**
 * Bytes one read must hold for the next one to wait {@link ACCESS_LOG_BUSY_POLL_MS}: 32 KiB, ~190 lines of
 * the gates' `log_format nginx_canary` (~170 bytes a line). So the follower polls every 100 ms from
 * ~1.6 MB/s (~9,600 lines/s, read in 20 ms polls) and every 20 ms again below ~330 kB/s (~1,900 lines/s,
 * read in 100 ms polls); test/e2e/drain-fast.test.ts's ~800 requests/s stay at 20 ms. Chosen.
 */
export const ACCESS_LOG_BUSY_BYTES = 32 * 1024;
/**
 * {@link ACCESS_LOG_BUSY_BYTES} for a log nginx samples at `samplePercent` (nginx.access_log_sample,
 * 1–100): the same requests a second make the log busy, whatever share of them it writes, so the
 * threshold shrinks with the share — at 20 %, 6.5 KiB (~38 sampled lines standing for ~190 requests).
 * Keyed on bytes alone, a sampled log at 17,000 requests/s (~1,700 lines/s at 10 %) counted as quiet
 * and was read every 20 ms, which cost more CPU than the sampling saved (README "Benchmarks").
 * Bytes, ≥ 256. Read once when the sidecar starts.
 */
export function accessLogBusyBytes(samplePercent: number): number {
  const share = samplePercent > 0 && samplePercent < 100 ? samplePercent / 100 : 1;
  return Math.max(256, Math.round(ACCESS_LOG_BUSY_BYTES * share));
}
/** Options of {@link startSidecar}. */
export interface SidecarOptions {
  log: Logger;
  clock?: Clock;
  /** Serve the API on config.sidecar.listen (default true). */
  listen?: boolean;
  /** Tick interval in ms (default: half of min_reload_interval, at most 1 s). */
  tickMs?: number;
  onTick?: (r: TickReport) => void;
  /** Override the notifier (tests). */
  notifier?: Notifier;
  /** Override the disk guard's statfs (tests). */
  disk?: DiskStat;
}

/** A running sidecar. */
export interface SidecarHandle {
  runner: Runner;
  app: FastifyInstance;
  metrics: Metrics;
  /** Base URL of the API, e.g. http://127.0.0.1:9464 (empty when not listening). */
  url: string;
  /** The managed nginx, when config.nginx.managed. */
  nginx: ManagedNginx | null;
  /** Stops the loop, the follower and the API (and a managed nginx). Never reloads nginx. */
  close(): Promise<void>;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads the bearer token from token_file, or null when none is configured.
 *
 * @throws CanaryError NC_TOKEN_FILE / NC_TOKEN_FILE_MODE (see server/token.ts readTokenFile).
 */
async function readToken(config: Config): Promise<string | null> {
  return config.sidecar.tokenFile === null ? null : readTokenFile(config.sidecar.tokenFile);
}

/** Options of {@link openRunner}. */
export interface RunnerOptions {
  clock: Clock;
  /** Parent logger; parts log under `component: apply | probe | runner`. */
  log: Logger;
  /** The nginx port (a wrapper in tests). */
  ctl: NginxCtl;
  notifier: Notifier;
  /** The disk guard's statfs (default: the real one). */
  disk?: DiskStat;
  /** How long a reload may take to prove its generation live, ms (default: the Applier's 10 s). */
  verifyTimeoutMs?: number;
  /** Register Node's process metrics (default true; false for several sidecars in one test process). */
  defaultMetrics?: boolean;
  onTick?: (r: TickReport) => void;
}

/** A Runner and the parts around it, built as `run` builds them; nothing started. */
export interface RunnerParts {
  runner: Runner;
  metrics: Metrics;
  applier: Applier;
  store: StateStore;
  snapshots: SnapshotStore;
  observer: Observer;
  /** Not started: the caller probes once, then starts it (or probes per tick in tests). */
  prober: Prober;
  /** Fleet mode only (weights.yaml `fleet:`): this host's part of the fleet, connected and started. */
  fleet: FleetHost | null;
}

/**
 * Composes the Runner from the real adapters for `config` (state store,
 * snapshot store, applier, observer, prober, metrics that read the runner at
 * scrape time) and opens it (state.json read). Starts no loop, no follower, no
 * probes and no API. Throws NC_STATE_CORRUPT for an unreadable state file.
 */
export async function openRunner(config: Config, opts: RunnerOptions): Promise<RunnerParts> {
  const { clock, log, ctl } = opts;
  const store = new StateStore(config.sidecar.stateFile);
  const snapshots = new SnapshotStore(config.nginx.snapshots.dir, config.nginx.snapshots.keep, config.nginx, clock);
  const applier = new Applier({
    config,
    ctl,
    disk: opts.disk ?? statfsDisk,
    snapshots,
    clock,
    log: log.child({ component: 'apply' }),
    ...(opts.verifyTimeoutMs !== undefined ? { verifyTimeoutMs: opts.verifyTimeoutMs } : {}),
  });
  const observer = new Observer(config);
  // The metrics read the runner at scrape time; the runner moves the counters.
  const ref: { runner?: Runner; fleet?: FleetHost } = {};
  const metrics = new Metrics(
    {
      config: () => ref.runner?.config ?? config,
      state: () => ref.runner?.state ?? { version: 1, generation: 0, lastReloadAt: 0, services: {}, history: [] },
      gates: () => ref.runner?.gates ?? {},
      logLines: () => observer.lineCounts(),
      now: () => clock.now(),
      oldGenerations: () => applier.oldGenerations(),
      ...(config.fleet ? { fleet: () => ref.fleet?.metricsView() ?? null } : {}),
    },
    { defaultMetrics: opts.defaultMetrics ?? true },
  );
  const prober = new Prober(config, {
    clock,
    log: log.child({ component: 'probe' }),
    onResult: (r) => {
      const labels = { service: r.service, pool: r.pool };
      if (r.connectMs !== null) metrics.probeDuration.observe({ ...labels, phase: 'connect' }, r.connectMs / 1000);
      if (r.totalMs !== null) metrics.probeDuration.observe({ ...labels, phase: 'total' }, r.totalMs / 1000);
    },
  });
  // The one place that picks where desired state lives and where evidence comes from
  // (docs/fleet.md "Data flow in both modes"): weights.yaml + state.json and this host's window, or the
  // fleet's desired document in etcd and the merge of every host's snapshots.
  const fleet = config.fleet
    ? await openFleet(config, { clock, log, observer, prober, notifier: opts.notifier })
    : null;
  if (fleet) ref.fleet = fleet;
  const runner = await Runner.open({
    ...(fleet ? { fleet } : {}),
    config,
    store,
    nginx: applier,
    observer,
    prober,
    snapshots,
    notifier: opts.notifier,
    clock,
    log: log.child({ component: 'runner' }),
    metrics,
    ...(opts.onTick ? { onTick: opts.onTick } : {}),
  });
  ref.runner = runner;
  return { runner, metrics, applier, store, snapshots, observer, prober, fleet };
}

/**
 * Connects to the fleet's etcd (bounded: fleet/etcd.ts), claims this host's name and starts the fleet
 * host (watch, campaign). Throws EtcdUnavailableError when no endpoint answers, NC_FLEET_* when the host
 * name is taken or the prefix nests with another fleet's (nothing written).
 */
async function openFleet(
  config: Config,
  deps: { clock: Clock; log: Logger; observer: Observer; prober: Prober; notifier: Notifier },
): Promise<FleetHost> {
  const f = config.fleet;
  if (!f) throw new Error('openFleet needs a fleet section');
  const log = deps.log.child({ component: 'fleet' });
  // Loaded here, not at the top: etcd3 and its gRPC stack are ~24 MiB of resident memory and ~200 ms of
  // start-up (README "Memory"), which a single-host sidecar, the common case, never uses.
  const { EtcdUnavailableError, FleetEtcd } = await import('./fleet/etcd.js');
  let etcd: FleetEtcd;
  try {
    etcd = await FleetEtcd.connect({
      endpoints: f.endpoints,
      prefix: f.prefix,
      host: f.host,
      leaseTtlMs: f.leaseTtlMs,
      monotonic: () => deps.clock.monotonic(),
      log,
    });
  } catch (err) {
    if (!(err instanceof EtcdUnavailableError)) throw err;
    // As `check` words it: the file, the line of fleet.etcd, the endpoints and the fix; nothing was written.
    const text = await readFile(config.file, 'utf8').catch(() => '');
    throw new ConfigError([
      noEtcdAnswersProblem(f.prefix, err.message, locateIn(text, config.file, ['fleet', 'etcd'], 'key')),
    ]);
  }
  const host = new FleetHost({
    etcd,
    config,
    observer: deps.observer,
    prober: deps.prober,
    notifier: deps.notifier,
    clock: deps.clock,
    log,
    version: packageVersion(),
  });
  try {
    await host.start();
  } catch (err) {
    await host.close();
    throw err;
  }
  return host;
}

/**
 * Starts the sidecar on a loaded config. First takes its lock files
 * (src/lock.ts `sidecarLockFiles`: `<state_file>.lock`, then
 * `.nginx-canary.lock` beside nginx.upstreams_file), before anything is read
 * or written; they are released by close() and when the start fails. Throws
 * CanaryError NC_LOCKED when another live sidecar holds either (a dead one's
 * lock is taken over, with a warning), or when nginx cannot run, the state
 * file is corrupt, the token file is unusable or the API port is taken
 * (nothing is changed in any of those cases).
 */
export async function startSidecar(config: Config, opts: SidecarOptions): Promise<SidecarHandle> {
  // Before any lock or file: an open API without a token is refused outright.
  if (opts.listen ?? true) checkListenToken(config.sidecar.listen, config.sidecar.tokenFile);
  const locks = await acquireLocks(sidecarLockFiles(config), { log: opts.log.child({ component: 'lock' }) });
  let sidecar: SidecarHandle;
  try {
    sidecar = await startLocked(config, opts);
  } catch (err) {
    await releaseLocks(locks);
    throw err;
  }
  const close = sidecar.close.bind(sidecar);
  sidecar.close = async () => {
    try {
      await close();
    } finally {
      await releaseLocks(locks);
    }
  };
  return sidecar;
}

/** {@link startSidecar} once its locks are held. */
async function startLocked(config: Config, opts: SidecarOptions): Promise<SidecarHandle> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log;
  const token = await readToken(config);
  const ctl = new NginxCommand(config.nginx);
  await ctl.version();
  const notifier =
    opts.notifier ??
    (config.alerts.webhookUrl
      ? new WebhookNotifier({ url: config.alerts.webhookUrl, log: log.child({ component: 'alerts' }) })
      : nopNotifier);
  const { runner, metrics, observer, prober, fleet } = await openRunner(config, {
    clock,
    log,
    ctl,
    notifier,
    ...(opts.disk ? { disk: opts.disk } : {}),
    ...(opts.onTick ? { onTick: opts.onTick } : {}),
  });

  // Bind the API first: if the port is taken (another sidecar?), nothing has changed yet.
  const app = await buildApp({ runner, metrics, log, token });
  let url = '';
  if (opts.listen ?? true) {
    const { host, port } = config.sidecar.listen;
    try {
      await app.listen({ host, port });
    } catch (err) {
      await app.close();
      await fleet?.close();
      throw errors.listenFailed(host, port, err);
    }
    url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  try {
    return await startServing(config, opts, { runner, metrics, observer, prober, notifier, ctl, app, url, fleet });
  } catch (err) {
    // A start that fails after the API is bound must not leave it open (nor a half-started loop).
    await runner.stop();
    await fleet?.close();
    await prober.stop();
    await app.close();
    throw err;
  }
}

/**
 * Creates the access log 0640 (owned like nginx's other logs there, as root) when it is missing, before
 * nginx — or an `nginx -t` of the sidecar's — would create it 0644 root:root (observe/logfile.ts). True
 * when it did. Never fails the start: a log that cannot be created is left to nginx, with a warning.
 */
async function createAccessLog(file: string, log: Logger): Promise<boolean> {
  try {
    const r = await ensureAccessLog(file);
    if (!r.created) return false;
    const owner = r.owner === null ? 'ownership as created' : `owner ${r.owner.uid}:${r.owner.gid} of ${r.owner.from}`;
    log.info({ file, mode: `0${r.mode.toString(8)}`, owner: r.owner }, `created the access log (0640, ${owner})`);
    return true;
  } catch (err) {
    log.warn({ err, file }, 'could not create the access log; nginx will create it with its own mode and owner');
    return false;
  }
}

/** The parts {@link startLocked} built before the API was bound. */
interface Started {
  runner: Runner;
  metrics: Metrics;
  observer: Observer;
  prober: Prober;
  notifier: Notifier;
  ctl: NginxCommand;
  app: Awaited<ReturnType<typeof buildApp>>;
  url: string;
  fleet: FleetHost | null;
}

/** The rest of {@link startLocked}: managed nginx, the include file, the follower, probes and the tick loop. */
async function startServing(config: Config, opts: SidecarOptions, parts: Started): Promise<SidecarHandle> {
  const { runner, metrics, observer, prober, notifier, ctl, app, url, fleet } = parts;
  const log = opts.log;
  let nginx: ManagedNginx | null = null;
  if (config.nginx.managed && config.nginx.prefix !== null) await preparePrefix(config.nginx.prefix);
  const createdLog = await createAccessLog(config.nginx.accessLog, log);
  if (config.nginx.managed || !(await exists(config.nginx.upstreamsFile))) {
    // The include must exist before nginx can load a config that includes it
    // (adoption: run the sidecar, then add the include line and reload once).
    await runner.writeInitial();
  }
  if (config.nginx.managed) {
    if ((await ctl.generation()) === null) {
      nginx = await startNginx({ binary: config.nginx.binary, conf: config.nginx.conf, prefix: config.nginx.prefix });
    }
  }

  if (createdLog && nginx === null) {
    // A running nginx may still write to a deleted log at that path (the follower could not see that: it
    // asks nginx to reopen only while the path is missing). Reopen now, as logrotate's USR1 does; an
    // nginx that does not log there yet (adoption) opens it on its reload. A managed nginx started just
    // now has opened it already.
    await ctl.reopen().catch((err: unknown) => log.warn({ err }, 'nginx -s reopen after creating the access log'));
  }

  let warnedUnfiltered = false;
  const follower = new LogFollower({
    file: config.nginx.accessLog,
    from: 'end',
    pollMs: ACCESS_LOG_POLL_MS,
    quietPollMs: ACCESS_LOG_QUIET_POLL_MS,
    busyPollMs: ACCESS_LOG_BUSY_POLL_MS,
    busyBytes: accessLogBusyBytes(config.nginx.accessLogSample),
    // The byte path: lines are read in place, no string per line (observe/parse.ts LineCursor; the
    // CPU target in README "Benchmarks", bench:walk).
    onBytes: (buf, start, end) => {
      const failures = observer.canaryFailures();
      observer.addBytes(buf, start, end);
      // Canary failures in this batch: judge them now rather than at the next tick (a drain waits for evidence
      // only), and read the next lines sooner (every 10 ms for 500 ms: LogFollower.hurry), so the attempts a
      // failing canary takes between the crossing 5xx and the decision stay few.
      if (observer.canaryFailures() > failures) {
        runner.nudge();
        follower.hurry();
      }
      if (!warnedUnfiltered && observer.unfilteredLines() > 0) {
        warnedUnfiltered = true;
        log.warn(
          { file: config.nginx.accessLog, access_log_sample: config.nginx.accessLogSample },
          `nginx writes every line to the access log although nginx.access_log_sample is below 100: add \`if=$${LOG_SAMPLE_VARIABLE}\` to the access_log line in nginx.conf (each line counts as one request until then; README "Sampled access log")`,
        );
      }
    },
    // A deleted or moved-away access log that nginx keeps writing elsewhere: ask nginx to reopen it
    // (what logrotate does with USR1); the follower rate-limits this to once a minute.
    reopen: async (why) => {
      log.warn(
        { file: config.nginx.accessLog, why },
        'the access log is not at its path; asking nginx to reopen its logs',
      );
      await ctl.reopen();
    },
    onError: (err) => log.warn({ err }, 'access log follower'),
  });
  await follower.start();
  // One round of probes before the first tick, so it can judge /ready and health (bounded by probe.timeout).
  await prober.probeOnce();
  prober.start();
  runner.start(opts.tickMs);
  log.info(
    { url, services: config.services.map((s) => s.name), generation: runner.state.generation },
    'nginx-canary running',
  );

  return {
    runner,
    app,
    metrics,
    url,
    nginx,
    async close() {
      await runner.stop();
      await fleet?.close();
      await prober.stop();
      await follower.stop();
      await app.close();
      await notifier.flush();
      await nginx?.stop();
    },
  };
}
