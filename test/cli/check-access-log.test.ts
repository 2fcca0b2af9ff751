// `check` reads the access_log lines of nginx.conf and the files it includes (the scratch copy's walk,
// nginx/scratch.ts) and warns about the log the gates read (src/cli/check.ts accessLogWarnings): none in
// format nginx_canary, a foreign `if=`, a sampled config (nginx.access_log_sample < 100) whose
// access_log lacks `if=$nginx_canary_log`, and a line writing another file than nginx.access_log. The
// rules on their own, then `check` on a copy of this machine's stock Debian /etc/nginx with the canary
// log in a site under sites-enabled.
import t from 'tap';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { accessLogWarnings } from '../../src/cli/check.js';
import type { Config } from '../../src/config/types.js';
import type { AccessLogDirective } from '../../src/nginx/scratch.js';
import { copyDebianNginx } from '../fixtures/debian/host.js';
import { cli } from '../fixtures/integration/sidecar.js';
import { makeConfig } from '../fixtures/nginx/config.js';
import { freePort, weightsYaml } from '../fixtures/stack.js';

const base = makeConfig('/srv/x');
const sampled = (sample: number) => ({ ...base, nginx: { ...base.nginx, accessLogSample: sample } });
/** Where makeConfig's nginx prefix is: relative log paths resolve against it. */
const PREFIX = '/srv/x/prefix';
const at = (over: Partial<AccessLogDirective>): AccessLogDirective => ({
  file: '/etc/nginx/sites-enabled/gateway',
  line: 7,
  path: base.nginx.accessLog,
  format: 'nginx_canary',
  condition: null,
  ...over,
});

const warnings = (config: Config, logs: AccessLogDirective[], prefix: string | null = PREFIX): string[] =>
  accessLogWarnings(config, logs, prefix);

