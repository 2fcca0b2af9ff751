// README "One sidecar per nginx", fault "concurrent `target` writes from CLI and API": real
// `nginx-canary target` processes and API PUTs against a running sidecar,
// interleaved on two services, while a reader parses weights.yaml in a loop.
//
// No lost update, checked as a register's linearizability: every write
// reports the target it replaced (`from`) and the one it wrote (`to`), all
// values distinct, so for each service the writes must chain from the
// initial target through every written value exactly once (two writers that
// read the same text would report the same `from`). The file always parses,
// no temp or lock file is left, and the sidecar picks up the last values.
// Then an editor that takes no lock: saving between the read and the rename
// makes setTarget redo its edit on the editor's text.
import t from 'tap';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { request } from 'undici';
import { spawnCli, startStack, weightsYaml, type Stack } from '../fixtures/stack.js';
import { acquireLock } from '../../src/lock.js';
import { parseConfig } from '../../src/config/load.js';
import { setTarget } from '../../src/config/edit.js';
import { waitFor } from '../../src/util/wait.js';

/** One write as its writer reported it. */
interface Write {
  service: string;
  via: 'cli' | 'api';
  from: number;
  to: number;
  /** How long the write took end to end, ms (a CLI process: boot included). */
  ms: number;
}

/** `nginx-canary -c <file> target <service> <weight>`; resolves to the write it reports (throws on exit ≠ 0). */
async function cliTarget(stack: Stack, service: string, weight: number): Promise<Write> {
  const started = performance.now();
  const run = spawnCli(stack.dir, stack.configFile, ['target', service, String(weight)]);
  const { code } = await run.exited;
  const out = run.output();
  const m = /target ([\d.]+) % → ([\d.]+) %/.exec(out);
  if (code !== 0 || !m) throw new Error(`target ${service} ${weight}: exit ${code}: ${out}`);
  return { service, via: 'cli', from: Number(m[1]), to: Number(m[2]), ms: performance.now() - started };
}

/** PUT /api/v1/services/<service>/target; resolves to the write it reports (throws unless 200). */
async function apiTarget(stack: Stack, service: string, weight: number): Promise<Write> {
  const started = performance.now();
  const r = await request(`${stack.api}/api/v1/services/${service}/target`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ weight }),
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  });
  const body = (await r.body.json()) as { from: number; to: number };
  if (r.statusCode !== 200) throw new Error(`PUT ${service} ${weight}: HTTP ${r.statusCode}: ${JSON.stringify(body)}`);
  return { service, via: 'api', from: body.from, to: body.to, ms: performance.now() - started };
}

/** Targets per service as weights.yaml says now (parsed and validated in full). */
function targets(text: string, file: string): Record<string, number> {
  return Object.fromEntries(parseConfig(text, file).services.map((s) => [s.name, s.rollout.target]));
}

/**
 * Parses weights.yaml back to back until stopped (bounded: 120 s, 200,000 reads).
 * Resolves to the number of reads and the failures (a half-written file would be one).
 */
function readerLoop(file: string): { stop(): Promise<{ reads: number; failures: string[] }> } {
  let stopped = false;
  const failures: string[] = [];
  let reads = 0;
  const started = performance.now();
  const run = (async () => {
    while (!stopped && reads < 200_000 && performance.now() - started < 120_000) {
      let text = '';
      try {
        text = await readFile(file, 'utf8');
        reads++;
        targets(text, file);
      } catch (err) {
        failures.push(`${(err as Error).message}\n--- text (${text.length} chars) ---\n${text}`);
        if (failures.length >= 10) break;
      }
    }
  })();
  return {
    async stop() {
      stopped = true;
      await run;
      return { reads, failures };
    },
  };
}

/**
 * Whether `writes` to one service (distinct `to` values, none equal to `initial`)
 * chain from `initial` through every write exactly once; returns the end of the
 * chain, or an error sentence.
 */
function chain(initial: number, writes: readonly Write[]): { end: number } | { error: string } {
  const byFrom = new Map<number, Write[]>();
  for (const w of writes) byFrom.set(w.from, [...(byFrom.get(w.from) ?? []), w]);
  const shared = [...byFrom.entries()].filter(([, ws]) => ws.length > 1);
  if (shared.length > 0)
    return { error: `lost update: ${shared.map(([f, ws]) => `${ws.length} writes replaced ${f}`).join('; ')}` };
  let at = initial;
  for (let i = 0; i < writes.length; i++) {
    const next = byFrom.get(at)?.[0];
    if (!next) return { error: `the chain breaks after ${i} writes at ${at}` };
    at = next.to;
  }
  return { end: at };
}

