/**
 * `nginx-canary demo --fleet <n>`: fleet mode (docs/fleet.md) on one machine.
 * Everything runs on 127.0.0.1, in one fresh temp dir:
 *
 * - a single-member etcd (demo/etcd.ts; `etcd` must be on PATH);
 * - the demo backends, a primary and a canary (demo/backend.ts);
 * - n "hosts" `host-1` … `host-n`, each an nginx (its own prefix, conf and
 *   port, from the repo's nginx/nginx.conf) and a sidecar child process
 *   (`bin/nginx-canary run`) whose weights.yaml has a `fleet:` section
 *   (lease_ttl 2s) — separate processes, as on real hosts;
 * - a front nginx that round-robins over the hosts' nginx, as the load
 *   balancer in front of a fleet does;
 * - bounded background traffic through the front.
 *
 * The fleet walks to its target. The demo watches etcd: every decision of the
 * leader (`desired`) and every change of a host's live weight (`hosts/<host>`)
 * is printed, one line each. Once every host serves the target for 5 s the
 * canary answers 500 and the fleet drains on every host. Ctrl-C or SIGTERM
 * stops everything by pid (sidecars, nginx, etcd) and removes the temp dir.
 * Each host's weights.yaml is written from a template here (the `-c` file is
 * not used): short soaks, so the walk is over in about 20 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import type { CliIo } from '../cli/main.js';
import { loadConfig } from '../config/load.js';
import { FleetEtcd, type KeyValue } from '../fleet/etcd.js';
import { DESIRED_KEY, HOSTS_PREFIX, parseDesired, parseHostReport, type FleetDesired } from '../fleet/protocol.js';
import { NginxCommand } from '../nginx/ctl.js';
import { buildModel } from '../nginx/model.js';
import { startNginx, type ManagedNginx } from '../nginx/process.js';
import { renderUpstreams } from '../nginx/render.js';
import { formatGateValue } from '../rollout/gates.js';
import type { GateResult, RolloutEvent } from '../rollout/types.js';
import { waitFor } from '../util/wait.js';
import { Backend } from './backend.js';
import { findOnPath, freePort, startDemoEtcd, EtcdMissingError } from './etcd.js';

/** The fewest and the most hosts the fleet demo runs. */
export const FLEET_DEMO_HOSTS = { min: 2, max: 5 } as const;
/** The service the demo walks, and its target, percent. */
const SERVICE = 'gateway';
const TARGET = 50;
/** The fleet's key prefix in the demo's etcd. */
const PREFIX = '/nginx-canary/demo';
/** Traffic through the front: requests per second, and a hard cap on the total (chosen bounds). */
const RATE_PER_SECOND = 200;
const MAX_REQUESTS = 500_000;
/** The demo stops by itself after this long unless told otherwise (a chosen bound on what it runs). */
const DEFAULT_DURATION_MS = 10 * 60_000;
/** The longest `--duration` honoured, as the single-host demo. */
const MAX_DURATION_MS = 3 * 3_600_000;
/** How long every host serves the target before the canary fault. */
const FAULT_AFTER_MS = 5000;
/** How long a sidecar may take to answer /healthz after its start, and to exit after SIGTERM (chosen bounds). */
const SIDECAR_START_MS = 20_000;
const SIDECAR_STOP_MS = 5000;

/** The package root: two levels up from src/demo or dist/demo. */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The repo's example nginx.conf, which each host's copy is made from. */
const EXAMPLE_CONF = path.join(ROOT, 'nginx', 'nginx.conf');
/** The listen line of the example nginx.conf each host's copy replaces. */
const EXAMPLE_LISTEN = 'listen 127.0.0.1:18080;';
/** The CLI the sidecars run as (`bin/nginx-canary run`). */
const BIN = path.join(ROOT, 'bin', 'nginx-canary');

/** Options of {@link runFleetDemo}. */
export interface FleetDemoOptions {
  /** Where the demo prints its progress lines. */
  io: CliIo;
  /** How many hosts, {@link FLEET_DEMO_HOSTS}.min to .max. */
  hosts: number;
  /** Stop by itself after this many ms (default 10 minutes; capped at 3 h). */
  durationMs?: number;
}

/** Ports of one host. */
interface HostPorts {
  nginx: number;
  status: number;
  api: number;
}

/**
 * The weights.yaml of one demo host: the repo demo's `gateway` service with
 * short soaks, no slow_start (no ramp of reloads) and a connect_p95 hold of
 * 250 ms (a loopback connect measured on a machine busy with n sidecars and
 * five nginx), nginx under the host's dir (started by the demo:
 * `managed: false`), and the `fleet:` section. Pure.
 */
