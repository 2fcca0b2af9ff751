// `services.<name>.override: { allow: [...] }` (README "The X-Canary override"): the X-Canary smoke-test override is off
// unless listed, and every allow entry is an IPv4/IPv6 address or CIDR in the safe character set,
// or it is refused with file, line, column, key path and fix like every other config error.
import t from 'tap';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/load.js';
import { parseAllowEntry, validateConfig } from '../../src/config/validate.js';
import { formatProblem } from '../../src/errors.js';
import { BASE_LINES, problemsOf, withLines } from '../fixtures/config/hostile.js';

const FILE = '/srv/canary/weights.yaml';

/** BASE with `override` (the YAML after `override: `) on line 18, under service gateway. */
const withOverride = (value: string): string => withLines({ 17: `${BASE_LINES[16]}\n    override: ${value}` });

t.test('no override key, or ~: no override', async (t) => {
  t.equal(parseConfig(withLines({}), FILE).services[0]?.override, null, 'absent');
  t.equal(parseConfig(withOverride('~'), FILE).services[0]?.override, null, '~');
});

t.test('addresses and CIDRs of both families are kept as written, in order', async (t) => {
  const c = parseConfig(
    withOverride('{ allow: [127.0.0.1, 10.1.2.0/24, "::1", fd00::/8, 2001:db8::7/128, 0.0.0.0/0] }'),
    FILE,
  );
  t.same(c.services[0]?.override, {
    allow: ['127.0.0.1', '10.1.2.0/24', '::1', 'fd00::/8', '2001:db8::7/128', '0.0.0.0/0'],
  });
  const block = parseConfig(withOverride('\n      allow:\n        - 127.0.0.1\n        - ::1'), FILE);
  t.same(block.services[0]?.override, { allow: ['127.0.0.1', '::1'] }, 'block style, ::1 unquoted');
});

