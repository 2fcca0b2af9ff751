/**
 * The sampled access log on the sidecar's side (docs/design.md "Sampled access
 * log"): the `sample` field is read alike by both parse paths, a sampled
 * success counts 100 / sample requests in the counts and the sketches, a
 * failure counts 1 and is a failure run of its own, and a line logged with
 * `sample` 0 (the `access_log` line lacks `if=`) makes every line count 1.
 */
import t from 'tap';
import fc from 'fast-check';
import { configuredWeight, Observer, UNFILTERED_HOLD_MS } from '../../src/observe/aggregate.js';
import type { Config } from '../../src/config/types.js';
import { mergeSnapshots, parseObservationSnapshot, type ObservationSnapshot } from '../../src/fleet/snapshot.js';
import { LineCursor, parseLine, parseSample } from '../../src/observe/parse.js';
import { ServerWindow } from '../../src/observe/window.js';
import { gatewayConfig, logLine, stateSince } from '../fixtures/observe/config.js';

const NOW = 1_763_744_700_000;
const PRIMARY = '127.0.0.1:18789';
const CANARY = '127.0.0.1:18890';

/** The cursor's reading of `line` (ASCII), or null when it leaves the line to parseLine. */
function cursorSample(line: string): number | null {
  const c = new LineCursor();
  const buf = Buffer.from(line, 'latin1');
  return c.read(buf, 0, buf.length) === 'ok' ? c.sample : null;
}

t.test('parseSample: 0–100 as written; empty, junk or > 100 stand for themselves (100)', async (t) => {
  t.equal(parseSample('20'), 20);
  t.equal(parseSample('0'), 0);
  t.equal(parseSample('100'), 100);
  t.equal(parseSample('007'), 7);
  for (const s of ['', '-', '101', '1000', '2.5', 'x', ' 20']) t.equal(parseSample(s), 100, JSON.stringify(s));
});

t.test('both parse paths read `sample` alike, and a line without it is 100', async (t) => {
  const base = { atMs: NOW, addr: CANARY, ustatus: '200', connect: '0.001' };
  const old = logLine(base);
  t.equal(parseLine(old)?.sample, undefined, 'the format before sampling: no sample (100)');
  t.equal(cursorSample(old), 100);
  const sampled = logLine({ ...base, sample: '20' });
  t.equal(parseLine(sampled)?.sample, 20);
  t.equal(cursorSample(sampled), 20);
  const other = sampled.replace('"sample"', '"other"');
  t.equal(cursorSample(other), null, 'another key after request_time: left to parseLine');
  t.equal(parseLine(other)?.sample, undefined, 'and parseLine reads it as 100 (no sample)');
  t.equal(cursorSample(`${sampled.slice(0, -2)}`), null, 'a cut line is not read by the cursor');
  fc.assert(
    fc.property(fc.oneof(fc.integer({ min: 0, max: 999 }).map(String), fc.string({ maxLength: 4 })), (s) => {
      const line = logLine({ ...base, sample: s });
      const ref = parseLine(line)?.sample;
      const cur = cursorSample(line);
      const want = parseSample(s);
      return (ref ?? 100) === want && (ref === undefined) === (want === 100) && (cur === null || cur === want);
    }),
  );
});

t.test(
  'ServerWindow.add: a weight counts in attempts and sketches; a success of any weight ends the failure run',
  async (t) => {
    const w = new ServerWindow(60_000);
    for (let i = 0; i < 10; i++) w.add(NOW - 5000, false, 1, 10, NOW, 5);
    w.add(NOW - 5000, false, 100, 1000, NOW, 1);
    w.add(NOW - 4000, true, 1, 10, NOW);
    w.add(NOW - 4000, true, 1, 10, NOW);
    w.add(NOW - 4000, false, 1, 10, NOW, 5);
    w.add(NOW - 4000, true, 1, 10, NOW);
    const o = w.observe(NOW - 60_000, NOW);
    t.equal(
      o.requests,
      50 + 1 + 3 + 5,
      'ten sampled successes of weight 5, one of weight 1, three failures, one more of 5',
    );
    t.equal(o.errors, 3);
    t.ok(Math.abs((o.connectP95Ms as number) - 1) <= 0.02, `connect p95 ${o.connectP95Ms}: 1 ms weighs 58 of 59`);
    const bucket = o.series.find((b) => b.errors > 0);
    t.same(bucket, { attempts: 8, errors: 3, tail: 1 }, 'the success of weight 5 between ended the run of two');
  },
);

t.test('the Observer weighs sampled successes 100 / sample, failures 1', async (t) => {
  const cfg = gatewayConfig({ windowMs: 60_000 });
  const obs = new Observer(cfg);
  const at = NOW - 2000;
  for (let i = 0; i < 4; i++)
    obs.addLine(logLine({ atMs: at, addr: CANARY, ustatus: '200', connect: '0.001', sample: '20' }), NOW);
  obs.addLine(logLine({ atMs: at, status: 502, addr: CANARY, ustatus: '502', connect: '-', sample: '100' }), NOW);
  // A success that nginx (wrongly) logged with a sampled weight: a failure is always weight 1.
  obs.addLine(logLine({ atMs: at, status: 500, addr: CANARY, ustatus: '500', connect: '0.001', sample: '20' }), NOW);
  obs.addLine(logLine({ atMs: at, addr: PRIMARY, ustatus: '200', connect: '0.001', sample: '25' }), NOW);
  obs.addLine(logLine({ atMs: at, addr: PRIMARY, ustatus: '200', connect: '0.001' }), NOW);
  const o = obs.observations(cfg, stateSince({ gateway: 0 }), NOW).gateway;
  t.equal(o?.canary.requests, 4 * 5 + 2, 'canary: four successes of 5, two failures of 1');
  t.equal(o?.canary.errors, 2);
  t.equal(o?.primary.requests, 4 + 1, 'primary: one of 4 (sample 25), one without the field');
  t.equal(obs.unfilteredLines(), 0);
});

