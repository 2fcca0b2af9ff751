import t from 'tap';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { SPLIT_KEY_RE } from '../../src/config/validate.js';
import { ConfigError } from '../../src/errors.js';
import { withLine } from '../fixtures/config/hostile.js';

/** Characters that would let a value break out of an nginx directive. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what must not pass
const UNSAFE = /[;{}'"$#\s\x00-\x1f\x7f]/;

/** Every string of a Config that can reach an nginx file, with its location. */
function strings(value: unknown, at: string, out: [string, string][] = []): [string, string][] {
  if (typeof value === 'string') out.push([at, value]);
  else if (Array.isArray(value)) value.forEach((v, i) => strings(v, `${at}[${i}]`, out));
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) strings(v, `${at}.${k}`, out);
  }
  return out;
}

/** Either a ConfigError (false), or a Config whose nginx-bound strings are all safe (true). Throws otherwise. */
function check(yaml: string): boolean {
  let config: Config;
  try {
    config = parseConfig(yaml, '/srv/canary/weights.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return false;
    throw err;
  }
  for (const [at, s] of strings(config, 'config')) {
    if (at.endsWith('.webhookUrl')) continue; // never rendered into nginx (alerts only)
    if (at.endsWith('.splitKey')) {
      if (!SPLIT_KEY_RE.test(s)) throw new Error(`${at} accepted ${JSON.stringify(s)}`);
    } else if (UNSAFE.test(s)) {
      throw new Error(`${at} accepted ${JSON.stringify(s)}`);
    }
  }
  return true;
}

const hostileChars = [
  ';',
  '{',
  '}',
  '"',
  "'",
  '$',
  '#',
  ' ',
  '\n',
  '\t',
  '\r',
  '\\',
  ':',
  '[',
  ']',
  '/',
  '.',
  'a',
  '1',
  '-',
  '_',
  '%',
  '&',
  '*',
  '!',
  '|',
  '>',
];
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom(...hostileChars), maxLength: 40 }),
  fc
    .tuple(
      fc.constantFrom('gateway', '127.0.0.1:80', 'logs/canary.json', '[::1]:80', '$remote_addr'),
      // Mostly characters that keep the value valid, now and then one that must not pass.
      fc.string({
        unit: fc.oneof(
          { weight: 4, arbitrary: fc.constantFrom('a', '_', '1', '.', '-', '/', '$x') },
          { weight: 1, arbitrary: fc.constantFrom(...hostileChars) },
        ),
        maxLength: 8,
      }),
    )
    .map(([a, b]) => a + b),
);

/** Where the string goes: the line it replaces in the base file, as a quoted scalar or as raw YAML. */
const sites: [string, (s: string) => string][] = [
  ['service name (quoted)', (s) => withLine(10, `  ${JSON.stringify(s)}:`)],
  ['service name (raw)', (s) => withLine(10, `  ${s}:`)],
  ['server (quoted)', (s) => withLine(13, `      - { server: ${JSON.stringify(s)} }`)],
  ['server (raw)', (s) => withLine(13, `      - { server: ${s} }`)],
  ['path (quoted)', (s) => withLine(4, `  access_log: ${JSON.stringify(s)}`)],
  ['path (raw)', (s) => withLine(4, `  access_log: ${s}`)],
  ['binary (quoted)', (s) => withLine(2, `  conf: nginx/nginx.conf\n  binary: ${JSON.stringify(s)}`)],
  ['split_key (quoted)', (s) => withLine(11, `    split: split_clients\n    split_key: ${JSON.stringify(s)}`)],
];

for (const [name, place] of sites) {
  t.test(`${name}: rejected, or accepted only within the safe character set`, async (t) => {
    let accepted = 0;
    fc.assert(
      fc.property(text, (s) => {
        if (check(place(s))) accepted++;
      }),
      { numRuns: 200, seed: 20260506 },
    );
    t.ok(accepted > 0, `${accepted} of 200 strings were accepted (the property is not vacuous)`);
  });
}

t.test('the checker itself catches an unsafe accepted value', async (t) => {
  t.throws(() => {
    for (const [at, s] of strings({ a: { b: ['x;y'] } }, 'config')) if (UNSAFE.test(s)) throw new Error(at);
  }, /config\.a\.b\[0\]/);
  t.equal(check(withLine(10, '  gate_way2:')), true, 'a safe name is accepted');
  t.equal(check(withLine(10, '  "gate way":')), false, 'an unsafe name is rejected');
});
