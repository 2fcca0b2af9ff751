/**
 * The `X-Canary: always|never` override through the real nginx (1.22), in
 * both split modes, counted at the backends (README "The X-Canary
 * override": the override is a door with a lock). With `override.allow` a client in the list gets
 * `always` → the canary (also before the first slice, weight 0) and `never`
 * → the primary; a client outside the list, and any request of a service
 * without `override`, gets the normal split whatever its header says.
 *
 * Clients: 127.0.0.1 is inside the list, 127.0.0.2 outside (the whole of
 * 127.0.0.0/8 is loopback on Linux; undici binds the client socket with
 * `localAddress`), so nginx `geo` sees two different `$remote_addr`.
 *
 * nginx's `map` compares a string key with the whole value, ignoring letter
 * case (ngx_http_map_find lower-cases the value; the keys are lower-cased
 * when the map is built): `ALWAYS` counts, `always-please` does not.
 */
import t from 'tap';
import { Agent, request } from 'undici';
import type { OverrideConfig, SplitMode } from '../../src/config/types.js';
import { Backend } from '../../src/demo/backend.js';
import { makeService } from '../fixtures/nginx/config.js';
import { startTestNginx, type Teardown, type TestNginx } from '../fixtures/nginx/harness.js';

/** A loopback client address in the allow lists below. */
const INSIDE = '127.0.0.1';
/** A loopback client address outside them. */
const OUTSIDE = '127.0.0.2';

/**
 * Sends one GET per header set from `localAddress`, `concurrency` at a time
 * over new keep-alive connections (opened after the last reload, so served
 * by the new workers); returns the count per HTTP status. Bounded: the list,
 * and `timeoutMs` overall.
 */
async function sendAll(
  url: string,
  headerSets: Record<string, string>[],
  opts: { localAddress?: string; concurrency?: number; timeoutMs?: number } = {},
): Promise<Record<number, number>> {
  const concurrency = opts.concurrency ?? 4;
  const agent = new Agent({
    connections: concurrency,
    keepAliveTimeout: 5000,
    localAddress: opts.localAddress ?? INSIDE,
  });
  const deadline = performance.now() + (opts.timeoutMs ?? 20_000);
  const status: Record<number, number> = {};
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < headerSets.length) {
      if (performance.now() > deadline) throw new Error(`sendAll: over the time bound after ${next} requests`);
      const headers = headerSets[next++];
      const res = await request(`${url}/`, { dispatcher: agent, headers, headersTimeout: 5000, bodyTimeout: 5000 });
      await res.body.dump();
      status[res.statusCode] = (status[res.statusCode] ?? 0) + 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    await agent.close();
  }
  return status;
}

/** `n` header sets: `x-canary` when given, and a distinct User-Agent each (a distinct split_clients key by default). */
function requests(n: number, canary?: string, tag = 'ua'): Record<string, string>[] {
  return Array.from({ length: n }, (_, i) => ({
    'user-agent': `${tag}-${i}`,
    ...(canary === undefined ? {} : { 'x-canary': canary }),
  }));
}

/** Sends the requests from `from` (default {@link INSIDE}) and returns how many each backend answered (counters reset first). */
async function hits(
  h: TestNginx,
  [p, c]: [Backend, Backend],
  headerSets: Record<string, string>[],
  from = INSIDE,
): Promise<{ primary: number; canary: number; status: Record<number, number> }> {
  p.resetCounts();
  c.resetCounts();
  const status = await sendAll(h.url, headerSets, { localAddress: from });
  return { primary: p.hits, canary: c.hits, status };
}

async function backends(t: Teardown): Promise<[Backend, Backend]> {
  const p = await Backend.start({ name: 'primary' });
  const c = await Backend.start({ name: 'canary' });
  t.teardown(() => Promise.all([p.close(), c.close()]));
  return [p, c];
}

/** A test nginx (weight 0, generation 1 live) whose gateway has `split` and `override`. */
async function start(
  t: Teardown,
  pc: [Backend, Backend],
  split: SplitMode,
  override: OverrideConfig | null,
): Promise<TestNginx> {
  const [p, c] = pc;
  return startTestNginx(t, { services: [makeService('gateway', [p.addr], [c.addr], { split, override })] });
}

