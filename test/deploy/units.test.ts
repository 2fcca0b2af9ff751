// The shipped supervisor files (README "Running it for real"):
// deploy/systemd/nginx-canary.service (+ the systemd >= 254 backoff drop-in)
// and deploy/launchd/org.nginx-canary.plist. Their keys are checked against
// the supervision numbers of docs/design.md "Running under a supervisor"
// (restart 5 s -> 60 s; crash loop = more than 3 restarts in 5 min, the
// NginxCanaryRestarting rule), the
// unit is run through `systemd-analyze verify` (with ExecStart pointed at a
// binary that exists here), the plist through `plutil -lint` where there is
// one, else through a strict XML plist reader, and the command line both run
// is parsed by the real CLI. Last, the unit's permission model is tried on
// a real nginx whose master runs as root: as an unprivileged user, `nginx -t`
// and `nginx -s reload` (what the sidecar runs) work with exactly the unit's
// two ambient capabilities and fail without them, and a whole apply goes
// through with them.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmod, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { main } from '../../src/cli/main.js';
import { systemClock } from '../../src/clock.js';
import { Applier } from '../../src/nginx/apply.js';
import { NginxCommand } from '../../src/nginx/ctl.js';
import { statfsDisk } from '../../src/nginx/disk.js';
import { startTestNginx } from '../fixtures/nginx/harness.js';
import { repoRoot, binPath, userEnv } from '../fixtures/stack.js';

const UNIT = path.join(repoRoot, 'deploy', 'systemd', 'nginx-canary.service');
const DROP_IN = path.join(repoRoot, 'deploy', 'systemd', 'nginx-canary.service.d', 'backoff.conf');
const PLIST = path.join(repoRoot, 'deploy', 'launchd', 'org.nginx-canary.plist');
const RULES = path.join(repoRoot, 'prometheus', 'nginx-canary.rules.yml');
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
/**
 * Where the documented install (README "Install": `npm install -g --prefix /usr/local <tarball>`) puts
 * the binary; both supervisors run it from there.
 */
const INSTALLED_BIN = '/usr/local/bin/nginx-canary';

/** Restart delays (docs/design.md "Running under a supervisor": backoff 5 s → 60 s), seconds. */
const FIRST_DELAY_S = 5;
const MAX_DELAY_S = 60;
/** docs/design.md "Numbers": more than 3 crashes in 5 minutes is a crash loop. */
const CRASH_WINDOW_S = 300;

/** A systemd unit file: section → key → every value assigned (in order). */
type Unit = Map<string, Map<string, string[]>>;

/** Parses systemd's INI dialect (comments, sections, `Key=value`, repeated keys, no continuation lines). */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[([A-Za-z]+)\]$/.exec(line);
    if (head?.[1]) {
      section = new Map();
      unit.set(head[1], section);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv?.[1] || kv[2] === undefined || !section)
      throw new Error(`line ${i + 1} is not Key=value in a section: ${raw}`);
    section.set(kv[1], [...(section.get(kv[1]) ?? []), kv[2]]);
  }
  return unit;
}

/** The last value of `key` in `section` (systemd: a later assignment wins). */
function value(unit: Unit, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

/** A systemd time span (`5s`, `5min`, `60s`, `1h`, bare seconds) in seconds. */
function seconds(span: string | undefined): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h)?$/.exec(span ?? '');
  if (!m?.[1]) throw new Error(`not a time span: ${span}`);
  const n = Number(m[1]);
  return n * ({ ms: 0.001, s: 1, sec: 1, min: 60, m: 60, h: 3600 }[m[2] ?? 's'] ?? NaN);
}

/**
 * The delay before the n-th automatic restart (n ≥ 1), seconds, as systemd ≥ 254 computes it
 * (src/core/service.c service_restart_usec_next): RestartSec × (max/RestartSec)^((n−1)/steps),
 * RestartMaxDelaySec past the last step; RestartSec throughout without steps.
 */
