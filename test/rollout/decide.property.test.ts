import t from 'tap';
import fc from 'fast-check';
import { applyCommand, decide, initialState } from '../../src/rollout/decide.js';
import type { Config } from '../../src/config/types.js';
import type { Command, Observations, PoolObservation, ProbeObservation, State } from '../../src/rollout/types.js';
import { T0, deepFreeze, makeConfig, pool, probePool } from '../fixtures/rollout/config.js';

/** One thing that happens to the walk between or at ticks. */
type Action =
  | { kind: 'tick'; advance: number; canary: PoolObservation | null; probes: ProbeObservation | null }
  | { kind: 'target'; target: number }
  | { kind: 'cmd'; cmd: Command['kind'] };

const canaryArb: fc.Arbitrary<PoolObservation | null> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 4, arbitrary: fc.constant(pool()) },
  {
    weight: 6,
    arbitrary: fc
      .record({
        requests: fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 30, max: 400 })),
        errors: fc.oneof(
          { weight: 6, arbitrary: fc.constant(0) },
          { weight: 1, arbitrary: fc.integer({ min: 1, max: 20 }) },
        ),
        connectP95Ms: fc.oneof(
          { weight: 1, arbitrary: fc.constant(null) },
          { weight: 6, arbitrary: fc.integer({ min: 0, max: 119 }) },
          { weight: 2, arbitrary: fc.integer({ min: 120, max: 400 }) },
        ),
      })
      .map((c) => pool(c)),
  },
);

/** The canary's probes: mostly healthy and ready; sometimes not ready, failing, flapping or just recovered. */
const probesArb: fc.Arbitrary<ProbeObservation | null> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 8, arbitrary: fc.constant(probePool()) },
  {
    weight: 3,
    arbitrary: fc
      .record({
        ready: fc.constantFrom(true, false, null),
        failures: fc.oneof(
          { weight: 4, arbitrary: fc.constant(0) },
          { weight: 1, arbitrary: fc.integer({ min: 1, max: 5 }) },
        ),
        downTransitions: fc.integer({ min: 0, max: 4 }),
        recoveredAt: fc.oneof(
          fc.constant(null),
          fc.integer({ min: -5000, max: 200_000 }).map((d) => T0 + d),
        ),
      })
      .map((p) => probePool(p)),
  },
);

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant('tick' as const),
      advance: fc.oneof(
        { weight: 10, arbitrary: fc.integer({ min: 0, max: 1500 }) },
        { weight: 1, arbitrary: fc.integer({ min: -60_000, max: -1 }) },
        { weight: 1, arbitrary: fc.integer({ min: 10_000, max: 7_200_000 }) },
      ),
      canary: canaryArb,
      probes: probesArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('target' as const),
      target: fc.oneof(
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 1000 }).map((x) => x / 10),
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('cmd' as const),
      cmd: fc.constantFrom<Command['kind']>('pause', 'resume', 'abort'),
    }),
  },
);

const paramsArb = fc.record({
  target: fc.integer({ min: 0, max: 100 }),
  slice: fc.integer({ min: 5, max: 12 }),
  step: fc.oneof(
    fc.integer({ min: 1, max: 20 }),
    fc.integer({ min: 1, max: 200 }).map((x) => x / 10),
  ),
  sliceSoakMs: fc.integer({ min: 0, max: 3000 }),
  stepSoakMs: fc.integer({ min: 0, max: 3000 }),
  windowMs: fc.integer({ min: 500, max: 10_000 }),
  minRequests: fc.integer({ min: 1, max: 50 }),
  minReloadIntervalMs: fc.integer({ min: 0, max: 3000 }),
  /** Open-source nginx (slow_start emulated with ramps) or Plus. */
  emulateSlowStart: fc.boolean(),
  /** The canary's slow_start, ms (none, or a ramp of a few sub-steps). */
  slowStartMs: fc.constantFrom(null, 1000, 3000, 30_000),
});

