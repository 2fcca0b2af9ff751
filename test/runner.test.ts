// The runner (src/runner.ts): the pure statusOf and retryBackoffMs, then a
// Runner on a real nginx (a stack: real weights.yaml, nginx and backends)
// driven tick by tick with a ManualClock, counting reloads through a ctl
// wrapper around the real NginxCommand.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { ManualClock } from '../src/clock.js';
import { MAX_RETRY_BACKOFF_MS, retryBackoffMs, statusOf } from '../src/runner.js';
import type { GateResult, Page, RolloutEvent, ServiceState, State } from '../src/rollout/types.js';
import type { Notifier } from '../src/alerts/notifier.js';
import { loadConfig } from '../src/config/load.js';
import { StateStore } from '../src/rollout/store.js';
import { waitFor } from '../src/util/wait.js';
import { buildModel } from '../src/nginx/model.js';
import { renderUpstreams } from '../src/nginx/render.js';
import { makeConfig, makeService } from './fixtures/nginx/config.js';
import { startStack } from './fixtures/stack.js';
import { liveGeneration, openRunner } from './fixtures/integration/sidecar.js';

const HOUR = 3_600_000;

function svc(over: Partial<ServiceState>): ServiceState {
  return {
    weight: 5,
    phase: 'slice',
    resumePhase: null,
    pausedBy: null,
    target: 50,
    since: 1000,
    soakedMs: 250,
    lastTickAt: 1000,
    drainReason: null,
    ...over,
  };
}

function event(i: number, service = 'gateway'): RolloutEvent {
  return { at: i, service, kind: 'hold', from: 5, to: 5, reason: `event ${i}`, gates: [] };
}

t.test('statusOf', async (t) => {
  // makeService: slice_soak 48 h, step_soak 15 min (the design's numbers).
  const config = makeConfig('/tmp/nc-status', {
    services: [
      makeService('gateway', ['127.0.0.1:18789'], ['127.0.0.1:18890']),
      makeService('api', ['127.0.0.1:18791'], ['127.0.0.1:18892'], { split: 'split_clients' }),
    ],
  });
  const gates: GateResult[] = [
    {
      gate: 'connect_p95',
      kind: 'hold',
      pool: 'canary',
      verdict: 'pass',
      value: 12,
      threshold: 120,
      samples: 300,
      minSamples: 200,
    },
  ];
  const state = (gateway: ServiceState, history: RolloutEvent[] = []): State => ({
    version: 1,
    generation: 9,
    lastReloadAt: 1234,
    services: { gateway },
    history,
  });

  t.test(
    'shape: state fields, config target, gates and summary of the service, defaults for a service absent from state',
    async (t) => {
      const doc = statusOf(config, state(svc({ drainReason: null })), { gateway: gates }, { gateway: 'soaking' });
      t.equal(doc.generation, 9);
      t.equal(doc.lastReloadAt, 1234);
      t.same(
        doc.services.map((s) => s.name),
        ['gateway', 'api'],
        'config order',
      );
      t.same(doc.services[0], {
        name: 'gateway',
        weight: 5,
        target: 50,
        phase: 'slice',
        pausedBy: null,
        drainReason: null,
        since: 1000,
        soakedMs: 250,
        soakNeededMs: 48 * HOUR,
        summary: 'soaking',
        gates,
        split: 'weighted',
        ramp: null,
        version: null,
        promotedVersion: null,
      });
      t.same(doc.services[1], {
        name: 'api',
        weight: 0,
        target: 50,
        phase: 'idle',
        pausedBy: null,
        drainReason: null,
        since: 0,
        soakedMs: 0,
        soakNeededMs: 15 * 60_000,
        summary: '',
        gates: [],
        split: 'split_clients',
        ramp: null,
        version: null,
        promotedVersion: null,
      });
    },
  );

  t.test('the target shown is the config’s, not the state’s', async (t) => {
    const doc = statusOf(config, state(svc({ target: 10 })));
    t.equal(doc.services[0]?.target, 50);
  });

  t.test('soakNeededMs: slice soak for a slice (also when paused from one), step soak otherwise', async (t) => {
    const needed = (s: Partial<ServiceState>): number | undefined =>
      statusOf(config, state(svc(s))).services[0]?.soakNeededMs;
    t.equal(needed({ phase: 'slice' }), 48 * HOUR, 'slice');
    t.equal(needed({ phase: 'step' }), 15 * 60_000, 'step');
    t.equal(needed({ phase: 'paused', pausedBy: 'operator', resumePhase: 'slice' }), 48 * HOUR, 'paused from a slice');
    t.equal(needed({ phase: 'paused', pausedBy: 'gate', resumePhase: 'step' }), 15 * 60_000, 'paused from a step');
    t.equal(
      needed({ phase: 'paused', pausedBy: 'operator', resumePhase: null }),
      15 * 60_000,
      'paused, nothing to resume to',
    );
    t.equal(needed({ phase: 'complete' }), 15 * 60_000, 'complete');
    t.equal(needed({ phase: 'drained', weight: 0, drainReason: 'error_ratio' }), 15 * 60_000, 'drained');
    const paused = statusOf(config, state(svc({ phase: 'paused', pausedBy: 'operator', resumePhase: 'slice' })))
      .services[0];
    t.equal(paused?.pausedBy, 'operator');
    const drained = statusOf(config, state(svc({ phase: 'drained', weight: 0, drainReason: 'error_ratio' })))
      .services[0];
    t.equal(drained?.drainReason, 'error_ratio');
  });

  t.test('history: the newest historyLimit events, newest last', async (t) => {
    const history = Array.from({ length: 60 }, (_, i) => event(i));
    t.same(
      statusOf(config, state(svc({}), history)).history.map((e) => e.at),
      history.slice(10).map((e) => e.at),
      'default 50',
    );
    t.same(
      statusOf(config, state(svc({}), history), {}, {}, 3).history.map((e) => e.at),
      [57, 58, 59],
    );
    t.same(statusOf(config, state(svc({}), history), {}, {}, 0).history, [], 'limit 0: none');
  });
});

