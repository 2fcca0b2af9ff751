/**
 * Unix-socket servers in the rendered include file (README "Backends on unix sockets"):
 * `server unix:/run/app.sock weight=… max_fails=… fail_timeout=…;` in every
 * upstream the server belongs to, accepted by the real nginx 1.22 (`nginx -t`)
 * in both split modes, beside TCP servers, and with the longest path the
 * config loader lets through (one byte more is what nginx refuses too).
 */
import t from 'tap';
import { MAX_SOCKET_PATH_BYTES } from '../../src/config/validate.js';
import { buildModel, canaryShare } from '../../src/nginx/model.js';
import { renderUpstreams } from '../../src/nginx/render.js';
import type { Flavor } from '../../src/nginx/types.js';
import type { Config, SplitMode } from '../../src/config/types.js';
import { makeConfig, makeService } from '../fixtures/nginx/config.js';
import { nginxTestRendered } from '../fixtures/nginx/harness.js';

const PRIMARY = 'unix:/run/gateway/primary.sock';
const CANARY = 'unix:/run/gateway/canary.sock';

function unixConfig(split: SplitMode = 'weighted', primary = [PRIMARY], canary = [CANARY]): Config {
  return makeConfig('/golden', { services: [makeService('gateway', primary, canary, { split })] });
}

/** The `server` lines of the rendered text. */
function serverLines(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('    server '));
}

function render(config: Config, weight: number, flavor: Flavor = 'oss'): string {
  return renderUpstreams(buildModel(config, { gateway: weight }, 1, flavor));
}

t.test('weighted: unix servers are rendered with weight, max_fails and fail_timeout', async (t) => {
  const config = unixConfig();
  t.same(serverLines(render(config, 30)), [
    `    server ${PRIMARY} weight=7 max_fails=3 fail_timeout=20s; # primary`,
    `    server ${CANARY} weight=3 max_fails=1 fail_timeout=10s; # canary`,
    `    server ${PRIMARY} max_fails=3 fail_timeout=20s; # primary`,
    `    server ${CANARY} max_fails=1 fail_timeout=10s; # canary`,
    `    server ${PRIMARY} max_fails=3 fail_timeout=20s backup; # primary`,
  ]);
  t.equal(canaryShare(buildModel(config, { gateway: 30 }, 1, 'oss'), 'gateway'), 30);
  t.same(
    serverLines(render(config, 0))[1],
    `    server ${CANARY} weight=1 max_fails=1 fail_timeout=10s down; # canary`,
  );
  t.same(
    serverLines(render(config, 30, 'plus'))[1],
    `    server ${CANARY} weight=3 max_fails=1 fail_timeout=10s slow_start=30s; # canary`,
    'NGINX Plus: slow_start too',
  );
});

t.test('nginx -t accepts unix servers in both split modes, at 0, 30 and 100, mixed with TCP', async (t) => {
  const configs: [string, Config][] = [
    ['weighted', unixConfig('weighted')],
    ['split_clients', unixConfig('split_clients')],
    ['mixed', unixConfig('weighted', [PRIMARY, '127.0.0.1:18789'], ['127.0.0.1:18890', CANARY])],
  ];
  const runs = configs.flatMap(([name, config]) =>
    [0, 30, 100].map(async (w) => {
      const text = render(config, w);
      return { name: `${name} at ${w} %`, text, result: await nginxTestRendered(text, { services: config.services }) };
    }),
  );
  for (const { name, text, result } of await Promise.all(runs)) {
    t.ok(result.ok, `${name}: nginx -t ok${result.ok ? '' : `\n${result.output}`}`);
    t.match(text, `server ${CANARY} `, `${name}: the socket is in the file`);
  }
});

t.test('the longest socket path the config accepts is one nginx accepts; one byte more nginx refuses', async (t) => {
  const longest = `/run/${'s'.repeat(MAX_SOCKET_PATH_BYTES - '/run/'.length)}`;
  t.equal(longest.length, 107);
  const ok = unixConfig('weighted', [PRIMARY], [`unix:${longest}`]);
  const accepted = await nginxTestRendered(render(ok, 30), { services: ok.services });
  t.ok(accepted.ok, `107 bytes: nginx -t ok${accepted.ok ? '' : `\n${accepted.output}`}`);
  // Not a Config the loader would produce: only to show where nginx's own limit is.
  const over = unixConfig('weighted', [PRIMARY], [`unix:${longest}s`]);
  const refused = await nginxTestRendered(render(over, 30), { services: over.services });
  t.equal(refused.ok, false);
  t.match(refused.output, /too long path in the unix domain socket/);
});
