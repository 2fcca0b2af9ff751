import t from 'tap';
import { buildModel } from '../../src/nginx/model.js';
import { buildAttribution, loggedAddresses, normalizeHost, serviceOfUpstream } from '../../src/observe/attribute.js';
import { config, gatewayConfig, server, service } from '../fixtures/observe/config.js';

t.test('each configured server is found by the address nginx logs', async (t) => {
  const map = buildAttribution(gatewayConfig());
  t.same(map.attribute('127.0.0.1:18789'), { service: 'gateway', pool: 'primary', server: '127.0.0.1:18789' });
  t.same(map.attribute('127.0.0.1:18890'), { service: 'gateway', pool: 'canary', server: '127.0.0.1:18890' });
  t.equal(map.attribute('gateway'), null, 'the upstream name (no live server) is unattributed');
  t.equal(map.attribute('127.0.0.1:9999'), null, 'a server of an unmanaged upstream is unattributed');
  t.same(
    map.servers.map((s) => `${s.pool}:${s.server}`),
    ['primary:127.0.0.1:18789', 'canary:127.0.0.1:18890'],
  );
  t.same(map.conflicts, []);
});

t.test("IPv6 servers match nginx's compressed bracketed form", async (t) => {
  const map = buildAttribution(config([service('api', ['[0:0:0:0:0:0:0:1]:8080'], ['[::1]:8081'])]));
  t.same(map.attribute('[::1]:8080'), { service: 'api', pool: 'primary', server: '[0:0:0:0:0:0:0:1]:8080' });
  t.equal(map.attribute('[::1]:8081')?.pool, 'canary');
  t.equal(map.attribute('[0:0:0:0:0:0:0:1]:8080')?.pool, 'primary', 'the form as written also matches');
});

t.test('localhost matches both loopback addresses; other names only when resolved by the caller', async (t) => {
  const cfg = config([service('web', ['localhost:3000'], ['app.internal:3001'])]);
  const bare = buildAttribution(cfg);
  t.equal(bare.attribute('127.0.0.1:3000')?.pool, 'primary');
  t.equal(bare.attribute('[::1]:3000')?.pool, 'primary');
  t.equal(bare.attribute('10.0.0.7:3001'), null, 'no DNS in the pure module');
  const resolved = buildAttribution(cfg, { resolved: { 'app.internal': ['10.0.0.7', 'FE80::1'] } });
  t.equal(resolved.attribute('10.0.0.7:3001')?.pool, 'canary');
  t.equal(resolved.attribute('[fe80::1]:3001')?.pool, 'canary');
});

t.test('an address shared by two services is resolved by the upstream name, else unattributed', async (t) => {
  const cfg = config([
    service('alpha', ['127.0.0.1:7000'], ['127.0.0.1:7001']),
    service('beta', ['127.0.0.1:7000'], ['127.0.0.1:7002']),
  ]);
  const map = buildAttribution(cfg);
  t.same(map.conflicts, ['127.0.0.1:7000']);
  t.equal(map.attribute('127.0.0.1:7000'), null, 'ambiguous without an upstream');
  t.equal(map.attribute('127.0.0.1:7000', 'alpha')?.service, 'alpha');
  t.equal(map.attribute('127.0.0.1:7000', 'beta_primary')?.service, 'beta', 'split_clients upstream names');
  t.equal(map.attribute('127.0.0.1:7000', 'beta_canary')?.service, 'beta');
  t.equal(map.attribute('127.0.0.1:7000', 'gamma'), null);
  t.equal(map.attribute('127.0.0.1:7001', 'beta')?.service, 'alpha', 'an unambiguous address ignores the upstream');
});

t.test('a server whose written form is already normalized is indexed once', async (t) => {
  const map = buildAttribution(config([service('one', ['127.0.0.1:5000'], [])]));
  t.equal(map.size, 1, 'server string and normalized form coincide');
  t.same(map.conflicts, []);
});

