/**
 * The sampled access log on the real nginx (docs/design.md "Sampled access
 * log"): with `nginx.access_log_sample: 20` and `access_log … if=$nginx_canary_log`,
 * nginx writes every line whose attempt failed (here: the canary answering
 * 500) and about a fifth of the successful ones, each marked `"sample":"20"`;
 * the Observer counts the successes five times over, so the represented
 * requests match what was sent. Control: the same nginx without `if=` writes
 * every line, the left-out ones marked `0`, and the Observer counts each line
 * once.
 */
import { readFile, writeFile } from 'node:fs/promises';
import t from 'tap';
import { Client, request } from 'undici';
import { Observer } from '../../src/observe/aggregate.js';
import { parseLine } from '../../src/observe/parse.js';
import type { LogRecord } from '../../src/observe/types.js';
import { waitFor } from '../../src/util/wait.js';
import { reloadAndSettle, startTestNginx } from '../fixtures/nginx/harness.js';
import { stateSince } from '../fixtures/observe/config.js';

/** A location nginx answers itself: no upstream attempt, so its line is always logged (`100`). */
const SENTINEL = '/sentinel-for-the-log';

/**
 * Sends `n` GETs one after another on `client`'s one connection; returns the count per status. Bounded:
 * 30 s. One connection, so one nginx worker serves the requests and the sentinel in order and writes
 * their lines in that order: nginx logs after answering, so over several connections (workers) an
 * earlier request's line could land after the sentinel's.
 */
async function send(client: Client, url: string, n: number): Promise<Record<number, number>> {
  const status: Record<number, number> = {};
  const deadline = performance.now() + 30_000;
  for (let i = 0; i < n; i++) {
    if (performance.now() > deadline) throw new Error(`send: over 30 s after ${i} requests`);
    const res = await request(`${url}/`, { dispatcher: client, headersTimeout: 5000, bodyTimeout: 5000 });
    await res.body.dump();
    status[res.statusCode] = (status[res.statusCode] ?? 0) + 1;
  }
  return status;
}

/** The log's records from line `from` on, once the sentinel request sent now (on `client`, see send) has been logged after them. */
async function linesUntilSentinel(client: Client, url: string, file: string, from: number): Promise<LogRecord[]> {
  const res = await request(`${url}${SENTINEL}`, { dispatcher: client });
  await res.body.dump();
  return waitFor(
    async () => {
      const text = await readFile(file, 'utf8').catch(() => '');
      const recs = text
        .split('\n')
        .slice(from)
        .filter((l) => l !== '')
        .map((l) => parseLine(l));
      const last = recs.at(-1);
      if (last === undefined || last === null || last.status !== 204) return null;
      if (recs.some((r) => r === null)) throw new Error(`an unreadable line in ${file}`);
      return (recs as LogRecord[]).slice(0, -1);
    },
    { timeoutMs: 10_000, what: `the sentinel line in ${file}` },
  );
}

