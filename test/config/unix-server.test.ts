// weights.yaml servers on unix-domain sockets (README "Backends on unix sockets"): `unix:/abs/path` is accepted beside
// host:port, normalized into socketPath, and every bad one is refused with file, line, key path and fix.
import t from 'tap';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/load.js';
import { MAX_SOCKET_PATH_BYTES, SAFE_PATH_RE, parseServerAddress } from '../../src/config/validate.js';
import { formatProblem } from '../../src/errors.js';
import { problemsOf, withLine, withLines } from '../fixtures/config/hostile.js';

const FILE = '/srv/canary/weights.yaml';
const PRIMARY = 'services.gateway.primary[0].server';

/** Line 13 of the base file (the primary server) with `server` as written. */
const primary = (server: string): string =>
  withLine(13, `      - { server: ${server}, max_fails: 3, fail_timeout: 20s }`);

t.test('unix:/path servers are accepted in both pools and normalized', async (t) => {
  const c = parseConfig(
    withLines({
      13: '      - { server: unix:/run/app.sock, max_fails: 3, fail_timeout: 20s }',
      15: '      - { server: "unix:/run/gunicorn/canary-1.sock" }\n      - { server: 127.0.0.1:18890 }',
    }),
    FILE,
  );
  const gw = c.services[0];
  t.same(gw?.primary, [
    {
      server: 'unix:/run/app.sock',
      host: '',
      port: 0,
      socketPath: '/run/app.sock',
      maxFails: 3,
      failTimeoutMs: 20_000,
      slowStartMs: null,
    },
  ]);
  t.same(
    gw?.canary.map((s) => [s.server, s.host, s.port, s.socketPath, s.maxFails, s.slowStartMs]),
    [
      ['unix:/run/gunicorn/canary-1.sock', '', 0, '/run/gunicorn/canary-1.sock', 1, 30_000],
      ['127.0.0.1:18890', '127.0.0.1', 18890, null, 1, 30_000],
    ],
    'unix and TCP servers mix in one pool; the canary defaults apply to both',
  );
});

t.test('the longest socket path sun_path holds is accepted, one byte more is not', async (t) => {
  t.equal(MAX_SOCKET_PATH_BYTES, 107, 'sun_path is 108 bytes with its final NUL');
  const longest = `/run/${'a'.repeat(MAX_SOCKET_PATH_BYTES - '/run/'.length - '.sock'.length)}.sock`;
  t.equal(longest.length, 107);
  t.equal(parseConfig(primary(`unix:${longest}`), FILE).services[0]?.primary[0]?.socketPath, longest);
  const [p] = problemsOf(t, primary(`unix:/${longest}`.replace('unix://', 'unix:/r')));
  t.equal(p?.path, PRIMARY);
  t.match(p?.message, /the unix-socket path is 108 bytes, more than the 107 a socket address holds/);
  t.match(p?.fix, /shorter path/);
});

