import t from 'tap';
import fc from 'fast-check';
import assert from 'node:assert';
import {
  attemptFailed,
  bytesToMs,
  bytesToStatus,
  LineCursor,
  parseLine,
  parseStatus,
  responseSample,
  scanFixed,
  scanFixedBytes,
  secondsToMs,
  splitList,
  statusFailed,
  type FixedFields,
} from '../../src/observe/parse.js';
import type { Attempt, LogRecord } from '../../src/observe/types.js';

t.test('a retried attempt: one line, two attempts, the first refused', async (t) => {
  const rec = parseLine(
    '{"msec":"1763744701.123","status":"200","upstream":"gateway","addr":"127.0.0.1:18890, 127.0.0.1:18789","ustatus":"502, 200","connect":"-, 0.000","header":"-, 0.001","response":"0.000, 0.001","request_time":"0.002"}',
  );
  t.same(rec, {
    atMs: 1763744701123,
    status: 200,
    upstream: 'gateway',
    attempts: [
      { addr: '127.0.0.1:18890', status: 502, connectMs: null, responseMs: 0 },
      { addr: '127.0.0.1:18789', status: 200, connectMs: 0, responseMs: 1 },
    ],
    requestMs: 2,
  });
  t.equal(attemptFailed(rec!.attempts[0]!), true, 'the refused canary attempt is an error');
  t.equal(attemptFailed(rec!.attempts[1]!), false);
  t.equal(responseSample(rec!.attempts[0]!), null, "the refused attempt's 0.000 is not a response-time sample");
  t.equal(responseSample(rec!.attempts[1]!), 1);
});

t.test('no live server: the upstream name is the address', async (t) => {
  const rec = parseLine(
    '{"msec":"1763744701.456","status":"502","upstream":"gateway","addr":"gateway","ustatus":"502","connect":"-","header":"-","response":"0.000","request_time":"0.000"}',
  );
  t.same(rec?.attempts, [{ addr: 'gateway', status: 502, connectMs: null, responseMs: 0 }]);
  t.equal(rec?.status, 502);
  t.equal(rec?.requestMs, 0);
});

t.test('groups after an internal redirect are split on " : "', async (t) => {
  const rec = parseLine(
    '{"msec":"1763744701.5","status":"200","upstream":"gateway","addr":"127.0.0.1:1, 127.0.0.1:2 : 127.0.0.1:3","ustatus":"502, 504 : 200","connect":"-, 0.012 : 0.003","header":"-, - : 0.004","response":"0.000, 1.000 : 0.2345","request_time":"1.250"}',
  );
  t.same(rec?.attempts, [
    { addr: '127.0.0.1:1', status: 502, connectMs: null, responseMs: 0 },
    { addr: '127.0.0.1:2', status: 504, connectMs: 12, responseMs: 1000 },
    { addr: '127.0.0.1:3', status: 200, connectMs: 3, responseMs: 234.5 },
  ]);
  t.same(
    rec?.attempts.map(responseSample),
    [null, 1000, 234.5],
    'a read timeout counts with the time waited (a lower bound); a refused attempt does not count',
  );
  t.equal(rec?.atMs, 1763744701500);
  t.equal(rec?.requestMs, 1250);
});

t.test('IPv6 and unix-socket addresses survive the split', async (t) => {
  const rec = parseLine(
    '{"msec":"1","status":"200","upstream":"gateway","addr":"[::1]:18890, unix:/run/app.sock","ustatus":"502, 200","connect":"-, 0.001","header":"-, 0.001","response":"0.000, 0.001","request_time":"0.001"}',
  );
  t.same(
    rec?.attempts.map((a) => a.addr),
    ['[::1]:18890', 'unix:/run/app.sock'],
  );
  t.equal(rec?.attempts[1]?.connectMs, 1);
  t.equal(rec?.attempts[1]?.responseMs, 1);
});

