// The installable package (README "Install"), done as a user does it: `npm pack`
// (whose `prepack` builds dist/), then `npm install -g --prefix <dir> <tarball>`
// on this Node, then the installed binary: `--version`, `render` and `check`
// on a weights.yaml and an nginx.conf of its own.
//
// The pack runs in a copy of the working tree (node_modules linked, not
// copied), so its `prepack` build never rewrites this checkout's dist/, which
// other test files run through bin/nginx-canary at the same time.
//
// On EBADENGINE: package.json `overrides` only apply inside this repository,
// and npm does not read an npm-shrinkwrap.json inside a tarball installed from
// a file (it only knows a package has one from the registry's `_hasShrinkwrap`
// flag), so the pin that keeps cookie@2 (engines node >= 22, via
// light-my-request >= 6.7) out of a Node 20 install is a direct dependency.
import t from 'tap';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { list } from 'tar';
import { repoRoot, userEnv, weightsYaml } from '../fixtures/stack.js';

const pkg = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
};

/** Top-level entries of the working tree the copy leaves out: installed, built, generated or not packed. */
const NOT_COPIED = new Set(['node_modules', 'dist', '.git', '.tap', '.run', 'coverage', 'artifacts', 'test', 'bench']);

/** What a finished child process left. */
interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `file args` in `cwd`, killed after `timeoutMs`, with the environment of a user's shell: tap's
 * hooks and the `npm_*` variables of an enclosing `npm test` removed, this node first on PATH.
 */
function run(file: string, args: string[], cwd: string, timeoutMs: number): Promise<Ran> {
  const env = userEnv();
  for (const k of Object.keys(env)) if (k.startsWith('npm_') || k === 'INIT_CWD') delete env[k];
  env['PATH'] = `${path.dirname(process.execPath)}:${env['PATH'] ?? ''}`;
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd, env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
        resolve({
          code: e === null ? 0 : typeof e.code === 'number' ? e.code : null,
          signal: e?.signal ?? null,
          stdout,
          stderr: e !== null && typeof e.code !== 'number' && e.signal == null ? `${stderr}${e.message}` : stderr,
        });
      },
    );
  });
}

const show = (r: Ran): string => `exit ${r.code ?? r.signal}\n${r.stdout}${r.stderr}`.trim();

