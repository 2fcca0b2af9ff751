/**
 * The fleet's one door to etcd (docs/design.md "Fleet"): the only module that
 * imports the `etcd3` client (npm etcd3 1.1.2, pinned). Everything else in the
 * fleet speaks in keys relative to the fleet's prefix and in the small shapes
 * exported here, so the client's quirks stay in this file:
 *
 * - **Every call is bounded.** etcd3 ignores `dialTimeout`; a call to an
 *   unreachable or quorum-less cluster can wait for ever. Every call made here
 *   carries a gRPC deadline and is raced against a timer of `callTimeoutMs`,
 *   rejecting with {@link EtcdUnavailableError} naming the endpoints. The
 *   client's own unary calls (the election's lease grant and transactions)
 *   get the same deadline through `defaultCallOptions`.
 * - **The election TTL is the fleet's `lease_ttl`.** etcd3's Election defaults
 *   to a 60 s TTL; it is set here from `leaseTtlMs`.
 * - **Leadership ends on our clock, not the library's.** etcd3 reports a lease
 *   `lost` only 2 × TTL after the last keepalive. This host stops acting as
 *   leader at (send time of the last keepalive etcd answered) + TTL − margin,
 *   on a monotonic clock: etcd renewed the lease no earlier than that send, so
 *   the lease — and the campaign key bound to it — lives at least until then
 *   (https://etcd.io/docs/v3.4/learning/api/#lease-api). To see keepalives we
 *   subscribe to the events of the Campaign's own lease (a private field of
 *   etcd3's Campaign, read as each campaign starts); we do not grant a second
 *   lease, so the key etcd deletes and the lease we time are one.
 * - **Leader writes are fenced.** Each is one transaction that compares the
 *   campaign key's create revision (https://etcd.io/docs/v3.4/learning/api/#transaction):
 *   once that key is gone (lease expired or revoked), a successor may be
 *   elected and every write of the old leader — even one delayed in the
 *   network past the successor's election — fails the compare.
 * - **A compacted watch errors.** A watch that etcd cancels (its start revision
 *   was compacted: https://etcd.io/docs/v3.4/learning/api/#watch-api) or whose
 *   stream breaks is not resumed by the library's own replay: the prefix is
 *   read again (the consumer gets the whole state) and watched from that read's
 *   revision + 1.
 * - **A campaign given up lets go of its watch.** etcd3's Campaign keeps
 *   waiting for its predecessor's key after resign(), and after the client is
 *   closed its watch manager retries that watch every second for ever (the
 *   process never exits). The election's namespace is instrumented so those
 *   watchers are cancelled when a campaign is given up and on close.
 * - etcd3's per-endpoint circuit breaker (open 5 s after 3 failures) is
 *   replaced by a pass-through: with one endpoint it kept a host off etcd for
 *   5 s after every blip, longer than a short `lease_ttl` allows. The
 *   library's 3-attempt retry across endpoints stays.
 */
import {
  ClientClosedError,
  Etcd3,
  EtcdLeaseInvalidError,
  isRecoverableError,
  Lease,
  type Campaign,
  type Election,
  type IKeyValue,
  type IOptions,
  type Namespace,
  type Watcher,
} from 'etcd3';
import { CanaryError } from '../errors.js';

/** Options of {@link FleetEtcd.connect}. */
export interface EtcdOptions {
  /** etcd client URLs, e.g. `['http://127.0.0.1:2379']` (http or https, not mixed). */
  endpoints: string[];
  /** The fleet's key prefix, e.g. `/nginx-canary/edge-prod`, without a trailing slash; keys are relative to `${prefix}/`. */
  prefix: string;
  /** This host's name: the value it campaigns with. */
  host: string;
  /** The fleet's `lease_ttl` in ms: whole seconds (etcd TTLs are seconds), at least 2000. */
  leaseTtlMs: number;
  /** Bound on every call, ms. Default min(2000, leaseTtlMs / 2). */
  callTimeoutMs?: number;
  /** A monotonic clock in ms (default `performance.now`); leadership deadlines are measured on it. */
  monotonic?: () => number;
  /** Where warnings and leadership changes are logged (a pino logger fits). Default: nowhere. */
  log?: EtcdLog;
}

/** The logger {@link FleetEtcd} writes to: object first, as pino does. */
export interface EtcdLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** One key as etcd holds it. Revisions and lease ids are decimal strings (etcd's int64s). */
export interface KeyValue {
  /** The key relative to the fleet prefix (without `${prefix}/`). */
  key: string;
  /** The value as UTF-8 ('' in a delete event). */
  value: string;
  /** Revision of the key's creation ('0' in a delete event). */
  createRevision: string;
  /** Revision of the key's last change (of the delete, in a delete event). */
  modRevision: string;
  /** Id of the lease the key is attached to; '0' for none. */
  lease: string;
}

/** One change seen by {@link FleetEtcd.watchPrefix}. */
export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
}

/**
 * Why leadership changed, passed to the {@link FleetEtcd.campaign} callback:
 * `elected` (won the election), `renewed` (a keepalive answered after the
 * deadline had passed: the lease, hence the leadership, was still alive),
 * `deadline` (last keepalive + TTL − margin passed), `lost` (etcd says the
 * lease is gone, or the library gave it up), `fenced` (a fenced write found the
 * campaign key gone), `error` (the campaign failed otherwise), `closed`.
 */