t.test('response times per attempt: "-" and missing entries are null; no response field means none', async (t) => {
  const line = (response: string): string =>
    `{"msec":"3","status":"200","upstream":"u","addr":"a:1, b:2, c:3","ustatus":"502, 502, 200","connect":"-, 0.004, 0.001","header":"-, -, 0.002","response":${JSON.stringify(response)},"request_time":"0.5"}`;
  t.same(
    parseLine(line('0.000, 0.250, 0.003'))?.attempts.map((a) => a.responseMs),
    [0, 250, 3],
  );
  t.same(
    parseLine(line('-, -, 0.003'))?.attempts.map((a) => a.responseMs),
    [null, null, 3],
    '"-" per attempt',
  );
  t.same(
    parseLine(line('0.007'))?.attempts.map((a) => a.responseMs),
    [7, null, null],
    'fewer entries than addresses: the missing ones are null',
  );
  t.same(
    parseLine(line(''))?.attempts.map((a) => a.responseMs),
    [null, null, null],
    'an empty field',
  );
  const one = (response: string): number | null | undefined =>
    parseLine(
      `{"msec":"3","status":"200","upstream":"u","addr":"a:1","ustatus":"200","connect":"0.001","header":"0.002","response":"${response}","request_time":"0.5"}`,
    )?.attempts[0]?.responseMs;
  t.equal(one('0.042'), 42, 'one attempt (the fast path)');
  t.equal(one('-'), null);
  t.equal(one(''), null);
  const noResponse = parseLine(
    '{"msec":"3","status":"200","upstream":"u","addr":"a:1","ustatus":"200","connect":"0.001","request_time":"0.5"}',
  );
  t.same(noResponse?.attempts, [{ addr: 'a:1', status: 200, connectMs: 1, responseMs: null }], 'a format without it');
  const notString = parseLine(
    '{"msec":"3","status":"200","upstream":"u","addr":"a:1","ustatus":"200","connect":"0.001","response":12,"request_time":"0.5"}',
  );
  t.equal(notString?.attempts[0]?.responseMs, null, 'a non-string response is no response time, not a bad line');
});

t.test('response times follow the " : " group separator like the other lists', async (t) => {
  const rec = parseLine(
    '{"msec":"1795283565.805","status":"200","upstream":"gw","addr":"127.0.0.1:39917 : 127.0.0.1:39917, 127.0.0.1:43621","ustatus":"502 : 502, 200","connect":"- : -, 0.000","header":"- : -, 0.001","response":"0.000 : 0.000, 0.017","request_time":"0.018"}',
  );
  t.same(
    rec?.attempts.map((a) => [a.addr, a.status, a.connectMs, a.responseMs]),
    [
      ['127.0.0.1:39917', 502, null, 0],
      ['127.0.0.1:39917', 502, null, 0],
      ['127.0.0.1:43621', 200, 0, 17],
    ],
  );
  t.same(rec?.attempts.map(responseSample), [null, null, 17]);
});

t.test('responseSample: the response time of a connected attempt, else null', async (t) => {
  t.equal(responseSample({ addr: 'a', status: 200, connectMs: 1, responseMs: 30 }), 30);
  t.equal(
    responseSample({ addr: 'a', status: null, connectMs: 0, responseMs: 150 }),
    150,
    'client hang-up: lower bound',
  );
  t.equal(responseSample({ addr: 'a', status: 502, connectMs: null, responseMs: 0 }), null, 'refused');
  t.equal(responseSample({ addr: 'a', status: 200, connectMs: 1, responseMs: null }), null, 'no time logged');
});

t.test('a request that never went upstream has no attempts', async (t) => {
  for (const empty of ['', '-']) {
    const rec = parseLine(
      JSON.stringify({
        msec: '1763744701.000',
        status: '200',
        upstream: empty,
        addr: empty,
        ustatus: empty,
        connect: empty,
        header: empty,
        response: empty,
        request_time: '0.000',
      }),
    );
    t.same(rec?.attempts, [], `addr ${JSON.stringify(empty)}`);
    t.equal(rec?.status, 200);
  }
});

t.test('fewer statuses or connect times than addresses: the missing ones are null', async (t) => {
  const rec = parseLine(
    '{"msec":"2","status":"502","upstream":"u","addr":"a:1, b:2, c:3","ustatus":"502","connect":"0.001, 0.002","request_time":"x"}',
  );
  t.same(rec?.attempts, [
    { addr: 'a:1', status: 502, connectMs: 1, responseMs: null },
    { addr: 'b:2', status: null, connectMs: 2, responseMs: null },
    { addr: 'c:3', status: null, connectMs: null, responseMs: null },
  ]);
  t.equal(rec?.requestMs, 0, 'an unusable request_time reads as 0');
  t.equal(attemptFailed(rec!.attempts[1]!), true, 'no status counts as an error of that server');
});

