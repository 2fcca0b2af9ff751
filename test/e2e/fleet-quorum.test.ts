// Fleet mode when etcd loses members (issue 12 "Behaviour", docs/fleet.md "Quorum"), on a real 3-member etcd,
// 3 hosts (each a real nginx and a real sidecar child process), lease_ttl 2s:
// - one member of three stopped (by pid): the walk goes on to the target;
// - a second stopped (quorum lost): no host raises a weight, every host's nginx_canary_fleet_leader is 0
//   within lease_ttl + a few seconds (the NginxCanaryFleetNoLeader alert's input);
// - both started again: a leader is elected and the walk resumes to the target.
// The other fleet faults are in fleet-faults.test.ts. Every wait has a deadline; every load loop is bounded.
import t from 'tap';
import { request } from 'undici';
import { startEtcdCluster } from '../fixtures/etcd.js';
import { startFleet, type Fleet, type FleetHostHandle } from '../fixtures/fleet.js';
import { allAt, allVerified, load, recordWeights, served, stopwatch, until } from '../fixtures/fleet-wait.js';
import { QUIET_GATES, sample } from '../fixtures/stack.js';

/**
 * Soak of every slice and step (weights.yaml), ms. 3 s, not 1: the test must see every host at 40 before the
 * walk moves on, and one look at three hosts (their nginx, then a status) took over a second on a loaded
 * machine — the walk had reached 60 before the test saw 40.
 */
const SOAK_MS = 3000;
/** fleet.lease_ttl, ms. */
const LEASE_TTL_MS = 2000;

// ---- helpers (the shared ones are in test/fixtures/fleet-wait.ts) ---------------------------------------

/** Each host's value of a label-less fleet gauge, in host order (NaN where absent or unreadable). */
function gauges(fleet: Fleet, series: string): Promise<number[]> {
  return Promise.all(
    fleet.hosts.map((h) =>
      h.metrics().then(
        (m) => sample(m, series),
        () => Number.NaN,
      ),
    ),
  );
}

// ---- 3. quorum ---------------------------------------------------------------------------------------------

t.test('one etcd member down: the walk goes on; two down: nothing rises, no leader; back: it resumes', async (t) => {
  const lap = stopwatch(t);
  const cluster = await startEtcdCluster({ members: 3, t });
  const [m0, m1] = cluster.members;
  if (!m0 || !m1) throw new Error('no etcd members');
  // QUIET_GATES: a walk held or drained by a slow probe is not what this test is about (CI beside two busy
  // loops: three 200 ms probes timed out and crash_loop drained host-1 before the quorum faults).
  const fleet = await startFleet(t, {
    hosts: 3,
    etcd: () => cluster.endpoints,
    target: 30,
    soak: `${SOAK_MS}ms`,
    ...QUIET_GATES,
  });
  const [first, ...rest] = fleet.hosts as [FleetHostHandle, FleetHostHandle, FleetHostHandle];
  await first.startSidecar();
  await until(fleet, `${first.name} to lead`, async () => (await first.status()).fleet?.isLeader === true, 15_000);
  await Promise.all(rest.map((h) => h.startSidecar()));
  const traffic = load(t, fleet.hosts);
  lap('etcd (3 members) and the fleet up');

  // One member of three down while walking: the fleet keeps its quorum and walks on to the target.
  await allAt(fleet, 5, 40_000);
  lap('first slice (5 %) on every host');
  await m0.stop();
  t.notOk(m0.running(), `etcd member ${m0.name} stopped`);
  await allAt(fleet, 30, 30_000);
  lap(`${m0.name} down → every host at the target 30`);

  // A higher target (an intent through any host), so there is a walk left for the quorum loss to stop.
  const r = await request(`${rest[0].api}/api/v1/services/gateway/target`, {
    method: 'PUT',
    body: JSON.stringify({ weight: 60 }),
    headers: { 'content-type': 'application/json' },
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const answer = (await r.body.json()) as { to?: number };
  t.equal(r.statusCode, 200, 'target 60 taken');
  t.equal(answer.to, 60, 'the answer says the target is 60');

  // Lose the quorum once every host has applied and verified 40 (the soak of 40 has just begun: no raise in
  // flight).
  await allVerified(fleet, first, 40, 20_000);
  lap('target 60 → every host at 40');
  const before = await served(fleet);
  m1.kill('SIGKILL');
  const lostAt = performance.now();
  const rec = recordWeights(fleet);
  await m1.stop();
  const leaders = await until(
    fleet,
    'nginx_canary_fleet_leader 0 on every host',
    async () => {
      const v = await gauges(fleet, 'nginx_canary_fleet_leader');
      return v.every((x) => x === 0) ? v : null;
    },
    LEASE_TTL_MS + 8000,
  );
  const noLeaderMs = performance.now() - lostAt;
  t.same(leaders, [0, 0, 0], 'no host leads');
  t.ok(
    noLeaderMs <= LEASE_TTL_MS + 3000,
    `nginx_canary_fleet_leader 0 on every host ${(noLeaderMs / 1000).toFixed(1)} s after the quorum was lost`,
  );
  const etcdUp = await until(
    fleet,
    'nginx_canary_fleet_etcd_up 0 on every host',
    async () => {
      const v = await gauges(fleet, 'nginx_canary_fleet_etcd_up');
      return v.every((x) => x === 0) ? v : null;
    },
    LEASE_TTL_MS + 8000,
  );
  t.same(etcdUp, [0, 0, 0], `every host says etcd is down (${((performance.now() - lostAt) / 1000).toFixed(1)} s)`);
  lap(`${m1.name} down too (quorum lost) → no leader on any host`);

  // Four more step soaks without a quorum: nothing rises; a change could only be a drain (to 0).
  const holdEnds = performance.now() + 4 * SOAK_MS;
  await until(
    fleet,
    'four step soaks without a quorum',
    async () => {
      const ws = await served(fleet);
      if (ws.some((w, i) => w > (before[i] ?? 0))) throw new Error(`a weight rose without a quorum: ${ws.join(', ')}`);
      return performance.now() >= holdEnds;
    },
    4 * SOAK_MS + 5000,
  );
  const rows = await rec.stop();
  for (const h of fleet.hosts) {
    const mine = rows.map((row) => row[h.index] ?? Number.NaN);
    const changes = mine.filter((w, k) => k > 0 && w !== mine[k - 1]);
    t.ok(
      mine.every((w) => w <= (before[h.index] ?? 0)),
      `${h.name} never above ${before[h.index]} % (${mine.length} samples)`,
    );
    t.ok(
      changes.every((w) => w === 0),
      `${h.name} changed weight only to drain (${changes.length ? changes.join(', ') : 'no change'})`,
    );
  }
  lap('held (4 step soaks)');

  // Quorum back: a leader is elected and the walk resumes to the target.
  const backAt = performance.now();
  await Promise.all([m0.start(), m1.start()]);
  const leaderNow = await until(
    fleet,
    'exactly one host leading',
    async () => {
      const v = await gauges(fleet, 'nginx_canary_fleet_leader');
      return v.filter((x) => x === 1).length === 1 && v.every((x) => x === 0 || x === 1) ? v : null;
    },
    20_000,
  );
  t.comment(
    `leader ${fleet.hosts[leaderNow.indexOf(1)]?.name} ${((performance.now() - backAt) / 1000).toFixed(1)} s after the members were started`,
  );
  lap('members started → one leader');
  await allAt(fleet, 60, 30_000);
  lap('walk resumed → every host at the target 60');
  await traffic.stop();
});
