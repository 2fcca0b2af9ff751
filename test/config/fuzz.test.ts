// Property-based fuzzing of weights.yaml (README "Security"): loadConfig
// (src/config/load.ts) on generated documents — valid-shaped trees with
// random leaves, random mutations of the demo weights.yaml (deleted,
// swapped, duplicated and re-indented lines, random scalars and keys,
// inserted YAML syntax), and pathological ones (deep nesting, alias bombs,
// many keys, huge numbers, long strings, unicode and control characters) —
// never throws anything but a ConfigError; every problem of it names the
// file, a line and column inside the document, a key path (empty only for
// whole-document YAML problems), a one-line message and a fix; and the file
// is byte-identical afterwards. Then the CLI (`check`, `target`) runs
// in-process (src/cli/main.ts `main`) on a few hundred mutated files and
// changes no file (a `target` that succeeds changes exactly weights.yaml's
// target). Seeded; the case counts are printed.
import t from 'tap';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { main } from '../../src/cli/main.js';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { repoRoot } from '../fixtures/stack.js';

/** fast-check seed: every run explores the same documents. */
const SEED = 0xc0f1;
/** Cases per loadConfig property (each parses in about 1 ms). */
const RUNS = 1000;
/** Cases of the CLI property (a valid file runs `nginx -t` on a scratch copy: ~50 ms). */
const CLI_RUNS = 300;

const DEMO = await readFile(path.join(repoRoot, 'weights.yaml'), 'utf8');
const DEMO_LINES = DEMO.split('\n');

/** Messages of problems about the document as a whole, which have no key path. */
const WHOLE_DOCUMENT =
  /^(invalid YAML: |the file is empty|the YAML cannot be read|alias \*|the top level must be a mapping)|bytes, more than the \d+ a weights\.yaml may have$/;

/** Scalars as YAML text: plausible values, boundary values, hostile ones. */
const rawScalar: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('0', '-1', '5', '12.5', '100', '101', '1e400', '-1e400', '.inf', '.nan', '0x1F', '0o17', '1_000'),
  fc.constantFrom('123456789012345678901234567890', '9007199254740993', '-0', '1e-400'),
  fc.constantFrom('500ms', '30s', '15m', '48h', '-1s', '0s', '1e3ms', '999999999d', '5 s', '1h30m'),
  fc.constantFrom('"0.5%"', '"101%"', '"%"', '0.5%', 'true', 'false', 'yes', '~', 'null', "''", '""'),
  fc.constantFrom('127.0.0.1:9464', '0.0.0.0:80', '[::1]:1', '[0:0::1]:1', '256.0.0.1:1', 'host:0', ':80', 'a:b:c'),
  fc.constantFrom('/etc/nginx/nginx.conf', '../../etc/passwd', 'a;b', '$host', '{', '}', '#x', '"a b"', 'x\\ny'),
  fc.constantFrom('&a 1', '*a', '*nope', '!!binary aGk=', '!tag x', '<<: *a', '[1, 2', '{a: 1', '|', '>', '@x', '`x`'),
  fc.constantFrom('"\\u202e"', '"\\0"', '"\\x1b[31m"', '"日本"', '"🦀"', '"\\uFEFF"'),
  fc.integer().map(String),
  fc.double().map((d) => JSON.stringify(d) ?? '0'),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }).map((s) => JSON.stringify(s)),
);

/** Leaves of valid-shaped documents (as JS values; `stringify` writes them). */
const leaf: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom('nginx', 'nginx/nginx.conf', 'nginx/conf.d/nginx-canary.conf', 'logs/canary.json'),
  },
  {
    weight: 6,
    arbitrary: fc.constantFrom('127.0.0.1:18789', '127.0.0.1:18890', '127.0.0.1:9464', '[::1]:9465', '0.0.0.0:9464'),
  },
  { weight: 6, arbitrary: fc.constantFrom('500ms', '2s', '15m', '48h', '0s', '0.5%', '5%', '/health', '/ready') },
  { weight: 4, arbitrary: fc.integer({ min: -5, max: 120 }) },
  { weight: 2, arbitrary: fc.constantFrom(true, false, null, Infinity, -0, 2 ** 53 + 2, 0.1) },
  { weight: 2, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  { weight: 1, arbitrary: fc.array(fc.integer(), { maxLength: 3 }) },
);

