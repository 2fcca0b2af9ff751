/**
 * The HTTP API (docs/design.md "Interfaces"), built by `buildApp(deps)`; only the
 * composition root calls `listen`. Routes:
 *
 * - `GET /metrics` (Prometheus), `GET /healthz`, `GET /` (status page);
 * - `GET /api/v1/services`, `GET /api/v1/services/:name`;
 * - `PUT /api/v1/services/:name/target` `{"weight": 60}` (edits weights.yaml);
 * - `PUT /api/v1/services/:name/version` `{"version": "v2"}` (a new canary build; edits weights.yaml);
 * - `POST /api/v1/services/:name/{pause,resume,abort,promote}`;
 * - `GET /api/v1/snapshots`, `POST /api/v1/rollback` `{"snapshot": "<id>"}` (id optional).
 *
 * Access (see token.ts): a client on a loopback address (127.0.0.0/8, ::1,
 * ::ffff:127.x) reads (GET, HEAD) freely. With a token set, every other call —
 * each mutating call from any address, and reads (`/metrics` included) from
 * any other address — needs `Authorization: Bearer <token>` (compared in
 * constant time), else 401 `NC_UNAUTHORIZED`. Without a token, a client off
 * loopback gets 403 `NC_FORBIDDEN` whatever it asks. Errors answer
 * `{ code, message, fix }`; a 5xx never shows its message to the client (it
 * is logged).
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import ejs from 'ejs';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { TargetBody } from '../config/schema.js';
import { CanaryError, ConfigError, errors } from '../errors.js';
import type { Logger } from '../log.js';
import { HISTORY_LIMIT } from '../rollout/types.js';
import type { Runner } from '../runner.js';
import type { Metrics } from './metrics.js';
import { isLoopbackAddress } from './token.js';
import { CHART_CSS } from './chart.js';
import { buildStatusPage } from './page.js';

/** What the app needs. */
export interface AppDeps {
  /** The decision loop: routes read its state and status and call setTarget, command and rollback. */
  runner: Runner;
  /** Serialized by `GET /metrics`. */
  metrics: Metrics;
  /** Parent logger: fastify logs under `component: api` at warn and above; 5xx causes are logged here. */
  log: Logger;
  /**
   * Bearer token (compared in constant time) for mutating calls and for reads from non-loopback clients, or null:
   * then loopback clients may do anything and every other client is refused (403).
   */
  token: string | null;
}

const templatesDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'templates');

/** Seconds between two refreshes of the status page (meta refresh; a chosen value, `?refresh=off` stops it). */
const STATUS_REFRESH_S = 5;

