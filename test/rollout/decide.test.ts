import t from 'tap';
import { applyCommand, decide, initialState, reloadWaitMs, roundWeight } from '../../src/rollout/decide.js';
import { HISTORY_LIMIT } from '../../src/rollout/types.js';
import type {
  EventKind,
  Observations,
  Phase,
  RolloutEvent,
  ServiceObservation,
  ServiceState,
  State,
} from '../../src/rollout/types.js';
import type { ConfigOverrides } from '../fixtures/rollout/config.js';
import { T0, deepFreeze, makeConfig, makeService, obs, stateWith, svcState } from '../fixtures/rollout/config.js';
import { referenceBounds } from '../fixtures/sequential-dp.js';

/** No access-log traffic yet; the probes see a healthy, ready canary. */
const NO_TRAFFIC = obs({ requests: 0, errors: 0, connectP95Ms: null, responseP95Ms: null, series: [] });
/** Green canary traffic: 100 requests, no 5xx, connect p95 10 ms. */
const GREEN = obs();
/** Too few canary requests for a verdict (12 of 20). */
const THIN = obs({ requests: 12 });
/** Canary connect p95 above the 120 ms hold gate. */
const SLOW = obs({ requests: 200, connectP95Ms: 180 });
/** Canary 5xx ratio 20 % against the 0.5 % drain gate: the sequential test crosses its bound. */
const ERRORS = obs({ requests: 200, errors: 40 });

interface Row {
  name: string;
  config?: ConfigOverrides;
  /** The gateway's state before the tick (defaults: weight 0, idle, target 30, times T0). */
  svc?: Partial<ServiceState>;
  /** State-level fields (lastReloadAt defaults to 0: a reload is allowed). */
  state?: Partial<State>;
  obs?: ServiceObservation;
  /** ms after T0. */
  at?: number;
  want: {
    weight: number;
    phase: Phase;
    events: EventKind[];
    pages?: number;
    soakedMs?: number;
    pausedBy?: ServiceState['pausedBy'];
    resumePhase?: ServiceState['resumePhase'];
    drainReason?: string | null;
    summary?: RegExp;
    since?: number;
    lastTickAt?: number;
  };
}

