import t, { type Test } from 'tap';
import fs from 'node:fs/promises';
import { appendFileSync, openSync, closeSync, writeSync } from 'node:fs';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { ManualClock } from '../../src/clock.js';
import { LogFollower, pollPeriod, type LogFollowerOptions } from '../../src/observe/follow.js';
import { waitFor, WaitTimeoutError } from '../../src/util/wait.js';
import { spawnRotatingWriter } from '../fixtures/observe/rotating-writer.js';

/** A temp dir of our own, removed at the end. */
async function tempDir(t: Test): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nc-follow-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A started follower collecting every line; stopped at teardown. */
async function follow(
  t: Test,
  opts: Omit<LogFollowerOptions, 'onLines'>,
): Promise<{ f: LogFollower; lines: string[] }> {
  const lines: string[] = [];
  const f = new LogFollower({ pollMs: 20, ...opts, onLines: (batch) => lines.push(...batch) });
  await f.start();
  t.teardown(() => f.stop());
  return { f, lines };
}

t.test('no line lost across rename rotations at 2,000 lines/s', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'canary.json');
  await fs.writeFile(file, '');
  const seen = new Map<number, number>();
  const byGen = new Map<number, number[]>();
  let bad = 0;
  const f = new LogFollower({
    file,
    drainMs: 1000,
    onLines: (batch) => {
      for (const l of batch) {
        try {
          const { seq, gen } = JSON.parse(l) as { seq: number; gen: number };
          seen.set(seq, (seen.get(seq) ?? 0) + 1);
          const list = byGen.get(gen) ?? [];
          list.push(seq);
          byGen.set(gen, list);
        } catch {
          bad++;
        }
      }
    },
  });
  await f.start();
  t.teardown(() => f.stop());
  const total = 8000;
  const writer = spawnRotatingWriter({ file, total, rate: 2000, rotateEvery: 2000, linger: 40 });
  t.teardown(() => {
    if (writer.exitCode === null) writer.kill();
  });
  const [code] = (await once(writer, 'exit')) as [number | null];
  t.equal(code, 0, 'the writer wrote every line within its time bound');
  await waitFor(() => f.stats.lines >= total, { timeoutMs: 10_000, what: 'all lines' });
  t.equal(bad, 0, 'no half or garbled line');
  t.equal(seen.size, total, 'every sequence number arrived');
  t.equal(
    [...seen.values()].every((n) => n === 1),
    true,
    'each exactly once',
  );
  t.equal(f.stats.lines, total);
  t.equal(f.stats.rotations, 3, 'rotated after 2,000, 4,000 and 6,000 lines');
  t.equal(byGen.size, 4, 'lines came from four files');
  for (const [gen, seqs] of byGen) {
    t.equal(
      seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number)),
      true,
      `file ${gen}: in order`,
    );
  }
});

t.test('copytruncate: lines written after the truncation all arrive', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'canary.json');
  await fs.writeFile(file, '');
  const { f, lines } = await follow(t, { file });
  const fd = openSync(file, 'a');
  t.teardown(() => closeSync(fd));
  for (let i = 0; i < 100; i++) writeSync(fd, `before ${i} ${'x'.repeat(50)}\n`);
  await waitFor(() => lines.length === 100);
  await fs.truncate(file, 0);
  for (let i = 0; i < 5; i++) writeSync(fd, `after ${i}\n`);
  await waitFor(() => lines.length === 105, { what: 'the lines after the truncation' });
  t.same(lines.slice(100), ['after 0', 'after 1', 'after 2', 'after 3', 'after 4']);
  t.equal(f.stats.truncations, 1);
  t.equal(f.stats.rotations, 0, 'same inode: not a rotation');
});

