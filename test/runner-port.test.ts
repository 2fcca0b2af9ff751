// The Runner against a fake NginxPort (src/nginx/types.ts): the port is narrow enough that a few lines
// drive the whole loop — set a weight and verify it, reconcile a drifted file, hold on a failed apply —
// with no nginx, no files and no etcd.
import t from 'tap';
import { ManualClock } from '../src/clock.js';
import { nopNotifier } from '../src/alerts/notifier.js';
import { silentLogger } from '../src/log.js';
import { Observer } from '../src/observe/aggregate.js';
import { Runner, type ProbeSource } from '../src/runner.js';
import { CanaryError } from '../src/errors.js';
import type { ApplyRequest, ApplyResult, NginxPort, RollbackResult } from '../src/nginx/types.js';
import type { SnapshotStore } from '../src/nginx/snapshot.js';
import type { StateStore } from '../src/rollout/store.js';
import type { State } from '../src/rollout/types.js';
import { makeConfig, probePool } from './fixtures/rollout/config.js';
import { waitFor } from '../src/util/wait.js';

/** The fake: remembers what it serves; `fail` makes the next applies fail at `reload`. */
class FakeNginx implements NginxPort {
  served: ApplyRequest | null = null;
  applies: ApplyRequest[] = [];
  fail = false;
  /** What {@link reloadWaitMs} answers (the applier's min_reload_interval wait, ms). */
  waitMs = 0;
  flavor = () => Promise.resolve('plus' as const);
  reloadWaitMs = () => Promise.resolve(this.waitMs);
  apply(req: ApplyRequest): Promise<ApplyResult> {
    this.applies.push(req);
    if (this.fail)
      return Promise.resolve({
        ok: false,
        stage: 'reload',
        error: new CanaryError('NC_RELOAD_FAILED', 'fake reload failed', { fix: 'none' }),
        restored: true,
        durationMs: 1,
      });
    this.served = req;
    return Promise.resolve({ ok: true, generation: req.generation, snapshotId: 'fake', durationMs: 1 });
  }
  writeInitial = (req: ApplyRequest) => this.apply(req);
  rollback = (): Promise<RollbackResult> => Promise.reject(new Error('not in this test'));
  isLive = (req: ApplyRequest) =>
    Promise.resolve(
      JSON.stringify(req.weights) === JSON.stringify(this.served?.weights) &&
        req.generation === this.served?.generation,
    );
  fileGeneration = () => Promise.resolve(0);
  reconfigure = () => Promise.resolve();
}

t.test('a fake NginxPort drives the runner: slice, reconcile, hold on failure', async (t) => {
  const config = makeConfig();
  const clock = new ManualClock();
  const nginx = new FakeNginx();
  let saved: State | null = null;
  const store = { load: () => Promise.resolve(null), save: (s: State) => Promise.resolve(void (saved = s)) };
  const prober: ProbeSource = {
    observations: () => ({ gateway: { primary: probePool(), canary: probePool() } }),
    reconfigure: () => undefined,
  };
  const runner = await Runner.open({
    config,
    store: store as unknown as StateStore,
    nginx,
    observer: new Observer(config),
    prober,
    snapshots: { list: () => Promise.resolve([]) } as unknown as SnapshotStore,
    notifier: nopNotifier,
    clock,
    log: silentLogger,
  });
  // weights.yaml is not on disk here: the runner keeps the config it was given (logged, nothing changed).
  const first = await runner.tick();
  t.equal(first.weights['gateway'], 5, 'ready canary: the slice is set');
  t.same(nginx.served?.weights, { gateway: 5 }, 'and it is what the port serves');
  t.equal((saved as State | null)?.services['gateway']?.weight, 5, 'committed after the apply');

  nginx.served = { ...nginx.served!, weights: { gateway: 0 } };
  const before = nginx.applies.length;
  clock.advance(100);
  await runner.tick();
  t.equal(nginx.applies.length, before + 1, 'a drifted nginx is reconciled');
  t.same(nginx.served?.weights, { gateway: 5 });

  // Drift inside the applier's min_reload_interval (nginx restarted right after a reload): the reconcile
  // waits for it instead of failing at stage `interval`, then runs.
  nginx.served = { ...nginx.served, weights: { gateway: 0 } };
  nginx.waitMs = 700;
  clock.advance(100);
  const held = await runner.tick();
  t.equal(nginx.applies.length, before + 1, 'no apply while the applier would refuse it');
  t.equal(held.apply, null, 'nothing reported as a failed apply');
  t.match(held.summary['gateway'], /reconcile in 700 ms \(min_reload_interval\)/, 'the summary says why and when');
  t.equal(runner.state.services['gateway']?.weight, 5, 'the walk keeps its weight');
  nginx.waitMs = 0;
  clock.advance(700);
  const done = await runner.tick();
  t.equal(nginx.applies.length, before + 2, 'reconciled once the interval passed');
  t.match(done.apply, { ok: true });
  t.same(nginx.served?.weights, { gateway: 5 });

  nginx.fail = true;
  await runner.command({ kind: 'abort', service: 'gateway' }).then(
    () => t.fail('an abort whose apply fails must throw'),
    (err: unknown) => t.match(String(err), /fake reload failed/),
  );
  t.equal(runner.state.services['gateway']?.weight, 5, 'a failed apply commits nothing');
});

