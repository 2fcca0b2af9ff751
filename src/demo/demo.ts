/**
 * `nginx-canary demo` (`npm start`): a managed nginx on loopback from
 * nginx/nginx.conf, demo backends on the servers weights.yaml names
 * (127.0.0.1:18789 primary, :18890 canary), bounded background traffic, and
 * the sidecar walking the canary on the repo's weights.yaml (short soaks).
 * Every decision is printed as it happens. Once the walk is complete the demo
 * makes the canary answer 500 so you see a drain. Ctrl-C stops everything it
 * started, by pid.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Agent, request } from 'undici';
import { pino } from 'pino';
import { loadConfig } from '../config/load.js';
import { startSidecar } from '../main.js';
import type { TickReport } from '../runner.js';
import type { CliIo } from '../cli/main.js';
import type { GateResult } from '../rollout/types.js';
import { formatGateValue } from '../rollout/gates.js';
import { Backend } from './backend.js';

/** Where the example nginx.conf listens (nginx/nginx.conf: `listen 127.0.0.1:18080`). */
export const DEMO_URL = 'http://127.0.0.1:18080/';
/** Demo traffic: requests per second, and a hard cap on the total. */
const RATE_PER_SECOND = 200;
const MAX_REQUESTS = 2_000_000;

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Where the demo prints its progress lines. */
  io: CliIo;
  /** Stop by itself after this many ms (default: until SIGINT/SIGTERM; capped at 3 h, a chosen bound on the traffic it makes). */
  durationMs?: number;
}

function gateLine(gates: GateResult[]): string {
  return gates.map((g) => `${g.gate}=${formatGateValue(g)} (${g.samples}, ${g.verdict})`).join(', ');
}

/**
 * Runs the demo on `configFile` (the repo's weights.yaml; it must say
 * `nginx.managed: true`): deletes state.json, starts one Backend per
 * configured server, the sidecar with its managed nginx, and background
 * traffic to {@link DEMO_URL} (200 requests/s, at most 2,000,000 in all; chosen
 * bounds); once every service is complete for 5 s it makes the canary answer
 * 500 to show a drain. Resolves to the exit code: 0 after a stop, 2 when
 * `nginx.managed` is false.
 *
 * @throws ConfigError when weights.yaml is invalid; CanaryError when the sidecar cannot start; the
 *   listen error (e.g. EADDRINUSE) when a backend's port is taken; the fs error when the state
 *   directory cannot be created.
 */
export async function runDemo(configFile: string, opts: DemoOptions): Promise<number> {
  const { io } = opts;
  const config = await loadConfig(configFile);
  if (!config.nginx.managed) {
    io.err(
      'demo: weights.yaml has nginx.managed: false; the demo only runs a nginx it manages itself (use the repo weights.yaml)',
    );
    return 2;
  }
  const runDir = path.dirname(config.sidecar.stateFile);
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  await rm(config.sidecar.stateFile, { force: true });
  const logFile = path.join(runDir, 'nginx-canary.log');
  io.out(`demo: starting from weight 0 (state reset); JSON logs in ${logFile}`);

  const backends: Backend[] = [];
  const closeBackends = async (): Promise<void> => {
    for (const b of backends) await b.close();
  };
  try {
    for (const svc of config.services) {
      for (const [pool, servers] of [
        ['primary', svc.primary],
        ['canary', svc.canary],
      ] as const) {
        for (const s of servers)
          backends.push(
            await Backend.start({ name: `${svc.name}-${pool}`, host: s.host, port: s.port, socketPath: s.socketPath }),
          );
      }
    }
  } catch (err) {
    // A port taken by another process: close the ones already listening, or they keep the process alive.
    await closeBackends();
    throw err;
  }
  const canary = backends.filter((b) => b.name.endsWith('-canary'));

  const t0 = Date.now();
  const stamp = (): string => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s]`;
  let lastProgress = 0;
  let completeAt = 0;
  let faulted = false;
  const onTick = (r: TickReport): void => {
    for (const e of r.events) {
      io.out(
        `${stamp()} ${e.service}: ${e.kind} ${e.from} % → ${e.to} % — ${e.reason}${e.gates.length ? ` [${gateLine(e.gates)}]` : ''}`,
      );
    }
    if (r.apply && !r.apply.ok) io.out(`${stamp()} apply failed at ${r.apply.stage}: ${r.apply.error.message}`);
    if (r.events.length > 0) lastProgress = Date.now();
    else if (Date.now() - lastProgress >= 2000) {
      lastProgress = Date.now();
      for (const [name, line] of Object.entries(r.summary))
        io.out(`${stamp()} ${name}: ${line} [${gateLine(r.gates[name] ?? [])}]`);
    }
    const allComplete = Object.values(r.weights).every((w, i) => w > 0 && w === config.services[i]?.rollout.target);
    if (allComplete && completeAt === 0) completeAt = Date.now();
    if (completeAt > 0 && !faulted && Date.now() - completeAt > 5000) {
      faulted = true;
      io.out(`${stamp()} demo: the walk is complete; now making the canary answer 500 to show a drain`);
      for (const b of canary) void b.setFault({ kind: 'status', status: 500 });
    }
  };

  const log = pino({ level: 'info' }, pino.destination({ dest: logFile, mkdir: true, sync: false }));
  let sidecar: Awaited<ReturnType<typeof startSidecar>>;
  try {
    sidecar = await startSidecar(config, { log, onTick });
  } catch (err) {
    // Nothing may outlive a failed start: the backends would keep the process alive.
    await closeBackends();
    throw err;
  }
  io.out(
    `demo: nginx on ${DEMO_URL} (pid ${sidecar.nginx?.pid ?? 'already running'}), sidecar on ${sidecar.url} (status page, /metrics)`,
  );
  io.out(
    `demo: ${RATE_PER_SECOND} requests/s of background traffic; target ${config.services.map((s) => `${s.name} ${s.rollout.target} %`).join(', ')}; Ctrl-C stops everything`,
  );

  // Bounded traffic: at most MAX_REQUESTS, at most the duration, RATE_PER_SECOND.
  const agent = new Agent({ connections: 8 });
  let stopped = false;
  let sent = 0;
  const traffic = (async () => {
    const started = performance.now();
    while (!stopped && sent < MAX_REQUESTS) {
      const due = Math.floor(((performance.now() - started) / 1000) * RATE_PER_SECOND);
      const batch: Promise<void>[] = [];
      while (sent < due && batch.length < 50) {
        sent++;
        batch.push(
          request(DEMO_URL, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 })
            .then((res) => res.body.dump())
            .catch(() => undefined),
        );
      }
      await Promise.all(batch);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();

  const maxMs = Math.min(opts.durationMs ?? 3 * 3_600_000, 3 * 3_600_000);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, maxMs);
    const stop = (): void => {
      clearTimeout(timer);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  io.out(`${stamp()} demo: stopping (sent ${sent} requests)`);
  stopped = true;
  await traffic;
  await agent.close();
  await sidecar.close();
  await closeBackends();
  log.flush();
  io.out(`${stamp()} demo: nginx, backends and sidecar stopped`);
  return 0;
}
