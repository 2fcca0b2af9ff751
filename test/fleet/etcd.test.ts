// fleet/etcd.ts against real etcd members (test/fixtures/etcd.ts) with faults from a TCP proxy the test
// controls (test/fixtures/tcp-proxy.ts): bounded calls, the election TTL, leadership ending on our clock,
// fencing, leased keys, and watches that survive broken streams and compaction.
// The raw etcd3 client here is the test's own view of etcd (and the way to compact); src uses it only
// through fleet/etcd.ts.
import t from 'tap';
import { Etcd3 } from 'etcd3';
import {
  EtcdUnavailableError,
  FleetEtcd,
  type EtcdOptions,
  type KeyValue,
  type WatchEvent,
} from '../../src/fleet/etcd.js';
import { waitFor } from '../../src/util/wait.js';
import { startEtcdCluster, type EtcdCluster } from '../fixtures/etcd.js';
import { freePort, type Teardown } from '../fixtures/nginx/harness.js';
import { startTcpProxy, type TcpProxy } from '../fixtures/tcp-proxy.js';

const TTL_MS = 2000;
/** max(500, TTL / 5) */
const MARGIN_MS = 500;

const [three, one] = await Promise.all([startEtcdCluster({ members: 3, t }), startEtcdCluster({ members: 1, t })]);
const raw3 = new Etcd3({ hosts: three.endpoints });
const raw1 = new Etcd3({ hosts: one.endpoints });
t.teardown(() => {
  raw3.close();
  raw1.close();
});

interface LogLine {
  at: number;
  level: 'warn' | 'info';
  msg: string;
  obj: Record<string, unknown>;
}

/** A FleetEtcd closed at teardown, logging into an array. */
async function host(
  tt: Teardown,
  o: Partial<EtcdOptions> & Pick<EtcdOptions, 'endpoints' | 'prefix' | 'host'>,
): Promise<{ etcd: FleetEtcd; logs: LogLine[] }> {
  const logs: LogLine[] = [];
  const push = (level: LogLine['level']) => (obj: object, msg: string) =>
    logs.push({ at: performance.now(), level, msg, obj: obj as Record<string, unknown> });
  const etcd = await FleetEtcd.connect({ leaseTtlMs: TTL_MS, log: { warn: push('warn'), info: push('info') }, ...o });
  tt.teardown(() => etcd.close());
  return { etcd, logs };
}

/** A proxy to one member's client port, stopped at teardown. */
function proxyTo(tt: Teardown, cluster: EtcdCluster, member = 0): Promise<TcpProxy> {
  return startTcpProxy('127.0.0.1', Number(new URL(cluster.members[member]!.clientUrl).port), tt);
}

/** Leadership changes with their times. */
function recorder(): {
  changes: { leader: boolean; reason: string; at: number }[];
  cb: (leader: boolean, reason: string) => void;
  until: (leader: boolean, timeoutMs: number) => Promise<number>;
} {
  const changes: { leader: boolean; reason: string; at: number }[] = [];
  return {
    changes,
    cb: (leader, reason) => changes.push({ leader, reason, at: performance.now() }),
    until: async (leader, timeoutMs) => {
      const from = changes.length;
      const c = await waitFor(() => changes.slice(from).find((x) => x.leader === leader), {
        timeoutMs,
        intervalMs: 10,
        what: `leadership ${leader}`,
      });
      return c.at;
    },
  };
}