t.test(
  'a line logged with sample 0 (no `if=`) makes every line count 1 for UNFILTERED_HOLD_MS of log time',
  async (t) => {
    const cfg = gatewayConfig({ windowMs: 10 * 60_000 });
    const obs = new Observer(cfg);
    const t0 = NOW - 5 * 60_000;
    const ok = (atMs: number, sample: string): string =>
      logLine({ atMs, addr: CANARY, ustatus: '200', connect: '0.001', sample });
    obs.addLine(ok(t0, '20'), NOW); // before any 0: weight 5
    obs.addLine(ok(t0 + 1, '0'), NOW); // 1
    obs.addLine(ok(t0 + 2, '20'), NOW); // 1: inside the hold
    obs.addLine(ok(t0 + UNFILTERED_HOLD_MS - 1, '20'), NOW); // 1
    obs.addLine(ok(t0 + 1 + UNFILTERED_HOLD_MS, '20'), NOW); // 5 again: the hold ran out
    const o = obs.observations(cfg, stateSince({ gateway: 0 }), NOW).gateway;
    t.equal(o?.canary.requests, 5 + 1 + 1 + 1 + 5);
    t.equal(obs.unfilteredLines(), 1);
    // The reference path (a non-ASCII line goes through parseLine) counts the same.
    const ref = new Observer(cfg);
    const nonAscii = (line: string): string => line.replace('}', ',"é":"x"}');
    for (const [i, line] of [ok(t0, '20'), ok(t0 + 1, '0'), ok(t0 + 2, '20')].entries())
      t.equal(ref.addLine(nonAscii(line), NOW), 'parsed', `reference line ${i}`);
    t.equal(ref.observations(cfg, stateSince({ gateway: 0 }), NOW).gateway?.canary.requests, 5 + 1 + 1);
    t.equal(ref.unfilteredLines(), 1);
  },
);

t.test('observations carry the configured sample weight even before a sampled line is counted', async (t) => {
  const plain = gatewayConfig({ windowMs: 60_000 });
  const cfg = { ...plain, nginx: { ...plain.nginx, accessLogSample: 20 } };
  t.equal(configuredWeight(cfg), 5);
  t.equal(configuredWeight(plain), 1);
  const obs = new Observer(cfg);
  // Only failures so far (just after a weight change): the bounds must still be those of a 20 % log.
  obs.addLine(
    logLine({ atMs: NOW - 1000, status: 502, addr: CANARY, ustatus: '502', connect: '-', sample: '100' }),
    NOW,
  );
  const o = obs.observations(cfg, stateSince({ gateway: 0 }), NOW).gateway;
  t.equal(o?.canary.sampleWeight, 5, 'canary: 5 from the config');
  t.equal(o?.primary.sampleWeight, 5, 'primary (no line at all): 5 from the config');
  const snap = obs.snapshots(cfg, stateSince({ gateway: 0 }), NOW).gateway;
  t.equal(snap?.canary.sampleWeight, 5, 'the fleet snapshot carries it too');
  const unsampled = new Observer(plain).observations(plain, stateSince({ gateway: 0 }), NOW).gateway;
  t.equal(unsampled?.canary.sampleWeight, undefined, 'at 100 the field is absent (the observation as before sampling)');
});

t.test('fleet snapshots: sampleWeight is an integer 2–100, round-trips, and the merge keeps the largest', async (t) => {
  const plain = gatewayConfig({ windowMs: 60_000 });
  const at = (s: number): Config => ({ ...plain, nginx: { ...plain.nginx, accessLogSample: s } });
  const host = (s: number): ObservationSnapshot => {
    const obs = new Observer(at(s));
    obs.addLine(logLine({ atMs: NOW - 1000, addr: CANARY, ustatus: '200', connect: '0.001', sample: String(s) }), NOW);
    const snap = obs.snapshots(at(s), stateSince({ gateway: 0 }), NOW);
    return JSON.parse(JSON.stringify(snap)) as ObservationSnapshot;
  };
  const a = host(20);
  const b = host(50);
  t.equal(a.gateway?.canary.sampleWeight, 5);
  t.equal(b.gateway?.canary.sampleWeight, 2);
  t.ok(parseObservationSnapshot(a).ok, 'a sampled host publishes a snapshot the leader reads');
  const merged = mergeSnapshots([a, b]).gateway;
  t.equal(merged?.canary.sampleWeight, 5, 'the merge keeps the largest weight');
  t.equal(merged?.canary.requests, 5 + 2);
  const unsampled = JSON.parse(
    JSON.stringify(new Observer(plain).snapshots(plain, stateSince({ gateway: 0 }), NOW)),
  ) as ObservationSnapshot;
  t.ok(
    unsampled.gateway !== undefined && !('sampleWeight' in unsampled.gateway.canary),
    'unsampled: the field is absent (older leaders read it)',
  );
  for (const bad of [1, 3.5, 101]) {
    const doc = JSON.parse(JSON.stringify(a)) as ObservationSnapshot;
    if (doc.gateway) doc.gateway.canary.sampleWeight = bad;
    const r = parseObservationSnapshot(doc);
    t.notOk(r.ok, `sampleWeight ${bad} refused${r.ok ? '' : `: ${r.error}`}`);
  }
});
