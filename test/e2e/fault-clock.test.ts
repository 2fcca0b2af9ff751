// Fault: the host's wall clock jumps. A Runner on a real nginx (real reloads,
// real probes, real traffic through nginx) driven tick by tick by a
// ManualClock; the access-log lines nginx wrote are fed to the observer
// stamped with the ManualClock's wall time, spread over each tick, as nginx
// would stamp them on that host ($msec follows the host clock). Properties:
// - backwards by an hour mid-soak: no step early, the soak is not restarted
//   from zero (soakedMs keeps its value), and once the clock is right again
//   the soak continues from that value;
// - forwards (by less than a gate window, so the window still holds green
//   data): the soak grows by the time that really passed, never by the jump,
//   so no step comes early.
// Soak time is measured here on the monotonic clock (ManualClock.advance).
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { ManualClock } from '../../src/clock.js';
import { CLOCK_JUMP_MS, shiftClockAnchors, type ServiceStatus } from '../../src/runner.js';
import type { State } from '../../src/rollout/types.js';
import { waitFor } from '../../src/util/wait.js';
import { openRunner, type OpenedRunner } from '../fixtures/integration/sidecar.js';
import type { Teardown } from '../fixtures/nginx/harness.js';
import { QUIET_GATES, startStack, type Stack } from '../fixtures/stack.js';

const HOUR = 3_600_000;
/** Tick spacing, ms (the sidecar ticks at most every second). */
const TICK_MS = 500;
/** Requests sent through nginx per tick: 80 per second, 4 % of them (5 % weight) ≈ 3 canary attempts a tick. */
const PER_TICK = 40;

/** Drives one runner: each step sends traffic, feeds its log lines stamped on the ManualClock, and ticks. */
class Driver {
  readonly stack: Stack;
  readonly clock: ManualClock;
  readonly r: OpenedRunner;
  #offset = 0;

  constructor(stack: Stack, clock: ManualClock, r: OpenedRunner) {
    this.stack = stack;
    this.clock = clock;
    this.r = r;
  }

  /** Skips the lines already in the access log (from before the first tick). */
  async start(): Promise<void> {
    this.#offset = (await readFile(this.stack.config.nginx.accessLog)).length;
  }

