/**
 * Mergeable observations for fleet mode (docs/design.md "Fleet: many nginx
 * hosts, one walk (etcd)"): each host publishes its pools' evidence over the
 * judged window as a JSON-safe snapshot — counts, the per-bucket count series
 * and the connect/response-time DDSketches serialized — and the leader merges
 * the hosts' snapshots into one `Observations` for the pure `decide()`.
 *
 * The one rule of the merge, as prom-client's registry aggregators: counts are
 * summed, series are aligned by bucket start and summed, sketches are merged
 * and the p95 is read after the merge (DDSketch merges exactly, bin by bin), so
 * the fleet p95 is never an average of the hosts' p95s. Merging the snapshots
 * of K hosts gives what one window fed every host's lines would observe.
 *
 * Probes are not sketched (the probe window keeps exact samples): see
 * {@link mergeProbes} for their merge, chosen conservative on purpose.
 *
 * Pure: no I/O, no clock. Times are epoch ms, durations ms, ratios 0–1.
 */
import { Buffer } from 'node:buffer';
import { DDSketch } from '@datadog/sketches-js';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { SERVICE_NAME_RE } from '../config/validate.js';
import {
  addToBucket,
  newAccumulator,
  SKETCH_RELATIVE_ACCURACY,
  toObservation,
  type WindowSpan,
} from '../observe/window.js';
import type {
  CountBucket,
  Observations,
  PoolObservation,
  ProbeObservation,
  ServiceObservation,
} from '../rollout/types.js';

/** One pool's mergeable evidence over the judged window. JSON-safe (it travels through etcd). */
export interface PoolSnapshot {
  /** Upstream attempts over the judged span (as PoolObservation.requests). */
  requests: number;
  /** Of those, the failed ones (status ≥ 500 or none; as PoolObservation.errors). */
  errors: number;
  /** Count-series bucket width, ms (`seriesWidthMs(gates.window)`, observe/window.ts); shared by every host of a service. */
  widthMs: number;
  /** Epoch ms start of `series[0]`'s bucket (its absolute index × `widthMs`); meaningless when `series` is empty. */
  seriesStartMs: number;
  /** Attempts and errors per bucket, oldest first, empty buckets included (as PoolObservation.series). */
  series: CountBucket[];
  /** Connect times (ms) as a DDSketch serialized (protobuf, base64); null without samples. */
  connect: string | null;
  /** Response times (ms) as a DDSketch serialized (protobuf, base64); null without samples. */
  response: string | null;
  /**
   * The most requests one access-log line stood for in the span (PoolObservation.sampleWeight), an
   * integer 2–100; absent when every line stood for itself, so a host without sampling publishes the
   * document older versions read (they refuse the field: turn sampling on after every host runs this
   * version, README "Sampled access log").
   */
  sampleWeight?: number;
}

/** One service's snapshot: both pools, and the probes' view when a prober runs on the host. */
export interface ServiceSnapshot {
  /** The primary pool. */
  primary: PoolSnapshot;
  /** The canary pool. */
  canary: PoolSnapshot;
  /** The host's probe observations (already JSON-safe); absent when no prober runs there. */
  probes?: { primary: ProbeObservation; canary: ProbeObservation };
}

/** One host's snapshots, by service name (what a host publishes under `observations/<host>`). */
export type ObservationSnapshot = Record<string, ServiceSnapshot>;

/**
 * Longest merged series, buckets. A host's own series is at most its ring
 * (≤ 917 buckets: observe/window.ts SERIES_BUCKETS_PER_WINDOW plus skew
 * slots); hosts whose clocks disagree by more than ~1 window would ask for a
 * longer union, which
 * is cut to its newest buckets with the older counts folded into the first
 * kept bucket (totals kept; the sequential test never rises from merging
 * buckets, so the cut errs towards holding). A chosen bound on memory.
 */
export const MAX_SERIES_BUCKETS = 2048;

