/**
 * The one TypeBox schema of weights.yaml as written (snake_case keys, units
 * still as strings; docs/design.md "weights.yaml"), and the API body schema of the
 * target route (its own 0–100 rule; see {@link TargetBody}). The schema
 * checks structure, types, integer ranges and the duration/percent formats;
 * `validate.ts` adds the rules a schema cannot state (safe character sets,
 * host:port, paths, cross-field checks) and normalizes into `Config`
 * (types.ts).
 *
 * Every leaf carries a `description` (used verbatim in "must be …" messages)
 * and one `examples` entry (used in the fix). Every object is
 * `additionalProperties: false`: an unknown key is an error. A key that may
 * be absent may also be YAML null (`~`), meaning "the default" (or "none"
 * where the default is none).
 *
 * The integer caps (max_fails ≤ 100, min_requests ≤ 10⁹, min_probes ≤ 10⁶,
 * crash_loop_restarts ≤ 1000, snapshots.keep ≤ 1000, baseline_p95_factor ≤
 * 1000) are sanity bounds chosen here, not nginx limits. Defaults and their
 * sources (docs/design.md "Numbers") are in validate.ts.
 */
import { Type, type Static, type TSchema, type TOptional, type TUnion, type TNull } from '@sinclair/typebox';
import { DURATION_PATTERN, PERCENT_PATTERN } from './units.js';

/** An optional key that may also be YAML null (`~`) = use the default. */
function Opt<T extends TSchema>(schema: T): TOptional<TUnion<[T, TNull]>> {
  return Type.Optional(Type.Union([schema, Type.Null()]));
}

function Str(description: string, example: string) {
  return Type.String({ description, examples: [example] });
}

function Duration(example: string) {
  return Type.String({
    pattern: DURATION_PATTERN,
    description: 'a duration with a unit (ms, s, m, h or d) such as 500ms, 30s, 15m, 48h',
    examples: [example],
  });
}

function Percent(example: number | string) {
  return Type.Union([Type.Number(), Type.String({ pattern: PERCENT_PATTERN })], {
    description: 'a percentage: a number (5) or a string with a percent sign ("0.5%")',
    examples: [example],
  });
}

function Int(minimum: number, maximum: number, example: number) {
  return Type.Integer({
    minimum,
    maximum,
    description: `an integer from ${minimum} to ${maximum}`,
    examples: [example],
  });
}

/** One `server` line of an upstream pool. Defaults: see validate.ts (docs/design.md "Numbers"). */
export const ServerSchema = Type.Object(
  {
    server: Str('a host:port such as 127.0.0.1:18789 or [::1]:18789, or unix:/run/app.sock', '127.0.0.1:18789'),
    max_fails: Opt(Int(0, 100, 3)),
    fail_timeout: Opt(Duration('20s')),
    slow_start: Opt(Duration('30s')),
  },
  {
    additionalProperties: false,
    description: 'a server entry { server: host:port or unix:/path, max_fails, fail_timeout, slow_start }',
  },
);

function Pool(example: string) {
  return Type.Array(ServerSchema, {
    minItems: 1,
    description: 'a list of at least one server entry',
    examples: [`[{ server: ${example} }]`],
  });
}

/** Synthetic probes (docs/design.md "Observations"). */
export const ProbeSchema = Type.Object(
  {
    health: Opt(Str('a URL path such as /health', '/health')),
    ready: Opt(Str('a URL path such as /ready', '/ready')),
    interval: Opt(Duration('5s')),
    timeout: Opt(Duration('2s')),
  },
  { additionalProperties: false, description: 'a mapping { health, ready, interval, timeout }' },
);

/** The walk (docs/design.md "Rollout"). */
export const RolloutSchema = Type.Object(
  {
    target: Opt(Percent(50)),
    slice: Opt(Percent(5)),
    slice_soak: Opt(Duration('48h')),
    step: Opt(Percent(10)),
    step_soak: Opt(Duration('15m')),
    version: Opt(
      Type.String({
        minLength: 1,
        maxLength: 128,
        description: 'a label of the canary build from the deploy tool (letters, digits and . _ + - only)',
        examples: ['v2.4.1'],
      }),
    ),
    promote_command: Opt(
      Type.Array(Type.String({ minLength: 1, maxLength: 4096, description: 'one argument', examples: ['gateway'] }), {
        minItems: 1,
        maxItems: 64,
        description: 'a command and its arguments as a list, run without a shell by `promote`',
        examples: [['/usr/local/bin/deploy-primary', 'gateway']],
      }),
    ),
    promote_timeout: Opt(Duration('5m')),
  },
  {
    additionalProperties: false,
    description: 'a mapping { target, slice, slice_soak, step, step_soak, version, promote_command, promote_timeout }',
  },
);

