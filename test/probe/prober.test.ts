import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo, Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ManualClock } from '../../src/clock.js';
import type { Config } from '../../src/config/types.js';
import { Backend } from '../../src/demo/backend.js';
import {
  MAX_CONNECT_TIMEOUT_MS,
  Prober,
  probe,
  probeErrorReason,
  type ProberOptions,
  type ProbeReport,
} from '../../src/probe/prober.js';
import { WaitTimeoutError, waitFor } from '../../src/util/wait.js';
import { probeConfigFor } from '../fixtures/probe/config.js';

/** A started backend, closed at teardown. */
async function backend(t: Test, name: string, o: { ready?: boolean; host?: string } = {}): Promise<Backend> {
  const b = await Backend.start({ name, ...o });
  t.teardown(() => b.close());
  return b;
}

/** A prober collecting its reports; stopped at teardown. */
function prober(t: Test, config: Config, opts: ProberOptions = {}): { p: Prober; reports: ProbeReport[] } {
  const reports: ProbeReport[] = [];
  const p = new Prober(config, { onResult: (r) => reports.push(r), ...opts });
  t.teardown(() => p.stop());
  return { p, reports };
}

/** A debug-level pino logger whose lines land in `lines` (parsed). */
function captureLog(): { log: pino.Logger; lines: { level: number; msg: string; [k: string]: unknown }[] } {
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

/** Open TCP socket handles of this process (client and server side). */
function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

/** A plain HTTP server on 127.0.0.1 with a handler, tracking requests in flight; closed at teardown. */
async function rawServer(
  t: Test,
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<{ addr: string; port: number; requests: number; maxInflight: number; open: () => number }> {
  const sockets = new Set<Socket>();
  const state = { addr: '', port: 0, requests: 0, maxInflight: 0, open: () => sockets.size };
  let inflight = 0;
  const srv = http.createServer((req, res) => {
    state.requests++;
    inflight++;
    state.maxInflight = Math.max(state.maxInflight, inflight);
    res.on('close', () => inflight--);
    handler(req, res);
  });
  srv.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  state.port = (srv.address() as AddressInfo).port;
  state.addr = `127.0.0.1:${state.port}`;
  t.teardown(async () => {
    const closed = new Promise<void>((resolve) => srv.close(() => resolve()));
    srv.closeAllConnections();
    await closed;
  });
  return state;
}

t.test('healthy servers: counts, one new connection per probe, sub-ms connect time ≤ total', async (t) => {
  const primary = await backend(t, 'primary');
  const canary = await backend(t, 'canary');
  const config = probeConfigFor([primary.addr], [canary.addr], { intervalMs: 2000, timeoutMs: 2000 });
  const { p, reports } = prober(t, config);
  const rounds = 12; // the ring holds 10 s / 2 s + 8 = 13
  for (let i = 0; i < rounds; i++) await p.probeOnce();
  const obs = p.observations(config, Date.now()).gateway;
  t.ok(obs);
  for (const pool of ['primary', 'canary'] as const) {
    const o = obs![pool];
    t.equal(o.probes, rounds, `${pool}: one health probe per round`);
    t.equal(o.failures, 0);
    t.equal(o.healthy, true);
    t.equal(o.ready, true);
    t.equal(o.downTransitions, 0);
    t.equal(o.recoveredAt, null);
    t.ok(o.connectP95Ms !== null && o.connectP95Ms > 0, `${pool} connect p95 ${o.connectP95Ms} ms`);
    t.ok(o.totalP95Ms !== null && o.totalP95Ms >= (o.connectP95Ms as number), `${pool} total p95 ${o.totalP95Ms} ms`);
  }
  for (const b of [primary, canary]) {
    t.equal(b.probes, rounds * 2, `${b.name}: health + ready per round`);
    t.equal(b.connections, b.probes, `${b.name}: one new TCP connection per probe (no keep-alive reuse)`);
  }
  await waitFor(() => primary.openConnections === 0 && canary.openConnections === 0, { what: 'probe sockets closed' });
  t.equal(reports.length, rounds * 4);
  t.ok(
    reports.every((r) => r.ok && r.status === 200 && r.error === undefined),
    'every report ok with status 200',
  );
  t.ok(
    reports.every((r) => r.connectMs !== null && r.totalMs !== null && r.connectMs > 0 && r.connectMs <= r.totalMs),
    'connect measured and ≤ total',
  );
  const fractional = reports.filter((r) => !Number.isInteger(r.connectMs)).length;
  t.ok(fractional >= reports.length * 0.9, `sub-ms resolution: ${fractional}/${reports.length} not whole ms`);
  t.same(
    new Set(reports.map((r) => `${r.service}/${r.pool}/${r.server}/${r.kind}`)).size,
    4,
    'labels per server and kind',
  );
  t.ok(reports.some((r) => r.pool === 'canary' && r.server === canary.addr && r.service === 'gateway'));
  const connects = reports.map((r) => r.connectMs as number).sort((a, b) => a - b);
  t.comment(
    `connect ms over ${connects.length} probes: min ${connects[0]?.toFixed(3)}, median ${connects[connects.length >> 1]?.toFixed(3)}, max ${connects.at(-1)?.toFixed(3)}`,
  );
});

t.test('ready false → true', async (t) => {
  const primary = await backend(t, 'primary');
  const canary = await backend(t, 'canary', { ready: false });
  const config = probeConfigFor([primary.addr], [canary.addr], { intervalMs: 200, timeoutMs: 200 });
  const { p } = prober(t, config);
  t.same(p.observations(config, Date.now()).gateway?.canary.ready, null, 'null before any ready probe');
  await p.probeOnce();
  const before = p.observations(config, Date.now()).gateway!;
  t.equal(before.canary.ready, false, '/ready answered 503');
  t.equal(before.canary.healthy, true, 'health is independent of readiness');
  t.equal(before.primary.ready, true);
  p.start();
  canary.setReady(true);
  await t.resolves(
    waitFor(() => p.observations(config, Date.now()).gateway?.canary.ready === true, {
      timeoutMs: 3000,
      what: 'canary ready',
    }),
    'ready turned true once /ready answered 200',
  );
});

t.test('a 500 counts as a failure with connect and total times', async (t) => {
  const b = await backend(t, 'canary');
  await b.setFault({ kind: 'status', status: 500 });
  const config = probeConfigFor([], [b.addr]);
  const { p, reports } = prober(t, config);
  for (let i = 0; i < 3; i++) await p.probeOnce();
  const o = p.observations(config, Date.now()).gateway!.canary;
  t.equal(o.probes, 3);
  t.equal(o.failures, 3);
  t.equal(o.healthy, false);
  t.equal(o.ready, true, '/ready ignores the status fault');
  const health = reports.filter((r) => r.kind === 'health');
  t.ok(
    health.every((r) => !r.ok && r.status === 500 && r.connectMs !== null && r.totalMs !== null && !r.error),
    'status 500, timed, no error string',
  );
  t.equal(b.connections, 6);
});

t.test('health passes on any 2xx, ready only on exactly 200', async (t) => {
  const srv = await rawServer(t, (_req, res) => {
    res.writeHead(204);
    res.end();
  });
  const config = probeConfigFor([srv.addr], []);
  const { p, reports } = prober(t, config);
  await p.probeOnce();
  t.same(
    reports.map((r) => [r.kind, r.status, r.ok]),
    [
      ['health', 204, true],
      ['ready', 204, false],
    ],
  );
  const o = p.observations(config, Date.now()).gateway!.primary;
  t.equal(o.healthy, true);
  t.equal(o.ready, false);
});

t.test('a refused connection is a failure with connectMs null', async (t) => {
  const b = await backend(t, 'canary');
  await b.setFault({ kind: 'refuse' });
  const config = probeConfigFor([], [b.addr]);
  const { log, lines } = captureLog();
  const { p, reports } = prober(t, config, { log });
  await p.probeOnce();
  t.same(
    lines.filter((l) => l.level === 40).map((l) => [l.msg, l['error']]),
    [['server unhealthy at its first probe', 'ECONNREFUSED']],
    'a server down from the start is reported once at warn',
  );
  await p.probeOnce();
  t.equal(lines.filter((l) => l.level === 40).length, 1, 'not again while it stays down');
  reports.splice(2);
  t.same(
    reports.map((r) => ({
      kind: r.kind,
      ok: r.ok,
      status: r.status,
      connectMs: r.connectMs,
      totalMs: r.totalMs,
      error: r.error,
    })),
    [
      { kind: 'health', ok: false, status: null, connectMs: null, totalMs: null, error: 'ECONNREFUSED' },
      { kind: 'ready', ok: false, status: null, connectMs: null, totalMs: null, error: 'ECONNREFUSED' },
    ],
  );
  const o = p.observations(config, Date.now()).gateway!.canary;
  t.equal(o.failures, 2, 'two rounds');
  t.equal(o.connectP95Ms, null, 'no connected probe');
  t.equal(o.totalP95Ms, null);
  t.equal(o.ready, false);
  t.equal(o.healthy, false);
});

t.test('a server that never answers fails at probe.timeout', async (t) => {
  const b = await backend(t, 'canary');
  await b.setFault({ kind: 'delay', ms: 10_000 });
  const timeoutMs = 150;
  // The upper bound is "about the timeout, not the 2 s connect cap or never"; wide, so a busy machine cannot fail it.
  const slackMs = 1000;

  const t0 = performance.now();
  const r = await probe(b, { kind: 'health', path: '/health', timeoutMs });
  const elapsed = performance.now() - t0;
  t.equal(r.ok, false);
  t.equal(r.error, 'timeout');
  t.equal(r.status, null);
  t.ok(r.connectMs !== null, 'it connected: the timeout is on the answer');
  t.equal(r.totalMs, null);
  t.ok(elapsed >= timeoutMs - 1 && elapsed <= timeoutMs + slackMs, `failed after ${elapsed.toFixed(1)} ms`);

  const config = probeConfigFor([], [b.addr], { intervalMs: 200, timeoutMs });
  const { p } = prober(t, config);
  const started = performance.now();
  p.start();
  await waitFor(() => p.observations(config, Date.now()).gateway!.canary.failures >= 1, {
    timeoutMs: timeoutMs + slackMs,
    intervalMs: 5,
    what: 'the first timed-out probe',
  });
  t.comment(`prober recorded the timeout ${(performance.now() - started).toFixed(1)} ms after start`);
  t.equal(p.observations(config, Date.now()).gateway!.canary.healthy, false);
  await p.stop();
  await t.resolves(
    waitFor(() => b.openConnections === 0, { what: 'timed-out sockets closed' }),
    'timed-out probes closed their connections',
  );
});

t.test('the body is read to its last byte before the connection closes', async (t) => {
  const size = 8 * 1024 * 1024;
  let finishedAtClose: boolean[] = [];
  const srv = await rawServer(t, (req, res) => {
    res.on('close', () => finishedAtClose.push(res.writableFinished));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    if (req.url === '/health') {
      res.write(Buffer.alloc(1024));
      setTimeout(() => res.end(Buffer.alloc(size - 1024)), 60);
    } else {
      res.end(Buffer.alloc(size));
    }
  });
  const config = probeConfigFor([srv.addr], [], { timeoutMs: 2000, intervalMs: 5000 });
  const { p, reports } = prober(t, config);
  await p.probeOnce();
  await waitFor(() => finishedAtClose.length === 2, { what: 'both responses closed' });
  t.same(finishedAtClose, [true, true], 'the server flushed the whole 8 MiB body before the socket closed');
  t.ok(
    reports.every((r) => r.ok),
    'both probes ok',
  );
  const health = reports.find((r) => r.kind === 'health')!;
  t.ok((health.totalMs as number) >= 55, `total time runs to the last byte (${health.totalMs?.toFixed(1)} ms)`);

  // A body cut short fails the probe although the status was 200.
  finishedAtClose = [];
  const cut = await rawServer(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '1000' });
    res.write('partial');
    setTimeout(() => res.destroy(), 10);
  });
  const r = await probe({ host: '127.0.0.1', port: cut.port }, { kind: 'health', path: '/health', timeoutMs: 1000 });
  t.equal(r.ok, false);
  t.equal(r.status, 200);
  t.equal(r.totalMs, null);
  t.equal(typeof r.error, 'string');
  t.comment(`cut body: ${r.error}`);
});