t.test('npm pack, npm install -g of the tarball, and the installed binary', async (t) => {
  const work = await mkdtemp(path.join(tmpdir(), 'nginx-canary-pack-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));

  // 1. npm pack in a copy of the working tree; prepack builds dist/ there.
  const src = path.join(work, 'src');
  await cp(repoRoot, src, {
    recursive: true,
    filter: (from) => !NOT_COPIED.has(path.relative(repoRoot, from).split(path.sep)[0] ?? ''),
  });
  await symlink(path.join(repoRoot, 'node_modules'), path.join(src, 'node_modules'), 'dir');
  const out = path.join(work, 'out');
  await mkdir(out);
  const pack = await run('npm', ['pack', '--pack-destination', out], src, 120_000);
  t.equal(pack.code, 0, `npm pack (with its prepack build) succeeds${pack.code === 0 ? '' : `: ${show(pack)}`}`);
  const tarball = path.join(out, `${pkg.name}-${pkg.version}.tgz`);
  const files: string[] = [];
  await list({ file: tarball, onReadEntry: (e) => files.push(e.path.replace(/^package\//, '')) });
  for (const f of [
    'package.json',
    'README.md',
    'bin/nginx-canary',
    'dist/cli/main.js',
    'dist/main.js',
    'templates/upstreams.conf.ejs',
    'templates/status.html.ejs',
    'nginx/nginx.conf',
    'examples/weights.production.yaml',
    'deploy/systemd/nginx-canary.service',
    'deploy/systemd/nginx-canary.service.d/backoff.conf',
    'deploy/launchd/org.nginx-canary.plist',
    'deploy/logrotate/nginx-canary',
    'prometheus/nginx-canary.rules.yml',
    'grafana/nginx-canary.json',
    'docs/design.md',
    'docs/release.md',
  ]) {
    t.ok(files.includes(f), `the tarball has ${f}`);
  }
  const stray = files.filter(
    (f) =>
      !/^(package\.json|README\.md|nginx\/nginx\.conf|(bin|dist|templates|examples|deploy|prometheus|grafana|docs)\/.+)$/.test(
        f,
      ) || /\.(map|d\.ts)$/.test(f),
  );
  t.same(stray, [], 'nothing else: no sources, tests, source maps, declarations or generated nginx/conf.d');

  // 2. A global install into a prefix of its own, on this Node (20): no engine warning.
  const prefix = path.join(work, 'prefix');
  const install = await run(
    'npm',
    ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball],
    work,
    120_000,
  );
  t.equal(install.code, 0, `npm install -g succeeds${install.code === 0 ? '' : `: ${show(install)}`}`);
  t.notMatch(`${install.stdout}${install.stderr}`, /EBADENGINE/, `no EBADENGINE on Node ${process.version}`);
  t.comment(show(install).split('\n').at(-1) ?? '');
  const installed = path.join(prefix, 'lib', 'node_modules', pkg.name);
  const deps = (await readdir(path.join(installed, 'node_modules'))).filter((d) => !d.startsWith('.'));
  t.ok(deps.includes('fastify'), 'runtime dependencies are installed');
  t.notOk(
    deps.some((d) => ['typescript', 'tap', 'eslint', 'tsx'].includes(d)),
    'development dependencies are not',
  );
  const lmr = JSON.parse(
    await readFile(path.join(installed, 'node_modules', 'light-my-request', 'package.json'), 'utf8'),
  ) as { version: string };
  t.equal(lmr.version, pkg.dependencies['light-my-request'], 'light-my-request as pinned (cookie@1, not cookie@2)');

  // 3. The installed binary, through its shebang, as the units run it.
  const bin = path.join(prefix, 'bin', 'nginx-canary');
  for (const flag of ['--version', '-V']) {
    const v = await run(bin, [flag], work, 30_000);
    t.equal(v.code, 0, `${flag} exits 0`);
    t.equal(v.stdout.trim(), pkg.version, `${flag} prints package.json's version ${pkg.version}`);
  }

  // 4. render and check on a config of its own, with the nginx.conf the package ships.
  const site = path.join(work, 'site');
  await mkdir(path.join(site, 'conf', 'conf.d'), { recursive: true });
  await mkdir(path.join(site, 'prefix', 'logs'), { recursive: true });
  await cp(path.join(installed, 'nginx', 'nginx.conf'), path.join(site, 'conf', 'nginx.conf'));
  const configFile = path.join(site, 'weights.yaml');
  await writeFile(
    configFile,
    weightsYaml({
      nginxPort: 18080,
      statusPort: 9465,
      apiPort: 9464,
      primary: '127.0.0.1:18789',
      canary: '127.0.0.1:18890',
      target: 30,
      soak: '1s',
      window: '5s',
      minRequests: 20,
      minReloadInterval: '1s',
    }),
  );
  const render = await run(bin, ['-c', configFile, 'render', '--flavor', 'oss'], site, 30_000);
  t.equal(render.code, 0, `render exits 0${render.code === 0 ? '' : `: ${show(render)}`}`);
  t.match(render.stdout, /^upstream gateway \{$/m, 'render prints the upstream block');
  t.match(
    render.stdout,
    /server 127\.0\.0\.1:18890 weight=\d+ .*down; # canary/,
    '… the canary at weight 0 (no state yet)',
  );
  const check = await run(bin, ['-c', configFile, 'check'], site, 60_000);
  t.equal(check.code, 0, `check exits 0${check.code === 0 ? '' : `: ${show(check)}`}`);
  t.match(
    check.stdout,
    /^ok: .*weights\.yaml is valid; nginx [\d.]+ \(oss\) accepts the rendered config/m,
    'nginx -t accepts it',
  );
});