/**
 * Longest serialized sketch accepted, characters. A legitimate sketch spans at
 * most ~36,000 bins (every finite double of ms at 1 % accuracy), 8 bytes each:
 * ≈ 390,000 base64 characters. Chosen above that and below etcd's default
 * 1.5 MiB request limit.
 */
export const MAX_SKETCH_CHARS = 1_048_576;

/**
 * Bin keys a decoded sketch may hold (inclusive): at relative accuracy 0.01 a
 * key k stands for ≈ 1.0202^k ms, so [−4096, 40960] covers every finite ms
 * value from 3e−36 up, with room for the store's padding. Bounds the memory a
 * merge can allocate (a store is dense between its lowest and highest key).
 */
export const SKETCH_KEY_RANGE: readonly [number, number] = [-4096, 40_960];

/** Serializes a sketch: protobuf (DDSketch.toProto) as base64; null when it holds no sample. */
function encodeSketch(sketch: DDSketch): string | null {
  return sketch.count > 0 ? Buffer.from(sketch.toProto()).toString('base64') : null;
}

/**
 * The fields of a sketch's protobuf index mapping this module reads (the
 * library declares the message with protobufjs types, which are not installed).
 */
interface MappingProto {
  gamma: number | null;
  indexOffset: number | null;
  interpolation: number | null;
}

/** A sketch's index mapping as its protobuf message (the fields above; a field not a number reads as null). */
function mappingOf(sketch: DDSketch): MappingProto {
  const proto: unknown = sketch.mapping.toProto();
  const field = (key: keyof MappingProto): number | null => {
    const v: unknown = typeof proto === 'object' && proto !== null ? Reflect.get(proto, key) : null;
    return typeof v === 'number' ? v : null;
  };
  return { gamma: field('gamma'), indexOffset: field('indexOffset'), interpolation: field('interpolation') };
}

/** The mapping every window's sketch uses (observe/window.ts), for the decoded sketches' check. */
const REFERENCE_MAPPING = mappingOf(new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY }));

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decodes and checks one serialized sketch: strict base64, protobuf that
 * DDSketch.fromProto reads, the windows' mapping (same gamma, offset and
 * interpolation, so merges are exact), no negative values, whole non-negative
 * counts, keys within {@link SKETCH_KEY_RANGE}. Returns the sketch or a reason.
 */
function decodeSketch(text: string): DDSketch | string {
  if (text.length > MAX_SKETCH_CHARS) return `longer than ${MAX_SKETCH_CHARS} characters`;
  if (text.length % 4 !== 0 || !BASE64_RE.test(text)) return 'not base64';
  let sketch: DDSketch;
  try {
    sketch = DDSketch.fromProto(Buffer.from(text, 'base64'));
  } catch (err) {
    return `not a DDSketch protobuf (${String(err)})`;
  }
  const m = mappingOf(sketch);
  if (
    m.gamma !== REFERENCE_MAPPING.gamma ||
    m.indexOffset !== REFERENCE_MAPPING.indexOffset ||
    m.interpolation !== REFERENCE_MAPPING.interpolation
  )
    return `not a sketch of relative accuracy ${SKETCH_RELATIVE_ACCURACY} (gamma ${m.gamma})`;
  // Also because DDSketch.merge (2.1.1) does not merge negative stores: such values would vanish.
  if (sketch.negativeStore.count !== 0) return 'holds negative values (times are ≥ 0 ms)';
  if (!isCount(sketch.zeroCount)) return 'its zero count is not a whole number ≥ 0';
  const store = sketch.store;
  if (!store.bins.every(isCount)) return 'a bin count is not a whole number ≥ 0';
  if (store.bins.length > 0 && (store.minKey < SKETCH_KEY_RANGE[0] || store.maxKey > SKETCH_KEY_RANGE[1]))
    return `bin keys ${store.minKey}…${store.maxKey} outside ${SKETCH_KEY_RANGE[0]}…${SKETCH_KEY_RANGE[1]}`;
  if (!Number.isSafeInteger(sketch.count)) return 'its sample count is not a safe integer';
  return sketch;
}

