import t from 'tap';
import {
  BASELINE_FLOOR_MS,
  GATES,
  STARVED_FRACTION,
  allPass,
  allPassOfKind,
  baselineP95Gate,
  connectP95Gate,
  crashLoopGate,
  describeGate,
  errorRatioGate,
  MIN_DRAIN_ERRORS,
  evaluateGates,
  firstFailing,
  firstNotPassing,
  formatGateValue,
  gateNamed,
  passSide,
  probeFailureGate,
  readyGate,
  starvedGate,
  thresholdVerdict,
} from '../../src/rollout/gates.js';
import type { GateResult, ServiceObservation, Verdict } from '../../src/rollout/types.js';
import { defaultGates, defaultRollout } from '../fixtures/config.js';
import { makeService, obs, pool } from '../fixtures/rollout/config.js';
import { referenceBounds } from '../fixtures/sequential-dp.js';

const svc = makeService('gateway', {
  gates: { minRequests: 20, connectP95Ms: 120, errorRatio: 0.005, minProbes: 20, probeFailureRatio: 0.05 },
});
const at = (weight: number) => ({ weight });
const noProbes = (o: ServiceObservation): ServiceObservation => ({ primary: o.primary, canary: o.canary });

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

t.test('every gate, its kind and its order: hold gates first', async (t) => {
  const results = evaluateGates(svc, obs(), at(15));
  t.same(
    results.map((r) => [r.gate, r.kind, r.pool]),
    [
      ['ready', 'hold', 'canary'],
      ['connect_p95', 'hold', 'canary'],
      ['starved', 'hold', 'canary'],
      ['error_ratio', 'drain', 'canary'],
      ['probe_failure_ratio', 'drain', 'canary'],
      ['baseline_p95', 'drain', 'canary'],
      ['crash_loop', 'drain', 'canary'],
    ],
  );
  t.equal(GATES.length, 7);
  t.ok(
    allPass(results),
    'the fixture is green: ' +
      results
        .filter((r) => r.verdict !== 'pass')
        .map(describeGate)
        .join('; '),
  );
  t.same(
    evaluateGates(svc, undefined).map((r) => r.verdict),
    ['inconclusive', 'inconclusive', 'pass', 'inconclusive', 'inconclusive', 'inconclusive', 'inconclusive'],
    'no data at all: nothing fails, and only "not starved at weight 0" passes',
  );
  t.same(
    evaluateGates(svc, noProbes(obs()), at(15))
      .filter((r) => r.verdict !== 'pass')
      .map((r) => r.gate),
    ['ready', 'probe_failure_ratio', 'crash_loop'],
    'without a prober the probe gates are inconclusive (and connect_p95 rests on the log alone)',
  );
});

t.test('ready: 200 on every canary server passes; otherwise fails; unknown is inconclusive', async (t) => {
  t.equal(readyGate(svc, obs({}, { ready: true }), at(0)).verdict, 'pass');
  t.equal(readyGate(svc, obs({}, { ready: false }), at(0)).verdict, 'fail');
  t.equal(readyGate(svc, obs({}, { ready: null }), at(0)).verdict, 'inconclusive');
  t.equal(readyGate(svc, noProbes(obs()), at(0)).verdict, 'inconclusive');
  t.equal(describeGate(readyGate(svc, obs({}, { ready: false }), at(0))), 'ready fail: canary /ready not 200');
  t.equal(
    describeGate(readyGate(svc, obs({}, { ready: true }), at(0))),
    'ready pass: canary /ready answered 200 on every server',
  );
  t.equal(describeGate(readyGate(svc, undefined, at(0))), 'ready inconclusive: canary /ready not probed yet');
});

