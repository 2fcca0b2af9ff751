// The fleet block of `nginx-canary status` (src/cli/format.ts formatFleet): the leader and this host
// marked, stale hosts, the host holding the fleet with its nginx -t error, hosts whose services differ,
// the no-leader line; a status document without `fleet` printing exactly what it printed before; and
// `status` / `status --json` through the CLI against a fake sidecar on 127.0.0.1:0.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { main } from '../../src/cli/main.js';
import { NO_LEADER, formatFleet, formatStatus } from '../../src/cli/format.js';
import type { FleetHostStatus, FleetStatus } from '../../src/fleet/host.js';
import type { StatusDocument } from '../../src/runner.js';
import { weightsYaml } from '../fixtures/stack.js';
import { fleetHost, fleetStatus, gateResult, serviceStatus } from '../fixtures/status.js';

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5);
const NOW = T0 + 60_000;

const NGINX_T = [
  'nginx: [emerg] unknown directive "upstrem" in /etc/nginx/nginx.conf:12',
  'nginx: configuration file /etc/nginx/nginx.conf test failed',
].join('\n');

const host = (over: Partial<FleetHostStatus> = {}): FleetHostStatus => fleetHost(NOW, over);
const fleet = (over: Partial<FleetStatus> = {}): FleetStatus =>
  fleetStatus(NOW, { applyError: NGINX_T, edge4: { differs: ['gateway.gates differs', 'extra web'] } }, over);

/** A document with two services, gates, a ramp and 12 events: every part of the text view. */
function doc(): StatusDocument {
  return {
    generation: 42,
    lastReloadAt: T0,
    services: [
      serviceStatus({
        target: 50,
        since: T0,
        soakedMs: 3200,
        soakNeededMs: 900_000,
        summary: 'soaking',
        gates: [gateResult(), gateResult({ verdict: 'fail', value: 0.02, pool: 'primary' })],
      }),
      serviceStatus({
        name: 'api',
        weight: 0,
        target: 20,
        phase: 'drained',
        drainReason: 'error_ratio',
        since: T0,
        ramp: { to: 15, step: 2, steps: 3, startedAt: T0, cause: 'slice' },
      }),
    ],
    history: Array.from({ length: 12 }, (_, i) => ({
      at: T0 + i * 1000,
      service: 'gateway',
      kind: 'step' as const,
      from: i,
      to: i + 1,
      reason: `r <b>${i}</b>`,
      gates: [gateResult()],
    })),
  };
}

// formatStatus(doc(), 'note: x') as the code printed it before fleet mode (commit 3eff2ba), byte for byte.
const BEFORE = `note: x
generation 42

gateway: weight 15 % → target 50 %  phase step
  soak 3.2 s of 15m 0s at this weight since 2026-01-02T03:04:05.000Z
  soaking
  drain gate error_ratio pass: canary 5xx ratio 0.00 % ≤ 0.50 % over 300 requests
  drain gate error_ratio fail: primary 5xx ratio 2.00 % > 0.50 % over 300 requests

api: weight 0 % → target 20 %  phase drained (drained: error_ratio)
  soak 0.0 s of 0.0 s at this weight since 2026-01-02T03:04:05.000Z
  ramp (slow_start emulation, slice): sub-step 2 of 3 toward 15 %

recent events:
  2026-01-02T03:04:07.000Z gateway step 2 → 3: r <b>2</b>
  2026-01-02T03:04:08.000Z gateway step 3 → 4: r <b>3</b>
  2026-01-02T03:04:09.000Z gateway step 4 → 5: r <b>4</b>
  2026-01-02T03:04:10.000Z gateway step 5 → 6: r <b>5</b>
  2026-01-02T03:04:11.000Z gateway step 6 → 7: r <b>6</b>
  2026-01-02T03:04:12.000Z gateway step 7 → 8: r <b>7</b>
  2026-01-02T03:04:13.000Z gateway step 8 → 9: r <b>8</b>
  2026-01-02T03:04:14.000Z gateway step 9 → 10: r <b>9</b>
  2026-01-02T03:04:15.000Z gateway step 10 → 11: r <b>10</b>
  2026-01-02T03:04:16.000Z gateway step 11 → 12: r <b>11</b>`;