t.test('connect: an unreachable endpoint rejects within callTimeoutMs with EtcdUnavailableError', async (t) => {
  const refused = `http://127.0.0.1:${await freePort()}`;
  const held = await proxyTo(t, one);
  held.hold(); // accepts, answers nothing: the case etcd3's ignored dialTimeout would wait on for ever
  for (const endpoint of [refused, held.url]) {
    const started = performance.now();
    const err = await FleetEtcd.connect({
      endpoints: [endpoint],
      prefix: '/nc-test/connect',
      host: 'a',
      leaseTtlMs: TTL_MS,
      callTimeoutMs: 500,
    }).catch((e: unknown) => e);
    const took = performance.now() - started;
    t.ok(err instanceof EtcdUnavailableError, `${endpoint}: EtcdUnavailableError`);
    t.match((err as Error).message, endpoint, 'the message names the endpoint');
    t.equal((err as EtcdUnavailableError).code, 'NC_ETCD_UNAVAILABLE');
    t.ok(took < 500 + 1000, `${endpoint}: rejected after ${Math.round(took)} ms (< callTimeoutMs 500 + 1 s)`);
    t.comment(`connect to ${endpoint === refused ? 'a refused port' : 'a silent proxy'}: ${Math.round(took)} ms`);
  }
  // close() is bounded too, and never throws, when etcd stops answering mid-life.
  held.open();
  const { etcd } = await host(t, { endpoints: [held.url], prefix: '/nc-test/connect', host: 'a', callTimeoutMs: 500 });
  const elected = recorder();
  etcd.campaign(elected.cb);
  await elected.until(true, 5000);
  await etcd.putLeased('hosts/a', 'x');
  held.hold();
  const closing = performance.now();
  await etcd.close();
  const closeTook = performance.now() - closing;
  t.ok(closeTook < 500 + 1000, `close() with etcd silent took ${Math.round(closeTook)} ms (< callTimeoutMs + 1 s)`);
  t.match(elected.changes.at(-1), { leader: false, reason: 'closed' });

  const bad = { endpoints: one.endpoints, prefix: '/p', host: 'a', leaseTtlMs: TTL_MS };
  await t.rejects(FleetEtcd.connect({ ...bad, leaseTtlMs: 2500 }), RangeError, 'TTL not whole seconds');
  await t.rejects(FleetEtcd.connect({ ...bad, leaseTtlMs: 1000 }), RangeError, 'TTL below 2 s');
  await t.rejects(FleetEtcd.connect({ ...bad, endpoints: ['127.0.0.1:2379'] }), TypeError, 'endpoint without scheme');
  await t.rejects(FleetEtcd.connect({ ...bad, prefix: '/p/' }), TypeError, 'prefix with a trailing slash');
});

t.test('keys: put, get, create, getPrefix, delete, all relative to the prefix', async (t) => {
  const { etcd } = await host(t, { endpoints: one.endpoints, prefix: '/nc-test/kv', host: 'a' });
  await raw1.put('/nc-test/kv2/x').value('a sibling prefix');
  await etcd.put('desired', '1');
  t.equal(await raw1.get('/nc-test/kv/desired').string(), '1', 'stored under `${prefix}/`');
  const kv = await etcd.get('desired');
  t.match(kv, { key: 'desired', value: '1', lease: '0' });
  t.ok(BigInt(kv!.createRevision) > 0n && kv!.createRevision === kv!.modRevision);
  t.equal(await etcd.get('missing'), null);

  t.equal(await etcd.create('desired', '2', false), false, 'create refuses an existing key');
  t.equal((await etcd.get('desired'))?.value, '1', 'and writes nothing');
  t.equal(await etcd.create('intents/1', 'x', false), true);
  t.equal(await etcd.create('members/a', 'me', true), true, 'a leased create');
  await etcd.putLeased('hosts/a', 'report');
  const leased = await etcd.get('hosts/a');
  t.not(leased?.lease, '0', 'putLeased attaches a lease');
  t.equal((await etcd.get('members/a'))?.lease, leased?.lease, 'one host lease for every leased key');
  const granted = await raw1.leaseClient.leaseTimeToLive({ ID: leased!.lease });
  t.equal(granted.grantedTTL, String(TTL_MS / 1000), 'the host lease has TTL lease_ttl');
  t.equal(etcd.hostLeaseEpoch, 1, 'one host lease so far');
  // etcd ends the lease (as when no keepalive arrived within the TTL): its keys go with it, and the next
  // leased write runs on a new lease, which hostLeaseEpoch tells the caller.
  await raw1.leaseClient.leaseRevoke({ ID: leased!.lease });
  t.equal(await etcd.get('members/a'), null, 'the revoked lease took members/a with it');
  await etcd.putLeased('hosts/a', 'report');
  const renewed = await etcd.get('hosts/a');
  t.not(renewed?.lease, leased?.lease, 'the next leased write is on a new lease');
  t.equal(etcd.hostLeaseEpoch, 2, 'and hostLeaseEpoch counts it');
  t.equal(await etcd.create('members/a', 'me', true), true, 'the claim can be made again on it');

  t.same(
    (await etcd.getPrefix('')).map((k: KeyValue) => k.key),
    ['desired', 'hosts/a', 'intents/1', 'members/a'],
    'getPrefix is sorted by key and stays inside `${prefix}/` (not /nc-test/kv2)',
  );
  t.same(
    (await etcd.getPrefix('hosts/')).map((k) => k.value),
    ['report'],
  );
  await etcd.delete('desired');
  await etcd.delete('desired'); // deleting a missing key is fine
  t.equal(await etcd.get('desired'), null);
  t.same(
    etcd.timing,
    { leaseTtlMs: 2000, callTimeoutMs: 1000, marginMs: 500 },
    'defaults: min(2 s, TTL/2), max(0.5 s, TTL/5)',
  );
  t.equal(etcd.isLeader(), false, 'not campaigning: not leader');
  t.equal(await etcd.fencedPut('desired', 'x'), false, 'fencedPut refuses without leadership, no call');
  t.equal(await etcd.leader(), null, 'nobody campaigns');
});