t.test('connect_p95: the larger p95 of the log and the probes that have enough samples', async (t) => {
  const rows: { name: string; o: ServiceObservation; verdict: Verdict; value: number | null }[] = [
    { name: 'both fast', o: obs({ requests: 40, connectP95Ms: 3 }, { connectP95Ms: 0.4 }), verdict: 'pass', value: 3 },
    {
      name: 'log slow',
      o: obs({ requests: 40, connectP95Ms: 121 }, { connectP95Ms: 0.4 }),
      verdict: 'fail',
      value: 121,
    },
    {
      name: 'keepalive hides it from the log (0 ms), the probes see it',
      o: obs({ requests: 400, connectP95Ms: 0 }, { connectP95Ms: 150.5 }),
      verdict: 'fail',
      value: 150.5,
    },
    {
      name: 'thin log, enough probes: the probes decide',
      o: obs({ requests: 5, connectP95Ms: 900 }, { connectP95Ms: 0.2, probes: 20 }),
      verdict: 'pass',
      value: 0.2,
    },
    {
      name: 'thin log, thin probes',
      o: obs({ requests: 5, connectP95Ms: 900 }, { connectP95Ms: 900, probes: 19 }),
      verdict: 'inconclusive',
      value: null,
    },
    {
      name: 'log without connects and no prober',
      o: noProbes(obs({ requests: 40, connectP95Ms: null })),
      verdict: 'inconclusive',
      value: null,
    },
    {
      name: 'at the threshold passes',
      o: obs({ requests: 40, connectP95Ms: 120 }, { connectP95Ms: 120 }),
      verdict: 'pass',
      value: 120,
    },
  ];
  for (const row of rows) {
    const r = connectP95Gate(svc, row.o, at(15));
    t.equal(r.verdict, row.verdict, `${row.name}: verdict`);
    t.equal(r.value, row.value, `${row.name}: value`);
    t.equal(r.threshold, 120);
  }
  const r = connectP95Gate(svc, obs({ requests: 400, connectP95Ms: 0 }, { connectP95Ms: 150.5, probes: 25 }), at(15));
  t.same(r.detail, { log_p95_ms: 0, probe_p95_ms: 150.5, probes: 25 });
  t.equal(
    describeGate(r),
    'connect_p95 fail: canary connect p95 151 ms > 120 ms over 400 requests (log 0.00 ms, probes 151 ms over 25)',
  );
});

t.test('starved: share under half the weight with enough traffic holds', async (t) => {
  // Weight 20 %: needs 20 × 100 / 20 = 100 attempts in total; fails under 10 %.
  const mk = (canary: number, primary: number) => obs({ requests: canary }, {}, { requests: primary });
  const rows: [string, ServiceObservation, number, Verdict][] = [
    ['share as configured', mk(20, 80), 20, 'pass'],
    ['exactly half the weight passes', mk(10, 90), 20, 'pass'],
    ['ejected by max_fails: 2 %', mk(2, 98), 20, 'fail'],
    ['not enough traffic yet', mk(1, 98), 20, 'inconclusive'],
    ['weight 0: nothing to starve', mk(0, 1000), 0, 'pass'],
    ['no traffic at all', mk(0, 0), 20, 'inconclusive'],
  ];
  for (const [name, o, weight, want] of rows) {
    const r = starvedGate(svc, o, at(weight));
    t.equal(r.verdict, want, name);
    t.equal(r.threshold, weight * STARVED_FRACTION, `${name}: threshold is half the weight`);
  }
  const r = starvedGate(svc, mk(2, 98), at(20));
  t.equal(r.value, 2);
  t.equal(r.minSamples, 100);
  t.equal(
    describeGate(r),
    'starved fail: canary share 2.0 % < 10.0 % over 100 requests (2 of 100 attempts at weight 20 %)',
  );
  t.match(describeGate(starvedGate(svc, mk(20, 80), at(20))), /^starved pass: canary share 20\.0 % ≥ 10\.0 %/);
});

t.test(
  'error_ratio: drains when the sequential test crosses, holds when above threshold without significance',
  async (t) => {
    const rows: [string, Partial<Parameters<typeof pool>[0]>, Verdict][] = [
      ['no attempts', { requests: 0, errors: 0 }, 'inconclusive'],
      ['thin and clean', { requests: 19, errors: 0 }, 'inconclusive'],
      ['clean at min_requests', { requests: 20, errors: 0 }, 'pass'],
      ['at the threshold passes', { requests: 200, errors: 1 }, 'pass'],
      ['a little above the threshold: not significant, holds', { requests: 200, errors: 2 }, 'inconclusive'],
      ['a dead canary drains before min_requests', { requests: 12, errors: 12 }, 'fail'],
      ['50 % errors over 400', { requests: 400, errors: 200 }, 'fail'],
    ];
    for (const [name, canary, want] of rows) {
      const r = errorRatioGate(svc, obs(canary), at(15));
      t.equal(r.verdict, want, name);
      t.equal(r.threshold, 0.005);
      t.type(r.detail?.statistic, 'number', `${name}: the statistic is recorded`);
      t.type(r.detail?.bound, 'number', `${name}: the bound is recorded`);
      t.equal(r.detail?.errors, canary?.errors ?? 0);
    }
    const fail = errorRatioGate(svc, obs({ requests: 400, errors: 200 }), at(15));
    t.ok((fail.detail?.statistic ?? 0) >= (fail.detail?.bound ?? Infinity), 'a fail rests on statistic ≥ bound');
    t.match(
      describeGate(fail),
      /^error_ratio fail: canary 5xx ratio 50\.00 % > 0\.50 % over 400 requests \(200 errors; sequential test \d+\.\d\d ≥ bound \d+\.\d\d vs \d+× threshold\)$/,
    );
    t.match(describeGate(errorRatioGate(svc, obs({ requests: 12, errors: 0 }), at(15))), /12 of 20 requests/);
  },
);

