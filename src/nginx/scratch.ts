/**
 * `nginx -t` on a scratch copy: what `nginx-canary check` runs. The live
 * config directory and include file are never written, and nginx -t opens no
 * live log file.
 */
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config/types.js';
import {
  applyEdits,
  ConfSyntaxError,
  isGlob,
  parseDirectives,
  segmentMatcher,
  type ConfDirective,
  type ConfEdit,
} from './conf-text.js';
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
  /**
   * The prefix the live nginx resolves relative `load_module` paths against: `nginx.prefix` when set,
   * else this, else the compiled `--prefix` that `nginx -V` prints.
   */
  livePrefix?: string;
}

/** Directives whose first argument is a file nginx -t opens for writing (logs) or creates (temp dirs). */
const WRITTEN_PATHS = new Set([
  'access_log',
  'error_log',
  'client_body_temp_path',
  'proxy_temp_path',
  'fastcgi_temp_path',
  'uwsgi_temp_path',
  'scgi_temp_path',
]);

/**
 * One `access_log` directive the walk of {@link checkRendered} read (nginx docs, ngx_http_log_module:
 * `access_log path [format [buffer=size] [gzip[=level]] [flush=time] [if=condition]]`, or `off`).
 */
export interface AccessLogDirective {
  /** The live file it is in (not the scratch copy): nginx.conf, or a file it includes, as nginx.conf names it. */
  file: string;
  /** 1-based line of the directive in that file. */
  line: number;
  /** Its first argument as written: the log's path, `off`, or `syslog:…`. */
  path: string;
  /** Its format (second argument), or null when it names none (nginx then uses `combined`). */
  format: string | null;
  /** The value of its `if=` parameter (e.g. `$nginx_canary_log`), or null without one. */
  condition: string | null;
}

/** What {@link checkRendered} found: nginx's verdict on the copy, and the copy's access_log directives. */
export interface CheckResult extends TestResult {
  /** Every `access_log` of nginx.conf and the files it includes, in the order the walk read them. */
  accessLogs: AccessLogDirective[];
}

/** Paths of the live layout and of its scratch copy. */
interface Layout {
  liveConfDir: string;
  scratchConf: string;
  scratchPrefix: string;
  /** The live upstreams file (absolute) and where the rendered text sits in the copy. */
  liveInclude: string;
  scratchInclude: string;
  livePrefix: string;
  scratch: string;
  /** The live file each copy of a file included from outside the config directory was made from. */
  copiedFrom: Map<string, string>;
}

function inside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** The live file a file of the scratch copy stands for (see {@link AccessLogDirective.file}). */
function liveName(file: string, at: Layout): string {
  if (file === at.scratchInclude) return at.liveInclude;
  const copied = at.copiedFrom.get(file);
  if (copied !== undefined) return copied;
  return inside(at.scratchConf, file) ? path.join(at.liveConfDir, path.relative(at.scratchConf, file)) : file;
}

/**
 * An `access_log` directive's place and arguments (see {@link AccessLogDirective}), read as nginx reads
 * them (`ngx_http_log_set_log` in src/http/modules/ngx_http_log_module.c): the second argument is the
 * format whatever it looks like, the parameters come after it.
 */
function accessLogOf(d: ConfDirective, file: string): AccessLogDirective {
  const [first, second, ...params] = d.args;
  const condition = params.find((a) => a.value.startsWith('if='))?.value.slice('if='.length) ?? null;
  return { file, line: d.line, path: first?.value ?? '', format: second?.value ?? null, condition };
}

/** The files an include pattern names now, sorted as glob(3) sorts them; a plain path is returned as is. */
export async function expandInclude(pattern: string): Promise<string[]> {
  if (!isGlob(pattern)) return [pattern];
  const segments = pattern.split('/').filter((s) => s !== '');
  let found = [path.parse(pattern).root];
  for (const seg of segments) {
    const next: string[] = [];
    for (const dir of found) {
      if (!isGlob(seg)) {
        next.push(path.join(dir, seg));
        continue;
      }
      const re = segmentMatcher(seg);
      const names = await readdir(dir).catch(() => [] as string[]);
      for (const n of names.sort()) if (re.test(n)) next.push(path.join(dir, n));
    }
    found = next;
  }
  const files: string[] = [];
  for (const f of found) if ((await stat(f).catch(() => null))?.isFile()) files.push(f);
  return files;
}

/**
 * Rewrites one copied config file so that nginx -t reads the copy and writes
 * nothing live: an `include` of a live file inside the config directory (or
 * of the upstreams file) points into the copy; an include of a file outside
 * it is copied in and pointed at; a relative `load_module` becomes absolute
 * against the live prefix (as the live nginx resolves it); an absolute log or
 * temp path goes under the scratch prefix.
 *
 * @param accessLogs receives the file's `access_log` directives, as written (before the rewrite).
 * @returns the files the rewritten file includes (absolute, inside the copy), to be walked next.
 */
