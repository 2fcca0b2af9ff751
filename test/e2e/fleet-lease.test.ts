// Fleet mode (docs/fleet.md): a running host's leased keys after etcd ended its lease (no keepalive
// answered within lease_ttl: a starved host or a slow etcd). Its reports come back with the next report,
// and so must the two keys it writes once at start: the fleet marker (what keeps a nesting fleet from
// starting) and its name claim (what keeps a second sidecar with its name from starting). A CI run beside a
// benchmark showed both missing: a nesting fleet started beside a running one.
// The raw etcd3 client is the test's own view of etcd (to revoke the lease); src uses etcd3 only through
// fleet/etcd.ts.
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { startEtcdCluster } from '../fixtures/etcd.js';
import { startFleet } from '../fixtures/fleet.js';
import { QUIET_GATES } from '../fixtures/stack.js';
import { waitFor } from '../../src/util/wait.js';

const PREFIX = '/nc-lease';
const MARKER = `${PREFIX}/fleet`;
const MEMBER = `${PREFIX}/members/a-1`;

t.test(
  'a lost host lease: the marker and the name claim are written again; a name taken meanwhile is kept',
  async (t) => {
    const cluster = await startEtcdCluster({ members: 1, t });
    const raw = new Etcd3({ hosts: cluster.endpoints });
    t.teardown(() => raw.close());
    const fleet = await startFleet(t, {
      hosts: 1,
      names: ['a-1'],
      prefix: PREFIX,
      target: 5,
      ...QUIET_GATES,
      etcd: () => cluster.endpoints,
    });
    const h = fleet.hosts[0]!;
    await h.startSidecar();
    await waitFor(async () => (await h.servedWeight()) === 5, {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: 'a-1 serving 5 %',
    });

    const leaseOf = async (key: string): Promise<string | null> =>
      (await raw.get(key).exec()).kvs[0]?.lease.toString() ?? null;
    const first = await leaseOf(MARKER);
    t.ok(first !== null && first !== '0', `the marker is leased (${first})`);
    t.equal(await leaseOf(MEMBER), first, 'on the same lease as the name claim');
    const claim = await raw.get(MEMBER).string();
    t.match(claim, `"pid":${h.sidecar?.pid}`, 'the claim is this sidecar’s');

    await raw.leaseClient.leaseRevoke({ ID: first! });
    const again = await waitFor(
      async () => {
        const [m, c] = await Promise.all([leaseOf(MARKER), leaseOf(MEMBER)]);
        return m !== null && m !== first && c === m ? m : null;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'the marker and the claim on a new lease' },
    );
    t.not(again, first, `both written again on the new lease ${again}`);
    t.equal(await raw.get(MEMBER).string(), claim, 'the claim as it was (same pid, same start time)');
    await waitFor(() => h.output().includes('the fleet marker and the name claim are written again'), {
      timeoutMs: 10_000,
      what: 'the warning that says so',
    });

    // Another sidecar takes the name in the gap (its own key, no lease), then the lease ends again: the host
    // writes its marker again but not over the other's claim, and says so at error level.
    const other = JSON.stringify({ host: 'a-1', pid: 1, at: 0 });
    await raw.put(MEMBER).value(other).exec();
    await raw.leaseClient.leaseRevoke({ ID: again });
    await waitFor(
      async () => {
        const m = await leaseOf(MARKER);
        return m !== null && m !== again;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'the marker on a third lease' },
    );
    await waitFor(() => h.output().includes('another sidecar took the host name \\"a-1\\"'), {
      timeoutMs: 10_000,
      what: 'the error naming the taken name',
    });
    t.equal(await raw.get(MEMBER).string(), other, 'the other claim is not overwritten');
    t.equal(h.sidecar?.exitCode, null, 'the host keeps running (and its weights)');
    t.equal(await h.servedWeight(), 5);
  },
);
