import t from 'tap';
import fc from 'fast-check';
import {
  applyEdits,
  ConfSyntaxError,
  isGlob,
  parseDirectives,
  quoteToken,
  segmentMatcher,
} from '../../src/nginx/conf-text.js';

const DEBIAN = `user www-data;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
include /etc/nginx/modules-enabled/*.conf;

events {
\tworker_connections 768; # a comment; with { braces }
}

http {
\tinclude /etc/nginx/mime.types;
\taccess_log "/var/log/nginx/access.log";
\tlog_format x '$remote_addr "q" \\' $status';
\tinclude /etc/nginx/conf.d/*.conf;
}
`;

t.test('parseDirectives finds nested directives with their unquoted arguments and lines', async (t) => {
  const ds = parseDirectives(DEBIAN);
  t.same(
    ds.map((d) => [d.name, d.args.map((a) => a.value), d.line]),
    [
      ['user', ['www-data'], 1],
      ['pid', ['/run/nginx.pid'], 2],
      ['error_log', ['/var/log/nginx/error.log'], 3],
      ['include', ['/etc/nginx/modules-enabled/*.conf'], 4],
      ['events', [], 6],
      ['worker_connections', ['768'], 7],
      ['http', [], 10],
      ['include', ['/etc/nginx/mime.types'], 11],
      ['access_log', ['/var/log/nginx/access.log'], 12],
      ['log_format', ['x', `$remote_addr "q" ' $status`], 13],
      ['include', ['/etc/nginx/conf.d/*.conf'], 14],
    ],
  );
  const access = ds.find((d) => d.name === 'access_log')?.args[0];
  t.equal(DEBIAN.slice(access?.start, access?.end), '"/var/log/nginx/access.log"', 'the span covers the quotes');
  t.same(
    parseDirectives('a b\\ c;').map((d) => d.args.map((a) => a.value)),
    [['b c']],
    'a backslash escapes a space in a bare token',
  );
  t.same(parseDirectives('tail_without_semicolon x'), [
    { name: 'tail_without_semicolon', args: [{ value: 'x', start: 23, end: 24 }], line: 1 },
  ]);
  t.same(parseDirectives('  # only a comment\n'), []);
});

t.test('an unclosed quote is a syntax error naming its line', async (t) => {
  t.throws(() => parseDirectives('a;\nb "open;\n'), new ConfSyntaxError('unclosed " quote', 2));
  t.throws(() => parseDirectives("x 'y"), { name: 'ConfSyntaxError', line: 1, message: /unclosed ' quote \(line 1\)/ });
});

t.test('applyEdits replaces argument spans and keeps every other byte', async (t) => {
  const ds = parseDirectives(DEBIAN);
  const inc = ds.filter((d) => d.name === 'include');
  const access = ds.find((d) => d.name === 'access_log');
  const out = applyEdits(DEBIAN, [
    { arg: inc[2]!.args[0]!, value: '/tmp/x/conf.d/*.conf' },
    { arg: access!.args[0]!, value: '/tmp/x logs/access.log' },
  ]);
  t.equal(
    out,
    DEBIAN.replace('/etc/nginx/conf.d/*.conf', '/tmp/x/conf.d/*.conf').replace(
      '"/var/log/nginx/access.log"',
      '"/tmp/x logs/access.log"',
    ),
  );
  t.throws(
    () =>
      applyEdits('a b;', [
        { arg: { value: 'b', start: 2, end: 3 }, value: 'c' },
        { arg: { value: 'b', start: 2, end: 3 }, value: 'd' },
      ]),
    RangeError,
  );
});

t.test('quoteToken round-trips through parseDirectives', async (t) => {
  t.equal(quoteToken('/usr/share/nginx/modules/x.so'), '/usr/share/nginx/modules/x.so');
  t.equal(quoteToken('a "b" \\c'), '"a \\"b\\" \\\\c"');
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (v) => parseDirectives(`d ${quoteToken(v)};`)[0]?.args[0]?.value === v),
      { seed: 7, numRuns: 500 },
    ),
  );
});

t.test('globs match as glob(3) does: no leading dot for *, classes, negation', async (t) => {
  t.ok(isGlob('/etc/nginx/conf.d/*.conf'));
  t.ok(isGlob('sites-enabled/[ab]'));
  t.notOk(isGlob('/etc/nginx/mime.types'));
  const conf = segmentMatcher('*.conf');
  t.ok(conf.test('50-mod-http-echo.conf'));
  t.notOk(conf.test('.hidden.conf'), '* does not match a leading dot');
  t.notOk(conf.test('x.conf.bak'));
  t.ok(segmentMatcher('.*').test('.hidden'), 'a literal leading dot does');
  t.ok(segmentMatcher('site?').test('site1'));
  t.notOk(segmentMatcher('site?').test('site12'));
  t.ok(segmentMatcher('[ab]*').test('beta'));
  t.notOk(segmentMatcher('[!ab]*').test('beta'));
  t.ok(segmentMatcher('[!ab]*').test('gamma'));
  t.ok(segmentMatcher('a[b').test('a[b'), 'an unclosed [ is literal');
  t.ok(segmentMatcher('a+b(c)').test('a+b(c)'), 'regex characters are literal');
});