/** A whole number ≥ 0 that a double holds exactly. */
function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/**
 * One pool's snapshot from the span observe/window.ts `collectWindows` read:
 * its counts, series, width and first bucket's start as they are, each sketch
 * serialized ({@link PoolSnapshot.connect}; null without samples). The series
 * array is the span's own (not copied). Never throws.
 */
export function snapshotOf(span: WindowSpan): PoolSnapshot {
  const p: PoolSnapshot = {
    requests: span.acc.requests,
    errors: span.acc.errors,
    widthMs: span.widthMs,
    seriesStartMs: span.seriesStartMs,
    series: span.series,
    connect: encodeSketch(span.acc.sketch),
    response: encodeSketch(span.acc.response),
  };
  if (span.acc.sampleWeight > 1) p.sampleWeight = span.acc.sampleWeight;
  return p;
}

/**
 * The one merge of the fleet's evidence: the hosts' snapshots (one
 * {@link ObservationSnapshot} per host, any order) into the `Observations`
 * `decide()` reads. Per service, over the hosts that have it (a service
 * present on only some hosts merges what exists), per pool:
 * - `requests`, `errors`: summed;
 * - `series`: aligned by bucket start (`seriesStartMs`) and summed bucket by
 *   bucket, oldest first, covering the union of the hosts' spans (zeros where
 *   no host has a bucket; empty when every host's is), at most
 *   {@link MAX_SERIES_BUCKETS} (older counts folded into the first bucket);
 *   a bucket keeps its `tail` (trailing failure run) only when one host
 *   alone had attempts in it;
 * - `connectP95Ms`, `responseP95Ms`: the hosts' sketches merged
 *   (DDSketch.merge, exact bin by bin) and the p95 (GATE_QUANTILE) read after
 *   the merge, as observe/window.ts `toObservation` does — never an average of
 *   p95s; null without samples;
 * - `sampleWeight`: the largest (the error test is calibrated for the most a line stood for);
 * - `probes` (when at least one host has them): {@link mergeProbes}.
 * Merging the snapshots of one host gives back that host's observations.
 *
 * Throws RangeError when a service's snapshots (both pools, every host) do not
 * share one `widthMs`, when a non-empty series starts off its bucket grid
 * (`seriesStartMs` not a multiple of `widthMs`), or when a sketch does not
 * decode (a document not from {@link snapshotOf} or
 * {@link parseObservationSnapshot}).
 */
export function mergeSnapshots(hosts: readonly ObservationSnapshot[]): Observations {
  const byService = new Map<string, ServiceSnapshot[]>();
  for (const host of hosts) {
    for (const [name, svc] of Object.entries(host)) {
      const list = byService.get(name);
      if (list === undefined) byService.set(name, [svc]);
      else list.push(svc);
    }
  }
  const entries: [string, ServiceObservation][] = [];
  for (const [name, list] of byService) {
    const widthMs = (list[0] as ServiceSnapshot).primary.widthMs;
    for (const s of list) {
      for (const pool of [s.primary, s.canary]) {
        if (pool.widthMs !== widthMs)
          throw new RangeError(
            `service ${name}: hosts' buckets must share a width to be merged: ${widthMs} ms and ${pool.widthMs} ms (gates.window differs)`,
          );
      }
    }
    const obs: ServiceObservation = {
      primary: mergePool(
        name,
        list.map((s) => s.primary),
        widthMs,
      ),
      canary: mergePool(
        name,
        list.map((s) => s.canary),
        widthMs,
      ),
    };
    const probes = list.flatMap((s) => (s.probes === undefined ? [] : [s.probes]));
    if (probes.length > 0)
      obs.probes = {
        primary: mergeProbes(probes.map((p) => p.primary)),
        canary: mergeProbes(probes.map((p) => p.canary)),
      };
    entries.push([name, obs]);
  }
  // fromEntries defines own properties, so no service name can reach a prototype.
  return Object.fromEntries(entries);
}