t.test('election: TTL is lease_ttl, one leader, leader() names it, close hands over at once', async (t) => {
  const prefix = '/nc-test/election';
  const a = await host(t, { endpoints: three.endpoints, prefix, host: 'a' });
  const b = await host(t, { endpoints: three.endpoints, prefix, host: 'b' });
  const ra = recorder();
  const rb = recorder();
  a.etcd.campaign(ra.cb);
  await ra.until(true, 5000);
  b.etcd.campaign(rb.cb);
  await waitFor(async () => (await raw3.getAll().prefix(`${prefix}/election/leader/`).keys()).length === 2, {
    timeoutMs: 5000,
    what: 'two campaign keys',
  });
  t.equal(a.etcd.isLeader(), true);
  t.equal(b.etcd.isLeader(), false, 'the second candidate waits');
  t.equal(await a.etcd.leader(), 'a');
  t.equal(await b.etcd.leader(), 'a');

  const token = a.etcd.leadership();
  t.match(token?.key, /^election\/leader\/\d+$/);
  const campaignKey = await raw3.get(`${prefix}/${token!.key}`).exec();
  t.equal(campaignKey.kvs[0]?.create_revision, token?.createRevision, 'the token is the key and its create revision');
  const ttl = await raw3.leaseClient.leaseTimeToLive({ ID: campaignKey.kvs[0]!.lease });
  t.equal(ttl.grantedTTL, '2', 'the election lease has TTL lease_ttl (2 s), not etcd3’s default 60 s');
  const until = a.etcd.leaderUntil()!;
  const left = until - performance.now();
  t.ok(left > 0 && left <= TTL_MS - MARGIN_MS, `leaderUntil is within TTL − margin (${Math.round(left)} ms left)`);

  t.equal(await a.etcd.fencedPut('desired', 'from a'), true, 'the leader writes, fenced');
  t.equal(await b.etcd.fencedPut('desired', 'from b'), false, 'a follower cannot');
  t.equal((await raw3.get(`${prefix}/desired`).string()) ?? '', 'from a');
  t.equal(await a.etcd.fencedDelete(['desired', 'nothing-here']), true);
  t.equal(await raw3.get(`${prefix}/desired`).string(), null);

  const closing = performance.now();
  await a.etcd.close();
  t.match(ra.changes.at(-1), { leader: false, reason: 'closed' });
  const elected = await rb.until(true, 3000);
  t.ok(
    elected - closing < 1000,
    `the successor took over ${Math.round(elected - closing)} ms after close (< 1 s: resigned)`,
  );
  t.equal(await b.etcd.leader(), 'b');
});