type Params = typeof paramsArb extends fc.Arbitrary<infer P> ? P : never;

/** Counts of what the runs exercised, so the properties are not vacuous. */
const seen = {
  raises: 0,
  slices: 0,
  drains: 0,
  pauses: 0,
  lowers: 0,
  blocked: 0,
  backJumps: 0,
  changesAfterBackJump: 0,
  rampSteps: 0,
  recoveries: 0,
};

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

function configOf(p: Params, target: number): Config {
  const config = makeConfig({
    rollout: { target, slice: p.slice, step: p.step, sliceSoakMs: p.sliceSoakMs, stepSoakMs: p.stepSoakMs },
    gates: { windowMs: p.windowMs, minRequests: p.minRequests },
    minReloadIntervalMs: p.minReloadIntervalMs,
  });
  return {
    ...config,
    services: config.services.map((s) => ({
      ...s,
      canary: s.canary.map((c) => ({ ...c, slowStartMs: p.slowStartMs })),
    })),
  };
}

/** Runs one random walk like the runner does (every apply succeeds) and checks the invariants after every call. */
function walk(p: Params, actions: Action[]): void {
  let config = configOf(p, p.target);
  let state: State = initialState(config, T0);
  let now = T0;
  let lastChangeAt: number | null = null;
  let wentBack = false;
  /** Upper bound of the soak earned since the last weight change: Σ min(max(advance, 0), window) over ticks. */
  let soakBound = 0;
  const svcOf = (s: State) => {
    const v = s.services.gateway;
    if (!v) throw new Error('gateway missing from state');
    return v;
  };
  const common = (s: State, where: string) => {
    const v = svcOf(s);
    check(v.weight >= 0 && v.weight <= 100, `${where}: weight ${v.weight} out of 0–100`);
    check(v.phase !== 'drained' || v.weight === 0, `${where}: drained at ${v.weight}`);
    check((v.phase === 'paused') === (v.pausedBy !== null), `${where}: pausedBy ${v.pausedBy} in phase ${v.phase}`);
    check(v.soakedMs <= soakBound + 1e-9, `${where}: soaked ${v.soakedMs} ms > ${soakBound} ms of elapsed ticks`);
  };

  for (const a of actions) {
    if (a.kind === 'target') {
      config = configOf(p, a.target);
      continue;
    }
    const before = svcOf(state);
    if (a.kind === 'cmd') {
      const r = applyCommand(config, deepFreeze(state), { kind: a.cmd, service: 'gateway' }, now);
      const after = svcOf(r.state);
      check(r.changed === (after.weight !== before.weight), 'command: changed ⇔ weight moved');
      check(after.weight <= before.weight, 'command: an operator command never raises');
      if (r.changed) {
        lastChangeAt = now;
        wentBack = false;
        soakBound = 0;
      }
      state = r.state;
      common(state, `after ${a.cmd}`);
      continue;
    }

    now += a.advance;
    if (a.advance < 0) {
      wentBack = true;
      seen.backJumps++;
    }
    soakBound += Math.min(Math.max(a.advance, 0), p.windowMs);
    const allowed = now - state.lastReloadAt >= p.minReloadIntervalMs || now < state.lastReloadAt;
    const observations: Observations = a.canary
      ? {
          gateway: {
            primary: pool(),
            canary: a.canary,
            ...(a.probes ? { probes: { primary: probePool(), canary: a.probes } } : {}),
          },
        }
      : {};
    const d = decide(config, deepFreeze(state), deepFreeze(observations), now, {
      emulateSlowStart: p.emulateSlowStart,
    });
    const after = svcOf(d.state);
    const gates = d.gates.gateway ?? [];
    const target = config.services[0]?.rollout.target ?? -1;
    const where = `tick at +${now - T0} ms (${before.phase} ${before.weight} → ${after.phase} ${after.weight}, target ${target})`;

    check(d.changed === (after.weight !== before.weight), `${where}: changed ⇔ weight moved`);
    check(d.weights.gateway === after.weight, `${where}: weights = state`);
    check(after.target === target, `${where}: target noted`);
    check(
      after.weight <= target || after.weight === 0 || (!allowed && after.weight === before.weight),
      `${where}: weight above target`,
    );
    check(after.since >= before.since, `${where}: since went back`);
    check(
      after.lastTickAt >= before.lastTickAt && after.lastTickAt >= Math.min(now, before.lastTickAt),
      `${where}: lastTickAt went back`,
    );
    if (!allowed) {
      // Within min_reload_interval only a drain moves (issue 13: a drain never waits for it).
      const drained = d.events.some((e) => e.kind === 'drain') && after.weight === 0;
      check(!d.changed || drained, `${where}: moved within min_reload_interval`);
      seen.blocked++;
    }
    const ramp = before.ramp ?? null;
    if (after.weight > before.weight) {
      check(!gates.some((g) => g.verdict === 'fail'), `${where}: rose with a failing gate`);
      if (before.weight === 0) {
        check(after.weight <= p.slice, `${where}: first slice above slice`);
        check(gates.find((g) => g.gate === 'ready')?.verdict === 'pass', `${where}: a first slice without /ready`);
        seen.slices++;
      } else if (ramp !== null) {
        // A ramp sub-step: time-driven, never past the ramp's end (the weight-above-target check covers a lowered target).
        check(after.weight <= ramp.to, `${where}: ramp past its end`);
        seen.rampSteps++;
      } else {
        check(
          gates.every((g) => g.verdict === 'pass'),
          `${where}: rose with an inconclusive gate`,
        );
        check(after.weight - before.weight <= p.step + 1e-9, `${where}: rose by more than a step`);
        const required = before.phase === 'slice' ? p.sliceSoakMs : p.stepSoakMs;
        check(soakBound >= required, `${where}: stepped after ≤ ${soakBound} ms, soak is ${required} ms`);
        seen.raises++;
      }
    }
    if (d.changed) {
      if (lastChangeAt !== null && !wentBack) {
        const drain = d.events.some((e) => e.kind === 'drain') && after.weight === 0;
        check(
          drain || now - lastChangeAt >= p.minReloadIntervalMs,
          `${where}: two moves ${now - lastChangeAt} ms apart`,
        );
      }
      if (wentBack) seen.changesAfterBackJump++;
      lastChangeAt = now;
      wentBack = false;
      soakBound = 0;
      check(
        after.soakedMs === 0 && after.since === Math.max(before.since, now),
        `${where}: a move restarts soak and window`,
      );
    }
    for (const e of d.events) {
      if (e.kind === 'drain') seen.drains++;
      if (e.kind === 'pause') seen.pauses++;
      if (e.kind === 'lower') seen.lowers++;
      if (e.kind === 'ramp' && e.to < e.from) seen.recoveries++;
    }
    check(d.pages.length === d.events.filter((e) => e.kind === 'drain').length, `${where}: one page per drain`);
    state = d.state;
    common(state, where);
  }
}

/** How many random walks (fast-check runs). */
const WALKS = 2000;

t.test('random walks keep every weight invariant', async (t) => {
  const started = performance.now();
  t.doesNotThrow(() =>
    fc.assert(fc.property(paramsArb, fc.array(actionArb, { minLength: 1, maxLength: 120 }), walk), {
      seed: 20_251_121,
      // 2,000 so that rare paths (a probe recovery's ramp back) are walked at least once.
      numRuns: WALKS,
    }),
  );
  const ms = performance.now() - started;
  t.comment(`${WALKS} walks in ${ms.toFixed(0)} ms: ${JSON.stringify(seen)}`);
  for (const [k, v] of Object.entries(seen)) t.ok(v > 0, `the walks exercised ${k} (${v})`);
});
