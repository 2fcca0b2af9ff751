// describeOverride (README "The X-Canary override"): what `nginx-canary check` says about who may use the X-Canary override.
import t from 'tap';
import { describeOverride } from '../../src/nginx/override.js';
import { makeConfig, makeService } from '../fixtures/nginx/config.js';

t.test('one line per service, in config order: off, or the allow list and the drained rule', async (t) => {
  const config = makeConfig('/d', {
    services: [
      makeService('gateway', ['127.0.0.1:1'], ['127.0.0.1:2'], { override: { allow: ['127.0.0.1', '10.1.2.0/24'] } }),
      makeService('api', ['127.0.0.1:3'], ['127.0.0.1:4']),
      makeService('webhooks', ['127.0.0.1:5'], ['127.0.0.1:6'], {
        split: 'split_clients',
        override: { allow: ['::1'] },
      }),
    ],
  });
  t.same(describeOverride(config), [
    'gateway: X-Canary: always|never honoured from 127.0.0.1, 10.1.2.0/24 only; never to a drained canary',
    'api: X-Canary override off (no services.api.override)',
    'webhooks: X-Canary: always|never honoured from ::1 only; never to a drained canary',
  ]);
});

t.test('a /0 entry is named: it admits every client of its family', async (t) => {
  const at = (allow: string[]): string[] =>
    describeOverride(
      makeConfig('/d', {
        services: [makeService('gateway', ['127.0.0.1:1'], ['127.0.0.1:2'], { override: { allow } })],
      }),
    );
  t.same(at(['0.0.0.0/0']), [
    'gateway: X-Canary: always|never honoured from 0.0.0.0/0 only; 0.0.0.0/0 admits every IPv4 client; never to a drained canary',
  ]);
  t.same(at(['0.0.0.0/0', '::/0']), [
    'gateway: X-Canary: always|never honoured from 0.0.0.0/0, ::/0 only; 0.0.0.0/0 admits every IPv4 client; ::/0 admits every IPv6 client; never to a drained canary',
  ]);
  t.notMatch(at(['10.0.0.0/8'])[0], /every/, 'a /8 is not /0');
});