export type LeadershipReason = 'elected' | 'renewed' | 'deadline' | 'lost' | 'fenced' | 'error' | 'closed';

/** The fencing token of a leader: its campaign key and that key's create revision. */
export interface Leadership {
  /** The campaign key relative to the prefix, e.g. `election/leader/694d7c9f9c8a2b04`. */
  key: string;
  /** The key's create revision, which every fenced write compares. */
  createRevision: string;
}

/** The etcd3 Election name; its keys live under `${prefix}/election/leader/`. */
export const ELECTION_NAME = 'leader';
/** Where the election's keys live, relative to the prefix (leave it out of watches of other data). */
export const ELECTION_KEY_PREFIX = `election/${ELECTION_NAME}/`;

/**
 * etcd did not answer in time, or could not be reached, or lost its quorum
 * (https://etcd.io/docs/v3.4/op-guide/failures/): the outcome of a write that
 * fails this way is unknown (it may have landed).
 */
export class EtcdUnavailableError extends CanaryError {
  /** The endpoints the client was given. */
  readonly endpoints: readonly string[];
  /**
   * @param endpoints the client URLs tried, named in the message.
   * @param what what was asked and how it failed, e.g. "get of desired got no answer within 2000 ms".
   * @param cause the client's error, if any.
   */
  constructor(endpoints: readonly string[], what: string, cause?: unknown) {
    super('NC_ETCD_UNAVAILABLE', `etcd at ${endpoints.join(', ')}: ${what}`, {
      fix: 'Check that etcd runs and answers at these URLs (etcdctl --endpoints=<url> endpoint health) and that a majority of its members is up',
      statusCode: 503,
      cause,
    });
    this.name = 'EtcdUnavailableError';
    this.endpoints = endpoints;
  }
}

/** etcd answered and refused the request (not a transport failure): a bad request, permissions, a too-large value. */
export class EtcdRequestError extends CanaryError {
  /**
   * @param what what was asked and what etcd said.
   * @param cause the client's error.
   */
  constructor(what: string, cause: unknown) {
    super('NC_ETCD_REQUEST', `etcd refused ${what}`, {
      fix: 'Read the cause: etcd rejected the request itself (permissions, request size, a malformed key)',
      cause,
    });
    this.name = 'EtcdRequestError';
  }
}

/**
 * etcd3 1.1.2's Campaign waits for the keys created before `header.revision - 1` of its campaign
 * transaction (election.js `start` → `waitForElected(result.header.revision)`). When that transaction
 * found its key already there — a retry of a commit whose answer came too late — the header revision
 * is newer than the key, so the candidate waits for its own key (or a younger one's) to be deleted and
 * never leads, while its live lease keeps every other host from leading: a fleet without a leader until
 * a restart (seen under load in test/e2e/fleet-leader.test.ts). etcd's Go client waits on the keys
 * created before its own key's create revision (concurrency/election.go `waitDeletes(…, e.leaderRev-1)`),
 * which the Campaign already holds in its private `keyRevision`; this makes it wait on that. Patches
 * the one instance, before its first transaction answers (the constructor's `start()` is still awaiting
 * its lease grant). Throws when etcd3's Campaign no longer has these members (another etcd3 version).
 */
export function waitOnOwnRevision(campaign: Campaign): void {
  const c = campaign as unknown as {
    keyRevision?: unknown;
    waitForElected?: (revision: string) => Promise<void>;
  };
  const original = c.waitForElected;
  if (typeof original !== 'function')
    throw new Error('etcd3 Campaign has no waitForElected: fleet/etcd.ts expects etcd3 1.1.2');
  c.waitForElected = function (this: typeof c, revision: string): Promise<void> {
    const own =
      typeof this.keyRevision === 'string' || typeof this.keyRevision === 'number'
        ? String(this.keyRevision)
        : revision;
    return original.call(this, own);
  };
}

type CallOptions = { deadline: Date };
type FaultHandling = NonNullable<IOptions['faultHandling']>;
type HostPolicy = ReturnType<NonNullable<FaultHandling['host']>>;
type WatchBackoff = NonNullable<FaultHandling['watchBackoff']>;

/** Options after defaults and checks. */
interface Settings {
  endpoints: readonly string[];
  prefix: string;
  host: string;
  leaseTtlMs: number;
  callTimeoutMs: number;
  marginMs: number;
  monotonic: () => number;
  log: EtcdLog;
}

/** One campaign: etcd3's Campaign plus what we track of its lease. */
interface Attempt {
  campaign: Campaign;
  lease: Lease;
  /** Monotonic send times of the keepalives not yet answered on the lease's current stream, oldest first. */
  fired: number[];
  /** Monotonic send time of the last keepalive etcd answered alive (the grant's send time before that). */
  renewedAt: number;
  /** The TTL etcd last reported for the lease, ms, capped at leaseTtlMs. */
  ttlMs: number;
  /** Set once elected and the campaign key's create revision was read. */
  token: { absKey: string; createRevision: string } | null;
  /** Whether `elected` was already reported for this attempt (later gains are `renewed`). */
  announced: boolean;
}

