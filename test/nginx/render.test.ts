import { rm } from 'node:fs/promises';
import t from 'tap';
import type { Config, SplitMode } from '../../src/config/types.js';
import { buildModel, type UpstreamsModel } from '../../src/nginx/model.js';
import { assertRawOutputOnly, assertSafeModel, parseHeader, renderUpstreams } from '../../src/nginx/render.js';
import type { Flavor } from '../../src/nginx/types.js';
import { makeConfig, makeServer, makeService } from '../fixtures/nginx/config.js';
import { matchGolden } from '../fixtures/nginx/golden.js';
import { nginxTestRendered, tempDir, writeExampleConf } from '../fixtures/nginx/harness.js';
import { checkRendered } from '../../src/nginx/scratch.js';

const LOG_FORMAT =
  `log_format nginx_canary escape=json '{"msec":"$msec","status":"$status","upstream":"$proxy_host","addr":"$upstream_addr",` +
  `"ustatus":"$upstream_status","connect":"$upstream_connect_time","header":"$upstream_header_time",` +
  `"response":"$upstream_response_time","request_time":"$request_time","sample":"$nginx_canary_log"}';`;

interface Variant {
  name: string;
  config: Config;
  weights: Record<string, number>;
  generation: number;
  flavor: Flavor;
  /** buildModel's `drained` (default none). */
  drained?: string[];
}

const base = makeConfig('/golden');
/** The default gateway service (primary 127.0.0.1:18789, canary 127.0.0.1:18890) with another split mode. */
function splitConfig(split: SplitMode = 'split_clients'): Config {
  return makeConfig('/golden', {
    services: [makeService('gateway', ['127.0.0.1:18789'], ['127.0.0.1:18890'], { split })],
  });
}
/** The X-Canary override allow list of the override variants: IPv4, an IPv4 CIDR, IPv6 and an IPv6 CIDR. */
const ALLOW = ['127.0.0.1', '10.1.2.0/24', '::1', 'fd00::/8'];
/** gateway (split `split`) with an X-Canary override from {@link ALLOW}, and api (weighted) without one. */
function overrideConfig(split: SplitMode): Config {
  return makeConfig('/golden', {
    services: [
      makeService('gateway', ['127.0.0.1:18789'], ['127.0.0.1:18890'], { split, override: { allow: ALLOW } }),
      makeService('api', ['10.0.0.7:8080'], ['10.0.0.8:8080']),
    ],
  });
}
/**
 * The per-pool upstreams of the default gateway (`base`/`splitConfig`), as
 * both split modes render them: the canary pool falls back to the primary
 * (`backup`); keepalive 32 and 4 s are the config defaults.
 */
