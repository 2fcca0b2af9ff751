// The ready gate before the first slice and the slow_start emulation of
// open-source nginx (docs/design.md "slow_start on open-source nginx"), on the pure decide.
import t from 'tap';
import { MAX_RAMP_STEPS, decide, rampSpacingMs, rampSteps, rampWeight } from '../../src/rollout/decide.js';
import type { ServiceObservation, State } from '../../src/rollout/types.js';
import { T0, deepFreeze, makeConfig, makeService, obs, stateWith } from '../fixtures/rollout/config.js';

/** A config whose canary has slow_start 3 s and min_reload_interval 1 s: 3 sub-steps. */
function rampConfig(slowStartMs: number | null = 3000, target = 30) {
  const svc = makeService('gateway', { rollout: { target } });
  const canary = svc.canary.map((c) => ({ ...c, slowStartMs }));
  return makeConfig({ services: [{ ...svc, canary }], minReloadIntervalMs: 1000 });
}

const EMULATE = { emulateSlowStart: true };

t.test('rampSteps and rampWeight', async (t) => {
  t.equal(rampSteps(rampConfig(3000).services[0]!, 1000), 3, '3 s over 1 s');
  t.equal(rampSteps(rampConfig(2500).services[0]!, 1000), 3, 'rounded up');
  t.equal(
    rampSteps(rampConfig(30_000).services[0]!, 2000),
    MAX_RAMP_STEPS,
    'the design defaults, 30 s over 2 s: capped at 10',
  );
  t.equal(rampSteps(rampConfig(30_000).services[0]!, 5000), 6, '30 s over 5 s');
  t.equal(rampSteps(rampConfig(null).services[0]!, 1000), 1, 'no slow_start: no ramp');
  t.equal(rampSteps(rampConfig(500).services[0]!, 1000), 1, 'slow_start shorter than a reload interval: no ramp');
  t.same(
    [1, 2, 3].map((i) => rampWeight(5, i, 3)),
    [1.7, 3.3, 5],
    '5 % in three sub-steps',
  );
  t.equal(rampWeight(0.1, 1, 3), 0.1, 'never below 0.1 %');
  t.equal(rampWeight(0.2, 1, 15), 0.1);
});

t.test('ready gate: the first slice waits for /ready = 200', async (t) => {
  const config = makeConfig();
  const rows: [string, ServiceObservation | undefined, number, RegExp][] = [
    ['not ready', obs({}, { ready: false }), 0, /waiting to start \(target 30 %\): ready fail: canary \/ready not 200/],
    [
      'no /ready probe yet',
      obs({}, { ready: null }),
      0,
      /ready inconclusive: canary \/ready not probed yet; weight stays 0 %/,
    ],
    [
      'no prober at all',
      { primary: obs().primary, canary: obs().canary },
      0,
      /ready inconclusive: canary \/ready not probed yet/,
    ],
    ['ready', obs({}, { ready: true }), 5, /started the slice 0 % → 5 %/],
  ];
  for (const [name, o, weight, summary] of rows) {
    const d = decide(config, deepFreeze(stateWith()), o ? { gateway: o } : {}, T0 + 500);
    t.equal(d.weights.gateway, weight, `${name}: weight`);
    t.match(d.summary.gateway, summary, `${name}: summary`);
    t.equal(d.changed, weight > 0, `${name}: changed`);
  }
  // Not ready mid-walk is a hold: the walk pauses, the canary keeps its share.
  const mid = decide(
    config,
    stateWith({ weight: 15, phase: 'step', since: T0, soakedMs: 500 }),
    { gateway: obs({}, { ready: false }) },
    T0 + 500,
  );
  t.equal(mid.weights.gateway, 15);
  t.equal(mid.state.services.gateway?.phase, 'paused');
  t.equal(mid.state.services.gateway?.pausedBy, 'gate');
});

/** Runs ticks every `everyMs` from `from` to `to` (ms after T0), feeding green observations; returns the states. */
function walk(
  config: ReturnType<typeof rampConfig>,
  state: State,
  from: number,
  to: number,
  everyMs: number,
  o: ServiceObservation = obs(),
): { states: State[]; weights: number[] } {
  const states: State[] = [];
  const weights: number[] = [];
  let s = state;
  for (let at = from; at <= to; at += everyMs) {
    const d = decide(config, deepFreeze(s), { gateway: o }, T0 + at, EMULATE);
    s = d.state;
    states.push(s);
    if (d.changed) weights.push(d.weights.gateway as number);
  }
  return { states, weights };
}