t.test('garbage and partial lines are null, never a throw', async (t) => {
  const bad = [
    '',
    '   ',
    'not json',
    '{"msec":"1763744701.123","status":"200"',
    'null',
    '42',
    '"string"',
    '[]',
    '{}',
    '{"msec":"1","status":"200","upstream":"g","addr":"a","ustatus":"200","connect":"0"}',
    '{"msec":1,"status":"200","upstream":"g","addr":"a","ustatus":"200","connect":"0","request_time":"0"}',
    '{"msec":"x","status":"200","upstream":"g","addr":"a","ustatus":"200","connect":"0","request_time":"0"}',
    '{"msec":"1","status":"OK","upstream":"g","addr":"a","ustatus":"200","connect":"0","request_time":"0"}',
    '{"msec":"1","status":"-","upstream":"g","addr":"a","ustatus":"200","connect":"0","request_time":"0"}',
    '{"msec":"-1","status":"200","upstream":"g","addr":"a","ustatus":"200","connect":"0","request_time":"0"}',
    '127.0.0.1 - - [21/Nov/2025:10:00:00 +0000] "GET / HTTP/1.1" 200 12',
  ];
  for (const line of bad) t.equal(parseLine(line), null, JSON.stringify(line));
});

t.test('damaged lines: parseLine never throws and returns null or a finite record', async (t) => {
  // A real line cut, spliced and garbled anywhere: plain random strings rarely get past the first character.
  const real =
    '{"msec":"1763744701.123","status":"200","upstream":"gateway","addr":"127.0.0.1:18890, 127.0.0.1:18789","ustatus":"502, 200","connect":"-, 0.000","header":"-, 0.001","response":"0.000, 0.001","request_time":"0.002"}';
  let records = 0;
  fc.assert(
    fc.property(
      fc.nat({ max: real.length }),
      fc.nat({ max: real.length }),
      fc.string({ unit: 'binary', maxLength: 8 }),
      (at, cut, insert) => {
        const line = real.slice(0, at) + insert + real.slice(Math.min(real.length, at + (cut % 4)));
        const r = parseLine(line);
        if (r !== null) records++;
        return r === null || (Number.isFinite(r.atMs) && Number.isFinite(r.requestMs) && Array.isArray(r.attempts));
      },
    ),
    { numRuns: 10_000, seed: 20_261_121 },
  );
  t.ok(records > 0, `${records} of 10,000 damaged lines still parsed (the property is not vacuous)`);
});

t.test('parseStatus', async (t) => {
  t.equal(parseStatus('200'), 200);
  t.equal(parseStatus('599'), 599);
  t.equal(parseStatus('-'), null);
  t.equal(parseStatus(''), null);
  t.equal(parseStatus('2x0'), null, 'three chars, not all digits');
  t.equal(parseStatus('x00'), null);
  t.equal(parseStatus('20:'), null);
  t.equal(parseStatus('1000'), 1000, 'longer integers fall back to Number');
  t.equal(parseStatus('99'), 99);
  t.equal(parseStatus('1.5'), null);
  t.equal(parseStatus('-10'), null);
  fc.assert(fc.property(fc.integer({ min: 100, max: 999 }), (n) => parseStatus(String(n)) === n));
});

t.test('secondsToMs', async (t) => {
  t.equal(secondsToMs('0.001'), 1);
  t.equal(secondsToMs('5'), 5000, 'whole seconds');
  t.equal(secondsToMs('5.'), 5000, 'odd forms go through Number');
  t.equal(secondsToMs('0.0015'), 1.5, 'µs kept');
  t.equal(secondsToMs('0.1234567'), 123.457, 'more than 6 decimals: rounded to the µs');
  t.equal(secondsToMs('1e3'), 1_000_000);
  t.equal(secondsToMs('1.2x'), null);
  t.equal(secondsToMs('1234567890123'), 1_234_567_890_123_000, 'beyond 12 digits through Number');
  t.equal(secondsToMs('0.009'), 9, 'no binary-fraction residue');
  t.equal(secondsToMs('1763744701.123'), 1763744701123);
  t.equal(secondsToMs('-'), null);
  t.equal(secondsToMs(''), null);
  t.equal(secondsToMs('abc'), null);
  t.equal(secondsToMs('-0.5'), null);
  t.equal(secondsToMs('Infinity'), null);
  fc.assert(fc.property(fc.integer({ min: 0, max: 10_000_000 }), (ms) => secondsToMs((ms / 1000).toFixed(3)) === ms));
});

