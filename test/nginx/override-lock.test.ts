/**
 * README "The X-Canary override" on the real nginx (1.22), in both split modes: the `X-Canary`
 * override is a door with a lock. Before (always on): after a drain, 20 of
 * 20 requests with `X-Canary: always` from any client reached the drained
 * canary, 20 × 500. Now, with `override.allow: [127.0.0.1]`:
 * - idle at weight 0 (the smoke test before the first slice): `always` from
 *   127.0.0.1 (inside the list) reaches the canary, from 127.0.0.2 (outside;
 *   all of 127.0.0.0/8 is loopback on Linux) the primary;
 * - drained (weight 0, `drained` passed to the applier, the canary answering
 *   500): `always` from both reaches the primary, 20 × 200, and the canary
 *   sees no request;
 * - resumed (the drained flag gone again, still weight 0): the allowed
 *   client reaches the canary once more.
 * Counted at the backends (src/demo/backend.ts), every request on a new
 * connection opened after the apply proved its generation live.
 */
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { Agent, request } from 'undici';
import { Backend } from '../../src/demo/backend.js';
import { waitFor } from '../../src/util/wait.js';
import { makeService } from '../fixtures/nginx/config.js';
import { startTestNginx, type TestNginx } from '../fixtures/nginx/harness.js';

/** In the allow list. */
const INSIDE = '127.0.0.1';
/** Loopback too, but outside the allow list. */
const OUTSIDE = '127.0.0.2';

/** What one batch of requests reached. */
interface Reached {
  primary: number;
  canary: number;
  /** Count per HTTP status the client saw. */
  status: Record<number, number>;
}

/**
 * Sends `n` GETs with `X-Canary: always` from `from`, one at a time over a
 * new connection pool bound to that address, each bounded by 5 s and the
 * batch by 20 s; returns what each backend counted (reset first) and the
 * statuses seen.
 */
async function always(h: TestNginx, p: Backend, c: Backend, from: string, n = 20): Promise<Reached> {
  p.resetCounts();
  c.resetCounts();
  const agent = new Agent({ connections: 1, keepAliveTimeout: 5000, localAddress: from });
  const deadline = performance.now() + 20_000;
  const status: Record<number, number> = {};
  try {
    for (let i = 0; i < n; i++) {
      if (performance.now() > deadline) throw new Error(`over the time bound after ${i} requests`);
      const res = await request(`${h.url}/`, {
        dispatcher: agent,
        headers: { 'x-canary': 'always', 'user-agent': `lock-${i}` },
        headersTimeout: 5000,
        bodyTimeout: 5000,
      });
      await res.body.dump();
      status[res.statusCode] = (status[res.statusCode] ?? 0) + 1;
    }
  } finally {
    await agent.close();
  }
  return { primary: p.hits, canary: c.hits, status };
}

for (const split of ['weighted', 'split_clients'] as const) {
  t.test(
    `${split}: X-Canary: always reaches an idle canary from the allow list only, a drained one never`,
    async (t) => {
      const p = await Backend.start({ name: 'primary' });
      const c = await Backend.start({ name: 'canary' });
      t.teardown(() => Promise.all([p.close(), c.close()]));
      const h = await startTestNginx(t, {
        services: [makeService('gateway', [p.addr], [c.addr], { split, override: { allow: [INSIDE] } })],
      }); // weight 0, generation 1 live: idle, before the first slice

      t.match(
        await always(h, p, c, INSIDE),
        { primary: 0, canary: 20, status: { 200: 20 } },
        'idle at 0, from 127.0.0.1 (allowed): the smoke test reaches the canary',
      );
      t.match(
        await always(h, p, c, OUTSIDE),
        { primary: 20, canary: 0, status: { 200: 20 } },
        'idle at 0, from 127.0.0.2 (not allowed): the primary',
      );

      // The canary goes bad and the runner drains it: weight 0, phase drained.
      await c.setFault({ kind: 'status', status: 500 });
      await waitFor(
        async () => {
          const res = await request(`http://${c.addr}/`, { headersTimeout: 2000, bodyTimeout: 2000 });
          await res.body.dump();
          return res.statusCode === 500;
        },
        { what: 'the canary answering 500', timeoutMs: 5000 },
      );
      const drain = await h.applier.apply({
        weights: { gateway: 0 },
        generation: 2,
        reason: 'drain',
        drained: ['gateway'],
      });
      t.ok(drain.ok, 'the drained render applies (nginx -t, reload, generation 2 proven live)', { drain });
      t.equal(await h.realCtl.generation(), 2, 'generation 2 live');
      const file = await readFile(h.config.nginx.upstreamsFile, 'utf8');
      t.match(file, /^# gateway: canary 0 %, split \w+, drained$/m, 'the include file says drained');
      t.match(file, /^ {4}1:always gateway_primary;$/m, 'and maps always to the primary');
      t.match(
        await always(h, p, c, INSIDE),
        { primary: 20, canary: 0, status: { 200: 20 } },
        'drained, from 127.0.0.1 (allowed): 20 of 20 on the primary, none reaches the drained canary',
      );
      t.match(
        await always(h, p, c, OUTSIDE),
        { primary: 20, canary: 0, status: { 200: 20 } },
        'drained, from 127.0.0.2: the primary',
      );

      // Resumed (no longer drained), still at 0: the smoke test works again for the allowed client only.
      await c.setFault({ kind: 'none' });
      const resume = await h.applier.apply({ weights: { gateway: 0 }, generation: 3, reason: 'resume' });
      t.ok(resume.ok, 'the idle render applies', { resume });
      t.match(
        await always(h, p, c, INSIDE),
        { primary: 0, canary: 20, status: { 200: 20 } },
        'idle again, from 127.0.0.1: the canary',
      );
      t.match(
        await always(h, p, c, OUTSIDE),
        { primary: 20, canary: 0, status: { 200: 20 } },
        'idle again, from 127.0.0.2: the primary',
      );
    },
  );
}
