/**
 * `nginx-canary` command line (docs/design.md "Interfaces"): parses argv with
 * commander, runs one command, and maps errors to exit codes — 0 ok,
 * 1 failure, 2 usage or invalid config. Errors go to stderr as one sentence
 * and the fix.
 */
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { systemClock } from '../clock.js';
import { loadConfig } from '../config/load.js';
import { setTarget, setVersion } from '../config/edit.js';
import type { Config } from '../config/types.js';
import { CanaryError, errors } from '../errors.js';
import { StateStore } from '../rollout/store.js';
import { NginxCommand } from '../nginx/ctl.js';
import { describeRaises, type WeightRaise } from '../nginx/rollback-choice.js';
import { SnapshotStore } from '../nginx/snapshot.js';
import { buildModel } from '../nginx/model.js';
import { renderUpstreams } from '../nginx/render.js';
import type { Flavor } from '../nginx/types.js';
import { statusOf, type StatusDocument } from '../runner.js';
import { checkCommand, committedWeights } from './check.js';
import { callApi } from './client.js';
import { formatStatus } from './format.js';
import { DEFAULT_INTERVAL_MS, parseInterval, useColor, watchStatus } from './watch.js';
import { packageVersion } from './version.js';

/** Where the CLI writes (tests pass buffers). */
export interface CliIo {
  /** Writes one message to stdout (the default adds a trailing newline when missing). */
  out: (s: string) => void;
  /** Writes one message to stderr (errors, notes; same newline rule). */
  err: (s: string) => void;
}

