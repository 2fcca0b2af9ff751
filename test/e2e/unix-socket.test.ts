// README "Backends on unix sockets": a service whose primary and canary are unix sockets (`server: unix:/…`, as with
// gunicorn, puma or php-fpm on Debian), end to end on the real nginx: `check` accepts the file, real
// traffic goes through nginx to the sockets, every attempt is attributed by its `unix:/path` in
// $upstream_addr, the walk reaches its target on passing gates, the probes time connects over the
// sockets, and a canary answering 500 is drained to 0.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseLine } from '../../src/observe/parse.js';
import { waitFor } from '../../src/util/wait.js';
import { FAST_PROBES, failTrafficOnly, raisesIn, sample, spawnCli, startStack } from '../fixtures/stack.js';

t.test('a walk and a drain with both pools on unix sockets', async (t) => {
  const stack = await startStack(t, { target: 30, ...FAST_PROBES, unixSockets: true });
  const socketDir = stack.socketDir as string;
  const gw = stack.config.services[0]!;
  t.same(
    [gw.primary[0]?.server, gw.canary[0]?.server],
    [`unix:${path.join(socketDir, 'primary.sock')}`, `unix:${path.join(socketDir, 'canary.sock')}`],
    'weights.yaml names the sockets',
  );
  t.equal(gw.canary[0]?.socketPath, path.join(socketDir, 'canary.sock'));

  const check = spawnCli(stack.dir, stack.configFile, ['check'], 30_000);
  const checked = await check.exited;
  t.equal(checked.code, 0, `nginx-canary check accepts unix servers${checked.code === 0 ? '' : `\n${check.output()}`}`);
  t.match(check.stdout(), /^ok: .* accepts the rendered config for gateway at 0 %/m);

  await stack.startSidecar();
  const traffic = stack.traffic();
  const complete = await waitFor(
    async () => {
      const s = await stack.status();
      return s.services[0]?.weight === 30 && s.services[0].phase === 'complete' ? s : null;
    },
    { timeoutMs: 60_000, intervalMs: 100, what: 'weight 30, phase complete' },
  );
  const raises = raisesIn(complete.history);
  t.same(
    raises.map((e) => e.to),
    [5, 15, 25, 30],
    'the walk went 5 → 15 → 25 → 30',
  );
  for (const e of raises.slice(1)) {
    t.ok(e.gates.length > 0 && e.gates.every((g) => g.verdict === 'pass'), `step to ${e.to} rested on passing gates`);
    const errors = e.gates.find((g) => g.gate === 'error_ratio');
    t.ok(
      (errors?.samples ?? 0) >= (errors?.minSamples ?? 1),
      `step to ${e.to}: ${errors?.samples} canary attempts attributed through the socket address`,
    );
  }
  t.ok(stack.canary.hits > 0 && stack.primary.hits > 0, 'both sockets served traffic through nginx');

  // What nginx logged: the sockets' addresses, as weights.yaml names them.
  const log = await readFile(path.join(stack.dir, 'prefix', 'logs', 'canary.json'), 'utf8');
  const addrs = new Set(
    log
      .split('\n')
      .map(parseLine)
      .flatMap((r) => r?.attempts.map((a) => a.addr) ?? []),
  );
  t.ok(addrs.has(stack.canary.addr) && addrs.has(stack.primary.addr), 'both unix:/path addresses in $upstream_addr');

  // The probes reach both sockets and time their connects.
  const metrics = await stack.metrics();
  for (const pool of ['primary', 'canary']) {
    const connects = sample(
      metrics,
      `nginx_canary_probe_duration_seconds_count{service="gateway",pool="${pool}",phase="connect"}`,
    );
    const totals = sample(
      metrics,
      `nginx_canary_probe_duration_seconds_count{service="gateway",pool="${pool}",phase="total"}`,
    );
    t.ok(connects >= 10, `${pool}: ${connects} probe connect samples over the socket`);
    t.ok(totals > 0 && totals <= connects, `${pool}: ${totals} of them completed`);
  }
  const connectGate = complete.services[0]?.gates.find((g) => g.gate === 'connect_p95');
  t.ok(
    (connectGate?.detail?.['probes'] ?? 0) > 0,
    `connect_p95 rests on ${connectGate?.detail?.['probes']} probes too`,
  );
  t.equal(typeof connectGate?.detail?.['probe_p95_ms'], 'number', 'with their connect p95');
  t.ok(stack.canary.probes > 0 && stack.primary.probes > 0, 'the backends saw the probes');

  // The canary starts answering 500: drained to 0, and nothing reaches its socket afterwards.
  await failTrafficOnly(stack.canary);
  const faultAt = performance.now();
  const drained = await stack.until(
    'phase drained at weight 0',
    (s) => s.weight === 0 && s.phase === 'drained',
    15_000,
  );
  t.comment(`drained ${Math.round(performance.now() - faultAt)} ms after the canary started answering 500`);
  t.equal(drained.drainReason, 'error_ratio');
  t.match(await stack.metrics(), /nginx_canary_drains_total\{service="gateway",reason="error_ratio"\} 1\b/);
  await traffic.stop();

  stack.canary.resetCounts();
  stack.primary.resetCounts();
  const statuses = await stack.send(300);
  t.equal(statuses.length, 300);
  t.ok(
    statuses.every((s) => s === 200),
    'every request answered 200 by the primary socket',
  );
  t.equal(stack.canary.hits, 0, 'no request reaches the canary socket after the drain');
  t.equal(stack.primary.hits, 300);
  t.equal(await stack.stopSidecar(), 0, 'SIGTERM stops the sidecar cleanly');
});