t.test('a leader cut off from etcd stops at keepalive + TTL − margin; a successor within TTL + 1 s', async (t) => {
  const prefix = '/nc-test/cut';
  const proxy = await proxyTo(t, three, 0);
  const a = await host(t, { endpoints: [proxy.url], prefix, host: 'a' });
  const b = await host(t, { endpoints: three.endpoints, prefix, host: 'b' });
  const ra = recorder();
  const rb = recorder();
  a.etcd.campaign(ra.cb);
  await ra.until(true, 5000);
  b.etcd.campaign(rb.cb);
  await waitFor(async () => (await b.etcd.getPrefix('election/leader/')).length === 2, { timeoutMs: 5000 });
  const stale = a.etcd.leadership()!;
  t.ok(stale, 'a leads');

  const cutAt = performance.now();
  proxy.close();
  const until = a.etcd.leaderUntil()!; // no keepalive can succeed after the cut: this is the last deadline
  t.ok(until - cutAt <= TTL_MS - MARGIN_MS, `deadline ${Math.round(until - cutAt)} ms after the cut (≤ TTL − margin)`);
  const lostAt = await ra.until(false, TTL_MS * 2);
  const lostLog = a.logs.find((l) => l.obj['reason'] === 'lost');
  t.match(ra.changes.at(-1), { leader: false, reason: 'deadline' }, 'ended by our deadline, not by the library');
  t.equal(lostLog, undefined, 'before etcd3 reports the lease lost (2 × TTL)');
  t.ok(lostAt >= until, 'not before the deadline');
  t.ok(lostAt - until < 500, `${Math.round(lostAt - until)} ms after the deadline`);
  t.equal(a.etcd.isLeader(), false);
  t.equal(await a.etcd.fencedPut('desired', 'a after the deadline'), false, 'no fenced write once past the deadline');

  const electedAt = await rb.until(true, TTL_MS + 3000);
  const failover = electedAt - cutAt;
  t.ok(failover <= TTL_MS + 1000, `successor elected ${Math.round(failover)} ms after the cut (≤ TTL + 1 s)`);
  t.ok(lostAt < electedAt, 'the old leader stopped before the successor started');
  t.comment(
    `cut → old leader stops ${Math.round(lostAt - cutAt)} ms; → successor ${Math.round(failover)} ms (TTL ${TTL_MS})`,
  );
  t.equal(await b.etcd.fencedPut('desired', 'b'), true);

  const rawTxn = await raw3
    .if(`${prefix}/${stale.key}`, 'Create', '==', stale.createRevision)
    .then(raw3.put(`${prefix}/desired`).value('stale leader'))
    .commit();
  t.equal(rawTxn.succeeded, false, 'etcd refuses a txn fenced on the old leader’s create revision');
  t.equal(await raw3.get(`${prefix}/desired`).string(), 'b', 'the successor’s value holds');

  proxy.open();
  // The old leader learns its lease is gone and campaigns again, now behind the successor.
  await waitFor(
    async () => {
      const keys = await b.etcd.getPrefix('election/leader/');
      return keys.some((k) => k.value === 'a' && BigInt(k.createRevision) > BigInt(stale.createRevision));
    },
    { timeoutMs: 10_000, what: 'the old leader campaigning again after the proxy reopened' },
  );
  t.equal(a.etcd.isLeader(), false, 'and follows');
  t.equal(await a.etcd.leader(), 'b');
});

t.test(
  'slow keepalives end leadership at the deadline; an answer before the lease expires brings it back',
  async (t) => {
    // TTL 3 s: the deadline (last keepalive + 2.4 s) comes 0.6 s before etcd can expire the lease.
    const prefix = '/nc-test/renew';
    const ttl = 3000;
    const proxy = await proxyTo(t, three, 2);
    const a = await host(t, { endpoints: [proxy.url], prefix, host: 'a', leaseTtlMs: ttl });
    const b = await host(t, { endpoints: three.endpoints, prefix, host: 'b', leaseTtlMs: ttl });
    const ra = recorder();
    const rb = recorder();
    a.etcd.campaign(ra.cb);
    await ra.until(true, 5000);
    b.etcd.campaign(rb.cb);
    await waitFor(async () => (await b.etcd.getPrefix('election/leader/')).length === 2, { timeoutMs: 5000 });
    const token = a.etcd.leadership();

    proxy.hold(); // keepalives go out and wait in the proxy
    await ra.until(false, ttl);
    t.match(ra.changes.at(-1), { leader: false, reason: 'deadline' });
    proxy.open(); // they reach etcd before the lease expires
    await ra.until(true, 2000);
    t.match(ra.changes.at(-1), { leader: true, reason: 'renewed' }, 'leader again, same campaign');
    t.same(a.etcd.leadership(), token, 'the same campaign key and create revision');
    t.equal(await a.etcd.fencedPut('desired', 'a'), true, 'its fenced writes land again');
    t.same(rb.changes, [], 'the other candidate never led');
    t.equal(await b.etcd.leader(), 'a');
  },
);

