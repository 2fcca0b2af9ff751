import t from 'tap';
import fc from 'fast-check';
import assert from 'node:assert';
import { ManualClock } from '../../src/clock.js';
import { mergeSnapshots, parseObservationSnapshot } from '../../src/fleet/snapshot.js';
import { LOG_LINE_RESULTS, Observer } from '../../src/observe/aggregate.js';
import { parseLine } from '../../src/observe/parse.js';
import { config, gatewayConfig, logLine, service, stateSince } from '../fixtures/observe/config.js';
import type { PoolObservation } from '../../src/rollout/types.js';

const NOW = 1_763_744_700_000;
const PRIMARY = '127.0.0.1:18789';
const CANARY = '127.0.0.1:18890';

t.test('a canary attempt retried on the primary counts against the canary though the client got 200', async (t) => {
  const cfg = gatewayConfig();
  const obs = new Observer(cfg);
  const line = logLine({
    atMs: NOW - 1000,
    status: 200,
    addr: `${CANARY}, ${PRIMARY}`,
    ustatus: '502, 200',
    connect: '-, 0.001',
    response: '0.000, 0.040',
  });
  t.equal(obs.addLine(line, NOW), 'parsed');
  const o = obs.observations(cfg, stateSince({ gateway: 0 }), NOW).gateway;
  t.same(
    { ...o?.canary, series: [] },
    { requests: 1, errors: 1, connectP95Ms: null, responseP95Ms: null, series: [] },
    'refused: an error, no connect sample, and its logged 0.000 is no response-time sample',
  );
  t.equal(o?.primary.requests, 1);
  t.equal(o?.primary.errors, 0);
  t.ok(Math.abs((o?.primary.connectP95Ms as number) - 1) <= 0.01, 'primary connect 1 ms');
  t.ok(Math.abs((o?.primary.responseP95Ms as number) - 40) <= 0.4, 'primary response 40 ms');
});

t.test('response p95 per pool: the baseline gate input (canary slow against the primary)', async (t) => {
  const cfg = gatewayConfig({ windowMs: 60_000 });
  const obs = new Observer(cfg);
  const lines: string[] = [];
  for (let i = 0; i < 100; i++) {
    const at = NOW - 50_000 + i * 400;
    lines.push(logLine({ atMs: at, addr: PRIMARY, ustatus: '200', connect: '0.001', response: '0.020' }));
    // The canary answers in 0.300 s, 1 in 10 only after the client gave up at 1.5 s (499, status -).
    const gaveUp = i % 10 === 0;
    lines.push(
      logLine({
        atMs: at,
        status: gaveUp ? 499 : 200,
        addr: CANARY,
        ustatus: gaveUp ? '-' : '200',
        connect: '0.001',
        header: gaveUp ? '-' : '0.290',
        response: gaveUp ? '1.500' : '0.300',
      }),
    );
  }
  obs.addLines(lines, NOW);
  const o = obs.observations(cfg, stateSince({ gateway: 0 }), NOW).gateway;
  t.ok(Math.abs((o?.primary.responseP95Ms as number) - 20) <= 0.2, `primary p95 ${o?.primary.responseP95Ms}`);
  t.ok(
    Math.abs((o?.canary.responseP95Ms as number) - 1500) <= 15,
    `canary p95 ${o?.canary.responseP95Ms}: an abandoned attempt counts with the time it took`,
  );
  t.equal(o?.canary.errors, 0, 'the hang-ups are not errors of the canary');
  const per = obs.serverObservations(cfg, stateSince({ gateway: 0 }), NOW).gateway ?? [];
  t.same(
    per.map((s) => s.responseP95Ms),
    [o?.primary.responseP95Ms, o?.canary.responseP95Ms],
    'per server too',
  );
});