function restartDelay(n: number, restartSec: number, steps: number, maxDelay: number | null): number {
  if (n <= 1 || steps === 0 || maxDelay === null || restartSec >= maxDelay) return restartSec;
  if (n > steps) return maxDelay;
  return restartSec * (maxDelay / restartSec) ** ((n - 1) / steps);
}

/**
 * Start times (seconds) of a process that dies at once, under a restart policy, until the start
 * limit (`burst` starts within `interval`) stops it or `horizon` passes; `gaveUp` says which.
 */
function crashLoop(
  delay: (n: number) => number,
  burst: number,
  interval: number,
  horizon: number,
): { starts: number[]; gaveUp: boolean } {
  const starts = [0];
  for (let n = 1; ; n++) {
    const next = (starts.at(-1) ?? 0) + delay(n);
    if (next > horizon) return { starts, gaveUp: false };
    if (starts.filter((s) => s > next - interval).length >= burst) return { starts, gaveUp: true };
    starts.push(next);
  }
}

t.test('the systemd unit: user, paths, logs, hardening, restart numbers', async (t) => {
  const unit = parseUnit(await readFile(UNIT, 'utf8'));
  const svc = (k: string): string | undefined => value(unit, 'Service', k);
  t.equal(svc('User'), 'nginx-canary', 'a dedicated user');
  t.equal(svc('Group'), 'nginx-canary');
  t.equal(svc('WorkingDirectory'), '/var/lib/nginx-canary');
  t.equal(svc('StateDirectory'), 'nginx-canary', 'systemd creates /var/lib/nginx-canary for that user');
  t.equal(svc('StateDirectoryMode'), '0700');
  t.equal(svc('ExecStart'), `${INSTALLED_BIN} run -c /etc/nginx-canary/weights.yaml`, 'the installed binary');
  t.equal(svc('Type'), 'exec');
  t.equal(svc('StandardOutput'), 'journal', 'logs to journald (journalctl -u nginx-canary)');
  t.equal(svc('StandardError'), 'journal');
  t.equal(svc('SyslogIdentifier'), 'nginx-canary');
  t.same(
    unit.get('Service')?.get('Environment'),
    ['NGINX_CANARY_LOG_FORMAT=json', 'MALLOC_ARENA_MAX=2'],
    'JSON logs; glibc malloc capped at two arenas (README "Benchmarks", bench:soak)',
  );

  t.equal(svc('Restart'), 'on-failure');
  t.equal(seconds(svc('RestartSec')), FIRST_DELAY_S, `first restart after ${FIRST_DELAY_S} s`);
  t.equal(svc('RestartPreventExitStatus'), '2', 'an invalid config (exit 2) is not restarted');
  t.equal(
    seconds(value(unit, 'Unit', 'StartLimitIntervalSec')),
    CRASH_WINDOW_S,
    'start limit over 5 min (docs/design.md "Numbers")',
  );
  t.equal(value(unit, 'Unit', 'StartLimitBurst'), '10');
  t.notOk(svc('RestartSteps') ?? svc('RestartMaxDelaySec'), 'the base unit has no key systemd 252 lacks');

  t.equal(svc('NoNewPrivileges'), 'yes');
  t.equal(svc('ProtectSystem'), 'strict');
  t.equal(svc('ProtectHome'), 'yes');
  t.equal(svc('PrivateTmp'), 'yes');
  t.same(
    svc('AmbientCapabilities')?.split(/\s+/).sort(),
    ['CAP_DAC_OVERRIDE', 'CAP_KILL'],
    'only CAP_KILL and CAP_DAC_OVERRIDE',
  );
  t.equal(svc('CapabilityBoundingSet'), svc('AmbientCapabilities'), 'and nothing else can be gained');
  const rw = svc('ReadWritePaths')?.split(/\s+/) ?? [];
  for (const p of ['/var/lib/nginx-canary', '/etc/nginx', '/etc/nginx-canary', '/var/log/nginx', '/run']) {
    t.ok(rw.includes(p), `ReadWritePaths has ${p}`);
  }
  t.notOk(svc('MemoryDenyWriteExecute'), "no MemoryDenyWriteExecute (Node's JIT)");

  // The state, snapshot and token paths of examples/weights.production.yaml are where the unit lets it write.
  const example = await readFile(path.join(repoRoot, 'examples', 'weights.production.yaml'), 'utf8');
  for (const key of ['state_file', 'token_file']) {
    const m = new RegExp(`^\\s*${key}: (\\S+)`, 'm').exec(example);
    t.ok(m?.[1] && rw.some((dir) => m[1]?.startsWith(`${dir}/`)), `${key} ${m?.[1]} is under a ReadWritePaths entry`);
  }
  t.match(example, /snapshots: \{ dir: \/var\/lib\/nginx-canary\/snapshots/, 'snapshots under the state directory');
});

t.test('restart backoff: 5 s → 60 s with the drop-in, start limit without it', async (t) => {
  const unit = parseUnit(await readFile(UNIT, 'utf8'));
  const dropIn = parseUnit(await readFile(DROP_IN, 'utf8'));
  const restartSec = seconds(value(unit, 'Service', 'RestartSec'));
  const steps = Number(value(dropIn, 'Service', 'RestartSteps'));
  const max = seconds(value(dropIn, 'Service', 'RestartMaxDelaySec'));
  t.equal(max, MAX_DELAY_S, `RestartMaxDelaySec is ${MAX_DELAY_S} s`);
  const delays = [1, 2, 3, 4, 5, 6, 20].map((n) => Math.round(restartDelay(n, restartSec, steps, max) * 10) / 10);
  t.same(delays, [5, 9.3, 17.3, 32.2, 60, 60, 60], `systemd >= 254 waits ${delays.join(', ')} s`);

  const burst = Number(value(unit, 'Unit', 'StartLimitBurst'));
  const interval = seconds(value(unit, 'Unit', 'StartLimitIntervalSec'));
  const flat = crashLoop(() => restartSec, burst, interval, 3600);
  t.ok(flat.gaveUp, 'systemd 252 (flat 5 s): an instant crash loop hits the start limit');
  t.equal(flat.starts.at(-1), 45, '… after 10 starts in 45 s; the unit stays failed and SidecarDown pages');
  const backoff = crashLoop((n) => restartDelay(n, restartSec, steps, max), burst, interval, 3600);
  t.notOk(backoff.gaveUp, 'systemd >= 254: the backoff never hits the start limit');
  const perHour = backoff.starts.length;
  t.ok(perHour >= 60 && perHour <= 65, `… it keeps retrying about once a minute (${perHour} starts in an hour)`);
  const maxIn5m = Math.max(
    ...backoff.starts.map((s) => backoff.starts.filter((x) => x >= s && x < s + interval).length),
  );
  t.ok(maxIn5m > 3, `${maxIn5m} starts in the worst 5 min: more than 3, so NginxCanaryRestarting fires`);

  const rules = await readFile(RULES, 'utf8');
  t.match(
    rules,
    /alert: NginxCanaryRestarting\s+expr: changes\(nginx_canary_process_start_time_seconds\{job="nginx-canary"\}\[5m\]\) > 3/,
    'the crash-loop rule is "more than 3 restarts in 5 min" (docs/design.md "Numbers")',
  );
});

t.test('systemd-analyze verify', async (t) => {
  const version = spawnSync(SYSTEMD_ANALYZE, ['--version'], { encoding: 'utf8' });
  if (version.status !== 0) {
    t.plan(0, `${SYSTEMD_ANALYZE} is not available here: verify is skipped`);
    return;
  }
  const major = Number(/systemd (\d+)/.exec(version.stdout)?.[1]);
  t.comment(`systemd ${major}`);
  const dir = t.testdir();
  // The one edit: ExecStart must name a binary that exists (verify checks it); the installed
  // /usr/local/bin/nginx-canary does not exist here, so node runs bin/nginx-canary with the same arguments.
  const text = await readFile(UNIT, 'utf8');
  const edited = text.replace(`ExecStart=${INSTALLED_BIN} `, `ExecStart=${process.execPath} ${binPath} `);
  t.not(edited, text, 'ExecStart was pointed at an existing binary');
  const unitFile = path.join(dir, 'nginx-canary.service');
  await writeFile(unitFile, edited);
  const verify = (): { status: number | null; out: string } => {
    const r = spawnSync(SYSTEMD_ANALYZE, ['verify', unitFile], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
    return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() };
  };
  const base = verify();
  t.equal(base.status, 0, 'verify exits 0');
  t.equal(base.out, '', `no warning or error at all${base.out ? `: ${base.out}` : ''}`);

  // The drop-in: clean on systemd >= 254; older systemd warns about exactly its two keys and ignores them.
  await mkdir(path.join(dir, 'nginx-canary.service.d'));
  await cp(DROP_IN, path.join(dir, 'nginx-canary.service.d', 'backoff.conf'));
  const withDropIn = verify();
  t.equal(withDropIn.status, 0, 'verify with the drop-in exits 0');
  const lines = withDropIn.out === '' ? [] : withDropIn.out.split('\n');
  if (major >= 254) {
    t.same(lines, [], 'the drop-in is clean on systemd >= 254');
  } else {
    t.equal(lines.length, 2, `systemd ${major} warns twice: ${withDropIn.out}`);
    t.match(lines[0], /backoff\.conf:\d+: Unknown key '?RestartSteps'? in section '?\[?Service\]?'?, ignoring/);
    t.match(lines[1], /backoff\.conf:\d+: Unknown key '?RestartMaxDelaySec'? in section '?\[?Service\]?'?, ignoring/);
  }

  // A control: verify does report a broken unit, so the clean result above means something.
  await writeFile(unitFile, edited.replace('Restart=on-failure', 'Restart=sometimes'));
  const broken = verify();
  t.match(broken.out, /Restart/, `a bad Restart= value is reported: ${broken.out.split('\n')[0]}`);
});

/** A plist value. */
type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };

