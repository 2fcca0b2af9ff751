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
  OVERRIDE_ALLOWED,
  OVERRIDE_OTHER,
  OVERRIDE_SOURCE,
  overrideVariable,
  routeVariable,
  WEIGHT_UNITS,
  type ServiceModel,
  type UpstreamModel,
  type UpstreamsModel,
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
          const servers = model.services[0]?.upstreams.find((u) => u.role === 'weighted')?.servers ?? [];
          return (
            Math.abs(share - weight) <= 0.05 &&
            servers.length === nP + nC &&
            servers.every((s) => Number.isInteger(s.weight) && (s.weight ?? 0) >= 1 && !s.backup) &&
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

const svcOf = (m: UpstreamsModel, name: string): ServiceModel => {
  const s = m.services.find((x) => x.name === name);
  if (!s) throw new Error(`no service ${name}`);
  return s;
};
const upstreamOf = (m: UpstreamsModel, name: string): UpstreamModel => {
  const u = m.services.flatMap((s) => s.upstreams).find((x) => x.name === name);
  if (!u) throw new Error(`no upstream ${name}`);
  return u;
};
/** `pool:address[ flags]` of every server of an upstream, in order. */
const lines = (u: UpstreamModel): string[] =>
  u.servers.map(
    (s) =>
      `${s.pool}:${s.address}${s.weight === null ? '' : ` w${s.weight}`}${s.down ? ' down' : ''}${s.backup ? ' backup' : ''}`,
  );

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
  for (const name of ['gateway', 'gateway_canary']) {
    t.equal(
      upstreamOf(plus, name).servers.find((s) => s.pool === 'canary')?.slowStart,
      '30s',
      `plus: slow_start on the canary in ${name}`,
    );
  }
  t.ok(
    plus.services.every((s) => s.upstreams.every((u) => u.servers.every((x) => x.pool === 'canary' || !x.slowStart))),
    'no slow_start configured on the primary → none, in every upstream',
  );
  t.equal(upstreamOf(plus, 'api_canary').servers.find((s) => s.pool === 'canary')?.slowStart, null);
  const oss = buildModel(config, { gateway: 12.34 }, 9, 'oss');
  t.ok(
    oss.services.every((s) => s.upstreams.every((u) => u.servers.every((x) => x.slowStart === null))),
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

t.test('weighted: upstream <service> as before, plus per-pool upstreams and the route map', async (t) => {
  const config = makeConfig('/m', {
    services: [makeService('gateway', ['127.0.0.1:1', '127.0.0.1:3'], ['127.0.0.1:2'])],
  });
  const at = (w: number): ServiceModel => svcOf(buildModel(config, { gateway: w }, 1, 'oss'), 'gateway');
  const zero = at(0);
  t.same(
    zero.upstreams.map((u) => [u.name, u.role]),
    [
      ['gateway', 'weighted'],
      ['gateway_primary', 'primary'],
      ['gateway_canary', 'canary'],
    ],
  );
  t.same(lines(zero.upstreams[0]!), ['primary:127.0.0.1:1 w1', 'primary:127.0.0.1:3 w1', 'canary:127.0.0.1:2 w1 down']);
  t.same(lines(zero.upstreams[1]!), ['primary:127.0.0.1:1', 'primary:127.0.0.1:3']);
  t.same(
    lines(zero.upstreams[2]!),
    ['canary:127.0.0.1:2', 'primary:127.0.0.1:1 backup', 'primary:127.0.0.1:3 backup'],
    'the canary upstream is not down at weight 0 (X-Canary: always must reach it) and falls back to the primary',
  );
  t.same(
    zero.route,
    { source: [], variable: 'nginx_canary_gateway', default: { kind: 'upstream', name: 'gateway' }, overrides: [] },
    'no override configured: a map without source or override lines',
  );
  t.equal(zero.override, null, 'and no geo block');
  t.equal(zero.drained, false);
  t.equal(zero.splitClients, null);
  const full = at(100);
  t.same(lines(full.upstreams[0]!), [
    'primary:127.0.0.1:1 w1 down',
    'primary:127.0.0.1:3 w1 down',
    'canary:127.0.0.1:2 w1',
  ]);
  t.same(
    lines(full.upstreams[1]!),
    ['primary:127.0.0.1:1', 'primary:127.0.0.1:3'],
    'never still reaches the primary at 100',
  );
  t.equal(routeVariable('gateway'), 'nginx_canary_gateway');
  const mangled = structuredClone(buildModel(config, { gateway: 5 }, 1, 'oss'));
  mangled.services[0]!.upstreams = mangled.services[0]!.upstreams.filter((u) => u.role !== 'weighted');
  t.throws(() => canaryShare(mangled, 'gateway'), /no weighted upstream/, 'a model not made by buildModel');
  const unweighted = structuredClone(buildModel(config, { gateway: 5 }, 1, 'oss'));
  for (const x of unweighted.services[0]!.upstreams[0]!.servers) x.weight = null;
  t.equal(canaryShare(unweighted, 'gateway'), (1 / 3) * 100, 'a server without weight= counts as nginx default 1');
});

t.test('split_clients: per-pool upstreams, a split_clients block on the key, the route map', async (t) => {
  const svc = makeService('api', ['127.0.0.1:1'], ['127.0.0.1:2', '127.0.0.1:4'], { split: 'split_clients' });
  const at = (w: number, s = svc): UpstreamsModel =>
    buildModel(makeConfig('/m', { services: [s] }), { api: w }, 1, 'oss');
  const m = at(20);
  const api = svcOf(m, 'api');
  t.equal(api.split, 'split_clients');
  t.same(
    api.upstreams.map((u) => [u.name, u.role]),
    [
      ['api_primary', 'primary'],
      ['api_canary', 'canary'],
    ],
    'no plain upstream api',
  );
  t.same(lines(api.upstreams[0]!), ['primary:127.0.0.1:1']);
  t.same(lines(api.upstreams[1]!), ['canary:127.0.0.1:2', 'canary:127.0.0.1:4', 'primary:127.0.0.1:1 backup']);
  t.same(api.splitClients, {
    key: ['remote_addr', 'http_user_agent'],
    variable: 'nginx_canary_api_split',
    buckets: [
      { percent: 20, upstream: 'api_canary' },
      { percent: null, upstream: 'api_primary' },
    ],
  });
  t.same(api.route.default, { kind: 'variable', name: 'nginx_canary_api_split' });
  t.equal(api.route.variable, 'nginx_canary_api');
  t.same(api.route.source, [], 'no override configured: no source');
  t.same(api.route.overrides, []);
  t.equal(api.override, null);
  t.equal(canaryShare(m, 'api'), 20, 'the share of keys is the bucket size');

  t.same(svcOf(at(0), 'api').splitClients?.buckets, [{ percent: null, upstream: 'api_primary' }], '0: only *');
  t.equal(canaryShare(at(0), 'api'), 0);
  t.same(svcOf(at(100), 'api').splitClients?.buckets, [{ percent: null, upstream: 'api_canary' }], '100: only *');
  t.equal(canaryShare(at(100), 'api'), 100);
  t.same(svcOf(at(0.1), 'api').splitClients?.buckets[0], { percent: 0.1, upstream: 'api_canary' }, '0.1 % resolution');
  t.equal(svcOf(at(12.34), 'api').splitClients?.buckets[0]?.percent, 12.3, 'rounded to 0.1');
  t.equal(svcOf(at(99.9), 'api').splitClients?.buckets[0]?.percent, 99.9);
  t.ok(
    svcOf(at(0), 'api').upstreams.every((u) => u.servers.every((s) => !s.down)),
    'nothing is down in split_clients: the bucket decides',
  );
  t.same(svcOf(at(5, { ...svc, splitKey: '$http_x_client' }), 'api').splitClients?.key, ['http_x_client']);
  for (const bad of ['remote_addr', '$', '$a$', '$a b', '$A'])
    t.throws(() => at(5, { ...svc, splitKey: bad }), /not nginx variables only/, bad);
});

t.test(
  'a property: for any weight 0–100 step 0.1, split_clients buckets are one canary bucket of the weight and *',
  async (t) => {
    const svc = makeService('api', ['127.0.0.1:1'], ['127.0.0.1:2'], { split: 'split_clients' });
    const config = makeConfig('/m', { services: [svc] });
    t.doesNotThrow(
      () =>
        fc.assert(
          fc.property(fc.integer({ min: 0, max: 1000 }), (tenths) => {
            const m = buildModel(config, { api: tenths / 10 }, 1, 'oss');
            const b = svcOf(m, 'api').splitClients?.buckets ?? [];
            const last = b.at(-1);
            const percents = b.filter((x) => x.percent !== null).map((x) => x.percent ?? 0);
            return (
              last?.percent === null &&
              percents.every((p) => p > 0 && p < 100 && Math.round(p * 10) === p * 10) &&
              Math.abs(canaryShare(m, 'api') - tenths / 10) < 1e-9
            );
          }),
          { numRuns: 1001 },
        ),
      '1001 weights checked',
    );
  },
);

t.test(
  'X-Canary override: a geo of the allow list, a map on "<geo>:<header>", always to the primary when drained',
  async (t) => {
    const allow = ['127.0.0.1', '10.1.2.0/24', '::1'];
    for (const split of ['weighted', 'split_clients'] as const) {
      const config = makeConfig('/m', {
        services: [
          makeService('gateway', ['127.0.0.1:1'], ['127.0.0.1:2'], { split, override: { allow } }),
          makeService('api', ['127.0.0.1:3'], ['127.0.0.1:4'], { split }),
        ],
      });
      const split0 =
        split === 'weighted'
          ? { kind: 'upstream', name: 'gateway' }
          : { kind: 'variable', name: 'nginx_canary_gateway_split' };
      const idle = buildModel(config, { gateway: 0 }, 1, 'oss');
      const gw = svcOf(idle, 'gateway');
      t.same(
        gw.override,
        { variable: 'nginx_canary_gateway_override', allowed: '1', other: '0', allow },
        `${split}: geo $nginx_canary_gateway_override { default 0; <entry> 1; … }`,
      );
      t.same(
        gw.route,
        {
          source: ['nginx_canary_gateway_override', 'http_x_canary'],
          variable: 'nginx_canary_gateway',
          default: split0,
          overrides: [
            { value: 'always', key: '1:always', upstream: 'gateway_canary' },
            { value: 'never', key: '1:never', upstream: 'gateway_primary' },
          ],
        },
        `${split}: an allowed client's always reaches the canary at weight 0 (the pre-slice smoke test)`,
      );
      t.equal(gw.drained, false);
      t.same(svcOf(idle, 'api').route.overrides, [], `${split}: a service without override has none`);

      const drained = buildModel(config, { gateway: 0 }, 2, 'oss', { drained: ['gateway', 'gateway', 'removed'] });
      const d = svcOf(drained, 'gateway');
      t.equal(d.drained, true, `${split}: drained`);
      t.same(
        d.route.overrides,
        [
          { value: 'always', key: '1:always', upstream: 'gateway_primary' },
          { value: 'never', key: '1:never', upstream: 'gateway_primary' },
        ],
        `${split}: drained: always goes to the primary`,
      );
      t.same(d.override, gw.override, `${split}: the allow list is unchanged`);
      t.equal(svcOf(drained, 'api').drained, false, `${split}: only the named service`);
      t.same(
        svcOf(buildModel(config, { gateway: 30 }, 3, 'oss', { drained: [] }), 'gateway').route.overrides[0]?.upstream,
        'gateway_canary',
        `${split}: an empty drained list changes nothing`,
      );
    }
    t.equal(overrideVariable('gateway'), 'nginx_canary_gateway_override');
    t.same([OVERRIDE_SOURCE, OVERRIDE_ALLOWED, OVERRIDE_OTHER], ['http_x_canary', '1', '0']);
    const config = makeConfig('/m', {
      services: [makeService('gateway', ['127.0.0.1:1'], ['127.0.0.1:2'], { override: { allow: ['::1'] } })],
    });
    const m = buildModel(config, { gateway: 5 }, 1, 'oss');
    config.services[0]!.override!.allow.push('10.0.0.0/8');
    t.same(svcOf(m, 'gateway').override?.allow, ['::1'], 'the model holds a copy of the allow list');
  },
);