const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T> => a;
const server = fc.record(
  { server: leaf, max_fails: leaf, fail_timeout: leaf, slow_start: leaf },
  { requiredKeys: ['server'] },
);
const serviceDoc = fc.record(
  {
    split: opt(fc.constantFrom('weighted', 'split_clients', 'random')),
    split_key: leaf,
    primary: fc.array(server, { minLength: 0, maxLength: 2 }),
    canary: fc.array(server, { minLength: 0, maxLength: 2 }),
    probe: fc.record({ health: leaf, ready: leaf, interval: leaf, timeout: leaf }, { requiredKeys: [] }),
    rollout: fc.record(
      { target: leaf, slice: leaf, slice_soak: leaf, step: leaf, step_soak: leaf },
      { requiredKeys: [] },
    ),
    gates: fc.record(
      {
        window: leaf,
        min_requests: leaf,
        connect_p95: leaf,
        error_ratio: leaf,
        probe_failure_ratio: leaf,
        baseline_p95_factor: leaf,
        min_probes: leaf,
        crash_loop_restarts: leaf,
        crash_loop_window: leaf,
      },
      { requiredKeys: [] },
    ),
    extra_key: leaf,
  },
  { requiredKeys: ['primary', 'canary'] },
);
/** A random tree shaped like the schema (keys mostly right, every value random), as YAML text. */
const schemaShaped: fc.Arbitrary<string> = fc
  .record(
    {
      nginx: fc.record(
        {
          binary: leaf,
          conf: leaf,
          prefix: leaf,
          managed: leaf,
          upstreams_file: leaf,
          access_log: leaf,
          status_listen: leaf,
          snapshots: fc.record({ dir: leaf, keep: leaf }, { requiredKeys: [] }),
          min_reload_interval: leaf,
        },
        { requiredKeys: ['conf', 'upstreams_file', 'access_log'] },
      ),
      sidecar: fc.record({ listen: leaf, state_file: leaf, token_file: leaf }, { requiredKeys: [] }),
      alerts: fc.record({ webhook_url: leaf, paused_after: leaf }, { requiredKeys: [] }),
      services: fc.dictionary(fc.constantFrom('gateway', 'api', 'Bad-Name', 'a;b', ''), serviceDoc, {
        minKeys: 0,
        maxKeys: 2,
      }),
    },
    { requiredKeys: ['nginx', 'services'] },
  )
  .map((doc) => stringify(doc));

/** The demo weights.yaml as a JS tree, and the key path of every leaf in it. */
const DEMO_TREE = parse(DEMO) as unknown;
function leafPaths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(v)) return v.flatMap((x, i) => leafPaths(x, [...at, i]));
  if (typeof v === 'object' && v !== null) return Object.entries(v).flatMap(([k, x]) => leafPaths(x, [...at, k]));
  return [at];
}
const DEMO_LEAVES = leafPaths(DEMO_TREE);

/** `tree` with the value at `keyPath` replaced (or the key deleted when `value` is undefined); a copy. */
function setAt(tree: unknown, keyPath: readonly (string | number)[], value: unknown): unknown {
  const [head, ...rest] = keyPath;
  if (head === undefined) return value;
  if (Array.isArray(tree)) return tree.map((x: unknown, i) => (i === head ? setAt(x, rest, value) : x));
  const obj = { ...(tree as Record<string, unknown>) };
  const next = setAt(obj[head], rest, value);
  if (next === undefined) delete obj[head];
  else obj[head] = next;
  return obj;
}