/**
 * Reads an XML property list (the DTD's dict, array, key, string, integer, true, false; comments,
 * the XML declaration and DOCTYPE skipped). Strict: any other tag, text outside values or an
 * unbalanced tag throws.
 */
function parsePlist(xml: string): PlistValue {
  const tokens = xml
    .replace(/<\?xml[^>]*\?>/, '')
    .replace(/<!DOCTYPE[^>]*>/, '')
    .replace(/<!--[\s\S]*?-->/g, '')
    .split(/(<[^>]+>)/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
  let i = 0;
  const unescape = (s: string): string =>
    s
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&apos;/g, "'")
      .replace(/&amp;/g, '&');
  const text = (tag: string): string => {
    const open = tokens[i++];
    if (open !== `<${tag}>`) throw new Error(`expected <${tag}>, got ${open}`);
    if (tokens[i] === `</${tag}>`) {
      i++;
      return '';
    }
    const body = tokens[i++] ?? '';
    if (body.startsWith('<')) throw new Error(`unexpected ${body} in <${tag}>`);
    if (tokens[i++] !== `</${tag}>`) throw new Error(`<${tag}> is not closed`);
    return unescape(body);
  };
  const readValue = (): PlistValue => {
    const tok = tokens[i];
    if (tok === '<true/>' || tok === '<false/>') {
      i++;
      return tok === '<true/>';
    }
    if (tok === '<string>') return text('string');
    if (tok === '<integer>') {
      const s = text('integer');
      if (!/^-?\d+$/.test(s)) throw new Error(`<integer>${s}</integer>`);
      return Number(s);
    }
    if (tok === '<array>') {
      i++;
      const out: PlistValue[] = [];
      while (tokens[i] !== '</array>') {
        if (i >= tokens.length) throw new Error('<array> is not closed');
        out.push(readValue());
      }
      i++;
      return out;
    }
    if (tok === '<dict>') {
      i++;
      const out: { [key: string]: PlistValue } = {};
      while (tokens[i] !== '</dict>') {
        if (i >= tokens.length) throw new Error('<dict> is not closed');
        const key = text('key');
        if (key in out) throw new Error(`duplicate key ${key}`);
        out[key] = readValue();
      }
      i++;
      return out;
    }
    throw new Error(`unexpected token ${tok}`);
  };
  if (tokens[i++] !== '<plist version="1.0">') throw new Error('no <plist version="1.0">');
  const root = readValue();
  if (tokens[i++] !== '</plist>' || i !== tokens.length) throw new Error('content after the root value');
  return root;
}