const NameParams = Type.Object({ name: Type.String({ pattern: '^[a-z][a-z0-9_]{0,47}$' }) });
/** `PUT /api/v1/services/:name/version`: the canary build's label, as weights.yaml's `rollout.version` takes it. */
const VersionBody = Type.Object(
  { version: Type.String({ pattern: '^[A-Za-z0-9._+-]{1,128}$' }) },
  { additionalProperties: false },
);
const RollbackBody = Type.Object(
  { snapshot: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' })) },
  { additionalProperties: false },
);

/** Constant-time comparison of two secrets (hashed first so lengths match). */
function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/**
 * Builds the fastify app with every route of the module comment; does not
 * listen (the composition root does). Errors answer `{ code, message, fix }`:
 * ConfigError 400 (with `problems`), CanaryError its statusCode (a 5xx with
 * its message hidden), a schema validation failure 400 `NC_BAD_REQUEST`,
 * anything else 500 `NC_INTERNAL`; an unknown route 404 `NC_NOT_FOUND`, a URL
 * fastify cannot decode 400 `NC_BAD_REQUEST`. A missing or wrong bearer token answers
 * 401 `NC_UNAUTHORIZED` with `WWW-Authenticate: Bearer` (RFC 6750); a
 * non-loopback client without a configured token 403 `NC_FORBIDDEN`. The
 * access check runs before routing, so an unauthorized client learns nothing,
 * not even which paths exist.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // Request logs are debug-level noise for a sidecar polled by Prometheus; the API logs its own errors.
  const logger: FastifyBaseLogger = deps.log.child({ component: 'api' }, { level: 'warn' });
  // Bodies are validated strictly: an unknown key or a string where a number
  // belongs is refused, never stripped or coerced into a change.
  const app = Fastify({
    loggerInstance: logger,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    // Errors fastify meets before routing (a URL with bad percent-encoding) get the same { code, message, fix }.
    frameworkErrors: (err, _req, res) => {
      const reply = res as FastifyReply;
      void reply.code(err.statusCode !== undefined && err.statusCode < 500 ? err.statusCode : 400).send({
        code: 'NC_BAD_REQUEST',
        message: err.message,
        fix: 'Percent-encode the URL correctly; see the API section of the README for the routes',
      });
    },
  });
  const { runner, metrics, token } = deps;

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof ConfigError) {
      return reply.code(400).send({ code: err.code, message: err.message, fix: err.fix, problems: err.problems });
    }
    if (err instanceof CanaryError) {
      if (err.statusCode >= 500) {
        deps.log.error({ code: err.code, err: err.message }, 'API call failed');
        return reply
          .code(err.statusCode)
          .send({ code: err.code, message: 'the change was not applied; see the sidecar log', fix: err.fix });
      }
      return reply.code(err.statusCode).send({ code: err.code, message: err.message, fix: err.fix });
    }
    const e = err as { validation?: unknown; statusCode?: number; message?: string };
    if (e.validation) {
      return reply.code(400).send({
        code: 'NC_BAD_REQUEST',
        message: e.message ?? 'invalid request',
        fix: 'See the API section of the README for the body shape',
      });
    }
    if (e.statusCode !== undefined && e.statusCode < 500) {
      return reply.code(e.statusCode).send({
        code: 'NC_BAD_REQUEST',
        message: e.message ?? 'bad request',
        fix: 'See the API section of the README',
      });
    }
    deps.log.error({ err }, 'API call failed');
    return reply.code(500).send({
      code: 'NC_INTERNAL',
      message: 'internal error; see the sidecar log',
      fix: 'Report it with the log lines',
    });
  });

  // One gate for every request, before routing (see the module comment): loopback reads are open.
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const remote = req.socket.remoteAddress;
    const loopback = isLoopbackAddress(remote);
    const read = req.method === 'GET' || req.method === 'HEAD';
    if (token === null) {
      if (!loopback) throw errors.forbiddenWithoutToken(remote);
      return;
    }
    if (read && loopback) return;
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (m?.[1] && sameSecret(m[1], token)) return;
    void reply.header('www-authenticate', 'Bearer realm="nginx-canary"');
    throw read ? errors.unauthorizedRead() : errors.unauthorized();
  });

  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({
      code: 'NC_NOT_FOUND',
      message: `no route ${req.method} ${req.url.length > 200 ? `${req.url.slice(0, 200)}…` : req.url}`,
      fix: 'See the API section of the README for the routes',
    }),
  );

  const service = (name: string) => {
    const s = runner.status(0).services.find((x) => x.name === name);
    if (!s) throw errors.unknownService(name);
    return s;
  };

  app.get('/healthz', () => Promise.resolve({ ok: true, generation: runner.state.generation }));

  app.get('/metrics', async (_req, reply) => {
    const body = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(body);
  });

  app.get('/api/v1/services', () => Promise.resolve(runner.status()));

  app.get('/api/v1/services/:name', { schema: { params: NameParams } }, (req) => {
    const { name } = req.params as { name: string };
    return Promise.resolve({
      ...service(name),
      history: runner.state.history.filter((e) => e.service === name).slice(-50),
    });
  });

  app.put('/api/v1/services/:name/target', { schema: { params: NameParams, body: TargetBody } }, async (req) => {
    const { name } = req.params as { name: string };
    service(name);
    const { weight } = req.body as { weight: number };
    const r = await runner.setTarget(name, weight);
    return { service: name, from: r.from, to: r.to, status: r.status };
  });

  app.put('/api/v1/services/:name/version', { schema: { params: NameParams, body: VersionBody } }, async (req) => {
    const { name } = req.params as { name: string };
    service(name);
    const { version } = req.body as { version: string };
    const r = await runner.setVersion(name, version);
    return { service: name, from: r.from, to: r.to, status: r.status };
  });

  app.post('/api/v1/services/:name/promote', { schema: { params: NameParams } }, async (req) => {
    const { name } = req.params as { name: string };
    service(name);
    return runner.promote(name);
  });

  for (const kind of ['pause', 'resume', 'abort'] as const) {
    app.post(`/api/v1/services/:name/${kind}`, { schema: { params: NameParams } }, async (req) => {
      const { name } = req.params as { name: string };
      service(name);
      return runner.command({ kind, service: name });
    });
  }

  app.get('/api/v1/snapshots', async () => ({ snapshots: await runner.snapshots() }));

  // No body means "the snapshot before the live config"; a body must match RollbackBody exactly.
  app.post('/api/v1/rollback', async (req) => {
    const body: unknown = req.body ?? {};
    if (!Value.Check(RollbackBody, body)) {
      throw errors.usage(
        'the rollback body must be {} or {"snapshot": "<id>"} with an id from GET /api/v1/snapshots',
        'Send no body for the previous snapshot, or {"snapshot": "<id>"}',
      );
    }
    const { snapshot, raises } = await runner.rollback(body.snapshot);
    return { snapshot, raises, status: runner.status() };
  });

  // The status page: the template is read and compiled once per app (on the first request), then only run.
  let statusTemplate: Promise<ejs.TemplateFunction> | undefined;
  app.get('/', async (req, reply) => {
    const file = path.join(templatesDir, 'status.html.ejs');
    statusTemplate ??= readFile(file, 'utf8').then((src) => ejs.compile(src, { filename: file }));
    const render = await statusTemplate.catch((err: unknown) => {
      statusTemplate = undefined; // a broken template is retried on the next request
      throw err;
    });
    const query = req.query as Record<string, unknown>;
    // Like a 5xx, a failure to list snapshots is logged; the page only says where to look.
    const snapshots = await runner.snapshots().catch((err: unknown) => {
      deps.log.warn({ err }, 'status page: listing the snapshots failed');
      return new Error('listing them failed; see the sidecar log');
    });
    // Runner exposes no clock: the wall clock is the right edge of the chart and the origin of ages.
    const page = buildStatusPage({
      status: runner.status(HISTORY_LIMIT),
      snapshots,
      now: runner.clock.now(),
      refreshSeconds: query['refresh'] === 'off' ? null : STATUS_REFRESH_S,
    });
    return reply.type('text/html; charset=utf-8').send(render({ page, chartCss: CHART_CSS }));
  });

  return app;
}
