// `nginx-canary check` (src/cli/check.ts) run in-process with its output captured, on a weights.yaml
// and a copy of the repo's nginx.conf in a temp dir (real `nginx -t`; no nginx needs to run): the token
// file as `run` reads it, and the webhook asked once, bounded, without failing check.
import t, { type Test } from 'tap';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import path from 'node:path';
import { probeWebhook, WEBHOOK_CHECK_TIMEOUT_MS } from '../../src/cli/check.js';
import { cli } from '../fixtures/integration/sidecar.js';
import { freePort, repoRoot, weightsYaml } from '../fixtures/stack.js';

/** A config dir (conf/nginx.conf from the repo, weights.yaml from the stack fixture, `edit` applied); its weights.yaml. */
async function setup(t: Test, edit: (yaml: string) => string = (y) => y): Promise<string> {
  const dir = t.testdir();
  await mkdir(path.join(dir, 'conf', 'conf.d'), { recursive: true });
  await writeFile(
    path.join(dir, 'conf', 'nginx.conf'),
    await readFile(path.join(repoRoot, 'nginx', 'nginx.conf'), 'utf8'),
  );
  const yaml = weightsYaml({
    nginxPort: 18080,
    statusPort: await freePort(),
    apiPort: await freePort(),
    primary: '127.0.0.1:18789',
    canary: '127.0.0.1:18890',
    target: 30,
    soak: '1s',
    window: '5s',
    minRequests: 20,
    minReloadInterval: '300ms',
  });
  const file = path.join(dir, 'weights.yaml');
  await writeFile(file, edit(yaml));
  return file;
}

/** `yaml` with `token_file: <file>`. */
const withToken = (file: string) => (yaml: string) => yaml.replace('  token_file: ~', `  token_file: ${file}`);
/** `yaml` with `webhook_url: <url>`. */
const withWebhook = (url: string) => (yaml: string) => yaml.replace('  webhook_url: ~', `  webhook_url: ${url}`);

t.test('a valid config without token or webhook: ok, exit 0, nothing on stderr', async (t) => {
  const file = await setup(t);
  const r = await cli(['-c', file, 'check']);
  t.equal(r.code, 0, r.err);
  t.equal(r.err, '');
  t.match(r.out, new RegExp(`^ok: ${file} is valid; nginx 1\\.\\d+\\.\\d+ \\(oss\\) accepts the rendered config`, 'm'));
});

t.test(
  "an operator's shared zone named like the sidecar's upstream zone: nginx -t fails, check says rename it",
  async (t) => {
    const file = await setup(t);
    const conf = path.join(path.dirname(file), 'conf', 'nginx.conf');
    const text = await readFile(conf, 'utf8');
    // The operator's own rate limit zone, declared before the include (as a Debian conf.d file might be).
    const edited = text.replace(
      'http {\n',
      'http {\n    limit_req_zone $binary_remote_addr zone=nginx_canary_gateway:1m rate=10r/s;\n',
    );
    t.not(edited, text, 'the zone line went in');
    await writeFile(conf, edited);
    const r = await cli(['-c', file, 'check']);
    t.equal(r.code, 1);
    t.match(r.err, /the shared memory zone "nginx_canary_gateway" is already declared for a different use/);
    t.match(r.err, /already uses the shared memory zone name "nginx_canary_gateway".*rename yours/);
    t.notMatch(r.out, /^ok:/m);
  },
);