/** Merges one pool's snapshots of one service (see {@link mergeSnapshots}). */
function mergePool(service: string, pools: readonly PoolSnapshot[], widthMs: number): PoolObservation {
  const acc = newAccumulator();
  for (const p of pools) {
    acc.requests += p.requests;
    acc.errors += p.errors;
    if (p.sampleWeight !== undefined && p.sampleWeight > acc.sampleWeight) acc.sampleWeight = p.sampleWeight;
    // Merged into the accumulator's fresh sketches, whose mapping is the windows' own: a decoded
    // sketch's mapping is rebuilt from gamma and its multiplier may differ in the last bit.
    if (p.connect !== null) acc.sketch.merge(sketchOrThrow(service, 'connect', p.connect));
    if (p.response !== null) acc.response.merge(sketchOrThrow(service, 'response', p.response));
  }
  return toObservation(acc, mergeSeries(service, pools, widthMs));
}

/** A decoded sketch, or RangeError naming the service and field. */
function sketchOrThrow(service: string, field: string, text: string): DDSketch {
  const s = decodeSketch(text);
  if (typeof s === 'string') throw new RangeError(`service ${service}: ${field} sketch ${s}`);
  return s;
}

/** The pools' series aligned by bucket start and summed (see {@link mergeSnapshots}). */
function mergeSeries(service: string, pools: readonly PoolSnapshot[], widthMs: number): CountBucket[] {
  let first = Infinity;
  let last = -Infinity;
  for (const p of pools) {
    if (p.series.length === 0) continue;
    const start = p.seriesStartMs / widthMs;
    if (!Number.isSafeInteger(start))
      throw new RangeError(
        `service ${service}: a series starts at ${p.seriesStartMs} ms, not on its ${widthMs} ms bucket grid`,
      );
    first = Math.min(first, start);
    last = Math.max(last, start + p.series.length - 1);
  }
  if (first > last) return [];
  first = Math.max(first, last - MAX_SERIES_BUCKETS + 1);
  const out: CountBucket[] = Array.from({ length: last - first + 1 }, () => ({ attempts: 0, errors: 0 }));
  for (const p of pools) {
    const start = p.seriesStartMs / widthMs;
    p.series.forEach((b, i) => {
      if (b.attempts === 0) return;
      // A trailing failure run survives only in a bucket one host alone filled (the interleaving is lost).
      addToBucket(out[Math.max(0, start + i - first)] as CountBucket, b.attempts, b.errors, b.tail);
    });
  }
  return out;
}

/**
 * The fleet's view of one pool's probes from the hosts' views. Every host
 * probes the same backends, so the merge must not turn N looks at one backend
 * into N-fold confidence blindly, nor hide one host's bad view:
 * - `probes`, `failures`: summed — each host's probe is a real, independent
 *   probe (its own connection from its own host), so the failure ratio is the
 *   fleet's;
 * - `connectP95Ms`, `totalP95Ms` (ms): the worst host's (max over hosts with a
 *   value; null when none has one). A deliberate, conservative choice: the
 *   probe window keeps exact samples, not sketches, so no exact fleet p95 can
 *   be formed, and the max never reports a pool faster than some host sees it;
 * - `ready`, `healthy`: false if any host says false, else null if any says
 *   null, else true (as the probe window combines its servers);
 * - `downTransitions`: the max — every host sees the same crash, so a sum
 *   would count one restart N times;
 * - `recoveredAt` (epoch ms): the latest (max; null when no host saw one).
 * An empty list gives the view of no probe at all. Never throws.
 */
export function mergeProbes(views: readonly ProbeObservation[]): ProbeObservation {
  const out: ProbeObservation = {
    probes: 0,
    failures: 0,
    connectP95Ms: null,
    totalP95Ms: null,
    ready: views.length > 0 ? true : null,
    healthy: views.length > 0 ? true : null,
    downTransitions: 0,
    recoveredAt: null,
  };
  for (const v of views) {
    out.probes += v.probes;
    out.failures += v.failures;
    out.connectP95Ms = maxOrNull(out.connectP95Ms, v.connectP95Ms);
    out.totalP95Ms = maxOrNull(out.totalP95Ms, v.totalP95Ms);
    out.ready = worstOf(out.ready, v.ready);
    out.healthy = worstOf(out.healthy, v.healthy);
    out.downTransitions = Math.max(out.downTransitions, v.downTransitions);
    out.recoveredAt = maxOrNull(out.recoveredAt, v.recoveredAt);
  }
  return out;
}

