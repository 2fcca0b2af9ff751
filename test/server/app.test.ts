// The HTTP API (src/server/app.ts) on a real Runner driving a real nginx: the
// sidecar is started in-process (src/main.ts startSidecar, not listening) on a
// stack's weights.yaml, with a ManualClock and a loop whose only automatic
// tick is the first one; every request goes through app.inject().
import t from 'tap';
import { chmod, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import type { CanaryError } from '../../src/errors.js';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { startSidecar, type SidecarHandle } from '../../src/main.js';
import { buildApp } from '../../src/server/app.js';
import type { ServiceStatus, StatusDocument } from '../../src/runner.js';
import type { SnapshotInfo } from '../../src/nginx/types.js';
import { startStack, type Stack } from '../fixtures/stack.js';
import { captureLogger, liveGeneration } from '../fixtures/integration/sidecar.js';

/** Minimal tap surface used by the helpers below. */
interface T {
  teardown(fn: () => unknown): void;
  testdir(): string;
}

interface Env {
  stack: Stack;
  sidecar: SidecarHandle;
  app: FastifyInstance;
  clock: ManualClock;
  close(): Promise<void>;
}

/** A stack (target 30) and an in-process sidecar on it, after its first tick (0 → 5 %, generation 1). */
async function start(t: T, log = silentLogger): Promise<Env> {
  const stack = await startStack(t, { target: 30 });
  const clock = new ManualClock();
  const sidecar = await startSidecar(stack.config, { log, clock, listen: false, tickMs: 3_600_000 });
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await sidecar.close();
  };
  t.teardown(close);
  await sidecar.runner.tick(); // waits for the loop's first tick, then a quiet one
  return { stack, sidecar, app: sidecar.app, clock, close };
}

