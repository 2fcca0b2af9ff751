// The CLI (src/cli/main.ts) run in-process with its output captured, on a
// stack's weights.yaml (real nginx and backends on loopback). The commands
// that talk to a running sidecar are run without one, then against an
// in-process sidecar (src/main.ts startSidecar) listening on sidecar.listen.
import t from 'tap';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { startSidecar } from '../../src/main.js';
import { loadConfig } from '../../src/config/load.js';
import { StateStore } from '../../src/rollout/store.js';
import { initialState } from '../../src/rollout/decide.js';
import type { StatusDocument } from '../../src/runner.js';
import { startStack, tickUntilSliced } from '../fixtures/stack.js';
import { cli, liveGeneration } from '../fixtures/integration/sidecar.js';

t.test('usage', async (t) => {
  const help = await cli(['--help']);
  t.equal(help.code, 0, '--help exits 0');
  t.match(help.out, /Usage: nginx-canary/);
  for (const cmd of ['render', 'check', 'status', 'target', 'pause', 'resume', 'abort', 'snapshots', 'rollback']) {
    t.match(help.out, new RegExp(`^\\s+${cmd}\\b`, 'm'), `--help lists ${cmd}`);
  }
  const sub = await cli(['target', '--help']);
  t.equal(sub.code, 0);
  t.match(sub.out, /^Usage: nginx-canary target \[options\] <service> <weight>$/m);

  const unknown = await cli(['frobnicate']);
  t.equal(unknown.code, 2, 'an unknown command exits 2');
  t.match(unknown.err, /unknown command 'frobnicate'/);
  const missingArg = await cli(['target', 'gateway']);
  t.equal(missingArg.code, 2, 'a missing argument exits 2');
  t.match(missingArg.err, /missing required argument 'weight'/);
  const badFlavor = await cli(['render', '--flavor', 'nope']);
  t.equal(badFlavor.code, 2, 'a bad option value exits 2');
});

t.test('a config file that does not exist → exit 2 naming it', async (t) => {
  const file = path.join(t.testdir(), 'missing.yaml');
  for (const cmd of ['render', 'check', 'status', 'snapshots']) {
    const r = await cli(['-c', file, cmd]);
    t.equal(r.code, 2, `${cmd} exits 2`);
    t.ok(r.err.includes(file), `${cmd} names the file`);
  }
});

