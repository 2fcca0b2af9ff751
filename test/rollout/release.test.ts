import t from 'tap';
import fc from 'fast-check';
import type { Config, ServiceConfig } from '../../src/config/types.js';
import { applyCommand, decide, initialState } from '../../src/rollout/decide.js';
import { canaryIdentity, describeIdentityChange, promoteRefusal, promotedState } from '../../src/rollout/release.js';
import type { Command, GateResult, State } from '../../src/rollout/types.js';
import { serverConfig } from '../fixtures/config.js';
import { T0, deepFreeze, makeConfig, makeService, obs, stateWith, svcState } from '../fixtures/rollout/config.js';

/** The gateway service with these canary servers and version (target 35 unless given). */
function withCanary(canary: string[], version: string | null = null, target = 35): Config {
  const base = makeService('gateway', { rollout: { target } });
  const svc: ServiceConfig = {
    ...base,
    canary: canary.map((a) => serverConfig(a, 'canary')),
    rollout: { ...base.rollout, version },
  };
  return makeConfig({ services: [svc] });
}
const svcOf = (c: Config): ServiceConfig => c.services[0] as ServiceConfig;
const A = '127.0.0.1:18890';
const B = '127.0.0.1:18891';

t.test('canaryIdentity: servers sorted, then the version', async (t) => {
  t.equal(canaryIdentity(svcOf(withCanary([B, A]))), `${A},${B}`);
  t.equal(canaryIdentity(svcOf(withCanary([A, B], 'v2'))), `${A},${B}@v2`);
  t.equal(canaryIdentity(svcOf(withCanary(['unix:/run/c.sock'], 'abc123'))), 'unix:/run/c.sock@abc123');
});

t.test('describeIdentityChange names what changed', async (t) => {
  t.equal(describeIdentityChange(A, B), `canary servers ${A} → ${B}`);
  t.equal(describeIdentityChange(`${A}@v1`, `${A}@v2`), 'version v1 → v2');
  t.equal(describeIdentityChange(A, `${A}@v2`), 'version (none) → v2');
  t.equal(describeIdentityChange(`${A}@v1`, `${B}`), `canary servers ${A} → ${B}; version v1 → (none)`);
  t.equal(describeIdentityChange('', A), `canary servers (none) → ${A}`);
});

t.test('a walk complete at 35: a new canary server drops it to 0 at once and walks from the slice', async (t) => {
  const old = withCanary([A]);
  const state = deepFreeze(
    stateWith({ weight: 35, phase: 'complete', target: 35, canary: canaryIdentity(svcOf(old)), soakedMs: 9000 }),
  );
  const now = T0 + 60_000;
  const d = decide(withCanary([B]), state, { gateway: obs() }, now);
  t.equal(d.weights['gateway'], 0, 'weight 0 within the tick that read the edit');
  t.match(d.state.services['gateway'], { phase: 'idle', soakedMs: 0, since: now, canary: B, ramp: null });
  t.match(d.events, [{ kind: 'release', from: 35, to: 0, reason: new RegExp(`canary servers ${A} → ${B}`) }]);
  t.ok(d.changed);
  t.same(d.pages, [], 'a new build is not a drain: no page');

  // The next tick starts the slice (the new build's /ready answers 200).
  const next = decide(withCanary([B]), d.state, { gateway: obs() }, now + 2000);
  t.equal(next.weights['gateway'], 5, 'the new build walks from the slice');
  t.match(next.events, [{ kind: 'slice', from: 0, to: 5 }]);
});

t.test('a new version at the same address is a new canary too; ready gates the slice', async (t) => {
  const v1 = withCanary([A], 'v1');
  const state = stateWith({ weight: 35, phase: 'complete', target: 35, canary: canaryIdentity(svcOf(v1)) });
  const d = decide(withCanary([A], 'v2'), state, { gateway: obs() }, T0 + 5000);
  t.match(d.events, [{ kind: 'release', reason: /version v1 → v2/ }]);
  t.equal(d.weights['gateway'], 0);
  const notReady = decide(withCanary([A], 'v2'), d.state, { gateway: obs({}, { ready: false }) }, T0 + 7000);
  t.equal(notReady.weights['gateway'], 0, 'no slice before /ready answers 200');
});

t.test('a state without a canary identity adopts the configured one without a jump', async (t) => {
  const d = decide(withCanary([A]), stateWith({ weight: 15, phase: 'step', target: 35 }), { gateway: obs() }, T0 + 100);
  t.equal(d.weights['gateway'], 15);
  t.equal(d.state.services['gateway']?.canary, A);
  t.same(
    d.events.filter((e) => e.kind === 'release'),
    [],
  );
});