t.test('the API on a real runner and nginx', async (t) => {
  const env = await start(t);
  const { app, stack, clock } = env;
  t.equal(env.sidecar.url, '', 'not listening (listen: false)');
  t.equal(await liveGeneration(stack.config), 1, 'the first tick made generation 1 live');

  t.test('GET /healthz', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    t.equal(res.statusCode, 200);
    t.same(res.json(), { ok: true, generation: 1 });
  });

  t.test('GET /metrics', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    t.equal(res.statusCode, 200);
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    t.match(res.body, /^nginx_canary_weight_percent\{service="gateway"\} 5$/m);
    t.match(res.body, /^nginx_canary_target_weight_percent\{service="gateway"\} 30$/m);
    t.match(res.body, /^nginx_canary_phase\{service="gateway",phase="slice"\} 1$/m);
    t.match(res.body, /^nginx_canary_reloads_total\{result="ok"\} 1$/m, 'the runner moved the reload counter');
    t.match(res.body, /^nginx_canary_process_cpu_user_seconds_total /m, 'default process metrics are on');
  });

  t.test('GET /api/v1/services', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/services' });
    t.equal(res.statusCode, 200);
    const doc = res.json<StatusDocument>();
    t.equal(doc.generation, 1);
    t.equal(doc.services.length, 1);
    t.match(doc.services[0], {
      name: 'gateway',
      weight: 5,
      target: 30,
      phase: 'slice',
      pausedBy: null,
      soakNeededMs: 1000,
    });
    t.same(
      doc.history.map((e) => e.kind),
      ['target', 'slice'],
      'the history holds the target and the first slice',
    );
  });

  t.test('GET /api/v1/services/:name', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/services/gateway' });
    t.equal(res.statusCode, 200);
    const s = res.json<ServiceStatus & { history: { service: string; kind: string }[] }>();
    t.equal(s.name, 'gateway');
    t.equal(s.weight, 5);
    t.ok(s.history.length >= 2 && s.history.every((e) => e.service === 'gateway'), 'its own history');

    const unknown = await app.inject({ method: 'GET', url: '/api/v1/services/nope' });
    t.equal(unknown.statusCode, 404);
    const body = unknown.json<{ code: string; message: string; fix: string }>();
    t.equal(body.code, 'NC_UNKNOWN_SERVICE');
    t.match(body.message, /"nope"/);
    t.match(body.fix, /services:/);

    for (const bad of ['Gateway', '1x', 'a-b', 'x'.repeat(49)]) {
      const r = await app.inject({ method: 'GET', url: `/api/v1/services/${bad}` });
      t.equal(r.statusCode, 400, `name "${bad.slice(0, 12)}" → 400`);
      t.equal(r.json<{ code: string }>().code, 'NC_BAD_REQUEST');
    }
    const badPost = await app.inject({ method: 'POST', url: '/api/v1/services/Bad/pause' });
    t.equal(badPost.statusCode, 400, 'a bad name on a mutating route → 400');
    t.equal((await app.inject({ method: 'GET', url: '/api/v1/nothing' })).statusCode, 404, 'an unknown route → 404');
  });

  t.test('PUT target edits weights.yaml in place', async (t) => {
    const before = await readFile(stack.configFile, 'utf8');
    t.match(before, /target: 30 {3}# the walk goes here/);
    const res = await app.inject({ method: 'PUT', url: '/api/v1/services/gateway/target', payload: { weight: 60 } });
    t.equal(res.statusCode, 200);
    const body = res.json<{ service: string; from: number; to: number; status: ServiceStatus }>();
    t.same({ service: body.service, from: body.from, to: body.to }, { service: 'gateway', from: 30, to: 60 });
    t.equal(body.status.target, 60, 'the tick after the edit picked the new target up');
    const after = await readFile(stack.configFile, 'utf8');
    t.equal(after, before.replace('target: 30', 'target: 60'), 'only the target changed; comments kept byte for byte');
    t.equal(env.sidecar.runner.config.services[0]?.rollout.target, 60);

    const unknown = await app.inject({ method: 'PUT', url: '/api/v1/services/nope/target', payload: { weight: 10 } });
    t.equal(unknown.statusCode, 404);
    t.equal(unknown.json<{ code: string }>().code, 'NC_UNKNOWN_SERVICE');
    t.equal(await readFile(stack.configFile, 'utf8'), after, 'an unknown service leaves the file unchanged');
  });

  t.test('invalid target bodies → 400, file unchanged', async (t) => {
    const before = await readFile(stack.configFile, 'utf8');
    // The schema (TargetBody) answers NC_BAD_REQUEST; a weight it lets through but weights.yaml
    // refuses (finer than 0.1) is a ConfigError from the edit: NC_CONFIG_INVALID with its problems.
    const cases: [string, object, string][] = [
      ['above 100', { weight: 101 }, 'NC_BAD_REQUEST'],
      ['below 0', { weight: -1 }, 'NC_BAD_REQUEST'],
      ['a string', { weight: 'x' }, 'NC_BAD_REQUEST'],
      ['no weight', {}, 'NC_BAD_REQUEST'],
      ['an array', [60], 'NC_BAD_REQUEST'],
      ['finer than 0.1', { weight: 12.34 }, 'NC_CONFIG_INVALID'],
    ];
    for (const [what, payload, code] of cases) {
      const res = await app.inject({ method: 'PUT', url: '/api/v1/services/gateway/target', payload });
      t.equal(res.statusCode, 400, `${what} → 400`);
      const b = res.json<{ code: string; fix: string; problems?: { path: string }[] }>();
      t.equal(b.code, code, `${what}: ${code}`);
      t.ok(b.fix.length > 0, `${what}: a fix`);
      if (code === 'NC_CONFIG_INVALID') t.match(b.problems?.[0]?.path, /target/, `${what}: the problem names the key`);
    }
    const notJson = await app.inject({
      method: 'PUT',
      url: '/api/v1/services/gateway/target',
      payload: '{"weight":',
      headers: { 'content-type': 'application/json' },
    });
    t.equal(notJson.statusCode, 400, 'a body that is not JSON → 400');
    t.equal(notJson.json<{ code: string }>().code, 'NC_BAD_REQUEST');
    t.equal(await readFile(stack.configFile, 'utf8'), before, 'the file is unchanged');
  });

  t.test('an extra key in the target body → 400, file unchanged', async (t) => {
    const before = await readFile(stack.configFile, 'utf8');
    const res = await app.inject({
      method: 'PUT',
      url: '/api/v1/services/gateway/target',
      payload: { weight: 40, force: true },
    });
    const after = await readFile(stack.configFile, 'utf8');
    if (after !== before) {
      // Undo the accepted edit so the later subtests see target 60.
      await writeFile(stack.configFile, before);
      await env.sidecar.runner.tick();
    }
    t.equal(res.statusCode, 400, 'additionalProperties: false rejects the extra key');
    t.equal(after, before, 'the file is unchanged');
  });

  t.test('pause and resume', async (t) => {
    const paused = await app.inject({ method: 'POST', url: '/api/v1/services/gateway/pause' });
    t.equal(paused.statusCode, 200);
    t.match(paused.json(), { name: 'gateway', phase: 'paused', pausedBy: 'operator', weight: 5 });
    const again = await app.inject({ method: 'POST', url: '/api/v1/services/gateway/pause' });
    t.match(again.json(), { phase: 'paused', pausedBy: 'operator' }, 'a second pause is a no-op');
    const resumed = await app.inject({ method: 'POST', url: '/api/v1/services/gateway/resume' });
    t.equal(resumed.statusCode, 200);
    t.match(resumed.json(), { phase: 'slice', pausedBy: null, weight: 5 });
    t.equal(await liveGeneration(stack.config), 1, 'pause and resume do not reload nginx');
    const unknown = await app.inject({ method: 'POST', url: '/api/v1/services/nope/pause' });
    t.equal(unknown.statusCode, 404);
  });

  t.test('abort drains to 0 and nginx serves the next generation', async (t) => {
    clock.advance(1000); // past min_reload_interval (300 ms) since the first apply
    const res = await app.inject({ method: 'POST', url: '/api/v1/services/gateway/abort' });
    t.equal(res.statusCode, 200);
    t.match(res.json(), { name: 'gateway', weight: 0, phase: 'drained', drainReason: 'operator' });
    t.equal(await liveGeneration(stack.config), 2, 'nginx answers generation 2');
    t.equal(env.sidecar.runner.state.generation, 2);
    t.match(
      await readFile(stack.config.nginx.upstreamsFile, 'utf8'),
      /^# weights: gateway=0$/m,
      'the include file says 0',
    );
    const m = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    t.match(m, /^nginx_canary_drains_total\{service="gateway",reason="operator"\} 1$/m);
    t.match(m, /^nginx_canary_phase\{service="gateway",phase="drained"\} 1$/m);
  });

  let snapshots: SnapshotInfo[] = [];
  t.test('GET /api/v1/snapshots', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/snapshots' });
    t.equal(res.statusCode, 200);
    snapshots = res.json<{ snapshots: SnapshotInfo[] }>().snapshots;
    t.same(
      snapshots.map((s) => s.generation),
      [1, 0],
      'one snapshot per apply, newest first: before the abort (generation 1), before the slice (generation 0)',
    );
    t.same(snapshots[0]?.weights, { gateway: 5 });
    const files = await readdir(stack.config.nginx.snapshots.dir);
    for (const s of snapshots) t.ok(files.includes(`${s.id}.tar.gz`), `${s.id} is on disk`);
  });

  t.test('POST /api/v1/rollback', async (t) => {
    clock.advance(1000);
    // After the abort the canary is at 0 and the snapshot before it holds 5: a plain rollback refuses.
    const refused = await app.inject({ method: 'POST', url: '/api/v1/rollback', payload: {} });
    t.equal(refused.statusCode, 409);
    t.match(refused.json(), {
      code: 'NC_ROLLBACK_RAISES',
      message: new RegExp(`the newest, ${snapshots[0]?.id ?? '?'}: gateway 0 % → 5 %`),
      fix: /nginx-canary rollback /,
    });
    t.equal(await liveGeneration(stack.config), 2, 'nothing was restored');
    const res = await app.inject({ method: 'POST', url: '/api/v1/rollback', payload: { snapshot: snapshots[0]?.id } });
    t.equal(res.statusCode, 200);
    const body = res.json<{ snapshot: SnapshotInfo; raises: unknown; status: StatusDocument }>();
    t.equal(body.snapshot.id, snapshots[0]?.id, 'the named snapshot');
    t.same(body.raises, [{ service: 'gateway', from: 0, to: 5 }], 'and what it raised');
    t.equal(body.status.generation, 1);
    t.match(body.status.services[0], { weight: 5, phase: 'paused', pausedBy: 'operator' });
    t.equal(await liveGeneration(stack.config), 1, 'nginx serves the restored generation');
    t.match(
      await readFile(stack.config.nginx.upstreamsFile, 'utf8'),
      /^# weights: gateway=5$/m,
      'the restored include file',
    );
    t.equal(body.status.history.at(-1)?.kind, 'rollback');

    // At once again: the restore stops (min_reload_interval); a 409 that says so, with a true fix.
    const again = await app.inject({
      method: 'POST',
      url: '/api/v1/rollback',
      payload: { snapshot: snapshots[1]?.id },
    });
    t.equal(again.statusCode, 409);
    t.match(again.json(), {
      code: 'NC_ROLLBACK_FAILED',
      message: new RegExp(
        `^rollback to snapshot ${snapshots[1]?.id ?? '?'} stopped at stage interval; nothing was changed:\\n.*min_reload_interval`,
      ),
      fix: 'Retry once the condition above has cleared',
    });
    t.equal(await liveGeneration(stack.config), 1, 'still the restored generation');

    const unknown = await app.inject({
      method: 'POST',
      url: '/api/v1/rollback',
      payload: { snapshot: 'nope-20990101' },
    });
    t.equal(unknown.statusCode, 404);
    t.equal(unknown.json<{ code: string }>().code, 'NC_SNAPSHOT_NOT_FOUND');
    const bad = await app.inject({
      method: 'POST',
      url: '/api/v1/rollback',
      payload: { snapshot: '../../etc/passwd' },
    });
    t.equal(bad.statusCode, 400, 'an id outside the allowed characters → 400');
  });

  t.test('POST /api/v1/rollback without a body picks the default snapshot', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/rollback' });
    t.not(res.statusCode, 500, 'never a 5xx');
    // The live generation is 1 and no snapshot is older (> 0): the default-snapshot answer.
    t.equal(res.statusCode, 404, 'the default-snapshot answer');
    t.equal(res.json<{ code: string }>().code, 'NC_SNAPSHOT_NONE_OLDER', 'none older than generation 1');
  });

  t.test('POST /api/v1/rollback with an extra key → 400', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/rollback', payload: { snapshot: 'nope-1', more: 1 } });
    t.equal(res.statusCode, 400, 'the extra key is refused');
  });

  t.test('GET / (status page)', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/' });
    t.equal(res.statusCode, 200);
    t.match(res.headers['content-type'], /^text\/html/);
    t.match(res.body, /<h2[^>]*>gateway: 5 % of 60 % \(paused\)<\/h2>/);
    t.match(res.body, /Generation 1\./);
    t.match(res.body, /<td>rollback<\/td>/);
    t.match(
      res.body,
      /<td>ready pass: canary \/ready answered 200 on every server<\/td>/,
      'each gate with its numbers',
    );
    t.match(res.body, /<td>error_ratio [a-z]+: canary [^<]*<\/td>/);
  });

  t.test('token: mutating calls need the bearer, GETs stay open', async (t) => {
    const token = 'x'.repeat(32);
    const secured = await buildApp({
      runner: env.sidecar.runner,
      metrics: env.sidecar.metrics,
      log: silentLogger,
      token,
    });
    t.teardown(() => secured.close());
    const before = await readFile(stack.configFile, 'utf8');
    const calls: { method: 'POST' | 'PUT'; url: string; payload?: object }[] = [
      { method: 'POST', url: '/api/v1/services/gateway/pause' },
      { method: 'POST', url: '/api/v1/services/gateway/resume' },
      { method: 'POST', url: '/api/v1/services/gateway/abort' },
      { method: 'PUT', url: '/api/v1/services/gateway/target', payload: { weight: 10 } },
      { method: 'POST', url: '/api/v1/rollback', payload: {} },
    ];
    const wrong: (string | undefined)[] = [
      undefined,
      'Bearer wrong',
      `Bearer ${token}x`,
      `Basic ${token}`,
      `bearer ${token}`,
      'Bearer ',
    ];
    for (const c of calls) {
      for (const auth of wrong) {
        const res = await secured.inject({ ...c, ...(auth === undefined ? {} : { headers: { authorization: auth } }) });
        t.equal(
          res.statusCode,
          401,
          `${c.method} ${c.url} with ${auth === undefined ? 'no header' : `"${auth.slice(0, 10)}…"`} → 401`,
        );
        t.equal(res.json<{ code: string }>().code, 'NC_UNAUTHORIZED');
      }
    }
    t.equal(await readFile(stack.configFile, 'utf8'), before, 'no refused call changed weights.yaml');
    t.match(
      env.sidecar.runner.status().services[0],
      { weight: 5, phase: 'paused' },
      'no refused call changed the rollout',
    );

    for (const url of [
      '/healthz',
      '/metrics',
      '/api/v1/services',
      '/api/v1/services/gateway',
      '/api/v1/snapshots',
      '/',
    ]) {
      t.equal((await secured.inject({ method: 'GET', url })).statusCode, 200, `GET ${url} needs no token`);
    }
    const ok = await secured.inject({
      method: 'POST',
      url: '/api/v1/services/gateway/resume',
      headers: { authorization: `Bearer ${token}` },
    });
    t.equal(ok.statusCode, 200, 'the right bearer → 200');
    // A rollback to the first-slice weight resumes as `slice`: the slice soak is not skipped.
    t.match(ok.json(), { phase: 'slice', pausedBy: null, weight: 5 });
  });

  await t.test('close', async () => env.close());
});

