import t from 'tap';
import fc from 'fast-check';
import { chooseRollback, describeRaises, raisesOf } from '../../src/nginx/rollback-choice.js';
import type { SnapshotInfo } from '../../src/nginx/types.js';

const snap = (generation: number, weights: Record<string, number>): SnapshotInfo => ({
  id: `s-g${generation}`,
  file: `/snapshots/s-g${generation}.tar.gz`,
  at: generation * 1000,
  generation,
  weights,
  reason: 'test',
});

// A walk 0 → 5 → 15 → 30, then a drain to 0 (generation 5): snapshots are taken before each change, newest first.
const WALK = [
  snap(4, { gateway: 30 }),
  snap(3, { gateway: 15 }),
  snap(2, { gateway: 5 }),
  snap(1, { gateway: 0 }),
  snap(0, {}),
];

t.test('after a drain a plain rollback skips every snapshot that holds the canary above 0', async (t) => {
  const c = chooseRollback(WALK, { gateway: 0 }, 5);
  t.match(c, { ok: true, snapshot: { id: 's-g1' }, raises: [] });
});

t.test('a plain rollback mid-walk takes the snapshot just before the live config', async (t) => {
  t.match(chooseRollback(WALK.slice(1), { gateway: 30 }, 4), { ok: true, snapshot: { id: 's-g3' } });
  t.match(chooseRollback(WALK, { gateway: 30 }, 5), { ok: true, snapshot: { id: 's-g4' } }, 'equal weights are safe');
});

t.test('only snapshots older than the live generation and above 0 are candidates', async (t) => {
  t.same(chooseRollback(WALK, { gateway: 0 }, 1), { ok: false, reason: 'none-older' });
  t.same(chooseRollback([], {}, 9), { ok: false, reason: 'none-older' });
  t.match(chooseRollback(WALK, { gateway: 30 }, 3), { ok: true, snapshot: { id: 's-g2' } });
});

t.test('when every older snapshot raises a weight, none is chosen and the newest is named', async (t) => {
  const c = chooseRollback([snap(3, { gateway: 30 }), snap(2, { gateway: 15 })], { gateway: 0 }, 4);
  t.same(c, {
    ok: false,
    reason: 'all-raise',
    newest: snap(3, { gateway: 30 }),
    raises: [{ service: 'gateway', from: 0, to: 30 }],
  });
});

t.test('a named snapshot is restored even when it raises, and says so', async (t) => {
  t.same(chooseRollback(WALK, { gateway: 0 }, 5, 's-g4'), {
    ok: true,
    snapshot: WALK[0],
    raises: [{ service: 'gateway', from: 0, to: 30 }],
  });
  t.equal(chooseRollback(WALK, { gateway: 0 }, 5, 'nope'), null);
});

t.test('raises compare per service; a service missing on either side counts as 0', async (t) => {
  const s = snap(2, { gateway: 10, billing: 5, quiet: 0 });
  t.same(raisesOf(s, { gateway: 20, billing: 0 }), [{ service: 'billing', from: 0, to: 5 }]);
  t.same(raisesOf(snap(2, {}), { gateway: 20 }), []);
  t.equal(
    describeRaises([
      { service: 'gateway', from: 0, to: 30 },
      { service: 'billing', from: 5, to: 10 },
    ]),
    'gateway 0 % → 30 %, billing 5 % → 10 %',
  );
});

t.test('property: a plain rollback never raises any live canary weight', async (t) => {
  const weights = fc.dictionary(fc.constantFrom('gateway', 'billing'), fc.integer({ min: 0, max: 100 }));
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(fc.array(weights, { maxLength: 12 }), weights, fc.integer({ min: 0, max: 14 }), (ws, live, gen) => {
        const snaps = ws.map((w, i) => snap(ws.length - i, w));
        const c = chooseRollback(snaps, live, gen);
        if (c === null) return false;
        if (!c.ok) return true;
        return (
          c.snapshot.generation > 0 &&
          c.snapshot.generation < gen &&
          Object.entries(c.snapshot.weights).every(([s, w]) => w <= (live[s] ?? 0)) &&
          // and it is the newest such snapshot
          snaps.every(
            (o) =>
              o.generation <= c.snapshot.generation ||
              o.generation >= gen ||
              Object.entries(o.weights).some(([s, w]) => w > (live[s] ?? 0)),
          )
        );
      }),
      { seed: 11, numRuns: 1000 },
    ),
  );
});