t.test('retryBackoffMs: min_reload_interval doubled per failure, capped at 60 s', async (t) => {
  t.equal(MAX_RETRY_BACKOFF_MS, 60_000);
  const table: [number, number, number][] = [
    // [min_reload_interval ms, consecutive failures, wait ms]
    [2000, 0, 0],
    [2000, -1, 0],
    [2000, 1, 2000],
    [2000, 2, 4000],
    [2000, 3, 8000],
    [2000, 5, 32_000],
    [2000, 6, 60_000],
    [2000, 50, 60_000],
    [100, 1, 100],
    [100, 10, 51_200],
    [100, 11, 60_000],
    [0, 4, 0],
  ];
  for (const [interval, failures, want] of table) {
    t.equal(retryBackoffMs(interval, failures), want, `${interval} ms, ${failures} failure(s) → ${want} ms`);
  }
});

t.test('a tick with no change does not reload', async (t) => {
  const stack = await startStack(t, { target: 30 });
  const clock = new ManualClock();
  const r = await openRunner(stack.config, { clock });
  const first = await r.tick();
  t.ok(first.apply?.ok, 'the first tick applies the first slice');
  t.same(first.weights, { gateway: 5 });
  t.same(
    first.events.map((e) => e.kind),
    ['target', 'slice'],
  );
  t.equal(r.ctl.reloads, 1);
  t.equal(await liveGeneration(stack.config), 1);

  for (let i = 0; i < 3; i++) {
    clock.advance(500);
    const rep = await r.tick();
    t.equal(rep.apply, null, `tick ${i + 2}: nothing applied`);
    t.same(rep.events, [], `tick ${i + 2}: no event`);
  }
  t.equal(r.ctl.reloads, 1, 'no reload after the first');
  t.equal(await liveGeneration(stack.config), 1, 'generation unchanged');
  t.equal(r.runner.state.generation, 1);
  t.match(
    r.runner.status().services[0]?.summary,
    /holding at 5 %/,
    'the summary says why it holds (no traffic: inconclusive)',
  );
  t.equal(r.reports.length, 4, 'onTick saw every tick');

  await r.runner.stop();
  t.same(await new StateStore(stack.config.sidecar.stateFile).load(), r.runner.state, 'stop() saved the state');
});

