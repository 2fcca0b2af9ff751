// The preflight `nginx -t` on the real nginx: skipped while the config
// directory is byte for byte what the last passing `nginx -t` of the applier
// tested (one nginx -t per apply instead of two), run again as soon as any
// file, link or mode in it differs; a config broken outside the directory
// (an included file elsewhere) is still reported as a broken config, after the
// rejected write is restored.
import { appendFile, chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { manifestOf } from '../../src/nginx/snapshot.js';
import { countingCtl, startTestNginx } from '../fixtures/nginx/harness.js';

t.test(
  'one nginx -t per apply while the directory is what nginx -t passed; two when anything in it changed',
  async (t) => {
    let ctl: ReturnType<typeof countingCtl> | undefined;
    const h = await startTestNginx(t, { wrapCtl: (real) => (ctl = countingCtl(real)) });
    if (!ctl) throw new Error('no ctl');
    const c = ctl;
    const confDir = path.dirname(h.config.nginx.conf);
    let generation = 1;
    /** nginx -t runs of one apply to `weight` (which must succeed). */
    const runs = async (weight: number): Promise<number> => {
      const before = c.calls.test;
      const r = await h.applier.apply({ weights: { gateway: weight }, generation: ++generation, reason: 'x' });
      if (!r.ok) throw r.error;
      t.equal(await h.ctl.generation(), generation, `generation ${generation} live`);
      return c.calls.test - before;
    };
    t.equal(await runs(10), 1, 'after writeInitial passed nginx -t: the test after the write only');
    t.equal(await runs(20), 1, 'after an apply: the same');
    await writeFile(path.join(confDir, 'notes.txt'), 'an operator note\n');
    t.equal(await runs(30), 2, 'a file added: the preflight runs');
    t.equal(await runs(0), 1, 'then is skipped again');
    await appendFile(h.config.nginx.conf, '\n# a comment\n');
    t.equal(await runs(40), 2, 'nginx.conf edited (a comment): the preflight runs');
    await chmod(h.config.nginx.conf, 0o600);
    t.equal(await runs(50), 2, 'a mode changed: the preflight runs');
    t.equal(await runs(60), 1, 'nothing changed since: skipped');
  },
);

t.test('a config broken outside the directory: stage preflight, the write restored, nginx unchanged', async (t) => {
  const outsideDir = t.testdir();
  const outside = path.join(outsideDir, 'extra', 'extra.conf');
  await mkdir(path.dirname(outside), { recursive: true });
  await writeFile(outside, '# included from nginx.conf, outside its directory\n');
  let ctl: ReturnType<typeof countingCtl> | undefined;
  const h = await startTestNginx(t, {
    wrapCtl: (real) => (ctl = countingCtl(real)),
    editConf: (s) => s.replace('http {', `http {\n    include ${outside};`),
  });
  if (!ctl) throw new Error('no ctl');
  t.match(await readFile(h.config.nginx.conf, 'utf8'), outside, 'nginx.conf includes the outside file');
  const first = await h.applier.apply({ weights: { gateway: 10 }, generation: 2, reason: 'x' });
  t.ok(first.ok, 'applies');
  const confDir = path.dirname(h.config.nginx.conf);
  const before = manifestOf(confDir);

  await writeFile(outside, 'garbage;\n');
  const tests = ctl.calls.test;
  const r = await h.applier.apply({ weights: { gateway: 20 }, generation: 3, reason: 'x' });
  t.match(r, { ok: false, stage: 'preflight', restored: true, error: { code: 'NC_NGINX_CONFIG_BROKEN' } });
  if (!r.ok) t.match(r.error.message, /unknown directive "garbage"/, "nginx's own words");
  t.equal(ctl.calls.test - tests, 2, 'the test after the write, then the test of the restored directory');
  t.same(manifestOf(confDir), before, 'the directory is restored byte for byte');
  t.equal(await h.ctl.generation(), 2, 'nginx still serves generation 2');

  await writeFile(outside, '# fixed\n');
  const fixed = await h.applier.apply({ weights: { gateway: 20 }, generation: 3, reason: 'x' });
  t.ok(fixed.ok, 'applies once the outside file is fixed');
  t.equal(await h.ctl.generation(), 3);
});