const noLog: EtcdLog = { warn: () => undefined, info: () => undefined };

/**
 * A fleet host's handle on etcd: keys under the fleet prefix, the host's
 * liveness lease, the leader election and fenced leader writes, and watches
 * that survive compaction. Create with {@link FleetEtcd.connect}; end with
 * {@link FleetEtcd.close}.
 *
 * Every method that talks to etcd is bounded by `callTimeoutMs` and rejects
 * with {@link EtcdUnavailableError} past it (or on a transport failure), and
 * with {@link EtcdRequestError} when etcd refuses the request.
 */
export class FleetEtcd {
  readonly #client: Etcd3;
  readonly #election: Election;
  readonly #s: Settings;
  #closed = false;
  #hostLease: Lease | null = null;
  /** Host leases created so far (see {@link hostLeaseEpoch}). */
  #hostLeaseEpoch = 0;
  #onChange: ((leader: boolean, reason: LeadershipReason) => void) | null = null;
  #attempt: Attempt | null = null;
  #reported = false;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryMs: number;
  readonly #watchStops = new Set<() => Promise<void>>();
  readonly #campaignWatchers = new Set<Watcher>();

  private constructor(client: Etcd3, s: Settings) {
    this.#client = client;
    this.#s = s;
    const fleetNs = client.namespace(`${s.prefix}/`);
    const electionNs = fleetNs.namespace(ELECTION_KEY_PREFIX);
    this.#trackCampaignWatches(electionNs);
    // etcd3's Election takes its namespace from parent.namespace('election/<name>/'): hand it ours.
    fleetNs.namespace = (p) => {
      if (p.toString() !== ELECTION_KEY_PREFIX) throw new Error(`etcd3 Election asked for namespace ${p.toString()}`);
      return electionNs;
    };
    this.#election = fleetNs.election(ELECTION_NAME, s.leaseTtlMs / 1000);
    this.#retryMs = firstRetryMs(s.leaseTtlMs);
  }