/** Gate thresholds (docs/design.md "Gates"). */
export const GatesSchema = Type.Object(
  {
    window: Opt(Duration('15m')),
    min_requests: Opt(Int(1, 1_000_000_000, 200)),
    connect_p95: Opt(Duration('120ms')),
    error_ratio: Opt(Percent('0.5%')),
    probe_failure_ratio: Opt(Percent('5%')),
    baseline_p95_factor: Opt(
      Type.Number({
        exclusiveMinimum: 1,
        maximum: 1000,
        description: 'a number above 1 and at most 1000',
        examples: [5],
      }),
    ),
    min_probes: Opt(Int(1, 1_000_000, 20)),
    crash_loop_restarts: Opt(Int(1, 1000, 3)),
    crash_loop_window: Opt(Duration('5m')),
  },
  {
    additionalProperties: false,
    description:
      'a mapping { window, min_requests, connect_p95, error_ratio, probe_failure_ratio, baseline_p95_factor, min_probes, crash_loop_restarts, crash_loop_window }',
  },
);

/**
 * The `X-Canary` smoke-test override of a service: the client addresses and
 * networks (nginx `geo` syntax) it is honoured from. Left out: no override.
 * The 1024 cap is a sanity bound chosen here, not an nginx limit.
 */
export const OverrideSchema = Type.Object(
  {
    allow: Type.Array(Str('an IPv4 or IPv6 address or CIDR such as 127.0.0.1, 10.1.2.0/24 or ::1', '127.0.0.1'), {
      minItems: 1,
      maxItems: 1024,
      description: 'a list of 1 to 1024 client addresses or CIDRs such as [127.0.0.1, 10.1.2.0/24, "::1"]',
      examples: ['[127.0.0.1, "::1"]'],
    }),
  },
  {
    additionalProperties: false,
    description: 'a mapping { allow: [client addresses or CIDRs] }',
    examples: ['{ allow: [127.0.0.1, "::1"] }'],
  },
);

/** One service: a primary pool and a canary pool. */
export const ServiceSchema = Type.Object(
  {
    split: Opt(
      Type.Union([Type.Literal('weighted'), Type.Literal('split_clients')], {
        description: 'weighted or split_clients',
        examples: ['weighted'],
      }),
    ),
    split_key: Opt(Str('nginx variables only, such as $remote_addr$http_user_agent', '$remote_addr')),
    primary: Pool('127.0.0.1:18789'),
    canary: Pool('127.0.0.1:18890'),
    probe: Opt(ProbeSchema),
    rollout: Opt(RolloutSchema),
    gates: Opt(GatesSchema),
    override: Opt(OverrideSchema),
  },
  { additionalProperties: false, description: 'a service mapping with primary: and canary: server lists' },
);

/** The `nginx:` section. */
export const NginxSchema = Type.Object(
  {
    binary: Opt(Str('a command name on PATH or a path to the nginx binary', 'nginx')),
    conf: Str('the path of the main nginx.conf', '/etc/nginx/nginx.conf'),
    prefix: Opt(Str('the nginx -p prefix directory', '/etc/nginx')),
    managed: Opt(Type.Boolean({ description: 'true or false', examples: [false] })),
    upstreams_file: Str(
      'the path of the include file the sidecar writes, inside the directory of nginx.conf',
      '/etc/nginx/conf.d/nginx-canary.conf',
    ),
    access_log: Str('the path of the access log in format nginx_canary', '/var/log/nginx/canary.json'),
    status_listen: Opt(Str('a host:port such as 127.0.0.1:9465', '127.0.0.1:9465')),
    snapshots: Opt(
      Type.Object(
        {
          dir: Opt(Str('the directory of the snapshot tarballs', '/var/lib/nginx-canary/snapshots')),
          keep: Opt(Int(1, 1000, 20)),
        },
        { additionalProperties: false, description: 'a mapping { dir, keep }' },
      ),
    ),
    min_reload_interval: Opt(Duration('2s')),
    upstream_keepalive: Opt(Int(0, 1024, 32)),
    upstream_keepalive_timeout: Opt(Duration('4s')),
    max_old_generations: Opt(Int(1, 100, 3)),
    access_log_sample: Opt(Int(1, 100, 100)),
  },
  {
    additionalProperties: false,
    description: 'a mapping with at least conf, upstreams_file and access_log',
    examples: [
      '{ conf: /etc/nginx/nginx.conf, upstreams_file: /etc/nginx/conf.d/nginx-canary.conf, access_log: /var/log/nginx/canary.json }',
    ],
  },
);