t.test('the launchd plist', async (t) => {
  const xml = await readFile(PLIST, 'utf8');
  const plutil = spawnSync('plutil', ['-lint', PLIST], { encoding: 'utf8' });
  if (plutil.error === undefined) t.equal(plutil.status, 0, `plutil -lint: ${plutil.stdout}`);
  else t.comment('plutil is not available here (it ships with macOS): the plist is read by the strict reader below');
  t.throws(() => parsePlist(xml.replace('</dict>\n</plist>', '</plist>')), 'the reader refuses a broken plist');

  const p = parsePlist(xml) as { [key: string]: PlistValue };
  t.equal(p['Label'], 'org.nginx-canary');
  t.same(p['ProgramArguments'], [INSTALLED_BIN, 'run', '-c', '/usr/local/etc/nginx-canary/weights.yaml']);
  t.equal(p['UserName'], 'nginx-canary', 'a dedicated user');
  t.equal(p['WorkingDirectory'], '/usr/local/var/lib/nginx-canary');
  t.same(p['KeepAlive'], { SuccessfulExit: false }, 'restarted whenever it exits other than 0');
  t.equal(p['ThrottleInterval'], FIRST_DELAY_S, `no restart sooner than ${FIRST_DELAY_S} s after the previous start`);
  t.equal(p['RunAtLoad'], true);
  t.equal(p['Umask'], 0o022);
  t.equal(p['StandardOutPath'], '/usr/local/var/log/nginx-canary/nginx-canary.log');
  t.equal(p['StandardErrorPath'], '/usr/local/var/log/nginx-canary/nginx-canary.err.log');
  t.match(p['EnvironmentVariables'], { NGINX_CANARY_LOG_FORMAT: 'json' });
});

