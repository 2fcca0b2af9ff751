import t, { type Test } from 'tap';
import { chmod, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StateStore, StateSchema, parseState } from '../../src/rollout/store.js';
import type * as StoreModule from '../../src/rollout/store.js';
import type * as AtomicModule from '../../src/util/atomic.js';
import { decide, initialState } from '../../src/rollout/decide.js';
import type { State } from '../../src/rollout/types.js';
import { T0, makeConfig, obs, stateWith } from '../fixtures/rollout/config.js';

/**
 * store.js loaded with `fsp` as the node:fs/promises of src/util/atomic.ts, which does the writing
 * (a mock reaches only the module it is given to, not the modules that one imports).
 */
async function mockStoreFs(t: Test, fsp: object): Promise<typeof StoreModule> {
  const atomic = await t.mockImport<typeof AtomicModule>('../../src/util/atomic.js', { 'node:fs/promises': fsp });
  return t.mockImport<typeof StoreModule>('../../src/rollout/store.js', { '../../src/util/atomic.js': atomic });
}

/** A state with history and gate results in it (exercises every part of the schema). */
function richState(): State {
  const config = makeConfig();
  const d1 = decide(config, initialState(config, T0), { gateway: obs({ requests: 0, errors: 0, series: [] }) }, T0);
  const d2 = decide(config, d1.state, { gateway: obs({ requests: 200, errors: 40 }) }, T0 + 5000);
  return {
    ...d2.state,
    generation: 7,
    services: {
      ...d2.state.services,
      other: {
        ...stateWith().services.gateway!,
        phase: 'paused',
        pausedBy: 'operator',
        resumePhase: 'step',
        weight: 12.5,
        ramp: { to: 15, step: 2, steps: 3, startedAt: T0, cause: 'recovery' },
      },
    },
  };
}

t.test('missing file → null', async (t) => {
  const dir = t.testdir();
  t.equal(await new StateStore(join(dir, 'nope', 'state.json')).load(), null);
});

t.test('round trip, modes 0600/0700, no temp file left', async (t) => {
  const dir = join(t.testdir(), 'a', 'b');
  const file = join(dir, 'state.json');
  const store = new StateStore(file);
  t.equal(store.file, file);
  const state = richState();
  t.ok(
    state.history.some((e) => e.kind === 'drain' && e.gates.length === 7 && e.gates.some((g) => g.detail)),
    'the fixture has gate results',
  );
  await store.save(state);
  t.same(await store.load(), state);
  t.equal((await stat(file)).mode & 0o777, 0o600, 'state.json is 0600');
  t.equal((await stat(dir)).mode & 0o777, 0o700, 'the created directory is 0700');
  t.same(await readdir(dir), ['state.json']);
  // Replacing an existing file with looser permissions leaves 0600.
  await chmod(file, 0o644);
  await store.save({ ...state, generation: 8 });
  t.equal((await stat(file)).mode & 0o777, 0o600);
  t.equal((await store.load())?.generation, 8);
});

t.test('concurrent saves are serialized: the last call wins, every write is whole', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'state.json');
  const store = new StateStore(file);
  const base = richState();
  // A reader started as each save lands, while the next ones are writing, never sees a partial file.
  const reads: Promise<unknown>[] = [];
  const writes = Array.from({ length: 40 }, (_, i) =>
    store.save({ ...base, generation: i }).then(() => {
      reads.push(new StateStore(file).load().catch((err: unknown) => err));
    }),
  );
  await Promise.all(writes);
  const seen = await Promise.all(reads);
  t.equal(seen.length, 40);
  for (const r of seen)
    t.ok(typeof r === 'object' && r !== null && 'generation' in r, 'a read during the saves sees a whole state');
  t.equal((await store.load())?.generation, 39);
  t.same(await readdir(dir), ['state.json'], 'no temp files left');
});