t.test('loggedAddresses and normalizeHost', async (t) => {
  t.same(loggedAddresses(server('127.0.0.1:80')), ['127.0.0.1:80']);
  t.same(loggedAddresses(server('LOCALHOST:80')), ['LOCALHOST:80', 'localhost:80', '127.0.0.1:80', '[::1]:80']);
  t.same(loggedAddresses(server('[::1]:80')), ['[::1]:80']);
  t.same(loggedAddresses(server('Api.Internal:80'), { 'api.internal': ['10.1.1.1'] }), [
    'Api.Internal:80',
    'api.internal:80',
    '10.1.1.1:80',
  ]);
  t.same(
    loggedAddresses(server('Api.Internal:80'), { 'Api.Internal': ['10.1.1.2'] }).at(-1),
    '10.1.1.2:80',
    'keyed as written',
  );
  t.same(loggedAddresses(server('api.internal:80'), {}), ['api.internal:80'], 'unresolved name: only itself');
  t.equal(normalizeHost('127.1'), '127.0.0.1');
  t.equal(normalizeHost('[0::1]'), '::1');
  t.equal(normalizeHost('::FFFF:7f00:1'), '::ffff:7f00:1');
  t.equal(normalizeHost('bad host'), 'bad host', 'a host the URL parser rejects is kept as written');
});

t.test('serviceOfUpstream', async (t) => {
  t.equal(serviceOfUpstream('gateway'), 'gateway');
  t.equal(serviceOfUpstream('gateway_primary'), 'gateway');
  t.equal(serviceOfUpstream('gateway_canary'), 'gateway');
});

t.test('a service named like a split_clients upstream still matches itself', async (t) => {
  const cfg = config([service('gateway_canary', ['127.0.0.1:6000'], []), service('gateway', ['127.0.0.1:6000'], [])]);
  const map = buildAttribution(cfg);
  t.equal(map.attribute('127.0.0.1:6000', 'gateway_canary'), null, 'both services claim it: ambiguous');
  t.equal(map.attribute('127.0.0.1:6000', 'other'), null);
});

t.test(
  'every upstream name the renderer writes ($proxy_host) maps back to its service, in both split modes',
  async (t) => {
    const cfg = config([
      service('gateway', ['127.0.0.1:7000'], ['127.0.0.1:7001']),
      service('api', ['127.0.0.1:7000'], ['127.0.0.1:7002'], { split: 'split_clients' }),
    ]);
    const model = buildModel(cfg, { gateway: 30, api: 30 }, 1, 'oss');
    const names = model.services.flatMap((s) => s.upstreams.map((u) => [u.name, s.name] as const));
    t.same(
      names.map(([u]) => u),
      ['gateway', 'gateway_primary', 'gateway_canary', 'api_primary', 'api_canary'],
    );
    for (const [upstream, svc] of names) t.equal(serviceOfUpstream(upstream), svc, `${upstream} → ${svc}`);

    // 127.0.0.1:7000 is the primary of both services: the upstream name picks the service, the address the pool.
    const map = buildAttribution(cfg);
    t.same(map.conflicts, ['127.0.0.1:7000']);
    for (const [upstream, svc] of names) {
      t.same(
        map.attribute('127.0.0.1:7000', upstream),
        { service: svc, pool: 'primary', server: '127.0.0.1:7000' },
        `shared primary via ${upstream}`,
      );
    }
    t.same(
      map.attribute('127.0.0.1:7001', 'gateway_canary'),
      { service: 'gateway', pool: 'canary', server: '127.0.0.1:7001' },
      'X-Canary: always on a weighted service',
    );
    t.equal(
      map.attribute('gateway_canary', 'gateway_canary'),
      null,
      'the upstream name logged when no server was live',
    );
  },
);

t.test('serversInBytes finds by bytes what attribute finds by string, hash collisions included', async (t) => {
  // 'Aa' and 'BB' hash alike (31 × 65 + 97 = 31 × 66 + 66), so these two socket paths share a bucket.
  const cfg = config([
    service('alpha', ['127.0.0.1:7000', 'unix:/run/Aa'], ['[::1]:7001']),
    service('beta', ['127.0.0.1:7000', 'unix:/run/BB'], ['localhost:7002']),
  ]);
  const map = buildAttribution(cfg);
  const inBytes = (addr: string) => {
    const buf = Buffer.from(`"${addr}",`);
    return map.serversInBytes(buf, 1, buf.length - 2);
  };
  for (const addr of ['unix:/run/Aa', 'unix:/run/BB', '[::1]:7001', '127.0.0.1:7002', '[::1]:7002', 'localhost:7002']) {
    const list = inBytes(addr);
    t.equal(list?.length, 1, addr);
    t.equal(list?.[0], map.attribute(addr), `${addr}: the same server`);
  }
  t.same(
    inBytes('127.0.0.1:7000')?.map((a) => a.service),
    ['alpha', 'beta'],
    'a shared address gives every server: attribute() picks by upstream',
  );
  t.equal(inBytes('127.0.0.1:7003'), undefined, 'unknown');
  t.equal(inBytes('unix:/run/A'), undefined, 'a prefix is not a match');
  t.equal(inBytes(''), undefined);
});