t.test("error_ratio: the bounds are calibrated to the service's own walk", async (t) => {
  // The test service: soaks of 1 s and a 10 s window, so the walk is watched
  // for one window: 10 s of 100 ms series buckets = 100 start points.
  const short = referenceBounds(0.005, 100, 0.01, [2, 6, 100]);
  // The default walk: 48 h + 5 × 15 min in 1 s buckets = 177,300 start points.
  const long = referenceBounds(0.005, 177_300, 0.01, [2, 6, 100]);
  const walked = makeService('gateway', {
    rollout: { ...defaultRollout },
    gates: { ...defaultGates, minRequests: 20 },
  });
  const boundOf = (s: typeof svc, canary: Partial<Parameters<typeof pool>[0]>): [number, number] => {
    const r = errorRatioGate(s, obs(canary), at(15));
    return [r.detail?.bound ?? NaN, r.detail?.multiple ?? NaN];
  };
  for (const [name, s, want] of [
    ['10 s window, 1 s soaks', svc, short],
    ['the default walk', walked, long],
  ] as const) {
    for (const canary of [
      { requests: 100, errors: 0 },
      { requests: 10, errors: 5 },
    ]) {
      const [bound, multiple] = boundOf(s, canary);
      const alt = want.find((a) => a.multiple === multiple);
      t.ok(
        alt !== undefined && Math.abs(bound - alt.bound) < 1e-9,
        `${name}, ${canary.errors} of ${canary.requests}: bound ${bound} of ${multiple}× vs ${alt?.bound}`,
      );
    }
  }
  // A dead canary's 3 attempts reach 3 × ln 100 = 13.8, above the short walk's 100× bound (10.0) and below
  // the default walk's (16.4): the short walk's test crosses, yet the gate waits for MIN_DRAIN_ERRORS (a
  // burst is not a dead canary); the 4th drains both. 2 × ln 100 = 9.2 crosses neither.
  for (const [errors, shortCrossed, shortVerdict, longVerdict] of [
    [2, false, 'inconclusive', 'inconclusive'],
    [3, true, 'inconclusive', 'inconclusive'],
    [4, true, 'fail', 'fail'],
  ] as const) {
    const o = obs({ requests: errors, errors });
    const r = errorRatioGate(svc, o, at(15));
    t.equal(
      (r.detail?.statistic ?? 0) >= (r.detail?.bound ?? Infinity),
      shortCrossed,
      `${errors} of ${errors}: the short walk's test crosses`,
    );
    t.equal(r.verdict, shortVerdict, `${errors} of ${errors}, short walk`);
    t.equal(errorRatioGate(walked, o, at(15)).verdict, longVerdict, `${errors} of ${errors}, default walk`);
  }
  t.equal(MIN_DRAIN_ERRORS, 4);
  // Zero tolerance (threshold 0) keeps its first-error drain.
  const zero = makeService('gateway', { rollout: { ...defaultRollout }, gates: { ...defaultGates, errorRatio: 0 } });
  t.equal(
    errorRatioGate(zero, obs({ requests: 5, errors: 1 }), at(15)).verdict,
    'fail',
    'threshold 0: one error drains',
  );
  // A longer soak raises the bound the gate uses.
  const longer = makeService('gateway', {
    rollout: { ...defaultRollout, sliceSoakMs: 30 * 24 * 3_600_000 },
    gates: { ...defaultGates },
  });
  t.ok(boundOf(longer, { requests: 10, errors: 5 })[0] > boundOf(walked, { requests: 10, errors: 5 })[0]);
});

