/**
 * Runs an operator's command without a shell (the `rollout.promote_command`
 * of weights.yaml): argv[0] is the program (a name is looked up on PATH),
 * the rest its arguments, bounded by a timeout after which it is killed.
 */
import { execFile } from 'node:child_process';

/** The outcome of {@link runCommand}. */
export interface CommandOutcome {
  /** Exit code, or null when it was killed (timeout) or ended by a signal. */
  code: number | null;
  /** True when it ran past the timeout and was killed with SIGKILL. */
  timedOut: boolean;
  /** stdout then stderr, trimmed, at most the last 64 KiB. */
  output: string;
  /** Wall time it ran, ms. */
  durationMs: number;
}

/** The most output kept (the tail), bytes: enough for a deploy tool's last lines, bounded for the log and the API. */
const MAX_OUTPUT = 64 * 1024;

/**
 * Runs `argv` without a shell and resolves when it ends; never rejects.
 *
 * @param argv program and arguments (at least one element).
 * @param timeoutMs upper bound, ms > 0; the process is then killed with SIGKILL.
 * @returns the exit code (a program that cannot start: code null and the error in `output`).
 * @throws RangeError when argv is empty or timeoutMs is not > 0.
 */
export function runCommand(argv: readonly string[], timeoutMs: number): Promise<CommandOutcome> {
  const [file, ...args] = argv;
  if (file === undefined) throw new RangeError('runCommand: argv is empty');
  if (!(timeoutMs > 0)) throw new RangeError('runCommand: timeoutMs must be > 0');
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * MAX_OUTPUT, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const e = err;
        const text = `${stdout}${stderr}${e && typeof e.code === 'string' ? e.message : ''}`.trim();
        resolve({
          code: e === null ? 0 : typeof e.code === 'number' ? e.code : null,
          timedOut: e?.killed === true,
          output: text.length > MAX_OUTPUT ? text.slice(-MAX_OUTPUT) : text,
          durationMs: performance.now() - t0,
        });
      },
    );
  });
}