const defaultIo: CliIo = {
  out: (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
  err: (s) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
};

/** Parses a weight argument ("60", "12.5", "60%") to a number, or throws a usage error. */
function parseWeight(raw: string): number {
  const m = /^(\d{1,3}(?:\.\d)?)%?$/.exec(raw.trim());
  const n = m?.[1] === undefined ? NaN : Number(m[1]);
  if (!Number.isFinite(n) || n < 0 || n > 100) {
    throw errors.usage(
      `"${raw}" is not a weight`,
      'Give a percentage from 0 to 100 with at most one decimal, e.g. `nginx-canary target gateway 60`',
    );
  }
  return n;
}

async function detectFlavor(config: Config, forced: string | undefined, io: CliIo): Promise<Flavor> {
  if (forced === 'oss' || forced === 'plus') return forced;
  try {
    return (await new NginxCommand(config.nginx).version()).flavor;
  } catch {
    io.err(
      `note: cannot run ${config.nginx.binary} -V; rendering for open-source nginx (pass --flavor plus for NGINX Plus)`,
    );
    return 'oss';
  }
}

/** Builds the commander program; every action resolves to an exit code. */
function program(io: CliIo, setCode: (c: number) => void): Command {
  const prog = new Command('nginx-canary')
    .description('Walk traffic from a primary backend to a canary through one nginx, gated on real traffic.')
    .version(packageVersion(), '-V, --version', 'print the version of the installed package')
    .option('-c, --config <file>', 'weights.yaml to use', './weights.yaml')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  const cfgFile = (): string => path.resolve(prog.opts<{ config: string }>().config);
  const config = (): Promise<Config> => loadConfig(cfgFile());

  prog
    .command('run')
    .description('run the sidecar: follow the access log, walk the canary, serve the API and /metrics')
    .action(async () => {
      const { runCommand } = await import('./run.js');
      setCode(await runCommand(await config(), io));
    });

  prog
    .command('render')
    .description('print the include file for the live weights (state.json), without writing it')
    .addOption(
      new Option('--flavor <flavor>', 'render for this nginx instead of asking nginx -V').choices(['oss', 'plus']),
    )
    .action(async (o: { flavor?: string }) => {
      const c = await config();
      const { weights, generation } = await committedWeights(c);
      io.out(renderUpstreams(buildModel(c, weights, generation, await detectFlavor(c, o.flavor, io))));
    });

  prog
    .command('check')
    .description(
      'validate weights.yaml and the token file, run nginx -t on a scratch copy of nginx.conf with the rendered file in it, and warn when alerts.webhook_url does not answer',
    )
    .action(async () => setCode(await checkCommand(await config(), io)));

  prog
    .command('status')
    .description('show each service: weight, target, phase, soak, gates, recent events')
    .option('--json', 'print the status document as JSON')
    .option(
      '--watch',
      'keep watching: redraw in place on a terminal, print a block on each change when piped (Ctrl-C stops)',
    )
    .option('--interval <duration>', 'poll interval of --watch, weights.yaml syntax (500ms, 2s); default 1s')
    .option('--no-color', 'no colour in --watch (also when NO_COLOR is set)')
    .action(async (o: { json?: boolean; watch?: boolean; interval?: string; color: boolean }) => {
      if (o.watch && o.json) throw errors.usage('--watch and --json do not combine', 'Drop one of them');
      if (!o.watch && o.interval !== undefined) {
        throw errors.usage(
          '--interval applies only to --watch',
          `Run \`nginx-canary status --watch --interval ${o.interval}\``,
        );
      }
      const intervalMs = o.interval === undefined ? DEFAULT_INTERVAL_MS : parseInterval(o.interval);
      const c = await config();
      if (o.watch) {
        // Redraw only on the real terminal; a caller's io (tests) gets plain blocks.
        const tty = io === defaultIo && process.stdout.isTTY === true;
        setCode(
          await watchStatus(c, {
            intervalMs,
            tty,
            color: useColor(o.color, tty, process.env),
            write: (s) => io.out(s),
            size: () => ({ columns: process.stdout.columns ?? 0, rows: process.stdout.rows ?? 0 }),
          }),
        );
        return;
      }
      let doc: StatusDocument;
      let note = '';
      try {
        doc = (await callApi(c, 'GET', '/api/v1/services')) as StatusDocument;
      } catch (err) {
        if (!(err instanceof CanaryError) || err.code !== 'NC_SIDECAR_UNREACHABLE') throw err;
        const state = await new StateStore(c.sidecar.stateFile).load();
        if (!state) throw err;
        doc = statusOf(c, state);
        note = `note: the sidecar does not answer at ${c.sidecar.listen.host}:${c.sidecar.listen.port}; showing ${c.sidecar.stateFile} (gates unknown)`;
      }
      io.out(o.json ? JSON.stringify(doc, null, 2) : formatStatus(doc, note));
    });

  prog
    .command('target <service> <weight>')
    .description(
      "set the target canary weight (percent) by editing weights.yaml in place; the sidecar walks to it (fleet mode: the fleet's target, through this host's sidecar)",
    )
    .action(async (service: string, weight: string) => {
      const w = parseWeight(weight);
      const c = await config();
      if (c.fleet) {
        // Fleet mode: the target is the fleet's, in etcd; weights.yaml only seeds it. The local sidecar
        // writes the intent and answers once the leader took it.
        const r = (await callApi(c, 'PUT', `/api/v1/services/${service}/target`, { weight: w })) as FleetEdit<number>;
        io.out(`${service}: fleet target ${r.from} % → ${r.to} % (fleet ${c.fleet.prefix}); every host walks to it.`);
        return;
      }
      const r = await setTarget(cfgFile(), service, w);
      io.out(
        `${service}: target ${r.from} % → ${r.to} % written to ${cfgFile()}; the running sidecar picks it up within a tick.`,
      );
    });

  prog
    .command('release <service> <version>')
    .description(
      "start a new canary build: set rollout.version in weights.yaml in place; the sidecar drops the canary to 0 and walks the new build from the slice (fleet mode: the fleet's version, through this host's sidecar)",
    )
    .action(async (service: string, version: string) => {
      const c = await config();
      if (c.fleet) {
        const r = (await callApi(c, 'PUT', `/api/v1/services/${service}/version`, { version })) as FleetEdit<
          string | null
        >;
        io.out(
          `${service}: fleet version ${r.from ?? '(none)'} → ${r.to} (fleet ${c.fleet.prefix}); every host drops the canary to 0 and walks the new build from the slice.`,
        );
        return;
      }
      const r = await setVersion(cfgFile(), service, version);
      io.out(
        r.from === version
          ? `${service}: version is already ${version}; nothing changed.`
          : `${service}: version ${r.from ?? '(none)'} → ${version} written to ${cfgFile()}; the running sidecar drops the canary to 0 within a tick and walks the new build from the slice once its /ready answers 200.`,
      );
    });

  prog
    .command('promote <service>')
    .description(
      'end a release that reached its target: (run rollout.promote_command,) wait for /ready on every primary server, then canary to 0, phase promoted',
    )
    .action(async (service: string) => {
      const c = await config();
      const svc = c.services.find((s) => s.name === service);
      if (!svc) throw errors.unknownService(service);
      // The sidecar may run the promote command and wait for the primary: allow for both, and a margin.
      const s = (await callApi(c, 'POST', `/api/v1/services/${service}/promote`, undefined, {
        timeoutMs: 2 * svc.rollout.promoteTimeoutMs + 30_000,
      })) as { weight: number; phase: string };
      io.out(
        `${service}: promoted${svc.rollout.version === null ? '' : ` ${svc.rollout.version}`}; weight ${s.weight} %, phase ${s.phase}: the primary serves all traffic.`,
      );
    });

  for (const kind of ['pause', 'resume', 'abort'] as const) {
    const what = {
      pause: 'hold the walk at the live weight',
      resume: 'continue a paused or drained walk',
      abort: 'drain the canary to 0 now (operator drain)',
    }[kind];
    prog
      .command(`${kind} <service>`)
      .description(what)
      .action(async (service: string) => {
        const c = await config();
        if (!c.services.some((s) => s.name === service)) throw errors.unknownService(service);
        const s = (await callApi(c, 'POST', `/api/v1/services/${service}/${kind}`)) as {
          weight: number;
          phase: string;
        };
        io.out(`${service}: ${kind} done; weight ${s.weight} %, phase ${s.phase}.`);
      });
  }

  prog
    .command('snapshots')
    .description('list the nginx config snapshots, newest first')
    .action(async () => {
      const c = await config();
      const list = await new SnapshotStore(c.nginx.snapshots.dir, c.nginx.snapshots.keep, c.nginx, systemClock).list();
      if (list.length === 0) io.out(`no snapshots in ${c.nginx.snapshots.dir}`);
      for (const s of list) {
        const w = Object.entries(s.weights)
          .map(([k, v]) => `${k}=${v}%`)
          .join(' ');
        io.out(`${s.id}  ${new Date(s.at).toISOString()}  generation ${s.generation}  ${w}  ${s.reason}`);
      }
    });

  prog
    .command('rollback [snapshot]')
    .description(
      'restore a snapshot and reload nginx, pausing the walk at its weights (default: the newest older snapshot that raises no canary weight; name one to restore a higher weight)',
    )
    .action(async (id: string | undefined) => {
      const c = await config();
      const r = (await callApi(c, 'POST', '/api/v1/rollback', id === undefined ? {} : { snapshot: id })) as {
        snapshot: { id: string; generation: number; weights: Record<string, number> };
        raises: WeightRaise[];
      };
      const weights = Object.entries(r.snapshot.weights)
        .map(([s, w]) => `${s} ${w} %`)
        .join(', ');
      io.out(
        `restored snapshot ${r.snapshot.id} (generation ${r.snapshot.generation}; canary ${weights || 'none'}); nginx reloaded; the walk is paused — \`nginx-canary resume <service>\` to continue.`,
      );
      if (r.raises.length > 0) {
        io.out(`note: this raised the canary above what was live: ${describeRaises(r.raises)}.`);
      }
    });

  prog
    .command('demo')
    .description(
      'start a managed nginx, two demo backends and bounded traffic on loopback, and walk the canary (Ctrl-C stops all)',
    )
    .option('--duration <seconds>', 'stop by itself after this many seconds (default: run until Ctrl-C)')
    .option(
      '--fleet <n>',
      'fleet mode instead: n nginx hosts (2–5) walking as one on a single-member etcd it starts, behind a front nginx (needs etcd: apt-get install etcd-server; stops by itself after 10 minutes; weights.yaml is not used)',
    )
    .action(async (o: { duration?: string; fleet?: string }) => {
      if (o.fleet !== undefined) {
        const hosts = /^\d+$/.test(o.fleet) ? Number(o.fleet) : Number.NaN;
        if (!(hosts >= 2 && hosts <= 5))
          throw errors.usage(
            `--fleet ${o.fleet} is not a number of hosts from 2 to 5`,
            'Run e.g. `nginx-canary demo --fleet 3`',
          );
        const { runFleetDemo } = await import('../demo/fleet.js');
        setCode(await runFleetDemo({ io, hosts, ...(o.duration ? { durationMs: Number(o.duration) * 1000 } : {}) }));
        return;
      }
      const { runDemo } = await import('../demo/demo.js');
      setCode(await runDemo(cfgFile(), { io, ...(o.duration ? { durationMs: Number(o.duration) * 1000 } : {}) }));
    });

  return prog;
}

/**
 * Entry point: runs `argv` (shaped like process.argv: node, script, then the
 * arguments) and resolves to the exit code: 0 ok (help and version too), 1
 * failure, 2 usage error or invalid config (docs/design.md "Interfaces"). A
 * CanaryError is printed as its message and fix on `io.err`; anything else
 * as "unexpected error" with its stack (exit 1). Never throws.
 */
/** What `PUT …/target` and `PUT …/version` answer (server/app.ts). */
interface FleetEdit<T> {
  from: T;
  to: T;
}

export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  let code = 0;
  try {
    await program(io, (c) => (code = c)).parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof CanaryError) {
      io.err(err.toUserString());
      return err.exitCode;
    }
    io.err(`unexpected error: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
  return code;
}