t.test('series: per bucket over [from, now], cut at since, summed over a pool', async (t) => {
  const P2 = '127.0.0.1:18790';
  // The default 15 min window: 1 s series buckets (15 s sketch buckets).
  const cfg = config([service('gateway', [PRIMARY, P2], [CANARY], { windowMs: 15 * 60_000 })]);
  const obs = new Observer(cfg);
  const base = Math.floor(NOW / 1000) * 1000;
  const now = base + 500;
  obs.addLines(
    [
      logLine({ atMs: base - 5_000, addr: PRIMARY, ustatus: '200', connect: '0.001' }),
      logLine({ atMs: base - 5_000, addr: P2, ustatus: '500', connect: '0.001', status: 500 }),
      logLine({ atMs: base - 3_000, addr: P2, ustatus: '200', connect: '0.001' }),
      logLine({ atMs: base - 3_000, addr: `${CANARY}, ${PRIMARY}`, ustatus: '502, 200', connect: '-, 0.001' }),
      logLine({ atMs: base, addr: CANARY, ustatus: '200', connect: '0.001' }),
    ],
    now,
  );
  const since = stateSince({ gateway: base - 5_000 });
  const o = obs.observations(cfg, since, now).gateway;
  t.same(
    o?.primary.series.map((b) => [b.attempts, b.errors]),
    [
      [2, 1],
      [0, 0],
      [2, 0],
      [0, 0],
      [0, 0],
      [0, 0],
    ],
    'two primary servers summed per second, oldest first, empty seconds as zeros',
  );
  t.same(
    o?.canary.series.map((b) => [b.attempts, b.errors]),
    [
      [0, 0],
      [0, 0],
      [1, 1],
      [0, 0],
      [0, 0],
      [1, 0],
    ],
  );
  const cut = obs.observations(cfg, stateSince({ gateway: base - 3_000 }), now).gateway;
  t.equal(cut?.primary.series.length, 4, 'since cuts the span: seconds -3..0');
  t.same(cut?.primary.series[0], { attempts: 2, errors: 0 });
  const full = obs.observations(cfg, stateSince({ gateway: 0 }), now).gateway;
  t.equal(full?.canary.series.length, 901, 'the window: [now - 15 min, now] overlaps 901 one-second buckets');
  t.equal(
    full?.canary.series.reduce((n, b) => n + b.attempts, 0),
    full?.canary.requests,
    'the series sums to the attempts',
  );
  const per = obs.serverObservations(cfg, since, now).gateway ?? [];
  t.same(
    per.map((s) => s.series.map((b) => b.attempts)),
    [
      [1, 0, 1, 0, 0, 0],
      [1, 0, 1, 0, 0, 0],
      [0, 0, 1, 0, 0, 1],
    ],
    'each server its own series',
  );
});

t.test('a client hang-up (499, upstream status -) is not a canary error; a missing status otherwise is', async (t) => {
  const cfg = gatewayConfig();
  const obs = new Observer(cfg);
  obs.addLine(logLine({ atMs: NOW - 1000, status: 499, addr: CANARY, ustatus: '-', connect: '0.001' }), NOW);
  obs.addLine(logLine({ atMs: NOW - 900, status: 502, addr: CANARY, ustatus: '-', connect: '0.001' }), NOW);
  obs.addLine(
    logLine({ atMs: NOW - 800, status: 499, addr: `${CANARY}, ${PRIMARY}`, ustatus: '-, -', connect: '-, 0.001' }),
    NOW,
  );
  const o = obs.observations(cfg, stateSince({ gateway: 0 }), NOW).gateway;
  t.equal(o?.canary.requests, 3);
  t.equal(
    o?.canary.errors,
    2,
    'the 502 line and the canary attempt retried before the hang-up count; the hang-up alone does not',
  );
  t.equal(o?.primary.errors, 0, 'the primary attempt the client abandoned is not an error');
});

