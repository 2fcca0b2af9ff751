// `nginx-canary status --watch` (src/cli/watch.ts): the pure frame renderer,
// the loop with injected fetch/clock/sleep/output, and the real binary end to
// end against a real sidecar walking a real nginx — piped (plain blocks on
// change, no escape codes) and through a pseudo-terminal (util-linux
// `script`: redraw in place, colour, NO_COLOR).
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { ManualClock } from '../../src/clock.js';
import { CanaryError, errors } from '../../src/errors.js';
import {
  ANSI,
  fitLine,
  parseInterval,
  renderWatch,
  useColor,
  visibleWidth,
  watchKey,
  watchLoop,
  type WatchDeps,
} from '../../src/cli/watch.js';
import type { ServiceStatus, StatusDocument } from '../../src/runner.js';
import type { GateResult, RolloutEvent } from '../../src/rollout/types.js';
import { waitFor } from '../../src/util/wait.js';
import { binPath, startStack, userEnv } from '../fixtures/stack.js';
import { cli } from '../fixtures/integration/sidecar.js';
import { gateResult, serviceStatus } from '../fixtures/status.js';

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5);
const ESC = '\u001b';
/** SGR sequences (colour, bold, faint, reset). */
const SGR = new RegExp(`${ESC}\\[[0-9;]*m`);

function gate(over: Partial<GateResult> = {}): GateResult {
  return gateResult({ samples: 60, minSamples: 20, ...over });
}

const GATES: GateResult[] = [
  gate({ gate: 'ready', kind: 'hold', value: 1, threshold: 1, samples: 1, minSamples: 1 }),
  gate({ gate: 'connect_p95', kind: 'hold', verdict: 'inconclusive', value: null, threshold: 120, samples: 12 }),
  gate({
    verdict: 'fail',
    value: 0.05,
    samples: 200,
    detail: { errors: 10, statistic: 13.08, bound: 7.6, multiple: 6 },
  }),
];

function service(over: Partial<ServiceStatus> = {}): ServiceStatus {
  return serviceStatus({
    since: T0 - 3200,
    soakedMs: 400,
    soakNeededMs: 1000,
    summary: 'soaking at 15 %: 0.4 s of 1.0 s',
    gates: GATES,
    ...over,
  });
}

function event(i: number, over: Partial<RolloutEvent> = {}): RolloutEvent {
  return {
    at: T0 - (10 - i) * 1000,
    service: 'gateway',
    kind: 'step',
    from: i,
    to: i + 1,
    reason: `reason ${i}`,
    gates: [],
    ...over,
  };
}

function doc(svc: Partial<ServiceStatus> = {}, history: RolloutEvent[] = []): StatusDocument {
  return { generation: 7, lastReloadAt: T0 - 3200, services: [service(svc)], history };
}

const plain = { now: T0, color: false, width: 80 };
/** Wide enough that no line is cut. */
const wide = { ...plain, width: 200 };

/** The bar of the first service line: [filled, empty] cell counts. */
function bar(text: string): [number, number] {
  const m = /\[([█░]+)\]/.exec(text.replace(new RegExp(SGR.source, 'g'), ''));
  const cells = m?.[1] ?? '';
  return [[...cells].filter((c) => c === '█').length, [...cells].filter((c) => c === '░').length];
}

t.test('renderWatch: the bar is the walk toward the target', async (t) => {
  t.same(bar(renderWatch(doc(), plain)), [15, 15], '15 % of a walk to 30 %: half of 30 cells');
  t.same(bar(renderWatch(doc({ weight: 5 }), plain)), [5, 25], '5 of 30 → 5 of 30 cells');
  t.same(bar(renderWatch(doc({ weight: 30, phase: 'complete' }), plain)), [30, 0], 'at the target: full');
  t.same(bar(renderWatch(doc({ weight: 40 }), plain)), [30, 0], 'above the target (lowering): full, not more');
  t.same(bar(renderWatch(doc({ weight: 0, phase: 'drained' }), plain)), [0, 30], 'drained: empty');
  t.same(bar(renderWatch(doc({ weight: 0, target: 0, phase: 'idle' }), plain)), [30, 0], 'target 0 at 0: done');
  t.same(bar(renderWatch(doc({ weight: 5, target: 0 }), plain)), [0, 30], 'target 0 above 0: not done');
  t.same(bar(renderWatch(doc(), { ...plain, width: 66 })), [8, 8], 'width 66: 16 cells');
  t.same(bar(renderWatch(doc(), { ...plain, width: 40 })), [5, 5], 'narrow: at least 10 cells');
  t.same(bar(renderWatch(doc(), { ...plain, width: Infinity })), [15, 15], 'piped: 30 cells');
  t.match(
    renderWatch(doc(), plain),
    /^gateway {2}\[[█░]{30}\] {2}15 % → 30 % {2}step$/m,
    'weight and target in percent',
  );
});

