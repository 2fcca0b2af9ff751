import t from 'tap';
import { DDSketch } from '@datadog/sketches-js';
import { barrierOf, evidenceLine, leaderStep, type LeaderInput, type PendingIntent } from '../../src/fleet/leader.js';
import {
  parseDesired,
  seedDesired,
  servicesDiff,
  servicesFingerprint,
  withFleetTargets,
  type FleetDesired,
  type FleetIntent,
  type HostReport,
} from '../../src/fleet/protocol.js';
import type { ObservationSnapshot, PoolSnapshot } from '../../src/fleet/snapshot.js';
import { decide } from '../../src/rollout/decide.js';
import { canaryIdentity } from '../../src/rollout/release.js';
import { bucketWidthMs, SKETCH_RELATIVE_ACCURACY } from '../../src/observe/window.js';
import { T0, makeConfig, makeService, probePool, stateWith } from '../fixtures/rollout/config.js';

const config = makeConfig();
const fp = servicesFingerprint(config);
const WIDTH = bucketWidthMs(10_000);

/** A pool snapshot of `requests` attempts with `errors` 5xx in one bucket at `at`, every connect taking `connectMs`. */
function poolSnap(requests: number, errors: number, at = T0, connectMs = 2): PoolSnapshot {
  const sketch = new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY });
  for (let i = 0; i < requests; i++) sketch.accept(connectMs);
  const enc = requests > 0 ? Buffer.from(sketch.toProto()).toString('base64') : null;
  return {
    requests,
    errors,
    widthMs: WIDTH,
    seriesStartMs: Math.floor(at / WIDTH) * WIDTH,
    series: [{ attempts: requests, errors }],
    connect: enc,
    response: enc,
  };
}

/** One host's observations of `gateway`: canary attempts/errors, a primary with as many clean attempts. */
function hostObs(canary: number, errors: number, at = T0): ObservationSnapshot {
  return {
    gateway: {
      primary: poolSnap(canary, 0, at),
      canary: poolSnap(canary, errors, at),
      probes: { primary: probePool(), canary: probePool() },
    },
  };
}

function report(host: string, verified: number | null, over: Partial<HostReport> = {}): HostReport {
  return {
    v: 1,
    host,
    at: T0,
    weights: { gateway: 0 },
    nginxGeneration: 4,
    verified,
    applyError: null,
    servicesHash: fp.hash,
    services: fp.services,
    localDrains: [],
    version: '0.1.0',
    ...over,
  };
}

function desiredAt(
  weight: number,
  over: Partial<FleetDesired> = {},
  svc: Parameters<typeof stateWith>[0] = {},
): FleetDesired {
  const state = stateWith({
    weight,
    phase: weight > 0 ? 'step' : 'idle',
    target: 30,
    canary: canaryIdentity(config.services[0]!),
    ...svc,
  });
  return { ...seedDesired(config, state, 'a', T0), generation: 3, ...over };
}

function input(over: Partial<LeaderInput>): LeaderInput {
  return {
    config,
    fingerprint: fp,
    desired: desiredAt(5),
    hosts: { a: report('a', 3), b: report('b', 3), c: report('c', 3) },
    observations: { a: hostObs(40, 0), b: hostObs(40, 0), c: hostObs(40, 0) },
    intents: [],
    self: 'a',
    now: T0 + 5000,
    emulateSlowStart: false,
    newlyElected: false,
    ...over,
  };
}

function intent(id: string, i: Omit<FleetIntent, 'v' | 'at'>): PendingIntent {
  return { id, intent: { v: 1, at: T0, ...i } };
}

t.test('barrier: a soaked step is raised only when every live host verified the desired generation', async (t) => {
  const soaked = desiredAt(5, {}, { soakedMs: 999, lastTickAt: T0 + 4000, phase: 'slice' });
  const held = leaderStep(
    input({ desired: soaked, hosts: { a: report('a', 3), b: report('b', 2), c: report('c', 3) } }),
  );
  t.equal(held.changed, false, 'no raise while b is behind');
  t.equal(held.desired.weights['gateway'], 5);
  t.equal(held.desired.generation, 3);
  t.equal(held.desired.state.services['gateway']?.soakedMs, 999, 'the soak does not grow while the barrier holds');
  t.match(
    held.desired.summary['gateway'],
    /holding at 5 %: barrier: waiting for b \(applying generation 3 \(verified 2\)\)/,
  );
  t.match(held.desired.hold, /waiting for b/);
  t.same(
    held.waiting.map((w) => w.host),
    ['b'],
  );

  const raised = leaderStep(input({ desired: soaked }));
  t.equal(raised.changed, true, 'every host verified: the step goes');
  t.equal(raised.desired.weights['gateway'], 15);
  t.equal(raised.desired.generation, 4);
  t.equal(raised.desired.hold, null);
  t.ok(raised.events.some((e) => e.kind === 'step' && e.to === 15));
});