export function fleetHostYaml(o: {
  host: string;
  ports: HostPorts;
  primary: string;
  canary: string;
  etcd: string;
}): string {
  return `# nginx-canary demo --fleet: ${o.host} (written by the demo; removed when it stops)
nginx:
  binary: nginx
  conf: conf/nginx.conf
  prefix: prefix
  managed: false
  upstreams_file: conf/conf.d/nginx-canary.conf
  access_log: prefix/logs/canary.json
  status_listen: 127.0.0.1:${o.ports.status}
  snapshots: { dir: snapshots, keep: 20 }
  min_reload_interval: 1s
sidecar:
  listen: 127.0.0.1:${o.ports.api}
  state_file: state/state.json
  token_file: ~
alerts:
  webhook_url: ~
services:
  ${SERVICE}:
    split: weighted
    primary:
      - { server: ${o.primary}, max_fails: 3, fail_timeout: 20s }
    canary:
      - { server: ${o.canary}, max_fails: 1, fail_timeout: 10s, slow_start: 0s }
    probe: { health: /health, ready: /ready, interval: 500ms, timeout: 500ms }
    rollout:
      target: ${TARGET}
      slice: 5
      slice_soak: 4s
      step: 15
      step_soak: 3s
    gates:
      window: 10s
      min_requests: 20
      connect_p95: 250ms
      error_ratio: 0.5%
      probe_failure_ratio: 5%
      baseline_p95_factor: 5
      min_probes: 10
fleet:
  etcd: [${o.etcd}]
  prefix: ${PREFIX}
  host: ${o.host}
  lease_ttl: 2s
`;
}

/** The front nginx's conf: round-robin over the hosts' nginx on `listen`. Pure. */
export function frontConf(listen: number, hostPorts: readonly number[]): string {
  return `# nginx-canary demo --fleet: the front load balancer (round-robin over the hosts)
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log notice;
worker_shutdown_timeout 5s;
events {
    worker_connections 1024;
}
http {
    access_log off;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    upstream fleet {
${hostPorts.map((p) => `        server 127.0.0.1:${p};`).join('\n')}
        keepalive 16;
    }
    server {
        listen 127.0.0.1:${listen};
        location / {
            proxy_pass http://fleet;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout;
        }
    }
}
`;
}

function gateLine(gates: readonly GateResult[]): string {
  return gates.map((g) => `${g.gate}=${formatGateValue(g)} (${g.samples}, ${g.verdict})`).join(', ');
}

/** A fleet event as one line. */
function eventLine(d: FleetDesired, e: RolloutEvent): string {
  const gates = e.gates.length > 0 ? ` [${gateLine(e.gates)}]` : '';
  return `fleet (leader ${d.leader}, generation ${d.generation}): ${e.service} ${e.kind} ${e.from} % → ${e.to} % — ${e.reason}${gates}`;
}

/** A sidecar child process of the demo. */
interface SidecarChild {
  child: ChildProcess;
  exited: Promise<void>;
  running(): boolean;
}

/** Starts `bin/nginx-canary -c <file> run` with its output appended to `logFile`. */
async function spawnSidecar(file: string, logFile: string): Promise<SidecarChild> {
  const out = await open(logFile, 'a');
  try {
    const child = spawn(process.execPath, [BIN, '-c', file, 'run'], {
      cwd: path.dirname(file),
      stdio: ['ignore', out.fd, out.fd],
      env: { ...process.env, NGINX_CANARY_LOG_FORMAT: 'json' },
    });
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    return { child, exited, running: () => child.exitCode === null && child.signalCode === null };
  } finally {
    await out.close();
  }
}

/** SIGTERM by pid (SIGCONT first), SIGKILL after `graceMs`; resolves once it exited. */
async function stopSidecar(s: SidecarChild, graceMs: number): Promise<void> {
  if (s.running()) {
    s.child.kill('SIGCONT');
    s.child.kill('SIGTERM');
    if (!(await Promise.race([s.exited.then(() => true), delay(graceMs, false)])) && s.running())
      s.child.kill('SIGKILL');
  }
  await s.exited;
}

/** The last `max` characters of a file, or '' when it cannot be read. */
async function tail(file: string, max = 2000): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).slice(-max);
}

/**
 * Runs the fleet demo (see the module comment) until SIGINT, SIGTERM or the
 * duration; resolves to the exit code 0 once everything it started is stopped
 * and its temp dir removed.
 *
 * @throws EtcdMissingError (before anything starts) when `etcd` is not on PATH; RangeError for a host
 *   count outside 2–5; EtcdStartError, CanaryError from an nginx that cannot start, Error when a
 *   sidecar exits or does not answer within 20 s (everything started so far is stopped first, the temp
 *   dir removed).
 */