  /** Advances both clocks by TICK_MS, sends PER_TICK requests, feeds their lines, probes and ticks. */
  async step(): Promise<ServiceStatus> {
    this.clock.advance(TICK_MS);
    const sent = await this.stack.send(PER_TICK);
    if (!sent.every((s) => s === 200)) throw new Error(`nginx answered ${sent.join(',')}`);
    const lines = await waitFor(
      async () => {
        const buf = await readFile(this.stack.config.nginx.accessLog);
        const text = buf.subarray(this.#offset).toString('utf8');
        const end = text.lastIndexOf('\n');
        if (end < 0) return null;
        const ls = text.slice(0, end).split('\n');
        if (ls.length < PER_TICK) return null;
        this.#offset += Buffer.byteLength(text.slice(0, end + 1));
        return ls;
      },
      { timeoutMs: 5000, intervalMs: 10, what: `${PER_TICK} new access-log lines` },
    );
    // Stamped as nginx on this host would: spread over the tick, on the (possibly jumped) wall clock.
    const now = this.clock.now();
    const stamped = lines.map((l, i) => {
      const at = now - TICK_MS + ((i + 1) * TICK_MS) / lines.length;
      return l.replace(/^\{"msec":"[\d.]+"/, `{"msec":"${(at / 1000).toFixed(3)}"`);
    });
    this.r.observer.addLines(stamped, now);
    await this.r.tick();
    const s = this.r.runner.status().services[0];
    if (!s) throw new Error('no service');
    return s;
  }
}

/** What one tick left: the monotonic time after it and the service's status. */
interface Tick {
  mono: number;
  status: ServiceStatus;
}

/**
 * The soak invariants over consecutive ticks at one weight: a tick adds at
 * most the monotonic time that passed (a clock jump adds nothing), the soak
 * only drops when a hold gate failed, and a step comes only once the soak
 * before it plus one tick's time reached the 4 s soak. Returns the problems.
 */
function soakProblems(ticks: readonly Tick[], soakMs: number): string[] {
  const out: string[] = [];
  for (let i = 1; i < ticks.length; i++) {
    const a = ticks[i - 1] as Tick;
    const b = ticks[i] as Tick;
    const passed = b.mono - a.mono;
    if (b.status.weight !== a.status.weight) {
      if (a.status.soakedMs + passed < soakMs)
        out.push(
          `tick ${i}: stepped ${a.status.weight} → ${b.status.weight} after only ${a.status.soakedMs} + ${passed} ms of soak`,
        );
      continue;
    }
    const grew = b.status.soakedMs - a.status.soakedMs;
    if (grew > passed) out.push(`tick ${i}: the soak grew ${grew} ms in ${passed} ms`);
    if (grew < 0 && !b.status.gates.some((g) => g.kind === 'hold' && g.verdict === 'fail'))
      out.push(`tick ${i}: the soak dropped ${a.status.soakedMs} → ${b.status.soakedMs} without a failing hold gate`);
  }
  return out;
}

/** A stack walking to 30 % with `soakMs` soaks and a 10 s gate window, and a Driver on it. */
async function setup(
  tt: Teardown,
  soakMs: number,
): Promise<{ d: Driver; ticks: Tick[]; step: () => Promise<ServiceStatus> }> {
  // QUIET_GATES: a 200 ms probe timing out, or one slow answer against the baseline, on a busy machine
  // holds or drains the walk; a clock jump, not the gates, is what this test is about.
  const stack = await startStack(tt, {
    ...QUIET_GATES,
    target: 30,
    soak: `${soakMs}ms`,
    window: '10s',
    minRequests: 10,
  });
  const clock = new ManualClock(Date.now());
  const r = await openRunner(stack.config, { clock });
  const d = new Driver(stack, clock, r);
  await d.start();
  const ticks: Tick[] = [];
  return {
    d,
    ticks,
    step: async () => {
      const status = await d.step();
      ticks.push({ mono: clock.monotonic(), status });
      return status;
    },
  };
}

t.test('the wall clock set back an hour mid-soak: no early step, the soak is kept and continues', async (t) => {
  // Soak 20 s; the jump comes after 12 s, when every bucket of the 10 s window has held traffic (as in production).
  const SOAK_MS = 20_000;
  const { d, ticks, step } = await setup(t, SOAK_MS);
  let s = await step();
  t.equal(s.weight, 5, 'first slice');
  const sliceMono = d.clock.monotonic();
  while (s.soakedMs < 12_000) {
    s = await step();
    if (d.clock.monotonic() - sliceMono > 40_000) throw new Error(`no green soak: ${s.summary}`);
  }
  t.equal(s.weight, 5);
  const kept = s.soakedMs;
  t.comment(`soaked ${kept} ms at 5 % when the clock jumps back an hour`);

  d.clock.jumpWall(-HOUR);
  const behindFrom = ticks.length;
  for (let i = 0; i < 12; i++) await step();
  const behind = ticks.slice(behindFrom).map((x) => x.status);
  t.ok(
    behind.every((x) => x.weight === 5),
    'no step while the clock is behind (6 s of ticks, less than the 8 s of soak left)',
  );
  t.ok(
    behind.every((x) => x.soakedMs >= kept),
    `the soak is not restarted by the jump (${behind.map((x) => x.soakedMs).join(', ')})`,
  );
  t.comment(`6 s behind: ${behind.at(-1)?.summary}`);

  // NTP puts the clock right again: the soak goes on from what it had; no step comes early.
  d.clock.jumpWall(HOUR);
  const rightFrom = ticks.length;
  for (let i = 0; (ticks.at(-1)?.status.weight ?? 0) < 15; i++) {
    if (i > 80) throw new Error(`no step after the clock was right: ${ticks.at(-1)?.status.summary}`);
    await step();
  }
  const right = ticks.slice(rightFrom, -1).map((x) => x.status.soakedMs);
  t.ok(
    right.every((x) => x >= kept),
    `the soak continued from ${kept} ms (${right.join(', ')})`,
  );
  const stepped = ticks.at(-1) as Tick;
  t.ok(
    stepped.mono - sliceMono >= SOAK_MS,
    `the step to 15 came ${stepped.mono - sliceMono} ms (monotonic) after the slice (soak ${SOAK_MS} ms)`,
  );
  t.same(
    soakProblems(ticks, SOAK_MS),
    [],
    'every tick: soak grows by the time that passed, never by a jump; no early step',
  );
  t.same(
    d.r.runner.state.history.filter((e) => e.kind === 'slice' || e.kind === 'step').map((e) => e.to),
    [5, 15],
  );
});

t.test('the wall clock jumps forward (less than a window) mid-soak: the soak does not skip ahead', async (t) => {
  // Soak 4 s, window 10 s: one tick could vouch for up to 10 s of soak if the jump were counted.
  const SOAK_MS = 4000;
  const { d, ticks, step } = await setup(t, SOAK_MS);
  let s = await step();
  t.equal(s.weight, 5, 'first slice');
  const sliceMono = d.clock.monotonic();
  while (s.soakedMs < 1000) {
    s = await step();
    if (d.clock.monotonic() - sliceMono > 20_000) throw new Error(`no green soak: ${s.summary}`);
  }
  const before = s.soakedMs;
  d.clock.jumpWall(5000);
  s = await step();
  t.equal(s.weight, 5, 'no step at the jump');
  t.ok(
    s.soakedMs <= before + TICK_MS,
    `one tick adds at most the ${TICK_MS} ms that passed, not the 5 s jump (${before} → ${s.soakedMs})`,
  );
  for (let i = 0; s.weight === 5; i++) {
    if (i > 60) throw new Error(`no step: ${s.summary}`);
    s = await step();
  }
  const stepMono = d.clock.monotonic();
  t.ok(
    stepMono - sliceMono >= SOAK_MS,
    `the step came ${stepMono - sliceMono} ms (monotonic) after the slice (soak 4 s)`,
  );
  t.same(soakProblems(ticks, SOAK_MS), [], 'every tick: soak grows by the time that passed, never by a jump');
});

t.test(
  'shiftClockAnchors moves since, lastTickAt, the ramp start and lastReloadAt; history keeps its times',
  async (t) => {
    const at = 1_700_000_000_000;
    const state: State = {
      version: 1,
      generation: 3,
      lastReloadAt: at,
      services: {
        gateway: {
          weight: 5,
          phase: 'slice',
          resumePhase: null,
          pausedBy: null,
          target: 30,
          since: at,
          soakedMs: 1234,
          lastTickAt: at + 500,
          drainReason: null,
          ramp: { to: 5, step: 1, steps: 3, startedAt: at, cause: 'slice' },
        },
      },
      history: [{ at, service: 'gateway', kind: 'slice', from: 0, to: 5, reason: 'x', gates: [] }],
    };
    const back = shiftClockAnchors(state, -HOUR);
    t.match(back, {
      lastReloadAt: at - HOUR,
      services: {
        gateway: { since: at - HOUR, lastTickAt: at + 500 - HOUR, soakedMs: 1234, ramp: { startedAt: at - HOUR } },
      },
    });
    t.same(back.history, state.history);
    t.equal(shiftClockAnchors({ ...state, lastReloadAt: 0 }, HOUR).lastReloadAt, 0, 'never reloaded stays 0');
    t.equal(CLOCK_JUMP_MS, 1000);
  },
);