t.test('line counters: every line counted exactly once by result', async (t) => {
  const cfg = gatewayConfig();
  const clock = new ManualClock(NOW);
  const obs = new Observer(cfg, { clock });
  const lines = [
    logLine({ atMs: NOW, addr: PRIMARY, ustatus: '200', connect: '0.000' }),
    logLine({ atMs: NOW, addr: CANARY, ustatus: '500', connect: '0.002', status: 500 }),
    logLine({ atMs: NOW, upstream: '', addr: '', ustatus: '', connect: '' }), // nginx answered itself
    logLine({ atMs: NOW, addr: 'gateway', ustatus: '502', connect: '-', status: 502 }), // no live server
    logLine({ atMs: NOW, upstream: 'other', addr: '10.0.0.9:80', ustatus: '200', connect: '0.001' }),
    logLine({ atMs: NOW, addr: `10.0.0.9:80, ${CANARY}`, ustatus: '502, 200', connect: '-, 0.001' }),
    '',
    'garbage',
    '{"msec":"1"',
    logLine({ atMs: NOW - 16 * 60_000, addr: PRIMARY, ustatus: '200', connect: '0.000' }), // outside the window
  ];
  obs.addLines(lines);
  const counts = obs.lineCounts();
  t.same(counts, { parsed: 4, invalid: 3, unattributed: 3 });
  t.equal(
    LOG_LINE_RESULTS.reduce((n, r) => n + counts[r], 0),
    lines.length,
    'parsed + invalid + unattributed = lines',
  );
  t.same(obs.attemptCounts(), { counted: 3, unattributed: 3, dropped: 1 });
  const o = obs.observations(cfg, stateSince({}), NOW).gateway;
  t.same(
    [o?.primary.requests, o?.canary.requests, o?.canary.errors],
    [1, 2, 1],
    'the attributable attempt of a partly unattributed line still counts',
  );
  counts.parsed = 999;
  t.equal(obs.lineCounts().parsed, 4, 'lineCounts returns a copy');
});

t.test('only traffic since the live weight changed is judged: from = max(now - window, since)', async (t) => {
  const cfg = gatewayConfig({ windowMs: 60_000 }); // 1 s sketch buckets
  const obs = new Observer(cfg);
  const lines: string[] = [];
  for (let s = 1; s <= 50; s++)
    lines.push(logLine({ atMs: NOW - s * 1000, addr: CANARY, ustatus: '500', connect: '0.001' }));
  obs.addLines(lines, NOW);
  const all = obs.observations(cfg, stateSince({ gateway: 0 }), NOW).gateway?.canary;
  t.equal(all?.requests, 50, 'since long ago: the whole window');
  const recent = obs.observations(cfg, stateSince({ gateway: NOW - 10_000 }), NOW).gateway?.canary;
  t.equal(recent?.requests, 10, 'since 10 s ago: seconds 1..10 only');
  const none = obs.observations(cfg, stateSince({ gateway: NOW + 1 }), NOW).gateway?.canary;
  t.equal(none?.requests, 0);
  const later = obs.observations(cfg, stateSince({ gateway: 0 }), NOW + 30_000).gateway?.canary;
  t.equal(later?.requests, 30, 'the window slides: 30 s later only seconds 1..30 before NOW remain');
});

t.test('a service without windows, or without servers in a pool, observes zeros', async (t) => {
  const cfg = config([service('lonely', ['127.0.0.1:7100'], [])]);
  const obs = new Observer(cfg);
  obs.addLine(
    logLine({ atMs: NOW, upstream: 'lonely', addr: '127.0.0.1:7100', ustatus: '200', connect: '0.001' }),
    NOW,
  );
  const bigger = config([...cfg.services, service('fresh', ['127.0.0.1:7200'], ['127.0.0.1:7201'])]);
  const o = obs.observations(bigger, stateSince({}), NOW);
  const none = { requests: 0, errors: 0, connectP95Ms: null, responseP95Ms: null, series: [] };
  t.same(o.lonely?.canary, none, 'a pool without servers: no series');
  t.equal(o.lonely?.primary.requests, 1);
  t.ok((o.lonely?.primary.series.length ?? 0) > 0);
  t.same(o.fresh, { primary: none, canary: none });
  o.fresh!.primary.requests = 5;
  o.fresh!.primary.series.push({ attempts: 1, errors: 1 });
  const again = obs.observations(bigger, stateSince({}), NOW).fresh;
  t.equal(again?.primary.requests, 0, 'fresh objects each time');
  t.same(again?.primary.series, [], 'and fresh series arrays');
  t.not(again?.primary.series, again?.canary.series);
});

