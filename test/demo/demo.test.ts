// The demo must not outlive a failed start: backends already listening are
// closed when a later one cannot bind (they would keep the process alive).
import t from 'tap';
import net from 'node:net';
import path from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { runDemo } from '../../src/demo/demo.js';
import { freePort } from '../fixtures/nginx/harness.js';

/** True when 127.0.0.1:port can be bound now. */
function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

t.test('a canary port already taken: the demo fails and closes the primary it had started', async (t) => {
  const dir = t.testdir();
  const [primary, canary] = [await freePort(), await freePort()];
  const yaml = (await readFile(path.join(import.meta.dirname, '../../weights.yaml'), 'utf8'))
    .replace('127.0.0.1:18789', `127.0.0.1:${primary}`)
    .replace('127.0.0.1:18890', `127.0.0.1:${canary}`)
    .replaceAll('.run/', `${dir}/run/`)
    .replace('conf: nginx/nginx.conf', `conf: ${path.join(import.meta.dirname, '../../nginx/nginx.conf')}`)
    .replace(
      'upstreams_file: nginx/conf.d/',
      `upstreams_file: ${path.join(import.meta.dirname, '../../nginx/conf.d/')}`,
    );
  const file = path.join(dir, 'weights.yaml');
  await writeFile(file, yaml);
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(canary, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const out: string[] = [];
  const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s) };
  await t.rejects(runDemo(file, { io }), { code: 'EADDRINUSE' }, 'the taken port is the error');
  t.ok(await free(primary), 'the primary backend it had started is closed again');
});