/** The larger of two values, ignoring nulls; null when both are. */
function maxOrNull(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}

/** false beats null beats true. */
function worstOf(a: boolean | null, b: boolean | null): boolean | null {
  if (a === false || b === false) return false;
  if (a === null || b === null) return null;
  return true;
}

/** Options of {@link outlierHosts}; an invalid value falls back to its default. */
export interface OutlierOptions {
  /** A named host's canary error ratio is at least this multiple of the rest's (default {@link OUTLIER_FACTOR}). */
  factor?: number;
  /** Chance bound of naming a host whose canary is no worse than the rest's (default {@link OUTLIER_ALPHA}). */
  alpha?: number;
  /** Fewest canary attempts of the host, and of the rest, to judge (default {@link OUTLIER_MIN_ATTEMPTS}). */
  minAttempts?: number;
}

/** "Stands far above": at least twice the rest's error ratio (a chosen effect size, not derived). */
export const OUTLIER_FACTOR = 2;
/**
 * Bound on the chance that a given host whose canary errs at the rest's ratio
 * is named at one evaluation: 0.001, so a healthy 5-host fleet names someone by
 * chance in at most ~0.5 % of evaluations (a chosen value).
 */
export const OUTLIER_ALPHA = 0.001;
/**
 * Canary attempts the host and the rest each need before a host is judged: the
 * rest's ratio is an estimate whose own noise the test ignores (a chosen floor).
 */
export const OUTLIER_MIN_ATTEMPTS = 20;

/** A host named by {@link outlierHosts}, with the numbers behind it. */
export interface OutlierHost {
  /** The host's name (the key of `byHost`). */
  host: string;
  /** The host's canary error ratio over its window, 0–1. */
  errorRatio: number;
  /** The host's canary attempts. */
  attempts: number;
  /** The host's failed canary attempts. */
  errors: number;
  /** The other hosts' pooled canary error ratio, smoothed ((errors + ½) / (attempts + 1)), 0–1. */
  restErrorRatio: number;
  /**
   * attempts × KL(errorRatio ‖ restErrorRatio), nats: the log-likelihood ratio
   * of the host's own ratio against the rest's; e^−statistic bounds the
   * chance of so many errors at the rest's ratio (Chernoff).
   */
  statistic: number;
}

/**
 * The hosts whose own canary error ratio stands far above the rest of the
 * fleet's for `service`, for status (docs/design.md "Fleet": "a host whose own
 * canary error ratio stands far above the rest is named in status"); worst
 * ratio first, then by name. Each host is compared with the others pooled
 * (leave one out, so a bad host does not raise its own yardstick):
 * `p0 = (restErrors + ½) / (restAttempts + 1)` (the Jeffreys estimate: a rest
 * without errors does not make one error infinitely surprising), and the host
 * (n attempts, ratio r) is named when
 * - n ≥ minAttempts and the rest has ≥ minAttempts attempts;
 * - r ≥ factor × p0 (default 2: "far above" is an effect size, not only a
 *   significance); and
 * - n × KL(r ‖ p0) ≥ ln(1 / alpha) (default alpha 0.001 → 6.91 nats): by the
 *   Chernoff bound P(X ≥ n·r | n, p0) ≤ e^(−n·KL(r‖p0)), so a host erring at
 *   the rest's ratio is named with chance ≤ alpha — the binomial test's
 *   conservative closed form, the same log-likelihood ratio the sequential
 *   error test uses.
 * Hosts without the service, and fleets of one host, name nobody. Never throws.
 */