t.test('a failed apply with the same weights waits for the backoff before it is retried', async (t) => {
  const stack = await startStack(t, { target: 30, minReloadInterval: '1s' });
  const clock = new ManualClock();
  const r = await openRunner(stack.config, { clock });
  r.ctl.failReload = new Error('reload refused by the test');

  const failed = await r.tick();
  t.equal(failed.apply?.ok, false, 'the first apply fails');
  t.equal(failed.apply?.ok === false ? failed.apply.stage : null, 'reload');
  const afterFirst = r.ctl.reloads;
  t.ok(afterFirst >= 1, 'nginx reload was attempted');
  t.same(failed.weights, { gateway: 0 }, 'the live weight is held');
  t.equal(r.runner.state.generation, 0, 'nothing committed');
  t.same(
    r.runner.state.history.filter((e) => e.kind === 'apply_failed').map((e) => [e.from, e.to]),
    [[0, 5]],
  );

  // Backoff after 1 failure: min_reload_interval (1 s).
  const held = await r.tick();
  t.equal(held.apply, null, 'an immediate tick does not retry');
  t.match(held.summary['gateway'], /^holding at 0 %: 0 → 5 % not applied \(\w+: .+\); retrying in 1\.0 s\. Decided: /);
  clock.advance(999);
  t.equal((await r.tick()).apply, null, 'still backing off at 999 ms');
  t.equal(r.ctl.reloads, afterFirst, 'no reload while backing off');

  clock.advance(1);
  const retried = await r.tick();
  t.equal(retried.apply?.ok, false, 'retried at 1 s, fails again');
  t.ok(r.ctl.reloads > afterFirst, 'the retry ran nginx reload');
  const afterSecond = r.ctl.reloads;
  t.equal(
    r.runner.state.history.filter((e) => e.kind === 'apply_failed').length,
    1,
    'the same failure is recorded once',
  );

  // Backoff after 2 failures: 2 s.
  clock.advance(1999);
  t.equal((await r.tick()).apply, null, 'still backing off at 1999 ms after the second failure');
  t.equal(r.ctl.reloads, afterSecond);
  r.ctl.failReload = null;
  clock.advance(1);
  const ok = await r.tick();
  t.equal(ok.apply?.ok, true, 'retried after 2 s and applied');
  t.same(ok.weights, { gateway: 5 });
  t.equal(await liveGeneration(stack.config), 1, 'nginx serves the new generation');
  const metrics = await r.metrics.registry.metrics();
  t.match(metrics, /^nginx_canary_reloads_total\{result="reload"\} 2$/m, 'two failed applies counted by stage');
  t.match(metrics, /^nginx_canary_reloads_total\{result="ok"\} 1$/m);
  t.match(metrics, /^nginx_canary_rollbacks_total\{reason="reload"\} 2$/m, 'each failure restored its snapshot');

  // A success clears the failure: the next change is not held by an old backoff.
  r.ctl.failReload = new Error('again');
  clock.advance(1000);
  await writeFile(stack.configFile, (await readFile(stack.configFile, 'utf8')).replace('target: 30', 'target: 0'));
  const lowered = await r.tick();
  t.equal(lowered.apply?.ok, false, 'a new change is tried at once');
});

