import t from 'tap';
import fc from 'fast-check';
import {
  buildModel,
  canaryShare,
  canaryUnits,
  formatListen,
  gcd,
  nginxSeconds,
  poolWeights,
  WEIGHT_UNITS,
} from '../../src/nginx/model.js';
import { makeConfig, makeServer, makeService } from '../fixtures/nginx/config.js';

const addrs = (base: number, n: number): string[] => Array.from({ length: n }, (_, i) => `127.0.0.1:${base + i}`);

t.test(
  'the rendered canary share equals the weight within 0.05 pp for weights 0..100 step 0.1 and 1–4 servers per pool',
  async (t) => {
    let runs = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        (tenths, nP, nC) => {
          runs++;
          const weight = tenths / 10;
          const config = makeConfig('/m', { services: [makeService('gateway', addrs(20000, nP), addrs(21000, nC))] });
          const model = buildModel(config, { gateway: weight }, 1, 'oss');
          const share = canaryShare(model, 'gateway');
          const servers = model.upstreams[0]?.servers ?? [];
          return (
            Math.abs(share - weight) <= 0.05 &&
            servers.length === nP + nC &&
            servers.every((s) => Number.isInteger(s.weight) && s.weight >= 1) &&
            // Within a pool every server has the same weight, and `down` marks exactly a pool at 0.
            new Set(servers.filter((s) => s.pool === 'canary').map((s) => `${s.weight}/${s.down}`)).size === 1 &&
            servers.filter((s) => s.pool === 'canary').every((s) => s.down === (tenths === 0)) &&
            servers.filter((s) => s.pool === 'primary').every((s) => s.down === (tenths === 1000))
          );
        },
      ),
      { numRuns: 2000 },
    );
    t.equal(runs, 2000);
  },
);

t.test('weights are reduced by their gcd (30 % with one server each → 3:7)', async (t) => {
  t.same(poolWeights(300, 1, 1), { primary: 7, canary: 3, primaryDown: false, canaryDown: false });
  t.same(poolWeights(50, 1, 1), { primary: 19, canary: 1, primaryDown: false, canaryDown: false }, '5 % → 1:19');
  t.same(
    poolWeights(1, 1, 1),
    { primary: 999, canary: 1, primaryDown: false, canaryDown: false },
    '0.1 % is representable',
  );
  t.same(
    poolWeights(300, 3, 2),
    { primary: 14, canary: 9, primaryDown: false, canaryDown: false },
    '3 primary, 2 canary',
  );
  t.same(poolWeights(0, 2, 2), { primary: 1, canary: 1, primaryDown: false, canaryDown: true });
  t.same(poolWeights(WEIGHT_UNITS, 2, 2), { primary: 1, canary: 1, primaryDown: true, canaryDown: false });
  t.throws(() => poolWeights(300, 0, 1), RangeError);
  t.throws(() => poolWeights(300, 1, 0), RangeError);
});

t.test('gcd', async (t) => {
  t.equal(gcd(900, 1400), 100);
  t.equal(gcd(7, 0), 7);
  t.equal(gcd(0, 7), 7);
  t.equal(gcd(-12, 18), 6);
});

t.test('canaryUnits rounds to 0.1 % and refuses weights outside 0–100', async (t) => {
  t.equal(canaryUnits(12.34), 123);
  t.equal(canaryUnits(12.36), 124);
  t.equal(canaryUnits(100), 1000);
  for (const bad of [-0.1, 100.1, Number.NaN, Number.POSITIVE_INFINITY])
    t.throws(() => canaryUnits(bad), RangeError, String(bad));
});

t.test('nginxSeconds renders whole seconds, rounding up (nginx rejects ms in fail_timeout)', async (t) => {
  t.equal(nginxSeconds(20_000), '20s');
  t.equal(nginxSeconds(500), '1s');
  t.equal(nginxSeconds(1001), '2s');
  t.equal(nginxSeconds(0), '0s');
  t.throws(() => nginxSeconds(-1), RangeError);
  t.throws(() => nginxSeconds(Number.NaN), RangeError);
});

t.test('formatListen brackets IPv6', async (t) => {
  t.equal(formatListen({ host: '127.0.0.1', port: 9465 }), '127.0.0.1:9465');
  t.equal(formatListen({ host: '::1', port: 9465 }), '[::1]:9465');
});

t.test('buildModel', async (t) => {
  const config = makeConfig('/m', {
    services: [
      makeService('gateway', ['127.0.0.1:1'], ['127.0.0.1:2']),
      makeService('api', ['127.0.0.1:3'], ['127.0.0.1:4'], {
        canary: [makeServer('127.0.0.1:4', 'canary', { slowStartMs: null })],
      }),
    ],
  });
  const plus = buildModel(config, { gateway: 12.34 }, 9, 'plus');
  t.same(plus.weights, { gateway: 12.3, api: 0 }, 'a service missing from weights renders at 0; weights round to 0.1');
  t.equal(plus.generation, 9);
  t.equal(plus.statusListen, '127.0.0.1:9465');
  t.equal(
    plus.upstreams[0]?.servers.find((s) => s.pool === 'canary')?.slowStart,
    '30s',
    'plus: slow_start on the canary',
  );
  t.equal(
    plus.upstreams[0]?.servers.find((s) => s.pool === 'primary')?.slowStart,
    null,
    'no slow_start configured → none',
  );
  t.equal(plus.upstreams[1]?.servers.find((s) => s.pool === 'canary')?.slowStart, null);
  const oss = buildModel(config, { gateway: 12.34 }, 9, 'oss');
  t.ok(
    oss.upstreams.every((u) => u.servers.every((s) => s.slowStart === null)),
    'oss: never slow_start',
  );
  t.equal(canaryShare(oss, 'gateway'), 12.3);
  t.equal(canaryShare(oss, 'api'), 0);
  t.throws(() => canaryShare(oss, 'nope'), RangeError);
  t.throws(() => buildModel(config, { nope: 5 }, 1, 'oss'), /not a service/);
  t.throws(() => buildModel(config, { gateway: 101 }, 1, 'oss'), RangeError);
  t.throws(() => buildModel(config, {}, -1, 'oss'), RangeError);
  t.throws(() => buildModel(config, {}, 1.5, 'oss'), RangeError);
});

t.test('split_clients services are rendered weighted in this release', async (t) => {
  const config = makeConfig('/m', {
    services: [makeService('gateway', ['127.0.0.1:1'], ['127.0.0.1:2'], { split: 'split_clients' })],
  });
  const m = buildModel(config, { gateway: 30 }, 1, 'oss');
  t.equal(m.upstreams[0]?.split, 'split_clients');
  t.equal(canaryShare(m, 'gateway'), 30);
});