/** The `sidecar:` section. */
export const SidecarSchema = Type.Object(
  {
    listen: Opt(Str('a host:port such as 127.0.0.1:9464', '127.0.0.1:9464')),
    state_file: Opt(Str('the path of state.json', '/var/lib/nginx-canary/state.json')),
    token_file: Opt(Str('the path of a file holding the bearer token', '/etc/nginx-canary/token')),
  },
  { additionalProperties: false, description: 'a mapping { listen, state_file, token_file }' },
);

/** The `alerts:` section. */
export const AlertsSchema = Type.Object(
  {
    webhook_url: Opt(Str('an http(s) URL', 'http://127.0.0.1:9093/api/v2/alerts')),
    paused_after: Opt(Str('a duration', '30m')),
  },
  { additionalProperties: false, description: 'a mapping { webhook_url, paused_after }' },
);

/**
 * The `fleet:` section (docs/design.md "Fleet"): the etcd cluster and this host's place in the fleet.
 * Left out: the sidecar walks this host alone. `etcd` and `prefix` are required in it; `host` defaults
 * to the machine's hostname and `lease_ttl` to 5s (validate.ts, which also checks the URLs, the prefix,
 * the host name and the TTL's range).
 */
export const FleetSchema = Type.Object(
  {
    etcd: Type.Array(Str('an etcd client URL such as http://10.0.0.5:2379', 'http://10.0.0.5:2379'), {
      minItems: 1,
      description: 'a list of etcd client URLs such as [http://10.0.0.5:2379, http://10.0.0.6:2379]',
      examples: ['[http://10.0.0.5:2379, http://10.0.0.6:2379, http://10.0.0.7:2379]'],
    }),
    prefix: Str('an etcd key prefix such as /nginx-canary/edge-prod', '/nginx-canary/edge-prod'),
    host: Opt(Str("this host's name in the fleet, such as edge-1", 'edge-1')),
    lease_ttl: Opt(Duration('5s')),
  },
  {
    additionalProperties: false,
    description: 'a mapping { etcd, prefix, host, lease_ttl }',
    examples: ['{ etcd: [http://127.0.0.1:2379], prefix: /nginx-canary/edge-prod }'],
  },
);

/** The whole weights.yaml as written. */
export const WeightsSchema = Type.Object(
  {
    nginx: NginxSchema,
    sidecar: Opt(SidecarSchema),
    alerts: Opt(AlertsSchema),
    fleet: Opt(FleetSchema),
    services: Type.Record(Type.String(), ServiceSchema, {
      minProperties: 1,
      description: 'a mapping of service names to services (at least one)',
      examples: ['{ gateway: { primary: [...], canary: [...] } }'],
    }),
  },
  { additionalProperties: false, description: 'a mapping with nginx: and services:' },
);

/**
 * Body of `PUT /api/v1/services/:name/target` (docs/design.md "Interfaces"):
 * `{ "weight": 60 }`, percent 0–100. Plain JSON Schema keywords only, so
 * fastify's validator takes it as is; the one-decimal rule (0.1 %
 * resolution) is checked by `setTarget` (edit.ts), which the route calls.
 */
export const TargetBody = Type.Object(
  {
    weight: Type.Number({
      minimum: 0,
      maximum: 100,
      description: 'target canary weight, percent 0–100, at most one decimal',
    }),
  },
  { additionalProperties: false },
);

/** Static type of {@link TargetBody}. */
export type TargetBody = Static<typeof TargetBody>;
