import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FILE = '/etc/nginx-canary/weights.yaml';

/** The demo weights.yaml with extra lines under gateway's `rollout:` (after its target line). */
async function withRollout(lines: string): Promise<string> {
  const text = await readFile(path.join(ROOT, 'weights.yaml'), 'utf8');
  const out = text.replace(/^( +)target: 50.*$/m, (m, indent: string) => `${m}\n${indent}${lines}`);
  if (out === text) throw new Error('weights.yaml has no gateway target line to extend');
  return out;
}

t.test('rollout.version, promote_command and promote_timeout are read', async (t) => {
  const c = parseConfig(
    await withRollout(
      'version: "1.10"\n      promote_command: [/usr/local/bin/deploy, gateway, "--to=primary"]\n      promote_timeout: 90s',
    ),
    FILE,
  );
  t.match(c.services[0]?.rollout, {
    version: '1.10',
    promoteCommand: ['/usr/local/bin/deploy', 'gateway', '--to=primary'],
    promoteTimeoutMs: 90_000,
  });
  const d = parseConfig(await readFile(path.join(ROOT, 'weights.yaml'), 'utf8'), FILE);
  t.match(d.services[0]?.rollout, { version: null, promoteCommand: null, promoteTimeoutMs: 300_000 });
});

t.test('a bad version or promote command is refused with the key and the fix', async (t) => {
  for (const [line, key, message] of [
    ['version: "v 2;"', 'services.gateway.rollout.version', /build label/],
    ['version: ""', 'services.gateway.rollout.version', /.+/],
    ['promote_command: []', 'services.gateway.rollout.promote_command', /.+/],
    ['promote_command: ["deploy\\nrm -rf /"]', 'services.gateway.rollout.promote_command', /control characters/],
    ['promote_timeout: 500ms', 'services.gateway.rollout.promote_timeout', /.+/],
  ] as const) {
    try {
      parseConfig(await withRollout(line), FILE);
      t.fail(`${line} was accepted`);
    } catch (e) {
      t.ok(e instanceof ConfigError, `${line}: ConfigError`);
      const p = (e as ConfigError).problems.find((x) => x.path === key);
      t.ok(p, `${line}: names ${key}`);
      t.match(p?.message, message);
      t.ok((p?.fix ?? '').length > 0, `${line}: has a fix`);
      t.ok(p?.position?.line, `${line}: has a line`);
    }
  }
});
