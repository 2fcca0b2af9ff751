// Acceptance 6: a table of malformed or hostile weights.yaml files: each makes
// the CLI exit 2 naming the line and the key, and no file is changed — not
// weights.yaml, and nothing is written beside it (no state, no snapshot, no
// rendered include).
import t from 'tap';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { main } from '../../src/cli/main.js';
import { hostile } from '../fixtures/config/hostile.js';

/** Every file under `dir` with its bytes, sorted by path. */
async function tree(dir: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    out.push([path.relative(dir, p), (await readFile(p)).toString('base64')]);
  }
  return out.sort((a, b) => a[0].localeCompare(b[0]));
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['node', 'nginx-canary', ...args], { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

t.ok(hostile.length >= 20, `the table has ${hostile.length} files (≥ 20)`);

for (const c of hostile) {
  t.test(c.name, async (t) => {
    const dir = t.testdir();
    const file = path.join(dir, 'weights.yaml');
    await writeFile(file, c.yaml);
    const before = await tree(dir);
    for (const args of [['check'], ['render', '--flavor', 'oss'], ['target', 'gateway', '20'], ['snapshots']]) {
      const r = await cli(['-c', file, ...args]);
      t.equal(r.code, 2, `${args[0]} exits 2`);
      t.ok(r.err.includes(`${file}:${c.line}:`), `${args[0]} names the file and line ${c.line}`);
      if (c.path !== '') t.ok(r.err.includes(c.path), `${args[0]} names the key ${c.path}`);
      t.match(r.err, /Fix: \S/, `${args[0]} says how to fix it`);
      t.equal(r.out, '', `${args[0]} prints nothing on stdout`);
    }
    t.same(await tree(dir), before, 'no file changed or created');
  });
}

t.test('the real binary exits 2 on a hostile file', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { binPath, userEnv } = await import('../fixtures/stack.js');
  const c = hostile[0];
  if (!c) throw new Error('empty table');
  const file = path.join(t.testdir(), 'weights.yaml');
  await writeFile(file, c.yaml);
  const r = spawnSync(process.execPath, [binPath, '-c', file, 'check'], { encoding: 'utf8', env: userEnv() });
  t.equal(r.status, 2);
  t.ok(r.stderr.includes(`:${c.line}:`));
  t.equal(await readFile(file, 'utf8'), c.yaml);
});