t.test('bad allow entries: message, key path, line, column and fix', async (t) => {
  const cases: [string, string, RegExp, RegExp][] = [
    ['a semicolon', '"127.0.0.1; include /etc/passwd"', /characters that are not allowed/, /nginx geo block/],
    ['a second geo value', '"10.0.0.0/8 1; default 1"', /characters that are not allowed/, /no spaces/],
    ['a brace', '"127.0.0.1 }"', /characters that are not allowed/, /\{ \}/],
    ['a variable', '"$remote_addr"', /characters that are not allowed/, /\$/],
    ['a zone index', '"fe80::1%eth0"', /characters that are not allowed/, /%zone/],
    ['a newline', '"127.0.0.1\\n"', /characters that are not allowed/, /spaces/],
    ['a host name', 'localhost', /is not an IPv4 or IPv6 address or CIDR/, /not host names/],
    ['leading zeros', '127.000.0.1', /is not an IPv4 or IPv6 address or CIDR/, /127\.0\.0\.1/],
    ['two prefixes', '10.0.0.0/8/8', /is not an IPv4 or IPv6 address or CIDR/, /10\.1\.2\.0\/24/],
    ['IPv4 prefix 33', '10.0.0.0/33', /the prefix \/33 is not a number from 0 to 32/, /10\.1\.2\.0\/24/],
    ['IPv6 prefix 129', '"fd00::/129"', /the prefix \/129 is not a number from 0 to 128/, /fd00::\/8/],
    ['a prefix with a leading zero', '10.0.0.0/08', /the prefix \/08 is not a number/, /prefix length/],
    ['an empty prefix', '10.0.0.0/', /the prefix \/ is not a number/, /prefix length/],
    [
      'host bits set',
      '10.1.2.5/24',
      /has address bits set past its \/24 prefix \(the network is 10\.1\.2\.0\/24\)/,
      /`10\.1\.2\.0\/24` for the network, or `10\.1\.2\.5` alone/,
    ],
    [
      'IPv6 host bits set',
      '"fd00::1/8"',
      /has address bits set past its \/8 prefix \(the network is fd00::\/8\)/,
      /`fd00::\/8`/,
    ],
    [
      'IPv6 not canonical',
      '"2001:DB8:0:0::1"',
      /IPv6 address 2001:DB8:0:0::1 must be written in canonical form 2001:db8::1/,
      /`2001:db8::1`/,
    ],
    ['IPv4-mapped IPv6', '"::ffff:127.0.0.1"', /canonical form ::ffff:7f00:1/, /`::ffff:7f00:1`/],
    [
      'IPv4-mapped IPv6, canonical',
      '"::ffff:7f00:1"',
      /IPv4-mapped IPv6 address, which nginx geo never matches/,
      /Write the IPv4 form, `127\.0\.0\.1`/,
    ],
    ['IPv4-mapped IPv6 network', '"::ffff:a01:200/120"', /IPv4-mapped/, /`10\.1\.2\.0\/24`/],
  ];
  for (const [name, entry, message, fix] of cases) {
    const problems = problemsOf(t, withOverride(`{ allow: [127.0.0.1, ${entry}] }`));
    t.equal(problems.length, 1, `${name}: one problem`);
    const [p] = problems;
    t.same(
      [p?.position?.file, p?.position?.line, p?.position?.column, p?.path],
      [FILE, 18, 36, 'services.gateway.override.allow[1]'],
      `${name}: file, line, column of the entry, key path`,
    );
    t.match(p?.message, message, `${name}: message`);
    t.match(p?.message, /\(got "/, `${name}: the message shows what was written`);
    t.match(p?.fix, fix, `${name}: fix`);
  }
  const [first] = problemsOf(t, withOverride('{ allow: [10.1.2.5/24] }'));
  t.equal(
    formatProblem(first!),
    `${FILE}:18:25: services.gateway.override.allow[0]: has address bits set past its /24 prefix (the network is 10.1.2.0/24) (got "10.1.2.5/24"). Fix: Write \`10.1.2.0/24\` for the network, or \`10.1.2.5\` alone for one client (nginx only warns "low address bits are meaningless")`,
    'as `nginx-canary check` prints it',
  );
});

t.test('a network is listed once per service (127.0.0.1 and 127.0.0.1/32 are one)', async (t) => {
  const [dup] = problemsOf(t, withOverride('{ allow: [127.0.0.1, "::1", 127.0.0.1/32] }'));
  t.same([dup?.position?.line, dup?.path], [18, 'services.gateway.override.allow[2]']);
  t.equal(dup?.message, '127.0.0.1/32 is the same network as services.gateway.override.allow[0] (127.0.0.1)');
  t.match(dup?.fix, /List each address or network once/);
});

t.test('the shape: a mapping with a non-empty allow list of strings, nothing else', async (t) => {
  const cases: [string, string, string, RegExp, RegExp][] = [
    ['an empty list', '{ allow: [] }', 'services.gateway.override.allow', /must not be empty/, /allow: \[127\.0\.0\.1/],
    ['no allow', '{}', 'services.gateway.override.allow', /missing required key "allow"/, /Add `allow:`/],
    [
      'a misspelt key',
      '{ allowed: [127.0.0.1] }',
      'services.gateway.override.allowed',
      /unknown key "allowed"/,
      /Did you mean "allow"/,
    ],
    [
      'a number',
      '{ allow: [10] }',
      'services.gateway.override.allow[0]',
      /must be an IPv4 or IPv6 address or CIDR/,
      /Write/,
    ],
    [
      'a bare list',
      '[127.0.0.1]',
      'services.gateway.override',
      /must be a mapping \{ allow: \[client addresses or CIDRs\] \}/,
      /override: \{ allow:/,
    ],
    [
      'true',
      'true',
      'services.gateway.override',
      /must be a mapping/,
      /override: \{ allow: \[127\.0\.0\.1, "::1"\] \}/,
    ],
  ];
  for (const [name, value, path, message, fix] of cases) {
    const problems = problemsOf(t, withOverride(value));
    const p = problems.find((x) => x.path === path);
    t.ok(p, `${name}: a problem at ${path}`, { problems });
    t.equal(p?.position?.line, 18, `${name}: on line 18`);
    t.match(p?.message, message, `${name}: message`);
    t.match(p?.fix, fix, `${name}: fix`);
  }
  const [typo] = problemsOf(t, withLines({ 17: `${BASE_LINES[16]}\n    overide: { allow: [127.0.0.1] }` }));
  t.match(typo?.fix, /Did you mean "override"/, 'a misspelt override key is not silently ignored');
});

t.test('a service with an override claims the name of its geo variable', async (t) => {
  const raw = (override: boolean): unknown => ({
    nginx: { conf: '/etc/nginx/nginx.conf', upstreams_file: '/etc/nginx/u.conf', access_log: '/var/log/a.json' },
    services: {
      a: {
        primary: [{ server: '127.0.0.1:1000' }],
        canary: [{ server: '127.0.0.1:1001' }],
        ...(override ? { override: { allow: ['127.0.0.1'] } } : {}),
      },
      a_override: { primary: [{ server: '127.0.0.1:1002' }], canary: [{ server: '127.0.0.1:1003' }] },
    },
  });
  const r = validateConfig(raw(true), '/srv/weights.yaml', () => null);
  t.match(
    r,
    {
      ok: false,
      problems: [
        { path: 'services.a_override', message: /renders nginx upstream "a_override", which service "a" renders too/ },
      ],
    },
    '$nginx_canary_a_override would be set by the geo of a and the route map of a_override',
  );
  t.equal(validateConfig(raw(false), '/srv/weights.yaml', () => null).ok, true, 'without the override no clash');
});

t.test('parseAllowEntry', async (t) => {
  t.same(parseAllowEntry('10.1.2.0/24'), { family: 4, address: '10.1.2.0', prefix: 24, network: '10.1.2.0/24' });
  t.same(parseAllowEntry('::1'), { family: 6, address: '::1', prefix: 128, network: '::1/128' });
  t.same(parseAllowEntry('::/0'), { family: 6, address: '::', prefix: 0, network: '::/0' });
  t.same(parseAllowEntry('0.0.0.0/0'), { family: 4, address: '0.0.0.0', prefix: 0, network: '0.0.0.0/0' });
  t.same(parseAllowEntry('fd12:3456::/32'), {
    family: 6,
    address: 'fd12:3456::',
    prefix: 32,
    network: 'fd12:3456::/32',
  });
  t.match(parseAllowEntry('fd12:3456::1/32'), { message: /network is fd12:3456::\/32/ });
  t.match(parseAllowEntry('1:2:3:4:5:6:7:8/112'), { message: /network is 1:2:3:4:5:6:7:0\/112/ });
  t.match(parseAllowEntry(''), { message: /characters that are not allowed/ });
  t.match(parseAllowEntry('1'.repeat(65)), { message: /characters that are not allowed/ }, 'too long');
});

t.test('an accepted allow entry is always within 0-9 a-f . : / (property)', async (t) => {
  const unit = fc.constantFrom(
    '1',
    '0',
    '2',
    '5',
    'a',
    'f',
    'F',
    'g',
    '.',
    ':',
    '/',
    ';',
    ' ',
    '$',
    '{',
    '"',
    '%',
    '\n',
  );
  let accepted = 0;
  fc.assert(
    fc.property(fc.string({ unit, maxLength: 20 }), (text) => {
      const r = parseAllowEntry(text);
      if ('message' in r) return;
      accepted++;
      if (!/^[0-9a-f.:/]+$/.test(text)) throw new Error(`accepted ${JSON.stringify(text)}`);
    }),
    { numRuns: 2000, seed: 20261202 },
  );
  fc.assert(
    fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), (ip, prefix) => {
      const r = parseAllowEntry(`${ip}/${prefix}`);
      if ('message' in r) return /address bits set past/.test(r.message) || /not an IPv4/.test(r.message);
      accepted++;
      return r.family === 4 && r.prefix === prefix;
    }),
    { numRuns: 500, seed: 20261202 },
  );
  t.ok(accepted > 0, `${accepted} entries were accepted (the properties are not vacuous)`);
});
