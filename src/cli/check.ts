/**
 * `nginx-canary check`: what `run` would refuse, found without touching
 * anything live. weights.yaml is validated by the loader before this runs
 * (exit 2 on any problem, never-conclusive gates included: config/conclusive.ts);
 * then, each reported and none stopping the others:
 * - the API token as `run` reads it (server/token.ts, the same functions):
 *   a non-loopback `sidecar.listen` without `sidecar.token_file`, and a token
 *   file that is missing, unreadable, not a regular file, group/other
 *   accessible, too big or too short — exit code as `run` would exit;
 * - `nginx -t` on a scratch copy of nginx.conf with the rendered include
 *   file for the live weights (nginx/scratch.ts) — exit 1 when it fails;
 *   when it passes, the copy's `access_log` lines: a `warning:` line when
 *   none writes format nginx_canary, when one has a foreign `if=`, when
 *   one lacks `if=$nginx_canary_log` while nginx.access_log_sample is
 *   below 100, or when one writes another file than nginx.access_log
 *   ({@link accessLogWarnings});
 * - `alerts.webhook_url`, asked once with a bounded HEAD request: any HTTP
 *   answer means reachable; a refusal, timeout, DNS or TLS failure prints a
 *   `warning:` line and leaves the exit code alone (the receiver may be down
 *   for a reason; Prometheus rules page without it);
 * - with a `fleet:` section, every `fleet.etcd` endpoint, asked `GET /health`
 *   once, bounded, all at the same time: when none answers, exit 2 with the
 *   problem at the line of `fleet.etcd` (file:line:col, the endpoints and
 *   why each failed, the fix); when some do not, a `warning:` line naming
 *   them, exit code unchanged; an endpoint that answers but reports etcd
 *   unhealthy (no quorum) is a `warning:` too.
 * Nothing is written.
 */
import path from 'node:path';
import { Agent, request } from 'undici';
import { readFile } from 'node:fs/promises';
import { locateIn } from '../config/load.js';
import { noEtcdAnswersProblem } from '../config/validate.js';
import { formatDuration } from '../config/units.js';
import type { Config, FleetConfig } from '../config/types.js';
import { CanaryError, ConfigError } from '../errors.js';
import { NginxCommand } from '../nginx/ctl.js';
import { buildModel, LOG_FORMAT, LOG_SAMPLE_VARIABLE, ZONE_PREFIX } from '../nginx/model.js';
import { renderUpstreams } from '../nginx/render.js';
import { describeOverride } from '../nginx/override.js';
import { checkRendered, type AccessLogDirective } from '../nginx/scratch.js';
import { StateStore } from '../rollout/store.js';
import { checkListenToken, readTokenFile } from '../server/token.js';
import type { CliIo } from './main.js';

/** Bound of the webhook request, ms (a chosen value: an Alertmanager on the network answers in milliseconds). */
export const WEBHOOK_CHECK_TIMEOUT_MS = 2000;

/** Bound of one etcd `GET /health` request, ms (chosen: an etcd member answers /health in milliseconds). */
export const ETCD_CHECK_TIMEOUT_MS = 2000;

/** Options of {@link checkCommand}. */
export interface CheckCommandOptions {
  /** Bound of the webhook request, ms > 0 (default {@link WEBHOOK_CHECK_TIMEOUT_MS}). */
  webhookTimeoutMs?: number;
  /** Bound of each etcd `GET /health` request, ms > 0 (default {@link ETCD_CHECK_TIMEOUT_MS}). */
  etcdTimeoutMs?: number;
}

/** The live weights from state.json, or all 0 when there is none yet; and the generation (0 without state). */
export async function committedWeights(
  config: Config,
): Promise<{ weights: Record<string, number>; generation: number }> {
  const state = await new StateStore(config.sidecar.stateFile).load();
  return {
    weights: Object.fromEntries(config.services.map((s) => [s.name, state?.services[s.name]?.weight ?? 0])),
    generation: state?.generation ?? 0,
  };
}