t.test('barrier: a host with an apply error holds the fleet and is named with the error', async (t) => {
  const soaked = desiredAt(5, {}, { soakedMs: 999, lastTickAt: T0 + 4000, phase: 'slice' });
  const err = 'preflight: nginx -t failed: unknown directive "bogus" in /etc/nginx/nginx.conf:12';
  const out = leaderStep(
    input({ desired: soaked, hosts: { a: report('a', 3), b: report('b', 3, { applyError: err }) } }),
  );
  t.equal(out.changed, false);
  t.match(out.desired.summary['gateway'], /b \(apply failed: preflight: nginx -t failed: unknown directive "bogus"/);
});

t.test('a drain never waits for the barrier', async (t) => {
  const lagging = { a: report('a', 3), b: report('b', 1), c: report('c', null) };
  const bad = { a: hostObs(40, 20), b: hostObs(40, 20), c: hostObs(40, 20) };
  const out = leaderStep(input({ desired: desiredAt(15), hosts: lagging, observations: bad }));
  t.equal(out.desired.weights['gateway'], 0, 'drained with two hosts behind');
  t.equal(out.changed, true);
  t.equal(out.desired.generation, 4);
  t.equal(out.pages.length, 1, 'paged once');
  t.equal(out.desired.state.services['gateway']?.phase, 'drained');

  const aborted = leaderStep(
    input({
      desired: desiredAt(15),
      hosts: lagging,
      intents: [intent('1', { kind: 'abort', service: 'gateway', from: 'c' })],
    }),
  );
  t.equal(aborted.desired.weights['gateway'], 0, 'an abort from any host lowers at once');
  t.same(aborted.consumed, ['1']);
  t.equal(aborted.pages.length, 0, 'an operator abort does not page');
});

t.test('fleet-wide gates: three hosts with too few attempts each drain on their sum', async (t) => {
  // Each host alone: 8 canary attempts with 2 errors (25 %, 50 × the 0.5 % threshold) is too little
  // evidence for its own gate; the fleet's 24 attempts with 6 errors is enough.
  const one = hostObs(8, 2);
  const alone = decide(
    config,
    desiredAt(15).state,
    {
      gateway: {
        primary: { requests: 8, errors: 0, connectP95Ms: 2, responseP95Ms: 2, series: [{ attempts: 8, errors: 0 }] },
        canary: { requests: 8, errors: 2, connectP95Ms: 2, responseP95Ms: 2, series: [{ attempts: 8, errors: 2 }] },
        probes: { primary: probePool(), canary: probePool() },
      },
    },
    T0 + 5000,
  );
  t.equal(alone.weights['gateway'], 15, 'one host alone does not drain');
  const out = leaderStep(input({ desired: desiredAt(15), observations: { a: one, b: one, c: one } }));
  t.equal(out.desired.weights['gateway'], 0, 'the fleet drains on 24 attempts');
  const gate = out.desired.gates['gateway']?.find((g) => g.gate === 'error_ratio');
  t.equal(gate?.samples, 24, 'the gate saw the summed attempts');
  t.equal(gate?.verdict, 'fail');
});

t.test('fleet-wide p95: the connect sketches are merged, not averaged', async (t) => {
  // a: 90 fast (1 ms); b: 10 slow (300 ms). Merged p95 = the slow tail; the mean of the hosts' p95s is ~150 ms.
  const a: ObservationSnapshot = { gateway: { ...hostObs(90, 0)['gateway']!, canary: poolSnap(90, 0, T0, 1) } };
  const b: ObservationSnapshot = { gateway: { ...hostObs(10, 0)['gateway']!, canary: poolSnap(10, 0, T0, 300) } };
  const out = leaderStep(input({ observations: { a, b }, hosts: { a: report('a', 3), b: report('b', 3) } }));
  const gate = out.desired.gates['gateway']?.find((g) => g.gate === 'connect_p95');
  t.ok(gate?.detail?.['log_p95_ms'] !== undefined, 'the connect gate reports the log p95');
  t.ok(
    Math.abs((gate?.detail?.['log_p95_ms'] ?? 0) - 300) < 300 * 0.02,
    `merged p95 ≈ 300 ms (got ${gate?.detail?.['log_p95_ms']})`,
  );
});

t.test("a host's drain intent drains the fleet and pages once", async (t) => {
  const out = leaderStep(
    input({
      desired: desiredAt(25),
      intents: [
        intent('1', { kind: 'drain', service: 'gateway', from: 'b', reason: 'error_ratio' }),
        intent('2', { kind: 'drain', service: 'gateway', from: 'c', reason: 'error_ratio' }),
      ],
    }),
  );
  t.equal(out.desired.weights['gateway'], 0);
  t.equal(out.pages.length, 1, 'two hosts drained; one page');
  t.match(out.pages[0]?.summary, /drained gateway from 25 % to 0 % on every host: error_ratio on host b/);
  t.same(out.consumed, ['1', '2']);
  const again = leaderStep(
    input({
      desired: out.desired,
      intents: [intent('3', { kind: 'drain', service: 'gateway', from: 'a', reason: 'error_ratio' })],
    }),
  );
  t.equal(again.pages.length, 0, 'a drain of an already drained service does not page again');
});

t.test('hosts disagreeing on services hold the walk and say which host and how', async (t) => {
  const other = servicesFingerprint(makeConfig({ gates: { windowMs: 20_000 } }));
  const soaked = desiredAt(5, {}, { soakedMs: 999, lastTickAt: T0 + 4000, phase: 'slice' });
  const out = leaderStep(
    input({
      desired: soaked,
      hosts: { a: report('a', 3), b: report('b', 3, { servicesHash: other.hash, services: other.services }) },
    }),
  );
  t.equal(out.changed, false);
  t.same(out.disagreeing, [{ host: 'b', diff: ['gateway.gates differs'] }]);
  t.match(out.desired.hold, /b \(services differ from the leader's: gateway.gates differs\)/);
});

t.test('a newly elected leader does not count the leaderless gap as soak', async (t) => {
  const d = desiredAt(15, {}, { soakedMs: 400, lastTickAt: T0 });
  const gap = leaderStep(input({ desired: d, now: T0 + 3000, newlyElected: true }));
  t.equal(gap.desired.state.services['gateway']?.soakedMs, 400, 'soak continues from what the old leader wrote');
  t.equal(gap.desired.state.services['gateway']?.lastTickAt, T0 + 3000);
  const next = leaderStep(input({ desired: gap.desired, now: T0 + 3500 }));
  t.equal(next.desired.state.services['gateway']?.soakedMs, 900, 'then it grows by the tick gap');
  t.equal(gap.desired.weights['gateway'], 15, 'no step on the first tick after the gap');
  const stale = leaderStep(input({ desired: d, now: T0 + 3000 }));
  t.equal(stale.desired.weights['gateway'], 25, 'contrast: counting the gap would complete the 1 s soak and step');
});

t.test('target and version intents set the fleet values; weights.yaml only seeds them', async (t) => {
  const out = leaderStep(
    input({ intents: [intent('1', { kind: 'target', service: 'gateway', from: 'b', weight: 60 })] }),
  );
  t.equal(out.desired.targets['gateway'], 60);
  t.equal(withFleetTargets(config, out.desired.targets, out.desired.versions).services[0]?.rollout.target, 60);
  const v = leaderStep(
    input({
      desired: desiredAt(25),
      intents: [intent('2', { kind: 'version', service: 'gateway', from: 'c', version: 'v2' })],
    }),
  );
  t.equal(v.desired.versions['gateway'], 'v2');
  t.equal(v.desired.weights['gateway'], 0, 'a new version is a new canary: weight 0, walked again');
  t.ok(v.events.some((e) => e.kind === 'release'));
  const unknown = leaderStep(
    input({ intents: [intent('3', { kind: 'target', service: 'nope', from: 'c', weight: 60 })] }),
  );
  t.same(unknown.consumed, ['3'], 'an intent for an unknown service is consumed and ignored');
  t.same(unknown.desired.targets, { gateway: 30 });
});

t.test('the fingerprint leaves out target and version and names the section that differs', async (t) => {
  const a = servicesFingerprint(makeConfig({ rollout: { target: 10, version: 'x' } }));
  const b = servicesFingerprint(makeConfig({ rollout: { target: 90, version: 'y' } }));
  t.equal(a.hash, b.hash);
  const c = servicesFingerprint(makeConfig({ services: [makeService('gateway'), makeService('api')] }));
  t.same(servicesDiff(a.services, c.services), ['extra api']);
  t.same(servicesDiff(c.services, a.services), ['api missing']);
});

t.test('barrierOf: no hosts, behind, failing, disagreeing', async (t) => {
  t.same(barrierOf(fp, {}, 3), { waiting: [], disagreeing: [] });
  const r = barrierOf(fp, { z: report('z', null), y: report('y', 3, { applyError: 'reload: x' }) }, 3);
  t.same(
    r.waiting.map((w) => w.host),
    ['y', 'z'],
    'sorted by host',
  );
  const none = leaderStep(
    input({ hosts: {}, desired: desiredAt(5, {}, { soakedMs: 999, lastTickAt: T0 + 4000, phase: 'slice' }) }),
  );
  t.equal(none.changed, false, 'no host report yet: no raise');
});

t.test('the desired document round-trips through its parser', async (t) => {
  const out = leaderStep(input({}));
  const p = parseDesired(JSON.stringify(out.desired));
  t.ok(p.ok);
  const bad = parseDesired(JSON.stringify({ ...out.desired, weights: { gateway: 130 } }));
  t.notOk(bad.ok);
  if (!bad.ok) t.match(bad.error, /\/weights\/gateway/);
  t.match(parseDesired('{').ok ? '' : 'not JSON', /not JSON/);
});

t.test('a promote intent ends the release on every host only while the walk is complete at its target', async (t) => {
  const complete = desiredAt(30, {}, { phase: 'complete' });
  const out = leaderStep(
    input({ desired: complete, intents: [intent('1', { kind: 'promote', service: 'gateway', from: 'b' })] }),
  );
  t.equal(out.desired.weights['gateway'], 0);
  t.equal(out.desired.state.services['gateway']?.phase, 'promoted');
  t.ok(out.events.some((e) => e.kind === 'promote' && /from host b/.test(e.reason)));
  t.equal(out.pages.length, 0, 'a promote is not a drain: no page');
  const walking = leaderStep(
    input({ desired: desiredAt(15), intents: [intent('2', { kind: 'promote', service: 'gateway', from: 'b' })] }),
  );
  t.not(walking.desired.state.services['gateway']?.phase, 'promoted', 'a walk below its target is not promoted');
  t.same(walking.consumed, ['2']);
});

t.test('a host whose canary errs far above the rest is named in the summary', async (t) => {
  const out = leaderStep(
    input({ desired: desiredAt(15), observations: { a: hostObs(200, 0), b: hostObs(200, 0), c: hostObs(200, 12) } }),
  );
  t.match(out.desired.summary['gateway'], /canary errors stand out on c \(6\.0 % of 200 vs 0\.1 % elsewhere\)/);
  const even = leaderStep(
    input({ desired: desiredAt(15), observations: { a: hostObs(200, 0), b: hostObs(200, 0), c: hostObs(200, 0) } }),
  );
  t.notMatch(even.desired.summary['gateway'], /stand out/);
});

t.test(
  "the leader's decisions name whose evidence they rest on; a host's own drain keeps its own reason",
  async (t) => {
    const bad = hostObs(40, 20);
    const all = leaderStep(input({ desired: desiredAt(15), observations: { a: bad, b: bad, c: bad } }));
    const drain = all.events.find((e) => e.kind === 'drain');
    t.match(drain?.reason, /^drain gate error_ratio fail.* \(fleet evidence from 3 of 3 live hosts: a, b, c\)$/);
    t.equal(all.pages[0]?.event.reason, drain?.reason, 'the page carries the same event');
    t.same(all.desired.state.history.at(-1), drain, 'and so does the fleet history');

    // c's snapshot expired (its lease ran out) while its report is still live: the drain says it saw two.
    const part = leaderStep(input({ desired: desiredAt(15), observations: { a: bad, b: bad } }));
    t.match(part.events.find((e) => e.kind === 'drain')?.reason, /\(fleet evidence from 2 of 3 live hosts: a, b\)$/);

    // A host whose services differ is not merged, and not counted.
    const other = report('c', 3, { servicesHash: 'other' });
    const differs = leaderStep(
      input({
        desired: desiredAt(15),
        hosts: { a: report('a', 3), b: report('b', 3), c: other },
        observations: { a: bad, b: bad, c: bad },
      }),
    );
    t.match(differs.events.find((e) => e.kind === 'drain')?.reason, /\(fleet evidence from 2 of 3 live hosts: a, b\)$/);

    const own = leaderStep(
      input({
        desired: desiredAt(15),
        intents: [intent('1', { kind: 'drain', service: 'gateway', from: 'b', reason: 'error_ratio' })],
      }),
    );
    t.notMatch(own.events[0]?.reason, /fleet evidence/, "a host's drain intent is its own evidence, not the leader's");
  },
);

t.test('evidenceLine: counts, names sorted, at most five, and snapshots that did not merge', async (t) => {
  t.equal(evidenceLine(['c', 'a', 'b'], 3), 'fleet evidence from 3 of 3 live hosts: a, b, c');
  t.equal(evidenceLine(['a'], 1), 'fleet evidence from 1 of 1 live host: a');
  t.equal(
    evidenceLine(['h7', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6'], 8),
    'fleet evidence from 7 of 8 live hosts: h1, h2, h3, h4, h5 and 2 more',
  );
  t.equal(
    evidenceLine([], 3, 3),
    'fleet evidence from 0 of 3 live hosts; 3 snapshots not merged: window widths differ',
  );
  t.equal(evidenceLine([], 2, 1), 'fleet evidence from 0 of 2 live hosts; 1 snapshot not merged: window widths differ');
});
