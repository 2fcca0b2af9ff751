import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { BASE, hostile } from '../fixtures/config/hostile.js';

const FILE = '/srv/canary/weights.yaml';

t.test('the base of the hostile table is valid', async (t) => {
  const c = parseConfig(BASE, FILE);
  t.equal(c.services[0]?.name, 'gateway');
  t.equal(c.nginx.upstreamsFile, '/srv/canary/nginx/conf.d/nginx-canary.conf');
});

t.test('the table has enough cases', async (t) => {
  t.ok(hostile.length >= 24, `${hostile.length} cases`);
  t.equal(new Set(hostile.map((h) => h.name)).size, hostile.length, 'names are unique');
});

for (const h of hostile) {
  t.test(h.name, async (t) => {
    let caught: unknown;
    try {
      parseConfig(h.yaml, FILE);
    } catch (err) {
      caught = err;
    }
    if (!(caught instanceof ConfigError)) {
      t.fail(`expected a ConfigError, got ${String(caught)}`);
      return;
    }
    t.equal(caught.exitCode, 2);
    const first = caught.problems[0];
    t.ok(first, 'at least one problem');
    t.equal(first?.position?.file, FILE);
    t.equal(first?.position?.line, h.line, 'line');
    t.ok((first?.position?.column ?? 0) >= 1, 'column');
    t.equal(first?.path, h.path, 'key path');
    t.ok(first?.message, 'message');
    t.ok(first?.fix, 'fix');
    t.notMatch(first?.message ?? '', /\n/, 'the message is one line');
    t.match(caught.message, `${FILE}:${h.line}:`, 'the error message starts with file:line');
  });
}