t.test('per-server breakdown, primary first', async (t) => {
  const cfg = config([service('gateway', ['127.0.0.1:1001', '127.0.0.1:1002'], ['127.0.0.1:1003'])]);
  const obs = new Observer(cfg);
  obs.addLines(
    [
      logLine({ atMs: NOW, addr: '127.0.0.1:1003, 127.0.0.1:1001', ustatus: '502, 200', connect: '-, 0.004' }),
      logLine({ atMs: NOW, addr: '127.0.0.1:1002', ustatus: '200', connect: '0.002' }),
      logLine({ atMs: NOW, addr: '127.0.0.1:1002', ustatus: '503', connect: '0.002', status: 503 }),
    ],
    NOW,
  );
  const per = obs.serverObservations(cfg, stateSince({ gateway: 0 }), NOW).gateway ?? [];
  t.same(
    per.map((s) => [s.pool, s.server, s.requests, s.errors]),
    [
      ['primary', '127.0.0.1:1001', 1, 0],
      ['primary', '127.0.0.1:1002', 2, 1],
      ['canary', '127.0.0.1:1003', 1, 1],
    ],
  );
  const pools = obs.observations(cfg, stateSince({ gateway: 0 }), NOW).gateway;
  t.equal(pools?.primary.requests, per[0]!.requests + per[1]!.requests, 'the pool is the sum of its servers');
  const other = config([service('other', ['127.0.0.1:9'], []), ...cfg.services]);
  t.same(Object.keys(obs.serverObservations(other, stateSince({}), NOW)), ['other', 'gateway']);
  t.same(obs.serverObservations(other, stateSince({}), NOW).other, []);
});

t.test('reconfigure keeps the windows of servers that still exist', async (t) => {
  const cfg = config([service('gateway', ['127.0.0.1:1001'], ['127.0.0.1:1003', '127.0.0.1:1004'])]);
  const obs = new Observer(cfg);
  const feed = (): void =>
    obs.addLines(
      [
        logLine({ atMs: NOW - 1000, addr: '127.0.0.1:1001', ustatus: '200', connect: '0.001' }),
        logLine({ atMs: NOW - 1000, addr: '127.0.0.1:1003', ustatus: '500', connect: '0.001' }),
        logLine({ atMs: NOW - 1000, addr: '127.0.0.1:1004', ustatus: '200', connect: '0.001' }),
      ],
      NOW,
    );
  feed();
  // 1004 leaves the canary pool, 1005 joins it; the window shrinks to 1 min.
  const next = config([
    service('gateway', ['127.0.0.1:1001'], ['127.0.0.1:1003', '127.0.0.1:1005'], { windowMs: 60_000 }),
  ]);
  obs.reconfigure(next);
  const per = obs.serverObservations(next, stateSince({ gateway: 0 }), NOW).gateway ?? [];
  t.same(
    per.map((s) => [s.server, s.requests, s.errors]),
    [
      ['127.0.0.1:1001', 1, 0],
      ['127.0.0.1:1003', 1, 1],
      ['127.0.0.1:1005', 0, 0],
    ],
    'kept servers keep their data (re-bucketed to the new window), the new one starts empty',
  );
  t.equal(
    obs.addLine(logLine({ atMs: NOW, addr: '127.0.0.1:1004', ustatus: '200', connect: '0' }), NOW),
    'unattributed',
  );
  obs.reconfigure(next);
  t.equal(obs.observations(next, stateSince({}), NOW).gateway?.canary.errors, 1, 'same window length: kept as is');
  t.same(obs.lineCounts(), { parsed: 3, invalid: 0, unattributed: 1 }, 'counters survive a reload');
});

t.test('addLines reads the clock once per batch when no now is given', async (t) => {
  const clock = new ManualClock(NOW);
  const cfg = gatewayConfig({ windowMs: 60_000 });
  const obs = new Observer(cfg, { clock });
  const future = logLine({ atMs: NOW + 5000, addr: PRIMARY, ustatus: '200', connect: '0' });
  obs.addLines([future]);
  t.same(obs.attemptCounts(), { counted: 0, unattributed: 0, dropped: 1 }, 'five seconds ahead of the clock: dropped');
  clock.advance(5000);
  obs.addLines([future]);
  t.equal(obs.attemptCounts().counted, 1);
});

