import t from 'tap';
import { Backend } from '../../src/demo/backend.js';
import { sendRequests, startTestNginx } from '../fixtures/nginx/harness.js';

t.test('weight 30 through the real nginx: 2,000 sequential requests land 30 % ± 2 on the canary', async (t) => {
  const h = await startTestNginx(t);
  const r = await h.applier.apply({ weights: { gateway: 30 }, generation: 2, reason: 'split' });
  t.ok(r.ok);
  const primary = h.backends.primary[0];
  const canary = h.backends.canary[0];
  if (!primary || !canary) throw new Error('harness backends missing');
  primary.resetCounts();
  canary.resetCounts();
  const c = await sendRequests(h.url, 2000, { timeoutMs: 30_000 });
  t.equal(c.sent, 2000, 'all 2,000 sent within the time bound');
  t.same(c.status, { 200: 2000 });
  const share = (canary.hits / (canary.hits + primary.hits)) * 100;
  t.comment(
    `canary ${canary.hits} / primary ${primary.hits} = ${share.toFixed(2)} % in ${c.elapsedMs.toFixed(0)} ms (${((c.sent / c.elapsedMs) * 1000).toFixed(0)} req/s)`,
  );
  t.equal(canary.hits + primary.hits, 2000, 'the backends saw every request');
  t.ok(Math.abs(share - 30) <= 2, `canary share ${share.toFixed(2)} % is 30 % ± 2`);
});

t.test('weights 0 and 100 send everything to one pool; several servers per pool share evenly', async (t) => {
  const extra = await Promise.all([Backend.start({ name: 'primary-b' }), Backend.start({ name: 'canary-b' })]);
  t.teardown(() => Promise.all(extra.map((b) => b.close())));
  const p1 = await Backend.start({ name: 'primary-a' });
  const c1 = await Backend.start({ name: 'canary-a' });
  t.teardown(() => Promise.all([p1.close(), c1.close()]));
  const h = await startTestNginx(t, {
    backends: { primary: [p1.addr, extra[0].addr], canary: [c1.addr, extra[1].addr] },
  });

  const zero = await sendRequests(h.url, 100);
  t.same(Object.keys(zero.backend).sort(), ['primary-a', 'primary-b'], 'weight 0: the canary pool is down');

  t.ok((await h.applier.apply({ weights: { gateway: 100 }, generation: 2, reason: 'all' })).ok);
  const all = await sendRequests(h.url, 100);
  t.same(Object.keys(all.backend).sort(), ['canary-a', 'canary-b'], 'weight 100: the primary pool is down');

  t.ok((await h.applier.apply({ weights: { gateway: 25 }, generation: 3, reason: 'quarter' })).ok);
  const q = await sendRequests(h.url, 400);
  const canary = (q.backend['canary-a'] ?? 0) + (q.backend['canary-b'] ?? 0);
  t.ok(Math.abs((canary / q.sent) * 100 - 25) <= 3, `25 % over 2+2 servers: ${canary}/${q.sent}`);
  t.ok(Math.abs((q.backend['canary-a'] ?? 0) - (q.backend['canary-b'] ?? 0)) <= 10, 'the canary servers share evenly');
});