/** The demo weights.yaml, valid-shaped, with 0–3 leaves set to random values or deleted, as YAML text. */
const validShaped: fc.Arbitrary<string> = fc
  .array(fc.tuple(fc.nat(), fc.option(leaf, { freq: 6, nil: undefined })), { minLength: 0, maxLength: 3 })
  .map((edits) =>
    stringify(edits.reduce((tree, [i, v]) => setAt(tree, DEMO_LEAVES[i % DEMO_LEAVES.length] ?? [], v), DEMO_TREE)),
  );

/** One edit of a list of lines. */
const mutation: fc.Arbitrary<(lines: string[]) => string[]> = fc.oneof(
  fc.nat().map((i) => (l: string[]) => l.filter((_, j) => j !== i % l.length)),
  fc.tuple(fc.nat(), fc.nat()).map(([i, j]) => (l: string[]) => {
    const out = [...l];
    const a = i % l.length;
    const b = j % l.length;
    [out[a], out[b]] = [out[b] ?? '', out[a] ?? ''];
    return out;
  }),
  fc.nat().map((i) => (l: string[]) => [...l.slice(0, (i % l.length) + 1), ...l.slice(i % l.length)]),
  fc.tuple(fc.nat(), rawScalar).map(
    ([i, v]) =>
      (l: string[]) =>
        l.map((x, j) => (j === i % l.length ? x.replace(/:(\s.*)?$/, `: ${v}`) : x)),
  ),
  fc
    .tuple(
      fc.nat(),
      fc.constantFrom('conf', 'Conf', 'target', 'tagret', 'services', 'nginx', 'weight', '"a b"', '? x', '- x'),
    )
    .map(
      ([i, k]) =>
        (l: string[]) =>
          l.map((x, j) => (j === i % l.length ? x.replace(/^(\s*)[^:#\s][^:]*:/, `$1${k}:`) : x)),
    ),
  fc.tuple(fc.nat(), fc.constantFrom('  ', '\t', ' ', '-')).map(
    ([i, p]) =>
      (l: string[]) =>
        l.map((x, j) => (j === i % l.length ? p + x : x)),
  ),
  fc.nat().map((i) => (l: string[]) => l.map((x, j) => (j === i % l.length ? x.replace(/^ {1,2}/, '') : x))),
  fc
    .tuple(
      fc.nat(),
      fc.constantFrom(
        '---',
        '...',
        '%YAML 1.1',
        'x: &anchor { a: 1 }',
        'y: *anchor',
        '<<: { nginx: 1 }',
        '!!map',
        '? complex key',
        '"\\u0000": 1',
        '\u202e: 1',
        '\uFEFFnginx: {}',
        'a: |\n  block\n  text',
        `deep: ${'['.repeat(200)}${']'.repeat(200)}`,
        `deep: ${'{a: '.repeat(100)}1${'}'.repeat(100)}`,
      ),
    )
    .map(([i, text]) => (l: string[]) => [...l.slice(0, i % (l.length + 1)), text, ...l.slice(i % (l.length + 1))]),
);

/** The demo weights.yaml after 1–4 random edits, sometimes truncated. */
const mutatedDemo: fc.Arbitrary<string> = fc
  .tuple(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.option(fc.nat(), { freq: 8 }))
  .map(([ms, cut]) => {
    const text = ms.reduce((l, m) => m(l), DEMO_LINES).join('\n');
    return cut === null ? text : text.slice(0, cut % (text.length + 1));
  });

/** Documents that try to exhaust the parser: nesting, alias bombs, many keys, big numbers, long strings. */
const pathological: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 10, max: 5000 }).map((n) => `nginx: ${'['.repeat(n)}${']'.repeat(n)}\nservices: {}\n`),
  fc
    .integer({ min: 10, max: 2000 })
    .map((n) => `${Array.from({ length: n }, (_, i) => `${' '.repeat(i)}k:`).join('\n')}\n`),
  fc.tuple(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 2, max: 12 })).map(([w, d]) => {
    let doc = `a0: &a0 [${Array(w).fill('x').join(', ')}]\n`;
    for (let i = 1; i < d; i++)
      doc += `a${i}: &a${i} [${Array(w)
        .fill(`*a${i - 1}`)
        .join(', ')}]\n`;
    return `${doc}nginx: *a${d - 1}\nservices: {}\n`;
  }),
  fc
    .integer({ min: 1, max: 300 })
    .map((n) => `${DEMO}\n${Array.from({ length: n }, (_, i) => `k${i}: ${i}`).join('\n')}\n`),
  fc.integer({ min: 1, max: 300 }).map((n) => DEMO.replace('target: 50', `target: ${'9'.repeat(n)}`)),
  fc.integer({ min: 1, max: 100_000 }).map((n) => DEMO.replace('split: weighted', `split: ${'w'.repeat(n)}`)),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a).toString('latin1')),
);