export function outlierHosts(
  byHost: Readonly<Record<string, ObservationSnapshot>>,
  service: string,
  opts: OutlierOptions = {},
): OutlierHost[] {
  const factor = opts.factor !== undefined && opts.factor > 0 ? opts.factor : OUTLIER_FACTOR;
  const alpha = opts.alpha !== undefined && opts.alpha > 0 && opts.alpha < 1 ? opts.alpha : OUTLIER_ALPHA;
  const minAttempts = opts.minAttempts !== undefined && opts.minAttempts >= 0 ? opts.minAttempts : OUTLIER_MIN_ATTEMPTS;
  const bound = Math.log(1 / alpha);
  const hosts: { host: string; n: number; x: number }[] = [];
  let totalN = 0;
  let totalX = 0;
  for (const [host, snap] of Object.entries(byHost)) {
    const svc = Object.hasOwn(snap, service) ? snap[service] : undefined;
    if (svc === undefined) continue;
    const n = svc.canary.requests;
    const x = Math.min(svc.canary.errors, n);
    hosts.push({ host, n, x });
    totalN += n;
    totalX += x;
  }
  const out: OutlierHost[] = [];
  for (const { host, n, x } of hosts) {
    const restN = totalN - n;
    if (n < minAttempts || restN < minAttempts || n === 0) continue;
    const p0 = (totalX - x + 0.5) / (restN + 1);
    const r = x / n;
    if (r < factor * p0) continue;
    const statistic = n * bernoulliKl(r, p0);
    if (statistic < bound) continue;
    out.push({ host, errorRatio: r, attempts: n, errors: x, restErrorRatio: p0, statistic });
  }
  return out.sort((a, b) => b.errorRatio - a.errorRatio || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
}

/** KL(Bernoulli(r) ‖ Bernoulli(p)), nats, for r in (0, 1] and p in (0, 1) (0·ln 0 = 0). */
function bernoulliKl(r: number, p: number): number {
  return r * Math.log(r / p) + (r < 1 ? (1 - r) * Math.log((1 - r) / (1 - p)) : 0);
}

const Count = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Sketch = Type.Union([Type.String({ maxLength: MAX_SKETCH_CHARS }), Type.Null()]);
const Ms = Type.Union([Type.Number({ minimum: 0 }), Type.Null()]);
const MaybeBool = Type.Union([Type.Boolean(), Type.Null()]);

const CountBucketSchema = Type.Object(
  { attempts: Count, errors: Count, tail: Type.Optional(Count) },
  { additionalProperties: false },
);

const PoolSnapshotSchema = Type.Object(
  {
    requests: Count,
    errors: Count,
    widthMs: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    seriesStartMs: Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER }),
    series: Type.Array(CountBucketSchema, { maxItems: MAX_SERIES_BUCKETS }),
    connect: Sketch,
    response: Sketch,
    sampleWeight: Type.Optional(Type.Integer({ minimum: 2, maximum: 100 })),
  },
  { additionalProperties: false },
);

const ProbeObservationSchema = Type.Object(
  {
    probes: Count,
    failures: Count,
    connectP95Ms: Ms,
    totalP95Ms: Ms,
    ready: MaybeBool,
    healthy: MaybeBool,
    downTransitions: Count,
    recoveredAt: Type.Union([Type.Number(), Type.Null()]),
  },
  { additionalProperties: false },
);

