/**
 * `nginx -t` on a scratch copy: what `nginx-canary check` runs. The live
 * config directory and include file are never written.
 */
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config/types.js';
import { NginxCommand } from './ctl.js';
import type { TestResult } from './types.js';

/** Options of {@link checkRendered}. */
export interface CheckOptions {
  /** nginx binary (default `config.nginx.binary`). */
  binary?: string;
  /** Upper bound of the `nginx -t` run, ms > 0 (default 15 000, NginxCommand's default). */
  timeoutMs?: number;
  /** Parent of the scratch directory (default the OS temp dir). */
  tmpDir?: string;
}

/**
 * Copies the directory of nginx.conf to a temp dir (symlinks followed),
 * swaps in `renderedText` as the include file, creates a scratch prefix with
 * `logs/` and `tmp/`, runs `nginx -t -p <scratch prefix> -c <scratch
 * nginx.conf>`, and removes the temp dir.
 *
 * Limits: an `include` or log path written as an absolute path in nginx.conf
 * still points at the live file system (nginx -t reads such includes and
 * creates such logs); paths relative to the conf dir or the prefix are all
 * redirected to the scratch copy.
 *
 * @param config reads nginx.conf, nginx.upstreams_file and nginx.binary.
 * @param renderedText the include file to test (from renderUpstreams).
 * @returns nginx's verdict; `output` names the scratch paths.
 * @throws CanaryError NC_NGINX_BINARY when nginx cannot run; the fs error when the copy fails;
 *   RangeError when `opts.timeoutMs` is not > 0.
 */
export async function checkRendered(
  config: Config,
  renderedText: string,
  opts: CheckOptions = {},
): Promise<TestResult> {
  const confDir = path.dirname(path.resolve(config.nginx.conf));
  const rel = path.relative(confDir, path.resolve(config.nginx.upstreamsFile));
  const scratch = await mkdtemp(path.join(opts.tmpDir ?? os.tmpdir(), 'nginx-canary-check-'));
  try {
    const conf = path.join(scratch, 'conf');
    const prefix = path.join(scratch, 'prefix');
    await cp(confDir, conf, { recursive: true, dereference: true, errorOnExist: false, force: true });
    // An upstreams file outside the conf dir cannot be swapped in the copy; place it where a relative include would look.
    const include =
      rel.startsWith('..') || path.isAbsolute(rel)
        ? path.join(conf, path.basename(config.nginx.upstreamsFile))
        : path.join(conf, rel);
    await mkdir(path.dirname(include), { recursive: true });
    await writeFile(include, renderedText);
    await mkdir(path.join(prefix, 'logs'), { recursive: true });
    await mkdir(path.join(prefix, 'tmp'), { recursive: true });
    const ctl = new NginxCommand(
      {
        binary: opts.binary ?? config.nginx.binary,
        conf: path.join(conf, path.basename(config.nginx.conf)),
        prefix,
        statusListen: config.nginx.statusListen,
      },
      opts.timeoutMs === undefined ? {} : { commandTimeoutMs: opts.timeoutMs },
    );
    return await ctl.test();
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