t.test('slow_start emulation: the slice ramps in ceil(slow_start / min_reload_interval) reloads', async (t) => {
  const config = rampConfig(3000);
  const first = decide(config, deepFreeze(stateWith()), { gateway: obs() }, T0 + 500, EMULATE);
  t.equal(first.weights.gateway, 1.7, 'near 0: a third of the slice');
  t.same(first.state.services.gateway?.ramp, { to: 5, step: 1, steps: 3, startedAt: T0 + 500, cause: 'slice' });
  t.same(
    first.events.map((e) => e.kind),
    ['slice'],
  );
  t.match(
    first.events[0]?.reason ?? '',
    /first slice of 5 % toward target 30 %, ramped in 3 reloads \(slow_start emulation\)/,
  );

  const early = decide(config, deepFreeze(first.state), { gateway: obs() }, T0 + 1000, EMULATE);
  t.equal(early.changed, false, 'a sub-step waits for its time: slow_start / steps = 1 s');
  t.match(
    early.summary.gateway,
    /ramping at 1\.7 % \(target 30 %\): sub-step 1 of 3 toward 5 %, next sub-step in 0\.5 s/,
  );

  const { states, weights } = walk(config, first.state, 1500, 6000, 250);
  t.same(weights.slice(0, 2), [3.3, 5], 'two more sub-steps, then the slice weight');
  const done = states.find((s) => s.services.gateway?.weight === 5 && !s.services.gateway.ramp);
  t.ok(done, 'the ramp ends');
  t.equal(done?.services.gateway?.since, T0 + 2500, 'the soak starts when the ramp ends');
  const ramps = states.at(-1)?.history.filter((e) => e.kind === 'ramp') ?? [];
  t.same(
    ramps.map((e) => [e.from, e.to]),
    [
      [1.7, 3.3],
      [3.3, 5],
    ],
  );
  t.match(ramps[1]?.reason ?? '', /sub-step 3 of 3 toward 5 %; the soak starts now/);
  // While the ramp ran nothing soaked; after it, the slice soak (1 s) runs and the walk steps to 15.
  const during = states.filter((s) => s.services.gateway?.ramp);
  t.ok(
    during.every((s) => s.services.gateway?.soakedMs === 0),
    'no soak during the ramp',
  );
  t.ok(weights.includes(15), 'after the soak the walk steps on (no ramp for a step)');
  t.equal(weights[weights.indexOf(15) - 1], 5);
});

t.test('a capped ramp still spans slow_start: 30 s over a 0.5 s interval is 10 sub-steps 3 s apart', async (t) => {
  const svc = makeService('gateway', { rollout: { target: 30, slice: 10 } });
  const config = makeConfig({
    services: [{ ...svc, canary: svc.canary.map((c) => ({ ...c, slowStartMs: 30_000 })) }],
    minReloadIntervalMs: 500,
  });
  t.equal(rampSpacingMs(config.services[0]!, MAX_RAMP_STEPS), 3000);
  const first = decide(config, stateWith(), { gateway: obs() }, T0, EMULATE);
  t.equal(first.weights.gateway, 1, 'a tenth of the 10 % slice');
  const { weights, states } = walk(config, first.state, 500, 27_000, 500);
  t.same(weights.slice(0, 9), [2, 3, 4, 5, 6, 7, 8, 9, 10], 'nine more sub-steps');
  const times = (states.at(-1)?.history ?? []).filter((e) => e.kind === 'ramp').map((e) => e.at - T0);
  t.same(times, [3000, 6000, 9000, 12_000, 15_000, 18_000, 21_000, 24_000, 27_000], 'one every 3 s, not every 0.5 s');
});

t.test('a wall clock behind the ramp start does not stall it', async (t) => {
  const config = rampConfig(3000);
  const ramping = stateWith({
    weight: 1.7,
    phase: 'slice',
    since: T0 + 10_000,
    lastTickAt: T0 + 10_000,
    ramp: { to: 5, step: 1, steps: 3, startedAt: T0 + 10_000, cause: 'slice' },
  });
  const d = decide(config, ramping, { gateway: obs() }, T0, EMULATE);
  t.equal(d.weights.gateway, 3.3, 'the next sub-step goes (min_reload_interval allows it: the clock went back)');
});

t.test('on NGINX Plus (no emulation) and without slow_start the slice is one change', async (t) => {
  const plus = decide(rampConfig(3000), stateWith(), { gateway: obs() }, T0 + 500, { emulateSlowStart: false });
  t.equal(plus.weights.gateway, 5);
  t.equal(plus.state.services.gateway?.ramp, null);
  const none = decide(rampConfig(null), stateWith(), { gateway: obs() }, T0 + 500, EMULATE);
  t.equal(none.weights.gateway, 5);
  t.equal(none.state.services.gateway?.ramp, null);
});