export async function runFleetDemo(opts: FleetDemoOptions): Promise<number> {
  const { io, hosts: n } = opts;
  if (!Number.isInteger(n) || n < FLEET_DEMO_HOSTS.min || n > FLEET_DEMO_HOSTS.max)
    throw new RangeError(`fleet demo: ${n} hosts; give ${FLEET_DEMO_HOSTS.min} to ${FLEET_DEMO_HOSTS.max}`);
  if ((await findOnPath('etcd')) === null) throw new EtcdMissingError(process.env['PATH'] ?? '');

  // Signals first: a Ctrl-C during the start lets the step under way finish, then everything stops.
  let stopRequested = false;
  let wake: (() => void) | null = null;
  const stop = (): void => {
    stopRequested = true;
    wake?.();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const t0 = Date.now();
  const stamp = (): string => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s]`;
  const say = (s: string): void => io.out(`${stamp()} ${s}`);
  /** Stop steps, newest last; each runs once, errors are printed and do not stop the others. */
  const cleanup: { what: string; run: () => Promise<unknown> }[] = [];
  const stopEverything = async (): Promise<void> => {
    while (cleanup.length > 0) {
      const step = cleanup.pop();
      try {
        await step?.run();
      } catch (err) {
        io.err(`demo: stopping ${step?.what}: ${(err as Error).message}`);
      }
    }
  };

  try {
    const dir = await mkdtemp(path.join(tmpdir(), 'nginx-canary-fleet-demo-'));
    cleanup.push({ what: `the temp dir ${dir}`, run: () => rm(dir, { recursive: true, force: true }) });
    io.out(`demo: fleet of ${n} hosts in ${dir} (removed when the demo stops)`);

    const etcd = await startDemoEtcd();
    cleanup.push({ what: `etcd (pid ${etcd.pid})`, run: () => etcd.stop() });
    io.out(`demo: etcd (one member) on ${etcd.endpoint}, pid ${etcd.pid}`);

    const primary = await Backend.start({ name: `${SERVICE}-primary` });
    cleanup.push({ what: 'the primary backend', run: () => primary.close() });
    const canary = await Backend.start({ name: `${SERVICE}-canary` });
    cleanup.push({ what: 'the canary backend', run: () => canary.close() });
    io.out(`demo: backends: primary on ${primary.addr}, canary on ${canary.addr}`);

    // The demo's eyes: the leader's decisions (`desired`) and every host's live weights (`hosts/<host>`).
    const watcher = await FleetEtcd.connect({
      endpoints: [etcd.endpoint],
      prefix: PREFIX,
      host: 'demo-watch',
      leaseTtlMs: 2000,
    });
    cleanup.push({ what: 'the etcd watch', run: () => watcher.close() });

    const template = await readFile(EXAMPLE_CONF, 'utf8');
    if (!template.includes(EXAMPLE_LISTEN))
      throw new Error(`${EXAMPLE_CONF} no longer has "${EXAMPLE_LISTEN}"; update src/demo/fleet.ts`);
    const names = Array.from({ length: n }, (_, i) => `host-${i + 1}`);
    const weights = new Map<string, number>(names.map((h) => [h, 0]));
    let allAtTargetAt = 0;
    let faultAt = 0;
    let drainedAt = 0;
    const fleetLine = (): string => [...weights].map(([h, w]) => `${h} ${w} %`).join('  ');
    const onHost = (kv: KeyValue): void => {
      const p = parseHostReport(kv.value);
      if (!p.ok || !weights.has(p.value.host)) return;
      const r = p.value;
      const w = r.weights[SERVICE] ?? 0;
      const before = weights.get(r.host) ?? 0;
      if (before === w) return;
      weights.set(r.host, w);
      const why = r.localDrains.includes(SERVICE)
        ? " (drained on this host's own evidence)"
        : r.verified === null
          ? ''
          : ` (desired generation ${r.verified} verified live)`;
      say(`${r.host}: ${SERVICE} ${before} % → ${w} %${why}   | ${fleetLine()}`);
      const all = [...weights.values()];
      if (faultAt === 0 && allAtTargetAt === 0 && all.every((x) => x === TARGET)) {
        allAtTargetAt = Date.now();
        say(`demo: every host serves ${SERVICE} ${TARGET} % (the target): the fleet's walk is complete`);
      }
      checkDrained();
    };
    let lastDesired: FleetDesired | null = null;
    /** After the fault: the fleet drained once the leader's desired says so and every host serves 0 %. */
    const checkDrained = (): void => {
      const d: FleetDesired | null = lastDesired;
      if (faultAt === 0 || drainedAt > 0 || d === null) return;
      if ((d.weights[SERVICE] ?? -1) !== 0 || d.state.services[SERVICE]?.phase !== 'drained') return;
      if (![...weights.values()].every((x) => x === 0)) return;
      drainedAt = Date.now();
      say(
        `demo: fleet drain: the leader drained ${SERVICE} and every host serves 0 % (${((drainedAt - faultAt) / 1000).toFixed(1)} s after the fault); Ctrl-C stops everything`,
      );
    };
    const seen = new Set<string>();
    let leader: string | null = null;
    const onDesired = (text: string): void => {
      const p = parseDesired(text);
      if (!p.ok) return;
      const d = p.value;
      lastDesired = d;
      if (d.leader !== leader) {
        leader = d.leader;
        say(`fleet: ${d.leader} leads (elected through etcd)`);
      }
      for (const e of d.state.history) {
        const key = `${e.at}|${e.service}|${e.kind}|${e.from}|${e.to}`;
        if (seen.has(key)) continue;
        seen.add(key);
        say(eventLine(d, e));
      }
      checkDrained();
    };
    const stopDesired = watcher.watchPrefix(
      DESIRED_KEY,
      (e) => {
        if (e.type === 'put' && e.kv.key === DESIRED_KEY) onDesired(e.kv.value);
      },
      (kvs) => {
        const d = kvs.find((kv) => kv.key === DESIRED_KEY);
        if (d) onDesired(d.value);
      },
    );
    cleanup.push({ what: 'the watch of desired', run: stopDesired });
    const stopHosts = watcher.watchPrefix(
      HOSTS_PREFIX,
      (e) => {
        if (e.type === 'put') onHost(e.kv);
      },
      (kvs) => kvs.forEach(onHost),
    );
    cleanup.push({ what: 'the watch of hosts/', run: stopHosts });

    const hostPorts: number[] = [];
    const sidecarPids: number[] = [];
    const nginxPids: number[] = [];
    let host1Url = '';
    // The hosts stop together: every sidecar first (each revokes its lease), then every nginx.
    const sidecars: SidecarChild[] = [];
    const hostNginx: ManagedNginx[] = [];
    cleanup.push({
      what: "the hosts' sidecars and nginx",
      run: async () => {
        await Promise.all(sidecars.map((s) => stopSidecar(s, SIDECAR_STOP_MS)));
        await Promise.all(hostNginx.map((x) => x.stop({ graceMs: 2000 })));
      },
    });
    for (const name of names) {
      if (stopRequested) break;
      const hdir = path.join(dir, name);
      await mkdir(path.join(hdir, 'conf', 'conf.d'), { recursive: true });
      const ports: HostPorts = { nginx: await freePort(), status: await freePort(), api: await freePort() };
      await writeFile(
        path.join(hdir, 'conf', 'nginx.conf'),
        template.replace(EXAMPLE_LISTEN, `listen 127.0.0.1:${ports.nginx};`),
      );
      const file = path.join(hdir, 'weights.yaml');
      await writeFile(
        file,
        fleetHostYaml({ host: name, ports, primary: primary.addr, canary: canary.addr, etcd: etcd.endpoint }),
      );
      const config = await loadConfig(file);
      // What an operator does once on adoption: the include exists (weight 0) before nginx loads it.
      const flavor = (await new NginxCommand(config.nginx).version()).flavor;
      await writeFile(config.nginx.upstreamsFile, renderUpstreams(buildModel(config, { [SERVICE]: 0 }, 0, flavor)));
      const nginx: ManagedNginx = await startNginx({
        binary: config.nginx.binary,
        conf: config.nginx.conf,
        prefix: config.nginx.prefix,
      });
      hostNginx.push(nginx);
      const logFile = path.join(hdir, 'nginx-canary.log');
      const sidecar = await spawnSidecar(file, logFile);
      sidecars.push(sidecar);
      const api = `http://127.0.0.1:${ports.api}`;
      await waitFor(
        async () => {
          if (!sidecar.running()) throw new Error(`the sidecar of ${name} exited:\n${await tail(logFile)}`);
          const r = await request(`${api}/healthz`, { headersTimeout: 1000, bodyTimeout: 1000 });
          await r.body.dump();
          return r.statusCode === 200;
        },
        { timeoutMs: SIDECAR_START_MS, intervalMs: 100, what: `the sidecar of ${name} at ${api}/healthz` },
      ).catch(async (err: unknown) => {
        throw new Error(`${(err as Error).message}\n--- ${logFile} ---\n${await tail(logFile)}`, { cause: err });
      });
      hostPorts.push(ports.nginx);
      nginxPids.push(nginx.pid);
      sidecarPids.push(sidecar.child.pid ?? -1);
      if (host1Url === '') host1Url = `${api}/`;
      io.out(
        `demo: ${name}: nginx on http://127.0.0.1:${ports.nginx}/ (pid ${nginx.pid}), sidecar on ${api} (pid ${sidecar.child.pid ?? '?'})`,
      );
    }

    let frontUrl = '';
    if (!stopRequested) {
      const fdir = path.join(dir, 'front');
      await mkdir(path.join(fdir, 'prefix'), { recursive: true });
      const port = await freePort();
      const conf = path.join(fdir, 'nginx.conf');
      await writeFile(conf, frontConf(port, hostPorts));
      const front = await startNginx({ binary: 'nginx', conf, prefix: path.join(fdir, 'prefix') });
      cleanup.push({ what: `the front nginx (pid ${front.pid})`, run: () => front.stop({ graceMs: 2000 }) });
      frontUrl = `http://127.0.0.1:${port}/`;
      io.out(`demo: front nginx on ${frontUrl} (pid ${front.pid}), round-robin over ${names.join(', ')}`);
      io.out(`demo: status page of host-1 (shows every host of the fleet): ${host1Url}`);
      io.out(
        `demo: started pids: etcd=${etcd.pid} nginx=${nginxPids.join(',')} front=${front.pid} sidecars=${sidecarPids.join(',')}`,
      );
      io.out(
        `demo: ${RATE_PER_SECOND} requests/s through the front; target ${SERVICE} ${TARGET} %; lease_ttl 2s; Ctrl-C stops everything`,
      );
    }

    // Between changes, the leader's own account of the walk (soak, gates, barrier), every 3 s when it changed.
    let lastSummary = '';
    const summaries = setInterval(() => {
      const d: FleetDesired | null = lastDesired;
      const line = d?.summary[SERVICE];
      if (line === undefined || line === lastSummary) return;
      lastSummary = line;
      say(`fleet: ${SERVICE}: ${line}`);
    }, 3000);
    cleanup.push({ what: 'the summary timer', run: () => Promise.resolve(clearInterval(summaries)) });

    // Bounded traffic: at most MAX_REQUESTS, RATE_PER_SECOND, until the stop.
    const agent = new Agent({ connections: 8 });
    let sent = 0;
    let trafficStopped = false;
    const traffic = (async () => {
      if (frontUrl === '') return;
      const started = performance.now();
      while (!trafficStopped && sent < MAX_REQUESTS) {
        const due = Math.floor(((performance.now() - started) / 1000) * RATE_PER_SECOND);
        const batch: Promise<void>[] = [];
        while (sent < due && batch.length < 50) {
          sent++;
          batch.push(
            request(frontUrl, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 })
              .then((res) => res.body.dump())
              .catch(() => undefined),
          );
        }
        await Promise.all(batch);
        await delay(10);
      }
    })();
    cleanup.push({
      what: 'the traffic',
      run: async () => {
        trafficStopped = true;
        await traffic;
        await agent.close();
        say(`demo: traffic stopped (sent ${sent} requests)`);
      },
    });

    // The canary fault once every host served the target for FAULT_AFTER_MS.
    const faults = setInterval(() => {
      if (allAtTargetAt === 0 || faultAt > 0 || Date.now() - allAtTargetAt < FAULT_AFTER_MS) return;
      faultAt = Date.now();
      say('demo: now making the canary answer 500, to show a fleet-wide drain');
      void canary.setFault({ kind: 'status', status: 500 });
    }, 250);
    cleanup.push({ what: 'the fault timer', run: () => Promise.resolve(clearInterval(faults)) });

    const maxMs = Math.min(opts.durationMs ?? DEFAULT_DURATION_MS, MAX_DURATION_MS);
    if (!stopRequested) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, maxMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    say(stopRequested ? 'demo: stopping (signal)' : `demo: stopping (ran ${Math.round(maxMs / 1000)} s)`);
    await stopEverything();
    say(
      `demo: stopped by pid: sidecars ${sidecarPids.join(',')}, nginx ${nginxPids.join(',')} and the front, etcd ${etcd.pid}; backends closed; temp dir removed`,
    );
    return 0;
  } finally {
    await stopEverything();
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
