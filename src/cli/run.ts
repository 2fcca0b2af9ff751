/**
 * `nginx-canary run`: the daemon. Starts the sidecar on the loaded config and
 * stops it on SIGINT/SIGTERM. Stopping never changes nginx (a `managed: true`
 * nginx is stopped with it).
 */
import type { Config } from '../config/types.js';
import { createLogger } from '../log.js';
import { startSidecar } from '../main.js';
import type { CliIo } from './main.js';

/**
 * Starts the sidecar on `config` (JSON logs on stdout, one startup line on
 * `io.err`) and runs until SIGINT or SIGTERM; then closes it and resolves to
 * exit code 0. The signal handlers are installed before the start, so a
 * signal during the start (locks held, API not yet up) lets the start finish
 * and then stops cleanly, removing the lock files, instead of killing the
 * process mid-start.
 *
 * @throws CanaryError from startSidecar when it cannot start (nginx binary, state file, token file, API
 *   port; nothing is changed); Error from createLogger on an unknown `NGINX_CANARY_LOG_LEVEL`.
 */
export async function runCommand(config: Config, io: CliIo): Promise<number> {
  const log = createLogger();
  let stopRequested = false;
  let wake: (() => void) | null = null;
  const stop = (): void => {
    stopRequested = true;
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const sidecar = await startSidecar(config, { log });
    io.err(
      `nginx-canary: serving ${sidecar.url} (API, /metrics, status page); Ctrl-C or SIGTERM stops it without touching nginx`,
    );
    if (!stopRequested) await new Promise<void>((resolve) => (wake = resolve));
    await sidecar.close();
    return 0;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
