// test/fixtures/pace.ts: the tests' traffic loops are paced and never burst to catch up after a stall.
import t from 'tap';
import { Pacer } from '../fixtures/pace.js';

/** Blocks the event loop for `ms` (a stalled test process), ms. */
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

t.test('a Pacer waits until the sends are due, and after a stall starts again from now', async (t) => {
  t.throws(() => new Pacer(0), RangeError);
  const pacer = new Pacer(100); // 10 ms a send
  const t0 = performance.now();
  await pacer.wait(5);
  t.ok(performance.now() - t0 >= 49, `5 sends at 100/s waited until due (${(performance.now() - t0).toFixed(1)} ms)`);

  stall(200); // 20 sends' worth behind
  // Behind: no timer at all, so the wait settles before the next turn of the event loop.
  const t1 = performance.now();
  const first = await Promise.race([
    pacer.wait(5).then(() => 'wait'),
    new Promise<string>((r) => setImmediate(() => r('immediate'))),
  ]);
  t.equal(first, 'wait', 'behind: no wait');
  // The missed 20 sends are not owed: the next 5 are due 50 ms after the schedule restarted at t1 (a
  // catch-up would still be behind and not wait).
  await pacer.wait(5);
  const waited = performance.now() - t1;
  t.ok(waited >= 49, `after the stall the pace is 100/s again (${waited.toFixed(1)} ms)`);
});
