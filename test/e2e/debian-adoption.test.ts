// Adoption on Debian's stock nginx, following the README's "Debian's stock nginx" subsection word for
// word: its weights.yaml and site blocks are read from README.md, its commands are the ones run here.
// A copy of this machine's /etc/nginx (paths moved into a temp dir) runs under the real nginx without -p.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { parseDocument } from 'yaml';
import { Backend } from '../../src/demo/backend.js';
import { manifestOf } from '../../src/nginx/snapshot.js';
import { startNginx } from '../../src/nginx/process.js';
import { waitFor } from '../../src/util/wait.js';
import type { StatusDocument } from '../../src/runner.js';
import { copyDebianNginx, readmeBlocks } from '../fixtures/debian/host.js';
import { failTrafficOnly, freePort, repoRoot, spawnCli } from '../fixtures/stack.js';

const run = promisify(execFile);
const HEADING = "### Debian's stock nginx";

t.test('adopting the sidecar on a copy of the stock Debian /etc/nginx, as the README says', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'nginx-canary-debian-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const [defaultPort, sitePort, statusPort, apiPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const host = await copyDebianNginx(root, defaultPort);
  if (host === null) {
    t.plan(0, 'no /etc/nginx/nginx.conf on this machine (apt-get install nginx-light)');
    return;
  }
  const stock = await readFile(host.conf, 'utf8');
  t.match(stock, /include \S+\/modules-enabled\/\*\.conf;/, 'the stock layout loads modules-enabled');
  t.match(stock, /include \S+\/conf\.d\/\*\.conf;/, 'and includes conf.d inside http {}');

  const blocks = readmeBlocks(await readFile(path.join(repoRoot, 'README.md'), 'utf8'), HEADING);
  const [yamlBlock] = blocks.filter((b) => b.lang === 'yaml');
  const [siteBlock] = blocks.filter((b) => b.lang === 'nginx');
  const commands = blocks.filter((b) => b.lang === 'sh').flatMap((b) => b.text.trim().split('\n'));
  if (yamlBlock === undefined || siteBlock === undefined) throw new Error(`README "${HEADING}" lost its blocks`);
  t.same(
    commands,
    [
      'nginx-canary -c /etc/nginx-canary/weights.yaml check',
      'systemctl enable --now nginx-canary',
      'nginx-canary -c /etc/nginx-canary/weights.yaml check',
      'nginx -t && systemctl reload nginx',
      'nginx-canary -c /etc/nginx-canary/weights.yaml target gateway 30',
    ],
    'the README commands are the steps this test runs (systemctl stands for the sidecar and nginx started here)',
  );

  const primary = await Backend.start({ name: 'primary' });
  t.teardown(() => primary.close());
  const canary = await Backend.start({ name: 'canary' });
  t.teardown(() => canary.close());

  // 1. weights.yaml as the README writes it; moved paths and ports, and test-sized durations (time is a parameter).
  const doc = parseDocument(
    host
      .move(yamlBlock.text)
      .replace('127.0.0.1:8081', primary.addr)
      .replace('127.0.0.1:8082', canary.addr)
      .replace('127.0.0.1:9465', `127.0.0.1:${statusPort}`)
      .replace('127.0.0.1:9464', `127.0.0.1:${apiPort}`)
      .replace('binary: /usr/sbin/nginx', 'binary: nginx'),
  );
  doc.setIn(['nginx', 'min_reload_interval'], '300ms');
  doc.setIn(['services', 'gateway', 'canary', 0, 'slow_start'], '0s');
  doc.setIn(['services', 'gateway', 'probe'], {
    health: '/health',
    ready: '/ready',
    interval: '200ms',
    timeout: '200ms',
  });
  doc.setIn(['services', 'gateway', 'rollout'], { target: 0, slice: 5, slice_soak: '1s', step: 10, step_soak: '1s' });
  doc.setIn(['services', 'gateway', 'gates'], {
    window: '5s',
    min_requests: 20,
    min_probes: 5,
    probe_failure_ratio: '20%',
  });
  const configFile = path.join(root, 'etc', 'nginx-canary', 'weights.yaml');
  await writeFile(configFile, doc.toString());

  const nginx = await startNginx({ binary: 'nginx', conf: host.conf, prefix: null });
  t.teardown(() => nginx.stop());
  const nginxCmd = (...args: string[]) => run('nginx', ['-c', host.conf, ...args], { timeout: 15_000 });

  // 2. check, before any site routes through the canary; then the sidecar starts and writes the include.
  const check1 = spawnCli(root, configFile, ['check']);
  t.equal((await check1.exited).code, 0, `check passes on the stock layout: ${check1.output()}`);
  t.match(check1.stdout(), /^ok: /m);
  const sidecar = spawnCli(root, configFile, ['run'], 170_000);
  t.teardown(async () => {
    if (sidecar.child.exitCode === null && sidecar.child.signalCode === null) {
      sidecar.child.kill('SIGKILL');
      await sidecar.exited;
    }
  });
  const api = `http://127.0.0.1:${apiPort}`;
  const status = async (): Promise<StatusDocument> => {
    const r = await request(`${api}/api/v1/services`);
    return (await r.body.json()) as StatusDocument;
  };
  const until = (what: string, pred: (s: StatusDocument['services'][number]) => boolean, timeoutMs = 60_000) =>
    waitFor(
      async () => {
        if (sidecar.child.exitCode !== null) throw new Error(`sidecar exited: ${sidecar.output()}`);
        const s = (await status().catch(() => null))?.services[0];
        return s && pred(s) ? s : null;
      },
      { timeoutMs, intervalMs: 50, what },
    );
  await until('the sidecar at weight 0', (s) => s.weight === 0, 20_000);
  const include = path.join(host.etcNginx, 'conf.d', 'nginx-canary.conf');
  const written = await waitFor(() => readFile(include, 'utf8').catch(() => null), {
    timeoutMs: 20_000,
    what: `the sidecar to write ${include}`,
  });
  t.match(written, /log_format nginx_canary/, 'the include file is in conf.d');
  await t.resolves(nginxCmd('-t'), 'the live config with the include passes nginx -t');

  // 3. The site, from the README block; linked from sites-enabled as Debian does.
  const site = host.move(siteBlock.text).replace('listen 80;', `listen 127.0.0.1:${sitePort};`);
  const siteFile = path.join(host.etcNginx, 'sites-available', 'gateway');
  await writeFile(siteFile, site);
  await symlink(siteFile, path.join(host.etcNginx, 'sites-enabled', 'gateway'));

  // 4. check again, nginx -t and reload, then the target.
  const check2 = spawnCli(root, configFile, ['check']);
  t.equal(
    (await check2.exited).code,
    0,
    `check passes with the site routed through $nginx_canary_gateway: ${check2.output()}`,
  );
  await t.resolves(nginxCmd('-t'));
  await nginxCmd('-s', 'reload');
  const url = `http://127.0.0.1:${sitePort}/`;
  const agent = new Agent({ connections: 4 });
  t.teardown(() => agent.close());
  const get = async (): Promise<number> => {
    try {
      const r = await request(url, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 });
      await r.body.dump();
      return r.statusCode;
    } catch {
      return 0;
    }
  };
  await waitFor(async () => (await get()) === 200, { timeoutMs: 10_000, what: 'the site to answer 200' });
  const operatorConfig = manifestOf(host.etcNginx, ['conf.d/nginx-canary.conf', 'conf.d/.nginx-canary.lock']);

  // Bounded background traffic (loopback, ≤ 60 s and ≤ 40,000 requests, ~400/s).
  let stopped = false;
  let sent = 0;
  const traffic = (async () => {
    const started = performance.now();
    while (!stopped && sent < 40_000 && performance.now() - started < 60_000) {
      await Promise.all([get(), get(), get(), get()]);
      sent += 4;
      await new Promise((r) => setTimeout(r, 10)); // pacing, not settling
    }
  })();
  t.teardown(async () => {
    stopped = true;
    await traffic;
  });

  const target = spawnCli(root, configFile, ['target', 'gateway', '30']);
  t.equal((await target.exited).code, 0, target.output());
  await until('the walk to reach 30', (s) => s.weight === 30 && s.phase === 'complete', 90_000);
  t.pass('the walk reached its target of 30 %');

  // A 500ing canary drains.
  await failTrafficOnly(canary);
  const drained = await until('the drain', (s) => s.weight === 0 && s.phase === 'drained', 20_000);
  t.equal(drained.drainReason, 'error_ratio');
  stopped = true;
  await traffic;

  // A plain rollback afterwards sends the canary no request.
  const rollback = spawnCli(root, configFile, ['rollback']);
  t.equal((await rollback.exited).code, 0, rollback.output());
  t.match(rollback.stdout(), /restored snapshot \S+ \(generation \d+; canary gateway 0 %\)/);
  t.notMatch(rollback.output(), /note: this raised/);
  canary.resetCounts();
  primary.resetCounts();
  const statuses: number[] = [];
  for (let i = 0; i < 50; i++) statuses.push(...(await Promise.all([get(), get(), get(), get()])));
  t.equal(canary.hits, 0, 'no request reaches the canary after the plain rollback');
  t.equal(primary.hits, 200);
  t.ok(
    statuses.every((s) => s === 200),
    'every request answered 200',
  );
  t.match((await status()).services[0], { weight: 0, phase: 'paused' }, 'the walk state follows the restore');

  // The sidecar stops cleanly; every operator file but the include is byte-identical.
  sidecar.child.kill('SIGTERM');
  t.equal((await sidecar.exited).code, 0, 'the sidecar stops cleanly');
  t.same(
    manifestOf(host.etcNginx, ['conf.d/nginx-canary.conf']),
    operatorConfig,
    'every file of the config directory but the include is byte-identical',
  );
});
