import t from 'tap';
import { Value } from '@sinclair/typebox/value';
import { TargetBody, WeightsSchema } from '../../src/config/schema.js';
import { formatPath, parseHostPort, validateConfig } from '../../src/config/validate.js';

const minimal = () => ({
  nginx: { conf: '/etc/nginx/nginx.conf', upstreams_file: '/etc/nginx/u.conf', access_log: '/var/log/a.json' },
  services: { api: { primary: [{ server: '127.0.0.1:1' }], canary: [{ server: '127.0.0.1:2' }] } },
});

t.test('validateConfig on a plain object (no source text)', async (t) => {
  const ok = validateConfig(minimal(), '/srv/c/weights.yaml', () => null);
  t.equal(ok.ok, true);
  if (ok.ok) {
    t.equal(ok.value.services[0]?.name, 'api');
    t.equal(ok.value.sidecar.stateFile, '/srv/c/.nginx-canary/state.json');
  }
  const raw = minimal();
  (raw.services.api.primary[0] as Record<string, unknown>).server = 'a;b:1';
  (raw.nginx as Record<string, unknown>).bogus = { deep: true };
  const bad = validateConfig(raw, '/srv/c/weights.yaml', () => null);
  t.equal(bad.ok, false);
  if (!bad.ok) {
    t.same(
      bad.problems.map((p) => [p.position, p.path]),
      [
        [null, 'nginx.bogus'],
        [null, 'services.api.primary[0].server'],
      ],
    );
    t.match(bad.problems[0]?.message, 'unknown key "bogus"');
  }
});

t.test('validateConfig never throws, whatever the input', async (t) => {
  const inputs: unknown[] = [
    undefined,
    null,
    42,
    'x',
    [],
    { nginx: [], services: [] },
    { nginx: { conf: 1 }, services: { a: null } },
    { nginx: null, services: { a: { primary: 'x', canary: [null, 1, 'x'] } } },
    { services: { a: { primary: [{ server: 1 }], canary: [{}], rollout: 'x', gates: [] } } },
  ];
  for (const input of inputs) {
    const r = validateConfig(input, 'w.yaml', () => null);
    t.equal(r.ok, false, JSON.stringify(input) ?? 'undefined');
  }
});

t.test('messages render values safely', async (t) => {
  const raw = minimal();
  (raw.services.api.primary[0] as Record<string, unknown>).server = { host: 'x' };
  (raw.nginx as Record<string, unknown>).conf = `${'x'.repeat(100)}\n;`;
  const r = validateConfig(raw, '/srv/c/w.yaml', () => null);
  t.equal(r.ok, false);
  if (!r.ok) {
    const byPath = Object.fromEntries(r.problems.map((p) => [p.path, p.message]));
    t.match(byPath['services.api.primary[0].server'], '(got a mapping)');
    t.match(byPath['nginx.conf'], /"x{59}…"/, 'long values are cut');
    t.notMatch(byPath['nginx.conf'] ?? '', /\n/, 'no raw newline in a message');
  }
});

t.test('formatPath', async (t) => {
  t.equal(formatPath([]), '');
  t.equal(formatPath(['services', 'gateway', 'canary', 0, 'max_fails']), 'services.gateway.canary[0].max_fails');
  t.equal(formatPath(['services', 'a b', 'x']), 'services["a b"].x');
  t.equal(formatPath(['services', '9lives']), 'services["9lives"]');
});

t.test('parseHostPort', async (t) => {
  const table: [string, ReturnType<typeof parseHostPort>][] = [
    ['127.0.0.1:80', { host: '127.0.0.1', port: 80 }],
    ['[::1]:65535', { host: '::1', port: 65535 }],
    ['[2001:db8::1]:443', { host: '2001:db8::1', port: 443 }],
    ['backend-1.internal:8080', { host: 'backend-1.internal', port: 8080 }],
  ];
  for (const [text, want] of table) t.same(parseHostPort(text), want, text);
  for (const bad of [
    '127.0.0.1',
    ':80',
    '127.0.0.1:65536',
    '[::1:80',
    '[::g]:80',
    '1.2.3:80',
    'a..b:80',
    `${'a'.repeat(64)}:80`,
  ]) {
    t.type(parseHostPort(bad), 'string', bad);
  }
});

t.test('schemas: the raw weights schema and the API body', async (t) => {
  t.equal(Value.Check(WeightsSchema, minimal()), true);
  t.equal(Value.Check(TargetBody, { weight: 60 }), true);
  t.equal(Value.Check(TargetBody, { weight: 12.5 }), true);
  t.equal(Value.Check(TargetBody, { weight: 101 }), false);
  t.equal(Value.Check(TargetBody, { weight: -1 }), false);
  t.equal(Value.Check(TargetBody, { weight: '60' }), false);
  t.equal(Value.Check(TargetBody, { weight: 60, extra: 1 }), false);
  t.equal(Value.Check(TargetBody, {}), false);
});
