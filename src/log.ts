/**
 * The one root logger (pino). Modules take a child: `log.child({ component })`,
 * and log object first: `log.info({ service, weight }, 'stepped')`.
 *
 * Output is one JSON line per entry (what a log shipper wants), except on a
 * terminal, where pino-pretty prints a human line per entry and one line per
 * gate behind a decision. `NGINX_CANARY_LOG_FORMAT=json|pretty` overrides the
 * choice; `NO_COLOR` (https://no-color.org) turns the colours off.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import pretty from 'pino-pretty';
import { describeGate } from './rollout/gates.js';
import type { GateResult } from './rollout/types.js';

/** pino's Logger type, re-exported so modules take it from here rather than from pino. */
export type { Logger };

/** How log entries are written: JSON lines, or pino-pretty's human lines. */
export type LogFormat = 'json' | 'pretty';

/**
 * The format for an environment: `NGINX_CANARY_LOG_FORMAT` when it says
 * `json` or `pretty`, else `pretty` on a TTY and `json` otherwise (a pipe,
 * a file, journald). Pure.
 */
export function logFormat(env: NodeJS.ProcessEnv, isTTY: boolean): LogFormat {
  const forced = env['NGINX_CANARY_LOG_FORMAT'];
  if (forced === 'json' || forced === 'pretty') return forced;
  return isTTY ? 'pretty' : 'json';
}

/** True unless `NO_COLOR` is set to a non-empty value (https://no-color.org). Pure. */
export function colorAllowed(env: NodeJS.ProcessEnv): boolean {
  return (env['NO_COLOR'] ?? '') === '';
}

/** A GateResult as pretty mode prints it: `<kind> <describeGate>`; anything else as JSON. */
function prettyGate(g: unknown): string {
  const r = g as Partial<GateResult>;
  return typeof r.gate === 'string' && typeof r.verdict === 'string'
    ? `${r.kind ?? ''} ${describeGate(r as GateResult)}`
    : JSON.stringify(g);
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Default: {@link logFormat} of `process.env` and whether stdout is a TTY (JSON when `destination` is given). */
  format?: LogFormat;
  /** Colours in pretty mode (default: {@link colorAllowed} of `process.env`). */
  color?: boolean;
}

/**
 * Creates the root logger with `name: nginx-canary` on every entry.
 * `destination` defaults to stdout; pass a file stream (the demo) or a test
 * sink. Level from `NGINX_CANARY_LOG_LEVEL` (default `info`): one of pino's
 * `trace`, `debug`, `info`, `warn`, `error`, `fatal` or `silent`. In pretty
 * mode, the `gates` of a decision print one gate per line with the numbers
 * behind its verdict; the JSON mode keeps them as data.
 *
 * @throws Error (from pino) when `NGINX_CANARY_LOG_LEVEL` names another level.
 */
export function createLogger(destination?: DestinationStream, opts: LoggerOptions = {}): Logger {
  const level = process.env['NGINX_CANARY_LOG_LEVEL'] ?? 'info';
  const options = { level, base: { name: 'nginx-canary' } };
  const format = opts.format ?? (destination ? 'json' : logFormat(process.env, process.stdout.isTTY === true));
  if (format === 'pretty') {
    const stream = pretty({
      destination: destination ?? 1,
      sync: true,
      colorize: opts.color ?? colorAllowed(process.env),
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,name',
      customPrettifiers: {
        gates: (v) => (Array.isArray(v) ? v.map((g) => `\n  ${prettyGate(g)}`).join('') : JSON.stringify(v)),
      },
    });
    return pino(options, stream);
  }
  return destination ? pino(options, destination) : pino(options);
}

/** A logger that drops everything (tests that do not assert on logs). */
export const silentLogger: Logger = pino({ level: 'silent' });