t.test('a ramp stops for a drain, pauses for a hold gate, and follows a lowered target', async (t) => {
  const config = rampConfig(3000);
  const ramping = stateWith({
    weight: 1.7,
    phase: 'slice',
    since: T0,
    ramp: { to: 5, step: 1, steps: 3, startedAt: T0, cause: 'slice' },
  });

  const drained = decide(config, ramping, { gateway: obs({ requests: 50, errors: 50 }) }, T0 + 1500, EMULATE);
  t.equal(drained.weights.gateway, 0);
  t.equal(drained.state.services.gateway?.phase, 'drained');
  t.equal(drained.state.services.gateway?.ramp, null);

  const paused = decide(config, ramping, { gateway: obs({ requests: 200, connectP95Ms: 500 }) }, T0 + 1500, EMULATE);
  t.equal(paused.weights.gateway, 1.7, 'a hold gate freezes the ramp');
  t.equal(paused.state.services.gateway?.phase, 'paused');
  t.same(paused.state.services.gateway?.ramp?.step, 1, 'the ramp is kept for later');
  const resumed = decide(config, paused.state, { gateway: obs() }, T0 + 2000, EMULATE);
  t.equal(resumed.state.services.gateway?.phase, 'slice', 'green again: resumed');
  const next = decide(config, resumed.state, { gateway: obs() }, T0 + 2500, EMULATE);
  t.equal(next.weights.gateway, 3.3, 'and the ramp goes on');

  const lowerBelow = makeConfig({
    services: [{ ...config.services[0]!, rollout: { ...config.services[0]!.rollout, target: 1 } }],
    minReloadIntervalMs: 1000,
  });
  const below = decide(lowerBelow, ramping, { gateway: obs() }, T0 + 1500, EMULATE);
  t.equal(below.weights.gateway, 1, 'a target under the live weight applies at once');
  t.equal(below.state.services.gateway?.ramp, null);

  const lowerBetween = makeConfig({
    services: [{ ...config.services[0]!, rollout: { ...config.services[0]!.rollout, target: 3 } }],
    minReloadIntervalMs: 1000,
  });
  const between = decide(lowerBetween, ramping, { gateway: obs() }, T0 + 1500, EMULATE);
  t.equal(between.state.services.gateway?.ramp?.to, 3, 'the ramp now ends at the lower target');
  t.equal(between.weights.gateway, 2, 'sub-step 2 of 3 toward 3 %');
});

t.test('recovery: a canary that probes saw recover is ramped back from near 0', async (t) => {
  const config = rampConfig(3000);
  // Soaked 200 ms of 1 s, last tick just now: nothing else would move the weight.
  const at15 = stateWith({ weight: 15, phase: 'step', since: T0, soakedMs: 200, lastTickAt: T0 + 1500 });
  const recovered = obs({}, { recoveredAt: T0 + 100 });
  const d = decide(config, deepFreeze(at15), { gateway: recovered }, T0 + 1500, EMULATE);
  t.equal(d.weights.gateway, 5, 'a third of 15 %');
  t.same(d.state.services.gateway?.ramp, { to: 15, step: 1, steps: 3, startedAt: T0 + 1500, cause: 'recovery' });
  t.equal(d.events.at(-1)?.kind, 'ramp');
  t.match(d.events.at(-1)?.reason ?? '', /healthy again after probes saw it unhealthy/);
  const again = decide(config, d.state, { gateway: recovered }, T0 + 2500, EMULATE);
  t.equal(again.weights.gateway, 10, 'the same recovery does not restart the ramp: it climbs');

  const soon = decide(config, { ...at15, lastReloadAt: T0 + 1000 }, { gateway: recovered }, T0 + 1500, EMULATE);
  t.equal(soon.changed, false, 'the recovery ramp waits for min_reload_interval too');
  t.match(soon.summary.gateway, /waiting for min_reload_interval \(0\.5 s left\) to ramp the recovered canary back up/);
  const old = decide(config, at15, { gateway: obs({}, { recoveredAt: T0 - 1 }) }, T0 + 1500, EMULATE);
  t.equal(old.weights.gateway, 15, 'a recovery before the weight was set is not a re-entry');
  const plus = decide(config, at15, { gateway: recovered }, T0 + 1500);
  t.equal(plus.weights.gateway, 15, 'NGINX Plus ramps by itself');

  const complete = stateWith({ weight: 30, phase: 'complete', since: T0 });
  const c = decide(config, complete, { gateway: recovered }, T0 + 1500, EMULATE);
  t.equal(c.weights.gateway, 10);
  t.equal(c.state.services.gateway?.phase, 'step', 'below the target while the ramp runs');
  const { weights, states } = walk(config, c.state, 2500, 5000, 500, recovered);
  t.same(weights, [20, 30]);
  t.equal(states.at(-1)?.services.gateway?.phase, 'complete', 'back at the target: complete again');
});