t.test('a crash loop: 3 down transitions, recoveredAt set, warn once per crash', async (t) => {
  const b = await backend(t, 'canary');
  const config = probeConfigFor([], [b.addr], { intervalMs: 200, timeoutMs: 200 });
  const { log, lines } = captureLog();
  const { p } = prober(t, config, { log });
  const canary = (): ReturnType<Prober['observations']>[string]['canary'] =>
    p.observations(config, Date.now()).gateway!.canary;
  p.start();
  await waitFor(() => canary().healthy === true, { what: 'first healthy probe' });
  let lastUp = 0;
  for (let i = 0; i < 3; i++) {
    await b.setFault({ kind: 'refuse' });
    await waitFor(() => canary().healthy === false, { timeoutMs: 2000, what: `down ${i + 1}` });
    lastUp = Date.now();
    await b.setFault({ kind: 'none' });
    await waitFor(() => canary().healthy === true, { timeoutMs: 2000, what: `up ${i + 1}` });
  }
  const o = canary();
  t.equal(o.downTransitions, 3);
  t.ok(o.recoveredAt !== null && o.recoveredAt >= lastUp, `recoveredAt ${o.recoveredAt} ≥ ${lastUp}`);
  t.ok(o.failures >= 3 && o.failures < o.probes, `${o.failures} failures of ${o.probes} probes`);
  const warns = lines.filter((l) => l.level === 40);
  t.equal(warns.length, 3, 'one warn per healthy→unhealthy');
  t.ok(
    warns.every((l) => l.msg === 'server became unhealthy' && l['server'] === b.addr && l['component'] === 'prober'),
  );
  t.equal(lines.filter((l) => l.msg === 'server recovered').length, 3, 'recoveries at debug');
  t.equal(lines.filter((l) => l.msg === 'server healthy at its first probe' && l.level === 20).length, 1);
  t.ok(
    lines.some((l) => l.msg === 'readiness changed'),
    'readiness changes at debug',
  );
  t.ok(
    lines.every((l) => l.level <= 40),
    'nothing above warn',
  );
});