t.test('splitList', async (t) => {
  t.same(splitList('a'), ['a']);
  t.same(splitList('a, b'), ['a', 'b']);
  t.same(splitList('a : b'), ['a', 'b']);
  t.same(splitList('a, b : c, d'), ['a', 'b', 'c', 'd']);
  t.same(splitList('-, 0.001 : -'), ['-', '0.001', '-']);
  t.same(splitList('a  b'), ['a', 'b'], 'a doubled space yields no empty entry');
});

t.test('attemptFailed: ≥ 500 and no status are errors, below 500 is not', async (t) => {
  t.equal(attemptFailed({ addr: 'a', status: 500, connectMs: 1, responseMs: 1 }), true);
  t.equal(attemptFailed({ addr: 'a', status: 503, connectMs: 1, responseMs: 1 }), true);
  t.equal(attemptFailed({ addr: 'a', status: null, connectMs: null, responseMs: null }), true);
  t.equal(attemptFailed({ addr: 'a', status: 499, connectMs: 1, responseMs: 1 }), false);
  t.equal(attemptFailed({ addr: 'a', status: 404, connectMs: 1, responseMs: 1 }), false);
  t.equal(
    attemptFailed({ addr: 'a', status: null, connectMs: 1, responseMs: 1 }, true),
    false,
    'no status because the client gave up: not the server',
  );
  t.equal(
    attemptFailed({ addr: 'a', status: 502, connectMs: 1, responseMs: 1 }, true),
    true,
    'a real 5xx stays an error',
  );
  t.equal(statusFailed(null, true), false, 'statusFailed is attemptFailed on the status alone');
  t.equal(statusFailed(null), true);
  t.equal(statusFailed(500), true);
  t.equal(statusFailed(404), false);
});

const KEYS = [
  'msec',
  'status',
  'upstream',
  'addr',
  'ustatus',
  'connect',
  'header',
  'response',
  'request_time',
] as const;

/** A line with the given values, keys in nginx's order (fast path) or reversed (JSON.parse path). */
function lineOf(v: Record<(typeof KEYS)[number], string>, order: 'nginx' | 'reversed'): string {
  const keys = order === 'nginx' ? [...KEYS] : [...KEYS].reverse();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(v[k])}`).join(',')}}`;
}

t.test('the fixed-order fast path reads every line exactly as JSON.parse does', async (t) => {
  const piece = fc.constantFrom(
    '-',
    '',
    '200',
    '502',
    '0.000',
    '0.012',
    ', ',
    ' : ',
    '127.0.0.1:8080',
    '[::1]:80',
    'gateway',
  );
  const value = fc.oneof(
    fc.array(piece, { maxLength: 4 }).map((a) => a.join('')),
    fc.string({ unit: 'binary', maxLength: 12 }),
    fc.constantFrom('"', '\\', 'a"b', 'é', '1763744701.123'),
  );
  const rec = fc.record({
    msec: fc.oneof(fc.constantFrom('1763744701.123', '1.5', '-1', ''), value),
    status: fc.oneof(fc.constantFrom('200', '502', '-'), value),
    upstream: value,
    addr: value,
    ustatus: value,
    connect: value,
    header: value,
    response: value,
    request_time: fc.oneof(fc.constantFrom('0.002', '-'), value),
  });
  fc.assert(
    fc.property(rec, (v) => {
      const fast = parseLine(lineOf(v, 'nginx'));
      const slow = parseLine(lineOf(v, 'reversed'));
      assert.deepStrictEqual(fast, slow);
    }),
    { numRuns: 2000 },
  );
  const out: FixedFields = ['', '', '', '', '', '', '', '', ''];
  t.equal(
    scanFixed(
      lineOf(
        {
          msec: '1',
          status: '2',
          upstream: 'u',
          addr: 'a',
          ustatus: 's',
          connect: 'c',
          header: 'h',
          response: 'r',
          request_time: 't',
        },
        'nginx',
      ),
      out,
    ),
    true,
  );
  t.same(out, ['1', '2', 'u', 'a', 's', 'c', 'r', 't', ''], 'header is skipped; no sample field: empty');
});

