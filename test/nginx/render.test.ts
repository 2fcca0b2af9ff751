import t from 'tap';
import type { Config } from '../../src/config/types.js';
import { buildModel, type UpstreamsModel } from '../../src/nginx/model.js';
import { assertSafeModel, parseHeader, refuseHtmlEscape, renderUpstreams } from '../../src/nginx/render.js';
import type { Flavor } from '../../src/nginx/types.js';
import { makeConfig, makeServer, makeService } from '../fixtures/nginx/config.js';
import { matchGolden } from '../fixtures/nginx/golden.js';
import { nginxTestRendered } from '../fixtures/nginx/harness.js';

const LOG_FORMAT =
  `log_format nginx_canary escape=json '{"msec":"$msec","status":"$status","upstream":"$proxy_host","addr":"$upstream_addr",` +
  `"ustatus":"$upstream_status","connect":"$upstream_connect_time","header":"$upstream_header_time",` +
  `"response":"$upstream_response_time","request_time":"$request_time"}';`;

interface Variant {
  name: string;
  config: Config;
  weights: Record<string, number>;
  generation: number;
  flavor: Flavor;
}

const base = makeConfig('/golden');
const variants: Variant[] = [
  { name: 'weight-0', config: base, weights: { gateway: 0 }, generation: 1, flavor: 'oss' },
  { name: 'weight-5', config: base, weights: { gateway: 5 }, generation: 2, flavor: 'oss' },
  { name: 'weight-30', config: base, weights: { gateway: 30 }, generation: 3, flavor: 'oss' },
  { name: 'weight-100', config: base, weights: { gateway: 100 }, generation: 4, flavor: 'oss' },
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
];

function render(v: Variant): { model: UpstreamsModel; text: string } {
  const model = buildModel(v.config, v.weights, v.generation, v.flavor);
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
    /upstream gateway \{\n {4}server 127\.0\.0\.1:18789 weight=7 max_fails=3 fail_timeout=20s; # primary\n {4}server 127\.0\.0\.1:18890 weight=3 max_fails=1 fail_timeout=10s; # canary\n\}/,
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
    () => renderUpstreams(evil((m) => (m.upstreams[0]!.name = 'x { }'))),
    /unsafe value at model\.upstreams\[0\]\.name/,
  );
  t.throws(
    () => renderUpstreams(evil((m) => (m.upstreams[0]!.servers[0]!.address = '127.0.0.1:1;include /etc/passwd'))),
    /unsafe value/,
  );
  t.throws(
    () => renderUpstreams(evil((m) => (m.statusListen = '127.0.0.1:9465\nlisten 0.0.0.0:80'))),
    /unsafe value at model\.statusListen/,
  );
  t.throws(() => renderUpstreams(evil((m) => (m.upstreams[0]!.servers[0]!.failTimeout = '$x'))), /unsafe value/);
  t.throws(() => renderUpstreams(evil((m) => (m.upstreams[0]!.servers[0]!.failTimeout = ''))), /unsafe value/);
  t.throws(() => renderUpstreams(evil((m) => (m.generation = Number.NaN))), /unsafe value at model\.generation/);
  t.throws(() => assertSafeModel(evil((m) => (m.weights = { 'a"b': 1 }))), /unsafe key/);
  t.doesNotThrow(() => assertSafeModel(good));
});

t.test('the template never HTML-escapes (EJS <%= is refused)', async (t) => {
  t.throws(() => refuseHtmlEscape(), /<%- only/);
});
