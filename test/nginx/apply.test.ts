import t from 'tap';
import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ManualClock, systemClock } from '../../src/clock.js';
import { errors } from '../../src/errors.js';
import { Applier, GENERATION_RECHECK_MS, type ApplierOptions } from '../../src/nginx/apply.js';
import { statfsDisk } from '../../src/nginx/disk.js';
import { parseHeader } from '../../src/nginx/render.js';
import { manifestOf, SnapshotStore, type SnapshotManifest } from '../../src/nginx/snapshot.js';
import type { NginxCtl } from '../../src/nginx/types.js';
import { makeConfig, makeService } from '../fixtures/nginx/config.js';
import { countingCtl, sendRequests, startTestNginx } from '../fixtures/nginx/harness.js';

/** Wraps a ctl and counts reloads (optionally replacing reload). */

const confDirOf = (h: { config: { nginx: { conf: string } } }): string => path.dirname(h.config.nginx.conf);

t.test(
  'apply: the generation is proven live, a snapshot with its manifest is written, keep N is honoured',
  async (t) => {
    const h = await startTestNginx(t, {
      configure: (c) => ({ ...c, nginx: { ...c.nginx, snapshots: { ...c.nginx.snapshots, keep: 3 } } }),
    });
    const before = manifestOf(confDirOf(h));
    const latencies: number[] = [];
    const t0 = performance.now();
    const r = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'step to 30' });
    latencies.push(performance.now() - t0);
    if (!r.ok) throw r.error;
    t.equal(r.generation, 2);
    t.equal(await h.ctl.generation(), 2, 'the status server answers the new generation');
    t.same(parseHeader(await readFile(h.config.nginx.upstreamsFile, 'utf8')), {
      generation: 2,
      weights: { gateway: 30 },
    });

    const [newest] = await h.snapshots.list();
    t.equal(newest?.id, r.snapshotId);
    t.match(
      newest,
      { generation: 1, weights: { gateway: 0 }, reason: 'step to 30' },
      'the snapshot holds the config live before the change',
    );
    const manifest = JSON.parse(
      await readFile(path.join(h.config.nginx.snapshots.dir, `${r.snapshotId}.json`), 'utf8'),
    ) as SnapshotManifest;
    t.same(manifest.files, before, 'its manifest is the conf dir before the change, byte for byte');
    t.equal((await sendRequests(h.url, 20)).status[200], 20, 'nginx serves');

    for (let g = 3; g <= 6; g++) {
      const a = performance.now();
      const x = await h.applier.apply({ weights: { gateway: g * 10 }, generation: g, reason: `g${g}` });
      latencies.push(performance.now() - a);
      t.ok(x.ok, `apply generation ${g}`);
    }
    t.equal(await h.ctl.generation(), 6);
    const list = await h.snapshots.list();
    t.same(
      list.map((s) => s.generation),
      [5, 4, 3],
      'only the newest 3 snapshots are kept',
    );
    latencies.sort((a, b) => a - b);
    t.comment(
      `apply latency (write + nginx -t ×2 + snapshot + reload + verify), ms: min ${latencies[0]?.toFixed(0)} median ${latencies[2]?.toFixed(0)} max ${latencies[4]?.toFixed(0)}`,
    );
    t.ok(latencies[4]! < 5000, 'an apply takes well under the verify deadline');
    await t.rejects(
      h.applier.apply({ weights: { gateway: 70 }, generation: 6, reason: 'same generation' }),
      RangeError,
      'a generation equal to the live file cannot be proven live',
    );
  },
);

t.test('apply: concurrent calls are serialized', async (t) => {
  const h = await startTestNginx(t);
  const [a, b] = await Promise.all([
    h.applier.apply({ weights: { gateway: 10 }, generation: 2, reason: 'a' }),
    h.applier.apply({ weights: { gateway: 20 }, generation: 3, reason: 'b' }),
  ]);
  t.ok(a.ok && b.ok, 'both succeed (each saw its own generation live)');
  t.equal(await h.ctl.generation(), 3);
  t.same(
    (await h.snapshots.list()).slice(0, 2).map((s) => s.generation),
    [2, 1],
    'the second snapshot holds the first apply',
  );
});

