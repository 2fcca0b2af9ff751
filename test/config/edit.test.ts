import t, { type Test } from 'tap';
import path from 'node:path';
import * as fsp from 'node:fs/promises';
import { chmod, readFile, readdir, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { parseConfig } from '../../src/config/load.js';
import { checkRolloutEdit, replaceTarget, setTarget, setVersion } from '../../src/config/edit.js';
import type * as Edit from '../../src/config/edit.js';
import type * as Atomic from '../../src/util/atomic.js';
import { CanaryError, ConfigError } from '../../src/errors.js';
import { BASE, withLine, withLines } from '../fixtures/config/hostile.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A temp dir holding `weights.yaml` with `text`; returns its path. */
function fixture(t: Test, text: string): string {
  const dir = t.testdir({ 'weights.yaml': text });
  return path.join(dir, 'weights.yaml');
}

/** Lines that differ between two texts of the same line count. */
function changedLines(a: string, b: string): string[] {
  const al = a.split('\n');
  const bl = b.split('\n');
  return bl.filter((l, i) => l !== al[i]);
}

t.test("the demo weights.yaml: only the target's characters change, comments survive", async (t) => {
  const original = await readFile(path.join(ROOT, 'weights.yaml'), 'utf8');
  const file = fixture(t, original);
  const res = await setTarget(file, 'gateway', 60);
  t.same(res, { from: 50, to: 60 });
  const after = await readFile(file, 'utf8');
  t.equal(after.split('\n').length, original.split('\n').length);
  t.same(changedLines(original, after), ['      target: 60']);
  t.match(after, '# nginx-canary desired state. The sidecar reads this file;', 'the header comment is still there');
  t.match(after, 'slice_soak: 8s                     # production: 48h', 'alignment of trailing comments is kept');
  t.equal(parseConfig(after, file).services[0]?.rollout.target, 60, 'the result re-parses');
});

t.test('a flow-mapping target and a quoted percent are replaced in place', async (t) => {
  const file = fixture(t, BASE);
  t.same(await setTarget(file, 'gateway', 12.5), { from: 50, to: 12.5 });
  t.same(changedLines(BASE, await readFile(file, 'utf8')), [
    '    rollout: { target: 12.5, slice: 5, slice_soak: 48h, step: 10, step_soak: 15m }',
  ]);
  const quoted = withLine(16, '    rollout: { target: "50%" }  # keep me');
  const file2 = fixture(t, quoted);
  t.same(await setTarget(file2, 'gateway', 0), { from: 50, to: 0 });
  t.same(changedLines(quoted, await readFile(file2, 'utf8')), ['    rollout: { target: 0 }  # keep me']);
});

t.test('rollout or target absent: the key is created and comments survive', async (t) => {
  const cases: [string, string][] = [
    ['no rollout', withLines({ 16: '    # rollout: tuned later', 17: null })],
    ['rollout: ~', withLine(16, '    rollout: ~ # defaults')],
    ['rollout without target', withLine(16, '    rollout:\n      slice: 7 # first slice')],
    ['target through an alias', withLine(16, '    rollout: { slice: &s 7, target: *s } # aliased')],
  ];
  for (const [name, text] of cases) {
    const file = fixture(t, text);
    const before = await readFile(file, 'utf8');
    const res = await setTarget(file, 'gateway', 30);
    const after = await readFile(file, 'utf8');
    t.equal(res.to, 30, name);
    t.equal(parseConfig(after, file).services[0]?.rollout.target, 30, `${name}: re-parses with the new target`);
    for (const comment of before.split('\n').filter((l) => l.includes('#'))) {
      t.ok(after.includes(comment.slice(comment.indexOf('#'))), `${name}: comment "${comment.trim()}" survives`);
    }
  }
  const noRollout = replaceTarget(withLines({ 16: null, 17: null }), 'gateway', 5);
  t.match(noRollout, /canary:\n.*\n {4}rollout:\n {6}target: 5\n/, 'a block mapping is added under the service');
});

t.test('invalid weights leave the file byte-identical', async (t) => {
  const file = fixture(t, BASE);
  for (const w of [101, -1, 33.33, Number.NaN, Infinity]) {
    await t.rejects(setTarget(file, 'gateway', w), ConfigError, String(w));
    try {
      await setTarget(file, 'gateway', w);
    } catch (err) {
      const p = (err as ConfigError).problems[0];
      t.equal(p?.path, 'services.gateway.rollout.target');
      t.ok(p?.message && p.fix);
    }
  }
  t.equal(await readFile(file, 'utf8'), BASE);
});

t.test('an unknown service is NC_UNKNOWN_SERVICE and the file is untouched', async (t) => {
  const file = fixture(t, BASE);
  await t.rejects(setTarget(file, 'nope', 10), { code: 'NC_UNKNOWN_SERVICE', exitCode: 2 });
  t.equal(await readFile(file, 'utf8'), BASE);
});

t.test('an invalid file, before or after the edit, is not written', async (t) => {
  const broken = withLine(13, '      - { server: 127.0.0.1:0 }');
  const file = fixture(t, broken);
  await t.rejects(setTarget(file, 'gateway', 10), ConfigError);
  t.equal(await readFile(file, 'utf8'), broken);
  // A block scalar target: splicing the number in breaks the YAML, so nothing is written.
  const block = withLine(16, '    rollout:\n      target: >-\n        50%\n      slice: 5');
  const file2 = fixture(t, block);
  t.equal(parseConfig(block, file2).services[0]?.rollout.target, 50);
  await t.rejects(setTarget(file2, 'gateway', 10), ConfigError);
  t.equal(await readFile(file2, 'utf8'), block);
  await t.rejects(setTarget(path.join(path.dirname(file), 'missing.yaml'), 'gateway', 10), ConfigError);
});

t.test('a rollout shared through an anchor is refused', async (t) => {
  const text = withLine(
    17,
    '    gates: { window: 15m }\n  other:\n    primary: [{ server: 127.0.0.1:3 }]\n    canary: [{ server: 127.0.0.1:4 }]\n    rollout: *r',
  ).replace('    rollout: { target: 50, slice: 5,', '    rollout: &r { target: 50, slice: 7,');
  const file = fixture(t, text);
  t.equal(parseConfig(text, file).services[1]?.rollout.target, 50, 'the alias is valid');
  await t.rejects(setTarget(file, 'gateway', 10), { name: 'ConfigError', message: /shared with another entry/ });
  await t.rejects(setTarget(file, 'other', 10), { name: 'ConfigError', message: /shared with another entry/ });
  t.equal(await readFile(file, 'utf8'), text);
});

t.test('the write is atomic, keeps the mode, and leaves no temp file', async (t) => {
  const file = fixture(t, BASE);
  await chmod(file, 0o640);
  const same = await setTarget(file, 'gateway', 50);
  t.same(same, { from: 50, to: 50 }, 'setting the same target is a no-op');
  await setTarget(file, 'gateway', 70);
  t.equal((await stat(file)).mode & 0o777, 0o640);
  t.same(await readdir(path.dirname(file)), ['weights.yaml']);
  // A symlinked weights.yaml: the target file is replaced, the link stays.
  const dir = path.dirname(file);
  await fsp.symlink('weights.yaml', path.join(dir, 'link.yaml'));
  await setTarget(path.join(dir, 'link.yaml'), 'gateway', 80);
  t.ok((await fsp.lstat(path.join(dir, 'link.yaml'))).isSymbolicLink());
  t.equal(parseConfig(await readFile(file, 'utf8'), file).services[0]?.rollout.target, 80);
});

t.test('a failed write leaves the file unchanged and removes the temp file', async (t) => {
  const { setTarget: mocked } = await t.mockImport<typeof Edit>('../../src/config/edit.js', {
    'node:fs/promises': {
      ...fsp,
      rename: async () => {
        throw Object.assign(new Error('EXDEV: cross-device link not permitted'), { code: 'EXDEV' });
      },
    },
  });
  const file = fixture(t, BASE);
  await t.rejects(mocked(file, 'gateway', 10), { code: 'NC_CONFIG_WRITE', exitCode: 1 });
  t.equal(await readFile(file, 'utf8'), BASE);
  t.same(await readdir(path.dirname(file)), ['weights.yaml']);
});

t.test('a chown that is not permitted does not stop the write', async (t) => {
  let refused = 0;
  // The temp file is written by src/util/atomic.ts: its fs is the one to mock (mocks do not reach through imports).
  const atomic = await t.mockImport<typeof Atomic>('../../src/util/atomic.js', {
    'node:fs/promises': {
      ...fsp,
      open: async (...args: Parameters<typeof fsp.open>): Promise<FileHandle> => {
        const fh = await fsp.open(...args);
        fh.chown = async () => {
          refused++;
          throw Object.assign(new Error('EPERM'), { code: 'EPERM' });
        };
        return fh;
      },
    },
  });
  const { setTarget: mocked } = await t.mockImport<typeof Edit>('../../src/config/edit.js', {
    '../../src/util/atomic.js': atomic,
  });
  const file = fixture(t, BASE);
  t.same(await mocked(file, 'gateway', 10), { from: 50, to: 10 });
  t.equal(refused, 1, 'the chown was tried and refused');
  t.equal(parseConfig(await readFile(file, 'utf8'), file).services[0]?.rollout.target, 10);
});

t.test('CanaryError from the catalogue carries the fix', async (t) => {
  const file = fixture(t, BASE);
  try {
    await setTarget(file, 'nope', 10);
    t.fail('accepted');
  } catch (err) {
    t.ok(err instanceof CanaryError);
    t.match((err as CanaryError).toUserString(), /services:/);
  }
});

t.test('setVersion writes rollout.version in place, quoted, and keeps comments', async (t) => {
  const original = await readFile(path.join(ROOT, 'weights.yaml'), 'utf8');
  const text = original.replace(/^( +)target: 50( *#.*)?$/m, '$&\n$1version: v1  # from the deploy tool');
  t.not(text, original, 'the fixture gained a version line');
  const file = fixture(t, text);
  t.same(await setVersion(file, 'gateway', '1.10'), { from: 'v1', to: '1.10' });
  const after = await readFile(file, 'utf8');
  t.same(
    changedLines(text, after),
    ['      version: "1.10"  # from the deploy tool'],
    'a numeric-looking label stays a string',
  );
  t.equal(parseConfig(after, file).services[0]?.rollout.version, '1.10');
  t.same(await setVersion(file, 'gateway', '1.10'), { from: '1.10', to: '1.10' }, 'the same version again is a no-op');
  await t.rejects(setVersion(file, 'gateway', 'v 2; x'), { name: 'ConfigError', message: /rollout\.version/ });
  t.equal(await readFile(file, 'utf8'), after, 'a bad version changes nothing');
  await t.rejects(setVersion(file, 'nope', 'v2'), { code: 'NC_UNKNOWN_SERVICE' });
  const fresh = fixture(t, original);
  t.same(await setVersion(fresh, 'gateway', 'abc123'), { from: null, to: 'abc123' }, 'a version where there was none');
  t.equal(parseConfig(await readFile(fresh, 'utf8'), fresh).services[0]?.rollout.version, 'abc123');
});

t.test('checkRolloutEdit (fleet mode): the same checks as setTarget/setVersion, nothing written', async (t) => {
  const file = fixture(t, BASE);
  const before = await readFile(file, 'utf8');
  t.equal(await checkRolloutEdit(file, 'gateway', { key: 'target', value: 12.5 }), 12.5);
  await t.rejects(checkRolloutEdit(file, 'gateway', { key: 'target', value: 130 }), {
    message: /services\.gateway\.rollout\.target: must be a percentage from 0 to 100/,
  });
  await t.rejects(checkRolloutEdit(file, 'gateway', { key: 'target', value: 12.25 }), ConfigError);
  await t.rejects(checkRolloutEdit(file, 'nope', { key: 'target', value: 10 }), { code: 'NC_UNKNOWN_SERVICE' });
  await t.rejects(checkRolloutEdit(file, 'gateway', { key: 'version', value: 'v 2;' }), ConfigError);
  t.equal(await checkRolloutEdit(file, 'gateway', { key: 'version', value: 'v2.1' }), 'v2.1');
  t.equal(await readFile(file, 'utf8'), before, 'the file is untouched');
});