t.test('the fast path declines anything but the exact shape', async (t) => {
  const out: FixedFields = ['', '', '', '', '', '', '', '', ''];
  const good =
    '{"msec":"1","status":"200","upstream":"g","addr":"a:1","ustatus":"200","connect":"0.001","header":"0","response":"0","request_time":"0"}';
  t.equal(scanFixed(good, out), true);
  t.equal(scanFixed(`${good} \t\r\n`, out), true, 'trailing whitespace is fine (JSON.parse agrees)');
  t.equal(scanFixed(`${good}x`, out), false, 'trailing garbage');
  t.equal(scanFixed(` ${good}`, out), false, 'leading space: left to JSON.parse');
  t.equal(scanFixed(good.replace('"status"', '"state"'), out), false, 'another key');
  t.equal(scanFixed(good.replace(',"upstream"', ' ,"upstream"'), out), false, 'not a comma after a value');
  t.equal(scanFixed(good.replace('"0"}', '"0",}'), out), false, 'not a brace after the last value');
  t.equal(scanFixed(good.replace('"a:1"', '"a\\"1"'), out), false, 'an escape sequence');
  t.equal(scanFixed(good.slice(0, 60), out), false, 'cut short inside a value');
  t.equal(scanFixed(good.slice(0, 40), out), false, 'cut short after a key');
  t.equal(parseLine(` ${good}`)?.status, 200, 'the JSON.parse path still reads the declined line');
});

/** What {@link LineCursor} reads from `line` (as UTF-8 bytes at an offset), in parseLine's shape; 'other' when it declines. */
function viaCursor(c: LineCursor, line: string): Omit<LogRecord, 'requestMs'> | null | 'other' {
  // At an offset inside a larger buffer, with bytes around it, as the follower hands lines over.
  const body = Buffer.from(line, 'utf8');
  const buf = Buffer.concat([Buffer.from('x\n'), body, Buffer.from('\n{"msec":"1"')]);
  const r = c.read(buf, 2, 2 + body.length);
  if (r === 'other') return 'other';
  if (r === 'invalid') return null;
  const attempts: Attempt[] = [];
  const lasts: boolean[] = [];
  while (c.next()) {
    attempts.push({ addr: c.addr(), status: c.attemptStatus, connectMs: c.connectMs, responseMs: c.responseMs });
    lasts.push(c.last);
  }
  assert.deepStrictEqual(
    lasts,
    attempts.map((_, i) => i === attempts.length - 1),
    'only the last attempt is last',
  );
  return { atMs: c.atMs, status: c.status, upstream: c.upstream(), attempts };
}

/** parseLine's record without requestMs (the cursor does not read request_time). */
function reference(line: string): Omit<LogRecord, 'requestMs'> | null {
  const r = parseLine(line);
  if (r === null) return null;
  const { requestMs: _unused, ...rest } = r;
  return rest;
}

t.test(
  'LineCursor reads every line as parseLine does, and declines only what scanFixed or ASCII rule out',
  async (t) => {
    const piece = fc.constantFrom(
      '-',
      '',
      '200',
      '502',
      '499',
      '0.000',
      '0.012',
      '1.5',
      '12',
      '1e3',
      '0.1234567',
      ', ',
      ' : ',
      ',',
      ' ',
      ':',
      '127.0.0.1:8080',
      '[::1]:80',
      'unix:/run/a.sock',
      'gateway',
    );
    const value = fc.oneof(
      { weight: 30, arbitrary: fc.array(piece, { maxLength: 6 }).map((a) => a.join('')) },
      { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 12 }) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
      { weight: 1, arbitrary: fc.constantFrom('"', '\\', 'é', '\u{1F600}', '1763744701.123', ' 12', '0x1F') },
    );
    const rec = fc.record({
      msec: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom('1763744701.123', '1763744701', '1.5', '-1', '', '1234567890123') },
        { weight: 1, arbitrary: value },
      ),
      status: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom('200', '502', '499', '-', '1000', '99') },
        { weight: 1, arbitrary: value },
      ),
      upstream: value,
      addr: value,
      ustatus: value,
      connect: value,
      header: value,
      response: value,
      request_time: fc.oneof(fc.constantFrom('0.002', '-'), value),
    });
    const c = new LineCursor();
    const out: FixedFields = ['', '', '', '', '', '', '', '', ''];
    let ok = 0;
    let declined = 0;
    fc.assert(
      fc.property(rec, fc.constantFrom('', ' ', '\t\r'), (v, tail) => {
        const line = lineOf(v, 'nginx') + tail;
        const got = viaCursor(c, line);
        // eslint-disable-next-line no-control-regex
        const ascii = /^[\x00-\x7f]*$/.test(line);
        if (got === 'other') {
          assert.ok(!ascii || !scanFixed(line, out), `declined a line the fast path takes: ${line}`);
          declined++;
          return;
        }
        if (got !== null) ok++;
        assert.deepStrictEqual(got, reference(line));
      }),
      { numRuns: 20_000, seed: 20_261_202 },
    );
    t.ok(ok > 2000, `${ok} of 20,000 random lines read by the cursor (the property is not vacuous)`);
    t.ok(declined > 1000, `${declined} declined (escapes, bytes ≥ 0x80: left to parseLine)`);
  },
);