t.test('a 5xx CanaryError does not leak its message', async (t) => {
  const cap = captureLogger('info');
  const env = await start(t, cap.log);
  await env.stack.nginx.stop(); // the next reload cannot reach nginx
  env.clock.advance(1000);
  const res = await env.app.inject({ method: 'POST', url: '/api/v1/services/gateway/abort' });
  t.equal(res.statusCode, 500);
  const body = res.json<{ code: string; message: string; fix: string }>();
  t.equal(body.code, 'NC_RELOAD_FAILED', 'the code is shown');
  t.equal(body.message, 'the change was not applied; see the sidecar log', 'the message is the generic text');
  t.match(body.fix, /nginx error log/);
  t.notMatch(res.body, /nginx\.pid|No such file|snapshot was restored/, 'no detail of the failure in the answer');
  const logged = cap.lines.find((l) => l['msg'] === 'API call failed');
  t.ok(logged, 'the failure is logged');
  t.match(String(logged?.['err']), /nginx reload failed/, 'the log has the real message');
  t.match(env.sidecar.runner.status().services[0], { weight: 5, phase: 'slice' }, 'nothing was committed');

  // An error that is not a CanaryError: the snapshot directory replaced by a file (readdir: ENOTDIR).
  const dir = env.stack.config.nginx.snapshots.dir;
  await rename(dir, `${dir}.aside`);
  await writeFile(dir, 'not a directory');
  const internal = await env.app.inject({ method: 'GET', url: '/api/v1/snapshots' });
  t.equal(internal.statusCode, 500);
  t.same(internal.json(), {
    code: 'NC_INTERNAL',
    message: 'internal error; see the sidecar log',
    fix: 'Report it with the log lines',
  });
  t.notMatch(internal.body, /ENOTDIR|snapshots/, 'the fs error is not shown');
  t.ok(
    cap.lines.some((l) => l['msg'] === 'API call failed' && /ENOTDIR/.test(JSON.stringify(l['err']))),
    'it is logged',
  );
  await env.close();
});