t.test('snapshots: the span of observations, mergeable; one host merged gives its observations back', async (t) => {
  const P2 = '127.0.0.1:18790';
  const cfg = config([
    service('gateway', [PRIMARY, P2], [CANARY], { windowMs: 60_000 }), // 1 s sketch buckets, 100 ms series buckets
    service('lonely', ['127.0.0.1:7100'], []),
  ]);
  const obs = new Observer(cfg);
  const base = Math.floor(NOW / 1000) * 1000;
  const now = base + 500;
  const lines: string[] = [];
  for (let s = 0; s < 70; s++) {
    const at = base - s * 1000;
    const slow = s % 7 === 0;
    lines.push(logLine({ atMs: at, addr: PRIMARY, ustatus: '200', connect: '0.001', response: '0.020' }));
    lines.push(logLine({ atMs: at, addr: P2, ustatus: s % 5 === 0 ? '500' : '200', connect: '0.002', status: 500 }));
    lines.push(
      logLine({ atMs: at, addr: CANARY, ustatus: s % 3 === 0 ? '502' : '200', connect: slow ? '0.300' : '0.004' }),
    );
  }
  lines.push(logLine({ atMs: base, upstream: 'lonely', addr: '127.0.0.1:7100', ustatus: '200', connect: '0.001' }));
  obs.addLines(lines, now);
  const bigger = config([...cfg.services, service('fresh', ['127.0.0.1:7200'], ['127.0.0.1:7201'])]);
  for (const since of [0, base - 20_000, base - 3_000, now + 1]) {
    const state = stateSince({ gateway: since, lonely: since });
    const snaps = obs.snapshots(bigger, state, now);
    t.same(
      mergeSnapshots([snaps]),
      obs.observations(bigger, state, now),
      `since ${since - base} ms: merged snapshots = observations`,
    );
    const parsed = parseObservationSnapshot(JSON.parse(JSON.stringify(snaps)));
    t.ok(parsed.ok, parsed.ok ? 'publishable as is' : parsed.error);
  }
  const snaps = obs.snapshots(bigger, stateSince({ gateway: base - 3_000 }), now);
  const gw = snaps.gateway?.primary;
  t.equal(gw?.widthMs, 100, 'the series width of a 60 s window (its sketch buckets are 1 s)');
  t.equal(gw?.seriesStartMs, base - 3_000, 'the series starts at the bucket holding since');
  t.same(
    gw?.series.map((b) => b.attempts),
    Array.from({ length: 36 }, (_, i) => (i % 10 === 0 ? 2 : 0)),
    '[base − 3 s, base + 0.5 s] in 100 ms buckets: two attempts at the start of each second',
  );
  t.same(
    snaps.lonely?.canary,
    {
      requests: 0,
      errors: 0,
      widthMs: 1000,
      seriesStartMs: Math.floor(now / 1000) * 1000,
      series: [],
      connect: null,
      response: null,
    },
    'a pool without servers: an empty snapshot on the service’s grid',
  );
  t.equal(snaps.fresh?.primary.requests, 0, 'a service without windows: empty snapshots');
  t.equal(snaps.fresh?.primary.widthMs, 1000, 'the series width of the default 15 min window');

  // Two hosts seeing the same traffic: the merge is what one window fed both hosts' lines observes.
  const state = stateSince({ gateway: base - 3_000 });
  const both = new Observer(cfg);
  both.addLines([...lines, ...lines], now);
  const two = mergeSnapshots([obs.snapshots(bigger, state, now), obs.snapshots(bigger, state, now)]).gateway;
  // Except the trailing failure runs: two hosts filled each bucket, so the merge cannot know their order.
  const untailed = (o: PoolObservation | undefined): unknown =>
    o && { ...o, series: o.series.map((b) => ({ attempts: b.attempts, errors: b.errors })) };
  const one = both.observations(bigger, state, now).gateway;
  t.same(untailed(two?.canary), untailed(one?.canary));
  t.same(untailed(two?.primary), untailed(one?.primary));
  t.ok(
    one?.canary.series.some((b) => (b.tail ?? 0) > 0) && two?.canary.series.every((b) => b.tail === undefined),
    'one window keeps its trailing runs; the merge of two hosts has none',
  );
  t.equal(two?.canary.requests, 8);
  t.ok(
    Math.abs((two?.canary.connectP95Ms ?? 0) - 300) <= 3,
    'the p95 of the 8 samples (rank 0.95 × 7 falls on a 300 ms one), not the 4 ms one host reports',
  );
  t.ok(Math.abs((obs.observations(bigger, state, now).gateway?.canary.connectP95Ms ?? 0) - 4) < 0.1);
});

