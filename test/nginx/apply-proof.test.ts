// The applier's proof that a reload is live, on the real nginx (issue 13): an
// apply returns live only once no worker from before the reload accepts
// connections, so requests sent right after it all meet the new weights; a
// worker that does not retire (frozen here with SIGSTOP, as a worker too busy
// to handle the master's quit would be) keeps the apply from counting as live,
// which a timer could not notice; without /proc the applier falls back to the
// timer and says so.
import t from 'tap';
import { systemClock } from '../../src/clock.js';
import { Applier, NGINX_RELOAD_SPAWN_WAIT_MS, type ApplierLog, type ApplyTimings } from '../../src/nginx/apply.js';
import { manifestOf } from '../../src/nginx/snapshot.js';
import path from 'node:path';
import { countingCtl, nginxChildren, sendRequests, startTestNginx } from '../fixtures/nginx/harness.js';

/** Titled exactly as an nginx worker that accepts connections. */
const accepting = (title: string): boolean => title === 'nginx: worker process';

t.test(
  'a drain returns live only when every accepting worker is new: then no request reaches the canary',
  async (t) => {
    const timings: ApplyTimings[] = [];
    const h = await startTestNginx(t, { weights: { gateway: 100 } });
    // Counts the status server's `/generation` requests: the proof asks only once no old worker accepts.
    const ctl = countingCtl(h.ctl);
    const applier = new Applier({
      config: h.config,
      ctl,
      disk: { freeRatio: async () => 0.5 },
      snapshots: h.snapshots,
      clock: systemClock,
      onTimings: (x) => timings.push(x),
    });
    t.same((await sendRequests(h.url, 10)).backend, { canary: 10 }, 'at weight 100 every request reaches the canary');
    let generation = 1;
    for (let round = 1; round <= 3; round++) {
      if (round > 1) {
        const up = await applier.apply({ weights: { gateway: 100 }, generation: ++generation, reason: 'back up' });
        t.ok(up.ok, `round ${round}: back to 100`);
      }
      const before = new Set((await nginxChildren(h.nginx.pid)).filter((c) => accepting(c.title)).map((c) => c.pid));
      t.ok(before.size > 0, `round ${round}: workers accept before the drain`);
      const asked0 = ctl.calls.generation;
      const r = await applier.apply({ weights: { gateway: 0 }, generation: ++generation, reason: 'drain' });
      if (!r.ok) throw r.error;
      // Right after the apply returned: read /proc before anything else.
      const now = await nginxChildren(h.nginx.pid);
      const oldStillAccepting = now.filter((c) => accepting(c.title) && before.has(c.pid));
      t.same(oldStillAccepting, [], `round ${round}: no worker from before the drain accepts connections`);
      t.ok(
        now.some((c) => accepting(c.title) && !before.has(c.pid)),
        `round ${round}: new workers accept (${now.map((c) => `${c.pid} ${c.title}`).join('; ')})`,
      );
      // Polled every 5 ms over the ~100 ms nginx keeps the old workers, it would be ~20 requests.
      const asked = ctl.calls.generation - asked0;
      t.ok(
        asked >= 1 && asked <= 2,
        `round ${round}: the status server was asked ${asked} time(s), once the old workers had stopped accepting`,
      );
      const hits = await sendRequests(h.url, 50, { concurrency: 5 });
      t.same(hits.status, { 200: 50 }, `round ${round}: 50 requests answered`);
      t.equal(hits.backend['canary'] ?? 0, 0, `round ${round}: 0 of 50 requests reached the canary at weight 0`);
      t.equal(hits.backend['primary'], 50, `round ${round}: all 50 reached the primary`);
    }
    const drains = timings.filter((x) => x.lowersOnly);
    t.equal(drains.length, 3, 'each drain reported its timings, marked as only lowering');
    t.ok(
      timings.every((x) => x.proof === 'proc'),
      'every apply was proven on /proc, not timed',
    );
    for (const x of drains) {
      // nginx forks the new workers ~100 ms before it retires the old ones: from then on no [emerg] of the
      // reload can come, and the proof stops reading the error logs.
      t.ok(
        x.polls.errorLogs >= 1 && x.polls.errorLogs < x.polls.all,
        `the error logs were read on ${x.polls.errorLogs} of the proof's ${x.polls.all} polls`,
      );
      // From the poll that saw the new generation's first worker, the next one waits until 100 ms after
      // the last poll that saw none (the master's own wait before it retires the old workers): at most
      // that poll, one at the bound, and one per 5 ms poll after it until the old workers stopped
      // accepting (timers may fire ~1 ms early: 4 ms each). The proof that polled through that window
      // made 17 such polls in two of three drains here, against bounds of 8.7 and 12.7.
      const afterFork = x.polls.all - x.polls.errorLogs;
      const bound = 3 + Math.max(0, x.stages.retire - NGINX_RELOAD_SPAWN_WAIT_MS) / 4;
      t.ok(
        afterFork <= bound,
        `${afterFork} poll(s) from the fork to the old workers' retirement ${x.stages.retire.toFixed(1)} ms after the signal (at most ${bound.toFixed(1)})`,
      );
      const sum = Object.values<number>({ ...x.stages }).reduce((a, b) => a + b, 0);
      t.ok(
        Math.abs(sum - x.totalMs) < 5,
        `the stages add up to the total (${sum.toFixed(1)} vs ${x.totalMs.toFixed(1)} ms)`,
      );
    }
  },
);