interface Stats {
  cases: number;
  valid: number;
  invalid: number;
  problems: number;
  wholeDocument: number;
  maxMs: number;
}

/** Writes `text`, loads it, checks the outcome (see the file comment) and that the file is unchanged. */
async function checkOne(file: string, text: string, stats: Stats): Promise<void> {
  await writeFile(file, text);
  const before = await readFile(file);
  const lines = text.split(/\r\n|\r|\n/).length;
  const t0 = performance.now();
  let error: unknown = null;
  try {
    await loadConfig(file);
  } catch (err) {
    error = err;
  }
  stats.maxMs = Math.max(stats.maxMs, performance.now() - t0);
  stats.cases++;
  if (!(await readFile(file)).equals(before)) throw new Error('loadConfig changed the file');
  if (error === null) {
    stats.valid++;
    return;
  }
  if (!(error instanceof ConfigError))
    throw new Error(`not a ConfigError: ${error instanceof Error ? error.stack : JSON.stringify(error)}`, {
      cause: error,
    });
  stats.invalid++;
  if (error.exitCode !== 2 || error.problems.length === 0) throw new Error('a ConfigError without problems');
  for (const p of error.problems) {
    stats.problems++;
    const where = JSON.stringify(p);
    if (p.position === null) throw new Error(`no position: ${where}`);
    if (p.position.file !== file) throw new Error(`wrong file: ${where}`);
    if (!(p.position.line >= 1 && p.position.line <= lines + 1)) throw new Error(`line out of the document: ${where}`);
    if (!(p.position.column >= 1)) throw new Error(`no column: ${where}`);
    if (p.message === '' || /[\n\r]/.test(p.message)) throw new Error(`message not one line: ${where}`);
    if (p.fix === '' || /[\n\r]/.test(p.fix)) throw new Error(`fix not one line: ${where}`);
    if (p.path === '') {
      if (!WHOLE_DOCUMENT.test(p.message)) throw new Error(`no key path: ${where}`);
      stats.wholeDocument++;
    }
  }
}

for (const [name, arb] of [
  ['the demo weights.yaml with random values', validShaped],
  ['random trees shaped like the schema', schemaShaped],
  ['mutations of the demo weights.yaml', mutatedDemo],
  ['pathological documents', pathological],
] as const) {
  t.test(`loadConfig: ${name}`, async (t) => {
    const file = path.join(t.testdir(), 'weights.yaml');
    const stats: Stats = { cases: 0, valid: 0, invalid: 0, problems: 0, wholeDocument: 0, maxMs: 0 };
    await fc.assert(
      fc.asyncProperty(arb, (text) => checkOne(file, text, stats)),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    t.comment(
      `${stats.cases} documents: ${stats.valid} valid, ${stats.invalid} ConfigErrors with ${stats.problems} problems ` +
        `(${stats.wholeDocument} about the whole document); slowest ${stats.maxMs.toFixed(0)} ms`,
    );
    t.equal(stats.cases, RUNS, `${RUNS} cases`);
    t.ok(stats.invalid > 0, 'some were rejected');
    if (name !== 'pathological documents')
      t.ok(stats.valid + stats.invalid === RUNS, 'every case ended in a Config or a ConfigError');
    t.ok(stats.maxMs < 5000, `no document took 5 s or more (slowest ${stats.maxMs.toFixed(0)} ms)`);
  });
}

t.test('the generators reach valid documents too', async (t) => {
  // Without this, "no crash" could hold only because everything failed early.
  const validOf = (arb: fc.Arbitrary<string>): number =>
    fc.sample(arb, { seed: SEED, numRuns: 200 }).filter((text) => {
      try {
        parseConfig(text, path.join(repoRoot, 'weights.yaml'));
        return true;
      } catch {
        return false;
      }
    }).length;
  const valid = validOf(mutatedDemo);
  t.ok(valid >= 10, `${valid} of 200 mutated demo files are still valid`);
  const shaped = validOf(validShaped);
  t.ok(shaped >= 40, `${shaped} of 200 demo files with random values are still valid`);
});

/** Every file under `dir` with its bytes (base64), sorted by path. */
async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    out.set(path.relative(dir, p), e.isFile() ? (await readFile(p)).toString('base64') : 'dir');
  }
  return out;
}