t.test(
  'nginx logs every failure and ~20 % of successes; the Observer weighs them back to the requests sent',
  async (t) => {
    const h = await startTestNginx(t, {
      weights: { gateway: 50 },
      configure: (c) => ({ ...c, nginx: { ...c.nginx, accessLogSample: 20 } }),
      editConf: (text) =>
        text
          .replace(
            'access_log logs/canary.json nginx_canary;',
            'access_log logs/canary.json nginx_canary if=$nginx_canary_log;',
          )
          .replace('        location / {', `        location = ${SENTINEL} { return 204; }\n\n        location / {`),
    });
    const file = h.config.nginx.accessLog;
    const client = new Client(h.url);
    t.teardown(() => client.close());
    const rendered = await readFile(h.config.nginx.upstreamsFile, 'utf8');
    t.match(rendered, /split_clients "\$request_id" \$nginx_canary_log_sampled \{\n {4}20% "20";\n {4}\* "0";\n\}/);

    // Phase 1: a healthy canary.
    const ok = await send(client, h.url, 400);
    t.equal(ok[200], 400, 'every request answered 200');
    const healthy = await linesUntilSentinel(client, h.url, file, 0);
    t.ok(
      healthy.every((r) => r.sample === 20),
      'every logged success is marked 20',
    );
    // Binomial(400, 0.2): mean 80, sd 8; 40–120 is 5 sd either side.
    t.ok(healthy.length >= 40 && healthy.length <= 120, `${healthy.length} of 400 successes logged (expected ~80)`);

    // Phase 2: the canary answers 500; nginx does not retry a 500 (proxy_next_upstream error timeout).
    const canary = h.backends.canary[0];
    if (canary === undefined) throw new Error('no canary backend');
    await canary.setFault({ kind: 'status', status: 500 });
    const mixed = await send(client, h.url, 300);
    const fivexx = mixed[500] ?? 0;
    t.ok(fivexx >= 60, `the canary failed ${fivexx} of 300 requests`);
    const all = await linesUntilSentinel(client, h.url, file, healthy.length + 1);
    const failedLines = all.filter((r) => r.status === 500);
    t.equal(failedLines.length, fivexx, 'every 500 the clients saw is in the log');
    t.ok(
      failedLines.every((r) => r.sample === undefined),
      'each marked 100 (no sample in the record): it stands for itself',
    );
    const successes = all.filter((r) => r.status === 200);
    t.ok(
      successes.every((r) => r.sample === 20),
      'every logged success is marked 20',
    );

    // The Observer's view of both phases: the represented requests are what was sent (± the sampling).
    const obs = new Observer(h.config);
    const now = Date.now();
    const text = await readFile(file, 'utf8');
    for (const line of text.split('\n')) if (line !== '') obs.addLine(line, now);
    const o = obs.observations(h.config, stateSince({ gateway: 0 }), now).gateway;
    const represented = (o?.primary.requests ?? 0) + (o?.canary.requests ?? 0);
    // Logged successes: ~0.2 × 640 = 128 (sd ~10), each counted 5 → 640 ± 50; 5 sd either side.
    t.ok(
      Math.abs(represented - 700) <= 250,
      `represented ${represented} requests for 700 sent (${healthy.length + all.length} lines)`,
    );
    t.equal(o?.canary.errors, fivexx, 'the canary errors are exact');
    t.equal(o?.canary.sampleWeight, 5, 'the observation says a line stood for up to 5 requests');

    // Control: without `if=`, nginx writes every line; the left-out ones say 0, and each counts once.
    const before = text.split('\n').filter((l) => l !== '').length;
    const conf = await readFile(h.config.nginx.conf, 'utf8');
    await writeFile(h.config.nginx.conf, conf.replace(' if=$nginx_canary_log;', ';'));
    await canary.setFault({ kind: 'none' });
    await reloadAndSettle(h, 0);
    const plain = await send(client, h.url, 200);
    t.equal(plain[200], 200);
    const unfiltered = await linesUntilSentinel(client, h.url, file, before);
    t.equal(unfiltered.length, 200, 'every request is logged without if=');
    const zeros = unfiltered.filter((r) => r.sample === 0).length;
    t.ok(zeros >= 120, `${zeros} of 200 lines marked 0 (left out with if=)`);
    const control = new Observer(h.config);
    const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
    // The control's lines only; before the first 0 a line marked 20 still counts 5.
    const ownLines = lines.slice(before, before + 200);
    const firstZero = ownLines.findIndex((l) => l.includes('"sample":"0"'));
    const early = ownLines.slice(0, firstZero).filter((l) => l.includes('"sample":"20"')).length;
    const at = Date.now();
    for (const line of ownLines) control.addLine(line, at);
    const c = control.observations(h.config, stateSince({ gateway: 0 }), at).gateway;
    t.equal(control.unfilteredLines(), zeros);
    t.equal(
      (c?.primary.requests ?? 0) + (c?.canary.requests ?? 0),
      200 + 4 * early,
      `each line counts once (${early} lines marked 20 before the first 0 count 5)`,
    );
  },
);