t.test('commands on a stack', async (t) => {
  const stack = await startStack(t, { target: 30 });
  const cfg = stack.configFile;
  const c = (...args: string[]) => cli(['-c', cfg, ...args]);

  t.test('render --flavor oss prints the upstream block at the committed weights', async (t) => {
    const r = await c('render', '--flavor', 'oss');
    t.equal(r.code, 0);
    t.match(r.out, /^upstream gateway \{$/m);
    t.match(r.out, new RegExp(`server ${stack.primary.addr} weight=\\d+ max_fails=3 fail_timeout=20s; # primary`));
    t.match(
      r.out,
      new RegExp(`server ${stack.canary.addr} weight=\\d+ max_fails=1 fail_timeout=10s down; # canary`),
      'canary at 0: down',
    );
    t.notMatch(r.out, /slow_start/, 'oss: no slow_start');
    t.match(r.out, /^# weights: gateway=0$/m, 'no state.json: weight 0');
    const before = await readFile(cfg, 'utf8');
    await writeFile(cfg, before.replace('slow_start: 0s', 'slow_start: 30s'));
    const plus = await c('render', '--flavor', 'plus');
    t.match(plus.out, /slow_start=30s/, 'plus renders slow_start');
    const check = await c('check');
    t.match(
      check.out,
      /note: .*slow_start.*emulated/,
      'a note that open-source nginx drops slow_start and ramps instead',
    );
    await writeFile(cfg, before);
    const detected = await c('render');
    t.equal(detected.code, 0);
    t.equal(detected.out, r.out, 'without --flavor it asks nginx -V (open source here)');
    t.equal(
      await readFile(stack.config.nginx.upstreamsFile, 'utf8').then((s) => s.includes('weights: gateway=0')),
      true,
      'the live file is untouched',
    );
  });

  t.test('check on a valid config', async (t) => {
    const r = await c('check');
    t.equal(r.code, 0, r.err);
    t.match(r.out, /^ok: /m);
    t.match(r.out, /nginx 1\.\d+\.\d+ \(oss\) accepts the rendered config for gateway at 0 %/);
    t.notMatch(r.out, /note: .*slow_start/, 'no slow_start configured, no note');
    t.notMatch(r.out, /split_clients/, 'no split note for a weighted service');
  });

  t.test('check renders split_clients and nginx accepts it', async (t) => {
    const before = await readFile(cfg, 'utf8');
    await writeFile(cfg, before.replace('split: weighted', 'split: split_clients'));
    t.teardown(() => writeFile(cfg, before));
    const r = await c('check');
    t.equal(r.code, 0, r.err);
    t.match(r.out, /accepts the rendered config for gateway at 0 %/);
    t.notMatch(r.out, /later release/, 'split_clients is rendered, not downgraded');
  });

  t.test('target', async (t) => {
    const before = await readFile(cfg, 'utf8');
    const r = await c('target', 'gateway', '60');
    t.equal(r.code, 0, r.err);
    t.match(r.out, /gateway: target 30 % → 60 % written to/);
    const after = await readFile(cfg, 'utf8');
    t.equal(after, before.replace('target: 30', 'target: 60'), 'only the target changed');
    t.equal((await c('target', 'gateway', '60%')).code, 0, '"60%" is a weight');
    t.equal((await c('target', 'gateway', '12.5')).code, 0, 'one decimal is a weight');
    t.match(await readFile(cfg, 'utf8'), /target: 12\.5 /);
    t.equal((await c('target', 'gateway', '60')).code, 0);

    const snapshot = await readFile(cfg, 'utf8');
    for (const bad of ['101', '-5', 'abc', '12.34', '']) {
      const b = await c('target', 'gateway', bad);
      t.equal(b.code, 2, `"${bad}" exits 2`);
      t.match(b.err, /is not a weight\. Give a percentage from 0 to 100/);
    }
    const nope = await c('target', 'nope', '5');
    t.equal(nope.code, 2, 'an unknown service exits 2');
    t.match(nope.err, /no service named "nope"/);
    t.equal(await readFile(cfg, 'utf8'), snapshot, 'no refused target changed the file');
  });

  t.test('without a sidecar', async (t) => {
    const status = await c('status');
    t.equal(status.code, 1, 'status with neither the sidecar nor state.json exits 1');
    t.match(status.err, /the sidecar does not answer at http:\/\/127\.0\.0\.1:\d+/);
    for (const kind of ['pause', 'resume', 'abort']) {
      const r = await c(kind, 'gateway');
      t.equal(r.code, 1, `${kind} exits 1`);
      t.match(r.err, /does not answer.*Start it with `nginx-canary run`/, `${kind} says how to start it`);
    }
    const unknown = await c('pause', 'nope');
    t.equal(unknown.code, 2, 'an unknown service exits 2 before calling the API');
    t.match(unknown.err, /no service named "nope"/);
    const rollback = await c('rollback');
    t.equal(rollback.code, 1);
    const snaps = await c('snapshots');
    t.equal(snaps.code, 0);
    t.match(snaps.out, /^no snapshots in /);

    // status falls back to state.json.
    const store = new StateStore(stack.config.sidecar.stateFile);
    await store.save({ ...initialState(stack.config, 1_700_000_000_000), generation: 4 });
    const fromFile = await c('status');
    t.equal(fromFile.code, 0, 'status with state.json exits 0');
    t.match(
      fromFile.out,
      /^note: the sidecar does not answer at 127\.0\.0\.1:\d+; showing .*state\.json \(gates unknown\)$/m,
    );
    t.match(fromFile.out, /^generation 4$/m);
    t.match(fromFile.out, /^gateway: weight 0 % → target 60 % {2}phase idle$/m);
    const json = await c('status', '--json');
    t.equal(json.code, 0);
    t.equal(
      (JSON.parse(json.out.trim()) as StatusDocument).generation,
      4,
      '--json prints the document (without the note)',
    );
  });

  t.test('with an in-process sidecar', async (t) => {
    const clock = new ManualClock();
    // As `nginx-canary run` does: the config as the file says now (target 60).
    const sidecar = await startSidecar(await loadConfig(cfg), { log: silentLogger, clock, tickMs: 3_600_000 });
    let closed = false;
    const close = async (): Promise<void> => {
      if (!closed) await sidecar.close();
      closed = true;
    };
    t.teardown(close);
    await tickUntilSliced(sidecar.runner);
    t.match(sidecar.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    t.equal(await liveGeneration(stack.config), 5, 'the first slice applied (state.json said generation 4)');

    const status = await c('status');
    t.equal(status.code, 0, status.err);
    t.notMatch(status.out, /^note:/m, 'from the API, no note');
    t.match(status.out, /^gateway: weight 5 % → target 60 % {2}phase slice$/m);
    t.match(status.out, /^ {2}soak 0\.0 s of 1\.0 s at this weight since /m);
    // pass once the background prober has min_probes rounds (the log has no canary traffic yet), else inconclusive.
    t.match(status.out, /^ {2}hold gate connect_p95 (pass|inconclusive): canary 0 of 20 requests/m);
    t.match(status.out, /^ {2}hold gate ready pass: canary \/ready answered 200 on every server$/m);
    t.match(status.out, /^recent events:$/m);
    const json = JSON.parse((await c('status', '--json')).out) as StatusDocument;
    t.equal(json.services[0]?.weight, 5);

    const pause = await c('pause', 'gateway');
    t.equal(pause.code, 0, pause.err);
    t.equal(pause.out, 'gateway: pause done; weight 5 %, phase paused.\n');
    const resume = await c('resume', 'gateway');
    t.equal(resume.out, 'gateway: resume done; weight 5 %, phase slice.\n');

    clock.advance(1000);
    const abort = await c('abort', 'gateway');
    t.equal(abort.code, 0, abort.err);
    t.equal(abort.out, 'gateway: abort done; weight 0 %, phase drained.\n');
    t.equal(await liveGeneration(stack.config), 6);

    const snaps = await c('snapshots');
    t.equal(snaps.code, 0);
    const lines = snaps.out.trim().split('\n');
    t.equal(lines.length, 2, 'one snapshot per apply');
    const files = await readdir(stack.config.nginx.snapshots.dir);
    for (const l of lines) {
      const id = l.split(/\s+/)[0] ?? '';
      t.ok(files.includes(`${id}.tar.gz`), `${id} is on disk`);
    }
    t.match(
      lines[0],
      /generation 5 {2}gateway=5% {2}operator abort/,
      'newest first, with generation, weights and reason',
    );
    // The include file the stack wrote says generation 0 (state.json's 4 was never live).
    t.match(lines[1], /generation 0 {2}gateway=0% {2}gateway: target 0 → 60; gateway: slice 0 → 5$/);

    clock.advance(1000);
    // After the abort the canary is at 0; the only older snapshot holds it at 5: a plain rollback refuses.
    const refused = await c('rollback');
    t.equal(refused.code, 1, 'a plain rollback that would raise the canary exits 1');
    const newest = lines[0]?.split(/\s+/)[0] ?? '';
    t.equal(
      refused.err,
      `every snapshot older than the live config would raise a canary weight (the newest, ${newest}: gateway 0 % → 5 %); nothing was restored. A rollback never raises a canary behind the walk's back. To restore it anyway, name it: \`nginx-canary rollback ${newest}\` (the walk is then paused at its weights); to lower the canary use \`nginx-canary abort <service>\`\n`,
    );
    t.equal(await liveGeneration(stack.config), 6, 'nothing was restored');
    const rollback = await c('rollback', newest);
    t.equal(rollback.code, 0, rollback.err);
    t.equal(
      rollback.out,
      `restored snapshot ${newest} (generation 5; canary gateway 5 %); nginx reloaded; the walk is paused — \`nginx-canary resume <service>\` to continue.\nnote: this raised the canary above what was live: gateway 0 % → 5 %.\n`,
    );
    t.equal(await liveGeneration(stack.config), 5);

    const unknown = await c('rollback', 'nope-1');
    t.equal(unknown.code, 2, 'an unknown snapshot exits 2 (HTTP 404)');
    t.match(unknown.err, /no snapshot with id "nope-1"\. List them with `nginx-canary snapshots`/);

    await close();
    const after = await c('status');
    t.equal(after.code, 0, 'after the sidecar stopped, status reads state.json');
    t.match(after.out, /^note: the sidecar does not answer/m);
    t.match(after.out, /^gateway: weight 5 % → target 60 % {2}phase paused \(by operator\)$/m);
    const render = await c('render', '--flavor', 'oss');
    t.match(render.out, /^# weights: gateway=5$/m, 'render uses the weights in state.json');
    t.match(render.out, /^# generation: 5$/m);
  });

  t.test('check on a broken nginx.conf → exit 1 with nginx’s message', async (t) => {
    const conf = stack.config.nginx.conf;
    const good = await readFile(conf, 'utf8');
    await writeFile(conf, good.replace(/http \{/, 'http {\n    no_such_directive on;'));
    const r = await c('check');
    t.equal(r.code, 1);
    t.match(r.err, /nginx -t fails with the rendered file swapped in/);
    t.match(r.err, /unknown directive "no_such_directive"/, 'nginx’s own message');
    t.match(r.err, /Fix what nginx names above \(paths are in your config directory\)/);
    t.equal(r.out.includes('ok:'), false);
    t.equal(
      await readFile(conf, 'utf8').then((s) => s.includes('no_such_directive')),
      true,
      'check does not touch nginx.conf',
    );
    await writeFile(conf, good);
  });

  t.test('an unreadable state.json is an error, not a guess', async (t) => {
    await writeFile(stack.config.sidecar.stateFile, '{"version": 1, "generation": ');
    const r = await c('render', '--flavor', 'oss');
    t.equal(r.code, 1);
    t.match(r.err, /state file .*state\.json is unreadable/);
  });
});
