import t from 'tap';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { loadConfig, MAX_CONFIG_BYTES, parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';
import { BASE, problemsOf, withLine, withLines } from '../fixtures/config/hostile.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

t.test("the repo's weights.yaml (the demo) normalizes", async (t) => {
  const c = await loadConfig(path.join(ROOT, 'weights.yaml'));
  const want: Config = {
    file: path.join(ROOT, 'weights.yaml'),
    nginx: {
      binary: 'nginx',
      conf: path.join(ROOT, 'nginx/nginx.conf'),
      prefix: path.join(ROOT, '.run/nginx'),
      managed: true,
      upstreamsFile: path.join(ROOT, 'nginx/conf.d/nginx-canary.conf'),
      accessLog: path.join(ROOT, '.run/nginx/logs/canary.json'),
      statusListen: { host: '127.0.0.1', port: 9465 },
      snapshots: { dir: path.join(ROOT, '.run/snapshots'), keep: 20 },
      minReloadIntervalMs: 1000,
      upstreamKeepalive: 32,
      upstreamKeepaliveTimeoutMs: 4000,
      maxOldGenerations: 3,
      accessLogSample: 100,
    },
    sidecar: {
      listen: { host: '127.0.0.1', port: 9464 },
      stateFile: path.join(ROOT, '.run/state.json'),
      tokenFile: null,
    },
    alerts: { webhookUrl: null, pausedAfterMs: 30 * 60_000 },
    fleet: null,
    services: [
      {
        name: 'gateway',
        split: 'weighted',
        splitKey: '$remote_addr$http_user_agent',
        primary: [
          {
            server: '127.0.0.1:18789',
            host: '127.0.0.1',
            port: 18789,
            socketPath: null,
            maxFails: 3,
            failTimeoutMs: 20_000,
            slowStartMs: null,
          },
        ],
        canary: [
          {
            server: '127.0.0.1:18890',
            host: '127.0.0.1',
            port: 18890,
            socketPath: null,
            maxFails: 1,
            failTimeoutMs: 10_000,
            slowStartMs: 5_000,
          },
        ],
        probe: { health: '/health', ready: '/ready', intervalMs: 500, timeoutMs: 500 },
        rollout: {
          target: 50,
          slice: 5,
          sliceSoakMs: 8000,
          step: 10,
          stepSoakMs: 5000,
          version: null,
          promoteCommand: null,
          promoteTimeoutMs: 300_000,
        },
        gates: {
          windowMs: 10_000,
          minRequests: 20,
          connectP95Ms: 120,
          errorRatio: 0.005,
          probeFailureRatio: 0.05,
          baselineP95Factor: 5,
          minProbes: 10,
          crashLoopRestarts: 3,
          crashLoopWindowMs: 300_000,
        },
        override: { allow: ['127.0.0.1', '::1'] },
      },
    ],
  };
  t.same(c, want);
});

t.test('examples/weights.production.yaml normalizes to the production numbers', async (t) => {
  const c = await loadConfig(path.join(ROOT, 'examples/weights.production.yaml'));
  t.same(c.nginx, {
    binary: '/usr/sbin/nginx',
    conf: '/etc/nginx/nginx.conf',
    prefix: null,
    managed: false,
    upstreamsFile: '/etc/nginx/conf.d/nginx-canary.conf',
    accessLog: '/var/log/nginx/canary.json',
    statusListen: { host: '127.0.0.1', port: 9465 },
    snapshots: { dir: '/var/lib/nginx-canary/snapshots', keep: 20 },
    minReloadIntervalMs: 2000,
    upstreamKeepalive: 32,
    upstreamKeepaliveTimeoutMs: 4000,
    maxOldGenerations: 3,
    accessLogSample: 100,
  });
  t.same(c.sidecar, {
    listen: { host: '127.0.0.1', port: 9464 },
    stateFile: '/var/lib/nginx-canary/state.json',
    tokenFile: '/etc/nginx-canary/token',
  });
  t.same(c.alerts, { webhookUrl: 'http://127.0.0.1:9093/api/v2/alerts', pausedAfterMs: 3_600_000 });
  t.same(
    c.services.map((s) => s.name),
    ['gateway', 'webhooks'],
  );
  const [gw, wh] = c.services;
  t.same(gw?.rollout, {
    target: 0,
    slice: 5,
    sliceSoakMs: 172_800_000,
    step: 10,
    stepSoakMs: 900_000,
    version: null,
    promoteCommand: null,
    promoteTimeoutMs: 300_000,
  });
  t.same(gw?.gates, {
    windowMs: 900_000,
    minRequests: 200,
    connectP95Ms: 120,
    errorRatio: 0.005,
    probeFailureRatio: 0.05,
    baselineP95Factor: 5,
    minProbes: 20,
    crashLoopRestarts: 3,
    crashLoopWindowMs: 300_000,
  });
  t.same(
    gw?.primary.map((s) => [s.server, s.maxFails, s.failTimeoutMs, s.slowStartMs]),
    [
      ['10.0.1.11:18789', 3, 20_000, null],
      ['10.0.1.12:18789', 3, 20_000, null],
    ],
  );
  t.same(
    gw?.canary.map((s) => [s.server, s.maxFails, s.failTimeoutMs, s.slowStartMs]),
    [['10.0.1.21:18890', 1, 10_000, 30_000]],
  );
  t.equal(wh?.split, 'split_clients');
  t.equal(wh?.splitKey, '$remote_addr$http_user_agent');
  t.same(wh?.rollout, {
    target: 25,
    slice: 10,
    sliceSoakMs: 172_800_000,
    step: 10,
    stepSoakMs: 900_000,
    version: null,
    promoteCommand: null,
    promoteTimeoutMs: 300_000,
  });
  t.equal(wh?.gates.minRequests, 50);
  t.equal(wh?.gates.windowMs, 900_000, 'other gates keep their defaults');
  t.same(
    wh?.canary.map((s) => [s.maxFails, s.failTimeoutMs, s.slowStartMs]),
    [[1, 10_000, 30_000]],
    'canary defaults from docs/design.md "Numbers"',
  );
});

t.test('a minimal file takes every default', async (t) => {
  const yaml = [
    'nginx: { conf: /etc/nginx/nginx.conf, upstreams_file: /etc/nginx/u.conf, access_log: /var/log/a.json }',
    'sidecar: ~',
    'alerts:',
    'services:',
    '  api:',
    '    primary: [{ server: 127.0.0.1:1 }]',
    '    canary: [{ server: "[::1]:2" }]',
    '    probe: ~',
    '    rollout: { target: ~, slice: "7.5%" }',
  ].join('\n');
  const c = parseConfig(yaml, '/srv/c/weights.yaml');
  t.equal(c.file, '/srv/c/weights.yaml');
  t.equal(c.nginx.binary, 'nginx');
  t.equal(c.nginx.prefix, null);
  t.equal(c.nginx.managed, false);
  t.same(c.nginx.statusListen, { host: '127.0.0.1', port: 9465 });
  t.equal(c.nginx.minReloadIntervalMs, 2000);
  t.equal(c.sidecar.stateFile, '/srv/c/.nginx-canary/state.json');
  t.same(c.nginx.snapshots, { dir: '/srv/c/.nginx-canary/snapshots', keep: 20 }, 'snapshots default beside state_file');
  t.same(c.sidecar.listen, { host: '127.0.0.1', port: 9464 });
  t.equal(c.sidecar.tokenFile, null);
  t.equal(c.alerts.webhookUrl, null);
  const s = c.services[0];
  t.same(s?.canary[0], {
    server: '[::1]:2',
    host: '::1',
    port: 2,
    socketPath: null,
    maxFails: 1,
    failTimeoutMs: 10_000,
    slowStartMs: 30_000,
  });
  t.same(s?.primary[0], {
    server: '127.0.0.1:1',
    host: '127.0.0.1',
    port: 1,
    socketPath: null,
    maxFails: 3,
    failTimeoutMs: 20_000,
    slowStartMs: null,
  });
  t.same(s?.probe, { health: '/health', ready: '/ready', intervalMs: 5000, timeoutMs: 2000 });
  t.same(s?.rollout, {
    target: 0,
    slice: 7.5,
    sliceSoakMs: 172_800_000,
    step: 10,
    stepSoakMs: 900_000,
    version: null,
    promoteCommand: null,
    promoteTimeoutMs: 300_000,
  });
  t.equal(s?.split, 'weighted');
});

t.test('explicit values are normalized', async (t) => {
  const c = parseConfig(
    withLines({
      1: 'nginx:\n  binary: bin/nginx\n  prefix: run\n  managed: true\n  min_reload_interval: 100ms\n  status_listen: localhost:9000\n  upstream_keepalive: 0\n  upstream_keepalive_timeout: 30s\n  max_old_generations: 5',
      6: 'alerts: { webhook_url: "https://alerts.example.com/api/v2/alerts?x=1", paused_after: 2h }\nsidecar:\n  token_file: secrets/token',
      15: '      - { server: "[2001:db8::1]:443", max_fails: 0, fail_timeout: 1d, slow_start: 0s }\n      - { server: canary-2.internal:8080, slow_start: 1h }',
      11: '    split: split_clients\n    split_key: $cookie_user$remote_addr\n    probe: { health: /-/healthy, ready: /, interval: 100ms, timeout: 100ms }',
      17: '    gates: { window: 1s, min_requests: 1, connect_p95: 1ms, error_ratio: 0.01, probe_failure_ratio: "99.9%", baseline_p95_factor: 1.5 }',
    }),
    '/srv/c/weights.yaml',
  );
  t.equal(c.nginx.binary, '/srv/c/bin/nginx', 'a binary with a / resolves against the config dir');
  t.equal(c.nginx.prefix, '/srv/c/run');
  t.equal(c.nginx.managed, true);
  t.equal(c.nginx.minReloadIntervalMs, 100);
  t.equal(c.nginx.upstreamKeepalive, 0, 'upstream_keepalive 0 = off');
  t.equal(c.nginx.upstreamKeepaliveTimeoutMs, 30_000);
  t.equal(c.nginx.maxOldGenerations, 5);
  t.same(c.nginx.statusListen, { host: 'localhost', port: 9000 });
  t.equal(c.alerts.webhookUrl, 'https://alerts.example.com/api/v2/alerts?x=1');
  t.equal(c.alerts.pausedAfterMs, 7_200_000, 'paused_after 2h');
  t.equal(c.sidecar.tokenFile, '/srv/c/secrets/token');
  const s = c.services[0];
  t.equal(s?.split, 'split_clients');
  t.equal(s?.splitKey, '$cookie_user$remote_addr');
  t.same(s?.probe, { health: '/-/healthy', ready: '/', intervalMs: 100, timeoutMs: 100 });
  t.same(s?.canary, [
    {
      server: '[2001:db8::1]:443',
      host: '2001:db8::1',
      port: 443,
      socketPath: null,
      maxFails: 0,
      failTimeoutMs: 86_400_000,
      slowStartMs: null,
    },
    {
      server: 'canary-2.internal:8080',
      host: 'canary-2.internal',
      port: 8080,
      socketPath: null,
      maxFails: 1,
      failTimeoutMs: 10_000,
      slowStartMs: 3_600_000,
    },
  ]);
  t.same(s?.gates, {
    windowMs: 1000,
    minRequests: 1,
    connectP95Ms: 1,
    errorRatio: 0.0001,
    probeFailureRatio: 0.999,
    baselineP95Factor: 1.5,
    minProbes: 20,
    crashLoopRestarts: 3,
    crashLoopWindowMs: 300_000,
  });
});

t.test('anchors and aliases are followed', async (t) => {
  const c = parseConfig(
    withLines({
      16: '    rollout: &r { target: 20 }',
      // 2m: a 1m window at the default 5 s probe interval holds 12 probes, under the default min_probes 20 (never conclusive).
      17: '    gates: &g { window: 2m }\n  other:\n    primary: [{ server: 127.0.0.1:3 }]\n    canary: [{ server: 127.0.0.1:4 }]\n    rollout: *r\n    gates: *g',
    }),
    '/srv/c/weights.yaml',
  );
  t.equal(c.services[1]?.rollout.target, 20);
  t.equal(c.services[1]?.gates.windowMs, 120_000);
});

t.test('every problem is reported at once, sorted by position', async (t) => {
  const problems = problemsOf(
    t,
    withLines({
      2: '  conf: nginx/nginx.conf\n  bogus: 1',
      13: '      - { server: 127.0.0.1:0, max_fails: 101 }',
      16: '    rollout: { target: 200, slice: 20, step: 0.05 }',
    }),
  );
  t.same(
    problems.map((p) => [p.position?.line, p.path]),
    [
      [3, 'nginx.bogus'],
      [14, 'services.gateway.primary[0].server'],
      [14, 'services.gateway.primary[0].max_fails'],
      [17, 'services.gateway.rollout.target'],
      [17, 'services.gateway.rollout.slice'],
      [17, 'services.gateway.rollout.step'],
    ],
  );
  t.match(problems[0]?.fix, /Remove it; valid keys here: binary, conf/);
});

t.test('positions point at the key for key problems and at the value otherwise', async (t) => {
  const [unknown] = problemsOf(t, withLine(7, '  listen: 127.0.0.1:9464\n  lsiten:\n    - a'));
  t.same([unknown?.position?.line, unknown?.position?.column], [8, 3]);
  t.match(unknown?.fix, /Did you mean "listen"/);
  const empty = parseConfig(withLine(7, '  listen:'), '/srv/canary/weights.yaml');
  t.equal(empty.sidecar.listen.port, 9464, 'an empty value is YAML null: the default');
  const [val] = problemsOf(t, withLine(7, '  listen:\n    127.0.0.1:0'));
  t.same([val?.position?.line, val?.position?.column, val?.path], [8, 5, 'sidecar.listen']);
  const [item] = problemsOf(t, withLine(13, '      - 127.0.0.1:1'));
  t.same([item?.position?.line, item?.path], [13, 'services.gateway.primary[0]']);
  t.match(item?.message, /must be a server entry/);
  t.match(item?.fix, /Write a server entry/);
});

t.test('semantic rules', async (t) => {
  const cases: [string, string, string, RegExp][] = [
    [
      'IPv6 not canonical',
      withLine(13, '      - { server: "[0:0:0:0:0:0:0:1]:80" }'),
      'services.gateway.primary[0].server',
      /canonical form \[::1\]/,
    ],
    ['not IPv6', withLine(13, '      - { server: "[1:2:3]:80" }'), 'services.gateway.primary[0].server', /not an IPv6/],
    [
      'bad hostname',
      withLine(13, '      - { server: -bad-.example:80 }'),
      'services.gateway.primary[0].server',
      /not a valid hostname/,
    ],
    [
      'port with leading zero',
      withLine(13, '      - { server: 127.0.0.1:080 }'),
      'services.gateway.primary[0].server',
      /port 080/,
    ],
    [
      'same server, other case, other service',
      withLine(17, '  two:\n    primary: [{ server: LOCALHOST:9 }]\n    canary: [{ server: localhost:9 }]'),
      'services.two.canary[0].server',
      /already listed at services\.two\.primary\[0\]/,
    ],
    [
      'two services render the same upstream',
      withLine(11, '    split: split_clients') +
        '  gateway_canary:\n    primary: [{ server: 127.0.0.1:5 }]\n    canary: [{ server: 127.0.0.1:6 }]\n',
      'services.gateway_canary',
      /renders nginx upstream "gateway_canary"/,
    ],
    [
      'duration not whole ms',
      withLine(17, '    gates: { connect_p95: 0.5ms }'),
      'services.gateway.gates.connect_p95',
      /whole number of milliseconds/,
    ],
    [
      'duration too short',
      withLine(17, '    gates: { window: 500ms }'),
      'services.gateway.gates.window',
      /from 1s to 1d/,
    ],
    [
      'probe timeout over interval',
      withLine(11, '    probe: { interval: 1s, timeout: 2s }'),
      'services.gateway.probe.timeout',
      /must not exceed probe.interval \(1s\)/,
    ],
    ['listen clash', withLine(7, '  listen: 127.0.0.1:9465'), 'sidecar.listen', /same address as nginx.status_listen/],
    ['error_ratio 0', withLine(17, '    gates: { error_ratio: 0 }'), 'services.gateway.gates.error_ratio', /above 0 %/],
    ['step 0.05', withLine(16, '    rollout: { step: 0.05 }'), 'services.gateway.rollout.step', /from 1 to 50 %/],
    [
      'baseline factor 1',
      withLine(17, '    gates: { baseline_p95_factor: 1 }'),
      'services.gateway.gates.baseline_p95_factor',
      /above 1/,
    ],
    [
      'min_requests 0',
      withLine(17, '    gates: { min_requests: 0 }'),
      'services.gateway.gates.min_requests',
      /from 1 to/,
    ],
    [
      'state inside the conf dir',
      withLine(8, '  state_file: nginx/state.json'),
      'sidecar.state_file',
      /inside \/srv\/canary\/nginx/,
    ],
    [
      'snapshots inside the conf dir',
      withLine(5, '  snapshots: { dir: nginx }'),
      'nginx.snapshots.dir',
      /snapshot directory/,
    ],
    [
      'access_log inside the conf dir',
      withLine(4, '  access_log: nginx/logs/a.json'),
      'nginx.access_log',
      /the access log/,
    ],
    [
      'binary with a space',
      withLine(2, '  conf: nginx/nginx.conf\n  binary: "ng inx"'),
      'nginx.binary',
      /command name/,
    ],
    ['binary like an option', withLine(2, '  conf: nginx/nginx.conf\n  binary: -c'), 'nginx.binary', /command name/],
    [
      'upstreams_file beside the conf dir, not in it',
      withLine(3, '  upstreams_file: nginx-extra/u.conf'),
      'nginx.upstreams_file',
      /is not inside \/srv\/canary\/nginx/,
    ],
    [
      'webhook with a space',
      withLine(6, 'alerts: { webhook_url: "http://a b/" }\nsidecar:'),
      'alerts.webhook_url',
      /http or https URL/,
    ],
    [
      'paused_after under a minute',
      withLine(6, 'alerts: { paused_after: 10s }\nsidecar:'),
      'alerts.paused_after',
      /1m/,
    ],
    [
      'webhook not a URL',
      withLine(6, 'alerts: { webhook_url: "http//x" }\nsidecar:'),
      'alerts.webhook_url',
      /http or https URL/,
    ],
    ['probe path without /', withLine(11, '    probe: { ready: ready }'), 'services.gateway.probe.ready', /URL path/],
    [
      'split_key without $',
      withLine(11, '    split_key: remote_addr'),
      'services.gateway.split_key',
      /nginx variables only/,
    ],
    [
      'managed is a string',
      withLine(2, '  conf: nginx/nginx.conf\n  managed: "yes"'),
      'nginx.managed',
      /true or false/,
    ],
    ['prefix is a number', withLine(2, '  conf: nginx/nginx.conf\n  prefix: 5'), 'nginx.prefix', /nginx -p prefix/],
    [
      'slow_start too long',
      withLine(15, '      - { server: 127.0.0.1:18890, slow_start: 2h }'),
      'services.gateway.canary[0].slow_start',
      /from 0ms to 1h/,
    ],
  ];
  for (const [name, yaml, wantPath, wantMessage] of cases) {
    const [first] = problemsOf(t, yaml);
    t.equal(first?.path, wantPath, `${name}: path`);
    t.match(first?.message, wantMessage, `${name}: message`);
    t.ok(first?.fix, `${name}: fix`);
  }
});

t.test('a path that only becomes unsafe through the config directory is rejected', async (t) => {
  const [first] = problemsOf(t, BASE, '/srv/my canary/weights.yaml');
  t.equal(first?.path, 'nginx.conf');
  t.match(first?.message, /resolves to "\/srv\/my canary\/nginx\/nginx.conf"/);
  t.match(first?.position?.file, '/srv/my canary/weights.yaml');
});

t.test('missing sections are reported at the parent mapping', async (t) => {
  const problems = problemsOf(t, 'alerts: ~\n');
  t.same(
    problems.map((p) => [p.position?.line, p.position?.column, p.path, p.message]),
    [
      [1, 1, 'nginx', 'missing required key "nginx"'],
      [1, 1, 'services', 'missing required key "services"'],
    ],
  );
  t.match(problems[0]?.fix, /at the top level, e\.g\. nginx: \{ conf:/);
});

t.test('YAML-level problems', async (t) => {
  const [dup] = problemsOf(t, withLine(7, '  listen: 127.0.0.1:9464\n  listen: 127.0.0.1:9463'));
  t.same([dup?.position?.line, dup?.position?.column, dup?.path], [8, 3, 'sidecar.listen']);
  const [tag] = problemsOf(t, withLine(7, '  listen: !custom 127.0.0.1:9464'));
  t.same(
    [tag?.path, tag?.fix],
    ['sidecar.listen', 'Remove the `!tag`; weights.yaml takes plain strings, numbers, booleans, lists and mappings'],
  );
  const aliases = [
    'a: &a [x]',
    ...Array.from(
      { length: 12 },
      (_, i) =>
        `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}]`,
    ),
  ];
  const [bomb] = problemsOf(t, aliases.join('\n'));
  t.match(bomb?.message, /cannot be read/, 'an alias bomb is refused, not expanded');
  t.equal(bomb?.path, '');
});

t.test('loadConfig: an unreadable file is a ConfigError naming the file', async (t) => {
  const dir = t.testdir({ 'weights.yaml': BASE });
  const missing = path.join(dir, 'nope.yaml');
  await t.rejects(loadConfig(missing), { name: 'ConfigError', exitCode: 2 });
  try {
    await loadConfig(missing);
  } catch (err) {
    const p = (err as ConfigError).problems[0];
    t.equal(p?.position, null);
    t.match(p?.message, missing);
    t.match(p?.message, /ENOENT/);
  }
  const c = await loadConfig(path.join(dir, 'weights.yaml'));
  t.equal(c.nginx.conf, path.join(dir, 'nginx/nginx.conf'));
  await writeFile(path.join(dir, 'bad.yaml'), 'nginx: [\n');
  await t.rejects(loadConfig(path.join(dir, 'bad.yaml')), ConfigError);
});

t.test('positions inside lists, through aliases and at empty values', async (t) => {
  const [tag] = problemsOf(t, withLine(13, '      - { server: !x 127.0.0.1:18789 }'));
  t.same([tag?.position?.line, tag?.path], [13, 'services.gateway.primary[0].server']);
  const aliased = problemsOf(
    t,
    withLine(
      17,
      '    gates: &g { window: 500ms }\n  other:\n    primary: [{ server: 127.0.0.1:3 }]\n    canary: [{ server: 127.0.0.1:4 }]\n    gates: *g',
    ),
  );
  t.same(
    aliased.map((p) => [p.position?.line, p.path]),
    [
      [17, 'services.gateway.gates.window'],
      [17, 'services.other.gates.window'],
    ],
    'a problem behind an alias points at the anchored value',
  );
  const [empty] = problemsOf(t, withLine(2, '  conf:'));
  t.same([empty?.position?.line, empty?.position?.column, empty?.path], [2, 3, 'nginx.conf']);
  const [flow] = problemsOf(
    t,
    withLines({ 1: 'nginx: { conf, upstreams_file: a, access_log: b }', 2: null, 3: null, 4: null, 5: null }),
  );
  t.same([flow?.position?.line, flow?.position?.column, flow?.path], [1, 10, 'nginx.conf']);
});

t.test('YAML problems next to complex or empty keys still get a key path', async (t) => {
  const [tag] = problemsOf(t, withLine(2, '  ? [a]\n  : 1\n  binary:\n  conf: !x nginx/nginx.conf'));
  t.same([tag?.position?.line, tag?.path], [5, 'nginx.conf']);
  const [flow] = problemsOf(t, withLine(2, '  conf: { a, b: !x c }'));
  t.same([flow?.position?.line, flow?.path], [2, 'nginx.conf.b']);
});

t.test('a problem with a defaulted value points at the nearest written ancestor', async (t) => {
  const [first] = problemsOf(
    t,
    withLines({ 2: '  conf: nginx.conf', 3: '  upstreams_file: conf.d/nginx-canary.conf', 6: null, 7: null, 8: null }),
  );
  t.same([first?.position?.line, first?.position?.column, first?.path], [1, 1, 'sidecar.state_file']);
  t.match(first?.message, /the state file \/srv\/canary\/\.nginx-canary\/state\.json is inside \/srv\/canary/);
});

t.test('a file whose name starts with two dots is still inside the conf dir', async (t) => {
  const c = parseConfig(withLine(3, '  upstreams_file: nginx/..canary.conf'), '/srv/canary/weights.yaml');
  t.equal(c.nginx.upstreamsFile, '/srv/canary/nginx/..canary.conf');
});

t.test('a weights.yaml over MAX_CONFIG_BYTES is refused before parsing, fast', async (t) => {
  const huge = `nginx:\n${Array.from({ length: 30_000 }, (_, i) => `  k${i}: ${i}`).join('\n')}\n`;
  t.ok(Buffer.byteLength(huge) > MAX_CONFIG_BYTES, 'the text is over the limit');
  const started = performance.now();
  const err = problemsOf(t, huge);
  t.equal(err.length, 1);
  t.match(err[0]?.message, /more than the 262144 a weights.yaml may have/);
  t.same(err[0]?.position, { file: '/srv/canary/weights.yaml', line: 1, column: 1 });
  t.ok(performance.now() - started < 5000, 'no quadratic parse');
});