t.test('renderWatch: time left in the soak', async (t) => {
  t.match(renderWatch(doc(), plain), /^ {2}soak 0\.6 s left \(0\.4 s of 1\.0 s green\)$/m, 'needed − soaked');
  t.match(
    renderWatch(doc({ phase: 'slice', soakedMs: 3_600_000, soakNeededMs: 48 * 3_600_000 }), plain),
    /soak 47h 0m left \(1h 0m of 48h 0m green\)/,
    'a slice soak in hours',
  );
  t.match(renderWatch(doc({ soakedMs: 1000 }), plain), /^ {2}soak done \(1\.0 s\)$/m, 'soaked enough: done');
  for (const phase of ['complete', 'paused', 'drained', 'idle'] as const) {
    t.notMatch(renderWatch(doc({ phase }), plain), /^ {2}soak /m, `${phase}: no soak line`);
  }
  t.notMatch(
    renderWatch(doc({ phase: 'step', weight: 30, soakedMs: 14_400, soakNeededMs: 5000 }), plain),
    /^ {2}soak /m,
    'at the target: no soak line, whatever the phase says',
  );
  const ramp = renderWatch(doc({ ramp: { to: 5, step: 2, steps: 5, startedAt: T0, cause: 'slice' } }), plain);
  t.match(ramp, /ramp \(slow_start emulation, slice\): sub-step 2 of 5 toward 5 %/);
  t.notMatch(ramp, /^ {2}soak /m, 'ramping: the soak has not started');
});

t.test('renderWatch: gates, summary, events', async (t) => {
  const text = renderWatch(
    doc({}, [event(1), event(2, { kind: 'drain', to: 0 }), ...[3, 4, 5, 6, 7].map((i) => event(i))]),
    wide,
  );
  const lines = text.split('\n');
  t.equal(lines[0], 'generation 7 · last reload 3.2 s ago');
  t.ok(lines.includes('  soaking at 15 %: 0.4 s of 1.0 s'), 'the summary');
  t.match(text, /^ {2}gate +kind +value +threshold +samples +verdict$/m, 'a header row');
  t.match(text, /^ {2}ready +hold +200 +200 +1\/1 +pass$/m, '/ready as 200');
  t.match(text, /^ {2}connect_p95 +hold +— +120 ms +12\/20 +inconclusive$/m, 'unknown value as —');
  t.match(text, /^ {2}error_ratio +drain +5\.00 % +0\.50 % +200\/20 +fail$/m, 'ratio against threshold in percent');
  t.match(text, /^ {4}connect_p95 inconclusive: canary 12 of 20 requests$/m, 'describeGate beneath a gate that holds');
  t.match(text, /^ {4}error_ratio fail: .*sequential test 13\.08 ≥ bound 7\.60/m, 'and beneath one that drains');
  t.notMatch(text, /ready pass:/, 'not beneath a passing gate');
  const at = lines.indexOf('recent events, newest first');
  t.ok(at > 0, 'an events section');
  t.same(
    lines.slice(at + 1).map((l) => l.trim()),
    [
      '3.0 s ago  gateway step 7 → 8: reason 7',
      '4.0 s ago  gateway step 6 → 7: reason 6',
      '5.0 s ago  gateway step 5 → 6: reason 5',
      '6.0 s ago  gateway step 4 → 5: reason 4',
      '7.0 s ago  gateway step 3 → 4: reason 3',
    ],
    'the newest 5, newest first, aged from now',
  );
  t.match(renderWatch(doc({ gates: [] }), plain), /^ {2}gates not judged yet$/m, 'no gates yet');
  const drained = renderWatch(
    { ...doc({ weight: 0, phase: 'drained', drainReason: 'error_ratio' }), lastReloadAt: 0 },
    wide,
  );
  t.match(drained, /^generation 7 · last reload never$/m, 'no reload yet');
  t.match(drained, / {2}0 % → 30 % {2}drained \(drained: error_ratio\)$/m, 'the drain reason');
  t.match(renderWatch(doc({ phase: 'paused', pausedBy: 'operator' }), plain), / {2}paused \(by operator\)$/m);
  t.match(
    renderWatch(doc({ gates: [gate({ pool: 'primary' })] }), plain),
    /^ {2}error_ratio \(primary\) +drain/m,
    'a gate on another pool names it',
  );
});

