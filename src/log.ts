/**
 * The one root logger (pino). Modules take a child: `log.child({ component })`,
 * and log object first: `log.info({ service, weight }, 'stepped')`.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

/** pino's Logger type, re-exported so modules take it from here rather than from pino. */
export type { Logger };

/**
 * Creates the root logger: JSON lines, `name: nginx-canary` on every line.
 * `destination` defaults to stdout; pass a file stream (the demo) or a test
 * sink. Level from `NGINX_CANARY_LOG_LEVEL` (default `info`): one of pino's
 * `trace`, `debug`, `info`, `warn`, `error`, `fatal` or `silent`.
 *
 * @throws Error (from pino) when `NGINX_CANARY_LOG_LEVEL` names another level.
 */
export function createLogger(destination?: DestinationStream): Logger {
  const level = process.env['NGINX_CANARY_LOG_LEVEL'] ?? 'info';
  return destination
    ? pino({ level, base: { name: 'nginx-canary' } }, destination)
    : pino({ level, base: { name: 'nginx-canary' } });
}

/** A logger that drops everything (tests that do not assert on logs). */
export const silentLogger: Logger = pino({ level: 'silent' });
