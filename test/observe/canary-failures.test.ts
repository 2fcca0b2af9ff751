// Observer.canaryFailures: the count the sidecar watches to judge a canary failure at once (Runner.nudge).
import t from 'tap';
import { Observer } from '../../src/observe/aggregate.js';
import { gatewayConfig, logLine } from '../fixtures/observe/config.js';

const NOW = 1_763_744_700_000;
const PRIMARY = '127.0.0.1:18789';
const CANARY = '127.0.0.1:18890';

t.test('counts failed canary attempts only, on the string and the byte path alike', async (t) => {
  const cfg = gatewayConfig();
  const lines = [
    logLine({ atMs: NOW - 900, addr: CANARY, ustatus: '200', connect: '0.001' }),
    logLine({ atMs: NOW - 800, addr: PRIMARY, ustatus: '502', connect: '0.001', status: 502 }),
    logLine({ atMs: NOW - 700, addr: CANARY, ustatus: '500', connect: '0.001', status: 500 }),
    // refused on the canary, retried on the primary: one failed canary attempt
    logLine({ atMs: NOW - 600, addr: `${CANARY}, ${PRIMARY}`, ustatus: '502, 200', connect: '-, 0.001' }),
    logLine({ atMs: NOW - 500, addr: CANARY, ustatus: '404', connect: '0.001', status: 404 }),
  ];
  const byLines = new Observer(cfg);
  t.equal(byLines.canaryFailures(), 0);
  byLines.addLines(lines, NOW);
  t.equal(
    byLines.canaryFailures(),
    2,
    'a canary 500 and a canary attempt that failed before the retry; not the primary 502, not a 404',
  );
  const byBytes = new Observer(cfg);
  const buf = Buffer.from(lines.join('\n') + '\n');
  byBytes.addBytes(buf, 0, buf.length, NOW);
  t.equal(byBytes.canaryFailures(), 2, 'the byte path counts the same');
  byLines.addLines(
    [logLine({ atMs: NOW - 100_000_000, addr: CANARY, ustatus: '500', connect: '0.001', status: 500 })],
    NOW,
  );
  t.equal(byLines.canaryFailures(), 2, 'an attempt outside the window is dropped, not counted');
  byLines.reconfigure(cfg);
  byLines.addLines([logLine({ atMs: NOW - 50, addr: CANARY, ustatus: '503', connect: '0.001', status: 503 })], NOW);
  t.equal(byLines.canaryFailures(), 3, 'kept across a reconfigure, and the rebuilt windows are still known as canary');
});
