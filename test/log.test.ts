// The root logger (src/log.ts): JSON lines for machines, pino-pretty on a
// terminal, one line per gate behind a decision, NO_COLOR honoured.
import { PassThrough } from 'node:stream';
import t from 'tap';
import { colorAllowed, createLogger, logFormat } from '../src/log.js';
import type { GateResult } from '../src/rollout/types.js';
import { gateResult } from './fixtures/status.js';

/** A sink collecting everything written to it. */
function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

const gates: GateResult[] = [
  gateResult({ verdict: 'fail', value: 0.2, samples: 60, detail: { errors: 12, statistic: 9.1, bound: 7.6 } }),
  gateResult({ gate: 'connect_p95', kind: 'hold', value: 3, threshold: 120, samples: 60 }),
];

t.test('logFormat: forced by NGINX_CANARY_LOG_FORMAT, else pretty only on a TTY', async (t) => {
  t.equal(logFormat({}, true), 'pretty');
  t.equal(logFormat({}, false), 'json');
  t.equal(logFormat({ NGINX_CANARY_LOG_FORMAT: 'json' }, true), 'json');
  t.equal(logFormat({ NGINX_CANARY_LOG_FORMAT: 'pretty' }, false), 'pretty');
  t.equal(logFormat({ NGINX_CANARY_LOG_FORMAT: 'yaml' }, false), 'json', 'an unknown value falls back to the default');
});

t.test('colorAllowed: NO_COLOR set to anything non-empty turns colour off', async (t) => {
  t.equal(colorAllowed({}), true);
  t.equal(colorAllowed({ NO_COLOR: '' }), true, 'empty means unset (no-color.org)');
  t.equal(colorAllowed({ NO_COLOR: '1' }), false);
});

t.test('json: one parseable line per decision, gate values kept as data', async (t) => {
  const s = sink();
  const log = createLogger(s.stream);
  log.warn({ service: 'gateway', kind: 'drain', from: 15, to: 0, gates }, 'drain gate error_ratio fail');
  log.flush();
  const lines = s.text().trim().split('\n');
  t.equal(lines.length, 1);
  const entry = JSON.parse(lines[0] ?? '') as { name: string; service: string; gates: GateResult[]; msg: string };
  t.equal(entry.name, 'nginx-canary');
  t.equal(entry.service, 'gateway');
  t.equal(entry.gates[0]?.value, 0.2);
  t.equal(entry.gates[0]?.detail?.['statistic'], 9.1);
});

t.test('pretty: a human line, one line per gate with its numbers, no JSON; colour only when asked', async (t) => {
  for (const color of [false, true]) {
    const s = sink();
    const log = createLogger(s.stream, { format: 'pretty', color });
    log.warn({ service: 'gateway', kind: 'drain', from: 15, to: 0, gates }, 'drain gate error_ratio fail');
    const text = s.text();
    t.match(text, /WARN/, `level shown (color ${color})`);
    t.match(text, /drain gate error_ratio fail/);
    t.match(text, /\n +drain error_ratio fail: canary 5xx ratio 20.00 % > 0.50 %/, 'the failing gate on its own line');
    t.match(text, /\n +hold connect_p95 pass/, 'the passing gate on its own line');
    t.notMatch(text, /^\{/m, 'no JSON line');
    t.notMatch(text, /"threshold"/, 'gates are not dumped as objects');
    // eslint-disable-next-line no-control-regex
    const esc = /\u001b\[/;
    if (color) t.match(text, esc, 'ANSI colour codes with color on');
    else t.notMatch(text, esc, 'no escape codes with color off');
  }
});