t.test('a write sent while leader but delayed past the successor’s election is refused by etcd', async (t) => {
  const prefix = '/nc-test/fence';
  const proxy = await proxyTo(t, three, 1);
  // A long call timeout so the delayed write's answer comes back instead of a timeout.
  const a = await host(t, { endpoints: [proxy.url], prefix, host: 'a', callTimeoutMs: 10_000 });
  const b = await host(t, { endpoints: three.endpoints, prefix, host: 'b' });
  const ra = recorder();
  const rb = recorder();
  a.etcd.campaign(ra.cb);
  await ra.until(true, 5000);
  b.etcd.campaign(rb.cb);
  await waitFor(async () => (await b.etcd.getPrefix('election/leader/')).length === 2, { timeoutMs: 5000 });
  t.equal(await a.etcd.fencedPut('desired', 'a1'), true);

  proxy.hold(); // a partition that loses nothing: a's bytes reach etcd only when it heals
  t.equal(a.etcd.isLeader(), true, 'a still leads when it sends');
  let answeredAt = 0;
  const delayed = a.etcd.fencedPut('desired', 'a2, delayed').then((ok) => {
    answeredAt = performance.now();
    return ok;
  });
  await rb.until(true, TTL_MS + 3000);
  t.equal(await b.etcd.fencedPut('desired', 'b'), true, 'the successor writes');
  t.equal(answeredAt, 0, 'the delayed write has not been answered yet');
  const healedAt = performance.now();
  proxy.open();
  t.equal(await delayed, false, 'the delayed write reached etcd after the successor’s election: refused');
  t.ok(answeredAt >= healedAt);
  t.equal(await raw3.get(`${prefix}/desired`).string(), 'b', 'not one of the old leader’s writes landed');
  t.ok(
    ra.changes.some((c) => !c.leader),
    'the old leader knows it does not lead',
  );
  t.equal(a.etcd.isLeader(), false);
});

t.test('putLeased keys vanish when the host closes, and within TTL when it is cut off', async (t) => {
  const prefix = '/nc-test/leased';
  const h1 = await host(t, { endpoints: three.endpoints, prefix, host: 'h1' });
  await h1.etcd.putLeased('hosts/h1', 'r1');
  t.equal(await h1.etcd.create('members/h1', 'x', true), true);
  await h1.etcd.close();
  t.equal(await raw3.get(`${prefix}/hosts/h1`).string(), null, 'gone as soon as close returns (lease revoked)');
  t.equal(await raw3.get(`${prefix}/members/h1`).string(), null);
  await h1.etcd.close(); // idempotent

  const proxy = await proxyTo(t, three, 2);
  const h2 = await host(t, { endpoints: [proxy.url], prefix, host: 'h2' });
  await h2.etcd.putLeased('hosts/h2', 'r1');
  const firstLease = (await raw3.get(`${prefix}/hosts/h2`).exec()).kvs[0]?.lease;
  t.ok(firstLease);
  const cutAt = performance.now();
  proxy.close();
  await waitFor(async () => (await raw3.get(`${prefix}/hosts/h2`).string()) === null, {
    timeoutMs: TTL_MS + 3000,
    intervalMs: 20,
    what: 'the cut host’s key to expire',
  });
  const goneAfter = performance.now() - cutAt;
  t.ok(
    goneAfter <= TTL_MS + 1000,
    `the cut host's key expired ${Math.round(goneAfter)} ms after the cut (≤ TTL + 1 s)`,
  );

  const err = await h2.etcd.putLeased('hosts/h2', 'while cut').catch((e: unknown) => e);
  t.ok(err instanceof EtcdUnavailableError, 'a write while cut off rejects with EtcdUnavailableError');

  proxy.open();
  let tries = 0;
  await waitFor(
    async () => {
      tries++;
      await h2.etcd.putLeased('hosts/h2', 'r2');
      return true;
    },
    { timeoutMs: 5000, intervalMs: 100, what: 'a leased write after the proxy reopened' },
  );
  const again = (await raw3.get(`${prefix}/hosts/h2`).exec()).kvs[0];
  t.equal(again?.value.toString(), 'r2');
  t.not(again?.lease, firstLease, 'on a new lease (the old one expired)');
  const retried = h2.logs.some((l) => l.msg.includes('writing on a new lease'));
  t.comment(
    `leased write after reopen took ${tries} tries (${retried ? 'etcd said the lease was gone: retried on a new one' : 'the client had already dropped the lease'})`,
  );
});