/** `url` with the password of its userinfo hidden (`http://u:***@host/…`), for messages. */
function showUrl(url: string): string {
  const u = new URL(url);
  if (u.password === '') return url;
  u.password = '***';
  return u.href;
}

/**
 * Asks `url` once with a HEAD request bounded by `timeoutMs` (connect, headers and the whole request) over
 * its own connection pool, closed before this resolves. Resolves to null when any HTTP answer came (any
 * status: the receiver is there), else to why not: `no answer within <n> ms`, or the error's message (a
 * refusal `connect ECONNREFUSED …`, a DNS failure `getaddrinfo ENOTFOUND …`, a TLS error). Never rejects.
 */
export async function probeWebhook(url: string, timeoutMs: number): Promise<string | null> {
  const agent = new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await request(url, {
      method: 'HEAD',
      dispatcher: agent,
      signal,
      headers: { 'user-agent': 'nginx-canary-check' },
    });
    await res.body.dump();
    return null;
  } catch (err) {
    return failureReason(err, signal, timeoutMs);
  } finally {
    await agent.destroy().catch(() => undefined);
  }
}

/**
 * Why a bounded undici request got no answer, for messages: `no answer within <n> ms` when its bound
 * (the signal, the connect or the headers timeout) ran out, else the error's message with its code
 * (`connect ECONNREFUSED 127.0.0.1:2379`, `getaddrinfo ENOTFOUND etcd-1`, a TLS error).
 */
function failureReason(err: unknown, signal: AbortSignal, timeoutMs: number): string {
  const e = err as { code?: unknown; message?: unknown };
  if (signal.aborted || e.code === 'UND_ERR_CONNECT_TIMEOUT' || e.code === 'UND_ERR_HEADERS_TIMEOUT')
    return `no answer within ${timeoutMs} ms`;
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : String(err);
  return typeof e.code === 'string' && !message.includes(e.code) ? `${e.code}: ${message}` : message;
}

/** One etcd endpoint's answer to `GET <url>/health` (see {@link probeEtcdHealth}). */
export type EtcdHealth =
  | {
      /** The endpoint as `fleet.etcd` lists it. */
      url: string;
      answered: true;
      /** HTTP 200 with `"health":"true"`: the member is up and its cluster has a leader (a quorum). */
      healthy: boolean;
      /** What it answered, for messages: `HTTP <status> <body, at most 200 characters>`. */
      detail: string;
    }
  | {
      /** The endpoint as `fleet.etcd` lists it. */
      url: string;
      answered: false;
      /** Why not: `no answer within <n> ms`, or the error (`connect ECONNREFUSED …`, DNS, TLS). */
      reason: string;
    };

/**
 * Asks one etcd member `GET <url>/health` (etcd's HTTP health endpoint, served on the client URL), once,
 * bounded by `timeoutMs` (connect, headers, body and the whole request), over its own connection pool
 * closed before this resolves. Any HTTP answer counts as answered; healthy is HTTP 200 with a JSON body
 * whose `health` is `"true"` (etcd 3.4 answers 503 `{"health":"false"}` without a leader). Never rejects.
 */
export async function probeEtcdHealth(url: string, timeoutMs: number): Promise<EtcdHealth> {
  const agent = new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await request(`${url}/health`, {
      method: 'GET',
      dispatcher: agent,
      signal,
      headers: { 'user-agent': 'nginx-canary-check' },
    });
    const body = (await res.body.text()).trim();
    let health: unknown;
    try {
      health = (JSON.parse(body) as { health?: unknown } | null)?.health;
    } catch {
      health = undefined;
    }
    const shown = body.length > 200 ? `${body.slice(0, 199)}…` : body;
    return {
      url,
      answered: true,
      healthy: res.statusCode === 200 && health === 'true',
      detail: `HTTP ${res.statusCode}${shown === '' ? '' : ` ${shown}`}`,
    };
  } catch (err) {
    return { url, answered: false, reason: failureReason(err, signal, timeoutMs) };
  } finally {
    await agent.destroy().catch(() => undefined);
  }
}

