// `nginx-canary --version` / `-V`: the version of the package.json beside the
// running code, read at run time (src/cli/version.ts). The installed binary is
// checked the same way in test/deploy/pack.test.ts.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_JSON_URL, packageVersion } from '../../src/cli/version.js';
import { repoRoot } from '../fixtures/stack.js';
import { cli } from '../fixtures/integration/sidecar.js';

const pkg = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };

t.test('--version and -V print the package version and exit 0', async (t) => {
  for (const flag of ['--version', '-V']) {
    const r = await cli([flag]);
    t.equal(r.code, 0, `${flag} exits 0`);
    t.equal(r.out, `${pkg.version}\n`, `${flag} prints ${pkg.version} alone`);
    t.equal(r.err, '');
  }
  const help = await cli(['--help']);
  t.match(help.out, /-V, --version\s+print the version/, '--help lists it');
});

t.test('the version is read from the package.json at the package root', async (t) => {
  t.equal(PACKAGE_JSON_URL.href, pathToFileURL(path.join(repoRoot, 'package.json')).href);
  t.equal(packageVersion(), pkg.version);
  const dir = t.testdir();
  const other = path.join(dir, 'package.json');
  await writeFile(other, '{"name": "x", "version": "9.8.7-rc.1"}');
  t.equal(packageVersion(pathToFileURL(other)), '9.8.7-rc.1', 'not a compiled-in string');
});

t.test('an unreadable or versionless package.json says unknown instead of breaking the CLI', async (t) => {
  const dir = t.testdir();
  t.match(packageVersion(pathToFileURL(path.join(dir, 'missing.json'))), /^unknown \(.*missing\.json: .*ENOENT/);
  const bare = path.join(dir, 'bare.json');
  await writeFile(bare, '{"name": "x"}');
  t.match(packageVersion(pathToFileURL(bare)), /^unknown \(.*bare\.json has no version\)$/);
  const broken = path.join(dir, 'broken.json');
  await writeFile(broken, '{"version": ');
  t.match(packageVersion(pathToFileURL(broken)), /^unknown \(.*broken\.json: /);
});