t.test('bad unix servers: message, key path, line and fix', async (t) => {
  const cases: [string, string, RegExp, RegExp][] = [
    ['relative path', 'unix:run/app.sock', /must be unix: followed by the absolute path/, /absolute path after unix:/],
    ['no path', '"unix:"', /must be unix: followed by the absolute path/, /unix:\/run\/app\.sock/],
    ['a directory', 'unix:/run/app/', /must be unix: followed by the absolute path of the socket file/, /absolute/],
    [
      'upper-case prefix',
      'UNIX:/run/app.sock',
      /prefix must be written in lower case/,
      /`server: unix:\/run\/app\.sock`/,
    ],
    ['a space', '"unix:/run/my app.sock"', /characters that are not allowed/, /no spaces, quotes/],
    ['a semicolon', '"unix:/run/app.sock; include /etc/passwd"', /characters that are not allowed/, /nginx file/],
    ['a brace', '"unix:/run/{app}.sock"', /characters that are not allowed/, /; \{ \} \$ #/],
    ['a quote', `"unix:/run/app'.sock"`, /characters that are not allowed/, /quotes/],
    ['a dollar', '"unix:/run/$host.sock"', /characters that are not allowed/, /\$/],
    ['a hash', '"unix:/run/app#1.sock"', /characters that are not allowed/, /#/],
    ['a newline', '"unix:/run/app\\n.sock"', /characters that are not allowed/, /spaces/],
    [
      'a colon',
      '"unix:/run/a:b.sock"',
      /characters that are not allowed/,
      /no : which \$upstream_addr puts between groups/,
    ],
    ['a comma', '"unix:/run/a,b.sock"', /characters that are not allowed/, /letters, digits/],
    [
      'double slash',
      'unix:/run//app.sock',
      /not in normal form \(\/run\/app\.sock\)/,
      /`server: unix:\/run\/app\.sock`/,
    ],
    ['dot segment', 'unix:/run/./app.sock', /not in normal form \(\/run\/app\.sock\)/, /matched to it exactly/],
    ['dot-dot segment', 'unix:/run/x/../app.sock', /not in normal form \(\/run\/app\.sock\)/, /unix:\/run\/app\.sock/],
  ];
  for (const [name, server, message, fix] of cases) {
    const problems = problemsOf(t, primary(server));
    t.equal(problems.length, 1, `${name}: one problem`);
    const [p] = problems;
    t.same([p?.position?.file, p?.position?.line, p?.path], [FILE, 13, PRIMARY], `${name}: file, line, key path`);
    t.match(p?.message, message, `${name}: message`);
    t.match(p?.message, /\(got "/, `${name}: the message shows what was written`);
    t.match(p?.fix, fix, `${name}: fix`);
  }
  const [first] = problemsOf(t, primary('unix:run/app.sock'));
  t.equal(
    formatProblem(first!),
    `${FILE}:13:19: ${PRIMARY}: must be unix: followed by the absolute path of the socket file (got "unix:run/app.sock"). Fix: Write the socket's absolute path after unix:, e.g. \`server: unix:/run/app.sock\``,
    'as `nginx-canary check` prints it',
  );
});

t.test('a socket is listed once across services and pools; paths compare with their case', async (t) => {
  const [dup] = problemsOf(
    t,
    withLines({ 13: '      - { server: unix:/run/app.sock }', 15: '      - { server: unix:/run/app.sock }' }),
  );
  t.same([dup?.position?.line, dup?.path], [15, 'services.gateway.canary[0].server']);
  t.match(dup?.message, 'server unix:/run/app.sock is already listed at services.gateway.primary[0]');
  t.match(dup?.fix, /List each unix socket once across all services and pools/);
  const c = parseConfig(
    withLines({ 13: '      - { server: unix:/run/app.sock }', 15: '      - { server: unix:/run/App.sock }' }),
    FILE,
  );
  t.same(
    c.services[0]?.canary.map((s) => s.socketPath),
    ['/run/App.sock'],
    'another case is another file',
  );
});

t.test('host:port errors keep their text and say that unix:/path is accepted too', async (t) => {
  const [shape] = problemsOf(t, primary('127.0.0.1'));
  t.equal(
    shape?.message,
    'must be host:port (IPv4, hostname or [IPv6], then a port) or unix:/absolute/path (got "127.0.0.1")',
  );
  t.equal(
    shape?.fix,
    'Write host:port with an IPv4 address, a hostname or [IPv6], e.g. `server: 127.0.0.1:18789`, or a unix socket as `server: unix:/run/app.sock`',
  );
  const [port] = problemsOf(t, primary('127.0.0.1:080'));
  t.equal(port?.message, 'port 080 is not a port from 1 to 65535 (got "127.0.0.1:080")', 'other reasons unchanged');
  t.equal(port?.fix, shape?.fix);
  const [dup] = problemsOf(t, withLine(15, '      - { server: 127.0.0.1:18789 }'));
  t.equal(
    dup?.fix,
    'List each host:port once across all services and pools: access-log lines are attributed to a server by its address',
  );
  const [listen] = problemsOf(t, withLine(7, '  listen: unix:/run/sidecar.sock'));
  t.equal(
    listen?.message,
    'must be host:port (IPv4, hostname or [IPv6], then a port) (got "unix:/run/sidecar.sock")',
    'listen addresses stay TCP only',
  );
  const [type] = problemsOf(t, primary('{ path: /run/app.sock }'));
  t.match(type?.message, /or unix:\/run\/app\.sock \(got a mapping\)/, 'the schema says so too');
});

t.test('parseServerAddress', async (t) => {
  t.same(parseServerAddress('unix:/a.sock'), { host: '', port: 0, socketPath: '/a.sock' });
  t.same(parseServerAddress('[::1]:80'), { host: '::1', port: 80, socketPath: null });
  t.same(parseServerAddress('unix:80'), {
    message: 'must be unix: followed by the absolute path of the socket file',
    fix: "Write the socket's absolute path after unix:, e.g. `server: unix:/run/app.sock`",
  });
  t.match(parseServerAddress('Unix:/a.sock'), { message: /lower case/, fix: 'Write `server: unix:/a.sock`' });
  t.match(
    parseServerAddress('UNIX:/a\nb.sock'),
    { message: /characters that are not allowed/ },
    'the path is checked before the prefix, so no fix ever echoes an unsafe path',
  );
});

t.test('an accepted unix server is always within the safe set (property)', async (t) => {
  const unit = fc.constantFrom('a', '1', '.', '/', '-', '_', '~', '+', ':', ';', ' ', '$', '#', '{', '"', ',', '\n');
  let accepted = 0;
  fc.assert(
    fc.property(fc.string({ unit, maxLength: 24 }), (tail) => {
      const r = parseServerAddress(`unix:/${tail}`);
      if ('message' in r) return;
      accepted++;
      const p = r.socketPath ?? '';
      if (!SAFE_PATH_RE.test(p) || p.includes(':') || p.length > MAX_SOCKET_PATH_BYTES || !p.startsWith('/'))
        throw new Error(`accepted ${JSON.stringify(p)}`);
    }),
    { numRuns: 500, seed: 20260601 },
  );
  t.ok(accepted > 0, `${accepted} of 500 paths were accepted (the property is not vacuous)`);
});