t.test('weighted, allow [127.0.0.1]: always at weight 0, never at 90, only from inside the list', async (t) => {
  const pc = await backends(t);
  const h = await start(t, pc, 'weighted', { allow: [INSIDE] });

  t.match(await hits(h, pc, requests(50)), { primary: 50, canary: 0 }, 'weight 0, no header: all primary');
  t.match(
    await hits(h, pc, requests(50, 'always')),
    { primary: 0, canary: 50, status: { 200: 50 } },
    'weight 0, X-Canary: always from 127.0.0.1: all canary (gateway_canary is not down before the first slice)',
  );
  t.match(
    await hits(h, pc, requests(50, 'always'), OUTSIDE),
    { primary: 50, canary: 0, status: { 200: 50 } },
    'weight 0, X-Canary: always from 127.0.0.2 (outside the list): all primary',
  );
  t.match(await hits(h, pc, requests(10, 'ALWAYS')), { canary: 10 }, 'the value is matched ignoring case');
  t.match(
    await hits(h, pc, requests(10, 'always-please')),
    { primary: 10, canary: 0 },
    'a longer value is no override',
  );
  t.match(await hits(h, pc, requests(10, '1:always')), { primary: 10, canary: 0 }, 'nor the map key itself');
  t.match(await hits(h, pc, requests(10, 'yes')), { primary: 10, canary: 0 }, 'another value gets the split');

  t.ok((await h.applier.apply({ weights: { gateway: 90 }, generation: 2, reason: 'high' })).ok);
  t.equal(await h.realCtl.generation(), 2, 'generation 2 live');
  t.match(
    await hits(h, pc, requests(200, 'never')),
    { primary: 200, canary: 0, status: { 200: 200 } },
    'weight 90, X-Canary: never from 127.0.0.1: none on the canary',
  );
  const outside = await hits(h, pc, requests(200, 'never'), OUTSIDE);
  // Smooth weighted round-robin is exact per worker over each cycle of 10 (9:1); ± 5 pp covers two workers' partial cycles.
  const outsideShare = (outside.canary / 200) * 100;
  t.ok(Math.abs(outsideShare - 90) <= 5, `weight 90, never from 127.0.0.2: the split (canary ${outsideShare} %)`);
  const split = await hits(h, pc, requests(200));
  const share = (split.canary / 200) * 100;
  t.ok(Math.abs(share - 90) <= 5, `weight 90, no header: canary share ${share} % is 90 % ± 5`);
  t.match(await hits(h, pc, requests(20, 'always')), { primary: 0, canary: 20 }, 'weight 90, always: all canary');
});

t.test(
  'split_clients, allow [127.0.0.0/31]: always at weight 0, never at 100, only from inside the list',
  async (t) => {
    const pc = await backends(t);
    const h = await start(t, pc, 'split_clients', { allow: ['127.0.0.0/31'] }); // default key $remote_addr$http_user_agent

    t.match(
      await hits(h, pc, requests(50)),
      { primary: 50, canary: 0 },
      'weight 0, 50 clients, no header: all primary',
    );
    t.match(
      await hits(h, pc, requests(50, 'always')),
      { primary: 0, canary: 50, status: { 200: 50 } },
      'weight 0, X-Canary: always from 127.0.0.1 (in 127.0.0.0/31): all canary',
    );
    t.match(
      await hits(h, pc, requests(50, 'always'), OUTSIDE),
      { primary: 50, canary: 0 },
      'from 127.0.0.2 (outside 127.0.0.0/31): all primary',
    );
    t.match(await hits(h, pc, requests(10, 'Always')), { canary: 10 }, 'the value is matched ignoring case');
    t.match(await hits(h, pc, requests(10, 'never ever')), { primary: 10, canary: 0 }, 'another value gets the split');

    t.ok((await h.applier.apply({ weights: { gateway: 100 }, generation: 2, reason: 'all' })).ok);
    t.equal(await h.realCtl.generation(), 2, 'generation 2 live');
    t.match(
      await hits(h, pc, requests(50, 'never')),
      { primary: 50, canary: 0, status: { 200: 50 } },
      'weight 100, X-Canary: never from 127.0.0.1: all primary',
    );
    t.match(
      await hits(h, pc, requests(50, 'never'), OUTSIDE),
      { primary: 0, canary: 50 },
      'weight 100, never from 127.0.0.2: all canary (the split)',
    );
    t.match(await hits(h, pc, requests(50)), { primary: 0, canary: 50 }, 'weight 100, no header: all canary');

    t.ok((await h.applier.apply({ weights: { gateway: 50 }, generation: 3, reason: 'half' })).ok);
    t.equal(await h.realCtl.generation(), 3, 'generation 3 live');
    const half = await hits(h, pc, requests(200, undefined, 'half'));
    t.ok(half.primary > 0 && half.canary > 0, `weight 50, 200 clients: both pools (${half.primary} / ${half.canary})`);
    t.match(
      await hits(h, pc, requests(200, 'never', 'half')),
      { primary: 200, canary: 0 },
      'the same clients with never',
    );
    t.match(await hits(h, pc, requests(200, 'always', 'half')), { primary: 0, canary: 200 }, 'and with always');
  },
);

t.test('no override key: X-Canary is ignored in both split modes', async (t) => {
  for (const split of ['weighted', 'split_clients'] as const) {
    const pc = await backends(t);
    const h = await start(t, pc, split, null);
    t.match(
      await hits(h, pc, requests(50, 'always')),
      { primary: 50, canary: 0, status: { 200: 50 } },
      `${split}, weight 0, X-Canary: always from 127.0.0.1: all primary`,
    );
    t.ok((await h.applier.apply({ weights: { gateway: 100 }, generation: 2, reason: 'all' })).ok);
    t.equal(await h.realCtl.generation(), 2, `${split}: generation 2 live`);
    t.match(
      await hits(h, pc, requests(50, 'never')),
      { primary: 0, canary: 50, status: { 200: 50 } },
      `${split}, weight 100, X-Canary: never: all canary`,
    );
  }
});
