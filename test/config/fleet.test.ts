// The `fleet:` section of weights.yaml (src/config/validate.ts, schema.ts): absent → `fleet` null and
// nothing else changes; present → endpoints, prefix, host and lease TTL normalized; every malformed
// value refused with file:line:col, key path, message and a fix that shows a good value.
import t, { type Test } from 'tap';
import { parseConfig, locateIn } from '../../src/config/load.js';
import { fleetPrefixProblem, parseEtcdEndpoint, validateConfig } from '../../src/config/validate.js';
import type { Config } from '../../src/config/types.js';
import { ConfigError, formatProblem, type ConfigProblem } from '../../src/errors.js';
import { BASE, BASE_LINES } from '../fixtures/config/hostile.js';

const FILE = '/srv/canary/weights.yaml';
/** The 1-based line the `fleet:` key of {@link withFleet} sits on (BASE has no fleet section). */
const FLEET_LINE = BASE_LINES.length + 1;
/** A hostname for the tests, so nothing depends on the machine's. */
const HOST = 'test-host-1';

/** BASE with a `fleet:` section of the given lines (each indented by two spaces under `fleet:`). */
function withFleet(...lines: string[]): string {
  return `${BASE}fleet:\n${lines.map((l) => `  ${l}\n`).join('')}`;
}

/** The etcd / prefix lines of a valid fleet section. */
const ETCD = 'etcd: [http://10.0.0.5:2379, http://10.0.0.6:2379, http://10.0.0.7:2379]';
const PREFIX = 'prefix: /nginx-canary/edge-prod';

function parse(yaml: string, hostname = HOST): Config {
  return parseConfig(yaml, FILE, { hostname: () => hostname });
}

