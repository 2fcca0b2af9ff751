import t from 'tap';
import { ManualClock, systemClock } from '../src/clock.js';

t.test('ManualClock moves only when told', async (t) => {
  const c = new ManualClock(1000);
  t.equal(c.now(), 1000);
  c.advance(250);
  t.equal(c.now(), 1250);
  t.equal(c.monotonic(), 250);
  c.jumpWall(-5000);
  t.equal(c.now(), -3750);
  t.equal(c.monotonic(), 250, 'a wall jump leaves the monotonic reading alone');
  t.throws(() => c.advance(-1), RangeError);
});

t.test('systemClock reads real time', async (t) => {
  const before = Date.now();
  const n = systemClock.now();
  t.ok(n >= before && n <= Date.now());
  const m1 = systemClock.monotonic();
  t.ok(systemClock.monotonic() >= m1);
});