t.test('accessLogWarnings: one warning line per problem, none for a log the gates read whole', async (t) => {
  t.same(warnings(sampled(100), [at({})]), [], 'every line, no condition: nothing to say');
  t.same(warnings(sampled(20), [at({ condition: '$nginx_canary_log' })]), [], 'sampled with the condition');
  t.same(
    warnings(sampled(100), [at({ condition: '$nginx_canary_log' })]),
    [],
    'the condition at 100 keeps every line (the map is default "100"): harmless',
  );

  const missing = warnings(sampled(20), [at({})]);
  t.equal(missing.length, 1);
  t.match(
    missing[0],
    /^warning: \/etc\/nginx\/sites-enabled\/gateway:7: `access_log \/srv\/x\/prefix\/logs\/canary\.json/,
  );
  t.match(missing[0], /has no if=\$nginx_canary_log, and nginx\.access_log_sample is 20/);
  t.match(missing[0], /Add if=\$nginx_canary_log to that line/);

  for (const sample of [100, 20]) {
    const foreign = warnings(sampled(sample), [at({ condition: '$loggable' })]);
    t.equal(foreign.length, 1, `a foreign condition at ${sample}`);
    t.match(foreign[0], /gateway:7: .* logs only if=\$loggable: .*a failing canary might not drain/);
  }

  const none = warnings(sampled(20), [
    at({ format: null, path: 'off' }),
    at({ format: 'combined', path: '/var/log/nginx/access.log' }),
  ]);
  t.equal(none.length, 1, 'access_log lines in other formats do not count');
  t.match(none[0], /^warning: no access_log in .* writes format nginx_canary, so the gates will see no traffic/);
  t.match(none[0], /Add `access_log \/srv\/x\/prefix\/logs\/canary\.json nginx_canary if=\$nginx_canary_log;`/);
  t.match(warnings(sampled(100), [])[0], /Add `access_log \S+ nginx_canary;`/, 'no if= suggested at 100');

  const two = warnings(sampled(10), [
    at({ condition: '$nginx_canary_log' }),
    at({ file: '/etc/nginx/sites-enabled/billing', line: 3 }),
  ]);
  t.equal(two.length, 1, 'only the line that lacks the condition');
  t.match(two[0], /sites-enabled\/billing:3:/);
});

t.test('accessLogWarnings: a line writing another file than nginx.access_log is invisible to the gates', async (t) => {
  t.equal(base.nginx.accessLog, `${PREFIX}/logs/canary.json`, 'the fixture config reads the prefix logs');
  const elsewhere = warnings(sampled(100), [at({ path: '/var/log/nginx/canary.json' })]);
  t.equal(elsewhere.length, 1);
  t.match(
    elsewhere[0],
    'warning: /etc/nginx/sites-enabled/gateway:7: `access_log /var/log/nginx/canary.json nginx_canary` writes /var/log/nginx/canary.json, but the sidecar reads only /srv/x/prefix/logs/canary.json (nginx.access_log in weights.yaml)',
  );
  t.match(elsewhere[0], /invisible to the gates\. Point that line at \/srv\/x\/prefix\/logs\/canary\.json/);

  const relative = warnings(sampled(100), [at({ path: 'logs/other.json' })]);
  t.match(relative[0], /`access_log logs\/other\.json nginx_canary` writes \/srv\/x\/prefix\/logs\/other\.json, but/);
  t.same(warnings(sampled(100), [at({ path: 'logs/canary.json' })]), [], 'relative, resolved against the prefix');
  t.same(warnings(sampled(100), [at({ path: 'logs/other.json' })], null), [], 'relative, prefix unknown: not judged');
  t.same(warnings(sampled(100), [at({ path: '/var/log/nginx/$host.json' })]), [], 'a variable: not judged');
  t.same(
    warnings(sampled(100), [at({ path: `${PREFIX}/logs/../logs/./canary.json` })]),
    [],
    'the same file, spelled otherwise',
  );
  t.match(
    warnings(sampled(100), [at({ path: 'syslog:server=127.0.0.1' })])[0],
    /writes syslog:server=127\.0\.0\.1, but the sidecar reads only/,
    'syslog is no file the sidecar reads',
  );

  const two = warnings(sampled(100), [
    at({}),
    at({ file: '/etc/nginx/sites-enabled/billing', line: 2, path: '/tmp/b.json' }),
  ]);
  t.equal(two.length, 1, 'one site right, one elsewhere: the one elsewhere');
  t.match(two[0], /sites-enabled\/billing:2: .* writes \/tmp\/b\.json/);
  t.match(
    warnings(sampled(20), [at({ path: '/tmp/b.json', condition: '$loggable' })])[0],
    /logs only if=\$loggable/,
    'one warning a line: the foreign condition first',
  );
});

t.test('check on a copy of the stock Debian /etc/nginx: the site without if= is named', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'nginx-canary-check-log-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const host = await copyDebianNginx(root, await freePort());
  if (host === null) {
    t.plan(0, 'no /etc/nginx/nginx.conf on this machine (apt-get install nginx-light)');
    return;
  }
  const log = path.join(root, 'var', 'log', 'nginx', 'canary.json');
  const yaml = weightsYaml({
    nginxPort: await freePort(),
    statusPort: await freePort(),
    apiPort: await freePort(),
    primary: '127.0.0.1:18789',
    canary: '127.0.0.1:18890',
    target: 0,
    soak: '1s',
    window: '5s',
    minRequests: 20,
    minReloadInterval: '1s',
    accessLogSample: 20,
  })
    .replace('  conf: conf/nginx.conf', `  conf: ${host.conf}`)
    .replace('  prefix: prefix', '  prefix: ~')
    .replace(
      '  upstreams_file: conf/conf.d/nginx-canary.conf',
      `  upstreams_file: ${host.etcNginx}/conf.d/nginx-canary.conf`,
    )
    .replace('  access_log: prefix/logs/canary.json', `  access_log: ${log}`);
  t.match(yaml, `conf: ${host.conf}`, 'the weights.yaml points at the copy');
  const file = path.join(root, 'weights.yaml');
  await writeFile(file, yaml);
  await mkdir(path.join(root, 'state'), { recursive: true });
  const sitePort = await freePort();
  const site = (accessLog: string): string =>
    `server {\n    listen 127.0.0.1:${sitePort};\n    ${accessLog}\n    location / { proxy_pass http://$nginx_canary_gateway; }\n}\n`;
  const available = path.join(host.etcNginx, 'sites-available', 'gateway');
  await writeFile(available, site(`access_log ${log} nginx_canary;`));
  await symlink(available, path.join(host.etcNginx, 'sites-enabled', 'gateway'));

  const without = await cli(['-c', file, 'check']);
  t.equal(without.code, 0, `a warning does not fail check: ${without.err}`);
  t.match(without.out, /^ok: /m);
  t.match(
    without.err,
    `warning: ${path.join(host.etcNginx, 'sites-enabled', 'gateway')}:3: \`access_log ${log} nginx_canary\` has no if=$nginx_canary_log, and nginx.access_log_sample is 20`,
    'named at the path nginx.conf includes it by, on its line',
  );
  t.equal(without.err.split('\n').filter((l) => l.startsWith('warning:')).length, 1, 'one warning, for that line');

  await writeFile(available, site(`access_log ${log} nginx_canary if=$nginx_canary_log;`));
  const withIf = await cli(['-c', file, 'check']);
  t.equal(withIf.code, 0, withIf.err);
  t.equal(withIf.err, '', 'with the condition: nothing to warn about');
  t.match(withIf.out, /^ok: /m);

  const other = path.join(root, 'var', 'log', 'nginx', 'gateway.json');
  await writeFile(available, site(`access_log ${other} nginx_canary if=$nginx_canary_log;`));
  const elsewhere = await cli(['-c', file, 'check']);
  t.equal(elsewhere.code, 0, elsewhere.err);
  t.match(
    elsewhere.err,
    `warning: ${path.join(host.etcNginx, 'sites-enabled', 'gateway')}:3: \`access_log ${other} nginx_canary\` writes ${other}, but the sidecar reads only ${log}`,
    'a site logging to another file than nginx.access_log is named',
  );
});
