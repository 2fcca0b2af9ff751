// bench/lib/proc.ts: the /proc/<pid>/status parse on hand-made and real files, and the readers on
// this test's own process and on a child that has exited (real /proc; skipped off Linux).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { clockTicks, cpuOf, hostCpu, loadAverage, memOf, parseStatusMemory, resetPeak } from '../../bench/lib/proc.js';
import { waitFor } from '../../src/util/wait.js';

const linux = process.platform === 'linux' && existsSync('/proc/self/status');

t.test('parseStatusMemory: kB lines to MiB; null without VmRSS', (t) => {
  const text = [
    'Name:\tnode',
    'VmPeak:\t 1000000 kB',
    'VmHWM:\t  131072 kB',
    'VmRSS:\t  102400 kB',
    'RssAnon:\t   51200 kB',
    'RssFile:\t   49152 kB',
    'RssShmem:\t    2048 kB',
  ].join('\n');
  t.same(parseStatusMemory(text), { rss: 100, hwm: 128, anon: 50, file: 48 });
  t.same(
    parseStatusMemory('Name:\tnode\nVmRSS:\t 1024 kB\n'),
    { rss: 1, hwm: 0, anon: 0, file: 0 },
    'an old kernel without Rss*',
  );
  t.equal(parseStatusMemory('Name:\tkthreadd\nState:\tS (sleeping)\n'), null, 'a kernel thread has no Vm* lines');
  t.end();
});

t.test('the readers on this process', { skip: !linux && 'needs Linux /proc' }, async (t) => {
  const real = parseStatusMemory(await readFile('/proc/self/status', 'utf8'));
  t.ok(real && real.rss > 0 && real.hwm >= real.rss && real.anon > 0 && real.file > 0, 'a real status file parses');
  const m = await memOf(process.pid);
  t.ok(m && m.rss > 0 && Math.abs(m.rss - m.anon - m.file) < m.rss * 0.2, 'VmRSS ≈ RssAnon + RssFile (+ RssShmem)');
  const ticks = await clockTicks();
  t.ok(ticks > 0);
  const c = await cpuOf(process.pid, ticks);
  t.ok(c && c.self > 0, 'this process has used CPU');
  const h = await hostCpu();
  t.ok(h.total > 0 && h.busy > 0 && h.busy <= h.total);
  const la = await loadAverage();
  t.ok(la && la.every((x) => x >= 0));
});

t.test('resetPeak lowers VmHWM to VmRSS', { skip: !linux && 'needs Linux /proc' }, async (t) => {
  // A child that touches 64 MiB, frees it (a large Buffer is its own mmap, unmapped when collected),
  // then says so and waits: its VmHWM is then ~64 MiB above its VmRSS. V8 frees an ArrayBuffer's
  // backing store on a background thread after the GC, so the unmap can land after 'ready' (seen on a
  // loaded CI box: VmRSS still 93 MiB): wait for it, with a deadline.
  const code =
    "let b = Buffer.alloc(64 * 2 ** 20, 1); b = null; globalThis.gc(); process.stdout.write('ready\\n'); setTimeout(() => {}, 30000);";
  const child = spawn(process.execPath, ['--expose-gc', '-e', code], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => void child.kill('SIGKILL'));
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const pid = child.pid ?? -1;
  const before = await waitFor(
    async () => {
      const m = await memOf(pid);
      return m !== null && m.hwm - m.rss > 40 ? m : undefined;
    },
    { timeoutMs: 10_000, what: 'the 64 MiB unmapped' },
  ).catch(() => memOf(pid));
  t.ok(
    before && before.hwm - before.rss > 40,
    `peak above the present: VmHWM ${before?.hwm} MiB, VmRSS ${before?.rss} MiB`,
  );
  t.ok(await resetPeak(pid), 'clear_refs 5 is writable for our own child');
  const after = await memOf(pid);
  t.ok(after && after.hwm - after.rss < 5, `VmHWM reset to VmRSS: ${after?.hwm} MiB, ${after?.rss} MiB`);
});

t.test('a process that has exited reads as null', { skip: !linux && 'needs Linux /proc' }, async (t) => {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  const pid = child.pid ?? -1;
  await new Promise((resolve) => child.once('exit', resolve));
  t.equal(await memOf(pid), null);
  t.equal(await cpuOf(pid, 100), null);
  t.equal(await resetPeak(pid), false);
});