t.test(
  'addLine, addLines, addBytes and the reference path (parseLine + addRecord) count and charge alike',
  async (t) => {
    // Shared addresses (picked by the upstream), IPv6, a unix socket (non-ASCII too), localhost, unknown ones.
    const cfg = config([
      service('alpha', ['127.0.0.1:7000', '[::1]:7003'], ['127.0.0.1:7001', 'unix:/run/é.sock'], { windowMs: 60_000 }),
      service('beta', ['127.0.0.1:7000', 'localhost:7004'], ['127.0.0.1:7002', 'unix:/run/b.sock'], {
        windowMs: 60_000,
      }),
    ]);
    const addr = fc.constantFrom(
      '127.0.0.1:7000',
      '127.0.0.1:7001',
      '127.0.0.1:7002',
      '[::1]:7003',
      '[::1]:7004',
      '127.0.0.1:7004',
      'unix:/run/é.sock',
      'unix:/run/b.sock',
      '10.0.0.9:80',
      'alpha',
      '-',
      '',
    );
    const time = fc.constantFrom('-', '', '0.000', '0.001', '0.250', '1.5', 'x');
    const status = fc.constantFrom('200', '404', '499', '500', '502', '504', '-', '', '2x0');
    const sep = fc.constantFrom(', ', ' : ');
    const list = <T extends string>(item: fc.Arbitrary<T>, n: number): fc.Arbitrary<string> =>
      fc
        .tuple(fc.array(item, { minLength: n, maxLength: n }), fc.array(sep, { minLength: n, maxLength: n }))
        .map(([items, seps]) => items.map((x, i) => (i === 0 ? x : `${seps[i] ?? ', '}${x}`)).join(''));
    const line = fc
      .record({
        n: fc.integer({ min: 1, max: 3 }),
        atMs: fc.integer({ min: NOW - 90_000, max: NOW + 5000 }),
        status: fc.constantFrom(200, 404, 499, 502),
        upstream: fc.constantFrom('alpha', 'beta_primary', 'beta_canary', 'gamma', ''),
        escape: fc.boolean(),
        garbage: fc.constantFrom('', '', '', '', '', 'x', '\n'),
      })
      .chain((f) =>
        fc
          .record({
            addr: list(addr, f.n),
            ustatus: list(status, f.n),
            connect: list(time, f.n),
            response: list(time, f.n),
          })
          .map((l) => {
            const text = logLine({ ...f, ...l, header: f.escape ? 'a"b' : '-' });
            // An escaped value, or a line that is not one at all, takes the reference path in every variant.
            return f.garbage === 'x' ? text.slice(0, 40) : f.garbage === '\n' ? '' : text;
          }),
      );
    const state = stateSince({ alpha: NOW - 60_000, beta: NOW - 30_000 });
    let charged = 0;
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 40 }), fc.nat(), (lines, cut) => {
        const one = new Observer(cfg);
        const many = new Observer(cfg);
        const bytes = new Observer(cfg);
        const ref = new Observer(cfg);
        for (const l of lines) {
          const rec = parseLine(l);
          const want = rec === null ? 'invalid' : ref.addRecord(rec, NOW);
          // An invalid line is counted by addLine alone; a leading space keeps it off the fast path (JSON.parse says the same).
          if (rec === null) ref.addLine(` ${l}`, NOW);
          assert.equal(one.addLine(l, NOW), want, l);
        }
        many.addLines(lines, NOW);
        // Two batches cut anywhere between lines, inside a buffer with bytes around them, as the follower hands them.
        const k = cut % (lines.length + 1);
        for (const part of [lines.slice(0, k), lines.slice(k)]) {
          if (part.length === 0) continue;
          const body = Buffer.from(part.join('\n'));
          bytes.addBytes(Buffer.concat([Buffer.from('junk\n'), body, Buffer.from('\nmore')]), 5, 5 + body.length, NOW);
        }
        const view = (o: Observer): unknown => [
          o.lineCounts(),
          o.attemptCounts(),
          o.observations(cfg, state, NOW),
          o.serverObservations(cfg, state, NOW),
        ];
        charged += ref.attemptCounts().counted;
        assert.deepStrictEqual(view(one), view(ref));
        assert.deepStrictEqual(view(many), view(ref));
        assert.deepStrictEqual(view(bytes), view(ref));
      }),
      { numRuns: 400, seed: 20_261_202 },
    );
    t.ok(charged > 1000, `${charged} attempts charged to windows (the property is not vacuous)`);
  },
);