t.test('startSidecar: token_file and listen', async (t) => {
  const stack = await startStack(t, { target: 30 });
  const tokenFile = path.join(stack.dir, 'token');
  const withToken = { ...stack.config, sidecar: { ...stack.config.sidecar, tokenFile } };
  const include = await readFile(stack.config.nginx.upstreamsFile, 'utf8');

  const refused = async (why: string): Promise<void> => {
    try {
      await startSidecar(withToken, { log: silentLogger, listen: false });
      t.fail(`${why}: startSidecar should reject`);
    } catch (err) {
      t.equal((err as CanaryError).code, 'NC_TOKEN_FILE', `${why}: NC_TOKEN_FILE`);
      t.match((err as CanaryError).fix, /at least 16 characters/);
    }
  };
  await refused('no token file');
  await writeFile(tokenFile, 'short\n', { mode: 0o600 });
  await refused('a token shorter than 16 characters');
  await writeFile(tokenFile, `${'z'.repeat(40)}\n`);
  await chmod(tokenFile, 0o644);
  try {
    await startSidecar(withToken, { log: silentLogger, listen: false });
    t.fail('a group/world-readable token file should be refused');
  } catch (err) {
    t.equal((err as CanaryError).code, 'NC_TOKEN_FILE_MODE', 'a 0644 token file: NC_TOKEN_FILE_MODE');
    t.match((err as CanaryError).fix, /chmod 600/);
  }
  await chmod(tokenFile, 0o600);
  const open = { ...stack.config, sidecar: { ...stack.config.sidecar, listen: { host: '0.0.0.0', port: 1 } } };
  try {
    await startSidecar(open, { log: silentLogger });
    t.fail('a non-loopback listen without a token should be refused');
  } catch (err) {
    t.equal((err as CanaryError).code, 'NC_LISTEN_NO_TOKEN', 'listen 0.0.0.0 without token_file: NC_LISTEN_NO_TOKEN');
    t.equal((err as CanaryError).exitCode, 2);
  }
  t.equal(await readFile(stack.config.nginx.upstreamsFile, 'utf8'), include, 'nothing was changed');

  // The API port taken: NC_LISTEN, and the loop it started is stopped again.
  const token = 'y'.repeat(40);
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const { host, port } = stack.config.sidecar.listen;
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(port, host, resolve));
  try {
    await startSidecar(withToken, { log: silentLogger, clock: new ManualClock(), tickMs: 3_600_000 });
    t.fail('startSidecar should reject on a taken port');
  } catch (err) {
    t.equal((err as CanaryError).code, 'NC_LISTEN');
    t.match((err as CanaryError).message, new RegExp(`cannot listen on ${host}:${port}`));
  }
  await new Promise<void>((resolve) => squatter.close(() => resolve()));
  t.equal(await readFile(stack.config.nginx.upstreamsFile, 'utf8'), include, 'a taken port changes nothing');
  t.equal(await liveGeneration(stack.config), 0, 'nginx still serves generation 0');

  const clock = new ManualClock();
  const sidecar = await startSidecar(withToken, { log: silentLogger, clock, tickMs: 3_600_000 });
  t.teardown(() => sidecar.close());
  t.equal(sidecar.url, `http://${host}:${port}`);
  const get = await request(`${sidecar.url}/healthz`);
  t.equal(get.statusCode, 200, 'GET over the network without a token');
  await get.body.dump();
  const noToken = await request(`${sidecar.url}/api/v1/services/gateway/pause`, { method: 'POST' });
  t.equal(noToken.statusCode, 401, 'the token file is enforced');
  t.equal(((await noToken.body.json()) as { code: string }).code, 'NC_UNAUTHORIZED');
  const ok = await request(`${sidecar.url}/api/v1/services/gateway/pause`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  t.equal(ok.statusCode, 200, 'the trimmed file contents are the token');
  t.match(await ok.body.json(), { phase: 'paused' });
});
