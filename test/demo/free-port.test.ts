// The demo's freePort (src/demo/etcd.ts) never hands out one port twice in a process: the fleet demo
// draws a host's nginx, status and API ports before it binds any, and two draws from its 12,000 ports
// met once in CI (nginx and the sidecar's API on one port). 300 draws collide with probability ~97 %
// without the rule (1 − e^(−300²/24,000)), so this fails on a regression in nearly every run.
import t from 'tap';
import net from 'node:net';
import { freePort } from '../../src/demo/etcd.js';

t.test('freePort: 300 draws, all distinct, each bindable on 127.0.0.1 when drawn', async (t) => {
  const ports: number[] = [];
  for (let i = 0; i < 300; i++) ports.push(await freePort());
  t.equal(new Set(ports).size, ports.length, 'no port twice');
  t.ok(
    ports.every((p) => p >= 20_000 && p < 32_000),
    'below the ephemeral range',
  );
  const last = ports.at(-1) ?? 0;
  const srv = net.createServer();
  await t.resolves(
    new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(last, '127.0.0.1', resolve);
    }),
    `the last one (${last}) binds`,
  );
  await new Promise<void>((resolve) => srv.close(() => resolve()));
});