t.test('CLI and API writers interleaved on two services lose no update', async (t) => {
  const stack = await startStack(t, { target: 30, secondService: true, soak: '2s' });
  await stack.startSidecar();
  const file = stack.configFile;
  const K = 6; // per service and per channel: 2K CLI processes and 2K PUTs a burst
  const BURSTS = 3;
  const figures: string[] = [];
  for (let burst = 0; burst < BURSTS; burst++) {
    const before = targets(await readFile(file, 'utf8'), file);
    // Distinct values per service, none equal to the current target: 0.1-steps keep them apart.
    const values = (service: string, via: 'cli' | 'api', i: number): number => {
      const base = service === 'gateway' ? 10 : 50;
      return Math.round((base + (via === 'api' ? 20 : 0) + i + burst * 0.5 + 0.1) * 10) / 10;
    };
    const reader = readerLoop(file);
    const started = performance.now();
    const jobs: Promise<Write>[] = [];
    let settled: PromiseSettledResult<Write>[];
    try {
      // Pacing, not a settle wait: launches spread 100 ms apart over ≈ 0.6 s, so CLI processes
      // (≈ 0.3–2 s to boot and write here) and PUTs overlap.
      for (let i = 0; i < K; i++) {
        for (const service of ['gateway', 'billing']) {
          jobs.push(cliTarget(stack, service, values(service, 'cli', i)));
          jobs.push(apiTarget(stack, service, values(service, 'api', i)));
        }
        await delay(100);
      }
    } finally {
      settled = await Promise.allSettled(jobs);
    }
    const ms = performance.now() - started;
    const { reads, failures } = await reader.stop();
    const rejected = settled.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    t.same(rejected, [], `burst ${burst}: every write succeeded`);
    if (rejected.length > 0) t.comment(stack.output().slice(-8000));
    const writes = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    t.same(failures, [], `burst ${burst}: ${reads} reads while writing, every one a complete, valid weights.yaml`);
    t.ok(reads > 10, `burst ${burst}: the reader ran throughout (${reads} reads)`);

    const after = targets(await readFile(file, 'utf8'), file);
    for (const service of ['gateway', 'billing']) {
      const mine = writes.filter((w) => w.service === service);
      t.equal(mine.length, 2 * K);
      const c = chain(before[service] ?? NaN, mine);
      t.same(
        c,
        { end: after[service] },
        `burst ${burst}, ${service}: ${mine.length} writes chain from ${before[service]} to the final target`,
      );
    }
    const left = (await readdir(stack.dir)).filter((n) => n !== 'weights.yaml' && n.includes('weights.yaml'));
    t.same(left, [], `burst ${burst}: no temp or lock file left beside weights.yaml`);
    await t.resolves(
      waitFor(async () => (await stack.status()).services.every((x) => x.target === after[x.name]), {
        timeoutMs: 15_000,
        what: 'the sidecar to report the final targets',
      }),
      `burst ${burst}: the sidecar reports the final targets ${JSON.stringify(after)}`,
    );
    const worst = (via: string): number =>
      Math.round(Math.max(...writes.filter((w) => w.via === via).map((w) => w.ms)));
    figures.push(
      `burst ${burst}: ${writes.length} writes (${2 * K} CLI, ${2 * K} API) in ${Math.round(ms)} ms; slowest CLI ${worst('cli')} ms, slowest PUT ${worst('api')} ms; ${reads} reads`,
    );
  }
  t.equal(stack.sidecar?.exitCode, null, 'the sidecar ran throughout');
  for (const f of figures) t.comment(f);
});

t.test('an editor saving between read and rename: the edit is redone on its text', async (t) => {
  const yaml = weightsYaml({
    ...{ nginxPort: 18080, statusPort: 19465, apiPort: 19464, primary: '127.0.0.1:19001', canary: '127.0.0.1:19002' },
    ...{ target: 30, soak: '1s', window: '5s', minRequests: 20, minReloadInterval: '300ms' },
  });
  const dir = t.testdir({ 'weights.yaml': yaml });
  const file = path.join(dir, 'weights.yaml');
  const editorSave = async (text: string): Promise<void> => {
    // As vim or an IDE saves: a new file renamed over the old one; no lock taken.
    await writeFile(`${file}.editor`, text);
    await rename(`${file}.editor`, file);
  };
  let saves = 0;
  const r = await setTarget(file, 'gateway', 60, {
    beforeCommit: async () => {
      if (saves++ > 0) return;
      const text = await readFile(file, 'utf8');
      await editorSave(text.replace('min_requests: 20', 'min_requests: 25') + '# saved by an editor\n');
    },
  });
  t.same(r, { from: 30, to: 60 });
  t.equal(saves, 2, 'the first attempt found the file changed and the edit was redone');
  const text = await readFile(file, 'utf8');
  t.match(text, /# saved by an editor\n$/, "the editor's save survives");
  t.match(text, 'min_requests: 25');
  t.equal(parseConfig(text, file).services[0]?.rollout.target, 60, 'and so does the new target');

  const always = await setTarget(file, 'gateway', 70, {
    attempts: 3,
    beforeCommit: async () => editorSave((await readFile(file, 'utf8')) + `# save ${++saves}\n`),
  }).catch((err: unknown) => err as { code: string; message: string });
  t.match(
    always,
    { code: 'NC_CONFIG_BUSY', message: /during each of 3 attempts/ },
    'an editor saving on every attempt: NC_CONFIG_BUSY',
  );
  const last = await readFile(file, 'utf8');
  t.match(last, `# save ${saves}\n`, "the file is the editor's last save");
  t.equal(parseConfig(last, file).services[0]?.rollout.target, 60, 'with the target it had');
  t.same(
    (await readdir(dir)).filter((n) => n.includes('weights.yaml') && n !== 'weights.yaml'),
    [],
    'no temp or lock file left',
  );

  // A writer holding the lock past the wait: NC_LOCK_TIMEOUT, file unchanged.
  const held = await acquireLock(`${file}.lock`);
  const timedOut = await setTarget(file, 'gateway', 80, { lockWaitMs: 200 }).catch(
    (err: unknown) => err as { code: string },
  );
  await held.release();
  t.match(timedOut, { code: 'NC_LOCK_TIMEOUT' });
  t.equal(await readFile(file, 'utf8'), last, 'nothing was changed');
});