t.test('apply: nginx.conf broken by hand → stage preflight, nothing written, no reload; fixed → applies', async (t) => {
  let ctl: ReturnType<typeof countingCtl> | undefined;
  const h = await startTestNginx(t, { wrapCtl: (real) => (ctl = countingCtl(real)) });
  if (!ctl) throw new Error('no ctl');
  const good = await readFile(h.config.nginx.conf, 'utf8');
  await appendFile(h.config.nginx.conf, '\ngarbage;\n');
  const before = manifestOf(confDirOf(h));
  const snaps = await h.snapshots.list();

  const r = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'x' });
  t.match(r, { ok: false, stage: 'preflight', restored: false });
  if (r.ok) return;
  t.equal(r.error.code, 'NC_NGINX_CONFIG_BROKEN');
  t.match(r.error.message, /unknown directive "garbage"/);
  t.same(manifestOf(confDirOf(h)), before, 'nothing written');
  t.same(await h.snapshots.list(), snaps, 'no snapshot of a broken config');
  t.equal(ctl.calls.reload, 0, 'no reload');
  t.equal(await h.ctl.generation(), 1);
  t.same((await sendRequests(h.url, 20)).status, { 200: 20 }, 'nginx still serves');

  await writeFile(h.config.nginx.conf, good);
  const fixed = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'x' });
  t.ok(fixed.ok, 'applies once nginx.conf is fixed');
  t.equal(await h.ctl.generation(), 2);
});

t.test(
  'apply: a rendered file nginx -t rejects → stage test, restored byte for byte, previous generation live',
  async (t) => {
    let ctl: ReturnType<typeof countingCtl> | undefined;
    // The operator's nginx.conf already defines `upstream extra`; a service of that name then collides.
    const h = await startTestNginx(t, {
      wrapCtl: (real) => (ctl = countingCtl(real)),
      editConf: (s) => s.replace('http {', 'http {\n    upstream extra { server 127.0.0.1:9; }'),
    });
    if (!ctl) throw new Error('no ctl');
    const config = {
      ...h.config,
      services: [...h.config.services, makeService('extra', ['127.0.0.1:10'], ['127.0.0.1:11'])],
    };
    const applier = new Applier({ config, ctl, disk: statfsDisk, snapshots: h.snapshots, clock: systemClock });
    const before = manifestOf(confDirOf(h));

    const r = await applier.apply({ weights: { gateway: 30, extra: 5 }, generation: 2, reason: 'add extra' });
    t.match(r, { ok: false, stage: 'test', restored: true });
    if (r.ok) return;
    t.equal(r.error.code, 'NC_NGINX_REJECTED_RENDER');
    t.match(r.error.message, /duplicate upstream "extra"/);
    t.same(manifestOf(confDirOf(h)), before, 'the conf dir is byte for byte what it was');
    t.equal(ctl.calls.reload, 0, 'no reload');
    t.equal(await h.ctl.generation(), 1, 'the previous generation is still live');
    t.ok((await h.realCtl.test()).ok, 'nginx -t passes again');
  },
);

t.test('apply: a reload that never goes live → stage verify, restored', async (t) => {
  let ctl: ReturnType<typeof countingCtl> | undefined;
  const h = await startTestNginx(t, {
    wrapCtl: (real) => (ctl = countingCtl(real, async () => undefined)),
    verifyTimeoutMs: 300,
  });
  if (!ctl) throw new Error('no ctl');
  const before = manifestOf(confDirOf(h));
  const t0 = performance.now();
  const r = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'x' });
  const took = performance.now() - t0;
  t.match(r, { ok: false, stage: 'verify', restored: true });
  if (r.ok) return;
  t.equal(r.error.code, 'NC_RELOAD_NOT_LIVE');
  t.match(
    r.error.message,
    /generation 2 before the deadline \(last seen: 1, but worker\(s\) [\d, ]+ from before the reload still accept connections\)/,
    'the old generation answers and its workers still accept: the reload never reached them',
  );
  t.ok(took >= 300 && took < 10_000, `gave up after its 300 ms deadline, not the default 10 s (${took.toFixed(0)} ms)`);
  t.equal(ctl.calls.reload, 2, 'the reload, then the reload of the restored snapshot');
  t.same(manifestOf(confDirOf(h)), before, 'restored byte for byte');
  t.equal(await h.ctl.generation(), 1);
});