async function rewriteFile(
  file: string,
  at: Layout,
  counter: { n: number },
  accessLogs: AccessLogDirective[],
): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  let directives;
  try {
    directives = parseDirectives(text);
  } catch (err) {
    if (err instanceof ConfSyntaxError) return []; // nginx -t reports it, with its own words
    throw err;
  }
  const edits: ConfEdit[] = [];
  const next: string[] = [];
  for (const d of directives) {
    if (d.name === 'access_log') accessLogs.push(accessLogOf(d, liveName(file, at)));
    const arg = d.args[0];
    if (arg === undefined) continue;
    const p = arg.value;
    if (d.name === 'include') {
      let target = path.isAbsolute(p) ? p : path.join(at.scratchConf, p);
      if (path.isAbsolute(p)) {
        if (path.resolve(p) === at.liveInclude) target = at.scratchInclude;
        else if (inside(at.liveConfDir, p)) target = path.join(at.scratchConf, path.relative(at.liveConfDir, p));
        else if (!inside(at.scratch, p) && !isGlob(path.dirname(p))) {
          // Outside the config directory: copy what it names now, so its own paths can be rewritten too.
          const ext = path.join(at.scratch, 'ext', String(counter.n++));
          await mkdir(ext, { recursive: true });
          for (const f of await expandInclude(p)) {
            await cp(f, path.join(ext, path.basename(f)), { dereference: true });
            at.copiedFrom.set(path.join(ext, path.basename(f)), f);
          }
          target = path.join(ext, path.basename(p));
        }
        if (target !== p) edits.push({ arg, value: target });
      }
      if (inside(at.scratch, target)) next.push(...(await expandInclude(target)));
    } else if (d.name === 'load_module' && !path.isAbsolute(p)) {
      edits.push({ arg, value: path.join(at.livePrefix, p) });
    } else if (WRITTEN_PATHS.has(d.name) && path.isAbsolute(p) && !p.includes('$') && !inside(at.scratch, p)) {
      const dir = d.name.endsWith('_temp_path') ? 'tmp' : 'logs';
      edits.push({ arg, value: path.join(at.scratchPrefix, dir, `${counter.n++}-${path.basename(p)}`) });
    }
  }
  if (edits.length > 0) await writeFile(file, applyEdits(text, edits));
  return next;
}

/**
 * Copies the directory of nginx.conf to a temp dir (symlinks followed, so
 * Debian's `modules-enabled` and `sites-enabled` links become files), swaps
 * in `renderedText` as the include file, rewrites the copy's paths (see
 * below), creates a scratch prefix with `logs/` and `tmp/`, runs `nginx -t
 * -p <scratch prefix> -c <scratch nginx.conf>`, and removes the temp dir.
 *
 * Rewritten in the copy, following every `include` from nginx.conf (globs
 * expanded as nginx does): absolute includes of files inside the config
 * directory (Debian's `include /etc/nginx/conf.d/*.conf;`) and of the
 * upstreams file point into the copy; files included from outside it are
 * copied in; relative `load_module` paths are made absolute against the
 * live prefix (`nginx.prefix`, else nginx's compiled `--prefix`), where the
 * live nginx finds them; absolute `access_log`, `error_log` and `*_temp_path`
 * paths go under the scratch prefix. Not rewritten: paths built from
 * variables (nginx -t opens none of them) and read-only files such as
 * certificates (read where they are).
 *
 * @param config reads nginx.conf, nginx.upstreams_file, nginx.prefix and nginx.binary.
 * @param renderedText the include file to test (from renderUpstreams).
 * @returns nginx's verdict (`output` names the scratch paths) and the `access_log` directives the walk
 *   read (live file names; none from a file with a syntax error, which nginx -t reports).
 * @throws CanaryError NC_NGINX_BINARY when nginx cannot run; the fs error when the copy fails;
 *   RangeError when `opts.timeoutMs` is not > 0.
 */
export async function checkRendered(
  config: Config,
  renderedText: string,
  opts: CheckOptions = {},
): Promise<CheckResult> {
  const liveConfDir = path.dirname(path.resolve(config.nginx.conf));
  const liveInclude = path.resolve(config.nginx.upstreamsFile);
  const rel = path.relative(liveConfDir, liveInclude);
  const binary = opts.binary ?? config.nginx.binary;
  const timeouts = opts.timeoutMs === undefined ? {} : { commandTimeoutMs: opts.timeoutMs };
  const livePrefix =
    config.nginx.prefix ??
    opts.livePrefix ??
    (await new NginxCommand({ ...config.nginx, binary }, timeouts).version()).prefix;
  const scratch = await mkdtemp(path.join(opts.tmpDir ?? os.tmpdir(), 'nginx-canary-check-'));
  try {
    const scratchConf = path.join(scratch, 'conf');
    const scratchPrefix = path.join(scratch, 'prefix');
    await cp(liveConfDir, scratchConf, { recursive: true, dereference: true, errorOnExist: false, force: true });
    // An upstreams file outside the conf dir cannot be swapped in the copy; place it where a relative include would look.
    const scratchInclude =
      rel.startsWith('..') || path.isAbsolute(rel)
        ? path.join(scratchConf, path.basename(liveInclude))
        : path.join(scratchConf, rel);
    await mkdir(path.dirname(scratchInclude), { recursive: true });
    await writeFile(scratchInclude, renderedText);
    await mkdir(path.join(scratchPrefix, 'logs'), { recursive: true });
    await mkdir(path.join(scratchPrefix, 'tmp'), { recursive: true });
    const layout: Layout = {
      liveConfDir,
      scratchConf,
      scratchPrefix,
      liveInclude,
      scratchInclude,
      livePrefix,
      scratch,
      copiedFrom: new Map(),
    };
    const main = path.join(scratchConf, path.basename(config.nginx.conf));
    const queue = [main];
    const seen = new Set<string>();
    const counter = { n: 0 };
    const accessLogs: AccessLogDirective[] = [];
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      if (seen.has(file)) continue;
      seen.add(file);
      queue.push(...(await rewriteFile(file, layout, counter, accessLogs)));
    }
    const ctl = new NginxCommand(
      { binary, conf: main, prefix: scratchPrefix, statusListen: config.nginx.statusListen },
      timeouts,
    );
    return { ...(await ctl.test()), accessLogs };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