t.test('a file created after start is read from its first line', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'later', 'canary.json');
  const { f, lines } = await follow(t, { file, from: 'end' });
  await fs.mkdir(path.dirname(file));
  await fs.writeFile(file, 'one\ntwo\n');
  await waitFor(() => lines.length === 2, { what: 'the new file' });
  t.same(lines, ['one', 'two']);
  appendFileSync(file, 'three\n');
  await waitFor(() => lines.length === 3);
  t.equal(lines[2], 'three');
  t.equal(f.stats.errors, 0);
});

t.test('while lines flow it polls without fs.watch; once quiet, a line wakes it long before the poll', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'canary.json');
  await fs.writeFile(file, '');
  const pollMs = 2000;
  const { f, lines } = await follow(t, { file, pollMs });
  await waitFor(() => f.watching, { what: 'the watch on a quiet log' });
  appendFileSync(file, 'one\n');
  await t.resolves(
    waitFor(() => lines.length === 1, { timeoutMs: pollMs * 0.6, what: 'a wake-up by fs.watch' }),
    'quiet: a line is read long before the poll',
  );
  // The watch closes when the read that delivered the line returns (a moment after the line is handed over:
  // under load the test's own poll can run in between), long before the next poll.
  await t.resolves(
    waitFor(() => !f.watching, { timeoutMs: pollMs / 4, what: 'the watch closed' }),
    'that read returned data: the watch is closed',
  );
  // Busy: writes must not wake the loop (under load inotify reports every line nginx writes).
  appendFileSync(file, 'two\n');
  await t.rejects(
    waitFor(() => lines.length === 2, { timeoutMs: pollMs / 2 }),
    WaitTimeoutError,
    'busy: a write waits for the poll',
  );
  await waitFor(() => lines.length === 2, { timeoutMs: pollMs * 2, what: 'the poll' });
  await t.resolves(
    waitFor(() => f.watching, { timeoutMs: pollMs * 3, what: 'a poll that finds nothing' }),
    'quiet again: watching',
  );
  t.same(lines, ['one', 'two']);
});

t.test('pollPeriod: busy, then quiet and watched with nothing draining, else pollMs', async (t) => {
  const periods = { pollMs: 20, quietPollMs: 250, busyPollMs: 100, busyBytes: 1000 };
  // [bytes read, watch armed before the reads and still, rotated files draining, expected sleep ms]
  const cases: [number, boolean, number, number][] = [
    [0, false, 0, 20],
    [0, false, 1, 20],
    [0, true, 0, 250],
    [0, true, 1, 20],
    [999, false, 0, 20],
    [999, true, 0, 250],
    [999, true, 2, 20],
    [1000, false, 0, 100],
    [1000, true, 0, 100],
    [1000, true, 1, 100],
    [5000, false, 1, 100],
    [5000, true, 0, 100],
  ];
  for (const [read, watched, draining, want] of cases)
    t.equal(
      pollPeriod({ read, watched, draining }, periods),
      want,
      `read ${read}, watched ${watched}, draining ${draining}`,
    );
});

t.test('a quiet log sleeps quietPollMs with the watch armed, and a write still wakes it', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'canary.json');
  await fs.writeFile(file, '');
  // A quiet poll no test waits out: only the watch can deliver the line below in time.
  const quietPollMs = 600_000;
  const { f, lines } = await follow(t, { file, pollMs: 20, quietPollMs });
  await waitFor(() => f.watching && f.pollingMs === quietPollMs, { what: 'the quiet period with the watch armed' });
  appendFileSync(file, 'one\n');
  await waitFor(() => lines.length === 1, { timeoutMs: 10_000, what: 'a wake-up by fs.watch' });
  t.same(lines, ['one']);
  // That read returned a line: the next sleep is pollMs, until a poll finds nothing again.
  await waitFor(() => f.watching && f.pollingMs === quietPollMs, { what: 'quiet again after the line' });
  appendFileSync(file, 'two\n');
  await waitFor(() => lines.length === 2, { timeoutMs: 10_000, what: 'the second wake-up' });
  t.same(lines, ['one', 'two']);
});