t.test('LineCursor on damaged real lines: the same record as parseLine, or declined', async (t) => {
  const real =
    '{"msec":"1763744701.123","status":"200","upstream":"gateway","addr":"127.0.0.1:18890, 127.0.0.1:18789 : 127.0.0.1:1","ustatus":"502, 200 : -","connect":"-, 0.000 : 0.001","header":"-, 0.001 : -","response":"0.000, 0.001 : 0.5","request_time":"0.002"}';
  const c = new LineCursor();
  let ok = 0;
  fc.assert(
    fc.property(
      fc.nat({ max: real.length }),
      fc.nat({ max: real.length }),
      fc.string({ unit: 'binary-ascii', maxLength: 8 }),
      (at, cut, insert) => {
        const line = real.slice(0, at) + insert + real.slice(Math.min(real.length, at + (cut % 4)));
        const got = viaCursor(c, line);
        if (got === 'other') return;
        if (got !== null) ok++;
        assert.deepStrictEqual(got, reference(line));
      },
    ),
    { numRuns: 10_000, seed: 20_261_203 },
  );
  t.ok(ok > 100, `${ok} damaged lines still read by the cursor`);
});

t.test('LineCursor: the shapes nginx writes, read in place', async (t) => {
  const c = new LineCursor();
  const line =
    '{"msec":"1763744701.5","status":"200","upstream":"gateway","addr":"127.0.0.1:1, 127.0.0.1:2 : 127.0.0.1:3","ustatus":"502, 504 : 200","connect":"-, 0.012 : 0.003","header":"-, - : 0.004","response":"0.000, 1.000 : 0.2345","request_time":"1.250"}';
  t.same(viaCursor(c, line), reference(line));
  t.equal((viaCursor(c, line) as { attempts: Attempt[] }).attempts.length, 3);
  const none =
    '{"msec":"1","status":"404","upstream":"","addr":"","ustatus":"","connect":"","header":"","response":"","request_time":"0"}';
  t.same(viaCursor(c, none), { atMs: 1000, status: 404, upstream: '', attempts: [] }, 'no upstream: no attempts');
  t.equal(viaCursor(c, none.replace('"status":"404"', '"status":"OK"')), null, 'unusable status: invalid');
  t.equal(viaCursor(c, none.replace('"msec":"1"', '"msec":"x"')), null, 'unusable msec: invalid');
  t.equal(viaCursor(c, none.replace('"upstream":""', '"upstream":"é"')), 'other', 'a byte ≥ 0x80: parseLine reads it');
  t.equal(viaCursor(c, none.replace('"upstream":""', '"upstream":"a\\"b"')), 'other', 'an escape: parseLine reads it');
  t.equal(viaCursor(c, ` ${none}`), 'other', 'another shape: parseLine reads it');
  t.equal(viaCursor(c, ''), 'other', 'an empty line: parseLine says invalid');
  t.equal(bytesToMs(Buffer.from('x0.0015y'), 1, 7), 1.5);
  t.equal(bytesToMs(Buffer.from('1e3'), 0, 3), 1_000_000, 'odd forms go through secondsToMs');
  t.equal(bytesToStatus(Buffer.from('-'), 0, 1), null);
  t.equal(bytesToStatus(Buffer.from('1000'), 0, 4), 1000);
  const at = new Int32Array(16);
  t.equal(scanFixedBytes(Buffer.from(`${line}\r\n`), 0, line.length + 2, at), true, 'trailing whitespace');
  t.equal(Buffer.from(line).toString('latin1', at[6], at[7]), '127.0.0.1:1, 127.0.0.1:2 : 127.0.0.1:3', 'addr offsets');
});