t.test('an old worker that does not retire keeps the apply from counting as live; restored', async (t) => {
  const h = await startTestNginx(t, { weights: { gateway: 100 } });
  const applier = new Applier({
    config: h.config,
    ctl: h.ctl,
    disk: { freeRatio: async () => 0.5 },
    snapshots: h.snapshots,
    clock: systemClock,
    verifyTimeoutMs: 1500,
  });
  const workers = (await nginxChildren(h.nginx.pid)).filter((c) => accepting(c.title));
  const frozen = workers[0];
  if (!frozen) throw new Error('no accepting worker');
  // Frozen, it cannot handle the master's quit: it keeps its title and its listening sockets.
  process.kill(frozen.pid, 'SIGSTOP');
  let thawed = false;
  const thaw = (): void => {
    if (thawed) return;
    thawed = true;
    try {
      process.kill(frozen.pid, 'SIGCONT');
    } catch {
      // already gone
    }
  };
  t.teardown(thaw);
  const confDir = path.dirname(h.config.nginx.conf);
  const before = manifestOf(confDir);
  const r = await applier.apply({ weights: { gateway: 0 }, generation: 2, reason: 'drain' });
  thaw();
  t.match(r, { ok: false, stage: 'verify', restored: true, error: { code: 'NC_RELOAD_NOT_LIVE' } });
  if (r.ok) return;
  t.match(
    r.error.message,
    new RegExp(
      `last seen: 2, but worker\\(s\\) [\\d, ]*\\b${frozen.pid}\\b[\\d, ]* from before the reload still accept`,
    ),
    'the error names the worker from before the reload that still accepts',
  );
  t.same(manifestOf(confDir), before, 'the config directory is restored byte for byte');
});

t.test('without a /proc view of the master the applier falls back to the settle timer, and logs it once', async (t) => {
  const h = await startTestNginx(t);
  const warnings: string[] = [];
  const log: ApplierLog = { info: () => undefined, warn: (_o, msg) => warnings.push(msg) };
  const timings: ApplyTimings[] = [];
  const applier = new Applier({
    config: h.config,
    ctl: h.ctl,
    disk: { freeRatio: async () => 0.5 },
    snapshots: h.snapshots,
    clock: systemClock,
    procRoot: path.join(h.dir, 'no-proc-here'),
    verifySettleMs: 120,
    log,
    onTimings: (x) => timings.push(x),
  });
  for (const [generation, weight] of [
    [2, 30],
    [3, 0],
  ] as const) {
    const r = await applier.apply({ weights: { gateway: weight }, generation, reason: 'x' });
    t.ok(r.ok, `apply generation ${generation}`);
    t.equal(await h.ctl.generation(), generation);
  }
  t.same(
    timings.map((x) => x.proof),
    ['timer', 'timer'],
    'proven by the timer',
  );
  t.ok(
    timings.every((x) => x.stages.retire >= 120),
    `each waited at least the 120 ms settle after the first answer (${timings.map((x) => x.stages.retire.toFixed(0)).join(', ')} ms)`,
  );
  t.equal(warnings.filter((w) => /no \/proc view of the nginx master/.test(w)).length, 1, 'said once in the log');
});