t.test('renderWatch: colour on and off', async (t) => {
  const on = renderWatch(doc({}, [event(1, { kind: 'drain' }), event(2, { kind: 'hold' })]), { ...plain, color: true });
  t.ok(on.includes(`${ANSI.green}pass${ANSI.reset}`), 'pass in green');
  t.ok(on.includes(`${ANSI.red}fail${ANSI.reset}`), 'fail in red');
  t.ok(on.includes(`${ANSI.yellow}inconclusive${ANSI.reset}`), 'inconclusive in yellow');
  t.ok(on.includes(`${ANSI.red}drain${ANSI.reset}`), 'a drain event in red');
  t.ok(on.includes(`${ANSI.yellow}hold${ANSI.reset}`), 'a hold event in yellow');
  t.ok(on.includes(`[${ANSI.green}${'█'.repeat(15)}${ANSI.reset}`), 'a walking bar in green');
  const drained = renderWatch(doc({ weight: 5, phase: 'drained', drainReason: 'error_ratio' }), {
    ...wide,
    color: true,
  });
  t.ok(drained.includes(`${ANSI.red}drained (drained: error_ratio)${ANSI.reset}`), 'drained in red');
  t.ok(drained.includes(`${ANSI.red}soaking at 15 %`), 'its summary in red');
  const paused = renderWatch(doc({ phase: 'paused' }), { ...plain, color: true });
  t.ok(paused.includes(`${ANSI.yellow}paused${ANSI.reset}`), 'paused in yellow');
  t.ok(paused.includes(`[${ANSI.yellow}█`), 'a paused bar in yellow');
  t.ok(
    renderWatch(doc({ phase: 'complete', weight: 30 }), { ...plain, color: true }).includes(
      `${ANSI.green}complete${ANSI.reset}`,
    ),
    'complete in green',
  );
  for (const d of [doc({}, [event(1, { kind: 'drain' })]), doc({ phase: 'drained' }), doc({ phase: 'paused' })]) {
    t.notOk(renderWatch(d, plain).includes(ESC), 'colour off: no escape byte at all');
    t.notOk(renderWatch(d, { ...plain, width: Infinity }).includes(ESC), 'piped width: no escape byte');
  }
});

t.test('renderWatch: width respected', async (t) => {
  const d = doc({}, [event(1, { reason: 'x'.repeat(200) })]);
  for (const width of [40, 50, 66, 100]) {
    for (const color of [false, true]) {
      const lines = renderWatch(d, { now: T0, color, width }).split('\n');
      const over = lines.filter((l) => visibleWidth(l) > width);
      t.same(over, [], `width ${width}, colour ${color}: no line wider`);
      t.ok(
        lines.some((l) => l.replace(new RegExp(SGR.source, 'g'), '').endsWith('…')),
        'a cut line ends in …',
      );
    }
  }
  const uncut = renderWatch(d, { ...plain, width: Infinity });
  t.ok(uncut.includes('x'.repeat(200)), 'Infinity: nothing cut');
  t.ok(uncut.includes('sequential test 13.08 ≥ bound 7.60 vs 6× threshold)'), 'every number kept');
});

