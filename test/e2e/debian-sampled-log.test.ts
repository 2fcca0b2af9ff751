// The sampled access log (README "Sampled access log") on Debian's stock layout: a copy of this
// machine's /etc/nginx (paths moved into a temp dir, run without -p as on a real host), the include
// rendered with nginx.access_log_sample 20 into conf.d, and a site in sites-enabled whose canary log
// carries `if=$nginx_canary_log`, as the README says. nginx -t passes on the stock layout; the log
// holds every 500 the canary answered and about a fifth of the successes, each marked "20".
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, request } from 'undici';
import { Backend } from '../../src/demo/backend.js';
import { buildModel } from '../../src/nginx/model.js';
import { startNginx } from '../../src/nginx/process.js';
import { renderUpstreams } from '../../src/nginx/render.js';
import { parseLine } from '../../src/observe/parse.js';
import type { LogRecord } from '../../src/observe/types.js';
import { waitFor } from '../../src/util/wait.js';
import { copyDebianNginx } from '../fixtures/debian/host.js';
import { makeConfig, makeService } from '../fixtures/nginx/config.js';
import { freePort } from '../fixtures/stack.js';

const run = promisify(execFile);

t.test('a sampled canary log on a copy of the stock Debian /etc/nginx', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'nginx-canary-debian-sampled-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const [defaultPort, sitePort, statusPort] = [await freePort(), await freePort(), await freePort()];
  const host = await copyDebianNginx(root, defaultPort);
  if (host === null) {
    t.plan(0, 'no /etc/nginx/nginx.conf on this machine (apt-get install nginx-light)');
    return;
  }
  const primary = await Backend.start({ name: 'primary' });
  t.teardown(() => primary.close());
  const canary = await Backend.start({ name: 'canary' });
  t.teardown(() => canary.close());

  // The include as the sidecar renders it at weight 50, with a 20 % sample, into the stock conf.d.
  const base = makeConfig(root, { services: [makeService('gateway', [primary.addr], [canary.addr])] });
  const config = {
    ...base,
    nginx: { ...base.nginx, accessLogSample: 20, statusListen: { host: '127.0.0.1', port: statusPort } },
  };
  await writeFile(
    path.join(host.etcNginx, 'conf.d', 'nginx-canary.conf'),
    renderUpstreams(buildModel(config, { gateway: 50 }, 1, 'oss')),
  );
  // The README's site, its canary log with the condition.
  const log = path.join(root, 'var', 'log', 'nginx', 'canary.json');
  const site = [
    'server {',
    `    listen 127.0.0.1:${sitePort};`,
    `    access_log ${log} nginx_canary if=$nginx_canary_log;`,
    '    location / {',
    '        proxy_pass http://$nginx_canary_gateway;',
    '        proxy_http_version 1.1;',
    '        proxy_set_header Connection "";',
    '        proxy_set_header Host $host;',
    '        proxy_next_upstream error timeout;',
    '    }',
    '    location = /sentinel-for-the-log { return 204; }',
    '}',
    '',
  ].join('\n');
  const siteFile = path.join(host.etcNginx, 'sites-available', 'gateway');
  await writeFile(siteFile, site);
  await symlink(siteFile, path.join(host.etcNginx, 'sites-enabled', 'gateway'));

  await t.resolves(run('nginx', ['-t', '-c', host.conf], { timeout: 15_000 }), 'nginx -t passes on the stock layout');
  const nginx = await startNginx({ binary: 'nginx', conf: host.conf, prefix: null });
  t.teardown(() => nginx.stop());

  await canary.setFault({ kind: 'status', status: 500 });
  const url = `http://127.0.0.1:${sitePort}`;
  // One connection for every request and the sentinel: one nginx worker serves them in order and writes
  // their lines in that order. nginx logs after answering, so over several connections (workers) an
  // earlier request's line could land after the sentinel's (a red CI run waited on exactly that).
  const client = new Client(url);
  t.teardown(() => client.close());
  const status: Record<number, number> = {};
  const deadline = performance.now() + 30_000;
  // Until nginx answers; the answered request counts with the others (its line is in the log too).
  await waitFor(
    async () => {
      const r = await request(`${url}/`, { dispatcher: client }).catch(() => null);
      if (r === null) return false;
      await r.body.dump();
      status[r.statusCode] = (status[r.statusCode] ?? 0) + 1;
      return true;
    },
    { timeoutMs: 10_000, what: 'the site to answer' },
  );
  for (let i = 1; i < 400; i++) {
    if (performance.now() > deadline) throw new Error(`over 30 s after ${i} requests`);
    const r = await request(`${url}/`, { dispatcher: client, headersTimeout: 5000, bodyTimeout: 5000 });
    await r.body.dump();
    status[r.statusCode] = (status[r.statusCode] ?? 0) + 1;
  }
  const sentinel = await request(`${url}/sentinel-for-the-log`, { dispatcher: client });
  await sentinel.body.dump();
  const records = await waitFor(
    async () => {
      const lines = (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
      const recs = lines.map((l) => parseLine(l));
      return recs.at(-1)?.status === 204 ? recs : null;
    },
    { timeoutMs: 10_000, what: `the sentinel line in ${log}` },
  );
  t.ok(
    records.every((r) => r !== null),
    'every line is in format nginx_canary',
  );
  const recs = (records as LogRecord[]).slice(0, -1).filter((r) => r.status !== 204);
  const fivexx = status[500] ?? 0;
  const ok = status[200] ?? 0;
  t.ok(fivexx >= 100 && ok >= 100, `both pools answered (200: ${ok}, 500: ${fivexx})`);
  t.equal(
    recs.filter((r) => r.status === 500 && r.sample === undefined).length,
    fivexx,
    'every 500 is logged, standing for itself',
  );
  const sampled = recs.filter((r) => r.status === 200);
  t.ok(
    sampled.every((r) => r.sample === 20),
    'every logged success is marked 20',
  );
  // Binomial(ok ≈ 200, 0.2): mean ~40, sd ~5.7; 5 sd either side.
  const want = ok * 0.2;
  const sd = Math.sqrt(ok * 0.2 * 0.8);
  t.ok(
    Math.abs(sampled.length - want) <= 5 * sd,
    `${sampled.length} of ${ok} successes logged (expected ~${want.toFixed(0)})`,
  );
});