t.test('error_ratio: the bucket being filled needs a longer run of failures when the canary is busy', async (t) => {
  // The default walk judged on 1 s buckets: 60 good seconds, then the bucket being filled ends in a run of 5xx.
  const walked = makeService('gateway', { rollout: { ...defaultRollout }, gates: { ...defaultGates } });
  const canaryAt = (perS: number, run: number): Parameters<typeof obs>[0] => {
    const series = [
      ...Array.from({ length: 60 }, () => ({ attempts: perS, errors: 0 })),
      { attempts: perS, errors: run, tail: run },
    ];
    return { requests: 61 * perS, errors: run, series };
  };
  // 20 canary attempts/s: runs of 4 count (what 100× needs anyway): the 4th drains.
  t.equal(errorRatioGate(walked, obs(canaryAt(20, 4)), at(15)).verdict, 'fail', '20/s: 4 in a row drain');
  // 1,000/s: 4 in a row happen by chance too often over 177 million attempts; the 5th drains.
  t.equal(errorRatioGate(walked, obs(canaryAt(1000, 4)), at(15)).verdict, 'pass', '1,000/s: 4 in a row do not');
  t.equal(errorRatioGate(walked, obs(canaryAt(1000, 5)), at(15)).verdict, 'fail', '1,000/s: 5 in a row drain');
});

t.test('probe_failure_ratio: over 5 % of max(probes, min_probes) drains', async (t) => {
  const rows: [string, number, number, Verdict][] = [
    ['clean', 40, 0, 'pass'],
    ['1 of 20 = 5 % passes', 20, 1, 'pass'],
    ['2 of 40 = 5 % passes', 40, 2, 'pass'],
    ['3 of 40 fails', 40, 3, 'fail'],
    ['thin and clean', 5, 0, 'inconclusive'],
    ['thin with 1 failure: 1 of 20 at best, undecided', 5, 1, 'inconclusive'],
    ['thin with 2 failures: over 5 % whatever comes next', 3, 2, 'fail'],
  ];
  for (const [name, probes, failures, want] of rows) {
    const r = probeFailureGate(svc, obs({}, { probes, failures }), at(15));
    t.equal(r.verdict, want, name);
    t.equal(r.value, failures / probes, `${name}: value is the plain ratio`);
  }
  t.equal(probeFailureGate(svc, noProbes(obs()), at(15)).verdict, 'inconclusive');
  t.equal(probeFailureGate(svc, noProbes(obs()), at(15)).value, null);
  t.equal(
    describeGate(probeFailureGate(svc, obs({}, { probes: 40, failures: 3 }), at(15))),
    'probe_failure_ratio fail: canary probe failure ratio 7.50 % > 5.00 % over 40 probes (3 failed)',
  );
});

t.test('baseline_p95: canary p95 over factor × max(primary p95, floor) drains', async (t) => {
  const mk = (canary: number | null, primary: number | null, requests = 40) =>
    obs({ requests, responseP95Ms: canary }, {}, { requests, responseP95Ms: primary });
  const rows: [string, ServiceObservation, Verdict, number][] = [
    ['same speed', mk(30, 30), 'pass', 150],
    ['5× exactly passes', mk(150, 30), 'pass', 150],
    ['over 5×', mk(151, 30), 'fail', 150],
    ['sub-ms primary: the floor keeps noise out', mk(40, 0), 'pass', 5 * BASELINE_FLOOR_MS],
    ['sub-ms primary, really slow canary', mk(80, 0), 'fail', 5 * BASELINE_FLOOR_MS],
    ['thin', mk(900, 30, 10), 'inconclusive', 150],
    ['no primary p95', mk(900, null), 'inconclusive', 5 * BASELINE_FLOOR_MS],
    ['no canary p95', mk(null, 30), 'inconclusive', 150],
  ];
  for (const [name, o, want, threshold] of rows) {
    const r = baselineP95Gate(svc, o, at(15));
    t.equal(r.verdict, want, name);
    t.equal(r.threshold, threshold, `${name}: threshold`);
  }
  t.equal(
    describeGate(baselineP95Gate(svc, mk(151, 30), at(15))),
    'baseline_p95 fail: canary p95 151 ms > 150 ms over 40 requests (5 × primary 30 ms)',
  );
  t.equal(baselineP95Gate(svc, undefined, at(15)).verdict, 'inconclusive');
});