t.test('fitLine and visibleWidth', async (t) => {
  t.equal(visibleWidth(`${ANSI.green}pass${ANSI.reset} → ok`), 9, 'escapes are zero width, → one');
  t.equal(fitLine('abcdef', 6), 'abcdef', 'fits');
  t.equal(fitLine('abcdefg', 6), 'abcde…', 'cut to 5 and …');
  t.equal(
    fitLine(`${ANSI.red}abcdefg${ANSI.reset}`, 4),
    `${ANSI.red}abc…${ANSI.reset}`,
    'escapes kept, reset after a cut',
  );
  t.equal(fitLine('ab→cdef', 4), 'ab→…', 'code points, not UTF-16 units');
  t.equal(fitLine('abc', 0), '', 'zero width: nothing');
});

t.test('watchKey: what counts as a change', async (t) => {
  const base = watchKey(doc());
  t.equal(watchKey(doc({ soakedMs: 800, summary: 'soaking at 15 %: 0.8 s of 1.0 s' })), base, 'a soak tick is not');
  t.not(watchKey(doc({ weight: 25 })), base, 'the weight is');
  t.not(watchKey(doc({ phase: 'paused' })), base, 'the phase is');
  t.not(watchKey(doc({ target: 50 })), base, 'the target is');
  t.not(watchKey(doc({ gates: [...GATES.slice(0, 2), gate()] })), base, 'a verdict is');
  t.not(watchKey(doc({ summary: 'holding at 15 %: connect_p95 inconclusive' })), base, 'another summary is');
  t.not(watchKey(doc({}, [event(1)])), base, 'a new event is');
  t.not(watchKey({ ...doc(), generation: 8 }), base, 'a reload is');
});

t.test('parseInterval and useColor', async (t) => {
  t.equal(parseInterval('200ms'), 200);
  t.equal(parseInterval('1s'), 1000);
  t.equal(parseInterval(' 1.5s '), 1500);
  t.equal(parseInterval('1h'), 3_600_000);
  for (const bad of ['5', '50ms', '2h', 'fast', '-1s', '']) {
    let caught: unknown;
    try {
      parseInterval(bad);
    } catch (err) {
      caught = err;
    }
    t.ok(
      caught instanceof CanaryError && caught.code === 'NC_USAGE' && caught.exitCode === 2,
      `"${bad}" is a usage error`,
    );
  }
  t.equal(useColor(true, true, {}), true, 'a TTY without NO_COLOR: colour');
  t.equal(useColor(true, true, { NO_COLOR: '' }), true, 'NO_COLOR empty: colour (no-color.org)');
  t.equal(useColor(true, true, { NO_COLOR: '1' }), false, 'NO_COLOR=1: none');
  t.equal(useColor(false, true, {}), false, '--no-color: none');
  t.equal(useColor(true, false, {}), false, 'piped: none');
});

/** A scripted loop: `script` answers the polls in order (an Error = a failed poll), then the loop is aborted. */
function scripted(script: (StatusDocument | Error)[], size = { columns: 0, rows: 0 }) {
  const clock = new ManualClock(T0);
  const ac = new AbortController();
  const writes: string[] = [];
  let polls = 0;
  const deps: WatchDeps = {
    fetch: async () => {
      const next = script[polls++];
      if (next instanceof Error) throw next;
      if (next === undefined) throw new Error('polled past the script');
      return next;
    },
    write: (s) => writes.push(s),
    clock,
    sleep: async (ms) => {
      clock.advance(ms);
      if (polls >= script.length) ac.abort();
    },
    size: () => size,
  };
  return { deps, ac, writes, polls: () => polls };
}

const down = errors.sidecarUnreachable('http://127.0.0.1:9464', new Error('ECONNREFUSED'));

