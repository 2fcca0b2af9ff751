// src/util/wait.ts: a wait polls until the condition holds or the deadline passes, and skips the polls a
// caller knows can only fail (`notBefore`) without passing the deadline.
import t from 'tap';
import { waitFor, WaitTimeoutError } from '../../src/util/wait.js';

t.test('notBefore: no poll before the time given, then polls at intervalMs again', async (t) => {
  const t0 = performance.now();
  const polls: number[] = [];
  const v = await waitFor(
    () => {
      polls.push(performance.now() - t0);
      return polls.length === 4 ? 'done' : false;
    },
    { intervalMs: 5, timeoutMs: 5000, notBefore: () => (polls.length === 1 ? t0 + 60 : null) },
  );
  t.equal(v, 'done');
  t.equal(polls.length, 4, 'four polls');
  // A Node timer may fire early against performance.now(); waitFor waits out the rest, so never short.
  t.ok(
    (polls[1] as number) >= 60,
    `the second poll came after the 60 ms given (${(polls[1] as number).toFixed(1)} ms)`,
  );
  t.ok(
    (polls[2] as number) - (polls[1] as number) >= 4,
    `then intervalMs again (${((polls[2] as number) - (polls[1] as number)).toFixed(1)} ms)`,
  );
});

t.test('notBefore never pauses less than intervalMs, nor past the deadline', async (t) => {
  const t0 = performance.now();
  const polls: number[] = [];
  // A time in the past: the pause is intervalMs, not 0.
  await waitFor(() => polls.push(performance.now() - t0) >= 3, { intervalMs: 20, notBefore: () => t0 - 1000 });
  t.equal(polls.length, 3);
  t.ok((polls[2] as number) - (polls[0] as number) >= 38, 'two pauses of at least intervalMs each');

  // A time far past the deadline: one pause to the deadline, one last poll, then the timeout.
  const t1 = performance.now();
  let n = 0;
  const err = await waitFor(() => (n++, false), { intervalMs: 5, timeoutMs: 80, notBefore: () => t1 + 60_000 }).then(
    () => null,
    (e: unknown) => e,
  );
  const took = performance.now() - t1;
  t.ok(err instanceof WaitTimeoutError, 'timed out');
  t.equal(n, 2, 'the first poll, and one at the deadline');
  t.ok(took >= 80 && took < 5000, `gave up at the deadline, not at notBefore (${took.toFixed(1)} ms)`);
});