t.test(
  'nudge runs the next tick now instead of at the interval; a nudge during a tick runs one right after it',
  async (t) => {
    const config = makeConfig();
    const clock = new ManualClock();
    let ticks = 0;
    let hold: Promise<void> | null = null;
    const prober: ProbeSource = {
      observations: () => {
        ticks++;
        return { gateway: { primary: probePool(), canary: probePool() } };
      },
      reconfigure: () => undefined,
    };
    const nginx = new FakeNginx();
    const slow = nginx.apply.bind(nginx);
    nginx.apply = async (req) => {
      if (hold !== null) await hold;
      return slow(req);
    };
    const store = { load: () => Promise.resolve(null), save: () => Promise.resolve() };
    const runner = await Runner.open({
      config,
      store: store as unknown as StateStore,
      nginx,
      observer: new Observer(config),
      prober,
      snapshots: { list: () => Promise.resolve([]) } as unknown as SnapshotStore,
      notifier: nopNotifier,
      clock,
      log: silentLogger,
    });
    runner.nudge();
    t.equal(ticks, 0, 'not running: a nudge runs nothing');
    let release: () => void = () => undefined;
    hold = new Promise((r) => (release = r));
    runner.start(3_600_000); // an hour between ticks: every later tick here is a nudge's
    t.teardown(() => runner.stop());
    await waitFor(() => ticks === 1, { timeoutMs: 10_000, what: 'the first tick' });
    runner.nudge(); // while the first tick waits in its apply
    runner.nudge(); // several nudges before the tick are one
    release();
    hold = null;
    await waitFor(() => ticks === 2, { timeoutMs: 10_000, what: 'a tick right after the one in progress' });
    runner.nudge(); // the loop waits for its hour now
    await waitFor(() => ticks === 3, { timeoutMs: 10_000, what: 'a tick at once' });
    await runner.tick(); // let a possible extra tick show
    t.equal(ticks, 4, 'one tick per nudge, none more: the two nudges during a tick were one');
  },
);

t.test('soak progress alone is saved every QUIET_SAVE_INTERVAL_MS, not every tick; a change at once', async (t) => {
  const config = makeConfig();
  const clock = new ManualClock();
  const nginx = new FakeNginx();
  const saves: State[] = [];
  const store = { load: () => Promise.resolve(null), save: (s: State) => Promise.resolve(void saves.push(s)) };
  const runner = await Runner.open({
    config,
    store: store as unknown as StateStore,
    nginx,
    observer: new Observer(config),
    prober: {
      observations: () => ({ gateway: { primary: probePool(), canary: probePool() } }),
      reconfigure: () => undefined,
    },
    snapshots: { list: () => Promise.resolve([]) } as unknown as SnapshotStore,
    notifier: nopNotifier,
    clock,
    log: silentLogger,
  });
  await runner.tick();
  t.equal(saves.at(-1)?.services['gateway']?.weight, 5, 'the slice is saved at once');
  const after = saves.length;
  const seconds = 30;
  for (let i = 0; i < seconds; i++) {
    clock.advance(1000);
    await runner.tick();
  }
  t.equal(runner.state.services['gateway']?.weight, 5, 'no verdict (no traffic): the slice holds, nothing changes');
  t.equal(saves.length - after, 3, `${seconds} ticks a second apart: one quiet save per 10 s, not one per tick`);
  await runner.command({ kind: 'abort', service: 'gateway' });
  t.equal(saves.at(-1)?.services['gateway']?.weight, 0, 'an abort is saved at once');
});
