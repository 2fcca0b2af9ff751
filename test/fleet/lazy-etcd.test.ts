// A single-host sidecar does not load etcd3: src/main.ts imports the fleet's etcd module only when
// weights.yaml has a `fleet:` section (README "Memory": etcd3 and its gRPC stack are ~24 MiB of VmRSS
// and ~200 ms of start-up). Checked on the built dist/ in a child node whose module resolution refuses
// etcd3: the sidecar's entry modules still import; the fleet's etcd module, the control, does not.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../fixtures/stack.js';

/** A module resolve hook (node:module `register`) that refuses `etcd3` and its subpaths. */
const REFUSE_ETCD3 = `export async function resolve(specifier, context, next) {
  if (specifier === 'etcd3' || specifier.startsWith('etcd3/')) throw new Error('etcd3 refused by the test');
  return next(specifier, context);
}`;

const dataUrl = (source: string): string => `data:text/javascript,${encodeURIComponent(source)}`;

/** Imports `dist/<rel>` in a child node that cannot resolve etcd3: whether it imported, and the child's output. */
function importWithoutEtcd3(rel: string): { imported: boolean; output: string } {
  const url = pathToFileURL(path.join(repoRoot, 'dist', rel)).href;
  const register = `import { register } from 'node:module'; register(${JSON.stringify(dataUrl(REFUSE_ETCD3))});`;
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      dataUrl(register),
      '--input-type=module',
      '-e',
      `await import(${JSON.stringify(url)}); console.log('imported');`,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return { imported: r.status === 0 && r.stdout.trim() === 'imported', output: `${r.stdout}${r.stderr}`.trim() };
}

t.test('the fleet etcd module needs etcd3 (the control: the hook refuses it)', async (t) => {
  const r = importWithoutEtcd3('fleet/etcd.js');
  t.notOk(r.imported, 'dist/fleet/etcd.js does not import without etcd3');
  t.match(r.output, /etcd3 refused by the test/);
});

t.test('the sidecar imports without etcd3: run, its composition root and the CLI', async (t) => {
  for (const rel of ['main.js', 'cli/run.js', 'cli/main.js']) {
    const r = importWithoutEtcd3(rel);
    const why = r.output.split('\n').find((l) => /Error/.test(l)) ?? r.output;
    t.ok(r.imported, `dist/${rel} imports without etcd3${r.imported ? '' : ` (${why})`}`);
  }
});