t.test('stop aborts in-flight probes, records nothing for them, and closes every socket', async (t) => {
  const b = await backend(t, 'canary');
  await b.setFault({ kind: 'delay', ms: 10_000 });
  const baseline = tcpHandles();
  const config = probeConfigFor([], [b.addr], { intervalMs: 2000, timeoutMs: 2000 });
  const { p, reports } = prober(t, config);
  p.start();
  p.start(); // idempotent
  t.equal(p.running, true);
  await waitFor(() => b.openConnections >= 1, { what: 'a probe in flight' });
  const t0 = performance.now();
  await p.stop();
  const stopMs = performance.now() - t0;
  t.equal(p.running, false);
  t.ok(stopMs < 500, `stop returned in ${stopMs.toFixed(1)} ms, not after the 2 s timeout`);
  t.equal(reports.length, 0, 'the aborted probe is not a result');
  t.equal(p.observations(config, Date.now()).gateway!.canary.probes, 0);
  await waitFor(() => b.openConnections === 0, { what: 'backend sees every connection closed' });
  await waitFor(() => tcpHandles() <= baseline, { what: 'no TCP handle left' });
  t.equal(b.connections, 1, 'one round started (start is idempotent)');
  const seen = b.probes;
  await t.rejects(
    waitFor(() => b.probes > seen, { timeoutMs: 300 }),
    WaitTimeoutError,
    'no probe right after stop',
  );
  await b.setFault({ kind: 'none' });
  await p.probeOnce();
  t.equal(reports.length, 2, 'probeOnce still works after stop');
  await p.stop();
  await t.resolves(
    waitFor(() => tcpHandles() <= baseline, { what: 'no TCP handle left' }),
    'no TCP handle left after probeOnce and stop',
  );
});