t.test(
  'hurry(): after a line that must be judged at once, the next lines are read within ~10 ms, not at the poll',
  async (t) => {
    const dir = await tempDir(t);
    const file = path.join(dir, 'canary.json');
    await fs.writeFile(file, '');
    const pollMs = 4000;
    const clock = new ManualClock();
    const lines: string[] = [];
    const f = new LogFollower({
      file,
      pollMs,
      clock,
      // The sidecar's use: a batch with a line that matters (here "fail") hurries the reads after it.
      onLines: (batch) => {
        lines.push(...batch);
        if (batch.includes('fail')) f.hurry();
      },
    });
    await f.start();
    t.teardown(() => f.stop());
    t.equal(f.hurried, false, 'not hurried before any call');
    await waitFor(() => f.watching, { what: 'the watch on a quiet log' });
    appendFileSync(file, 'ok\n');
    await waitFor(() => lines.length === 1, { timeoutMs: pollMs * 0.6, what: 'a wake-up by fs.watch' });
    await waitFor(() => !f.watching, { timeoutMs: pollMs / 4, what: 'the watch closed' });
    // Lines flow and nothing hurried: a write waits for the poll.
    appendFileSync(file, 'fail\n');
    await t.rejects(
      waitFor(() => lines.length === 2, { timeoutMs: pollMs / 4 }),
      WaitTimeoutError,
      'not hurried: a write waits for the poll',
    );
    await waitFor(() => lines.length === 2, { timeoutMs: pollMs * 2, what: 'the poll' });
    t.equal(f.hurried, true, 'the batch with "fail" hurried the follower');
    // Hurried: the next line is read at the 10 ms poll, far before the 4 s one (a quarter of it is the bound,
    // so a busy machine cannot fail this, while the poll it replaces cannot pass it).
    appendFileSync(file, 'next\n');
    await t.resolves(
      waitFor(() => lines.length === 3, { timeoutMs: pollMs / 4, what: 'the hurried read' }),
      'hurried: the next line is read long before the poll',
    );
    // The hold is 500 ms on the follower's clock, counted from the last hurry().
    clock.advance(499);
    t.equal(f.hurried, true, 'still hurried 499 ms after the call');
    clock.advance(1);
    t.equal(f.hurried, false, 'no longer hurried 500 ms after it');
    t.same(lines, ['ok', 'fail', 'next']);
  },
);

t.test('hurry() cuts a sleep already begun', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'canary.json');
  await fs.writeFile(file, '');
  const pollMs = 4000;
  const { f, lines } = await follow(t, { file, pollMs });
  await waitFor(() => f.watching, { what: 'the watch on a quiet log' });
  appendFileSync(file, 'one\n');
  await waitFor(() => lines.length === 1, { timeoutMs: pollMs * 0.6, what: 'a wake-up by fs.watch' });
  await waitFor(() => !f.watching, { timeoutMs: pollMs / 4, what: 'the watch closed' });
  // The loop now sleeps the whole 4 s poll with no watch; a line waits for it unless hurry() cuts the sleep.
  appendFileSync(file, 'two\n');
  f.hurry();
  await t.resolves(
    waitFor(() => lines.length === 2, { timeoutMs: pollMs / 4, what: 'the read after hurry()' }),
    'hurry() woke the sleeping loop',
  );
});