t.test('watchLoop piped: a block per change, one line per outage', async (t) => {
  const a = doc();
  const aTick = doc({ soakedMs: 800, summary: 'soaking at 15 %: 0.8 s of 1.0 s' });
  const b = doc({ weight: 25, soakedMs: 0 });
  const s = scripted([a, aTick, down, down, aTick, b, b]);
  await watchLoop(s.deps, {
    intervalMs: 1000,
    tty: false,
    color: true,
    url: 'http://127.0.0.1:9464',
    signal: s.ac.signal,
  });
  t.equal(s.polls(), 7, 'every poll ran');
  const out = s.writes.join('');
  t.notOk(out.includes(ESC), 'no escape byte, colour asked or not');
  t.ok(
    s.writes.every((w) => w.endsWith('\n\n')),
    'every block ends in a blank line',
  );
  const stamps = s.writes.map((w) => w.split('\n')[0]);
  t.same(
    stamps,
    [0, 2000, 4000, 5000].map((ms) => new Date(T0 + ms).toISOString()),
    'blocks at the first poll, the outage, the return and the step — not at the soak tick',
  );
  t.equal(
    s.writes[1],
    `${new Date(T0 + 2000).toISOString()}\nthe sidecar does not answer at http://127.0.0.1:9464; retrying every 1.0 s. Start it with \`nginx-canary run\` (or check sidecar.listen in weights.yaml)\n\n`,
    'the outage in one line: the URL, the retry, the fix',
  );
  t.match(s.writes[3], /^gateway {2}\[[█░]+\] {2}25 % → 30 %/m, 'the step shows the new weight');
});

t.test('watchLoop on a TTY: redraws in place, cursor hidden then restored', async (t) => {
  const s = scripted([doc(), new Error('socket hang up'), doc({ phase: 'drained', weight: 0 })], {
    columns: 60,
    rows: 12,
  });
  await watchLoop(s.deps, {
    intervalMs: 200,
    tty: true,
    color: true,
    url: 'http://127.0.0.1:9464',
    signal: s.ac.signal,
  });
  t.equal(s.writes.length, 4, 'three frames and the restore');
  const [f1, f2, f3, end] = s.writes as [string, string, string, string];
  t.ok(f1.startsWith(`${ANSI.hideCursor}${ANSI.home}`), 'the first frame hides the cursor and goes home');
  for (const f of [f2, f3]) t.ok(f.startsWith(ANSI.home), 'later frames go home without hiding again');
  for (const f of [f1, f2, f3]) {
    t.ok(f.endsWith(`${ANSI.clearToEnd}\n`), 'each frame clears what is below it');
    const lines = f.split('\n').slice(0, -1);
    t.ok(lines.length <= 11, 'at most rows − 1 lines');
    t.ok(
      lines.every((l) => l.endsWith(ANSI.clearLine) || l.endsWith(ANSI.clearToEnd)),
      'each line clears its rest',
    );
    t.ok(
      lines.every((l) => visibleWidth(l) <= 60),
      'no line wider than the terminal',
    );
  }
  t.ok(
    f1.includes(`${ANSI.bold}http://127.0.0.1:9464${ANSI.reset}  every 0.2 s  03:04:05 UTC  `),
    'a header: the URL, the interval, the time',
  );
  t.ok(f2.includes(`${ANSI.red}socket hang up; retrying every 0.2 s.`), 'a failed poll shown as the frame');
  t.ok(f3.includes(`${ANSI.red}drained`), 'drained in red');
  t.equal(end, `${ANSI.showCursor}\n`, 'the cursor shown again at the end');
});

t.test('watchLoop: no colour codes with color off, the redraw stays', async (t) => {
  const s = scripted([doc(), doc()]);
  await watchLoop(s.deps, { intervalMs: 200, tty: true, color: false, url: 'http://x', signal: s.ac.signal });
  const out = s.writes.join('');
  t.notMatch(out, SGR, 'no SGR sequence');
  t.equal(out.split(ANSI.home).length - 1, 2, 'two redraws');
  t.ok(
    s.writes[0]!.split('\n').some((l) => visibleWidth(l) > 60),
    'unknown columns: 80 wide',
  );
});