t.test('apply: a failing reload → stage reload, restored and reloaded', async (t) => {
  let ctl: ReturnType<typeof countingCtl> | undefined;
  const h = await startTestNginx(t, {
    wrapCtl: (real) =>
      (ctl = countingCtl(real, async (n) => {
        if (n === 1) throw errors.reloadFailed('signal process started: kill(1234, 1) failed (3: No such process)');
        await real.reload();
      })),
  });
  if (!ctl) throw new Error('no ctl');
  const before = manifestOf(confDirOf(h));
  const r = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'x' });
  t.match(r, { ok: false, stage: 'reload', restored: true, error: { code: 'NC_RELOAD_FAILED' } });
  t.equal(ctl.calls.reload, 2);
  t.same(manifestOf(confDirOf(h)), before);
  t.equal(await h.ctl.generation(), 1);
});

t.test('apply: low disk → stage disk, no change', async (t) => {
  const asked: string[] = [];
  const h = await startTestNginx(t, {
    disk: {
      freeRatio: async (p) => {
        asked.push(p);
        return asked.length > 2 ? 0.05 : 0.5;
      },
    },
  });
  asked.length = 2; // the initial render asked twice at 0.5
  const before = manifestOf(confDirOf(h));
  const snaps = await h.snapshots.list();
  const r = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'x' });
  t.match(r, {
    ok: false,
    stage: 'disk',
    restored: false,
    error: { code: 'NC_DISK_LOW', message: /only 5\.0 % free/ },
  });
  t.equal(asked[2], h.config.nginx.snapshots.dir, 'the snapshot volume is checked');
  t.same(manifestOf(confDirOf(h)), before);
  t.same(await h.snapshots.list(), snaps, 'no snapshot taken');
  t.equal(await h.ctl.generation(), 1);
});

t.test('apply: min_reload_interval is enforced on the monotonic clock', async (t) => {
  const clock = new ManualClock();
  const h = await startTestNginx(t, {
    clock,
    configure: (c) => ({ ...c, nginx: { ...c.nginx, minReloadIntervalMs: 60_000 } }),
  });
  t.ok((await h.applier.apply({ weights: { gateway: 10 }, generation: 2, reason: 'a' })).ok);
  const soon = await h.applier.apply({ weights: { gateway: 20 }, generation: 3, reason: 'b' });
  t.match(soon, { ok: false, stage: 'interval', error: { code: 'NC_RELOAD_TOO_SOON', message: /retry in 60000 ms/ } });
  const raise = { weights: { gateway: 20 } };
  t.equal(
    await h.applier.reloadWaitMs(raise),
    60_000,
    'reloadWaitMs gives the same wait (the runner holds a reconcile for it)',
  );
  t.equal(
    await h.applier.reloadWaitMs({ weights: { gateway: 10 } }),
    60_000,
    'the same weights again (a reconcile) wait too',
  );
  t.equal(await h.applier.reloadWaitMs({ weights: { gateway: 0 } }), 0, 'a change that only lowers never waits');
  clock.advance(59_999);
  t.equal(await h.applier.reloadWaitMs(raise), 1);
  t.match(await h.applier.apply({ weights: { gateway: 20 }, generation: 3, reason: 'b' }), {
    ok: false,
    stage: 'interval',
    error: { message: /retry in 1 ms/ },
  });
  t.equal(await h.ctl.generation(), 2, 'nothing reloaded');
  clock.advance(1);
  t.equal(await h.applier.reloadWaitMs(raise), 0, 'due');
  t.ok(
    (await h.applier.apply({ weights: { gateway: 20 }, generation: 3, reason: 'b' })).ok,
    'allowed once the interval passed',
  );
  clock.advance(120_000);
  h.applier.noteReload(clock.monotonic());
  t.match(
    await h.applier.apply({ weights: { gateway: 30 }, generation: 4, reason: 'c' }),
    { ok: false, stage: 'interval' },
    'noteReload counts',
  );
  t.match(
    await h.applier.apply({ weights: { gateway: 20 }, generation: 4, reason: 'reconcile' }),
    { ok: false, stage: 'interval' },
    'the same weights again (a reconcile) wait too',
  );
  const drain = await h.applier.apply({ weights: { gateway: 0 }, generation: 4, reason: 'drain' });
  t.match(drain, { ok: true, generation: 4 }, 'a change that only lowers (a drain) never waits for the interval');
  t.equal(await h.ctl.generation(), 4, 'and it is live');
});

