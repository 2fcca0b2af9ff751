// Property-based fuzzing of every API body (README "Security"): PUT target,
// POST pause/resume/abort and POST rollback — plus random methods and paths —
// with random JSON values, random strings, malformed JSON, bodies past the
// 1 MiB limit and wrong content types, sent with app.inject to the API of a
// real runner driving a real nginx (as test/server/app.test.ts builds it).
// Never a 5xx; every 4xx answers JSON { code, message, fix }; after every
// rejected call weights.yaml and state.json are byte-identical. Calls the
// generators happen to make valid are accepted like any other (they may walk,
// pause, retarget or roll back: the ManualClock passes min_reload_interval
// every 100 requests, in between such calls answer 429). At the end nginx
// still serves the committed generation. Seeded; the case counts are printed.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import fc from 'fast-check';
import type { InjectOptions } from 'fastify';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { startSidecar } from '../../src/main.js';
import { startStack, tickUntilSliced } from '../fixtures/stack.js';
import { liveGeneration } from '../fixtures/integration/sidecar.js';

/** fast-check seed: every run sends the same requests. */
const SEED = 0xa91;
/** Requests per property (each ~2–5 ms through inject, a rare accepted reload ~200 ms). */
const RUNS = 1000;
/** fastify's default bodyLimit, bytes (1 MiB): larger bodies must be refused with 413. */
const BODY_LIMIT = 1024 * 1024;

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS' | 'HEAD';

/** A request body as sent: a payload and the content-type header (or none). */
interface Body {
  payload: string | Buffer | undefined;
  contentType: string | undefined;
}

const jsonText: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
  {
    weight: 3,
    arbitrary: fc
      .record(
        {
          weight: fc.oneof(
            fc.double(),
            fc.integer({ min: -10, max: 110 }),
            fc.constantFrom(0, 100, 12.5, 12.34, 1e308, -0, 5e-324),
            fc.string(),
            fc.constant(null),
            fc.array(fc.integer(), { maxLength: 2 }),
          ),
          snapshot: fc.oneof(fc.string(), fc.constantFrom('../../etc/passwd', '..', 'x'.repeat(200), 'a/b', '')),
          extra: fc.jsonValue({ maxDepth: 1 }),
        },
        { requiredKeys: [] },
      )
      .map((v) => JSON.stringify(v)),
  },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 1000 }).map((x) => x / 10),
      )
      .map((weight) => JSON.stringify({ weight })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '{"weight":',
      '{"weight": 1e999}',
      '{"__proto__": {"weight": 5}}',
      '{"weight": 5, "weight": 500}',
      '[',
      'nul',
      '',
    ),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 40 }).map((n) => `${'['.repeat(n * 100)}${']'.repeat(n * 100)}`) },
);

const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      undefined,
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/json; charset=utf-16',
      'application/json; charset=latin1',
      'APPLICATION/JSON',
      'application/merge-patch+json',
      'application/octet-stream',
      '',
      'application/json, text/plain',
    ),
  },
);

const body: fc.Arbitrary<Body> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ payload: jsonText, contentType }) },
  { weight: 2, arbitrary: fc.record({ payload: fc.string({ unit: 'binary', maxLength: 64 }), contentType }) },
  { weight: 1, arbitrary: fc.record({ payload: fc.constant(undefined), contentType }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: BODY_LIMIT - 16, max: BODY_LIMIT + 64 * 1024 }).map((n) => ({
      payload: `{"weight": 5, "pad": "${'x'.repeat(n)}"}`,
      contentType: 'application/json',
    })),
  },
);

/** Service names in the URL: the real one, unknown ones, invalid ones, encoded junk. */
const serviceName: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constant('gateway') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'nope',
      'Gateway',
      'a-b',
      '..',
      '%2e%2e',
      'gateway%00',
      'x'.repeat(49),
      '%ZZ',
      'gate%2Fway',
      '1x',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }).map((s) => encodeURIComponent(s)) },
);

interface Stats {
  requests: number;
  byStatus: Map<number, number>;
  accepted: number;
  codes: Map<string, number>;
}

