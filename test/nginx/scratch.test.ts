import t from 'tap';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildModel } from '../../src/nginx/model.js';
import { renderUpstreams } from '../../src/nginx/render.js';
import { checkRendered } from '../../src/nginx/scratch.js';
import { manifestOf } from '../../src/nginx/snapshot.js';
import { makeConfig } from '../fixtures/nginx/config.js';
import { tempDir, writeExampleConf } from '../fixtures/nginx/harness.js';

t.test('checkRendered runs nginx -t on a scratch copy and never touches the live files', async (t) => {
  const dir = await tempDir();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const scratchParent = await tempDir('nginx-canary-scratch-');
  t.teardown(() => rm(scratchParent, { recursive: true, force: true }));
  const config = makeConfig(dir);
  await writeExampleConf(config, 18080);
  const live = manifestOf(path.dirname(config.nginx.conf));
  t.same(
    live.map((f) => f.path),
    ['nginx.conf'],
    'no include file in the live dir yet',
  );

  const good = await checkRendered(config, renderUpstreams(buildModel(config, { gateway: 30 }, 1, 'oss')), {
    tmpDir: scratchParent,
  });
  t.ok(good.ok, good.output);
  t.notMatch(good.output, dir, 'nginx tested the scratch copy, not the live dir');

  const bad = await checkRendered(config, 'upstream gateway { server 127.0.0.1:1 weight=0; }\n', {
    tmpDir: scratchParent,
  });
  t.notOk(bad.ok);
  t.match(bad.output, /invalid parameter "weight=0"/);
  const plus = await checkRendered(config, renderUpstreams(buildModel(config, { gateway: 30 }, 1, 'plus')), {
    tmpDir: scratchParent,
  });
  t.match(plus, { ok: false, output: /invalid parameter "slow_start=30s"/ });

  t.same(manifestOf(path.dirname(config.nginx.conf)), live, 'the live conf dir is unchanged');
  t.same(await readdir(scratchParent), [], 'the scratch dirs were removed');
  t.same(await readdir(config.nginx.prefix ?? ''), ['logs', 'tmp']);
  t.same(await readdir(path.join(config.nginx.prefix ?? '', 'logs')), [], 'no log written under the live prefix');
  t.ok((await readFile(config.nginx.conf, 'utf8')).includes('include conf.d/nginx-canary.conf;'));
});

t.test('an upstreams file outside the conf dir is placed beside the scratch nginx.conf', async (t) => {
  const dir = await tempDir();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const base = makeConfig(dir);
  const config = { ...base, nginx: { ...base.nginx, upstreamsFile: path.join(dir, 'elsewhere', 'nginx-canary.conf') } };
  await writeExampleConf(config, 18080, (s) =>
    s.replace('include conf.d/nginx-canary.conf;', 'include nginx-canary.conf;'),
  );
  const r = await checkRendered(config, renderUpstreams(buildModel(config, { gateway: 5 }, 1, 'oss')));
  t.ok(r.ok, r.output);
});

t.test(
  'absolute includes inside the conf dir read the copy; load_module resolves against the live prefix; no live log is opened',
  async (t) => {
    const dir = await tempDir();
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const base = makeConfig(dir);
    const confDir = path.dirname(base.nginx.conf);
    const logs = path.join(dir, 'var-log');
    await mkdir(logs);
    const config = {
      ...base,
      // prefix null: the live nginx runs with its compiled prefix, as Debian's does.
      nginx: { ...base.nginx, prefix: null, upstreamsFile: path.join(confDir, 'conf.d', 'nginx-canary.conf') },
    };
    // Debian's nginx-light ships the echo module; with it, the copy must load it from the live prefix.
    const echo = '/usr/share/nginx/modules/ngx_http_echo_module.so';
    const withModule = await stat(echo).then(
      () => true,
      () => false,
    );
    const mainText = await writeExampleConf(config, 18080, (s) =>
      s
        .replace(
          'include conf.d/nginx-canary.conf;',
          `include ${confDir}/conf.d/*.conf;\n    include "${confDir}/sites/*";\n    include ${dir}/outside/*.conf;`,
        )
        .replace('access_log logs/canary.json nginx_canary;', `access_log ${logs}/canary.json nginx_canary;`)
        .replace(
          'error_log logs/error.log notice;',
          `error_log ${logs}/error.log notice;\n${withModule ? 'load_module modules/ngx_http_echo_module.so;' : ''}`,
        ),
    );
    await mkdir(path.join(confDir, 'conf.d'), { recursive: true });
    await mkdir(path.join(confDir, 'sites'), { recursive: true });
    // The live include is broken: a check that read it instead of the rendered text would fail.
    await writeFile(config.nginx.upstreamsFile, 'upstream gateway { server 127.0.0.1:1 weight=0; }\n');
    await writeFile(path.join(confDir, 'sites', '.hidden'), 'this is not nginx syntax\n');
    // A file included from outside the conf dir is copied in, and its own log path moved too.
    await mkdir(path.join(dir, 'outside'));
    await writeFile(
      path.join(dir, 'outside', 'extra.conf'),
      `server { listen 127.0.0.1:18081; access_log ${logs}/extra.log; }\n`,
    );
    // A site with the sampled canary log (its parameters in another order) and one that logs nothing.
    await writeFile(
      path.join(confDir, 'sites', 'gateway'),
      `server {\n    listen 127.0.0.1:18082;\n    access_log ${logs}/site.json nginx_canary buffer=64k if=$nginx_canary_log;\n}\n` +
        `server { listen 127.0.0.1:18083; access_log off; }\n`,
    );
    const live = manifestOf(confDir);
    const rendered = renderUpstreams(buildModel(config, { gateway: 30 }, 1, 'oss'));
    const good = await checkRendered(config, rendered, { livePrefix: '/usr/share/nginx' });
    t.ok(good.ok, `the rendered file was tested, not the live one: ${good.output}`);
    const mainLine = mainText.split('\n').findIndex((l) => l.includes('access_log ')) + 1;
    t.same(
      good.accessLogs,
      [
        {
          file: config.nginx.conf,
          line: mainLine,
          path: `${logs}/canary.json`,
          format: 'nginx_canary',
          condition: null,
        },
        // The include's status server logs nothing: named as the live include, not the scratch copy.
        {
          file: config.nginx.upstreamsFile,
          line: rendered.split('\n').findIndex((l) => l.includes('access_log off;')) + 1,
          path: 'off',
          format: null,
          condition: null,
        },
        {
          file: path.join(confDir, 'sites', 'gateway'),
          line: 3,
          path: `${logs}/site.json`,
          format: 'nginx_canary',
          condition: '$nginx_canary_log',
        },
        { file: path.join(confDir, 'sites', 'gateway'), line: 5, path: 'off', format: null, condition: null },
        {
          file: path.join(dir, 'outside', 'extra.conf'),
          line: 1,
          path: `${logs}/extra.log`,
          format: null,
          condition: null,
        },
      ],
      'every access_log of the tree, as written, at its live file and line (the outside file by its own path)',
    );
    t.same(manifestOf(confDir), live, 'the live conf dir is unchanged');
    t.same(await readdir(logs), [], 'no live log file was opened');
    if (withModule) {
      const elsewhere = await checkRendered(config, renderUpstreams(buildModel(config, { gateway: 30 }, 1, 'oss')), {
        livePrefix: dir,
      });
      t.match(elsewhere, { ok: false, output: /ngx_http_echo_module\.so/ }, 'load_module follows the live prefix');
    }
  },
);