t.test('without fleet the text is byte for byte what it was, whatever now is', async (t) => {
  t.equal(formatStatus(doc(), 'note: x'), BEFORE);
  t.equal(formatStatus(doc(), 'note: x', NOW), BEFORE, 'now plays no part');
  t.equal(formatStatus(doc(), 'note: x', 0), BEFORE);
  t.notMatch(formatStatus(doc()), /fleet/);
});

t.test('the whole fleet block', async (t) => {
  t.equal(
    formatFleet(fleet(), NOW).join('\n'),
    [
      'fleet /nginx-canary/edge-prod',
      '  this host: edge-2',
      '  leader: edge-1',
      '  etcd: up',
      '  desired generation: 17',
      '  hold: barrier: waiting for edge-3 (applying generation 17 (verified 16))',
      '  hosts:',
      '    edge-1 (leader)     live   gateway 15 %, api 0 %  verified gen 17                       seen 1 s ago',
      '    edge-2 (this host)  live   gateway 15 %, api 0 %  verified gen 17                       seen just now',
      '    edge-3              live   gateway 5 %, api 0 %   behind (desired 17, verified gen 16)  seen 1 s ago',
      '      apply error: nginx: [emerg] unknown directive "upstrem" in /etc/nginx/nginx.conf:12',
      '        nginx: configuration file /etc/nginx/nginx.conf test failed',
      '    edge-4              stale  gateway 15 %, api 0 %  behind (desired 17)                   seen 4 min ago',
      '      services differ: gateway.gates differs, extra web',
    ].join('\n'),
  );
});

t.test('in formatStatus the block comes after the services, before the events', async (t) => {
  const lines = formatStatus({ ...doc(), fleet: fleet() }, '', NOW).split('\n');
  const at = lines.indexOf('fleet /nginx-canary/edge-prod');
  t.ok(at > lines.indexOf('api: weight 0 % → target 20 %  phase drained (drained: error_ratio)'), 'after the services');
  t.equal(lines[at - 1], '', 'a blank line before it');
  t.ok(at < lines.indexOf('recent events:'), 'before the events');
  t.equal(lines.filter((l) => l.startsWith('fleet ')).length, 1, 'once');
  t.ok(
    lines.some((l) => l.startsWith('    edge-3 ') && l.includes('behind (desired 17')),
    'the host holding the fleet is on its own line',
  );
});

t.test('the leader and this host are marked, also when they are the same host', async (t) => {
  const lines = formatFleet(fleet({ host: 'edge-1', isLeader: true }), NOW);
  t.match(
    lines.find((l) => l.startsWith('    edge-1')),
    /^ {4}edge-1 \(leader, this host\) /,
  );
  t.notMatch(
    lines.find((l) => l.startsWith('    edge-2')),
    /\(/,
    'other hosts unmarked',
  );
  t.equal(lines.filter((l) => l.includes('(leader')).length, 1, 'one leader');
});

t.test('a stale host says stale, and when it was last seen', async (t) => {
  const line = formatFleet(fleet(), NOW).find((l) => l.startsWith('    edge-4'));
  t.match(line, /\bstale\b/);
  t.match(line, /seen 4 min ago$/);
  for (const l of formatFleet(fleet(), NOW).filter((x) => /^ {4}edge-[123]/.test(x))) t.notMatch(l, /stale/);
});

t.test("the apply error sits under its host's line, every line of it", async (t) => {
  const lines = formatFleet(fleet(), NOW);
  const at = lines.findIndex((l) => l.startsWith('    edge-3'));
  t.equal(lines[at + 1], '      apply error: nginx: [emerg] unknown directive "upstrem" in /etc/nginx/nginx.conf:12');
  t.equal(lines[at + 2], '        nginx: configuration file /etc/nginx/nginx.conf test failed');
  t.equal(lines.filter((l) => l.includes('apply error')).length, 1, 'only the host that failed');
});

t.test('a long apply error is cut; control characters never reach the terminal', async (t) => {
  const long = Array.from({ length: 12 }, (_, i) => `line ${i}`).join('\r\n');
  const hostile = 'nginx: \u001b[2J\u001b[31mcleared\u0007';
  const lines = formatFleet(
    fleet({ hosts: [host({ applyError: long }), host({ host: 'x', applyError: hostile })] }),
    NOW,
  );
  t.equal(lines.filter((l) => /line \d+$/.test(l)).length, 8, 'eight lines');
  t.ok(lines.includes('        … 4 more lines'));
  const text = lines.join('\n');
  // eslint-disable-next-line no-control-regex
  t.notMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f]/, 'no control characters (\\r included)');
  t.ok(lines.includes('      apply error: nginx: \\u001b[2J\\u001b[31mcleared\\u0007'), 'shown escaped');
});