t.test('watch: events in order, a reset after a compacted start revision and after a broken stream', async (t) => {
  const prefix = '/nc-test/watch';
  const proxy = await proxyTo(t, one, 0);
  const w = await host(t, { endpoints: [proxy.url], prefix, host: 'w' });
  await raw1.put(`${prefix}/w/a`).value('1');
  await raw1.put(`${prefix}/other`).value('not watched');
  const resets: string[][] = [];
  const events: string[] = [];
  const stop = w.etcd.watchPrefix(
    'w/',
    (e: WatchEvent) => events.push(`${e.type} ${e.kv.key}${e.type === 'put' ? `=${e.kv.value}` : ''}`),
    (kvs) => {
      resets.push(kvs.map((k) => `${k.key}=${k.value}`));
      // The first read is done and the watch not yet created: hold its creation in the proxy, so it
      // reaches etcd only after the revision it starts from is compacted.
      if (resets.length === 1) proxy.hold();
    },
  );
  await waitFor(() => resets.length === 1, { timeoutMs: 5000, what: 'the first reset' });
  t.same(resets[0], ['w/a=1'], 'starts with the current state of the prefix');
  await raw1.put(`${prefix}/w/b`).value('2');
  const put = await raw1.put(`${prefix}/w/c`).value('3').exec();
  await raw1.kv.compact({ revision: put.header.revision, physical: true });
  proxy.open();
  await waitFor(() => resets.length === 2, { timeoutMs: 10_000, what: 'a reset after the compaction' });
  t.same(resets[1], ['w/a=1', 'w/b=2', 'w/c=3'], 'read again after etcd cancelled the compacted watch');
  t.ok(
    w.logs.some((l) => l.obj['how'] === 'cancelled'),
    'it was etcd cancelling the watch (compaction), not a broken stream',
  );
  t.same(events, [], 'the writes during the compaction came as the reset, not as events');

  await raw1.put(`${prefix}/w/d`).value('4');
  await raw1.delete().key(`${prefix}/w/a`);
  await raw1.put(`${prefix}/w/d`).value('5');
  await waitFor(() => events.length === 3, { timeoutMs: 5000, what: 'three events' });
  t.same(events, ['put w/d=4', 'delete w/a', 'put w/d=5'], 'then every change, in order');

  proxy.close(); // the stream breaks: read again once etcd answers
  await waitFor(() => w.logs.some((l) => l.msg.includes('could not read its prefix')), {
    timeoutMs: 5000,
    what: 'the watch retrying its read while cut off',
  });
  await raw1.put(`${prefix}/w/e`).value('6');
  proxy.open();
  await waitFor(() => resets.length === 3, { timeoutMs: 10_000, what: 'a reset after the broken stream' });
  t.same(resets[2], ['w/b=2', 'w/c=3', 'w/d=5', 'w/e=6']);
  await raw1.put(`${prefix}/w/f`).value('7');
  await waitFor(() => events.length === 4, { timeoutMs: 5000, what: 'an event after the reset' });
  t.equal(events[3], 'put w/f=7');
  t.ok(
    events.every((e) => !e.includes('other')),
    'nothing outside the prefix',
  );
  await stop();
  await stop(); // idempotent

  // A callback that throws is logged; the watch goes on.
  const seen: string[] = [];
  let resetCalls = 0;
  const stop2 = w.etcd.watchPrefix(
    'w/',
    (e) => {
      seen.push(e.kv.key);
      throw new Error('consumer bug');
    },
    () => {
      resetCalls++;
      throw new Error('consumer bug in reset');
    },
  );
  await waitFor(() => resetCalls === 1, { timeoutMs: 5000, what: 'the second watch’s first read' });
  await raw1.put(`${prefix}/w/g`).value('8');
  await raw1.put(`${prefix}/w/h`).value('9');
  await waitFor(() => seen.length === 2, { timeoutMs: 5000, what: 'two events despite the throwing callback' });
  t.same(seen, ['w/g', 'w/h']);
  t.ok(w.logs.some((l) => l.msg.includes('the event callback threw')));
  t.ok(w.logs.some((l) => l.msg.includes('the reset callback threw')));
  await stop2();
});

t.test('quorum lost: calls fail within callTimeoutMs; they work again when a majority is back', async (t) => {
  // Runs last on the 3-member cluster: it stops two of its members.
  const q = await host(t, { endpoints: three.endpoints, prefix: '/nc-test/quorum', host: 'q', callTimeoutMs: 1000 });
  await q.etcd.put('k', '1');
  await three.members[1]!.stop();
  await q.etcd.put('k', '2');
  t.pass('one of three members down: writes go on');
  await three.members[2]!.stop();
  const started = performance.now();
  const err = await q.etcd.put('k', '3').catch((e: unknown) => e);
  const took = performance.now() - started;
  t.ok(err instanceof EtcdUnavailableError, 'two of three down: EtcdUnavailableError');
  t.ok(took < 1000 + 1000, `after ${Math.round(took)} ms (< callTimeoutMs 1 s + 1 s)`);
  await three.members[1]!.start({ waitHealthy: true });
  await waitFor(async () => (await q.etcd.put('k', '4'), true), {
    timeoutMs: 10_000,
    what: 'a write with quorum back',
  });
  t.equal((await q.etcd.get('k'))?.value, '4');
});