t.test('watchLoop: an abort ends a poll in flight; a throwing sleep still restores the cursor', async (t) => {
  const ac = new AbortController();
  let fetched = false;
  const hung: WatchDeps = {
    fetch: () => {
      fetched = true;
      return new Promise<StatusDocument>(() => undefined);
    },
    write: () => t.fail('nothing drawn'),
    clock: new ManualClock(T0),
    sleep: async () => undefined,
    size: () => ({ columns: 80, rows: 24 }),
  };
  const run = watchLoop(hung, { intervalMs: 1000, tty: true, color: true, url: 'http://x', signal: ac.signal });
  await waitFor(() => fetched, { timeoutMs: 2000, what: 'the first poll' });
  ac.abort();
  await t.resolves(run, 'the loop ended with its poll still hanging');

  const writes: string[] = [];
  const s = scripted([doc(), doc()]);
  s.deps.write = (w) => writes.push(w);
  s.deps.sleep = async () => {
    throw new Error('timer broke');
  };
  await t.rejects(
    watchLoop(s.deps, { intervalMs: 1000, tty: true, color: true, url: 'http://x', signal: s.ac.signal }),
    /timer broke/,
  );
  t.equal(writes.at(-1), `${ANSI.showCursor}\n`, 'cursor restored on the way out');

  const ac2 = new AbortController();
  ac2.abort();
  const none = scripted([doc()]);
  await watchLoop(none.deps, { intervalMs: 1000, tty: true, color: true, url: 'http://x', signal: ac2.signal });
  t.same(none.writes, [], 'aborted before the first poll: nothing written, nothing to restore');
});

t.test('status flags: usage errors exit 2 before anything is read', async (t) => {
  const file = '/nonexistent/weights.yaml';
  const both = await cli(['-c', file, 'status', '--watch', '--json']);
  t.equal(both.code, 2, '--watch with --json');
  t.match(both.err, /--watch and --json do not combine/);
  const lone = await cli(['-c', file, 'status', '--interval', '2s']);
  t.equal(lone.code, 2, '--interval without --watch');
  t.match(lone.err, /--interval applies only to --watch.*status --watch --interval 2s/s);
  const bad = await cli(['-c', file, 'status', '--watch', '--interval', '5']);
  t.equal(bad.code, 2, 'a bare number');
  t.match(bad.err, /--interval "5" is not a duration from 100ms to 1h\. Give it in the weights\.yaml syntax/);
  const help = await cli(['status', '--help']);
  t.match(help.out, /--watch/);
  t.match(help.out, /--interval <duration>/);
  t.match(help.out, /--no-color/);
});

// ---- the real binary against a real sidecar ----

/** A spawned CLI with its output captured and a bounded wait for its exit. */
function watch(args: string[], env: NodeJS.ProcessEnv, viaScript: boolean) {
  const argv = [binPath, ...args];
  const child: ChildProcess = viaScript
    ? spawn(
        '/usr/bin/script',
        [
          '-qfec',
          // A pseudo-terminal of known size; exec so ^C reaches node as the foreground process.
          `stty cols 100 rows 60; exec ${[process.execPath, ...argv].map((a) => `'${a}'`).join(' ')}`,
          '/dev/null',
        ],
        { env, stdio: ['pipe', 'pipe', 'pipe'] },
      )
    : spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    out: () => out,
    err: () => err,
    /** Resolves to the exit code; kills it and rejects after `timeoutMs`. */
    async exit(timeoutMs = 10_000): Promise<number | null> {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`still running ${timeoutMs} ms after the stop; output:\n${out}\n${err}`));
        }, timeoutMs);
      });
      try {
        return await Promise.race([exited, late]);
      } finally {
        clearTimeout(timer);
      }
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** The weights of the `gateway` lines in piped output, in order. */
function weightsIn(out: string): number[] {
  return [...out.matchAll(/^gateway {2}\[[█░]+\] {2}([\d.]+) % → 30 %/gm)].map((m) => Number(m[1]));
}