t.test('the CLI (check, target) on mutated files changes no file', async (t) => {
  const dir = t.testdir();
  await mkdir(path.join(dir, 'nginx'));
  await cp(path.join(repoRoot, 'nginx'), path.join(dir, 'nginx'), { recursive: true });
  const file = path.join(dir, 'weights.yaml');
  const counts = { cases: 0, checkOk: 0, checkFailed: 0, targetOk: 0, targetRefused: 0, skipped: 0 };
  const cli = async (args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await main(['node', 'nginx-canary', '-c', file, ...args], {
      out: (s) => (out += s),
      err: (s) => (err += s),
    });
    return { code, out, err };
  };
  await fc.assert(
    fc.asyncProperty(mutatedDemo, async (text) => {
      // Only the real nginx binary may run: a mutated `binary:` could name any program on PATH.
      try {
        if (parseConfig(text, file).nginx.binary !== 'nginx') {
          counts.skipped++;
          return;
        }
      } catch {
        // invalid: the CLI stops before running anything
      }
      counts.cases++;
      await writeFile(file, text);
      const before = await tree(dir);
      const check = await cli(['check']);
      if (check.code === 0) counts.checkOk++;
      else {
        counts.checkFailed++;
        if (check.err.trim() === '') throw new Error(`check exited ${check.code} without a word`);
        if (check.code === 2 && check.out !== '') throw new Error('check printed on stdout for an invalid file');
      }
      const afterCheck = await tree(dir);
      if (JSON.stringify([...afterCheck]) !== JSON.stringify([...before])) throw new Error('check changed a file');
      const target = await cli(['target', 'gateway', '20']);
      const after = await tree(dir);
      if (target.code !== 0) {
        counts.targetRefused++;
        if (target.err.trim() === '') throw new Error(`target exited ${target.code} without a word`);
        if (JSON.stringify([...after]) !== JSON.stringify([...before]))
          throw new Error('a refused target changed a file');
        return;
      }
      counts.targetOk++;
      for (const [k, v] of after)
        if (k !== 'weights.yaml' && before.get(k) !== v) throw new Error(`target changed ${k}`);
      if (after.size !== before.size) throw new Error('target created or removed a file');
      const edited = parseConfig(await readFile(file, 'utf8'), file);
      const gw = edited.services.find((s) => s.name === 'gateway');
      if (gw?.rollout.target !== 20) throw new Error(`target did not set 20: ${JSON.stringify(gw?.rollout)}`);
    }),
    { seed: SEED, numRuns: CLI_RUNS, endOnFailure: true },
  );
  t.comment(
    `${counts.cases} files through the CLI (${counts.skipped} skipped: binary not nginx): check ok ${counts.checkOk}, ` +
      `failed ${counts.checkFailed}; target ok ${counts.targetOk}, refused ${counts.targetRefused}`,
  );
  t.ok(counts.cases >= CLI_RUNS * 0.9, `${counts.cases} cases ran`);
  t.ok(counts.checkOk > 0 && counts.checkFailed > 0, 'both outcomes of check were seen');
});