t.test('the first round runs at once', async (t) => {
  const b = await backend(t, 'primary');
  const config = probeConfigFor([b.addr], [], { intervalMs: 60_000, timeoutMs: 2000 });
  const { p, reports } = prober(t, config);
  p.start();
  await waitFor(() => reports.length >= 2, { timeoutMs: 2000, what: 'the first round, long before one interval' });
  t.same(
    reports.map((r) => r.kind),
    ['health', 'ready'],
    'health, then ready',
  );
});

t.test('the loop runs every interval', async (t) => {
  const b = await backend(t, 'primary');
  const interval = 100;
  const config = probeConfigFor([b.addr], [], { intervalMs: interval, timeoutMs: interval });
  const { p, reports } = prober(t, config);
  p.start();
  await waitFor(() => reports.filter((r) => r.kind === 'health').length >= 8, { timeoutMs: 3000 });
  await p.stop();
  const starts = reports.filter((r) => r.kind === 'health').map((r) => r.at - (r.totalMs ?? 0));
  const gaps = starts.slice(1).map((s, i) => s - (starts[i] as number));
  const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
  t.comment(`gaps between rounds: ${gaps.map((g) => g.toFixed(1)).join(', ')} ms; mean ${mean.toFixed(1)} ms`);
  // Each start is estimated as report time minus probe duration, so an event
  // loop delay on a busy machine moves the two end points by a few ms; the
  // defects this catches (a second loop, no wait between rounds) halve the gap.
  t.ok(mean >= interval * 0.75, `not faster than one interval (mean gap ${mean.toFixed(1)} ms)`);
});