t.test(
  'a busy read lengthens the next sleep to busyPollMs, a quiet one shortens it; hurry() still cuts it',
  async (t) => {
    const dir = await tempDir(t);
    const file = path.join(dir, 'canary.json');
    await fs.writeFile(file, '');
    const busyPollMs = 4000;
    // A manual clock: hurry() then holds until the test advances it, however slow the machine.
    const clock = new ManualClock();
    const { f, lines } = await follow(t, { file, pollMs: 20, busyPollMs, busyBytes: 1000, clock });
    t.equal(f.pollingMs, 20, 'pollMs before any read');
    // 20 lines of 100 bytes: one poll reads 2,000 bytes ≥ busyBytes (the watch may wake it early; either way
    // every byte is read before the loop sleeps again).
    appendFileSync(file, `${'b'.repeat(99)}\n`.repeat(20));
    await waitFor(() => lines.length === 20 && f.pollingMs === busyPollMs, { what: 'the busy sleep' });
    // Lines flowed, so the watch is closed: a short line now waits for the whole busy sleep.
    appendFileSync(file, 'x\n');
    await t.rejects(
      waitFor(() => lines.length === 21, { timeoutMs: busyPollMs / 4 }),
      WaitTimeoutError,
      'busy: a line waits for busyPollMs (a 20 ms poll would have read it at once)',
    );
    await waitFor(() => lines.length === 21, { timeoutMs: busyPollMs * 2, what: 'the busy poll' });
    await waitFor(() => f.pollingMs === 20, { timeoutMs: busyPollMs, what: 'pollMs again after a 2-byte read' });
    appendFileSync(file, `${'b'.repeat(99)}\n`.repeat(20));
    await waitFor(() => lines.length === 41 && f.pollingMs === busyPollMs, { what: 'the busy sleep again' });
    appendFileSync(file, 'y\n');
    f.hurry();
    await t.resolves(
      waitFor(() => lines.length === 42, { timeoutMs: busyPollMs / 4, what: 'the read after hurry()' }),
      'hurry() cuts the busy sleep too',
    );
    await waitFor(() => f.pollingMs === 10, { timeoutMs: busyPollMs / 4, what: 'the hurried poll period' });
    t.equal(lines.at(-1), 'y');
    clock.advance(500);
    await waitFor(() => f.pollingMs === 20, { timeoutMs: busyPollMs / 4, what: 'pollMs once the hold is over' });
  },
);

t.test('a partial line is held until its newline arrives, never emitted half', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'canary.json');
  await fs.writeFile(file, '');
  const { f, lines } = await follow(t, { file });
  const head = 'first\n{"msec":"17637';
  appendFileSync(file, head);
  await waitFor(() => f.stats.bytes === Buffer.byteLength(head), { what: 'the partial read' });
  t.same(lines, ['first']);
  appendFileSync(file, '44701.123"}\nlast');
  await waitFor(() => lines.length === 2);
  t.same(lines, ['first', '{"msec":"1763744701.123"}']);
  appendFileSync(file, '\n');
  await waitFor(() => lines.length === 3);
  t.equal(lines[2], 'last');
});

t.test("from 'end' skips what is there (including a half-written last line); 'start' reads it", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'canary.json');
  await fs.writeFile(file, 'old 1\nold 2\nhalf of a li');
  const end = await follow(t, { file, from: 'end' });
  const start = await follow(t, { file, from: 'start' });
  appendFileSync(file, 'ne\nnew\n');
  await waitFor(() => end.lines.length === 1 && start.lines.length === 4);
  t.same(end.lines, ['new'], 'the rest of the half line is skipped');
  t.same(start.lines, ['old 1', 'old 2', 'half of a line', 'new']);

  const file2 = path.join(dir, 'clean.json');
  await fs.writeFile(file2, 'old\n');
  const clean = await follow(t, { file: file2, from: 'end' });
  appendFileSync(file2, 'new\n');
  await waitFor(() => clean.lines.length === 1);
  t.same(clean.lines, ['new'], 'starting at a line boundary skips nothing new');
});