  /**
   * Checks the options, builds the client and proves etcd answers: one bounded
   * read under the prefix.
   * @throws TypeError or RangeError on bad options (no endpoints, a URL that is not http(s),
   *   a prefix ending in '/', an empty host, a leaseTtlMs that is not whole seconds ≥ 2000,
   *   a callTimeoutMs ≤ 0).
   * @throws EtcdUnavailableError naming the endpoints when no answer came within callTimeoutMs.
   */
  static async connect(opts: EtcdOptions): Promise<FleetEtcd> {
    const s = settings(opts);
    const client = new Etcd3({
      hosts: [...s.endpoints],
      // etcd3 ignores dialTimeout: every unary call gets a deadline instead (streams have none).
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: new Date(Date.now() + s.callTimeoutMs) }),
      faultHandling: { host: passThroughPolicy, watchBackoff: backoff(100, 1000) },
      grpcOptions: {
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
        // Each FleetEtcd its own connections: closing one never touches another's.
        'grpc.use_local_subchannel_pool': 1,
      },
    });
    try {
      await bounded(s, 'a first read', (o) => client.get(`${s.prefix}/`).options(o).exec());
    } catch (err) {
      client.close();
      throw err;
    }
    return new FleetEtcd(client, s);
  }

  /** The options in force (defaults applied): leaseTtlMs, callTimeoutMs and the leadership margin, ms. */
  get timing(): { leaseTtlMs: number; callTimeoutMs: number; marginMs: number } {
    return { leaseTtlMs: this.#s.leaseTtlMs, callTimeoutMs: this.#s.callTimeoutMs, marginMs: this.#s.marginMs };
  }

  /**
   * How many host leases this handle has created: 0 before the first leased write, then 1, and one more
   * each time a lost lease (etcd let it expire: no keepalive answered within leaseTtl) is replaced on
   * the next leased write. Every key written on an earlier lease is gone from etcd; a caller that keeps
   * keys written once (the fleet marker, the name claim) writes them again when this changes.
   */
  get hostLeaseEpoch(): number {
    return this.#hostLeaseEpoch;
  }

  // ---- keys -------------------------------------------------------------------------------

  /**
   * Puts `key` attached to this host's liveness lease: one lease of leaseTtl,
   * kept alive by the client, shared by every leased key of this host, so they
   * all vanish together when the host stops or is cut off for longer than the
   * TTL (https://etcd.io/docs/v3.4/learning/api/#lease-api). A lost lease is
   * replaced by a new one on the next leased write; when etcd says the lease is
   * gone, the write is retried once on a new lease (so this may take up to
   * 2 × callTimeoutMs).
   * @throws EtcdUnavailableError, EtcdRequestError.
   */
  async putLeased(key: string, value: string): Promise<void> {
    const abs = this.#abs(key);
    await this.#withHostLease(`leased put of ${key}`, (id, o) =>
      this.#client.put(abs).value(value).lease(id).options(o).exec(),
    );
  }

  /**
   * Puts `key` (no lease).
   * @throws EtcdUnavailableError, EtcdRequestError.
   */
  async put(key: string, value: string): Promise<void> {
    const abs = this.#abs(key);
    await this.#call(`put of ${key}`, (o) => this.#client.put(abs).value(value).options(o).exec());
  }

  /**
   * Create-only put: one transaction `create_revision(key) == 0 ? put` (a key
   * that does not exist has create revision 0:
   * https://etcd.io/docs/v3.4/learning/api/#transaction). With `leased`, the
   * key is attached to this host's liveness lease (see {@link putLeased}).
   * @returns true when created, false when the key already existed (nothing written).
   * @throws EtcdUnavailableError, EtcdRequestError.
   */
  async create(key: string, value: string, leased: boolean): Promise<boolean> {
    const abs = this.#abs(key);
    const txn = (lease: string | null, o: CallOptions) => {
      const put = this.#client.put(abs).value(value);
      if (lease !== null) put.lease(lease);
      return this.#client.if(abs, 'Create', '==', 0).then(put).options(o).commit();
    };
    const res = leased
      ? await this.#withHostLease(`create of ${key}`, (id, o) => txn(id, o))
      : await this.#call(`create of ${key}`, (o) => txn(null, o));
    return res.succeeded;
  }

  /**
   * Reads one key (a linearizable read).
   * @returns the key, or null when it does not exist.
   * @throws EtcdUnavailableError, EtcdRequestError.
   */
  async get(key: string): Promise<KeyValue | null> {
    const abs = this.#abs(key);
    const res = await this.#call(`get of ${key}`, (o) => this.#client.get(abs).options(o).exec());
    const kv = res.kvs[0];
    return kv ? this.#kv(kv) : null;
  }

  /**
   * Reads every key under a relative prefix (e.g. `hosts/`), sorted by key.
   * @throws EtcdUnavailableError, EtcdRequestError.
   */
  async getPrefix(keyPrefix: string): Promise<KeyValue[]> {
    return (await this.#readPrefix(keyPrefix)).kvs;
  }

  /**
   * Deletes one key (no error when it does not exist).
   * @throws EtcdUnavailableError, EtcdRequestError.
   */
  async delete(key: string): Promise<void> {
    const abs = this.#abs(key);
    await this.#call(`delete of ${key}`, (o) => this.#client.delete().key(abs).options(o).exec());
  }

  // ---- election -------------------------------------------------------------------------

  /**
   * Starts campaigning with this host's name, on etcd3's Election (etcd's
   * election recipe: the candidate whose key has the lowest create revision
   * leads; https://etcd.io/docs/v3.4/dev-guide/api_concurrency_reference_v3/)
   * with a TTL of leaseTtl. Idempotent: later calls are ignored (the first
   * callback stays).
   *
   * `onChange(true, reason)` when this host becomes leader; `onChange(false,
   * reason)` when leadership ends for any reason: the deadline (last keepalive
   * + TTL − margin) passed, etcd or the library declared the lease lost, a
   * fenced write found the key gone, the campaign failed, or close(). A
   * deadline that passes only because keepalives were slow is not final: if a
   * later keepalive proves the lease alive, leadership returns
   * (`onChange(true, 'renewed')`). A campaign that fails (lease lost, etcd
   * unreachable) is resigned and a new one starts after a backoff
   * (from min(1000, leaseTtl/4) ms doubling to leaseTtl). Callback errors are
   * logged, never thrown.
   */
  campaign(onChange: (leader: boolean, reason: LeadershipReason) => void): void {
    if (this.#onChange || this.#closed) return;
    this.#onChange = onChange;
    this.#startAttempt();
  }

  /**
   * True only while elected AND monotonic() < lastKeepaliveAt + leaseTtlMs −
   * marginMs, where lastKeepaliveAt is the send time of the last keepalive etcd
   * answered alive and marginMs = max(500, leaseTtlMs / 5). Synchronous, no I/O.
   */
  isLeader(): boolean {
    const a = this.#attempt;
    if (this.#closed || a?.token == null) return false;
    return this.#s.monotonic() < this.#deadline(a);
  }

  /**
   * While {@link isLeader} is true: the monotonic() time (ms) at which leadership
   * ends unless etcd answers another keepalive (lastKeepaliveAt + leaseTtlMs −
   * marginMs); else null.
   */
  leaderUntil(): number | null {
    const a = this.#attempt;
    return this.isLeader() && a ? this.#deadline(a) : null;
  }

  /** This host's fencing token while {@link isLeader} is true, else null. */
  leadership(): Leadership | null {
    const a = this.#attempt;
    if (!this.isLeader() || a?.token == null) return null;
    return { key: a.token.absKey.slice(this.#s.prefix.length + 1), createRevision: a.token.createRevision };
  }

  /**
   * The current leader's host name as etcd holds it (the value of the oldest
   * campaign key), or null when no host campaigns. Bounded.
   * @throws EtcdUnavailableError, EtcdRequestError.
   */
  async leader(): Promise<string | null> {
    return (await this.#call('a read of the leader', () => this.#election.leader())) ?? null;
  }

  /**
   * Fenced put: one transaction `create_revision(campaign key) == ours ? put(key)`.
   * Returns false without a call when {@link isLeader} is false. When the
   * compare fails (the campaign key is gone: a successor may lead), nothing is
   * written, leadership ends (`onChange(false, 'fenced')`) and false is returned.
   * @returns true when written.
   * @throws EtcdUnavailableError when etcd did not answer in time: the write may
   *   have landed, but only while this host's campaign key still existed.
   * @throws EtcdRequestError.
   */
  async fencedPut(key: string, value: string): Promise<boolean> {
    const abs = this.#abs(key);
    return this.#fenced(`fenced put of ${key}`, () => [this.#client.put(abs).value(value)]);
  }

  /**
   * Fenced delete of several keys in one transaction (all or none); see {@link fencedPut}.
   * @returns true when deleted (keys that did not exist count as deleted).
   * @throws EtcdUnavailableError, EtcdRequestError.
   */
  async fencedDelete(keys: string[]): Promise<boolean> {
    const abs = keys.map((k) => this.#abs(k));
    return this.#fenced(`fenced delete of ${keys.join(', ')}`, () => abs.map((k) => this.#client.delete().key(k)));
  }

  // ---- watch ----------------------------------------------------------------------------

  /**
   * Watches every key under a relative prefix. First reads the prefix and calls
   * `onReset(all current kvs)`, then calls `onEvent` for every put and delete
   * after that read's revision, in revision order. When the watch fails — etcd
   * cancels it because its start revision was compacted, or its stream breaks
   * (etcd unreachable) — the prefix is read again (`onReset` with the whole
   * current state: events between the two may never be delivered one by one)
   * and watched from the new read's revision + 1. Reads that fail are retried
   * with a backoff (100 ms doubling to 1 s) until stopped. Callback errors are
   * logged, never thrown; no callback runs after the stop function is called.
   * @returns a stop function (bounded; never throws).
   */
  watchPrefix(
    keyPrefix: string,
    onEvent: (e: WatchEvent) => void,
    onReset: (kvs: KeyValue[]) => void,
  ): () => Promise<void> {
    const stop = new AbortController();
    let wake: (() => void) | null = null;
    const call = (what: string, fn: () => void): void => {
      if (stop.signal.aborted) return;
      try {
        fn();
      } catch (err) {
        this.#s.log.warn({ err, prefix: keyPrefix }, `fleet etcd: the ${what} callback threw`);
      }
    };
    const loop = async (): Promise<void> => {
      let retryMs = 100;
      while (!stop.signal.aborted && !this.#closed) {
        let read: { kvs: KeyValue[]; revision: string };
        try {
          read = await this.#readPrefix(keyPrefix);
        } catch (err) {
          this.#s.log.warn(
            { err, prefix: keyPrefix, retryMs },
            'fleet etcd: watch could not read its prefix; retrying',
          );
          await sleep(retryMs, stop.signal);
          retryMs = Math.min(1000, retryMs * 2);
          continue;
        }
        if (stop.signal.aborted) return;
        retryMs = 100;
        call('reset', () => onReset(read.kvs));
        const watcher = this.#client
          .watch()
          .prefix(this.#abs(keyPrefix))
          .startRevision((BigInt(read.revision) + 1n).toString())
          .watcher();
        const end = await new Promise<{ how: 'stopped' | 'cancelled' | 'disconnected'; err?: Error }>((resolve) => {
          wake = () => resolve({ how: 'stopped' });
          watcher.on('put', (kv) => call('event', () => onEvent({ type: 'put', kv: this.#kv(kv) })));
          watcher.on('delete', (kv) => call('event', () => onEvent({ type: 'delete', kv: this.#kv(kv) })));
          // 'error': etcd cancelled the watch (e.g. its start revision was compacted).
          watcher.on('error', (err) => resolve({ how: 'cancelled', err }));
          // 'disconnected': the stream broke; etcd3 would replay from its own idea of the
          // revision, which it moves past events not yet delivered: read again instead.
          watcher.on('disconnected', (err) => resolve({ how: 'disconnected', err }));
        });
        wake = null;
        watcher.removeAllListeners();
        watcher.on('error', () => undefined);
        if (end.how !== 'stopped')
          this.#s.log.warn(
            { err: end.err, prefix: keyPrefix, how: end.how },
            'fleet etcd: watch ended; reading the prefix again',
          );
        await this.#cancelWatcher(watcher, end.how === 'cancelled');
      }
    };
    const done = loop().catch((err: unknown) =>
      this.#s.log.warn({ err, prefix: keyPrefix }, 'fleet etcd: watch loop ended'),
    );
    const stopFn = async (): Promise<void> => {
      this.#watchStops.delete(stopFn);
      stop.abort();
      wake?.();
      await done;
    };
    this.#watchStops.add(stopFn);
    return stopFn;
  }

  /**
   * The prefixes of other fleets that nest with this one: a key `<p>/<marker>` for an ancestor `p` of
   * this prefix (this fleet lies inside it), or a key `<this prefix>/…/<marker>` other than this
   * fleet's own (a fleet inside this one). Two nesting fleets would read each other's keys
   * (`getPrefix('hosts/')` of the outer one lists the inner one's hosts). Keys under `ownDirs` (this
   * fleet's own key directories, e.g. `hosts/`) are never taken for a fleet. Reads keys only, bounded.
   * @throws EtcdUnavailableError, EtcdRequestError.
   */
  async nestingFleets(marker: string, ownDirs: readonly string[]): Promise<string[]> {
    const own = this.#abs(marker);
    const parts = this.#s.prefix.split('/').filter((p) => p !== '');
    const ancestors = parts.slice(0, -1).map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
    const found: string[] = [];
    for (const a of ancestors) {
      const key = `${a}/${marker}`;
      const res = await this.#call(`a read of ${key}`, (o) => this.#client.get(key).options(o).exec());
      if (res.kvs.length > 0) found.push(a);
    }
    const inner = await this.#call(`a read of the keys under ${this.#s.prefix}/`, (o) =>
      this.#client.getAll().prefix(this.#abs('')).options(o).keys(),
    );
    const base = this.#abs('');
    for (const key of inner) {
      if (key === own || !key.endsWith(`/${marker}`)) continue;
      // This fleet's own keys (a host named like the marker under hosts/) are not another fleet.
      if (ownDirs.some((d) => key.startsWith(`${base}${d}`))) continue;
      found.push(key.slice(0, -(marker.length + 1)));
    }
    return found.sort();
  }

  /**
   * Ends this handle: resigns the campaign (revoking its lease, so a successor
   * is elected at once; `onChange(false, 'closed')` if leader), revokes the
   * host lease (its keys vanish), stops the watches and closes the client.
   * Each step bounded by callTimeoutMs; never throws. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    const attempt = this.#attempt;
    this.#attempt = null;
    clearTimeout(this.#retryTimer);
    this.#sync('closed');
    this.#closed = true;
    clearTimeout(this.#deadlineTimer);
    const lease = this.#hostLease;
    this.#hostLease = null;
    const steps: Promise<unknown>[] = [...this.#watchStops].map((stop) => stop());
    if (attempt) steps.push(this.#settle('resign', () => attempt.campaign.resign()));
    steps.push(this.#releaseCampaignWatchers());
    if (lease) steps.push(this.#settle('host lease revoke', () => lease.revoke()));
    await Promise.allSettled(steps);
    this.#client.close();
  }

  // ---- internals ------------------------------------------------------------------------

  #abs(key: string): string {
    return `${this.#s.prefix}/${key}`;
  }

  #kv(kv: IKeyValue): KeyValue {
    return {
      key: kv.key.toString('utf8').slice(this.#s.prefix.length + 1),
      value: kv.value.toString('utf8'),
      createRevision: kv.create_revision,
      modRevision: kv.mod_revision,
      lease: kv.lease,
    };
  }

  #call<T>(what: string, run: (o: CallOptions) => Promise<T>): Promise<T> {
    if (this.#closed)
      return Promise.reject(new EtcdUnavailableError(this.#s.endpoints, `${what}: the client is closed`));
    return bounded(this.#s, what, run);
  }

  async #settle(what: string, run: () => Promise<unknown>): Promise<void> {
    try {
      await bounded(this.#s, what, () => run());
    } catch (err) {
      this.#s.log.warn({ err }, `fleet etcd: ${what} failed`);
    }
  }

  async #readPrefix(keyPrefix: string): Promise<{ kvs: KeyValue[]; revision: string }> {
    const abs = this.#abs(keyPrefix);
    const res = await this.#call(`a read of ${keyPrefix}*`, (o) =>
      this.#client.getAll().prefix(abs).sort('Key', 'Ascend').options(o).exec(),
    );
    return { kvs: res.kvs.map((kv) => this.#kv(kv)), revision: res.header.revision };
  }

  /** Cancels a watcher, bounded. One etcd already cancelled (an 'error') is left alone: etcd would not answer a second cancel. */
  async #cancelWatcher(watcher: Watcher, cancelledByEtcd: boolean): Promise<void> {
    if (cancelledByEtcd) return;
    try {
      await bounded(this.#s, 'watch cancel', () => watcher.cancel());
    } catch {
      // The stream is gone or etcd is slow; the watcher's listeners are already off.
    }
  }

  /**
   * etcd3's Campaign waits for its predecessor's key to go with a watcher that
   * resign() leaves attached; once the client is closed, etcd3's watch manager
   * would retry that watch for ever (a timer every second: the process never
   * ends). So the election's namespace is instrumented (its `watch()` builders,
   * public methods overridden on our own instances): every campaign watcher is
   * tracked until it ends, and once this handle is closing, a campaign can start
   * no new watch (its wait rejects and the abandoned campaign ends).
   */
  #trackCampaignWatches(ns: Namespace): void {
    const watch = ns.watch.bind(ns);
    ns.watch = () => {
      const builder = watch();
      const watcher = builder.watcher.bind(builder);
      const create = builder.create.bind(builder);
      builder.watcher = () => {
        const w = watcher();
        const drop = (): void => void this.#campaignWatchers.delete(w);
        this.#campaignWatchers.add(w);
        w.once('end', drop);
        w.on('error', drop);
        return w;
      };
      builder.create = () =>
        this.#closed
          ? Promise.reject(new EtcdUnavailableError(this.#s.endpoints, 'campaign watch: the client is closing'))
          : create();
      return builder;
    };
  }

  /** Cancels the watchers of campaigns this host gave up (see #trackCampaignWatches). Bounded; never throws. */
  async #releaseCampaignWatchers(): Promise<void> {
    const stale = [...this.#campaignWatchers];
    this.#campaignWatchers.clear();
    await Promise.allSettled(stale.map((w) => this.#settle('campaign watch cancel', () => w.cancel())));
  }

  /** The host lease (granted on first use), its id, and one retry on a new lease when etcd says it is gone. */
  async #withHostLease<T>(what: string, run: (leaseId: string, o: CallOptions) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const lease = this.#leaseForHost();
      try {
        return await this.#call(what, async (o) => run(await lease.grant(), o));
      } catch (err) {
        const invalid = err instanceof Error && err.cause instanceof EtcdLeaseInvalidError;
        if (invalid && this.#hostLease === lease) {
          this.#hostLease = null;
          lease.release();
        }
        if (invalid && attempt === 0) {
          this.#s.log.warn({ what }, 'fleet etcd: the host lease was gone; writing on a new lease');
          continue;
        }
        throw err;
      }
    }
  }

  #leaseForHost(): Lease {
    if (this.#hostLease) return this.#hostLease;
    const lease = this.#client.lease(this.#s.leaseTtlMs / 1000);
    this.#hostLeaseEpoch++;
    lease.on('lost', (err) => {
      if (this.#hostLease === lease) this.#hostLease = null;
      if (!this.#closed)
        this.#s.log.warn({ err }, 'fleet etcd: host lease lost; the next leased write grants a new one');
    });
    this.#hostLease = lease;
    return lease;
  }

  #deadline(a: Attempt): number {
    return a.renewedAt + a.ttlMs - this.#s.marginMs;
  }

  #startAttempt(): void {
    if (this.#closed || this.#attempt) return;
    const grantSentAt = this.#s.monotonic();
    const campaign = this.#election.campaign(this.#s.host);
    waitOnOwnRevision(campaign);
    // etcd3's Campaign keeps its lease private; its keepalive events are the only
    // way to know when etcd last renewed the lease that holds the campaign key.
    const lease = (campaign as unknown as { lease: unknown }).lease;
    if (!(lease instanceof Lease))
      throw new Error('etcd3 Campaign has no `lease` field: fleet/etcd.ts expects etcd3 1.1.2');
    const a: Attempt = {
      campaign,
      lease,
      fired: [],
      renewedAt: grantSentAt,
      ttlMs: this.#s.leaseTtlMs,
      token: null,
      announced: false,
    };
    this.#attempt = a;
    lease.on('keepaliveEstablished', () => {
      a.fired = [];
    });
    lease.on('keepaliveFired', () => {
      a.fired.push(this.#s.monotonic());
    });
    lease.on('keepaliveSucceeded', (res) => {
      const sentAt = a.fired.shift();
      if (sentAt === undefined) return; // an answer we cannot date: ignore it (never extend on a guess)
      a.renewedAt = Math.max(a.renewedAt, sentAt);
      const ttlMs = Number(res.TTL) * 1000;
      if (Number.isFinite(ttlMs) && ttlMs > 0) a.ttlMs = Math.min(this.#s.leaseTtlMs, ttlMs);
      if (a === this.#attempt) this.#sync(a.announced ? 'renewed' : 'elected');
    });
    campaign.on('error', (err) => {
      this.#endAttempt(a, err instanceof EtcdLeaseInvalidError ? 'lost' : 'error', err);
    });
    campaign.on('elected', () => {
      void this.#onElected(a);
    });
  }

  async #onElected(a: Attempt): Promise<void> {
    if (a !== this.#attempt) return; // a resigned campaign still emits 'elected'
    try {
      const absKey = await this.#call('a read of the campaign key', () => a.campaign.getCampaignKey());
      const res = await this.#call('a read of the campaign key', (o) => this.#client.get(absKey).options(o).exec());
      const kv = res.kvs[0];
      if (!kv || kv.value.toString('utf8') !== this.#s.host)
        throw new Error(`campaign key ${absKey} is ${kv ? `held by ${kv.value.toString('utf8')}` : 'gone'}`);
      if (a !== this.#attempt) return;
      a.token = { absKey, createRevision: kv.create_revision };
      this.#retryMs = firstRetryMs(this.#s.leaseTtlMs);
      this.#sync('elected');
    } catch (err) {
      this.#endAttempt(a, 'error', err);
    }
  }

  #endAttempt(a: Attempt, reason: LeadershipReason, err?: unknown): void {
    if (a !== this.#attempt || this.#closed) return;
    this.#attempt = null;
    this.#sync(reason);
    this.#s.log.warn({ err, reason, retryMs: this.#retryMs }, 'fleet etcd: campaign ended; campaigning again');
    void this.#settle('resign', () => a.campaign.resign());
    void this.#releaseCampaignWatchers();
    this.#retryTimer = setTimeout(() => this.#startAttempt(), this.#retryMs);
    this.#retryTimer.unref();
    this.#retryMs = Math.min(this.#s.leaseTtlMs, this.#retryMs * 2);
  }

  /** Reports a change of isLeader() to the callback and (re)arms the deadline timer. */
  #sync(reason: LeadershipReason): void {
    const leader = this.isLeader();
    clearTimeout(this.#deadlineTimer);
    if (leader !== this.#reported) {
      this.#reported = leader;
      const a = this.#attempt;
      if (leader && a) a.announced = true;
      this.#s.log.info({ host: this.#s.host, reason }, leader ? 'fleet etcd: leader' : 'fleet etcd: no longer leader');
      try {
        this.#onChange?.(leader, reason);
      } catch (err) {
        this.#s.log.warn({ err }, 'fleet etcd: the leadership callback threw');
      }
    }
    const a = this.#attempt;
    if (this.#reported && a) {
      const wait = Math.max(0, this.#deadline(a) - this.#s.monotonic());
      this.#deadlineTimer = setTimeout(() => this.#sync('deadline'), wait + 1);
      this.#deadlineTimer.unref();
    }
  }

  async #fenced(what: string, ops: () => Parameters<ReturnType<Etcd3['if']>['then']>): Promise<boolean> {
    const a = this.#attempt;
    if (!this.isLeader() || a?.token == null) return false;
    const { absKey, createRevision } = a.token;
    const res = await this.#call(what, (o) =>
      this.#client
        .if(absKey, 'Create', '==', createRevision)
        .then(...ops())
        .options(o)
        .commit(),
    );
    if (!res.succeeded) {
      this.#s.log.warn(
        { what, key: absKey, createRevision },
        'fleet etcd: fenced write refused: the campaign key is gone',
      );
      this.#endAttempt(a, 'fenced');
    }
    return res.succeeded;
  }
}

/** Applies defaults and checks the options. */
function settings(opts: EtcdOptions): Settings {
  if (!Array.isArray(opts.endpoints) || opts.endpoints.length === 0)
    throw new TypeError('fleet etcd: endpoints must list at least one client URL');
  for (const e of opts.endpoints) {
    let url: URL;
    try {
      url = new URL(e);
    } catch {
      throw new TypeError(`fleet etcd: endpoint "${e}" is not a URL (write http://host:2379)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new TypeError(`fleet etcd: endpoint "${e}" must be http:// or https://`);
  }
  if (opts.prefix === '' || opts.prefix.endsWith('/'))
    throw new TypeError(`fleet etcd: prefix "${opts.prefix}" must be non-empty without a trailing slash`);
  if (opts.host === '') throw new TypeError('fleet etcd: host must be non-empty');
  if (!Number.isInteger(opts.leaseTtlMs / 1000) || opts.leaseTtlMs < 2000)
    throw new RangeError(`fleet etcd: leaseTtlMs ${opts.leaseTtlMs} must be whole seconds, at least 2000`);
  const callTimeoutMs = opts.callTimeoutMs ?? Math.min(2000, opts.leaseTtlMs / 2);
  if (!(callTimeoutMs > 0)) throw new RangeError(`fleet etcd: callTimeoutMs ${callTimeoutMs} must be > 0`);
  return {
    endpoints: [...opts.endpoints],
    prefix: opts.prefix,
    host: opts.host,
    leaseTtlMs: opts.leaseTtlMs,
    callTimeoutMs,
    marginMs: Math.max(500, opts.leaseTtlMs / 5),
    monotonic: opts.monotonic ?? (() => performance.now()),
    log: opts.log ?? noLog,
  };
}

/**
 * Runs one etcd call with a gRPC deadline and a timer of callTimeoutMs,
 * whichever ends it first; maps failures to this module's errors.
 */
async function bounded<T>(s: Settings, what: string, run: (o: CallOptions) => Promise<T>): Promise<T> {
  const ms = s.callTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new EtcdUnavailableError(s.endpoints, `${what} got no answer within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([run({ deadline: new Date(Date.now() + ms) }), timeout]);
  } catch (err) {
    throw classify(s, what, err);
  } finally {
    clearTimeout(timer);
  }
}

function classify(s: Settings, what: string, err: unknown): Error {
  if (err instanceof EtcdUnavailableError || err instanceof EtcdRequestError) return err;
  const transport =
    err instanceof ClientClosedError ||
    (err instanceof Error && (isRecoverableError(err) || err.name === 'BrokenCircuitError'));
  const reason = err instanceof Error ? err.message : String(err);
  return transport
    ? new EtcdUnavailableError(s.endpoints, `${what} failed: ${reason}`, err)
    : new EtcdRequestError(`${what}: ${reason}`, err);
}

/** First re-campaign delay: min(1000, leaseTtl / 4) ms. */
function firstRetryMs(leaseTtlMs: number): number {
  return Math.min(1000, leaseTtlMs / 4);
}

/** A cockatiel-shaped policy that just runs the call (replaces etcd3's per-host circuit breaker). */
function passThroughPolicy(): HostPolicy {
  const never = () => ({ dispose: () => undefined });
  return {
    _altReturn: undefined as never,
    onSuccess: never,
    onFailure: never,
    execute: async (fn) => fn({ signal: new AbortController().signal }),
  };
}

/** The watch stream's reconnect backoff: `ms` doubling to `maxMs` (etcd3's default grows to 30 s). */
function backoff(ms: number, maxMs: number): WatchBackoff {
  return { duration: ms, next: () => backoff(Math.min(maxMs, ms * 2), maxMs) };
}

/** Sleeps `ms`, or less when `signal` aborts; never throws. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