t.test('after stop the loop never probes again (10 intervals watched)', async (t) => {
  const b = await backend(t, 'primary');
  const interval = 50;
  const config = probeConfigFor([b.addr], [], { intervalMs: interval, timeoutMs: interval });
  const { p } = prober(t, config);
  p.start();
  await waitFor(() => b.probes >= 6, { timeoutMs: 3000, what: 'three rounds' });
  await p.stop();
  const seen = b.probes;
  await t.rejects(
    waitFor(() => b.probes > seen, { timeoutMs: 10 * interval }),
    WaitTimeoutError,
    'no probe in the 10 intervals after stop',
  );
});

t.test('a stop immediately followed by start runs one loop, not two', async (t) => {
  const b = await backend(t, 'primary');
  const interval = 200;
  const config = probeConfigFor([b.addr], [], { intervalMs: interval, timeoutMs: interval });
  const { p, reports } = prober(t, config);
  p.start();
  const stopped = p.stop();
  p.start();
  await stopped;
  t.equal(p.running, true);
  await waitFor(() => reports.filter((r) => r.kind === 'health').length >= 5, { timeoutMs: 3000 });
  await p.stop();
  const starts = reports.filter((r) => r.kind === 'health').map((r) => r.at - (r.totalMs ?? 0));
  const mean = (starts.at(-1)! - starts[0]!) / (starts.length - 1);
  // Two loops would give a mean gap near interval / 2; the margin absorbs the
  // few ms an event loop delay moves the estimated start of the first and last
  // round (CI saw 196.2 ms for 200 ms).
  t.ok(mean >= interval * 0.75, `one round per interval, not two loops (mean gap ${mean.toFixed(1)} ms)`);
});

t.test('probes of one server never overlap, whoever asks for a round', async (t) => {
  const srv = await rawServer(t, (_req, res) => {
    setTimeout(() => res.end('ok\n'), 15);
  });
  const config = probeConfigFor([srv.addr], [], { intervalMs: 100, timeoutMs: 100 });
  const { p, reports } = prober(t, config);
  p.start();
  await Promise.all([p.probeOnce(), p.probeOnce(), p.probeOnce()]); // extra rounds queue behind the loop's
  await waitFor(() => reports.length >= 12, { timeoutMs: 3000 });
  await p.stop();
  t.equal(srv.maxInflight, 1, 'the server never saw two probes at once');
  t.ok(srv.requests - reports.length <= 1, 'every request but one aborted by stop is a recorded result');
  t.ok(
    reports.every((r, i) => i === 0 || r.at - (r.totalMs ?? 0) >= (reports[i - 1] as ProbeReport).at - 1),
    'each probe started after the previous one ended',
  );
});