/** The problems parseConfig reports for `yaml` (a test failure when it accepts the file). */
function problems(t: Test, yaml: string, hostname = HOST): readonly ConfigProblem[] {
  try {
    parse(yaml, hostname);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  t.fail('the file was accepted');
  return [];
}

/** The one problem `yaml` has: its line, key path, message and fix. */
function only(t: Test, yaml: string, hostname = HOST): ConfigProblem {
  const ps = problems(t, yaml, hostname);
  t.equal(ps.length, 1, ps.map(formatProblem).join('\n'));
  return ps[0] ?? { position: null, path: '', message: '', fix: '' };
}

t.test('without a fleet section: fleet is null and nothing else changes', async (t) => {
  const single = parse(BASE);
  t.equal(single.fleet, null);
  t.equal(parse(`${BASE}fleet: ~\n`).fleet, null, '`fleet: ~` is no fleet either');
  const withOne = parse(withFleet(ETCD, PREFIX));
  t.same({ ...withOne, fleet: null }, single, 'a fleet section changes nothing but config.fleet');
  t.equal(
    parseConfig(BASE, FILE, {
      hostname: () => {
        throw new Error('the hostname is asked only for a fleet section without host');
      },
    }).fleet,
    null,
  );
});

t.test('the design example normalizes', async (t) => {
  const c = parse(withFleet(ETCD, PREFIX, 'host: edge-1', 'lease_ttl: 5s'));
  t.same(c.fleet, {
    endpoints: ['http://10.0.0.5:2379', 'http://10.0.0.6:2379', 'http://10.0.0.7:2379'],
    prefix: '/nginx-canary/edge-prod',
    host: 'edge-1',
    leaseTtlMs: 5000,
  });
});

t.test('defaults: host is the hostname, lease_ttl 5s; `~` means the default', async (t) => {
  t.same(parse(withFleet('etcd: [http://127.0.0.1:2379]', 'prefix: /a')).fleet, {
    endpoints: ['http://127.0.0.1:2379'],
    prefix: '/a',
    host: HOST,
    leaseTtlMs: 5000,
  });
  const c = parse(withFleet('etcd: [http://127.0.0.1:2379]', 'prefix: /a', 'host: ~', 'lease_ttl: ~'), 'box.lan');
  t.equal(c.fleet?.host, 'box.lan');
  t.equal(c.fleet?.leaseTtlMs, 5000);
  const real = validateConfig(
    {
      nginx: { conf: '/etc/nginx/nginx.conf', upstreams_file: '/etc/nginx/u.conf', access_log: '/var/log/a.json' },
      services: { api: { primary: [{ server: '127.0.0.1:1' }], canary: [{ server: '127.0.0.1:2' }] } },
      fleet: { etcd: ['http://127.0.0.1:2379'], prefix: '/a', host: 'given' },
    },
    FILE,
    () => null,
  );
  t.equal(real.ok && real.value.fleet?.host, 'given', 'validateConfig without options takes a given host as is');
});

t.test('etcd: the accepted forms', async (t) => {
  const cases: [string, string][] = [
    ['http://10.0.0.5:2379', 'http://10.0.0.5:2379'],
    ['https://etcd-1.example.com:2379', 'https://etcd-1.example.com:2379'],
    ['http://[::1]:2379', 'http://[::1]:2379'],
    ['http://127.0.0.1:2379/', 'http://127.0.0.1:2379'],
    ['http://localhost:1', 'http://localhost:1'],
  ];
  for (const [text, want] of cases) t.equal(parseEtcdEndpoint(text), want, text);
  const c = parse(withFleet('etcd:', '  - http://10.0.0.5:2379', '  - https://10.0.0.6:2379/', PREFIX));
  t.same(c.fleet?.endpoints, ['http://10.0.0.5:2379', 'https://10.0.0.6:2379']);
});

t.test('etcd: a malformed URL names its own line and shows a good URL', async (t) => {
  const cases: { entry: string; message: RegExp; fix: RegExp }[] = [
    { entry: '10.0.0.5:2379', message: /^must be an http:\/\/ or https:\/\/ URL with a host and a port/, fix: /./ },
    { entry: 'grpc://10.0.0.5:2379', message: /^must start with http:\/\/ or https:\/\/, not grpc:\/\//, fix: /./ },
    { entry: 'HTTP://10.0.0.5:2379', message: /not HTTP:\/\//, fix: /./ },
    { entry: 'unix:///run/etcd.sock', message: /not unix:\/\//, fix: /./ },
    { entry: 'http://10.0.0.5', message: /^has no port/, fix: /`http:\/\/10\.0\.0\.5:2379`.*default client port/ },
    { entry: '"http://[::1]"', message: /^has no port/, fix: /`http:\/\/\[::1\]:2379`/ },
    { entry: 'http://:2379', message: /^must be host:port/, fix: /./ },
    { entry: 'http://', message: /^has no host/, fix: /./ },
    {
      entry: 'http://10.0.0.5:2379/v3',
      message: /^must not have a path, query or fragment/,
      fix: /`http:\/\/10\.0\.0\.5:2379`/,
    },
    { entry: 'http://10.0.0.5:2379?x=1', message: /path, query or fragment/, fix: /./ },
    { entry: 'http://10.0.0.5:2379#a', message: /path, query or fragment/, fix: /./ },
    { entry: 'http://10.0.0.5:99999', message: /^port 99999 is not a port from 1 to 65535/, fix: /./ },
    { entry: 'http://10.0.0.5:0', message: /^port 0 is not a port/, fix: /./ },
    { entry: 'http://10.0.0.5:abc', message: /^must be host:port/, fix: /./ },
    { entry: 'http://10.0.0.256:2379', message: /is not an IPv4 address/, fix: /./ },
    { entry: 'http://a..b:2379', message: /is not a valid hostname/, fix: /./ },
    { entry: '"http://[::0:1]:2379"', message: /canonical form/, fix: /./ },
    { entry: 'http://user@10.0.0.5:2379', message: /^must not carry a user or password/, fix: /Remove user:password@/ },
    { entry: '"http://10.0.0.5:2379 "', message: /^must be a URL without spaces/, fix: /./ },
  ];
  for (const c of cases) {
    t.test(c.entry, async (t) => {
      const p = only(t, withFleet(`etcd: [http://10.0.0.7:2379, ${c.entry}]`, PREFIX));
      t.same(p.position, { file: FILE, line: FLEET_LINE + 1, column: 32 }, 'the entry itself');
      t.equal(p.path, 'fleet.etcd[1]');
      t.match(p.message, c.message);
      t.match(p.message, / \(got "/, 'the message quotes the entry');
      t.notMatch(p.message, /nginx/, 'etcd URLs are not nginx addresses');
      t.match(p.fix, c.fix);
      t.match(p.fix, /`https?:\/\/[^`]+:2379`/, 'the fix shows a good URL');
    });
  }
  t.test('in a block list, the line of the entry', async (t) => {
    const p = only(t, withFleet('etcd:', '  - http://10.0.0.5:2379', '  - http://10.0.0.6', PREFIX));
    t.same(p.position, { file: FILE, line: FLEET_LINE + 3, column: 7 });
    t.equal(p.path, 'fleet.etcd[1]');
    t.equal(
      formatProblem(p),
      `${FILE}:${FLEET_LINE + 3}:7: fleet.etcd[1]: has no port (got "http://10.0.0.6"). Fix: Add the client port, e.g. \`http://10.0.0.6:2379\` (2379 is etcd's default client port)`,
    );
  });
  t.test('a password is never repeated', async (t) => {
    const p = only(t, withFleet('etcd: ["http://root:s3cret@10.0.0.5:2379"]', PREFIX));
    t.equal(
      p.message,
      'must not carry a user or password (user:password@ before the host) (got "http://root:***@10.0.0.5:2379")',
    );
    t.notMatch(formatProblem(p), /s3cret/);
    const at = only(t, withFleet('etcd: ["http://root:p@ss@10.0.0.5:2379/x"]', PREFIX));
    t.notMatch(formatProblem(at), /p@ss|ss@/);
  });
});

t.test('etcd: a list of at least one string, each URL once', async (t) => {
  const dup = only(t, withFleet('etcd: [http://10.0.0.5:2379, http://10.0.0.6:2379, http://10.0.0.5:2379/]', PREFIX));
  t.equal(dup.path, 'fleet.etcd[2]');
  t.equal(dup.message, 'http://10.0.0.5:2379 is already listed at fleet.etcd[0]');
  t.equal(dup.fix, 'List each etcd member once');
  t.equal(
    only(t, withFleet('etcd: [http://Etcd-1:2379, http://etcd-1:2379]', PREFIX)).path,
    'fleet.etcd[1]',
    'host names without case',
  );

  const empty = only(t, withFleet('etcd: []', PREFIX));
  t.equal(empty.path, 'fleet.etcd');
  t.match(empty.message, /^must not be empty: write a list of etcd client URLs/);
  t.match(empty.fix, /etcd: \[http:\/\/10\.0\.0\.5:2379, /);

  const scalar = only(t, withFleet('etcd: http://10.0.0.5:2379', PREFIX));
  t.equal(scalar.path, 'fleet.etcd');
  t.match(scalar.message, /^must be a list of etcd client URLs .* \(got "http:\/\/10\.0\.0\.5:2379"\)/);
  t.match(scalar.fix, /Write it like `etcd: \[http:\/\/10\.0\.0\.5:2379, /);

  const num = only(t, withFleet('etcd: [2379]', PREFIX));
  t.equal(num.path, 'fleet.etcd[0]');
  t.match(num.message, /^must be an etcd client URL such as http:\/\/10\.0\.0\.5:2379 \(got 2379\)/);

  const missing = only(t, withFleet(PREFIX));
  t.equal(missing.path, 'fleet.etcd');
  t.equal(missing.message, 'missing required key "etcd"');
  t.match(missing.fix, /Add `etcd:` under fleet, e\.g\. etcd: \[http:/);
  t.equal(missing.position?.line, FLEET_LINE + 1, 'points at the fleet mapping');
});

t.test('prefix: one absolute key path in safe characters', async (t) => {
  for (const ok of ['/a', '/nginx-canary/edge-prod', '/x.y/z_1/W-2', '/...a', '/a..b'])
    t.equal(fleetPrefixProblem(ok), null, ok);
  const cases: [string, RegExp, RegExp][] = [
    ['nginx-canary', /^must start with \//, /prefix: \/nginx-canary\/edge-prod/],
    ['/', /^must name a key path below \//, /One fleet is one key prefix/],
    ['/nginx-canary/', /^must not end with \//, /^Write `prefix: \/nginx-canary`$/],
    ['/a//b', /^must not have an empty \(\/\/\), \. or \.\. segment/, /the very same prefix/],
    ['/a/./b', /segment/, /./],
    ['/a/..', /segment/, /./],
    ['/a//', /segment/, /./],
    ['"/a b"', /^must be at most 256 letters, digits and \. _ \/ - only/, /prefix: \/nginx-canary\/edge-prod/],
    ['"/a;b"', /only/, /./],
    ['/ünï', /only/, /./],
    [`/${'a'.repeat(256)}`, /at most 256/, /./],
  ];
  for (const [text, message, fix] of cases) {
    const p = only(t, withFleet(ETCD, `prefix: ${text}`));
    t.equal(p.path, 'fleet.prefix', text);
    t.equal(p.position?.line, FLEET_LINE + 2, `${text}: line`);
    t.match(p.message, message, text);
    t.match(p.message, /\(got "/, `${text}: quoted`);
    t.match(p.fix, fix, text);
  }
  const missing = only(t, withFleet(ETCD));
  t.equal(missing.message, 'missing required key "prefix"');
  t.match(missing.fix, /Add `prefix:` under fleet, e\.g\. prefix: \/nginx-canary\/edge-prod/);
  const num = only(t, withFleet(ETCD, 'prefix: 7'));
  t.match(num.message, /^must be an etcd key prefix such as \/nginx-canary\/edge-prod \(got 7\)/);
});

t.test('host: 1-63 of A-Z a-z 0-9 . _ -; the hostname stands in only when valid', async (t) => {
  for (const ok of ['edge-1', 'EDGE_1.lan', 'a', 'x'.repeat(63)])
    t.equal(parse(withFleet(ETCD, PREFIX, `host: ${ok}`)).fleet?.host, ok, ok);
  for (const bad of ['"edge 1"', 'edge/1', 'x'.repeat(64), '""', 'édge']) {
    const p = only(t, withFleet(ETCD, PREFIX, `host: ${bad}`));
    t.equal(p.path, 'fleet.host', bad);
    t.equal(p.position?.line, FLEET_LINE + 3, `${bad}: line`);
    t.match(p.message, /^must be 1 to 63 letters, digits, \. _ or - \(got /, bad);
    t.match(p.fix, /e\.g\. `host: edge-1`/);
  }
  const long = `${'h'.repeat(60)}.example.com`;
  const p = only(t, withFleet(ETCD, PREFIX), long);
  t.equal(p.path, 'fleet.host');
  t.equal(p.position?.line, FLEET_LINE + 1, 'no host key: the fleet mapping');
  t.match(p.message, /^is not set, and this machine's hostname "h+…" is not a fleet host name/);
  t.match(p.fix, /e\.g\. `host: edge-1`/);
  t.equal(parse(withFleet(ETCD, PREFIX, 'host: edge-1'), long).fleet?.host, 'edge-1', 'a given host needs no hostname');
});

t.test('lease_ttl: whole seconds from 2s to 60s (etcd lease TTLs are whole seconds)', async (t) => {
  for (const [text, ms] of [
    ['2s', 2000],
    ['60s', 60_000],
    ['1m', 60_000],
    ['2000ms', 2000],
    ['10s', 10_000],
  ] as const)
    t.equal(parse(withFleet(ETCD, PREFIX, `lease_ttl: ${text}`)).fleet?.leaseTtlMs, ms, text);
  const cases: [string, string, string][] = [
    [
      '2500ms',
      'must be a whole number of seconds (got 2500ms); etcd lease TTLs are whole seconds',
      'Write it like `lease_ttl: 3s`',
    ],
    [
      '1.5s',
      'must be a whole number of seconds (got 1.5s); etcd lease TTLs are whole seconds',
      'Write it like `lease_ttl: 2s`',
    ],
    [
      '500ms',
      'must be a whole number of seconds (got 500ms); etcd lease TTLs are whole seconds',
      'Write it like `lease_ttl: 2s`',
    ],
    ['1s', 'must be from 2s to 1m (got 1s)', 'Choose a duration in that range; the default is 5s'],
    ['61s', 'must be from 2s to 1m (got 61s)', 'Choose a duration in that range; the default is 5s'],
    ['1h', 'must be from 2s to 1m (got 1h)', 'Choose a duration in that range; the default is 5s'],
  ];
  for (const [text, message, fix] of cases) {
    const p = only(t, withFleet(ETCD, PREFIX, `lease_ttl: ${text}`));
    t.equal(p.path, 'fleet.lease_ttl', text);
    t.equal(p.position?.line, FLEET_LINE + 3, `${text}: line`);
    t.equal(p.message, message, text);
    t.equal(p.fix, fix, text);
  }
  const unitless = only(t, withFleet(ETCD, PREFIX, 'lease_ttl: 5'));
  t.match(unitless.message, /^must be a duration with a unit/);
  t.match(unitless.fix, /lease_ttl: 5s/);
});

t.test('unknown keys and wrong types, as elsewhere in weights.yaml', async (t) => {
  const typo = only(t, withFleet(ETCD, PREFIX, 'lease-ttl: 5s'));
  t.equal(typo.path, 'fleet["lease-ttl"]');
  t.equal(typo.position?.line, FLEET_LINE + 3);
  t.equal(typo.message, 'unknown key "lease-ttl"');
  t.equal(typo.fix, 'Did you mean "lease_ttl"? Valid keys here: etcd, prefix, host, lease_ttl');
  const other = only(t, withFleet(ETCD, PREFIX, 'members: 3'));
  t.equal(other.fix, 'Remove it; valid keys here: etcd, prefix, host, lease_ttl');
  const list = only(t, `${BASE}fleet: [http://10.0.0.5:2379]\n`);
  t.equal(list.path, 'fleet');
  t.match(list.message, /^must be a mapping \{ etcd, prefix, host, lease_ttl \} \(got a list\)/);
  t.match(list.fix, /fleet: \{ etcd: \[http:\/\/127\.0\.0\.1:2379\], prefix: /);
  const top = only(t, `${BASE}fleets: {}\n`);
  t.match(top.fix, /^Did you mean "fleet"\?/);
});

t.test('several problems are reported together, in file order', async (t) => {
  const ps = problems(
    t,
    withFleet('etcd: [10.0.0.5:2379, http://10.0.0.6]', 'prefix: edge', 'host: "a b"', 'lease_ttl: 1s'),
  );
  t.same(
    ps.map((p) => p.path),
    ['fleet.etcd[0]', 'fleet.etcd[1]', 'fleet.prefix', 'fleet.host', 'fleet.lease_ttl'],
  );
});

t.test('locateIn: the position of a key path in a loaded file', async (t) => {
  const text = withFleet(ETCD, PREFIX);
  t.same(locateIn(text, FILE, ['fleet', 'etcd'], 'key'), { file: FILE, line: FLEET_LINE + 1, column: 3 });
  t.same(locateIn(text, FILE, ['fleet', 'etcd', 2]), { file: FILE, line: FLEET_LINE + 1, column: 54 });
  t.same(locateIn(text, FILE, ['fleet', 'nothing'], 'key'), { file: FILE, line: FLEET_LINE + 1, column: 3 });
  t.equal(locateIn('a: [', FILE, ['a']), null, 'broken YAML');
  t.equal(locateIn('', FILE, ['a']), null, 'empty');
});