t.test('apply: bootstrap (no include file yet) skips preflight; writeInitial never reloads', async (t) => {
  let ctl: ReturnType<typeof countingCtl> | undefined;
  const h = await startTestNginx(t, { wrapCtl: (real) => (ctl = countingCtl(real)) });
  if (!ctl) throw new Error('no ctl');
  t.equal(ctl.calls.reload, 0, 'the harness render used writeInitial: no reload');
  t.same(
    (await h.snapshots.list()).map((s) => s.generation),
    [0],
    'the bootstrap snapshot holds no include file (generation 0)',
  );
  await rm(h.config.nginx.upstreamsFile);
  t.notOk((await h.realCtl.test()).ok, 'without the include file nginx -t fails, so preflight must be skipped');
  const r = await h.applier.apply({ weights: { gateway: 40 }, generation: 2, reason: 'bootstrap' });
  t.ok(r.ok);
  t.equal(await h.ctl.generation(), 2);
  const w = await h.applier.writeInitial({ weights: { gateway: 50 }, generation: 3, reason: 'initial' });
  t.ok(w.ok);
  t.equal(ctl.calls.reload, 1, 'writeInitial did not reload');
  t.equal(await h.ctl.generation(), 2, 'and nothing new is live');
  t.equal(parseHeader(await readFile(h.config.nginx.upstreamsFile, 'utf8'))?.generation, 3);
});

t.test('writeInitial repairs an include left by an older release; a live apply would refuse it', async (t) => {
  const h = await startTestNginx(t);
  const file = h.config.nginx.upstreamsFile;
  const good = await readFile(file, 'utf8');
  // An include without the route map (as 0.1 wrote it) while nginx.conf proxies to $nginx_canary_gateway.
  const old = good.replace(/^map "[^"\n]*" \$nginx_canary_gateway \{[\s\S]*?^\}\n/m, '');
  t.not(old, good, 'the fixture removed the map');
  await writeFile(file, old);
  t.notOk((await h.realCtl.test()).ok, 'the current config fails nginx -t');
  const live = await h.applier.apply({ weights: { gateway: 10 }, generation: 5, reason: 'live' });
  t.match(live, { ok: false, stage: 'preflight' }, 'a live apply never builds on a broken config');
  const w = await h.applier.writeInitial({ weights: { gateway: 10 }, generation: 6, reason: 'initial' });
  t.ok(w.ok, 'writeInitial writes the new file');
  t.ok((await h.realCtl.test()).ok, 'and the config passes nginx -t again');
});