t.test('timestamps come from the injected clock', async (t) => {
  const b = await backend(t, 'primary');
  const clock = new ManualClock();
  const config = probeConfigFor([b.addr], []);
  const { p, reports } = prober(t, config, { clock });
  const t0 = clock.now();
  await p.probeOnce();
  clock.advance(5000);
  await p.probeOnce();
  t.same(
    reports.map((r) => r.at),
    [t0, t0, t0 + 5000, t0 + 5000],
  );
  t.equal(p.observations(config, clock.now()).gateway!.primary.probes, 2);
  t.equal(p.observations(config, t0 + 10_001).gateway!.primary.probes, 1, 'window 10 s: the first probe is out');
});

t.test('reconfigure keeps the history of servers still configured', async (t) => {
  const b1 = await backend(t, 'b1');
  const b2 = await backend(t, 'b2');
  const b3 = await backend(t, 'b3');
  const c1 = probeConfigFor([b1.addr, b1.addr], []); // a duplicate line is probed once
  const { p, reports } = prober(t, c1);
  await p.probeOnce();
  await p.probeOnce();
  t.equal(b1.probes, 4, 'the duplicate line is one server');
  t.equal(p.observations(c1, Date.now()).gateway!.primary.probes, 2, 'observed once');

  const c2 = probeConfigFor([b1.addr, b2.addr], [], { intervalMs: 200, timeoutMs: 200 });
  t.equal(p.observations(c2, Date.now()).gateway!.primary.healthy, null, 'a server not yet known has no data');
  p.reconfigure(c2);
  let o = p.observations(c2, Date.now()).gateway!.primary;
  t.equal(o.probes, 2, 'b1 kept its two probes');
  t.equal(o.healthy, null, 'b2 has none yet');
  await p.probeOnce();
  o = p.observations(c2, Date.now()).gateway!.primary;
  t.equal(o.probes, 4);
  t.equal(o.healthy, true);

  p.start();
  const c3 = probeConfigFor([b2.addr, b3.addr], [], { intervalMs: 200, timeoutMs: 200 });
  p.reconfigure(c3);
  await waitFor(() => b3.probes >= 4, { what: 'the added server is probed by the running loop' });
  const b1Seen = b1.probes;
  t.equal(p.observations(c1, Date.now()).gateway!.primary.probes, 0, 'b1 dropped: its history is gone');
  await p.stop();
  t.ok(b1.probes <= b1Seen + 2, 'b1 no longer probed');
  t.equal(
    reports.filter((r) => r.server === b1.addr).length,
    6,
    'no report for b1 after it was dropped (2 rounds × 2 + 1 round × 2 before)',
  );

  // The same server moved to the other pool is a new history.
  const c4 = probeConfigFor([], [b2.addr]);
  p.reconfigure(c4);
  t.equal(p.observations(c4, Date.now()).gateway!.canary.probes, 0);
});

t.test('a probe in flight on a dropped server is discarded', async (t) => {
  const b1 = await backend(t, 'b1');
  const b2 = await backend(t, 'b2');
  await b1.setFault({ kind: 'delay', ms: 150 });
  const c1 = probeConfigFor([b1.addr, b2.addr], [], { intervalMs: 1000, timeoutMs: 1000 });
  const { p, reports } = prober(t, c1);
  p.start();
  await waitFor(() => b1.openConnections >= 1, { what: 'b1 probe in flight' });
  p.reconfigure(probeConfigFor([b2.addr], [], { intervalMs: 1000, timeoutMs: 1000 }));
  await waitFor(() => b1.openConnections === 0 && b1.probes >= 1, { what: 'the b1 probe finished' });
  await p.stop();
  t.equal(reports.filter((r) => r.server === b1.addr).length, 0, 'its result was discarded');
  t.ok(reports.some((r) => r.server === b2.addr));
});

