import t from 'tap';
import {
  GATES,
  allPass,
  allPassOfKind,
  describeGate,
  evaluateGates,
  firstFailing,
  firstNotPassing,
  thresholdVerdict,
} from '../../src/rollout/gates.js';
import type { GateResult, PoolObservation, Verdict } from '../../src/rollout/types.js';
import { makeService, obs } from '../fixtures/rollout/config.js';

const svc = makeService('gateway', { gates: { minRequests: 20, connectP95Ms: 120, errorRatio: 0.005 } });

t.test('thresholdVerdict: null or thin data is inconclusive; above fails; the threshold itself passes', async (t) => {
  const rows: [number | null, number, number, number, Verdict][] = [
    [null, 120, 100, 20, 'inconclusive'],
    [500, 120, 19, 20, 'inconclusive'],
    [121, 120, 20, 20, 'fail'],
    [120, 120, 20, 20, 'pass'],
    [0, 120, 0, 0, 'pass'],
  ];
  for (const [value, threshold, samples, min, want] of rows) {
    t.equal(thresholdVerdict(value, threshold, samples, min), want, `${value} vs ${threshold} on ${samples}/${min}`);
  }
});

t.test('connect_p95 (hold) and error_ratio (drain) judge the canary pool', async (t) => {
  const rows: {
    name: string;
    canary: Partial<PoolObservation> | null;
    p95: Verdict;
    ratio: Verdict;
    ratioValue: number | null;
  }[] = [
    { name: 'no observation at all', canary: null, p95: 'inconclusive', ratio: 'inconclusive', ratioValue: null },
    {
      name: '0 requests',
      canary: { requests: 0, errors: 0, connectP95Ms: null },
      p95: 'inconclusive',
      ratio: 'inconclusive',
      ratioValue: null,
    },
    {
      name: '19 of 20 requests, all bad',
      canary: { requests: 19, errors: 19, connectP95Ms: 900 },
      p95: 'inconclusive',
      ratio: 'inconclusive',
      ratioValue: 1,
    },
    {
      name: 'green at exactly min_requests',
      canary: { requests: 20, errors: 0, connectP95Ms: 120 },
      p95: 'pass',
      ratio: 'pass',
      ratioValue: 0,
    },
    {
      name: 'slow connects',
      canary: { requests: 200, errors: 0, connectP95Ms: 121 },
      p95: 'fail',
      ratio: 'pass',
      ratioValue: 0,
    },
    {
      name: '1 of 200 = 0.5 % passes',
      canary: { requests: 200, errors: 1, connectP95Ms: 5 },
      p95: 'pass',
      ratio: 'pass',
      ratioValue: 0.005,
    },
    {
      name: '2 of 200 = 1 % fails',
      canary: { requests: 200, errors: 2, connectP95Ms: 5 },
      p95: 'pass',
      ratio: 'fail',
      ratioValue: 0.01,
    },
    {
      name: 'no connect at all (p95 null) but errors',
      canary: { requests: 50, errors: 50, connectP95Ms: null },
      p95: 'inconclusive',
      ratio: 'fail',
      ratioValue: 1,
    },
  ];
  for (const row of rows) {
    const results = evaluateGates(svc, row.canary ? obs(row.canary) : undefined);
    t.same(
      results.map((r) => [r.gate, r.kind, r.pool]),
      [
        ['connect_p95', 'hold', 'canary'],
        ['error_ratio', 'drain', 'canary'],
      ],
      `${row.name}: gate order and kinds`,
    );
    const [p95, ratio] = results as [GateResult, GateResult];
    t.equal(p95.verdict, row.p95, `${row.name}: connect_p95`);
    t.equal(ratio.verdict, row.ratio, `${row.name}: error_ratio`);
    t.equal(ratio.value, row.ratioValue, `${row.name}: error ratio value`);
    t.equal(p95.value, row.canary?.connectP95Ms ?? null, `${row.name}: p95 value`);
    t.equal(p95.threshold, 120);
    t.equal(ratio.threshold, 0.005);
    t.equal(p95.samples, row.canary?.requests ?? 0, `${row.name}: samples`);
    t.equal(p95.minSamples, 20);
  }
});

t.test('the primary pool does not move canary gates', async (t) => {
  const o = {
    primary: { requests: 1000, errors: 1000, connectP95Ms: 5000 },
    canary: { requests: 100, errors: 0, connectP95Ms: 10 },
  };
  t.ok(allPass(evaluateGates(svc, o)));
});

t.test('helpers', async (t) => {
  const r = (gate: GateResult['gate'], kind: GateResult['kind'], verdict: Verdict): GateResult => ({
    gate,
    kind,
    pool: 'canary',
    verdict,
    value: 1,
    threshold: 1,
    samples: 100,
    minSamples: 20,
  });
  const holdFail = r('connect_p95', 'hold', 'fail');
  const drainFail = r('error_ratio', 'drain', 'fail');
  const drainInc = r('error_ratio', 'drain', 'inconclusive');
  const holdPass = r('connect_p95', 'hold', 'pass');
  const drainPass = r('error_ratio', 'drain', 'pass');

  t.equal(allPass([]), false, 'no gate is not green');
  t.equal(allPass([holdPass, drainPass]), true);
  t.equal(allPass([holdPass, drainInc]), false);
  t.equal(allPassOfKind([holdPass, drainInc], 'hold'), true);
  t.equal(allPassOfKind([holdPass, drainInc], 'drain'), false);
  t.equal(allPassOfKind([drainPass], 'hold'), false, 'no hold gate is not green');
  t.equal(firstFailing([holdPass, drainFail]), drainFail);
  t.equal(firstFailing([holdFail, drainFail], 'drain'), drainFail);
  t.equal(firstFailing([holdFail, drainFail], 'hold'), holdFail);
  t.equal(firstFailing([holdPass, drainInc]), undefined);
  t.equal(firstNotPassing([holdPass, drainInc, holdFail]), drainInc);
  t.equal(firstNotPassing([holdPass, drainPass]), undefined);
  t.equal(GATES.length, 2, 'this release has two gates');
});

t.test('describeGate names the gate, the verdict and the numbers in their units', async (t) => {
  const [p95, ratio] = evaluateGates(svc, obs({ requests: 200, errors: 4, connectP95Ms: 180.4 })) as [
    GateResult,
    GateResult,
  ];
  t.equal(describeGate(p95), 'connect_p95 fail: canary connect p95 180 ms > 120 ms over 200 requests');
  t.equal(describeGate(ratio), 'error_ratio fail: canary 5xx ratio 2.00 % > 0.50 % over 200 requests');
  const [green] = evaluateGates(svc, obs({ requests: 40, connectP95Ms: 30 })) as [GateResult];
  t.equal(describeGate(green), 'connect_p95 pass: canary connect p95 30 ms ≤ 120 ms over 40 requests');
  const [thin] = evaluateGates(svc, obs({ requests: 12 })) as [GateResult];
  t.equal(describeGate(thin), 'connect_p95 inconclusive: canary 12 of 20 requests');
  const [noConnect] = evaluateGates(svc, obs({ requests: 30, errors: 30, connectP95Ms: null })) as [GateResult];
  t.equal(describeGate(noConnect), 'connect_p95 inconclusive: canary connect p95 unknown over 30 requests');
});