/**
 * Reports what {@link probeEtcdHealth} found at every `fleet.etcd` endpoint (pure but for `io` and
 * reading `configFile` for the line of `fleet.etcd`) and returns the exit code: 2 when no endpoint
 * answered (a problem at the line of `fleet.etcd`, as the loader formats problems), else 0 with a
 * `warning:` line for the endpoints that did not answer and one for those that answered unhealthy, and
 * a `note:` line saying how many answered.
 */
export async function reportFleet(
  fleet: FleetConfig,
  configFile: string,
  health: readonly EtcdHealth[],
  io: CliIo,
): Promise<0 | 2> {
  const text = await readFile(configFile, 'utf8').catch(() => null);
  const at = text === null ? null : locateIn(text, configFile, ['fleet', 'etcd'], 'key');
  const where = at === null ? configFile : `${at.file}:${at.line}`;
  const down = health.flatMap((h) => (h.answered ? [] : [`${h.url} (${h.reason})`]));
  const sick = health.flatMap((h) => (h.answered && !h.healthy ? [`${h.url} (${h.detail})`] : []));
  if (down.length === health.length) {
    const problem = noEtcdAnswersProblem(fleet.prefix, down.join(', '), at);
    io.err(new ConfigError([problem]).toUserString());
    return 2;
  }
  if (down.length > 0)
    io.err(
      `warning: fleet.etcd (${where}): ${down.length} of ${health.length} etcd endpoints do not answer: ${down.join(', ')}. The sidecar uses the ones that answer; start the member or correct its URL. This warning does not fail check.`,
    );
  if (sick.length > 0)
    io.err(
      `warning: fleet.etcd (${where}): etcd answers but reports itself unhealthy at ${sick.join(', ')}: the cluster may have lost its quorum (a majority of its members), and no host raises a weight until it has one again. This warning does not fail check.`,
    );
  io.out(
    `note: fleet ${fleet.prefix} as host ${fleet.host} (lease_ttl ${formatDuration(fleet.leaseTtlMs)}): etcd answers at ${health.length - down.length} of ${health.length} endpoints.`,
  );
  return 0;
}