t.test('the drop waits for min_reload_interval like every change; an operator pause stays', async (t) => {
  const state = stateWith({ weight: 35, phase: 'complete', target: 35, canary: A }, { lastReloadAt: T0 + 9800 });
  const d = decide(withCanary([B]), state, { gateway: obs() }, T0 + 10_000);
  t.equal(d.weights['gateway'], 35);
  t.match(d.summary['gateway'], /waiting for min_reload_interval .* to drop the replaced canary 35 % → 0 %/);
  t.equal(d.state.services['gateway']?.canary, A, 'still the old canary until the drop is made');

  const paused = stateWith({ weight: 15, phase: 'paused', pausedBy: 'operator', resumePhase: 'step', canary: A });
  const p = decide(withCanary([B]), paused, { gateway: obs() }, T0 + 5000);
  t.match(p.state.services['gateway'], { weight: 0, phase: 'paused', pausedBy: 'operator', resumePhase: 'idle' });
});

t.test('a drained or promoted walk with a new canary walks again', async (t) => {
  for (const phase of ['drained', 'promoted'] as const) {
    const s = stateWith({
      weight: 0,
      phase,
      target: 35,
      canary: A,
      drainReason: phase === 'drained' ? 'error_ratio' : null,
    });
    const d = decide(withCanary([B]), s, { gateway: obs() }, T0 + 5000);
    t.match(d.state.services['gateway'], { phase: 'idle', drainReason: null }, phase);
    const next = decide(withCanary([B]), d.state, { gateway: obs() }, T0 + 7000);
    t.equal(next.weights['gateway'], 5, `${phase}: the new build gets the slice`);
  }
});

t.test('promoted stays promoted: a target change, pause, abort and resume do not restart the walk', async (t) => {
  const s = stateWith({ weight: 0, phase: 'promoted', target: 35, canary: `${A}@v2`, promotedVersion: 'v2' });
  const d = decide(withCanary([A], 'v2', 50), s, { gateway: obs() }, T0 + 5000);
  t.match(d.state.services['gateway'], { weight: 0, phase: 'promoted', target: 50 });
  t.match(d.summary['gateway'], /^promoted v2: the primary serves it/);
  for (const kind of ['pause', 'abort', 'resume'] as const) {
    const r = applyCommand(withCanary([A], 'v2'), s, { kind, service: 'gateway' }, T0 + 1);
    t.same(r.events, [], `${kind} is a no-op when promoted`);
  }
});

const gate = (verdict: GateResult['verdict']): GateResult => ({
  gate: 'error_ratio',
  kind: 'drain',
  pool: 'canary',
  verdict,
  value: 0,
  threshold: 0.005,
  samples: 100,
  minSamples: 20,
});

t.test('promote preconditions: target reached, no red gate, primary ready', async (t) => {
  const svc = svcOf(withCanary([A], 'v2'));
  const done = svcState({ weight: 35, phase: 'complete', target: 35 });
  t.equal(promoteRefusal(svc, done, [gate('pass'), gate('inconclusive')], true), null);
  t.match(promoteRefusal(svc, svcState({ weight: 15, phase: 'step' }), [], true), {
    reason: 'the walk has not reached its target: 15 % of 35 % (phase step)',
    fix: /complete at its target/,
  });
  t.match(promoteRefusal(svc, svcState({ weight: 35, phase: 'paused' }), [], true), { reason: /phase paused/ });
  t.match(promoteRefusal(svc, undefined, [], true), { reason: /0 % of 35 % \(phase idle\)/ });
  const zero = svcOf(withCanary([A], null, 0));
  t.match(promoteRefusal(zero, svcState({ weight: 0, phase: 'complete', target: 0 }), [], true), {
    reason: /not reached its target: 0 % of 0 %/,
  });
  t.match(promoteRefusal(svc, done, [gate('fail')], true), { reason: 'gate error_ratio is red (drain)' });
  t.match(promoteRefusal(svc, done, [], false), { reason: /not every primary server answers \/ready with 200/ });
  t.match(promoteRefusal(svc, done, [], null), { reason: /not all answered a \/ready probe yet/ });
  t.match(promoteRefusal(svc, svcState({ phase: 'promoted', promotedVersion: 'v2' }), [], true), {
    reason: 'gateway is already promoted (v2)',
  });
  t.match(promoteRefusal(svc, svcState({ phase: 'promoted' }), [], true), { reason: 'gateway is already promoted' });
});

