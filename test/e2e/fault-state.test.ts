// Fault: a corrupt or truncated state.json. `nginx-canary run` (the real CLI,
// a child process) refuses to start: exit code 1, one message on stderr that
// names the file and the way out (move it aside), and nothing guessed or
// changed — nginx's config directory, weights.yaml, state.json itself and the
// generation nginx serves are byte for byte what they were.
import t from 'tap';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { manifestOf } from '../../src/nginx/snapshot.js';
import { StateStore } from '../../src/rollout/store.js';
import { initialState } from '../../src/rollout/decide.js';
import { waitFor } from '../../src/util/wait.js';
import { liveGeneration } from '../fixtures/integration/sidecar.js';
import { spawnCli, startStack } from '../fixtures/stack.js';

/** Runs `nginx-canary -c <config> run` and resolves once it exits (killed after 20 s: it must refuse at once). */
async function run(configFile: string, cwd: string): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const child = spawnCli(cwd, configFile, ['run'], 20_000);
  const { code } = await child.exited;
  return { code, stderr: child.stderr(), stdout: child.stdout() };
}

t.test('a corrupt state.json: run refuses to start, names the file and the way out, changes nothing', async (t) => {
  const stack = await startStack(t, { target: 30 });
  const file = stack.config.sidecar.stateFile;
  await mkdir(path.dirname(file), { recursive: true });
  // A valid state (weight 15, generation 0, as a previous run left it) to cut and bend.
  const good = initialState(stack.config, Date.now());
  const valid = `${JSON.stringify({ ...good, services: { gateway: { ...good.services['gateway'], weight: 15, phase: 'step' } } }, null, 2)}\n`;
  await writeFile(file, valid);
  t.equal((await new StateStore(file).load())?.services['gateway']?.weight, 15, 'the uncut file is a valid state');

  const cases: [string, Buffer | string, RegExp][] = [
    ['garbage bytes', Buffer.from([0x00, 0xff, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0x0a]), /invalid JSON/],
    ['a valid JSON prefix cut in half', valid.slice(0, Math.floor(valid.length / 2)), /invalid JSON .*cut short/],
    [
      'valid JSON of the wrong shape',
      JSON.stringify({ version: 1, generation: 'seven', services: [], history: {} }),
      /not a nginx-canary state/,
    ],
  ];
  const confDir = path.dirname(stack.config.nginx.conf);
  for (const [name, content, detail] of cases) {
    await writeFile(file, content, { mode: 0o600 });
    const stateBefore = await readFile(file);
    const confBefore = manifestOf(confDir);
    const weightsBefore = await readFile(stack.configFile);
    const generationBefore = await liveGeneration(stack.config);

    const t0 = performance.now();
    const r = await run(stack.configFile, stack.dir);
    const ms = Math.round(performance.now() - t0);
    t.equal(r.code, 1, `${name}: exit code 1 (in ${ms} ms)`);
    const lines = r.stderr.trim().split('\n');
    // V8's JSON.parse message quotes the raw input; store.ts escapes it, so garbage stays on one line.
    t.equal(lines.length, 1, `${name}: one line on stderr`);
    t.match(
      r.stderr,
      new RegExp(`^state file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is unreadable: .*${detail.source}`),
      `${name}: names the file and what is wrong`,
    );
    t.match(
      r.stderr,
      new RegExp(`move it aside \\(mv ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} .*\\.bad\\) and run again`),
      `${name}: says the way out`,
    );
    t.same(await readFile(file), stateBefore, `${name}: state.json untouched`);
    t.same(manifestOf(confDir), confBefore, `${name}: nginx config directory untouched`);
    t.same(await readFile(stack.configFile), weightsBefore, `${name}: weights.yaml untouched`);
    t.equal(await liveGeneration(stack.config), generationBefore, `${name}: nginx not reloaded`);
    t.comment(`${name}: ${JSON.stringify(r.stderr.trim())}`);
  }

  // The way out works: moved aside, run starts (from weight 0, the safe direction) and takes over.
  await rename(file, `${file}.bad`);
  await stack.startSidecar();
  const s = await stack.status();
  t.ok([0, 5].includes(s.services[0]?.weight ?? -1), 'started fresh: weight 0, or already its first slice');
  // SIGTERM is handled once run has printed that it serves (before that, the API may answer already).
  await waitFor(() => stack.output().includes('SIGTERM stops it'), { timeoutMs: 15_000, what: 'run to say it serves' });
  t.equal(await stack.stopSidecar(), 0, 'and stops cleanly');
});
