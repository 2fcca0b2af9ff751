// The smoke-test override behind its lock, through the running sidecar on the real nginx: before the
// slice an allowed client reaches the canary with X-Canary: always and status says the canary is ready
// with no traffic; after a drain, X-Canary: always from inside and from outside the allow-list both
// reach the primary.
import t from 'tap';
import { Agent, request } from 'undici';
import { spawnCli, startStack } from '../fixtures/stack.js';

const INSIDE = '127.0.0.1';
const OUTSIDE = '127.0.0.2'; // 127.0.0.0/8 is all loopback on Linux

/** `n` GETs with `X-Canary: always` from `localAddress` on new connections; resolves to their statuses. Bounded: n ≤ 50, 5 s each. */
async function always(url: string, localAddress: string, n: number): Promise<number[]> {
  const agent = new Agent({ connections: 1, localAddress });
  try {
    const out: number[] = [];
    for (let i = 0; i < Math.min(n, 50); i++) {
      const r = await request(url, {
        dispatcher: agent,
        headers: { 'x-canary': 'always' },
        headersTimeout: 5000,
        bodyTimeout: 5000,
      });
      await r.body.dump();
      out.push(r.statusCode);
    }
    return out;
  } finally {
    await agent.close();
  }
}

t.test('X-Canary: always reaches an idle canary only from the allow-list, and a drained one never', async (t) => {
  const stack = await startStack(t, { target: 0, overrideAllow: [INSIDE] });
  await stack.startSidecar();
  await stack.until(
    'the canary ready with no traffic',
    (s) => /^waiting: canary ready, no traffic yet/.test(s.summary),
    30_000,
  );
  const check = spawnCli(stack.dir, stack.configFile, ['check']);
  t.equal((await check.exited).code, 0, check.output());
  t.match(
    check.stdout(),
    /note: gateway: X-Canary: always\|never honoured from 127\.0\.0\.1 only; never to a drained canary/,
  );

  // The smoke test before the slice.
  stack.canary.resetCounts();
  stack.primary.resetCounts();
  await always(stack.url, INSIDE, 10);
  t.equal(stack.canary.hits, 10, 'from the allow-list: the idle canary');
  await always(stack.url, OUTSIDE, 10);
  t.equal(stack.primary.hits, 10, 'from outside it: the primary');

  // Walk, fail, drain.
  const target = spawnCli(stack.dir, stack.configFile, ['target', 'gateway', '30']);
  t.equal((await target.exited).code, 0, target.output());
  const traffic = stack.traffic();
  t.teardown(() => traffic.stop());
  await stack.until('weight 15', (s) => s.weight >= 15, 60_000);
  await stack.canary.setFault({ kind: 'status', status: 500 });
  await stack.until('drained', (s) => s.phase === 'drained' && s.weight === 0, 20_000);
  await traffic.stop();

  stack.canary.resetCounts();
  stack.primary.resetCounts();
  const inside = await always(stack.url, INSIDE, 20);
  const outside = await always(stack.url, OUTSIDE, 20);
  t.equal(stack.canary.hits, 0, 'the drained canary gets no request, whoever sends X-Canary: always');
  t.equal(stack.primary.hits, 40, 'both reach the primary');
  t.ok(
    [...inside, ...outside].every((s) => s === 200),
    'and get 200',
  );
});