t.test('promotedState: canary 0, phase promoted with the version', async (t) => {
  const svc = svcOf(withCanary([A], 'v2'));
  const prev = deepFreeze(svcState({ weight: 35, phase: 'complete', soakedMs: 5000, since: T0 }));
  t.match(promotedState(svc, prev, T0 + 10), {
    weight: 0,
    phase: 'promoted',
    promotedVersion: 'v2',
    canary: `${A}@v2`,
    soakedMs: 0,
    since: T0 + 10,
    drainReason: null,
  });
});

/** What may happen between ticks: a healthy tick, a target edit, an operator command, or a canary edit. */
type Action =
  | { kind: 'tick'; advance: number; healthy: boolean }
  | { kind: 'target'; target: number }
  | { kind: 'cmd'; cmd: Command['kind'] }
  | { kind: 'canary'; servers: string[]; version: string | null };

const SERVERS = [A, B, '127.0.0.1:18892', '127.0.0.1:18789'];
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant('tick' as const),
      advance: fc.integer({ min: 0, max: 3000 }),
      healthy: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('target' as const), target: fc.integer({ min: 0, max: 100 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('cmd' as const), cmd: fc.constantFrom('pause', 'resume', 'abort') }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('canary' as const),
      servers: fc.subarray(SERVERS, { minLength: 1 }),
      version: fc.constantFrom(null, 'v1', 'v2'),
    }),
  },
);

t.test(
  'property: no sequence of config edits and commands raises a canary server by more than a step, or from 0 above the slice',
  async (t) => {
    let releases = 0;
    let raises = 0;
    t.doesNotThrow(() =>
      fc.assert(
        fc.property(fc.integer({ min: 5, max: 12 }), fc.array(actionArb, { maxLength: 60 }), (slice, actions) => {
          let servers = [A];
          let version: string | null = null;
          let target = 50;
          const configOf = (): Config => {
            const base = makeService('gateway', { rollout: { target, slice, sliceSoakMs: 0, stepSoakMs: 0 } });
            return makeConfig({
              minReloadIntervalMs: 0,
              services: [
                {
                  ...base,
                  canary: servers.map((a) => serverConfig(a, 'canary')),
                  rollout: { ...base.rollout, version },
                },
              ],
            });
          };
          let config = configOf();
          let state: State = initialState(config, T0);
          let now = T0;
          /** Each canary server's share of requests, percent, as nginx serves it now (with the build it runs). */
          let share = new Map<string, number>();
          const shares = (weight: number): Map<string, number> =>
            new Map(servers.map((s) => [`${s}@${version ?? ''}`, weight / servers.length]));
          for (const a of actions) {
            if (a.kind === 'target') target = a.target;
            else if (a.kind === 'canary') {
              servers = a.servers;
              version = a.version;
            }
            config = configOf();
            if (a.kind === 'cmd') {
              const r = applyCommand(config, state, { kind: a.cmd, service: 'gateway' }, now);
              state = r.state;
            } else if (a.kind === 'tick') {
              now += a.advance;
              const o = a.healthy ? obs() : obs({ errors: 50 });
              const d = decide(config, state, { gateway: o }, now);
              if (d.events.some((e) => e.kind === 'release')) releases++;
              state = d.state;
            } else continue;
            const w = state.services['gateway']?.weight ?? 0;
            const next = shares(w);
            for (const [server, to] of next) {
              const from = share.get(server) ?? 0;
              if (to > from) raises++;
              const limit = from === 0 ? slice : from + 10;
              if (to > limit + 1e-9) throw new Error(`${server} went from ${from} to ${to} % (limit ${limit} %)`);
            }
            share = next;
          }
        }),
        { seed: 13, numRuns: 500 },
      ),
    );
    t.ok(releases > 100, `the runs exercised ${releases} new canaries`);
    t.ok(raises > 100, `and ${raises} raises`);
  },
);

t.test('at target 0 the summary says whether the canary is ready for a smoke test', async (t) => {
  const config = withCanary([A], null, 0);
  const state = stateWith({ weight: 0, phase: 'idle', target: 0, canary: A });
  t.match(
    decide(config, state, { gateway: obs() }, T0 + 1).summary['gateway'],
    /^waiting: canary ready, no traffic yet/,
  );
  t.match(
    decide(config, state, { gateway: obs({}, { ready: false }) }, T0 + 1).summary['gateway'],
    /^idle at 0 % \(target 0 %\): ready fail/,
  );
});