t.test('the real CLI parses the command line both supervisors run', async (t) => {
  const unit = parseUnit(await readFile(UNIT, 'utf8'));
  const argv = value(unit, 'Service', 'ExecStart')?.split(' ').slice(1) ?? [];
  t.same(argv.slice(0, 2), ['run', '-c'], 'run -c <weights.yaml>');
  // A config path that does not exist: `run` must report that very path (so `-c` after the
  // command was honoured) and exit 2 — which the unit does not restart (RestartPreventExitStatus=2).
  const missing = path.join(t.testdir(), 'no', 'weights.yaml');
  let err = '';
  const code = await main(['node', 'nginx-canary', 'run', '-c', missing], {
    out: () => undefined,
    err: (s) => (err += s),
  });
  t.equal(code, 2, 'exit 2');
  t.match(err, missing, 'the -c path after `run` is the one read');
});

t.test('bin/nginx-canary runs as a program through its shebang, with the young-generation cap', async (t) => {
  // Both supervisors exec the file itself: `env -S` must split the node flags, and node must accept them.
  const first = (await readFile(binPath, 'utf8')).split('\n')[0] ?? '';
  t.match(first, /^#!\/usr\/bin\/env -S node .*--max-semi-space-size=2\b/, 'the shebang passes the flag');
  const r = spawnSync(binPath, ['--help'], {
    encoding: 'utf8',
    env: { ...userEnv(), PATH: `${path.dirname(process.execPath)}:${process.env['PATH'] ?? ''}` },
  });
  t.equal(r.status, 0, `exit 0 (stderr: ${r.stderr})`);
  t.match(r.stdout, /Usage: nginx-canary/, 'the CLI answered');
});

t.test('the permission model on a real nginx run by root', async (t) => {
  const setpriv = spawnSync('setpriv', ['--version']);
  if (process.getuid?.() !== 0 || setpriv.error !== undefined) {
    t.plan(0, 'needs root and setpriv (util-linux) to run nginx commands as another user: skipped');
    return;
  }
  const unit = parseUnit(await readFile(UNIT, 'utf8'));
  const caps = (value(unit, 'Service', 'AmbientCapabilities') ?? '').split(/\s+/);
  const h = await startTestNginx(t);
  // Readable by anyone, as /etc/nginx is; the pid file and logs stay root's 0644, as nginx makes them.
  spawnSync('chmod', ['-R', 'a+rX', h.dir]);
  await chmod(h.dir, 0o755);
  const bin = t.testdir();
  await chmod(bin, 0o755);
  /** A wrapper that runs nginx as nobody (65534) with `ambient` capabilities (names without CAP_). */
  const asNobody = async (name: string, ambient: string[]): Promise<NginxCommand> => {
    const file = path.join(bin, name);
    const set = ambient.map((c) => `+${c.toLowerCase()}`).join(',');
    const capArgs = ambient.length === 0 ? '' : `--inh-caps=${set} --ambient-caps=${set} `;
    await writeFile(file, `#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups ${capArgs}nginx "$@"\n`);
    await chmod(file, 0o755);
    return new NginxCommand({ ...h.config.nginx, binary: file });
  };
  const ctlModule = pathToFileURL(path.join(repoRoot, 'dist', 'nginx', 'ctl.js')).href;
  /**
   * NginxCommand.reload() in a node process of its own run as nobody with `ambient` capabilities: the
   * reload signals the master from the sidecar's own process (nginx -s reload only when it cannot), so
   * that process's privileges are the ones that count, not the binary's. 'ok', or the error's message.
   */
  const reloadAsNobody = (ambient: string[]): string => {
    const set = ambient.map((c) => `+${c.toLowerCase()}`).join(',');
    const capArgs = ambient.length === 0 ? [] : [`--inh-caps=${set}`, `--ambient-caps=${set}`];
    const script = `import { NginxCommand } from ${JSON.stringify(ctlModule)};
      await new NginxCommand(${JSON.stringify(h.config.nginx)}).reload().then(
        () => console.log('ok'), (err) => console.log(err.message));`;
    const r = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        ...capArgs,
        process.execPath,
        '--input-type=module',
        '-e',
        script,
      ],
      { encoding: 'utf8', env: userEnv(), timeout: 30_000 },
    );
    return r.stdout.trim() || `no answer: ${r.stderr.trim()}`;
  };
  const tryBoth = async (name: string, ambient: string[]): Promise<{ test: string; reload: string }> => {
    const test = await (await asNobody(name, ambient)).test();
    return { test: test.ok ? 'ok' : test.output, reload: reloadAsNobody(ambient) };
  };

  const none = await tryBoth('none', []);
  t.match(
    none.test,
    /nginx\.pid" failed \(13: Permission denied\)/,
    'no capability: nginx -t cannot open the pid file',
  );
  t.match(
    none.reload,
    /kill\(\d+, 1\) failed \(1: Operation not permitted\)/,
    'no capability: reload cannot signal the master',
  );
  const kill = await tryBoth('kill', ['KILL']);
  t.equal(kill.reload, 'ok', 'CAP_KILL: reload signals the root master');
  t.match(kill.test, /Permission denied/, 'CAP_KILL alone: nginx -t still fails');
  const unitCaps = caps.map((c) => c.replace(/^CAP_/, ''));
  const both = await tryBoth('unit', unitCaps);
  t.same(both, { test: 'ok', reload: 'ok' }, `the unit's ${caps.join(' + ')}: nginx -t and reload work`);

  // A whole apply (preflight -t, snapshot, write, -t, reload, proof of the new generation) with the nginx
  // commands run with only those (the reload's signal comes from this root process; its privileges are
  // the child's above).
  const applier = new Applier({
    config: h.config,
    ctl: await asNobody('unit', unitCaps),
    disk: statfsDisk,
    snapshots: h.snapshots,
    clock: systemClock,
  });
  const res = await applier.apply({ weights: { gateway: 10 }, generation: 2, reason: 'permission model' });
  t.match(res, { ok: true, generation: 2 }, 'an apply as nobody with the unit capabilities succeeds');
  t.equal(await h.realCtl.generation(), 2, 'nginx serves generation 2');
});