/** nginx's output with the scratch copy's config paths written as the live directory's, so file:line points at the operator's file. */
export function scratchToLive(output: string, liveDir: string): string {
  return output.replace(/\/\S*?nginx-canary-check-[^/\s]+\/conf(?=[/\s:"]|$)/g, liveDir);
}

/**
 * What to do about a failing `nginx -t` of the rendered config, from nginx's own words (pure): the
 * include loaded twice, the access log before the format, an nginx without the upstream zone module, a
 * zone name of the operator's that the sidecar's upstream zone takes, the include not loaded inside
 * `http {}`; else the general rule.
 */
export function nginxTestHint(output: string, config: Config): string {
  const include = config.nginx.upstreamsFile;
  if (/duplicate "log_format" name "nginx_canary"/.test(output) || /duplicate upstream "/.test(output)) {
    return `The include file ${include} is loaded twice: nginx.conf (or a file it includes) already includes its directory inside http {} (Debian: conf.d/*.conf), so remove the extra \`include\` line.`;
  }
  if (/unknown log format "nginx_canary"/.test(output)) {
    return `An \`access_log … nginx_canary\` line comes before the include that defines the format (in Debian's nginx.conf the http-level access_log precedes the conf.d include): put it in the server {} that proxies to the service.`;
  }
  if (/unknown directive "zone"/.test(output)) {
    return `This nginx is built without the upstream zone module (\`--without-http_upstream_zone_module\` in its \`nginx -V\`), and every upstream the sidecar renders has a shared \`zone\` so that max_fails counts for all workers: use an nginx built with it (the default since nginx 1.9.0; Debian's and nginx.org's packages have it).`;
  }
  const zone = new RegExp(`the shared memory zone "(${ZONE_PREFIX}\\w+)" is already declared for a different use`).exec(
    output,
  );
  if (zone) {
    return `Your configuration already uses the shared memory zone name "${zone[1]}" (in a limit_req_zone, limit_conn_zone, proxy_cache_path or the like), and the sidecar names the zone of its upstream block so: rename yours; names starting ${ZONE_PREFIX} are the sidecar's.`;
  }
  if (/unknown "nginx_canary_\w+" variable/.test(output) || /host not found in upstream/.test(output)) {
    return `The include file ${include} is not loaded inside http {} (or a service name differs): include it exactly once inside http {}, or set nginx.upstreams_file to a file in a directory nginx.conf already includes there.`;
  }
  return `Fix what nginx names above (paths are in your config directory); the include file ${include} must be loaded exactly once inside http {}.`;
}

/**
 * Warnings about the access log the gates read, from the `access_log` directives of nginx.conf and the
 * files it includes (pure; each a whole `warning:` line, none failing check):
 * - none writes format `nginx_canary`: the gates see no traffic;
 * - one writes it with an `if=` other than `$nginx_canary_log`: that condition may leave out the failed
 *   or retried attempts the gates must count (README "Sampled access log");
 * - with nginx.access_log_sample below 100, one writes it without `if=`: nginx logs every line, each
 *   counts as one request (the gates stay right: docs/design.md "Sampled access log") and the sampling
 *   saves nothing;
 * - one writes it to another file than `nginx.access_log`, the one file the sidecar reads: the requests
 *   logged there are invisible to the gates. Its path is resolved as nginx does, a relative one against
 *   `prefix`; a path with a variable (`$host`), or a relative one while `prefix` is null, is not judged.
 *
 * @param prefix the directory nginx resolves relative log paths against (`nginx.prefix`, else the
 *   compiled `--prefix` of `nginx -V`: flavor.ts `parseVersion`), or null when it is not known.
 */
export function accessLogWarnings(
  config: Config,
  accessLogs: readonly AccessLogDirective[],
  prefix: string | null,
): string[] {
  const ours = accessLogs.filter((a) => a.format === LOG_FORMAT);
  const sample = config.nginx.accessLogSample;
  const condition = `$${LOG_SAMPLE_VARIABLE}`;
  const suggested = `access_log ${config.nginx.accessLog} ${LOG_FORMAT}${sample < 100 ? ` if=${condition}` : ''};`;
  if (ours.length === 0)
    return [
      `warning: no access_log in ${config.nginx.conf} or the files it includes writes format ${LOG_FORMAT}, so the gates will see no traffic: every gate holds and the alert NginxCanaryGateDataStale fires. Add \`${suggested}\` to the server {} that proxies to the service. This warning does not fail check.`,
    ];
  return ours.flatMap((a) => {
    const at = `${a.file}:${a.line}: \`access_log ${a.path} ${LOG_FORMAT}\``;
    if (a.condition !== null && a.condition !== condition)
      return [
        `warning: ${at} logs only if=${a.condition}: the gates must read every line the include's ${condition} keeps (every failed or retried attempt), and another condition can leave failures out, so a failing canary might not drain. Use if=${condition}, or no if=. This warning does not fail check.`,
      ];
    const file = logFileOf(a.path, prefix);
    if (file !== null && file !== path.resolve(config.nginx.accessLog))
      return [
        `warning: ${at} writes ${file}, but the sidecar reads only ${config.nginx.accessLog} (nginx.access_log in weights.yaml): the requests logged there are invisible to the gates. Point that line at ${config.nginx.accessLog}, or set nginx.access_log to the file it writes. This warning does not fail check.`,
      ];
    if (a.condition === null && sample < 100)
      return [
        `warning: ${at} has no if=${condition}, and nginx.access_log_sample is ${sample}: nginx writes every line there, the sidecar counts each as one request (the gates stay right) and the sampling saves nothing. Add if=${condition} to that line (README "Sampled access log"). This warning does not fail check.`,
      ];
    return [];
  });
}

/**
 * The file an `access_log` argument writes, absolute, or null when it cannot be told from the text: a
 * path with a variable (nginx opens it per request), or a relative one without a known `prefix`. A
 * `syslog:` target is returned as written (it is no file). Pure.
 */
function logFileOf(arg: string, prefix: string | null): string | null {
  if (arg.includes('$')) return null;
  if (arg.startsWith('syslog:')) return arg;
  if (path.isAbsolute(arg)) return path.resolve(arg);
  return prefix === null ? null : path.resolve(prefix, arg);
}

/**
 * Runs `check` on a loaded (so already valid) config, writing to `io`, and resolves to the exit code:
 * 0 when the token (if any) is usable, nginx accepts the rendered config and (with a fleet) at least one
 * etcd endpoint answers, whatever the webhook answered; else the highest exit code of what failed (a
 * token error as `run` would exit, 1 for nginx -t, 2 when no etcd endpoint answers).
 * Problems are reported on `io.err`, the `ok:` line and notes on `io.out`.
 *
 * @throws CanaryError when the nginx binary cannot run or state.json is unreadable (as before this split).
 */
export async function checkCommand(config: Config, io: CliIo, opts: CheckCommandOptions = {}): Promise<number> {
  const url = config.alerts.webhookUrl;
  // Asked while nginx -t runs; probeWebhook never rejects, and it is awaited before any return below.
  const webhook = url === null ? null : probeWebhook(url, opts.webhookTimeoutMs ?? WEBHOOK_CHECK_TIMEOUT_MS);
  // Every etcd endpoint at once, like the webhook; probeEtcdHealth never rejects, awaited before any return.
  const fleet = config.fleet;
  const etcd =
    fleet === null
      ? null
      : Promise.all(fleet.endpoints.map((e) => probeEtcdHealth(e, opts.etcdTimeoutMs ?? ETCD_CHECK_TIMEOUT_MS)));
  try {
    let code = 0;
    try {
      checkListenToken(config.sidecar.listen, config.sidecar.tokenFile);
      if (config.sidecar.tokenFile !== null) await readTokenFile(config.sidecar.tokenFile);
    } catch (err) {
      if (!(err instanceof CanaryError)) throw err;
      io.err(err.toUserString());
      code = Math.max(code, err.exitCode);
    }

    const v = await new NginxCommand(config.nginx).version();
    const { weights, generation } = await committedWeights(config);
    const text = renderUpstreams(buildModel(config, weights, generation, v.flavor));
    const res = await checkRendered(config, text);
    const slow = config.services.some((s) => [...s.primary, ...s.canary].some((x) => x.slowStartMs !== null));
    if (v.flavor === 'oss' && slow) {
      io.out(
        `note: nginx ${v.version} is open-source nginx, which rejects slow_start (an NGINX Plus parameter); it is left out of the rendered file and emulated: a canary entering the rotation is ramped up in reloads spaced by min_reload_interval.`,
      );
    }
    if (!res.ok) {
      const liveDir = path.dirname(path.resolve(config.nginx.conf));
      io.err(
        `nginx -t fails with the rendered file swapped in (nginx read a scratch copy of ${liveDir}; nothing live was touched):\n${scratchToLive(res.output, liveDir)}`,
      );
      io.err(`${nginxTestHint(res.output, config)} Then run check again.`);
      code = Math.max(code, 1);
    }
    if (res.ok) {
      // Relative log paths resolve against -p, else the compiled --prefix (nginx -V, read above).
      for (const line of accessLogWarnings(config, res.accessLogs, config.nginx.prefix ?? v.prefix)) io.err(line);
    }
    for (const line of describeOverride(config)) io.out(`note: ${line}`);

    const unreachable = await webhook;
    if (url !== null && unreachable !== null) {
      io.err(
        `warning: alerts.webhook_url ${showUrl(url)} does not answer (${unreachable}): a drain would not page through it (the push would fail; Prometheus rules still fire where they run). Check the URL and that the receiver is up; this warning does not fail check.`,
      );
    }
    const health = await etcd;
    if (fleet !== null && health !== null) code = Math.max(code, await reportFleet(fleet, config.file, health, io));
    if (code === 0) {
      io.out(
        `ok: ${config.file} is valid; nginx ${v.version} (${v.flavor}) accepts the rendered config for ${config.services.map((s) => `${s.name} at ${weights[s.name] ?? 0} %`).join(', ')}.`,
      );
    }
    return code;
  } finally {
    await webhook;
    await etcd;
  }
}