t.test('over-long lines are dropped and counted; the lines around them arrive', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'canary.json');
  await fs.writeFile(file, '');
  const { f, lines } = await follow(t, { file, maxLineBytes: 100 });
  const first = `a\n${'y'.repeat(300)}\nb\n`;
  appendFileSync(file, first); // within one read
  await waitFor(() => lines.length === 2);
  appendFileSync(file, 'z'.repeat(60)); // a partial line growing past the cap
  await waitFor(() => f.stats.bytes === first.length + 60);
  appendFileSync(file, 'z'.repeat(60));
  await waitFor(() => f.stats.overlong === 2);
  appendFileSync(file, `${'z'.repeat(10)}\nc\n${'w'.repeat(90)}`);
  await waitFor(() => lines.length === 3);
  appendFileSync(file, `${'w'.repeat(20)}\nd\n`); // partial 90 + 20 > 100 when completed
  await waitFor(() => lines.length === 4);
  t.same(lines, ['a', 'b', 'c', 'd']);
  t.equal(f.stats.overlong, 3);
});

t.test('a rotated file drains until idle for drainMs on the injected clock', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'canary.json');
  await fs.writeFile(file, '');
  const clock = new ManualClock();
  const { f, lines } = await follow(t, { file, drainMs: 3000, clock });
  const oldFd = openSync(file, 'a');
  t.teardown(() => closeSync(oldFd));
  writeSync(oldFd, 'one\n');
  await waitFor(() => lines.length === 1);
  await fs.rename(file, `${file}.1`);
  await waitFor(() => f.stats.rotations === 1, { what: 'the rotation' });
  t.equal(f.stats.draining, 1);
  writeSync(oldFd, 'two, still to the old file\n');
  await fs.writeFile(file, 'three, in the new file\n');
  await waitFor(() => lines.length === 3);
  t.same(lines.slice(1).sort(), ['three, in the new file', 'two, still to the old file']);
  clock.advance(2999);
  writeSync(oldFd, 'four, late\n');
  await waitFor(() => lines.length === 4);
  t.equal(f.stats.draining, 1, 'data resets the idle timer');
  const before = f.stats.bytes;
  writeSync(oldFd, 'unterminated');
  await waitFor(() => f.stats.bytes === before + 'unterminated'.length);
  clock.advance(3000);
  await waitFor(() => f.stats.draining === 0, { what: 'the drain to end' });
  t.equal(f.stats.partialDropped, 1, 'the unterminated tail of the old file is counted');
});

t.test('a deleted file is waited for and followed again when recreated', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'canary.json');
  await fs.writeFile(file, '');
  const { f, lines } = await follow(t, { file, drainMs: 0 });
  appendFileSync(file, 'a\n');
  await waitFor(() => lines.length === 1);
  await fs.rm(file);
  await waitFor(() => f.stats.rotations === 1 && f.stats.draining === 0);
  await fs.writeFile(file, 'b\n');
  await waitFor(() => lines.length === 2);
  t.same(lines, ['a', 'b']);
});

t.test('an onLines exception is counted and reported; following goes on', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'canary.json');
  await fs.writeFile(file, '');
  const errors: unknown[] = [];
  const got: string[] = [];
  const f = new LogFollower({
    file,
    pollMs: 20,
    onLines: (batch) => {
      if (batch.includes('boom')) throw new Error('boom');
      got.push(...batch);
    },
    onError: (e) => errors.push(e),
  });
  await f.start();
  t.teardown(() => f.stop());
  appendFileSync(file, 'boom\n');
  await waitFor(() => f.stats.errors === 1);
  appendFileSync(file, 'fine\n');
  await waitFor(() => got.length === 1);
  t.same(got, ['fine']);
  t.match(errors, [{ message: 'boom' }]);
});

t.test('an unreadable path is reported as an error, not as a missing file', async (t) => {
  const dir = await tempDir(t);
  const errors: unknown[] = [];
  const f = new LogFollower({ file: dir, pollMs: 20, onLines: () => undefined, onError: (e) => errors.push(e) });
  await f.start();
  t.teardown(() => f.stop());
  await waitFor(() => f.stats.errors >= 2, { what: 'EISDIR errors' });
  t.match(errors[0], { code: 'EISDIR' });
});