t.test('crash_loop: 3 healthy→unhealthy transitions in the window drain', async (t) => {
  const rows: [number, Verdict][] = [
    [0, 'pass'],
    [2, 'pass'],
    [3, 'fail'],
    [7, 'fail'],
  ];
  for (const [n, want] of rows)
    t.equal(crashLoopGate(svc, obs({}, { downTransitions: n }), at(15)).verdict, want, `${n}`);
  t.equal(crashLoopGate(svc, obs({}, { healthy: null }), at(15)).verdict, 'inconclusive', 'before the first probe');
  t.equal(crashLoopGate(svc, noProbes(obs()), at(15)).verdict, 'inconclusive');
  t.equal(
    describeGate(crashLoopGate(svc, obs({}, { downTransitions: 3, probes: 30 }), at(15))),
    'crash_loop fail: canary restarts 3 ≥ 3 over 30 probes',
  );
  t.equal(
    describeGate(crashLoopGate(svc, obs({}, { downTransitions: 1, probes: 30 }), at(15))),
    'crash_loop pass: canary restarts 1 < 3 over 30 probes',
  );
});

t.test('the primary pool does not move canary gates, except as the baseline', async (t) => {
  const o: ServiceObservation = {
    ...obs({ requests: 100 }),
    primary: pool({ requests: 1000, errors: 1000, connectP95Ms: 5000, responseP95Ms: 40 }),
  };
  t.ok(allPass(evaluateGates(svc, o, at(5))));
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
  t.equal(gateNamed([holdPass, drainPass], 'error_ratio'), drainPass);
  t.equal(gateNamed([holdPass], 'ready'), undefined);
});

t.test('passSide: which side of its threshold each gate passes on; formatGateValue in its unit', async (t) => {
  t.equal(passSide('starved'), 'at-least', 'a share at or above the threshold');
  t.equal(passSide('crash_loop'), 'below', 'fewer restarts than the threshold');
  for (const g of ['connect_p95', 'error_ratio', 'probe_failure_ratio', 'baseline_p95'] as const)
    t.equal(passSide(g), 'at-most', `${g}: at most the threshold`);
  const ready = readyGate(svc, obs({}, { ready: false }), at(0));
  t.equal(formatGateValue(ready), 'not 200');
  t.equal(formatGateValue({ ...ready, value: 1 }), '200');
  t.equal(formatGateValue({ ...ready, value: null }), '—');
});

t.test('describeGate reads thin data and unknown values', async (t) => {
  const [, p95] = evaluateGates(svc, noProbes(obs({ requests: 12 })), at(15)) as [GateResult, GateResult];
  t.equal(describeGate(p95), 'connect_p95 inconclusive: canary 12 of 20 requests (log 10 ms)');
  const [, noConnect] = evaluateGates(svc, noProbes(obs({ requests: 30, errors: 0, connectP95Ms: null })), at(15)) as [
    GateResult,
    GateResult,
  ];
  t.equal(describeGate(noConnect), 'connect_p95 inconclusive: canary connect p95 unknown over 30 requests');
  const green = connectP95Gate(svc, noProbes(obs({ requests: 40, connectP95Ms: 30 })), at(15));
  t.equal(describeGate(green), 'connect_p95 pass: canary connect p95 30 ms ≤ 120 ms over 40 requests (log 30 ms)');
});

t.test(
  'describeGate never prints undefined or null when detail is missing (histories written before it existed)',
  async (t) => {
    for (const r of evaluateGates(svc, obs({ requests: 40 }), at(15))) {
      const details: (Record<string, number | null> | undefined)[] = [
        undefined,
        {},
        { statistic: 1, bound: 2 },
        { probe_p95_ms: 1 },
        { primary_p95_ms: 5 },
      ];
      for (const detail of details) {
        const bare: GateResult = { ...r };
        if (detail === undefined) delete bare.detail;
        else bare.detail = detail;
        const text = describeGate(bare);
        t.notMatch(text, /undefined|null|NaN/, `${r.gate} with detail ${JSON.stringify(detail)}: ${text}`);
      }
    }
  },
);