const POOL_UPSTREAMS = [
  'upstream gateway_primary {',
  '    zone nginx_canary_gateway_primary 64k;',
  '    server 127.0.0.1:18789 max_fails=3 fail_timeout=20s; # primary',
  '    keepalive 32;',
  '    keepalive_timeout 4s;',
  '}',
  'upstream gateway_canary {',
  '    zone nginx_canary_gateway_canary 64k;',
  '    server 127.0.0.1:18890 max_fails=1 fail_timeout=10s; # canary',
  '    server 127.0.0.1:18789 max_fails=3 fail_timeout=20s backup; # primary',
  '    keepalive 32;',
  '    keepalive_timeout 4s;',
  '}',
];
const variants: Variant[] = [
  { name: 'weight-0', config: base, weights: { gateway: 0 }, generation: 1, flavor: 'oss' },
  { name: 'weight-5', config: base, weights: { gateway: 5 }, generation: 2, flavor: 'oss' },
  { name: 'weight-30', config: base, weights: { gateway: 30 }, generation: 3, flavor: 'oss' },
  { name: 'weight-100', config: base, weights: { gateway: 100 }, generation: 4, flavor: 'oss' },
  {
    name: 'log-sample-20',
    config: { ...base, nginx: { ...base.nginx, accessLogSample: 20 } },
    weights: { gateway: 30 },
    generation: 5,
    flavor: 'oss',
  },
  {
    name: 'multi-server',
    config: makeConfig('/golden', {
      services: [
        makeService(
          'gateway',
          ['127.0.0.1:18789', '127.0.0.1:18790', '127.0.0.1:18791'],
          ['127.0.0.1:18890', '127.0.0.1:18891'],
        ),
        makeService('api', ['10.0.0.7:8080'], ['10.0.0.8:8080'], {
          canary: [makeServer('10.0.0.8:8080', 'canary', { failTimeoutMs: 1500, maxFails: 2 })],
        }),
      ],
    }),
    weights: { gateway: 30, api: 12.5 },
    generation: 5,
    flavor: 'oss',
  },
  {
    name: 'ipv6',
    config: makeConfig('/golden', {
      nginx: { statusListen: { host: '::1', port: 9465 } },
      services: [makeService('gateway', ['[::1]:18789'], ['[::1]:18890'])],
    }),
    weights: { gateway: 0.1 },
    generation: 6,
    flavor: 'oss',
  },
  { name: 'plus-slow-start', config: base, weights: { gateway: 30 }, generation: 7, flavor: 'plus' },
  ...[0, 0.1, 20, 100].map((w, i): Variant => ({
    name: `split-clients-${w}`,
    config: splitConfig(),
    weights: { gateway: w },
    generation: 10 + i,
    flavor: 'oss',
  })),
  {
    name: 'split-clients-key-multi-server',
    config: makeConfig('/golden', {
      services: [
        makeService('gateway', ['127.0.0.1:18789', '127.0.0.1:18790'], ['127.0.0.1:18890', '127.0.0.1:18891'], {
          split: 'split_clients',
          splitKey: '$http_x_client',
        }),
      ],
    }),
    weights: { gateway: 12.5 },
    generation: 14,
    flavor: 'oss',
  },
  {
    name: 'mixed-modes',
    config: makeConfig('/golden', {
      services: [
        makeService('gateway', ['127.0.0.1:18789'], ['127.0.0.1:18890']),
        makeService('api', ['10.0.0.7:8080'], ['10.0.0.8:8080'], { split: 'split_clients' }),
      ],
    }),
    weights: { gateway: 30, api: 5 },
    generation: 15,
    flavor: 'oss',
  },
  { name: 'split-clients-plus', config: splitConfig(), weights: { gateway: 30 }, generation: 16, flavor: 'plus' },
  {
    name: 'override-weighted',
    config: overrideConfig('weighted'),
    weights: { gateway: 0, api: 5 },
    generation: 17,
    flavor: 'oss',
  },
  {
    name: 'override-split-clients',
    config: overrideConfig('split_clients'),
    weights: { gateway: 20, api: 5 },
    generation: 18,
    flavor: 'oss',
  },
  {
    name: 'override-drained',
    config: overrideConfig('weighted'),
    weights: { gateway: 0, api: 5 },
    generation: 19,
    flavor: 'oss',
    drained: ['gateway'],
  },
];

function render(v: Variant): { model: UpstreamsModel; text: string } {
  const model = buildModel(v.config, v.weights, v.generation, v.flavor, { drained: v.drained ?? [] });
  return { model, text: renderUpstreams(model) };
}

t.test('every variant matches its golden file', async (t) => {
  for (const v of variants) await matchGolden(t, v.name, render(v).text);
});

t.test('every open-source variant passes nginx -t on the real nginx inside the example nginx.conf', async (t) => {
  const oss = variants.filter((v) => v.flavor === 'oss');
  const results = await Promise.all(oss.map((v) => nginxTestRendered(render(v).text)));
  oss.forEach((v, i) => {
    const r = results[i];
    t.ok(r?.ok, `${v.name}: nginx -t passes`, { output: r?.output });
  });
});

