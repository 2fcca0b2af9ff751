import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseHeader } from '../../src/nginx/render.js';
import { manifestOf } from '../../src/nginx/snapshot.js';
import { sendRequests, startTestNginx } from '../fixtures/nginx/harness.js';

t.test('rollback restores a snapshot and its generation is live', async (t) => {
  const h = await startTestNginx(t);
  const confDir = path.dirname(h.config.nginx.conf);
  const bootstrap = (await h.snapshots.list())[0];
  const a = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'to 30' });
  if (!a.ok) throw a.error;
  const at2 = manifestOf(confDir);
  const b = await h.applier.apply({ weights: { gateway: 60 }, generation: 3, reason: 'to 60' });
  if (!b.ok) throw b.error;

  const t0 = performance.now();
  const back = await h.applier.rollback();
  t.comment(`rollback latency: ${(performance.now() - t0).toFixed(0)} ms`);
  t.match(
    back,
    { ok: true, generation: 2, snapshot: { id: b.snapshotId, generation: 2, weights: { gateway: 30 } } },
    'default: the newest snapshot older than the live generation',
  );
  t.equal(await h.ctl.generation(), 2, 'generation 2 is live again');
  t.same(manifestOf(confDir), at2, 'the conf dir is byte for byte what it was at generation 2');

  const first = await h.applier.rollback(a.snapshotId);
  t.match(first, { ok: true, generation: 1, snapshot: { weights: { gateway: 0 } } });
  t.equal(await h.ctl.generation(), 1);
  t.same((await sendRequests(h.url, 20)).backend, { primary: 20 }, 'weight 0 again: all traffic on the primary');

  const before = manifestOf(confDir);
  const none = await h.applier.rollback();
  t.match(none, {
    ok: false,
    stage: 'select',
    error: { code: 'NC_SNAPSHOT_NONE_OLDER' },
    restored: false,
    snapshot: null,
  });
  t.match(await h.applier.rollback('nope'), { ok: false, stage: 'select', error: { code: 'NC_SNAPSHOT_NOT_FOUND' } });

  if (!bootstrap) throw new Error('no bootstrap snapshot');
  const empty = await h.applier.rollback(bootstrap.id);
  t.match(
    empty,
    { ok: false, stage: 'test', restored: true, snapshot: { id: bootstrap.id } },
    'a snapshot without the include file fails nginx -t',
  );
  t.same(manifestOf(confDir), before, 'and the rollback was undone byte for byte');
  t.equal(await h.ctl.generation(), 1);
  t.equal(parseHeader(await readFile(h.config.nginx.upstreamsFile, 'utf8'))?.generation, 1);
});

t.test(
  'after a drain, a plain rollback restores a snapshot with the canary at 0, never the one before the drain',
  async (t) => {
    const h = await startTestNginx(t);
    const a = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'to 30' });
    if (!a.ok) throw a.error;
    const drain = await h.applier.apply({ weights: { gateway: 0 }, generation: 3, reason: 'drain' });
    if (!drain.ok) throw drain.error;
    const snaps = await h.snapshots.list();
    t.match(snaps[0], { id: drain.snapshotId, weights: { gateway: 30 } }, 'the newest snapshot holds the canary at 30');

    const back = await h.applier.rollback();
    t.match(back, { ok: true, generation: 1, raises: [], snapshot: { id: a.snapshotId, weights: { gateway: 0 } } });
    const after = await sendRequests(h.url, 40);
    t.same(after.backend, { primary: 40 }, 'no request reaches the canary after the plain rollback');

    const named = await h.applier.rollback(drain.snapshotId);
    t.match(
      named,
      { ok: true, generation: 2, raises: [{ service: 'gateway', from: 0, to: 30 }] },
      'naming the snapshot restores the higher weight and says so',
    );
  },
);