/** Sends one request and checks the answer and the files (see the file comment). */
async function send(
  app: Awaited<ReturnType<typeof startSidecar>>['app'],
  files: readonly string[],
  req: { method: Method; url: string } & Body,
  stats: Stats,
): Promise<void> {
  const before = await Promise.all(files.map((f) => readFile(f)));
  const opts: InjectOptions = {
    method: req.method,
    url: req.url,
    ...(req.payload === undefined ? {} : { payload: req.payload }),
    headers: req.contentType === undefined ? {} : { 'content-type': req.contentType },
  };
  const res = await app.inject(opts);
  stats.requests++;
  stats.byStatus.set(res.statusCode, (stats.byStatus.get(res.statusCode) ?? 0) + 1);
  const what = `${req.method} ${req.url} (${req.contentType ?? 'no content-type'}, ${String(req.payload).slice(0, 80)}) → ${res.statusCode} ${res.body.slice(0, 200)}`;
  if (res.statusCode >= 500) throw new Error(`a 5xx: ${what}`);
  if (res.statusCode < 400) {
    stats.accepted++;
    return;
  }
  if (req.method === 'HEAD') return; // no body by definition
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body);
  } catch {
    throw new Error(`a 4xx that is not JSON: ${what}`);
  }
  const b = parsed as { code?: unknown; message?: unknown; fix?: unknown };
  if (typeof b.code !== 'string' || !/^NC_[A-Z_]+$/.test(b.code)) throw new Error(`no code: ${what}`);
  if (typeof b.message !== 'string' || b.message === '') throw new Error(`no message: ${what}`);
  if (typeof b.fix !== 'string' || b.fix === '') throw new Error(`no fix: ${what}`);
  stats.codes.set(`${res.statusCode} ${b.code}`, (stats.codes.get(`${res.statusCode} ${b.code}`) ?? 0) + 1);
  const after = await Promise.all(files.map((f) => readFile(f)));
  for (const [i, f] of files.entries()) {
    if (!after[i]?.equals(before[i] ?? Buffer.alloc(0))) throw new Error(`a rejected call changed ${f}: ${what}`);
  }
}

t.test('every API body, on a real runner and nginx', async (t) => {
  const stack = await startStack(t, { target: 30 });
  const clock = new ManualClock();
  const sidecar = await startSidecar(stack.config, { log: silentLogger, clock, listen: false, tickMs: 3_600_000 });
  t.teardown(() => sidecar.close());
  await tickUntilSliced(sidecar.runner); // generation 1: the first slice, so there is a snapshot to roll back to
  const files = [stack.configFile, stack.config.sidecar.stateFile];
  const app = sidecar.app;

  const properties: [string, fc.Arbitrary<{ method: Method; url: string } & Body>][] = [
    [
      'PUT /api/v1/services/:name/target',
      fc
        .tuple(serviceName, body)
        .map(([name, b]) => ({ method: 'PUT' as const, url: `/api/v1/services/${name}/target`, ...b })),
    ],
    [
      'POST /api/v1/services/:name/{pause,resume,abort}',
      fc
        .tuple(fc.constantFrom('pause', 'resume', 'abort'), serviceName, body)
        .map(([kind, name, b]) => ({ method: 'POST' as const, url: `/api/v1/services/${name}/${kind}`, ...b })),
    ],
    ['POST /api/v1/rollback', body.map((b) => ({ method: 'POST' as const, url: '/api/v1/rollback', ...b }))],
    [
      'any method on any path',
      fc
        .tuple(
          fc.constantFrom<Method>('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
          fc.oneof(
            fc.constantFrom('/api/v1/services', '/api/v1/snapshots', '/api/v1/rollback', '/metrics', '/healthz', '/'),
            fc.webPath(),
            fc
              .tuple(serviceName, fc.constantFrom('target', 'pause', 'x', ''))
              .map(([n, k]) => `/api/v1/services/${n}/${k}`),
          ),
          body,
        )
        .map(([method, url, b]) => ({ method, url: url === '' ? '/' : url, ...b })),
    ],
  ];

  for (const [name, arb] of properties) {
    await t.test(name, async (t) => {
      const stats: Stats = { requests: 0, byStatus: new Map(), accepted: 0, codes: new Map() };
      await fc.assert(
        fc.asyncProperty(arb, async (req) => {
          // Now and then past min_reload_interval, so accepted calls really reload nginx (else they answer 429).
          if (stats.requests % 100 === 0) clock.advance(1000);
          await send(app, files, req, stats);
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: true },
      );
      const statuses = [...stats.byStatus].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`);
      t.comment(`${stats.requests} requests: ${statuses.join(', ')}; ${stats.accepted} accepted`);
      t.comment(
        `rejections: ${[...stats.codes]
          .sort((a, b) => b[1] - a[1])
          .map(([c, n]) => `${c}×${n}`)
          .join(', ')}`,
      );
      t.equal(stats.requests, RUNS, `${RUNS} requests`);
      t.notOk(
        [...stats.byStatus.keys()].some((s) => s >= 500),
        'no 5xx',
      );
      t.ok(
        [...stats.byStatus.keys()].some((s) => s >= 400),
        'rejections were seen',
      );
    });
  }

  // nginx still serves what state.json says is live, and the API still answers.
  const state = JSON.parse(await readFile(stack.config.sidecar.stateFile, 'utf8')) as { generation: number };
  t.equal(
    await liveGeneration(stack.config),
    state.generation,
    `nginx serves the committed generation ${state.generation}`,
  );
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'the API still answers');
});