t.test('slow_start is left out for open-source nginx because nginx 1.22 rejects it', async (t) => {
  const plus = variants.find((v) => v.flavor === 'plus');
  if (!plus) throw new Error('no plus variant');
  const { text } = render(plus);
  t.match(
    text,
    /server 127\.0\.0\.1:18890 weight=3 max_fails=1 fail_timeout=10s slow_start=30s;/,
    'plus renders slow_start on the canary',
  );
  t.notMatch(text, /127\.0\.0\.1:18789[^\n]*slow_start/, 'the primary has no slow_start configured');
  const r = await nginxTestRendered(text);
  t.notOk(r.ok, 'open-source nginx -t fails on the plus rendering');
  t.match(r.output, /invalid parameter "slow_start/);
  const oss = render({ ...plus, flavor: 'oss' }).text;
  t.notMatch(oss, /slow_start/, 'the oss rendering of the same config has no slow_start');
});

t.test('the rendered file holds the header, the exact log_format, the upstreams and the status server', async (t) => {
  const v = variants.find((x) => x.name === 'weight-30');
  if (!v) throw new Error('missing variant');
  const { text } = render(v);
  t.ok(text.startsWith('# Written by nginx-canary; do not edit'), 'header first');
  t.match(text, /^# generation: 3$/m);
  t.match(text, /^# weights: gateway=30$/m);
  t.ok(text.split('\n').includes(LOG_FORMAT), 'the log_format line is exactly the contract');
  t.match(
    text,
    /upstream gateway \{\n {4}zone nginx_canary_gateway 64k;\n {4}server 127\.0\.0\.1:18789 weight=7 max_fails=3 fail_timeout=20s; # primary\n {4}server 127\.0\.0\.1:18890 weight=3 max_fails=1 fail_timeout=10s; # canary\n {4}keepalive 32;\n {4}keepalive_timeout 4s;\n\}/,
  );
  t.match(
    text,
    /listen 127\.0\.0\.1:9465;\n {4}access_log off;\n {4}location = \/generation \{ default_type text\/plain; return 200 "3\\n"; \}\n {4}location = \/stub_status \{ stub_status; \}/,
  );
});

t.test('a pool at 0 and at 100 stays in the file as down', async (t) => {
  const zero = render({ ...variants[0]!, weights: { gateway: 0 } }).text;
  t.match(zero, /server 127\.0\.0\.1:18890 weight=1 max_fails=1 fail_timeout=10s down; # canary/);
  t.match(zero, /server 127\.0\.0\.1:18789 weight=1 max_fails=3 fail_timeout=20s; # primary/);
  const full = render({ ...variants[0]!, weights: { gateway: 100 } }).text;
  t.match(full, /server 127\.0\.0\.1:18789 weight=1 max_fails=3 fail_timeout=20s down; # primary/);
  t.match(full, /server 127\.0\.0\.1:18890 weight=1 max_fails=1 fail_timeout=10s; # canary/);
});

t.test('parseHeader reads back generation and weights', async (t) => {
  const v = variants.find((x) => x.name === 'multi-server');
  if (!v) throw new Error('missing variant');
  t.same(parseHeader(render(v).text), { generation: 5, weights: { gateway: 30, api: 12.5 } });
  t.equal(parseHeader('upstream x { server 1.2.3.4:80; }\n'), null, 'a hand-written file has no header');
  t.equal(parseHeader('# Written by nginx-canary\n# weights: a=1\n'), null, 'no generation line');
  t.equal(parseHeader('# Written by nginx-canary\n# generation: 2\n'), null, 'no weights line');
  t.equal(
    parseHeader('# Written by nginx-canary\n# generation: 2\n# weights: a=x\n'),
    null,
    'a weight that is not a number',
  );
  t.same(
    parseHeader('# Written by nginx-canary\n# generation: 2\n# weights:\n'),
    { generation: 2, weights: {} },
    'no services',
  );
});

t.test('the renderer refuses a value that could inject nginx syntax', async (t) => {
  const good = render(variants[2]!).model;
  const evil = (f: (m: UpstreamsModel) => void): UpstreamsModel => {
    const m = structuredClone(good);
    f(m);
    return m;
  };
  t.throws(
    () => renderUpstreams(evil((m) => (m.services[0]!.upstreams[0]!.name = 'x { }'))),
    /unsafe value at model\.services\[0\]\.upstreams\[0\]\.name/,
  );
  t.throws(
    () =>
      renderUpstreams(
        evil((m) => (m.services[0]!.upstreams[0]!.servers[0]!.address = '127.0.0.1:1;include /etc/passwd')),
      ),
    /unsafe value/,
  );
  t.throws(
    () => renderUpstreams(evil((m) => (m.statusListen = '127.0.0.1:9465\nlisten 0.0.0.0:80'))),
    /unsafe value at model\.statusListen/,
  );
  t.throws(
    () => renderUpstreams(evil((m) => (m.services[0]!.upstreams[0]!.servers[0]!.failTimeout = '$x'))),
    /unsafe value/,
  );
  t.throws(
    () => renderUpstreams(evil((m) => (m.services[0]!.upstreams[0]!.servers[0]!.failTimeout = ''))),
    /unsafe value/,
  );
  t.throws(() => renderUpstreams(evil((m) => (m.generation = Number.NaN))), /unsafe value at model\.generation/);
  t.throws(() => assertSafeModel(evil((m) => (m.weights = { 'a"b': 1 }))), /unsafe key/);
  t.throws(
    () => renderUpstreams(evil((m) => (m.services[0]!.route.variable = 'x;default'))),
    /unsafe value at model\.services\[0\]\.route\.variable/,
  );
  const split = render(variants.find((v) => v.name === 'split-clients-20')!).model;
  t.throws(
    () =>
      renderUpstreams(
        (() => {
          const m = structuredClone(split);
          m.services[0]!.splitClients!.key = ['remote_addr"; include /x; "'];
          return m;
        })(),
      ),
    /unsafe value at model\.services\[0\]\.splitClients\.key\[0\]/,
  );
  t.throws(
    () =>
      renderUpstreams(
        (() => {
          const m = structuredClone(split);
          m.services[0]!.splitClients!.key = ['$remote_addr'];
          return m;
        })(),
      ),
    /unsafe value/,
    'the model holds variable names without $',
  );
  t.doesNotThrow(() => assertSafeModel(good));
});

t.test('the template never HTML-escapes (EJS <%= is refused, with its line)', async (t) => {
  t.throws(
    () => assertRawOutputOnly('upstream a {\n  server <%- m.x %>;\n  server <%= m.y %>;\n}\n', 'x.ejs'),
    /^x\.ejs:3 uses <%= \(HTML escaping\); print pre-validated values with <%- only$/,
  );
  t.doesNotThrow(() => assertRawOutputOnly('server <%- m.x %>; <%# a comment %>\n', 'x.ejs'));
});

t.test(
  'a template error reports itself, not the escaping rule (EJS escapes the file name while it rethrows)',
  async (t) => {
    const model = structuredClone(render(variants[2]!).model) as Partial<UpstreamsModel>;
    delete model.logVariables; // a model older than the template: what a stale dist/ beside a new template renders
    // The shipped template's own line and the missing key: before, every template error read
    // "upstreams.conf.ejs used <%= ; print pre-validated values with <%- only".
    const err = ((): unknown => {
      try {
        return renderUpstreams(model as UpstreamsModel);
      } catch (e) {
        return e;
      }
    })();
    t.type(err, Error);
    t.match((err as Error).message, /upstreams\.conf\.ejs:\d+[\s\S]*reading 'log'/);
    t.notMatch((err as Error).message, /<%- only/);
  },
);

t.test('both split modes pass nginx -t at 0, 0.1, 50 and 100', async (t) => {
  const cases = (['weighted', 'split_clients'] as const).flatMap((split) =>
    [0, 0.1, 50, 100].map((w) => ({ split, w })),
  );
  const results = await Promise.all(
    cases.map(({ split, w }) =>
      nginxTestRendered(renderUpstreams(buildModel(splitConfig(split), { gateway: w }, 1, 'oss'))),
    ),
  );
  cases.forEach(({ split, w }, i) =>
    t.ok(results[i]?.ok, `${split} at ${w}: nginx -t passes`, { output: results[i]?.output }),
  );
});

t.test('weighted: upstream gateway exactly as before, then the per-pool upstreams and the route map', async (t) => {
  const { text } = render(variants.find((x) => x.name === 'weight-0')!);
  t.match(
    text,
    [
      '# gateway: canary 0 %, split weighted',
      'upstream gateway {',
      '    zone nginx_canary_gateway 64k;',
      '    server 127.0.0.1:18789 weight=1 max_fails=3 fail_timeout=20s; # primary',
      '    server 127.0.0.1:18890 weight=1 max_fails=1 fail_timeout=10s down; # canary',
      '    keepalive 32;',
      '    keepalive_timeout 4s;',
      '}',
      ...POOL_UPSTREAMS,
      'map "" $nginx_canary_gateway {',
      '    default gateway;',
      '}',
    ].join('\n'),
    'the four blocks, canary not down in gateway_canary at weight 0; no override: a map without a source',
  );
  t.notMatch(text, /http_x_canary|^geo /m, 'without override the header is not read and there is no geo');
  t.notMatch(text, /^split_clients/m, 'no split_clients block');
});

t.test('split_clients: per-pool upstreams, the split_clients block and the route map', async (t) => {
  const { text } = render(variants.find((x) => x.name === 'split-clients-20')!);
  t.match(
    text,
    [
      '# gateway: canary 20 %, split split_clients',
      ...POOL_UPSTREAMS,
      'split_clients "$remote_addr$http_user_agent" $nginx_canary_gateway_split {',
      '    20% gateway_canary;',
      '    * gateway_primary;',
      '}',
      'map "" $nginx_canary_gateway {',
      '    default $nginx_canary_gateway_split;',
      '}',
    ].join('\n'),
  );
  t.notMatch(text, /http_x_canary|^geo /m, 'without override the header is not read and there is no geo');
  t.notMatch(text, /^upstream gateway \{/m, 'no plain upstream gateway');
  const at = (w: number): string => renderUpstreams(buildModel(splitConfig(), { gateway: w }, 1, 'oss'));
  t.match(at(0.1), /\{\n {4}0\.1% gateway_canary;\n {4}\* gateway_primary;\n\}/, '0.1 % printed as 0.1%');
  t.match(at(0), /\$nginx_canary_gateway_split \{\n {4}\* gateway_primary;\n\}/, '0: only * primary');
  t.match(at(100), /\$nginx_canary_gateway_split \{\n {4}\* gateway_canary;\n\}/, '100: only * canary');
  t.match(at(99.9), /\{\n {4}99\.9% gateway_canary;\n {4}\* gateway_primary;\n\}/);
  t.same(
    parseHeader(at(12.3)),
    { generation: 1, weights: { gateway: 12.3 } },
    'parseHeader reads a split_clients file',
  );
});

t.test('X-Canary override: a geo of the allow list and a map on "<geo>:<header>", in both split modes', async (t) => {
  const geo = [
    'geo $nginx_canary_gateway_override {',
    '    default 0;',
    '    127.0.0.1 1;',
    '    10.1.2.0/24 1;',
    '    ::1 1;',
    '    fd00::/8 1;',
    '}',
  ];
  const weighted = render(variants.find((x) => x.name === 'override-weighted')!).text;
  t.match(
    weighted,
    [
      '# gateway: canary 0 %, split weighted',
      'upstream gateway {',
      '    zone nginx_canary_gateway 64k;',
      '    server 127.0.0.1:18789 weight=1 max_fails=3 fail_timeout=20s; # primary',
      '    server 127.0.0.1:18890 weight=1 max_fails=1 fail_timeout=10s down; # canary',
      '    keepalive 32;',
      '    keepalive_timeout 4s;',
      '}',
      ...POOL_UPSTREAMS,
      ...geo,
      'map "$nginx_canary_gateway_override:$http_x_canary" $nginx_canary_gateway {',
      '    default gateway;',
      '    1:always gateway_canary;',
      '    1:never gateway_primary;',
      '}',
    ].join('\n'),
  );
  t.match(weighted, 'map "" $nginx_canary_api {\n    default api;\n}', 'api has no override');
  t.equal(weighted.match(/^geo /gm)?.length, 1, 'one geo block: only gateway has an override');
  const split = render(variants.find((x) => x.name === 'override-split-clients')!).text;
  t.match(
    split,
    [
      '    * gateway_primary;',
      '}',
      ...geo,
      'map "$nginx_canary_gateway_override:$http_x_canary" $nginx_canary_gateway {',
      '    default $nginx_canary_gateway_split;',
      '    1:always gateway_canary;',
      '    1:never gateway_primary;',
      '}',
    ].join('\n'),
  );
  const drained = render(variants.find((x) => x.name === 'override-drained')!).text;
  t.match(drained, /^# gateway: canary 0 %, split weighted, drained$/m, 'the comment line says drained');
  t.match(drained, /^# api: canary 5 %, split weighted$/m, 'only for the drained service');
  t.match(drained, '    1:always gateway_primary;\n    1:never gateway_primary;\n}', 'drained: always → the primary');
  t.notMatch(drained, /1:always gateway_canary/);
  t.same(parseHeader(drained), { generation: 19, weights: { gateway: 0, api: 5 } }, 'the header is parsed as before');
  const results = await Promise.all([weighted, split, drained].map((text) => nginxTestRendered(text)));
  for (const r of results) {
    t.ok(r.ok, 'nginx -t passes', { output: r.output });
    t.notMatch(r.output, /\[warn\]/, 'without a warning (no "low address bits", no "duplicate network")');
  }
});

t.test('the renderer refuses an allow entry or a map source that could inject nginx syntax', async (t) => {
  const good = render(variants.find((x) => x.name === 'override-weighted')!).model;
  const evil = (f: (m: UpstreamsModel) => void): UpstreamsModel => {
    const m = structuredClone(good);
    f(m);
    return m;
  };
  t.throws(
    () => renderUpstreams(evil((m) => (m.services[0]!.override!.allow[0] = '0.0.0.0/0 1; default'))),
    /unsafe value at model\.services\[0\]\.override\.allow\[0\]/,
  );
  t.throws(
    () => renderUpstreams(evil((m) => (m.services[0]!.route.source[1] = 'http_x_canary" $x {'))),
    /unsafe value at model\.services\[0\]\.route\.source\[1\]/,
  );
});

t.test('nginx 1.22 takes split_clients percentages with up to two decimals and refuses 0%', async (t) => {
  const text = renderUpstreams(buildModel(splitConfig(), { gateway: 20 }, 1, 'oss'));
  const [two, three, zero] = await Promise.all([
    nginxTestRendered(text.replace('    20% gateway_canary;', '    20.25% gateway_canary;')),
    nginxTestRendered(text.replace('    20% gateway_canary;', '    20.125% gateway_canary;')),
    nginxTestRendered(text.replace('    20% gateway_canary;', '    0% gateway_canary;')),
  ]);
  t.ok(two?.ok, 'two decimals pass: our 0.1 % resolution is representable', { output: two?.output });
  t.notOk(three?.ok, 'three decimals fail');
  t.match(three?.output, /invalid percent value "20\.125%"/);
  t.notOk(zero?.ok, '0% fails, hence only `*` at weight 0');
  t.match(zero?.output, /invalid percent value "0%"/);
});

t.test(
  'an nginx.conf still on proxy_pass http://gateway: works when weighted, fails nginx -t when split_clients',
  async (t) => {
    const old = (s: string): string => {
      const out = s.replace('proxy_pass http://$nginx_canary_gateway;', 'proxy_pass http://gateway;');
      if (out === s) throw new Error('the example nginx.conf no longer says proxy_pass http://$nginx_canary_gateway;');
      return out;
    };
    const check = async (split: SplitMode) => {
      const dir = await tempDir('nginx-canary-old-conf-');
      try {
        const config = makeConfig(dir, { services: splitConfig(split).services });
        await writeExampleConf(config, 18080, old);
        return await checkRendered(config, renderUpstreams(buildModel(config, { gateway: 30 }, 1, 'oss')));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    };
    const weighted = await check('weighted');
    t.ok(weighted.ok, 'weighted keeps upstream gateway', { output: weighted.output });
    const split = await check('split_clients');
    t.notOk(split.ok, 'split_clients has no upstream gateway');
    t.match(split.output, /host not found in upstream "gateway"/);
  },
);

t.test('the header comment tells the operator how to route', async (t) => {
  const { text } = render(variants[0]!);
  const header = text.slice(0, text.indexOf('log_format'));
  t.match(header, /proxy_pass http:\/\/\$nginx_canary_<service>;/);
  t.match(header, /proxy_set_header Host \$host;/);
  t.match(header, /host not found in upstream/);
  t.ok(
    header.split('\n').every((l) => l === '' || l.startsWith('#')),
    'the header is comments only',
  );
});

t.test('upstream keepalive: rendered in every upstream block, none at upstream_keepalive 0', async (t) => {
  for (const split of ['weighted', 'split_clients'] as const) {
    const config = splitConfig(split);
    const on = render({ name: 'k', config, weights: { gateway: 20 }, generation: 1, flavor: 'oss' }).text;
    const blocks = on.match(/^upstream \w+ \{[^}]*\}/gm) ?? [];
    t.equal(blocks.length, split === 'weighted' ? 3 : 2, `${split}: upstream blocks`);
    for (const b of blocks)
      t.match(b, /\n {4}keepalive 32;\n {4}keepalive_timeout 4s;\n\}$/, `${split}: ${b.split(' ')[1]}`);
    const offConfig = { ...config, nginx: { ...config.nginx, upstreamKeepalive: 0 } };
    const off = render({ name: 'k', config: offConfig, weights: { gateway: 20 }, generation: 1, flavor: 'oss' }).text;
    t.notMatch(off, /keepalive/, `${split}: keepalive 0 renders no keepalive line`);
  }
  const slow = { ...base, nginx: { ...base.nginx, upstreamKeepaliveTimeoutMs: 1500 } };
  t.match(
    render({ name: 'k', config: slow, weights: { gateway: 5 }, generation: 1, flavor: 'oss' }).text,
    /keepalive_timeout 2s;/,
    'the timeout rounds to whole seconds',
  );
});