t.test('drift: a hand-edited include file is reconciled on the next tick', async (t) => {
  const stack = await startStack(t, { target: 30 });
  const clock = new ManualClock();
  const r = await openRunner(stack.config, { clock });
  t.ok((await r.tick()).apply?.ok);
  const file = stack.config.nginx.upstreamsFile;
  const rendered = await readFile(file, 'utf8');
  t.match(rendered, /^# generation: 1$/m);

  await writeFile(file, `${rendered}\n# an operator was here\n`);
  clock.advance(1000);
  const rep = await r.tick();
  t.equal(rep.apply?.ok, true, 'the drift was applied');
  t.same(rep.weights, { gateway: 5 }, 'at the same weights');
  t.equal(r.ctl.reloads, 2);
  t.equal(await liveGeneration(stack.config), 2, 'nginx reloaded to generation 2');
  t.equal(
    await readFile(file, 'utf8'),
    renderUpstreams(buildModel(stack.config, { gateway: 5 }, 2, 'oss')),
    'the file is the render of the live weights again',
  );

  clock.advance(1000);
  t.equal((await r.tick()).apply, null, 'reconciled: the next tick has nothing to do');

  // nginx serving another generation than the state is drift too: the generation-1 file
  // reloaded by hand, then the current file put back without a reload.
  const current = await readFile(file, 'utf8');
  await writeFile(file, rendered);
  await r.ctl.real.reload();
  let since: number | null = null;
  await waitFor(
    async () => {
      if ((await liveGeneration(stack.config)) !== 1) return (since = null);
      since ??= performance.now();
      return performance.now() - since >= 300; // old workers stop answering ~100 ms after a reload
    },
    { timeoutMs: 5000, what: 'nginx steadily serving generation 1' },
  );
  await writeFile(file, current);
  clock.advance(1000);
  const regen = await r.tick();
  t.equal(regen.apply?.ok, true, 'a live generation other than the state’s is reconciled');
  t.equal(await liveGeneration(stack.config), 3);
  t.equal(r.runner.state.generation, 3);
});

t.test('weights.yaml: an invalid edit keeps the old config; a valid edit is picked up', async (t) => {
  const stack = await startStack(t, { target: 30 });
  const clock = new ManualClock();
  const r = await openRunner(stack.config, { clock });
  t.ok((await r.tick()).apply?.ok);
  const before = r.runner.status();
  const reloads = r.ctl.reloads;
  const text = await readFile(stack.configFile, 'utf8');

  await writeFile(stack.configFile, text.replace('target: 30', 'target: 300'));
  clock.advance(1000);
  const bad = await r.tick();
  t.equal(bad.apply, null, 'no apply');
  t.equal(r.ctl.reloads, reloads, 'no reload');
  t.equal(r.runner.config.services[0]?.rollout.target, 30, 'the last valid config is kept');
  t.same(r.runner.status().services[0]?.weight, before.services[0]?.weight);
  t.same(r.runner.status().services[0]?.target, 30);
  t.same(r.runner.status().services[0]?.phase, before.services[0]?.phase);
  t.equal(r.runner.status().history.length, before.history.length, 'no event');
  t.equal(await liveGeneration(stack.config), 1);

  await writeFile(stack.configFile, text.replace('target: 30', 'target: 60'));
  clock.advance(1000);
  const good = await r.tick();
  t.equal(r.runner.config.services[0]?.rollout.target, 60, 'the valid edit is the config now');
  t.same(
    good.events.map((e) => [e.kind, e.from, e.to]),
    [['target', 30, 60]],
  );
  t.equal(r.runner.status().services[0]?.target, 60);

  // A lower target is applied at once (the safe direction).
  await writeFile(stack.configFile, text.replace('target: 30', 'target: 0'));
  clock.advance(1000);
  const lowered = await r.tick();
  t.equal(lowered.apply?.ok, true);
  t.same(lowered.weights, { gateway: 0 });
  t.equal(await liveGeneration(stack.config), 2);

  // A change nginx control depends on needs a restart: refused, the old config stays.
  await writeFile(
    stack.configFile,
    text
      .replace('target: 30', 'target: 20')
      .replace(/snapshots: \{ dir: snapshots, keep: 20 \}/, 'snapshots: { dir: snapshots, keep: 3 }'),
  );
  clock.advance(1000);
  await r.tick();
  t.equal(r.runner.config.services[0]?.rollout.target, 0, 'a config that needs a restart is not taken');
});

t.test('writeInitial renders the committed state without a reload, once', async (t) => {
  const stack = await startStack(t, { target: 30 });
  const clock = new ManualClock();
  const r = await openRunner(stack.config, { clock });
  const file = stack.config.nginx.upstreamsFile;
  const before = await readFile(file, 'utf8');
  await r.runner.writeInitial();
  t.equal(await readFile(file, 'utf8'), before, 'the file already renders the state (generation 0): nothing written');
  t.equal(r.runner.state.generation, 0);

  await rm(file);
  const fresh = await openRunner(stack.config, { clock });
  t.equal(fresh.runner.state.generation, 0, 'no state.json and no include file: generation 0');
  await r.runner.writeInitial();
  t.equal(
    await readFile(file, 'utf8'),
    renderUpstreams(buildModel(stack.config, { gateway: 0 }, 1, 'oss')),
    'a missing include file is written at the next generation',
  );
  t.equal(r.runner.state.generation, 1);
  t.equal(r.ctl.reloads, 0, 'no reload');
  t.equal(await liveGeneration(stack.config), 0, 'nginx still serves what it loaded');
  t.equal((await new StateStore(stack.config.sidecar.stateFile).load())?.generation, 1, 'state.json saved');

  await rm(stack.config.sidecar.stateFile);
  const lost = await openRunner(stack.config, { clock });
  t.equal(lost.runner.state.generation, 1, 'a lost state.json continues the include file’s generation');
  t.equal(lost.runner.state.services['gateway']?.weight, 0, 'at weight 0');
});

t.test('a drain on real traffic: the page follows the applied drain, or says it was not applied', async (t) => {
  const stack = await startStack(t, { target: 12 });
  // The largest first slice (12 %) so a few hundred requests give the canary enough samples.
  await writeFile(stack.configFile, (await readFile(stack.configFile, 'utf8')).replace('slice: 5', 'slice: 12'));
  const config = await loadConfig(stack.configFile);
  const clock = new ManualClock(Date.now());
  const file = config.nginx.upstreamsFile;
  /** What the include file said when each page was handed over. */
  const pages: { page: Page; fileSaid: string }[] = [];
  const notifier: Notifier = {
    page: (page) => pages.push({ page, fileSaid: /^# weights: (.*)$/m.exec(readFileSync(file, 'utf8'))?.[1] ?? '' }),
    flush: () => Promise.resolve(),
  };
  const r = await openRunner(config, { clock, notifier });
  t.same((await r.tick()).weights, { gateway: 12 });

  await stack.canary.setFault({ kind: 'status', status: 500 });
  const statuses = await stack.send(500);
  t.ok(statuses.filter((s) => s === 500).length >= 20, 'the canary answered 500 at least min_requests times');
  const lines = await waitFor(
    async () => {
      const l = (await readFile(config.nginx.accessLog, 'utf8')).split('\n').filter((x) => x !== '');
      return l.length >= 500 ? l : null;
    },
    { timeoutMs: 5000, what: '500 access-log lines' },
  );
  clock.advance(Math.max(0, Date.now() + 1 - clock.now()));
  r.observer.addLines(lines, clock.now());

  r.ctl.failReload = new Error('reload refused by the test');
  const failed = await r.tick();
  t.equal(failed.apply?.ok, false, 'the drain apply failed');
  t.same(failed.weights, { gateway: 12 }, 'the weight is held');
  t.equal(pages.length, 1, 'a page anyway');
  t.match(pages[0]?.page.summary, /DRAIN NOT APPLIED: nginx reload failed/);
  t.equal(pages[0]?.page.reason, 'error_ratio');

  r.ctl.failReload = null;
  clock.advance(config.nginx.minReloadIntervalMs);
  const drained = await r.tick();
  t.equal(drained.apply?.ok, true, 'retried after the backoff and applied');
  t.same(drained.weights, { gateway: 0 });
  t.match(r.runner.status().services[0], { phase: 'drained', drainReason: 'error_ratio' });
  t.equal(pages.length, 2);
  t.notMatch(pages[1]?.page.summary, /NOT APPLIED/);
  t.equal(pages[1]?.fileSaid, 'gateway=0', 'the page was sent after the drain was written and reloaded');
  t.match(
    await r.metrics.registry.metrics(),
    /^nginx_canary_drains_total\{service="gateway",reason="error_ratio"\} 1$/m,
  );
});