t.test('an onResult hook that throws is logged and the loop goes on', async (t) => {
  const b = await backend(t, 'primary');
  const config = probeConfigFor([b.addr], [], { intervalMs: 100, timeoutMs: 100 });
  const { log, lines } = captureLog();
  let calls = 0;
  const p = new Prober(config, {
    log,
    onResult: () => {
      calls++;
      throw new Error('metrics broke');
    },
  });
  t.teardown(() => p.stop());
  p.start();
  await waitFor(() => calls >= 6, { what: 'the loop keeps going' });
  await p.stop();
  t.ok(lines.some((l) => l.msg === 'onResult hook threw; ignored' && l.level === 40));
  t.equal(p.observations(config, Date.now()).gateway!.primary.healthy, true, 'results still recorded');
  const plain = new Prober(config); // defaults: silent logger, no hook
  t.teardown(() => plain.stop());
  t.equal(plain.running, false);
  await plain.probeOnce();
  t.equal(plain.observations(config, Date.now()).gateway!.primary.probes, 1, 'records without a hook');
});

t.test('probe(): abort, IPv6, error reasons', async (t) => {
  const b = await backend(t, 'primary');
  const aborted = await probe(b, { kind: 'ready', path: '/ready', timeoutMs: 1000, signal: AbortSignal.abort() });
  t.equal(aborted.ok, false);
  t.equal(aborted.error, 'aborted');
  t.equal(MAX_CONNECT_TIMEOUT_MS, 2000, 'docs/design.md "Numbers": TCP connect within 2 s');

  t.equal(probeErrorReason(Object.assign(new Error('x'), { code: 'ECONNRESET' })), 'ECONNRESET');
  t.equal(probeErrorReason(new Error('plain')), 'plain');
  t.equal(probeErrorReason('text'), 'text');
  t.equal(probeErrorReason(null), 'null');

  let v6: Backend;
  try {
    v6 = await backend(t, 'v6', { host: '::1' });
  } catch (err) {
    t.comment(`IPv6 part skipped, no ::1 here: ${String(err)}`);
    return;
  }
  const config = probeConfigFor([v6.addr], []);
  t.equal(config.services[0]!.primary[0]!.host, '::1');
  const { p, reports } = prober(t, config);
  await p.probeOnce();
  t.same(
    reports.map((r) => [r.server, r.ok]),
    [
      ['[::1]:' + v6.port, true],
      ['[::1]:' + v6.port, true],
    ],
    'probed over IPv6',
  );
});

t.test('an answer that came in time is no timeout when the sidecar itself stalled past the deadline', async (t) => {
  // The backend runs in its own process, so it answers while this process is stalled; it drops a marker file once
  // its answer is handed to the kernel.
  const dir = await mkdtemp(join(tmpdir(), 'nc-stall-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const marker = join(dir, 'answered');
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const fs = require('node:fs');
       require('node:http').createServer((req, res) => {
         res.end('ok', () => fs.writeFileSync(${JSON.stringify(marker)}, ''));
       }).listen(0, '127.0.0.1', function () { process.stdout.write(this.address().port + '\\n'); });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`backend exited ${code}`)));
  });

  // Stall this process (as CPU starvation or a GC pause would) from the moment the request is written until the
  // answer is waiting in the socket and the probe's deadline has passed.
  const timeoutMs = 50;
  let stalledMs = 0;
  let answeredInStall = false;
  const stall = (): void => {
    const t0 = performance.now();
    const cap = t0 + 10_000;
    while (performance.now() < cap && !(answeredInStall = existsSync(marker))) {
      /* busy: the backend answers meanwhile */
    }
    while (performance.now() < t0 + timeoutMs + 100) {
      /* past the deadline */
    }
    stalledMs = performance.now() - t0;
  };
  diagnostics.subscribe('undici:request:bodySent', stall);
  t.teardown(() => diagnostics.unsubscribe('undici:request:bodySent', stall));
  const r = await probe({ host: '127.0.0.1', port }, { kind: 'health', path: '/health', timeoutMs });
  diagnostics.unsubscribe('undici:request:bodySent', stall);
  t.ok(answeredInStall, 'the backend answered while the sidecar was stalled');
  t.ok(stalledMs > timeoutMs, `stalled ${stalledMs.toFixed(0)} ms, past the ${timeoutMs} ms deadline`);
  t.same([r.ok, r.status, r.error], [true, 200, undefined], 'the answer that came in time counts');
});
