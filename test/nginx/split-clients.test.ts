/**
 * split_clients through the real nginx (1.22): stickiness per key as the
 * weight grows, and a dead canary falling back to the primary (`backup`).
 *
 * All traffic comes from 127.0.0.1, so the services here split on
 * `split_key: $http_x_client` and each simulated client sends its own
 * `X-Client` header. nginx hashes the key with MurmurHash2 and gives the
 * canary the keys whose hash is below weight % of 2^32 − 1
 * (ngx_http_split_clients_module.c: `percent * 0xffffffff / 10000`, percent in
 * hundredths); {@link murmurHash2} re-implements ngx_murmur_hash2 so the test
 * can predict, key by key, where nginx must send each client.
 */
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { Agent, request } from 'undici';
import { Backend } from '../../src/demo/backend.js';
import { buildAttribution } from '../../src/observe/attribute.js';
import { parseLine } from '../../src/observe/parse.js';
import type { LogRecord } from '../../src/observe/types.js';
import { waitFor } from '../../src/util/wait.js';
import { makeService } from '../fixtures/nginx/config.js';
import { startTestNginx, type Teardown, type TestNginx } from '../fixtures/nginx/harness.js';

/** nginx's ngx_murmur_hash2 (src/core/ngx_murmurhash.c, MurmurHash2 by Austin Appleby, seed 0) over the UTF-8 bytes of `s`. */
function murmurHash2(s: string): number {
  const data = Buffer.from(s, 'utf8');
  const m = 0x5bd1e995;
  let len = data.length;
  let h = len;
  let i = 0;
  while (len >= 4) {
    let k = (data[i] ?? 0) | ((data[i + 1] ?? 0) << 8) | ((data[i + 2] ?? 0) << 16) | ((data[i + 3] ?? 0) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
    i += 4;
    len -= 4;
  }
  if (len >= 3) h ^= (data[i + 2] ?? 0) << 16;
  if (len >= 2) h ^= (data[i + 1] ?? 0) << 8;
  if (len >= 1) h = Math.imul(h ^ (data[i] ?? 0), m);
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h >>> 0;
}

/** True when nginx puts `key` in a first split_clients bucket of `percent` (0.01 % steps): hash < percent·(2^32 − 1)/100, integer division. */
function inCanaryBucket(key: string, percent: number): boolean {
  const limit = (BigInt(Math.round(percent * 100)) * 0xffffffffn) / 10000n;
  return BigInt(murmurHash2(key)) < limit;
}

t.test(
  'murmurHash2 agrees with a C transcription of ngx_murmur_hash2 (gcc, uint32 arithmetic) on every tail length',
  async (t) => {
    // Expected values printed by that C program; the real check is nginx itself, key by key, below.
    const expected: [string, number][] = [
      ['', 0],
      ['a', 2456313694],
      ['ab', 446775395],
      ['abc', 324500635],
      ['abcd', 646393889],
      ['client-0', 957518682],
      ['client-499', 3600855788],
      ['dead-17', 2645045970],
      ['Hello, world!', 1077681669],
    ];
    for (const [s, h] of expected) t.equal(murmurHash2(s), h, JSON.stringify(s));
  },
);

interface Reply {
  status: number;
  /** `x-backend` of the answer (`-` when absent). */
  backend: string;
}

/**
 * Sends one GET per header set, `concurrency` at a time over new keep-alive
 * connections (opened after the last reload, so served by the new workers),
 * and returns the replies in order. Bounded: the list, and `timeoutMs` overall.
 */
async function sendAll(
  url: string,
  headerSets: Record<string, string>[],
  opts: { concurrency?: number; timeoutMs?: number } = {},
): Promise<Reply[]> {
  const concurrency = opts.concurrency ?? 8;
  const agent = new Agent({ connections: concurrency, keepAliveTimeout: 5000 });
  const deadline = performance.now() + (opts.timeoutMs ?? 30_000);
  const replies: Reply[] = new Array<Reply>(headerSets.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < headerSets.length) {
      if (performance.now() > deadline) throw new Error(`sendAll: over the time bound after ${next} requests`);
      const i = next++;
      const res = await request(`${url}/`, {
        dispatcher: agent,
        headers: headerSets[i],
        headersTimeout: 5000,
        bodyTimeout: 5000,
      });
      await res.body.dump();
      const b = res.headers['x-backend'];
      replies[i] = { status: res.statusCode, backend: typeof b === 'string' ? b : '-' };
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    await agent.close();
  }
  return replies;
}

/**
 * A test nginx whose gateway splits with split_clients on `$http_x_client`,
 * one real Backend per pool (closed by the teardown), rendered at `weight` %.
 */
async function splitNginx(t: Teardown, weight: number): Promise<{ h: TestNginx; primary: Backend; canary: Backend }> {
  const primary = await Backend.start({ name: 'primary' });
  const canary = await Backend.start({ name: 'canary' });
  t.teardown(() => Promise.all([primary.close(), canary.close()]));
  const h = await startTestNginx(t, {
    services: [
      makeService('gateway', [primary.addr], [canary.addr], { split: 'split_clients', splitKey: '$http_x_client' }),
    ],
    weights: { gateway: weight },
  });
  return { h, primary, canary };
}

t.test(
  'split_clients on the real nginx: every client sticks to one pool, and the canary clients at 20 % stay on it at 40 % and 60 %',
  async (t) => {
    const { h, primary, canary } = await splitNginx(t, 0);
    const CLIENTS = 500;
    const ROUNDS = 3;
    const clients = Array.from({ length: CLIENTS }, (_, i) => `client-${i}`);
    let previous: Set<string> | null = null;
    let generation = 1;
    for (const weight of [20, 40, 60]) {
      generation++;
      const r = await h.applier.apply({ weights: { gateway: weight }, generation, reason: `split_clients ${weight}` });
      t.ok(r.ok, `apply ${weight} %`);
      t.equal(
        await h.realCtl.generation(),
        generation,
        `the status server answers generation ${generation}: reload live`,
      );

      primary.resetCounts();
      canary.resetCounts();
      // Rounds interleaved (client 0..499, then again), so a client's repeats are far apart in time and connection.
      const headerSets = Array.from({ length: ROUNDS }, () => clients.map((c) => ({ 'x-client': c }))).flat();
      const t0 = performance.now();
      const replies = await sendAll(h.url, headerSets);
      const ms = performance.now() - t0;
      t.ok(
        replies.every((x) => x.status === 200),
        `${replies.length} requests, all 200`,
      );
      t.equal(primary.hits + canary.hits, CLIENTS * ROUNDS, 'the backends saw every request');

      const pools = new Map<string, Set<string>>();
      replies.forEach((x, i) => {
        const c = clients[i % CLIENTS] ?? '';
        const set = pools.get(c) ?? new Set<string>();
        set.add(x.backend);
        pools.set(c, set);
      });
      const wandering = clients.filter((c) => pools.get(c)?.size !== 1);
      t.same(
        wandering,
        [],
        `(a) at ${weight} %: each of ${CLIENTS} clients got the same pool on all ${ROUNDS} requests`,
      );

      const onCanary = new Set(clients.filter((c) => pools.get(c)?.has('canary') === true));
      const predicted = clients.filter((c) => inCanaryBucket(c, weight));
      t.same(
        [...onCanary],
        predicted,
        `at ${weight} %: exactly the clients whose MurmurHash2 falls in the canary bucket are on the canary`,
      );

      // The keys are fixed, so the share is deterministic; the tolerance says how far any
      // 500 keys may fall from the bucket size: 3 binomial standard deviations,
      // 3·sqrt(p(1−p)/n) (±5.4 pp at 20 %, ±6.6 pp at 40 % and 60 %).
      const share = (onCanary.size / CLIENTS) * 100;
      const tolerance = 300 * Math.sqrt(((weight / 100) * (1 - weight / 100)) / CLIENTS);
      t.comment(
        `${weight} %: ${onCanary.size}/${CLIENTS} clients on the canary = ${share.toFixed(1)} % (± ${tolerance.toFixed(1)} pp allowed); ${replies.length} requests in ${ms.toFixed(0)} ms`,
      );
      t.ok(
        Math.abs(share - weight) <= tolerance,
        `(c) client share ${share.toFixed(1)} % is ${weight} % ± ${tolerance.toFixed(1)}`,
      );

      if (previous !== null) {
        const left = [...previous].filter((c) => !onCanary.has(c));
        t.same(left, [], `(b) every client on the canary before is still on it at ${weight} %`);
        t.ok(onCanary.size > previous.size, 'and the canary gained clients');
      }
      previous = onCanary;
    }
  },
);

t.test(
  'split_clients with a dead canary: its clients get 200 from the primary (backup), the log shows the failed canary attempt then the primary',
  async (t) => {
    const { h, primary, canary } = await splitNginx(t, 50);
    await canary.setFault({ kind: 'refuse' });

    const clients = Array.from({ length: 40 }, (_, i) => `dead-${i}`);
    const canaryClients = clients.filter((c) => inCanaryBucket(c, 50));
    t.ok(canaryClients.length > 0 && canaryClients.length < clients.length, 'both pools have clients at 50 %');

    // Sequential, one connection: one worker serves them, in order.
    const replies = await sendAll(
      h.url,
      clients.map((c) => ({ 'x-client': c })),
      { concurrency: 1 },
    );
    t.same(
      replies.map((x) => `${x.status} ${x.backend}`),
      clients.map(() => '200 primary'),
      'every client, canary-mapped or not, got 200 from the primary',
    );
    t.equal(canary.hits, 0, 'the refusing canary answered nothing');

    const read = async (): Promise<string[]> =>
      (await readFile(h.config.nginx.accessLog, 'utf8')).split('\n').filter((l) => l !== '');
    await waitFor(async () => (await read()).length >= clients.length, {
      timeoutMs: 5000,
      what: `${clients.length} access-log lines`,
    });
    const records = (await read()).map(parseLine);
    t.ok(
      records.every((r) => r !== null),
      'every line parses',
    );
    const recs = records as LogRecord[];
    t.same(
      recs.map((r) => r.upstream),
      clients.map((c) => (canaryClients.includes(c) ? 'gateway_canary' : 'gateway_primary')),
      '$proxy_host names the upstream the split chose, client by client',
    );

    const C = canary.addr;
    const P = primary.addr;
    const shape = (r: LogRecord): string => r.attempts.map((a) => `${a.addr}=${a.status}`).join(', ');
    const canaryLines = recs.filter((r) => r.upstream === 'gateway_canary').map(shape);
    t.equal(
      canaryLines[0],
      `${C}=502, ${P}=200`,
      'the first canary client: the refused canary attempt, then the primary',
    );
    // max_fails=1 applies (the group has a backup, so it is not a one-server group, where nginx
    // ignores max_fails): once a worker saw the refusal, it sends the canary clients straight to
    // the backup for fail_timeout. The example nginx.conf runs 2 workers, each with its own count.
    const withCanary = canaryLines.filter((s) => s.includes(C));
    t.ok(
      withCanary.length >= 1 && withCanary.length <= 2,
      `the canary was tried at most once per worker (${withCanary.length} of ${canaryLines.length})`,
      { canaryLines },
    );
    t.ok(
      canaryLines.every((s) => s === `${C}=502, ${P}=200` || s === `${P}=200`),
      'every canary client ended on the primary',
      { canaryLines },
    );
    t.ok(
      recs.filter((r) => r.upstream === 'gateway_primary').every((r) => shape(r) === `${P}=200`),
      'primary clients: one attempt on the primary',
    );

    // Attribution: the failed attempt counts against the canary, the retry for the primary.
    const map = buildAttribution(h.config);
    const first = recs.find((r) => r.upstream === 'gateway_canary');
    t.same(
      first?.attempts.map((a) => map.attribute(a.addr, first.upstream)?.pool),
      ['canary', 'primary'],
      'attempts attributed by address to canary then primary',
    );
  },
);