t.test('the binary: piped, then through a pseudo-terminal', async (t) => {
  const stack = await startStack(t, { target: 30 });
  const env = userEnv();
  delete env['NO_COLOR'];
  const args = ['-c', stack.configFile, 'status', '--watch', '--interval', '200ms'];

  t.test('piped: plain blocks on change, the walk seen stepping, SIGINT exits 0', async (t) => {
    const w = watch(args, env, false);
    t.teardown(() => w.kill());
    // Started before the sidecar: says so in one line and keeps retrying.
    await waitFor(() => w.out().includes('the sidecar does not answer at'), {
      timeoutMs: 10_000,
      what: 'the unreachable line',
    });
    t.match(
      w.out(),
      new RegExp(`does not answer at ${stack.api.replace(/\./g, '\\.')}; retrying every 0\\.2 s\\. Start it with`),
    );
    await stack.startSidecar();
    const traffic = stack.traffic();
    t.teardown(() => traffic.stop());
    const seen = await waitFor(
      () => {
        const ws = weightsIn(w.out());
        return ws.at(-1) === 30 && /complete/.test(w.out()) ? ws : null;
      },
      { timeoutMs: 40_000, intervalMs: 100, what: 'the watch to show weight 30, complete' },
    );
    await traffic.stop();
    const distinct = [...new Set(seen)];
    t.ok(distinct.length >= 3, `the weight changed as the walk stepped: ${distinct.join(' → ')}`);
    t.same(
      [...distinct].sort((x, y) => x - y),
      distinct,
      'and only upwards',
    );
    t.equal(w.out().split('the sidecar does not answer').length - 1, 1, 'the outage said once, not per poll');
    w.child.kill('SIGINT');
    t.equal(await w.exit(), 0, 'SIGINT exits 0');
    const out = w.out();
    t.notOk(out.includes(ESC), 'no escape byte in piped output');
    const lines = out.split('\n');
    const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
    t.match(lines[0], iso, 'the output starts with an ISO time line');
    const stamps = lines.flatMap((l, i) => (iso.test(l) ? [i] : []));
    t.ok(
      stamps.every((i) => i === 0 || lines[i - 1] === ''),
      'each time line opens a block after a blank line',
    );
    const gatewayLines = lines.filter((l) => l.startsWith('gateway  ['));
    t.equal(gatewayLines.length, stamps.length - 1, 'one block per time line (the outage line has none)');
    // Printed per poll, two blocks in a row would differ only in numbers (ages, counts, soak).
    const masked = stamps.map((at, k) =>
      lines
        .slice(at + 1, stamps[k + 1] ?? lines.length)
        .join('\n')
        .replace(/\d+/g, '#'),
    );
    const repeats = masked.filter((b, k) => k > 0 && b === masked[k - 1]).length;
    t.equal(repeats, 0, `a block only on change: ${stamps.length} blocks, none repeating the one before`);
    t.equal(w.err(), '', 'nothing on stderr');
  });

  /** Runs the watch in a pseudo-terminal until three frames show `gateway`, then ^C; returns all it wrote. */
  async function throughPty(t: Test, childEnv: NodeJS.ProcessEnv): Promise<string> {
    if (stack.sidecar === null) await stack.startSidecar();
    const w = watch(args, childEnv, true);
    t.teardown(() => w.kill());
    await waitFor(() => w.out().split(ANSI.home).length > 3 && w.out().includes('gateway'), {
      timeoutMs: 15_000,
      what: 'three redraws',
    });
    w.child.stdin?.write('\x03');
    t.equal(await w.exit(), 0, '^C exits 0');
    return w.out();
  }

  t.test('through a pseudo-terminal: redraw in place, colour, ^C exits 0 and restores the cursor', async (t) => {
    const out = await throughPty(t, env);
    t.ok(out.startsWith(`${ANSI.hideCursor}${ANSI.home}`), 'the cursor hidden, then home');
    t.ok(out.includes(ANSI.clearLine) && out.includes(ANSI.clearToEnd), 'lines and the rest of the screen cleared');
    t.ok(out.includes(ANSI.showCursor), 'the cursor shown again after ^C');
    t.ok(out.indexOf(ANSI.showCursor) > out.lastIndexOf(ANSI.home), 'after the last frame');
    t.ok(out.includes(`${ANSI.green}pass${ANSI.reset}`), 'passing gates in green');
    t.ok(out.includes(`${ANSI.green}complete${ANSI.reset}`), 'the complete phase in green');
    t.match(out, /\[[^\]]*█{30}/, 'a full bar of 30 cells at 100 columns');
  });

  t.test('through a pseudo-terminal with NO_COLOR=1: no colour, still redrawn', async (t) => {
    const out = await throughPty(t, { ...env, NO_COLOR: '1' });
    t.notMatch(out, SGR, 'no SGR sequence');
    t.ok(out.split(ANSI.home).length > 3, 'redrawn in place');
    t.ok(out.includes(ANSI.showCursor), 'the cursor restored');
    t.match(out, /complete/);
  });
});
