// etcd3 1.1.2's Campaign waits on the keys created before its transaction's header revision; after a
// retried campaign transaction that revision is newer than its own key, and it waits for itself for
// ever (src/fleet/etcd.ts waitOnOwnRevision). On a real etcd: the patched wait returns for the oldest
// key whatever revision it is handed, and still waits while an older key lives.
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { waitOnOwnRevision } from '../../src/fleet/etcd.js';
import { waitFor } from '../../src/util/wait.js';
import { startEtcdCluster } from '../fixtures/etcd.js';

const cluster = await startEtcdCluster({ members: 1, t });

t.test('the patched wait uses the campaign key’s own revision', async (t) => {
  const client = new Etcd3({ hosts: cluster.endpoints });
  t.teardown(() => client.close());
  const election = client.namespace('/nc-election-test/').election('leader', 2);
  const first = election.campaign('a');
  waitOnOwnRevision(first);
  await first.wait();
  type Inner = { keyRevision: string; waitForElected(revision: string): Promise<void> };
  const a = first as unknown as Inner;
  const later = String(BigInt(a.keyRevision) + 50n);
  // Unpatched, etcd3 would look for keys created before `later` - 1: its own key, so it would wait for
  // its own deletion. Patched, it looks before its own revision: none, so it returns at once.
  await t.resolves(
    Promise.race([
      a.waitForElected(later),
      new Promise((_, reject) => setTimeout(() => reject(new Error('waited for its own key')), 3000)),
    ]),
    'the oldest campaign returns whatever revision it is handed',
  );

  const second = election.campaign('b');
  waitOnOwnRevision(second);
  let elected = false;
  second.on('elected', () => (elected = true));
  const b = second as unknown as Inner;
  // Give b's campaign transaction its answer (its keyRevision becomes a string revision).
  await waitFor(() => typeof b.keyRevision === 'string', { timeoutMs: 5000, what: "b's campaign key" });
  t.type(b.keyRevision, 'string', 'b holds its key');
  t.equal(elected, false, 'b does not lead while a lives');
  await first.resign();
  await second.wait();
  t.equal(elected, true, 'b leads once a resigned');
  await second.resign();
});
