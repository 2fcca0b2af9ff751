import t from 'tap';
import { runCommand } from '../../src/util/exec.js';

t.test('runCommand runs without a shell and reports code and output', async (t) => {
  const ok = await runCommand([process.execPath, '-e', 'console.log("out"); console.error("err")'], 10_000);
  t.match(ok, { code: 0, timedOut: false, output: 'out\nerr' });
  const fail = await runCommand([process.execPath, '-e', 'process.exit(4)'], 10_000);
  t.match(fail, { code: 4, timedOut: false });
  const literal = await runCommand(['echo', '$HOME; rm -rf /'], 10_000);
  t.equal(literal.output, '$HOME; rm -rf /', 'arguments are not interpreted by a shell');
  const missing = await runCommand(['/nonexistent/deploy-tool'], 10_000);
  t.match(missing, { code: null, output: /ENOENT/ });
});

t.test('a command past its timeout is killed', async (t) => {
  const r = await runCommand([process.execPath, '-e', 'setTimeout(() => {}, 60_000)'], 300);
  t.match(r, { code: null, timedOut: true });
  t.ok(r.durationMs < 10_000, `killed after ${Math.round(r.durationMs)} ms`);
});

t.test('bad arguments throw', async (t) => {
  t.throws(() => runCommand([], 1000), RangeError);
  t.throws(() => runCommand(['true'], 0), RangeError);
});