const ServiceSnapshotSchema = Type.Object(
  {
    primary: PoolSnapshotSchema,
    canary: PoolSnapshotSchema,
    probes: Type.Optional(
      Type.Object({ primary: ProbeObservationSchema, canary: ProbeObservationSchema }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);

/** TypeBox schema of one host's {@link ObservationSnapshot} (its structure; {@link parseObservationSnapshot} adds the rules between fields). */
export const ObservationSnapshotSchema = Type.Record(Type.String(), ServiceSnapshotSchema);

/** Compile-time proof that the schema and the hand-written type are the same shape. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _schemaMatchesSnapshot: Same<Static<typeof ObservationSnapshotSchema>, ObservationSnapshot> = true;

/** A JSON pointer (`/gateway/canary/series/3`) as a field path (`gateway.canary.series[3]`). */
function fieldOf(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  }
  return out === '' ? '(the document)' : out;
}

/**
 * Validates an untrusted JSON value (another host's `observations/<host>`, as
 * JSON.parse gave it) as an {@link ObservationSnapshot}: the structure
 * ({@link ObservationSnapshotSchema}: every count a whole number ≥ 0, widths
 * ≥ 1 ms, at most {@link MAX_SERIES_BUCKETS} buckets, no unknown key), then
 * the rules between fields — service names as weights.yaml allows them,
 * errors ≤ requests, each bucket's errors ≤ its attempts (and its tail ≤ its errors), the series' attempts
 * ≤ requests, `seriesStartMs` a multiple of `widthMs`, both pools of a service
 * one width, each sketch decodable as the windows write it (see
 * {@link SKETCH_KEY_RANGE}) with no more samples than requests, probe failures
 * ≤ probes. Returns the value (the same object) or the first problem as
 * `field: message`, the field a path such as `gateway.canary.series[3].errors`.
 * Never throws.
 */
export function parseObservationSnapshot(
  json: unknown,
): { ok: true; value: ObservationSnapshot } | { ok: false; error: string } {
  if (!Value.Check(ObservationSnapshotSchema, json)) {
    const first = Value.Errors(ObservationSnapshotSchema, json).First();
    const error = first === undefined ? 'not an observation snapshot' : `${fieldOf(first.path)}: ${first.message}`;
    return { ok: false, error };
  }
  for (const [name, svc] of Object.entries(json)) {
    if (!SERVICE_NAME_RE.test(name))
      return { ok: false, error: `${JSON.stringify(name)}: not a service name (${String(SERVICE_NAME_RE)})` };
    for (const pool of ['primary', 'canary'] as const) {
      const problem = poolProblem(svc[pool]);
      if (problem !== null) return { ok: false, error: `${name}.${pool}.${problem}` };
    }
    if (svc.canary.widthMs !== svc.primary.widthMs)
      return {
        ok: false,
        error: `${name}.canary.widthMs: ${svc.canary.widthMs} ms differs from the primary's ${svc.primary.widthMs} ms`,
      };
    if (svc.probes !== undefined) {
      for (const pool of ['primary', 'canary'] as const) {
        const p = svc.probes[pool];
        if (p.failures > p.probes)
          return {
            ok: false,
            error: `${name}.probes.${pool}.failures: ${p.failures} failures exceed ${p.probes} probes`,
          };
      }
    }
  }
  return { ok: true, value: json };
}

/** The first rule a structurally valid pool snapshot breaks, as `field: message`, or null. */
function poolProblem(p: PoolSnapshot): string | null {
  if (p.errors > p.requests) return `errors: ${p.errors} errors exceed ${p.requests} requests`;
  if (p.seriesStartMs % p.widthMs !== 0)
    return `seriesStartMs: ${p.seriesStartMs} is not a multiple of widthMs ${p.widthMs}`;
  let attempts = 0;
  for (const [i, b] of p.series.entries()) {
    if (b.errors > b.attempts) return `series[${i}].errors: ${b.errors} errors exceed ${b.attempts} attempts`;
    if (b.tail !== undefined && b.tail > b.errors)
      return `series[${i}].tail: a trailing run of ${b.tail} failures exceeds the bucket's ${b.errors} errors`;
    attempts += b.attempts;
  }
  if (attempts > p.requests) return `series: ${attempts} attempts in the buckets exceed ${p.requests} requests`;
  for (const field of ['connect', 'response'] as const) {
    const text = p[field];
    if (text === null) continue;
    const s = decodeSketch(text);
    if (typeof s === 'string') return `${field}: ${s}`;
    if (s.count > p.requests) return `${field}: ${s.count} samples exceed ${p.requests} requests`;
  }
  return null;
}
