import t from 'tap';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errors } from '../../src/errors.js';
import { manifestOf } from '../../src/nginx/snapshot.js';
import type { NginxCtl } from '../../src/nginx/types.js';
import { makeService } from '../fixtures/nginx/config.js';
import { startTestNginx } from '../fixtures/nginx/harness.js';

/** A ctl whose calls can be made to fail from the test. */
function faulty(real: NginxCtl): NginxCtl & {
  failTestAfter: number;
  reload: NginxCtl['reload'];
  reloadMode: 'real' | 'noop' | 'fail-once';
  tests: number;
} {
  const c = {
    failTestAfter: Number.POSITIVE_INFINITY,
    reloadMode: 'real' as 'real' | 'noop' | 'fail-once',
    tests: 0,
    version: () => real.version(),
    test: async (conf?: string) => {
      c.tests++;
      if (c.tests > c.failTestAfter) throw errors.nginxBinary('nginx', new Error('binary vanished'));
      return real.test(conf);
    },
    reload: async () => {
      if (c.reloadMode === 'noop') return;
      if (c.reloadMode === 'fail-once') {
        c.reloadMode = 'real';
        throw new Error('kill(2) failed');
      }
      await real.reload();
    },
    generation: () => real.generation(),
  };
  return c;
}

t.test('apply: the snapshot cannot be written → stage snapshot, nothing changed', async (t) => {
  const h = await startTestNginx(t);
  await rm(h.config.nginx.snapshots.dir, { recursive: true });
  await writeFile(h.config.nginx.snapshots.dir, 'a file where the snapshot dir should be');
  const before = manifestOf(path.dirname(h.config.nginx.conf));
  const r = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'x' });
  t.match(r, { ok: false, stage: 'snapshot', restored: false, error: { code: 'NC_SNAPSHOT_FAILED' } });
  t.same(manifestOf(path.dirname(h.config.nginx.conf)), before);
  t.equal(await h.ctl.generation(), 1);
});

t.test('apply: nginx -t cannot run after the write → stage test, restored', async (t) => {
  let ctl: ReturnType<typeof faulty> | undefined;
  const h = await startTestNginx(t, { wrapCtl: (real) => (ctl = faulty(real)) });
  if (!ctl) throw new Error('no ctl');
  // The next nginx -t throws, and it is the one after the write: the preflight is skipped, the directory
  // being byte for byte what the harness's writeInitial tested (apply-preflight.test.ts).
  ctl.failTestAfter = ctl.tests;
  const before = manifestOf(path.dirname(h.config.nginx.conf));
  const r = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'x' });
  t.match(r, { ok: false, stage: 'test', restored: true, error: { code: 'NC_NGINX_BINARY' } });
  t.same(manifestOf(path.dirname(h.config.nginx.conf)), before);
});

t.test('rollback: a failing reload or a reload that never goes live puts the pre-rollback config back', async (t) => {
  let ctl: ReturnType<typeof faulty> | undefined;
  // 2 s, not 300 ms: the set-up apply below reloads for real, and a busy machine took longer than 300 ms.
  const h = await startTestNginx(t, { wrapCtl: (real) => (ctl = faulty(real)), verifyTimeoutMs: 2000 });
  if (!ctl) throw new Error('no ctl');
  const a = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'x' });
  if (!a.ok) throw a.error;
  const confDir = path.dirname(h.config.nginx.conf);
  const before = manifestOf(confDir);

  ctl.reloadMode = 'fail-once';
  const r1 = await h.applier.rollback(a.snapshotId);
  t.match(r1, { ok: false, stage: 'reload', restored: true, snapshot: { id: a.snapshotId, generation: 1 } });
  t.same(manifestOf(confDir), before, 'reload failed: the pre-rollback files are back');
  t.equal(await h.ctl.generation(), 2);

  ctl.reloadMode = 'noop';
  const r2 = await h.applier.rollback(a.snapshotId);
  t.match(r2, { ok: false, stage: 'verify', restored: true, error: { code: 'NC_RELOAD_NOT_LIVE' } });
  t.same(manifestOf(confDir), before, 'not live: the pre-rollback files are back');
  t.equal(await h.ctl.generation(), 2);

  ctl.reloadMode = 'real';
  ctl.failTestAfter = ctl.tests;
  t.match(await h.applier.rollback(a.snapshotId), {
    ok: false,
    stage: 'test',
    restored: true,
    error: { code: 'NC_NGINX_BINARY' },
  });
  t.same(manifestOf(confDir), before);
});

t.test('rollback honours the disk guard and min_reload_interval', async (t) => {
  let free = 0.5;
  const h = await startTestNginx(t, {
    disk: { freeRatio: async () => free },
    configure: (c) => ({ ...c, nginx: { ...c.nginx, minReloadIntervalMs: 60_000 } }),
  });
  const a = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'x' });
  if (!a.ok) throw a.error;
  t.match(await h.applier.rollback(a.snapshotId), {
    ok: false,
    stage: 'interval',
    error: { code: 'NC_RELOAD_TOO_SOON' },
  });
  h.applier.noteReload(-1e9);
  free = 0.01;
  t.match(await h.applier.rollback(a.snapshotId), { ok: false, stage: 'disk', error: { code: 'NC_DISK_LOW' } });
  free = 0.5;
  t.match(await h.applier.rollback(a.snapshotId), { ok: true, generation: 1 });
});

t.test('reconfigure: a new service applies after weights.yaml changed; nginx.* changes need a restart', async (t) => {
  const h = await startTestNginx(t);
  const addr = h.config.services[0]?.primary[0]?.server ?? '';
  const next = { ...h.config, services: [...h.config.services, makeService('api', [addr], [addr])] };
  await t.rejects(
    h.applier.apply({ weights: { gateway: 10, api: 5 }, generation: 2, reason: 'x' }),
    RangeError,
    'unknown before reconfigure',
  );
  await h.applier.reconfigure(next);
  const r = await h.applier.apply({ weights: { gateway: 10, api: 5 }, generation: 2, reason: 'x' });
  t.ok(r.ok);
  t.match(await readFile(h.config.nginx.upstreamsFile, 'utf8'), /upstream api \{/);
  const moved = {
    ...next,
    nginx: { ...next.nginx, statusListen: { host: '127.0.0.1', port: 1 }, prefix: '/elsewhere' },
  };
  t.throws(() => h.applier.reconfigure(moved), {
    code: 'NC_CONFIG_INVALID',
    problems: [{ path: 'nginx.prefix' }, { path: 'nginx.status_listen' }],
  });
});