t.test(
  'a failed save rejects, removes its temp file, keeps the old file, and does not block later saves',
  async (t) => {
    const fsp = await import('node:fs/promises');
    let failures = 1;
    const { StateStore: MockedStore } = await mockStoreFs(t, {
      ...fsp,
      rename: async (from: string, to: string) => {
        if (failures-- > 0) throw Object.assign(new Error('simulated EIO'), { code: 'EIO' });
        return fsp.rename(from, to);
      },
    });
    const dir = t.testdir();
    const file = join(dir, 'state.json');
    await new StateStore(file).save(stateWith({ weight: 5 }));
    const store = new MockedStore(file);
    await t.rejects(store.save(stateWith({ weight: 50 })), { code: 'EIO' });
    t.same(await readdir(dir), ['state.json'], 'the temp file was removed');
    t.equal((await store.load())?.services.gateway?.weight, 5, 'the old file stays');
    await store.save(stateWith({ weight: 60 }));
    t.equal((await store.load())?.services.gateway?.weight, 60, 'the queue survives a failure');
  },
);

t.test('saves never interleave: each write opens, syncs and renames before the next opens', async (t) => {
  const fsp = await import('node:fs/promises');
  const log: string[] = [];
  const { StateStore: LoggedStore } = await mockStoreFs(t, {
    ...fsp,
    open: async (path: string, ...rest: [string, number?]) => {
      if (path.endsWith('.tmp')) log.push('open');
      return fsp.open(path, ...rest);
    },
    rename: async (from: string, to: string) => {
      log.push('rename');
      return fsp.rename(from, to);
    },
  });
  const store = new LoggedStore(join(t.testdir(), 'state.json'));
  await Promise.all([1, 2, 3, 4].map((generation) => store.save({ ...stateWith(), generation })));
  t.same(log, ['open', 'rename', 'open', 'rename', 'open', 'rename', 'open', 'rename']);
  t.equal((await store.load())?.generation, 4);
});

t.test('a path that cannot be replaced (a directory) rejects and leaves no temp file', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'state.json');
  await mkdir(join(file, 'inside'), { recursive: true });
  await t.rejects(new StateStore(file).save(stateWith()));
  t.same(await readdir(dir), ['state.json']);
});

t.test('corrupt files throw NC_STATE_CORRUPT naming the file; nothing is guessed', async (t) => {
  const dir = t.testdir();
  const whole = `${JSON.stringify(richState(), null, 2)}\n`;
  const cases: [string, string | null, RegExp][] = [
    ['truncated write', whole.slice(0, Math.floor(whole.length / 2)), /invalid JSON .*cut short/],
    ['empty file', '', /invalid JSON/],
    ['not an object', '[]', /not a nginx-canary state/],
    ['wrong version', JSON.stringify({ ...richState(), version: 2 }), /\/version/],
    ['unknown phase', JSON.stringify(stateWith({ phase: 'walking' as never })), /\/services\/gateway\/phase/],
    ['missing field', JSON.stringify({ version: 1, generation: 0, lastReloadAt: 0, services: {} }), /history/],
    ['extra field', JSON.stringify({ ...stateWith(), extra: 1 }), /not a nginx-canary state/],
    ['weight out of range', JSON.stringify(stateWith({ weight: 101 })), /\/services\/gateway\/weight/],
    ['a directory', null, /EISDIR|illegal operation/],
  ];
  for (const [name, content, detail] of cases) {
    const file = join(dir, `${name.replace(/ /g, '-')}.json`);
    if (content === null) await mkdir(file);
    else await writeFile(file, content);
    await t.rejects(
      new StateStore(file).load(),
      {
        code: 'NC_STATE_CORRUPT',
        message: new RegExp(
          `state file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is unreadable: .*${detail.source}`,
        ),
      },
      name,
    );
  }
});

t.test('parseState accepts exactly a State', async (t) => {
  const s = richState();
  t.equal(parseState('/x/state.json', s), s);
  t.throws(() => parseState('/x/state.json', null), {
    code: 'NC_STATE_CORRUPT',
    message: /\/x\/state\.json is unreadable: not a nginx-canary state: \/: /,
  });
  t.equal(StateSchema.additionalProperties, false);
});