t.test('options are validated; start twice throws; stop is idempotent', async (t) => {
  const onLines = (): void => undefined;
  t.throws(() => new LogFollower({ file: '/x', onLines, pollMs: 0 }), RangeError);
  t.throws(() => new LogFollower({ file: '/x', onLines, drainMs: -1 }), RangeError);
  t.throws(() => new LogFollower({ file: '/x', onLines, maxLineBytes: 0 }), RangeError);
  t.throws(() => new LogFollower({ file: '/x', onLines, busyPollMs: 0 }), RangeError);
  t.throws(() => new LogFollower({ file: '/x', onLines, busyBytes: 0 }), RangeError);
  t.throws(() => new LogFollower({ file: '/x', onLines, pollMs: 20, quietPollMs: 10 }), /quietPollMs must be ≥ pollMs/);
  t.doesNotThrow(() => new LogFollower({ file: '/x', onLines, pollMs: 20, quietPollMs: 20 }));
  const dir = await tempDir(t);
  t.throws(() => new LogFollower({ file: '/x' }), TypeError, 'neither onLines nor onBytes');
  const f = new LogFollower({ file: path.join(dir, 'none.json'), onLines });
  await f.start();
  await t.rejects(f.start(), /already started/);
  await f.stop();
  await f.stop();
  t.same(f.stats, {
    lines: 0,
    bytes: 0,
    rotations: 0,
    truncations: 0,
    overlong: 0,
    partialDropped: 0,
    errors: 0,
    draining: 0,
  });
});

t.test(
  'onBytes hands over exactly the lines onLines gets: partial, empty, over-long, non-ASCII, rotated',
  async (t) => {
    const dir = await tempDir(t);
    const file = path.join(dir, 'canary.json');
    await fs.writeFile(file, '');
    const str = await follow(t, { file, maxLineBytes: 100 });
    const byBytes: string[] = [];
    const calls: number[] = [];
    const b = new LogFollower({
      file,
      pollMs: 20,
      maxLineBytes: 100,
      drainMs: 200,
      onBytes: (buf, start, end) => {
        calls.push(end - start);
        byBytes.push(...buf.toString('utf8', start, end).split('\n'));
      },
    });
    await b.start();
    t.teardown(() => b.stop());
    const writes = [
      'a\n\nb\n', // an empty line between two
      'c1', // a partial line, completed by the next write
      '2\nd é ☃\n',
      `${'y'.repeat(300)}\ne\n`, // an over-long line inside one read
      'z'.repeat(60), // a partial line growing past the cap
      'z'.repeat(60),
      'z\nf\n',
    ];
    for (const w of writes) {
      appendFileSync(file, w);
      const bytes = Buffer.byteLength(writes.slice(0, writes.indexOf(w) + 1).join(''));
      await waitFor(() => b.stats.bytes === bytes && str.f.stats.bytes === bytes, { what: 'both read the write' });
    }
    await fs.rename(file, `${file}.1`);
    appendFileSync(`${file}.1`, 'g (written to the rotated file)\n');
    appendFileSync(file, 'h (the new file)\n');
    const want = ['a', '', 'b', 'c12', 'd é ☃', 'e', 'f', 'g (written to the rotated file)', 'h (the new file)'];
    await waitFor(() => byBytes.length === want.length && str.lines.length === want.length, {
      what: 'every line on both',
    });
    t.same([...byBytes].sort(), [...want].sort(), 'onBytes: every line once');
    t.same([...str.lines].sort(), [...want].sort(), 'onLines: the same lines');
    t.same(byBytes.slice(0, 7), want.slice(0, 7), 'in file order within a file');
    t.equal(b.stats.lines, str.f.stats.lines, 'stats.lines counts them alike');
    t.equal(b.stats.overlong, 2);
    t.equal(str.f.stats.overlong, 2);
    t.ok(calls.every((n) => n >= 0));
  },
);