t.test('apply: an nginx binary that cannot run → stage preflight', async (t) => {
  const dir = await import('../fixtures/nginx/harness.js').then((m) => m.tempDir());
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = makeConfig(dir, { nginx: { binary: '/nonexistent/nginx' } });
  const { NginxCommand } = await import('../../src/nginx/ctl.js');
  const applier = new Applier({
    config,
    ctl: new NginxCommand(config.nginx),
    disk: statfsDisk,
    snapshots: new SnapshotStore(config.nginx.snapshots.dir, 2, config.nginx, systemClock),
    clock: systemClock,
  });
  const r = await applier.apply({ weights: {}, generation: 1, reason: 'x' });
  t.match(r, { ok: false, stage: 'preflight', error: { code: 'NC_NGINX_BINARY' } });
});

t.test(
  'Applier refuses an upstreams file outside the conf dir and a snapshot store that does not own it',
  async (t) => {
    const config = makeConfig('/x');
    const ctl = {} as NginxCtl;
    const snapshots = new SnapshotStore('/x/snapshots', 2, config.nginx, systemClock);
    /** An Applier on `config` with `over` laid on top, not yet constructed (for t.throws). */
    const applier = (over: Partial<ApplierOptions>) => () =>
      new Applier({ config, ctl, disk: statfsDisk, snapshots, clock: systemClock, ...over });
    t.throws(applier({ config: { ...config, nginx: { ...config.nginx, upstreamsFile: '/elsewhere/u.conf' } } }), {
      code: 'NC_CONFIG_INVALID',
      message: /nginx\.upstreams_file/,
    });
    t.throws(applier({ snapshots: new SnapshotStore('/x/s', 2, '/other', systemClock) }), RangeError);
    t.throws(applier({ snapshots: new SnapshotStore('/x/s', 2, '/x/conf', systemClock) }), /must own/);
    t.throws(applier({ verifyTimeoutMs: 0 }), RangeError);
  },
);

t.test(
  'isLive: a passed check is remembered by the file identity; nginx is asked again after GENERATION_RECHECK_MS',
  async (t) => {
    const clock = new ManualClock();
    let asked = 0;
    let answer: number | null = null; // null: nginx's own answer
    const h = await startTestNginx(t, {
      clock,
      wrapCtl: (real) => ({
        version: () => real.version(),
        test: (conf?: string) => real.test(conf),
        reload: () => real.reload(),
        generation: async () => {
          asked++;
          return answer ?? (await real.generation());
        },
      }),
    });
    const req = { weights: { gateway: 10 }, generation: 2, reason: 'step' };
    t.ok((await h.applier.apply(req)).ok);
    const file = h.config.nginx.upstreamsFile;
    const text = await readFile(file, 'utf8');

    asked = 0;
    t.equal(await h.applier.isLive(req), true, 'live after the apply');
    t.equal(asked, 0, 'the apply proved its generation served: the first check trusts it');
    t.equal(await h.applier.isLive(req), true);
    t.equal(asked, 0, 'the same request on the same file: nginx is not asked');
    clock.advance(GENERATION_RECHECK_MS - 1);
    answer = 7; // nginx now serves another generation, the include file untouched
    t.equal(await h.applier.isLive(req), true, 'trusted until GENERATION_RECHECK_MS has passed');
    clock.advance(1);
    t.equal(await h.applier.isLive(req), false, 'then asked: another generation is not live');
    t.equal(asked, 1);
    answer = null;

    t.equal(await h.applier.isLive(req), true, 'nginx answers 2 again');
    await appendFile(file, '# a hand edit\n');
    t.equal(await h.applier.isLive(req), false, 'an edit in place is found at once, with no clock advance');
    await writeFile(file, text);
    t.equal(await h.applier.isLive(req), true, 'the same bytes written back: read, rendered and asked again');
    t.equal(asked, 3, 'an unchanged file identity is the only thing that spares the question');
    t.equal(
      await h.applier.isLive({ ...req, weights: { gateway: 20 } }),
      false,
      'another request renders another file',
    );
    t.equal(await h.applier.isLive({ ...req, generation: 3 }), false, 'another generation is not live');
    await rm(file);
    t.equal(await h.applier.isLive(req), false, 'a missing file is not live (never throws)');
  },
);