t.test('differing services and local drains under the host', async (t) => {
  const lines = formatFleet(
    fleet({ hosts: [host({ host: 'edge-9', differs: ['api missing'], localDrains: ['gateway', 'api'] })] }),
    NOW,
  );
  t.same(lines.slice(-3), [
    '    edge-9  live  gateway 15 %, api 0 %  verified gen 17  seen 1 s ago',
    '      services differ: api missing',
    '      drained on its own evidence: gateway, api',
  ]);
});

t.test('no leader, etcd down, nothing read yet', async (t) => {
  const lines = formatFleet(fleet({ leader: null, etcd: 'down', desiredGeneration: null, hold: null, hosts: [] }), NOW);
  t.same(lines, [
    'fleet /nginx-canary/edge-prod',
    '  this host: edge-2',
    `  leader: ${NO_LEADER}`,
    '  etcd: down',
    '  desired generation: none read',
    '  hosts: none seen yet',
  ]);
  t.equal(NO_LEADER, 'no leader — etcd quorum lost or every host cut off: no host raises');
  const noLeader = formatFleet(fleet({ leader: null }), NOW);
  t.notMatch(noLeader.join('\n'), /\(leader/, 'no host marked leader');
  t.ok(noLeader.includes('  hold: barrier: waiting for edge-3 (applying generation 17 (verified 16))'));
});

t.test('where a host stands against the desired generation', async (t) => {
  const gen = (verified: number | null, desired: number | null): string | undefined =>
    formatFleet(fleet({ desiredGeneration: desired, hosts: [host({ verified })] }), NOW)
      .at(-1)
      ?.trim()
      .split(/ {2,}/)[3];
  t.equal(gen(17, 17), 'verified gen 17');
  t.equal(gen(18, 17), 'verified gen 18', 'ahead of what this host read is not behind');
  t.equal(gen(16, 17), 'behind (desired 17, verified gen 16)');
  t.equal(gen(null, 17), 'behind (desired 17)');
  t.equal(gen(null, null), 'not verified');
  t.equal(gen(3, null), 'verified gen 3');
});

t.test('ages come from now: a host clock ahead shows as "in"', async (t) => {
  const line = formatFleet(fleet({ hosts: [host({ lastSeen: NOW + 5000 })] }), NOW).at(-1);
  t.match(line, /seen in 5 s$/);
  t.match(formatFleet(fleet({ hosts: [host({ lastSeen: NOW - 3 * 3_600_000 })] }), NOW).at(-1), /seen 3 h ago$/);
});

t.test('`status` and `status --json` through the CLI against a sidecar answering with a fleet', async (t) => {
  const body = JSON.stringify({ ...doc(), fleet: fleet() });
  const srv = http.createServer((req, res) => {
    res.writeHead(req.url === '/api/v1/services' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(req.url === '/api/v1/services' ? body : '{}');
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  const dir = t.testdir();
  const file = path.join(dir, 'weights.yaml');
  await writeFile(
    file,
    weightsYaml({
      target: 30,
      soak: '1s',
      window: '10s',
      minRequests: 20,
      minReloadInterval: '1s',
      nginxPort: 1,
      statusPort: 2,
      apiPort: (srv.address() as AddressInfo).port,
      primary: '127.0.0.1:3',
      canary: '127.0.0.1:4',
    }),
  );
  const cli = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await main(['node', 'nginx-canary', '-c', file, ...args], {
      out: (s) => (out += s),
      err: (s) => (err += s),
    });
    return { code, out, err };
  };
  const text = await cli('status');
  t.equal(text.code, 0, text.err);
  t.match(text.out, /^fleet \/nginx-canary\/edge-prod$/m);
  t.match(text.out, /^ {4}edge-1 \(leader\) +live +gateway 15 %, api 0 % +verified gen 17 +seen /m);
  t.match(text.out, /^ {6}apply error: nginx: \[emerg\] unknown directive "upstrem"/m);
  const json = await cli('status', '--json');
  t.equal(json.code, 0, json.err);
  t.same((JSON.parse(json.out) as StatusDocument).fleet, fleet(), '--json prints the fleet as the sidecar sent it');
});