t.test('the token file is checked as run reads it (server/token.ts)', async (t) => {
  const token = 'a'.repeat(32);
  t.test('usable (0600, long enough): ok', async (t) => {
    const file = await setup(t, withToken('token'));
    await writeFile(path.join(path.dirname(file), 'token'), `${token}\n`, { mode: 0o600 });
    const r = await cli(['-c', file, 'check']);
    t.equal(r.code, 0, r.err);
    t.match(r.out, /^ok: /m);
  });
  t.test('missing: exit 1, NC_TOKEN_FILE with the fix; nginx -t still runs, no ok line', async (t) => {
    const file = await setup(t, withToken('missing-token'));
    const missing = path.join(path.dirname(file), 'missing-token');
    const r = await cli(['-c', file, 'check']);
    t.equal(r.code, 1);
    t.match(r.err, `cannot use sidecar.token_file ${missing}: ENOENT`);
    t.match(r.err, /Write a random token of at least 16 characters into it/);
    t.notMatch(r.out, /^ok:/m);
  });
  t.test('readable by group and others: exit 1, NC_TOKEN_FILE_MODE with chmod 600', async (t) => {
    const file = await setup(t, withToken('token'));
    const tokenFile = path.join(path.dirname(file), 'token');
    await writeFile(tokenFile, token);
    await chmod(tokenFile, 0o644);
    const r = await cli(['-c', file, 'check']);
    t.equal(r.code, 1);
    t.match(r.err, `sidecar.token_file ${tokenFile} has mode 0644: group or others can read or change the API token`);
    t.match(r.err, `Run chmod 600 ${tokenFile}`);
  });
  t.test('empty, and a directory: exit 1 naming why', async (t) => {
    const file = await setup(t, withToken('token'));
    const tokenFile = path.join(path.dirname(file), 'token');
    await writeFile(tokenFile, '\n', { mode: 0o600 });
    const empty = await cli(['-c', file, 'check']);
    t.equal(empty.code, 1);
    t.match(empty.err, /: shorter than 16 characters\./);
    const dirFile = await setup(t, withToken('.'));
    const dir = await cli(['-c', dirFile, 'check']);
    t.equal(dir.code, 1);
    t.match(dir.err, /: not a regular file\./);
  });
  t.test('a non-loopback listen without a token: exit 2, NC_LISTEN_NO_TOKEN', async (t) => {
    const file = await setup(t, (y) => y.replace(/ {2}listen: 127\.0\.0\.1:\d+/, '  listen: 0.0.0.0:9464'));
    const r = await cli(['-c', file, 'check']);
    t.equal(r.code, 2);
    t.match(r.err, /sidecar\.listen 0\.0\.0\.0:9464 is not a loopback address and sidecar\.token_file is not set/);
  });
  t.test('a token problem and a broken nginx.conf are both reported', async (t) => {
    const file = await setup(t, withToken('missing-token'));
    const conf = path.join(path.dirname(file), 'conf', 'nginx.conf');
    await writeFile(conf, (await readFile(conf, 'utf8')).replace(/http \{/, 'http {\n    no_such_directive on;'));
    const r = await cli(['-c', file, 'check']);
    t.equal(r.code, 1);
    t.match(r.err, /cannot use sidecar\.token_file/);
    t.match(r.err, /unknown directive "no_such_directive"/);
  });
});

t.test('alerts.webhook_url: any HTTP answer is reachable; else a warning, and check still passes', async (t) => {
  t.test('an answer (404 to HEAD) is reachable: no warning', async (t) => {
    const methods: string[] = [];
    const server = createHttpServer((req, res) => {
      methods.push(req.method ?? '');
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as { port: number };
    const file = await setup(t, withWebhook(`http://127.0.0.1:${port}/api/v2/alerts`));
    const r = await cli(['-c', file, 'check']);
    t.equal(r.code, 0, r.err);
    t.equal(r.err, '', 'no warning');
    t.match(r.out, /^ok: /m);
    t.same(methods, ['HEAD'], 'one HEAD request: nothing is posted, no alert is created');
  });

  t.test('refused: a warning naming the URL, the error and the consequence', async (t) => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/api/v2/alerts`;
    const file = await setup(t, withWebhook(url));
    const r = await cli(['-c', file, 'check']);
    t.equal(r.code, 0, 'a warning does not fail check');
    t.match(r.out, /^ok: /m);
    const lines = r.err.trim().split('\n');
    t.equal(lines.length, 1, 'one line');
    t.match(
      lines[0],
      `warning: alerts.webhook_url ${url} does not answer (connect ECONNREFUSED 127.0.0.1:${port}): a drain would not page`,
    );
  });

  t.test('a server that never answers: a timeout warning after the 2 s bound, not later', async (t) => {
    const sockets = new Set<Socket>();
    const server = createTcpServer((s) => {
      sockets.add(s); // accepted, never answered
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          server.close(() => resolve());
        }),
    );
    const { port } = server.address() as { port: number };
    const file = await setup(t, withWebhook(`http://u:secret@127.0.0.1:${port}/hook`));
    const t0 = performance.now();
    const r = await cli(['-c', file, 'check']);
    const took = performance.now() - t0;
    t.equal(r.code, 0);
    t.match(
      r.err,
      `warning: alerts.webhook_url http://u:***@127.0.0.1:${port}/hook does not answer (no answer within ${WEBHOOK_CHECK_TIMEOUT_MS} ms): a drain would not page`,
      'the password is not printed',
    );
    t.notMatch(r.err, /secret/);
    t.ok(took >= WEBHOOK_CHECK_TIMEOUT_MS - 50 && took < WEBHOOK_CHECK_TIMEOUT_MS + 8000, `bounded: ${took} ms`);
    t.ok(sockets.size >= 1, 'it did connect');
  });

  t.test('a name that does not resolve: a warning with the resolver’s error', async (t) => {
    const why = await probeWebhook('http://nginx-canary-check.invalid/api/v2/alerts', 2000);
    t.match(why, /ENOTFOUND|EAI_AGAIN|no answer within/, `${why}`);
  });

  t.test('probeWebhook: null on any answer, the reason otherwise', async (t) => {
    const server = createHttpServer((_req, res) => {
      res.statusCode = 500;
      res.end('broken');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as { port: number };
    t.equal(await probeWebhook(`http://127.0.0.1:${port}/`, 2000), null, 'a 500 is still an answer');
    t.match(await probeWebhook(`https://127.0.0.1:${port}/`, 2000), /./, 'TLS to a plain HTTP port fails');
  });
});

t.test("a failing nginx -t names the live paths and the fix nginx's words point to", async (t) => {
  const { nginxTestHint, scratchToLive } = await import('../../src/cli/check.js');
  const { makeConfig: mk } = await import('../fixtures/nginx/config.js');
  const config = mk('/etc/x');
  t.equal(
    scratchToLive(
      'nginx: [emerg] duplicate "log_format" name "nginx_canary" in /tmp/nginx-canary-check-Ab12Cd/conf/conf.d/nginx-canary.conf:18\nnginx: configuration file /tmp/nginx-canary-check-Ab12Cd/conf/nginx.conf test failed',
      '/etc/nginx',
    ),
    'nginx: [emerg] duplicate "log_format" name "nginx_canary" in /etc/nginx/conf.d/nginx-canary.conf:18\nnginx: configuration file /etc/nginx/nginx.conf test failed',
  );
  t.match(
    nginxTestHint('duplicate "log_format" name "nginx_canary" in x', config),
    /loaded twice.*remove the extra `include` line/,
  );
  t.match(nginxTestHint('unknown log format "nginx_canary" in x', config), /comes before the include.*server \{\}/);
  t.match(nginxTestHint('unknown "nginx_canary_gateway" variable', config), /not loaded inside http \{\}/);
  t.match(nginxTestHint('host not found in upstream "gateway_canary"', config), /not loaded inside http \{\}/);
  t.match(
    nginxTestHint('nginx: [emerg] unknown directive "zone" in /etc/nginx/conf.d/nginx-canary.conf:26', config),
    /without the upstream zone module.*use an nginx built with it/,
  );
  // nginx 1.22's words, seen with `nginx -t` on a limit_req_zone and an upstream zone of the same name.
  t.match(
    nginxTestHint(
      'nginx: [emerg] the shared memory zone "nginx_canary_gateway" is already declared for a different use in /etc/nginx/conf.d/nginx-canary.conf:26',
      config,
    ),
    /already uses the shared memory zone name "nginx_canary_gateway".*rename yours/,
  );
  t.match(
    nginxTestHint('the shared memory zone "api" is already declared for a different use', config),
    /^Fix what nginx names above/,
    "a clash between the operator's own zones is not the sidecar's to explain",
  );
  t.match(nginxTestHint('unexpected "}" in x', config), /^Fix what nginx names above/);
});