const rows: Row[] = [
  // d. start
  {
    name: 'idle with a target starts the slice',
    want: {
      weight: 5,
      phase: 'slice',
      events: ['slice'],
      since: T0 + 500,
      summary: /started the slice 0 % → 5 % \(target 30 %\)/,
    },
    at: 500,
  },
  {
    name: 'a target below the slice starts at the target and completes',
    config: { rollout: { target: 3 } },
    svc: { target: 3 },
    want: { weight: 3, phase: 'complete', events: ['slice', 'complete'] },
  },
  {
    name: 'a failing gate at 0 % (smoke traffic) blocks the start',
    obs: ERRORS,
    want: { weight: 0, phase: 'idle', events: [], summary: /waiting to start \(target 30 %\): error_ratio fail/ },
  },
  {
    name: 'a slow canary at 0 % blocks the start but does not pause',
    obs: SLOW,
    svc: { soakedMs: 700 },
    want: { weight: 0, phase: 'idle', events: [], soakedMs: 0, summary: /waiting to start.*connect_p95 fail/ },
  },
  {
    name: 'target 0 stays idle',
    config: { rollout: { target: 0 } },
    svc: { target: 0 },
    want: { weight: 0, phase: 'idle', events: [], summary: /^waiting: canary ready, no traffic yet \(target 0 %/ },
  },
  {
    name: 'start waits for min_reload_interval',
    state: { lastReloadAt: T0 - 400 },
    want: {
      weight: 0,
      phase: 'idle',
      events: [],
      summary: /waiting for min_reload_interval \(0\.6 s left\) to start the slice 0 % → 5 %/,
    },
  },
  // b. target
  {
    name: 'a raised target is an event; soaking continues',
    config: { rollout: { target: 50 } },
    svc: { weight: 15, phase: 'step', soakedMs: 200, lastTickAt: T0 },
    obs: GREEN,
    at: 100,
    want: {
      weight: 15,
      phase: 'step',
      events: ['target'],
      soakedMs: 300,
      summary: /soaking at 15 % \(target 50 %\): 0\.3 s of 1\.0 s green/,
    },
  },
  {
    name: 'a raised target reopens a complete walk',
    config: { rollout: { target: 50 } },
    svc: { weight: 30, phase: 'complete' },
    obs: THIN,
    want: {
      weight: 30,
      phase: 'step',
      events: ['target'],
      summary:
        /holding at 30 % \(target 50 %\): starved inconclusive: canary 24 of 67 requests \(12 of 24 attempts at weight 30 %\); soaked 0\.0 s of 1\.0 s green/,
    },
  },
  {
    name: 'a raised target on a soaked complete walk steps',
    config: { rollout: { target: 50 } },
    svc: { weight: 30, phase: 'complete', soakedMs: 5000 },
    obs: GREEN,
    want: { weight: 40, phase: 'step', events: ['target', 'step'] },
  },
  // c. lower
  {
    name: 'a lower target applies at once',
    config: { rollout: { target: 10 } },
    svc: { weight: 25, phase: 'step', soakedMs: 800 },
    obs: GREEN,
    at: 50,
    want: { weight: 10, phase: 'complete', events: ['target', 'lower'], soakedMs: 0, since: T0 + 50 },
  },
  {
    name: 'target 0 lowers to 0 and idles',
    config: { rollout: { target: 0 } },
    svc: { weight: 25, phase: 'step' },
    want: { weight: 0, phase: 'idle', events: ['target', 'lower'] },
  },
  {
    name: 'a lower target equal to the weight completes without a move',
    config: { rollout: { target: 15 } },
    svc: { weight: 15, phase: 'step' },
    want: { weight: 15, phase: 'complete', events: ['target', 'complete'] },
  },
  {
    name: 'lowering waits for min_reload_interval',
    config: { rollout: { target: 10 } },
    svc: { weight: 25, phase: 'step' },
    state: { lastReloadAt: T0 - 100 },
    want: {
      weight: 25,
      phase: 'step',
      events: ['target'],
      summary: /waiting for min_reload_interval \(0\.9 s left\) to lower 25 % → 10 %/,
    },
  },
  {
    name: 'lowering under an operator pause stays paused',
    config: { rollout: { target: 10 } },
    svc: { weight: 25, phase: 'paused', pausedBy: 'operator', resumePhase: 'step' },
    want: { weight: 10, phase: 'paused', events: ['target', 'lower'], pausedBy: 'operator', resumePhase: 'complete' },
  },
  {
    name: 'lowering to 0 under an operator pause stays paused',
    config: { rollout: { target: 0 } },
    svc: { weight: 25, phase: 'paused', pausedBy: 'operator', resumePhase: 'step' },
    want: { weight: 0, phase: 'paused', events: ['target', 'lower'], pausedBy: 'operator', resumePhase: 'idle' },
  },
  {
    name: 'lowering under a gate pause stays paused',
    config: { rollout: { target: 10 } },
    svc: { weight: 25, phase: 'paused', pausedBy: 'gate', resumePhase: 'step' },
    obs: SLOW,
    want: { weight: 10, phase: 'paused', events: ['target', 'lower'], pausedBy: 'gate', resumePhase: 'complete' },
  },
  {
    name: 'lowering to 0 ends a gate pause (nothing left to hold)',
    config: { rollout: { target: 0 } },
    svc: { weight: 25, phase: 'paused', pausedBy: 'gate', resumePhase: 'step' },
    obs: SLOW,
    want: { weight: 0, phase: 'idle', events: ['target', 'lower'], pausedBy: null, resumePhase: null },
  },
  // e. soak accounting
  {
    name: 'a green tick adds the time since the last tick',
    svc: { weight: 5, phase: 'slice', soakedMs: 100, lastTickAt: T0 },
    obs: GREEN,
    at: 400,
    want: {
      weight: 5,
      phase: 'slice',
      events: [],
      soakedMs: 500,
      lastTickAt: T0 + 400,
      summary: /soaking at 5 % \(target 30 %\): 0\.5 s of 1\.0 s green/,
    },
  },
  {
    name: 'a forward clock jump adds at most one window (no skipped soak)',
    config: { rollout: { sliceSoakMs: 60_000 } },
    svc: { weight: 5, phase: 'slice', soakedMs: 0, lastTickAt: T0 },
    obs: GREEN,
    at: 3_600_000,
    want: { weight: 5, phase: 'slice', events: [], soakedMs: 10_000 },
  },
  {
    name: 'a backward clock jump adds 0, keeps the soak and never moves lastTickAt back (no early step)',
    svc: { weight: 5, phase: 'slice', soakedMs: 900, lastTickAt: T0 + 5000, since: T0 + 1000 },
    obs: GREEN,
    at: 0,
    want: { weight: 5, phase: 'slice', events: [], soakedMs: 900, lastTickAt: T0 + 5000, since: T0 + 1000 },
  },
  {
    name: 'an inconclusive tick adds nothing, resets nothing and never raises',
    svc: { weight: 5, phase: 'slice', soakedMs: 5000, lastTickAt: T0 },
    obs: THIN,
    at: 500,
    want: {
      weight: 5,
      phase: 'slice',
      events: [],
      soakedMs: 5000,
      summary:
        /holding at 5 % \(target 30 %\): starved inconclusive: canary 24 of 400 requests \(12 of 24 attempts at weight 5 %\); soaked 5\.0 s of 1\.0 s green/,
    },
  },
  {
    name: 'no observation at all never raises',
    svc: { weight: 5, phase: 'slice', soakedMs: 5000 },
    want: { weight: 5, phase: 'slice', events: [], soakedMs: 5000 },
  },
  {
    name: 'a hold failure resets the soak',
    svc: { weight: 15, phase: 'paused', pausedBy: 'operator', resumePhase: 'step', soakedMs: 800 },
    obs: SLOW,
    at: 100,
    want: { weight: 15, phase: 'paused', events: [], soakedMs: 0 },
  },
  // f. raise
  {
    name: 'the slice steps after its soak',
    svc: { weight: 5, phase: 'slice', soakedMs: 900, lastTickAt: T0 },
    obs: GREEN,
    at: 200,
    want: {
      weight: 15,
      phase: 'step',
      events: ['step'],
      soakedMs: 0,
      since: T0 + 200,
      summary: /stepped 5 % → 15 % \(target 30 %\)/,
    },
  },
  {
    name: 'the slice soak is slice_soak, not step_soak',
    config: { rollout: { sliceSoakMs: 5000, stepSoakMs: 100 } },
    svc: { weight: 5, phase: 'slice', soakedMs: 900 },
    obs: GREEN,
    at: 200,
    want: { weight: 5, phase: 'slice', events: [], soakedMs: 1100 },
  },
  {
    name: 'a step soak is step_soak',
    config: { rollout: { sliceSoakMs: 100, stepSoakMs: 5000 } },
    svc: { weight: 15, phase: 'step', soakedMs: 900 },
    obs: GREEN,
    at: 200,
    want: { weight: 15, phase: 'step', events: [], soakedMs: 1100 },
  },
  {
    name: 'the last step lands on the target and completes',
    svc: { weight: 25, phase: 'step', soakedMs: 1000 },
    obs: GREEN,
    want: { weight: 30, phase: 'complete', events: ['step', 'complete'] },
  },
  {
    name: 'a raise waits for min_reload_interval, soak still counted',
    svc: { weight: 5, phase: 'slice', soakedMs: 900, lastTickAt: T0 },
    obs: GREEN,
    at: 200,
    state: { lastReloadAt: T0 - 500 },
    want: {
      weight: 5,
      phase: 'slice',
      events: [],
      soakedMs: 1100,
      summary: /waiting for min_reload_interval \(0\.3 s left\) to step 5 % → 15 %/,
    },
  },
  {
    name: 'a wall clock behind lastReloadAt does not block',
    svc: { weight: 5, phase: 'slice', soakedMs: 1000 },
    obs: GREEN,
    state: { lastReloadAt: T0 + 3_600_000 },
    want: { weight: 15, phase: 'step', events: ['step'] },
  },
  {
    name: 'weights round to 0.1',
    config: { rollout: { step: 0.2 } },
    svc: { weight: 0.1, phase: 'step', soakedMs: 1000 },
    obs: GREEN,
    want: { weight: 0.3, phase: 'step', events: ['step'] },
  },
  {
    name: 'complete stays complete while green',
    svc: { weight: 30, phase: 'complete', soakedMs: 9000 },
    obs: GREEN,
    want: { weight: 30, phase: 'complete', events: [], summary: /^complete at 30 % \(target 30 %\)$/ },
  },
  // g. pause / resume by gate
  {
    name: 'a hold failure pauses the walk',
    svc: { weight: 15, phase: 'step', soakedMs: 800 },
    obs: SLOW,
    want: {
      weight: 15,
      phase: 'paused',
      events: ['pause'],
      pausedBy: 'gate',
      resumePhase: 'step',
      soakedMs: 0,
      summary: /paused at 15 % \(target 30 %\): connect_p95 fail: canary connect p95 180 ms > 120 ms/,
    },
  },
  {
    name: 'a hold failure pauses the slice',
    svc: { weight: 5, phase: 'slice' },
    obs: SLOW,
    want: { weight: 5, phase: 'paused', events: ['pause'], resumePhase: 'slice' },
  },
  {
    name: 'a hold failure pauses a complete walk',
    svc: { weight: 30, phase: 'complete' },
    obs: SLOW,
    want: { weight: 30, phase: 'paused', events: ['pause'], resumePhase: 'complete' },
  },
  {
    name: 'still red: no second pause event',
    svc: { weight: 15, phase: 'paused', pausedBy: 'gate', resumePhase: 'step' },
    obs: SLOW,
    want: {
      weight: 15,
      phase: 'paused',
      events: [],
      summary: /paused at 15 % \(target 30 %\) by a hold gate: connect_p95 fail.*resumes when every gate is green/,
    },
  },
  {
    name: 'green again: resume, no raise on the same tick',
    svc: { weight: 15, phase: 'paused', pausedBy: 'gate', resumePhase: 'step', soakedMs: 5000 },
    obs: GREEN,
    want: {
      weight: 15,
      phase: 'step',
      events: ['resume'],
      pausedBy: null,
      resumePhase: null,
      summary: /resumed at 15 %/,
    },
  },
  {
    name: 'a gate pause does not resume on thin data',
    svc: { weight: 15, phase: 'paused', pausedBy: 'gate', resumePhase: 'step' },
    obs: THIN,
    want: {
      weight: 15,
      phase: 'paused',
      events: [],
      summary: /by a hold gate: starved inconclusive: canary 24 of 134 requests .*; error_ratio inconclusive/,
    },
  },
  {
    name: 'a gate pause resumes to a reopened walk after a target raise',
    config: { rollout: { target: 50 } },
    svc: { weight: 30, phase: 'paused', pausedBy: 'gate', resumePhase: 'complete' },
    obs: GREEN,
    want: { weight: 30, phase: 'step', events: ['target', 'resume'] },
  },
  {
    name: 'an operator pause is never auto-resumed',
    svc: { weight: 15, phase: 'paused', pausedBy: 'operator', resumePhase: 'step', soakedMs: 5000 },
    obs: GREEN,
    want: {
      weight: 15,
      phase: 'paused',
      events: [],
      pausedBy: 'operator',
      summary: /paused at 15 % \(target 30 %\) by the operator: run `nginx-canary resume gateway`/,
    },
  },
  // h. drain
  {
    name: 'a drain gate failure drains to 0 and pages',
    svc: { weight: 15, phase: 'step' },
    obs: ERRORS,
    at: 20,
    want: {
      weight: 0,
      phase: 'drained',
      events: ['drain'],
      pages: 1,
      drainReason: 'error_ratio',
      since: T0 + 20,
      summary:
        /drained gateway from 15 % to 0 %: error_ratio fail: canary 5xx ratio 20\.00 % > 0\.50 % over 200 requests/,
    },
  },
  {
    name: 'a move with the clock behind since never moves since back',
    svc: { weight: 15, phase: 'step', since: T0 + 5000, lastTickAt: T0 + 5000 },
    obs: ERRORS,
    at: 0,
    want: { weight: 0, phase: 'drained', events: ['drain'], pages: 1, since: T0 + 5000, lastTickAt: T0 + 5000 },
  },
  {
    name: 'drain beats a pause',
    svc: { weight: 15, phase: 'paused', pausedBy: 'operator', resumePhase: 'step' },
    obs: obs({ requests: 200, errors: 50, connectP95Ms: 500 }),
    want: { weight: 0, phase: 'drained', events: ['drain'], pages: 1, pausedBy: null, resumePhase: null },
  },
  {
    name: 'drain beats a lower target',
    config: { rollout: { target: 10 } },
    svc: { weight: 25, phase: 'step' },
    obs: ERRORS,
    want: { weight: 0, phase: 'drained', events: ['target', 'drain'], pages: 1 },
  },
  {
    name: 'a drain does not wait for min_reload_interval (issue 13)',
    svc: { weight: 15, phase: 'step' },
    obs: ERRORS,
    state: { lastReloadAt: T0 - 200 },
    want: { weight: 0, phase: 'drained', events: ['drain'], pages: 1, summary: /drained gateway from 15 % to 0 %/ },
  },
  {
    name: 'drained stays at 0 when green',
    svc: { weight: 0, phase: 'drained', drainReason: 'error_ratio' },
    obs: GREEN,
    want: {
      weight: 0,
      phase: 'drained',
      events: [],
      pages: 0,
      summary: /drained at 0 % \(target 30 %\) by error_ratio: set a new target or run `nginx-canary resume gateway`/,
    },
  },
  {
    name: 'drained stays at 0 when still failing (no second page)',
    svc: { weight: 0, phase: 'drained', drainReason: 'error_ratio' },
    obs: ERRORS,
    want: { weight: 0, phase: 'drained', events: [], pages: 0 },
  },
  {
    name: 'a new target after a drain restarts at the slice',
    config: { rollout: { target: 40 } },
    svc: { weight: 0, phase: 'drained', drainReason: 'error_ratio' },
    want: { weight: 5, phase: 'slice', events: ['target', 'slice'], drainReason: null },
  },
  {
    name: 'a new target after a drain waits for the reload interval in idle',
    config: { rollout: { target: 40 } },
    svc: { weight: 0, phase: 'drained', drainReason: 'error_ratio' },
    state: { lastReloadAt: T0 },
    want: { weight: 0, phase: 'idle', events: ['target'], drainReason: null },
  },
  // hand-edited state.json: still safe
  {
    name: 'hand-edited: paused without resumePhase resumes to idle and starts later',
    svc: { weight: 0, phase: 'paused', pausedBy: 'gate', resumePhase: null },
    obs: GREEN,
    want: { weight: 0, phase: 'idle', events: ['resume'] },
  },
  {
    name: 'hand-edited: drained without a reason',
    svc: { weight: 0, phase: 'drained', drainReason: null },
    want: { weight: 0, phase: 'drained', events: [], summary: /by a drain:/ },
  },
  {
    name: 'hand-edited: idle above 0 walks on',
    svc: { weight: 15, phase: 'idle', soakedMs: 1000 },
    obs: GREEN,
    want: { weight: 25, phase: 'step', events: ['step'] },
  },
  {
    name: 'hand-edited: idle at the target completes',
    svc: { weight: 30, phase: 'idle' },
    want: { weight: 30, phase: 'complete', events: ['complete'] },
  },
  {
    name: 'hand-edited: a step at 0 is idle and starts',
    svc: { weight: 0, phase: 'step' },
    want: { weight: 5, phase: 'slice', events: ['slice'] },
  },
];

t.test('decide: one tick per rule', async (t) => {
  for (const row of rows) {
    const config = makeConfig(row.config);
    const before = stateWith(row.svc, row.state);
    const observations: Observations = { gateway: row.obs ?? NO_TRAFFIC };
    const d = decide(config, before, observations, T0 + (row.at ?? 0));
    const s = d.state.services.gateway;
    if (!s) throw new Error('gateway missing');
    const w = row.want;
    t.equal(s.weight, w.weight, `${row.name}: weight`);
    t.equal(d.weights.gateway, w.weight, `${row.name}: weights`);
    t.equal(d.changed, w.weight !== before.services.gateway?.weight, `${row.name}: changed`);
    t.equal(s.phase, w.phase, `${row.name}: phase`);
    t.same(
      d.events.map((e) => e.kind),
      w.events,
      `${row.name}: events`,
    );
    t.equal(d.pages.length, w.pages ?? 0, `${row.name}: pages`);
    t.same(d.state.history, d.events, `${row.name}: history gets the events`);
    t.equal(d.state.lastReloadAt, d.changed ? T0 + (row.at ?? 0) : before.lastReloadAt, `${row.name}: lastReloadAt`);
    t.equal(d.state.generation, before.generation, `${row.name}: generation is the runner's`);
    t.equal(s.target, config.services[0]?.rollout.target, `${row.name}: target noted`);
    if (w.soakedMs !== undefined) t.equal(s.soakedMs, w.soakedMs, `${row.name}: soakedMs`);
    if (w.pausedBy !== undefined) t.equal(s.pausedBy, w.pausedBy, `${row.name}: pausedBy`);
    if (w.resumePhase !== undefined) t.equal(s.resumePhase, w.resumePhase, `${row.name}: resumePhase`);
    if (w.drainReason !== undefined) t.equal(s.drainReason, w.drainReason, `${row.name}: drainReason`);
    if (w.since !== undefined) t.equal(s.since, w.since, `${row.name}: since`);
    if (w.lastTickAt !== undefined) t.equal(s.lastTickAt, w.lastTickAt, `${row.name}: lastTickAt`);
    if (w.summary) t.match(d.summary.gateway, w.summary, `${row.name}: summary`);
    t.equal(d.gates.gateway?.length, 7, `${row.name}: gate results reported`);
    if (d.changed) t.equal(s.soakedMs, 0, `${row.name}: a move restarts the soak`);
  }
});

t.test('events carry the numbers', async (t) => {
  const d = decide(makeConfig(), stateWith({ weight: 15, phase: 'step' }), { gateway: ERRORS }, T0 + 7);
  const [drain] = d.events;
  t.match(drain, { at: T0 + 7, service: 'gateway', kind: 'drain', from: 15, to: 0 });
  // The error gate's bound for the test config's walk (soaks 1 s, a 10 s
  // window: one window of 100 ms series buckets = 100 start points), 6×
  // alternative: ln(3 · 100 / 1 %) / θ_6 = 6.57.
  const bound = referenceBounds(0.005, 100, 0.01, [2, 6, 100])[1]?.bound ?? NaN;
  t.equal(bound.toFixed(2), '6.57');
  t.match(
    drain?.reason,
    /error_ratio fail: canary 5xx ratio 20\.00 % > 0\.50 % over 200 requests \(40 errors; sequential test \d+\.\d\d ≥ bound 6\.57 vs 6× threshold\)/,
  );
  t.match(
    drain?.gates.find((g) => g.gate === 'error_ratio'),
    {
      verdict: 'fail',
      value: 0.2,
      threshold: 0.005,
      samples: 200,
      minSamples: 20,
      detail: { errors: 40, multiple: 6 },
    },
  );
  t.same(d.pages, [{ service: 'gateway', reason: 'error_ratio', summary: d.summary.gateway, event: drain }]);

  const target = decide(makeConfig({ rollout: { target: 60 } }), stateWith({ weight: 15, phase: 'step' }), {}, T0)
    .events[0];
  t.match(target, { kind: 'target', from: 30, to: 60, gates: [] });
  const step = decide(makeConfig(), stateWith({ weight: 15, phase: 'step', soakedMs: 1000 }), { gateway: GREEN }, T0)
    .events[0];
  t.match(step, { kind: 'step', from: 15, to: 25, reason: /1\.0 s of 1\.0 s green at 15 %; stepped by 10 points/ });
  t.equal(step?.gates.length, 7);
});

t.test('acceptance walk: target 30, slice 5, step 10, soaks 1 s → 5 → 15 → 25 → 30', async (t) => {
  const config = makeConfig({
    rollout: { target: 30, slice: 5, step: 10, sliceSoakMs: 1000, stepSoakMs: 1000 },
    minReloadIntervalMs: 1000,
  });
  let state = initialState(config, T0);
  const seen: number[] = [];
  const kinds: EventKind[] = [];
  const changedAt: number[] = [];
  for (let now = T0; now <= T0 + 10_000; now += 250) {
    const d = decide(config, state, { gateway: GREEN }, now);
    kinds.push(...d.events.map((e) => e.kind));
    if (d.changed) {
      seen.push(d.weights.gateway ?? -1);
      changedAt.push(now - T0);
    }
    state = d.state;
  }
  t.same(seen, [5, 15, 25, 30]);
  t.same(kinds, ['target', 'slice', 'step', 'step', 'step', 'complete']);
  t.same(changedAt, [0, 1000, 2000, 3000], 'each weight soaks 1 s of green ticks before the next move');
  t.equal(state.services.gateway?.phase, 'complete');
  t.equal(state.history.length, 6);
});

t.test('min_reload_interval spaces moves of several services into one reload', async (t) => {
  const config = makeConfig({
    services: [makeService('a'), makeService('b', { rollout: { target: 0 } })],
    minReloadIntervalMs: 2000,
  });
  const s0 = initialState(config, T0);
  const idle = { a: NO_TRAFFIC, b: NO_TRAFFIC };
  const d1 = decide(config, s0, idle, T0);
  t.same(d1.weights, { a: 5, b: 0 });
  t.ok(d1.changed);
  t.equal(d1.state.lastReloadAt, T0);
  const raised = makeConfig({
    services: [makeService('a'), makeService('b', { rollout: { target: 20 } })],
    minReloadIntervalMs: 2000,
  });
  const d2 = decide(raised, d1.state, idle, T0 + 1999);
  t.same(d2.weights, { a: 5, b: 0 }, 'b waits');
  t.notOk(d2.changed);
  t.match(d2.summary.b, /waiting for min_reload_interval \(0\.0 s left\) to start the slice/);
  const d3 = decide(raised, d2.state, idle, T0 + 2000);
  t.same(d3.weights, { a: 5, b: 5 });
  t.equal(reloadWaitMs(2000, T0, T0 + 500), 1500);
  t.equal(reloadWaitMs(2000, T0, T0 - 500), 0, 'clock behind the last reload does not block');
  t.equal(reloadWaitMs(0, T0, T0), 0);
});

t.test('services: new ones start fresh; removed ones are kept and left out of weights', async (t) => {
  const config = makeConfig({ services: [makeService('constructor'), makeService('fresh')] });
  const old = svcState({ weight: 40, phase: 'complete', target: 40 });
  const state = stateWith({}, { services: { gone: old } });
  const d = decide(config, state, { fresh: GREEN }, T0);
  t.same(Object.keys(d.weights).sort(), ['constructor', 'fresh']);
  t.equal(d.state.services.gone, old, 'untouched');
  t.same(
    d.weights,
    { constructor: 0, fresh: 5 },
    'a service named constructor is not Object.prototype.constructor: no observation, so no /ready, so no slice',
  );
  t.match(d.summary.constructor, /ready inconclusive/);
  t.same(
    d.events.map((e) => [e.service, e.kind]),
    [
      ['constructor', 'target'],
      ['fresh', 'target'],
      ['fresh', 'slice'],
    ],
  );
  t.match(d.gates.fresh?.[0], { verdict: 'pass' }, 'observations found by own name');
  const ctor: string = 'constructor';
  t.equal(d.gates[ctor]?.[0]?.verdict, 'inconclusive', 'no observation under constructor');
});

t.test('history is bounded to HISTORY_LIMIT, oldest dropped', async (t) => {
  const filler: RolloutEvent[] = Array.from({ length: HISTORY_LIMIT }, (_, i) => ({
    at: i,
    service: 'gateway',
    kind: 'hold',
    from: 0,
    to: 0,
    reason: `old ${i}`,
    gates: [],
  }));
  const d = decide(
    makeConfig({ rollout: { target: 50 } }),
    stateWith({}, { history: filler }),
    { gateway: NO_TRAFFIC },
    T0,
  );
  t.equal(d.state.history.length, HISTORY_LIMIT);
  t.equal(d.state.history[0]?.reason, 'old 2');
  t.same(
    d.state.history.slice(-2).map((e) => e.kind),
    ['target', 'slice'],
  );
});

t.test('decide and applyCommand never mutate their inputs', async (t) => {
  const config = deepFreeze(makeConfig({ rollout: { target: 10 } }));
  const state = deepFreeze(stateWith({ weight: 25, phase: 'step' }, { history: [] }));
  const observations = deepFreeze({ gateway: ERRORS });
  const copy = structuredClone(state);
  const d = decide(config, state, observations, T0);
  t.equal(d.state.services.gateway?.weight, 0);
  t.same(state, copy);
  t.not(d.state, state);
  t.not(d.state.services, state.services);
  for (const kind of ['pause', 'abort'] as const) {
    const r = applyCommand(config, state, { kind, service: 'gateway' }, T0);
    t.not(r.state, state, `${kind} returns a new state`);
  }
  t.same(state, copy);
  const paused = deepFreeze(stateWith({ weight: 25, phase: 'paused', pausedBy: 'operator', resumePhase: 'step' }));
  const pausedCopy = structuredClone(paused);
  t.equal(
    applyCommand(config, paused, { kind: 'resume', service: 'gateway' }, T0).state.services.gateway?.phase,
    'step',
  );
  t.same(paused, pausedCopy);
});

t.test('initialState', async (t) => {
  const config = makeConfig({ services: [makeService('a'), makeService('b')] });
  const s = initialState(config, T0);
  t.same(s, {
    version: 1,
    generation: 0,
    lastReloadAt: 0,
    history: [],
    services: {
      a: svcState({ target: 0 }),
      b: svcState({ target: 0 }),
    },
  });
  t.equal(roundWeight(0.1 + 0.2), 0.3);
  t.equal(roundWeight(14.96), 15);
});

t.test('applyCommand', async (t) => {
  const config = makeConfig();
  const run = (svc: Partial<ServiceState>, kind: 'pause' | 'resume' | 'abort', service = 'gateway') =>
    applyCommand(config, stateWith(svc), { kind, service }, T0 + 10);

  t.test('pause: any phase but drained; operator pauses are never auto-resumed', async (t) => {
    for (const phase of ['idle', 'slice', 'step', 'complete'] as const) {
      const r = run({ weight: phase === 'idle' ? 0 : 15, phase }, 'pause');
      t.match(r.state.services.gateway, { phase: 'paused', pausedBy: 'operator', resumePhase: phase }, phase);
      t.same(
        r.events.map((e) => [e.kind, e.from, e.to, e.gates.length]),
        [['pause', phase === 'idle' ? 0 : 15, phase === 'idle' ? 0 : 15, 0]],
      );
      t.equal(r.changed, false, 'no weight change');
      t.same(r.state.history, r.events);
    }
    const overGate = run({ weight: 15, phase: 'paused', pausedBy: 'gate', resumePhase: 'step' }, 'pause');
    t.match(overGate.state.services.gateway, { phase: 'paused', pausedBy: 'operator', resumePhase: 'step' });
    t.equal(overGate.events.length, 1);
    const next = decide(config, overGate.state, { gateway: GREEN }, T0 + 20);
    t.equal(
      next.state.services.gateway?.phase,
      'paused',
      'a gate pause taken over by the operator stays paused when green',
    );

    for (const svc of [
      { weight: 15, phase: 'paused', pausedBy: 'operator', resumePhase: 'step' },
      { phase: 'drained', drainReason: 'operator' },
    ] as const) {
      const before = stateWith(svc);
      const r = applyCommand(config, before, { kind: 'pause', service: 'gateway' }, T0);
      t.equal(r.state, before, `no-op on ${svc.phase}`);
      t.same(r.events, []);
      t.equal(r.changed, false);
    }
  });

  t.test('resume', async (t) => {
    const paused = run({ weight: 15, phase: 'paused', pausedBy: 'operator', resumePhase: 'step' }, 'resume');
    t.match(paused.state.services.gateway, { weight: 15, phase: 'step', pausedBy: null, resumePhase: null });
    t.same(
      paused.events.map((e) => e.kind),
      ['resume'],
    );
    t.equal(paused.changed, false);
    const noPhase = run({ weight: 0, phase: 'paused', pausedBy: 'operator', resumePhase: null }, 'resume');
    t.equal(noPhase.state.services.gateway?.phase, 'idle');

    const drained = run({ weight: 0, phase: 'drained', drainReason: 'error_ratio' }, 'resume');
    t.match(drained.state.services.gateway, { weight: 0, phase: 'idle', drainReason: null });
    const tick = decide(config, drained.state, { gateway: NO_TRAFFIC }, T0 + 20);
    t.equal(tick.weights.gateway, 5, 'the next tick starts a slice');
    t.same(
      tick.events.map((e) => e.kind),
      ['slice'],
    );

    const walking = stateWith({ weight: 15, phase: 'step' });
    const r = applyCommand(config, walking, { kind: 'resume', service: 'gateway' }, T0);
    t.equal(r.state, walking, 'no-op when not paused or drained');
    t.same(r.events, []);
  });

  t.test('abort: weight 0, drained by the operator, no page', async (t) => {
    const r = run(
      { weight: 15, phase: 'paused', pausedBy: 'gate', resumePhase: 'step', soakedMs: 700, since: T0 - 5 },
      'abort',
    );
    t.match(r.state.services.gateway, {
      weight: 0,
      phase: 'drained',
      drainReason: 'operator',
      pausedBy: null,
      resumePhase: null,
      soakedMs: 0,
      since: T0 + 10,
    });
    t.same(
      r.events.map((e) => [e.kind, e.from, e.to]),
      [['abort', 15, 0]],
    );
    t.equal(r.changed, true);
    t.equal(r.state.lastReloadAt, T0 + 10);
    const tick = decide(config, r.state, { gateway: GREEN }, T0 + 5000);
    t.equal(tick.weights.gateway, 0, 'stays drained');
    t.same(tick.pages, []);

    const idle = run({ weight: 0, phase: 'idle' }, 'abort');
    t.match(idle.state.services.gateway, { weight: 0, phase: 'drained', drainReason: 'operator' });
    t.equal(idle.changed, false, 'nothing to reload at 0');
    t.equal(idle.state.lastReloadAt, 0);
    t.equal(
      decide(config, idle.state, { gateway: NO_TRAFFIC }, T0 + 5000).weights.gateway,
      0,
      'an abort before the slice prevents it',
    );

    const again = stateWith({ weight: 0, phase: 'drained', drainReason: 'operator' });
    t.equal(
      applyCommand(config, again, { kind: 'abort', service: 'gateway' }, T0).state,
      again,
      'no-op when already drained',
    );
  });

  t.test('a configured service missing from the state starts fresh', async (t) => {
    const cfg = makeConfig({ services: [makeService('gateway'), makeService('api')] });
    const r = applyCommand(cfg, stateWith(), { kind: 'pause', service: 'api' }, T0);
    t.match(r.state.services.api, { weight: 0, phase: 'paused', pausedBy: 'operator', resumePhase: 'idle', target: 0 });
  });

  t.test('unknown service throws NC_UNKNOWN_SERVICE', async (t) => {
    t.throws(() => run({}, 'pause', 'nope'), { code: 'NC_UNKNOWN_SERVICE', message: /"nope"/ });
    t.throws(() => run({}, 'abort', 'constructor'), { code: 'NC_UNKNOWN_SERVICE' });
  });
});
