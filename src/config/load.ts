/**
 * Reads weights.yaml: text → yaml Document (with a LineCounter) → plain value
 * → `validateConfig` (validate.ts). Every problem, YAML syntax included,
 * carries file:line:column and a key path; all of them are thrown together
 * as one ConfigError (exit 2, HTTP 400).
 */
import { readFile } from 'node:fs/promises';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import { ConfigError, type ConfigProblem, type SourcePosition } from '../errors.js';
import type { Config } from './types.js';
import { validateConfig, formatPath, type Locate, type PathSegment, type ValidateOptions } from './validate.js';

/** Options for yaml: YAML 1.2 core schema, no custom tags, duplicate keys are errors, no stderr warnings. */
export const YAML_OPTIONS = {
  prettyErrors: false,
  uniqueKeys: true,
  resolveKnownTags: false,
  logLevel: 'error',
  version: '1.2',
} as const;

/** Fix sentences for YAML error codes the yaml library reports. */
const YAML_FIXES: Readonly<Record<string, string>> = {
  DUPLICATE_KEY: 'Keep only one of the two entries with this key',
  TAB_AS_INDENT: 'Indent with spaces, not tabs',
  MULTIPLE_DOCS: 'Keep a single YAML document (remove the `---` separator and what follows it)',
  TAG_RESOLVE_FAILED: 'Remove the `!tag`; weights.yaml takes plain strings, numbers, booleans, lists and mappings',
};
const DEFAULT_FIX = 'Fix the YAML syntax here; quote values that contain : # { } [ ] , & * ! | > \' " % @ or `';

type Parsed = Document.Parsed;

/** The key path of the deepest entry (`key: value` pair or list item) whose source contains `offset`. */
function pathAt(node: unknown, offset: number, at: PathSegment[] = []): PathSegment[] {
  const entries: [PathSegment, unknown, unknown][] = isMap(node)
    ? node.items.map((p) => [String(isScalar(p.key) ? p.key.value : p.key), p.key, p.value])
    : isSeq(node)
      ? node.items.map((v, i) => [i, v, v])
      : [];
  for (const [seg, first, last] of entries) {
    // A pair spans from its key to the end of its value; recursing into a value that does not hold `offset` ends here.
    if (offset >= start(first as Node) && offset < end((last ?? first) as Node))
      return pathAt(last, offset, [...at, seg]);
  }
  return at;
}

/** Builds the `locate` callback validate.ts uses, over a parsed document. */
function makeLocate(doc: Parsed, lc: LineCounter, file: string): Locate {
  const pos = (offset: number): SourcePosition => {
    const { line, col } = lc.linePos(offset);
    return { file, line, column: col };
  };
  return (segments, at = 'value') => {
    let node: unknown = doc.contents;
    for (const [i, seg] of segments.entries()) {
      if (isAlias(node)) node = node.resolve(doc);
      let next: unknown;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        const key = pair?.key as Node | undefined;
        if (key && i === segments.length - 1 && at === 'key') return pos(start(key));
        // `key:` with nothing after it: point at the key.
        const value = pair?.value as Node | null | undefined;
        next = value === null || value?.range?.[0] === value?.range?.[1] ? key : value;
      } else if (isSeq(node) && typeof seg === 'number') {
        next = node.items[seg];
      }
      if (next === undefined) break;
      node = next;
    }
    return pos(start(node as Node));
  };
}

function stripPeriod(s: string): string {
  return s.replace(/\.\s*$/, '');
}

/**
 * Largest weights.yaml accepted, bytes (256 KiB: a chosen bound, about 100× a
 * file with 20 services; larger files are refused before the YAML parser runs).
 */
export const MAX_CONFIG_BYTES = 256 * 1024;

/**
 * Parses and validates the text of a weights.yaml. Pure (no I/O): `file` is
 * used for messages and to resolve relative paths (see validateConfig).
 *
 * Throws ConfigError listing every problem (file:line:column, key path,
 * message, fix): YAML syntax errors, duplicate keys, tabs used as
 * indentation, tags, several documents, an empty file, a root that is not a
 * mapping, unresolved aliases, then schema and semantic problems. A text
 * over {@link MAX_CONFIG_BYTES} is refused before parsing. `opts` go to
 * validateConfig (the hostname standing in for an unset `fleet.host`).
 */
export function parseConfig(text: string, file: string, opts: ValidateOptions = {}): Config {
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) {
    // Checked before parsing: the yaml parser's time grows with the square of a mapping's keys (50,000 keys
    // took 232 s in the fuzz run), and the daemon re-reads this file while it runs.
    throw new ConfigError([
      {
        position: { file, line: 1, column: 1 },
        path: '',
        message: `${file} is ${Buffer.byteLength(text)} bytes, more than the ${MAX_CONFIG_BYTES} a weights.yaml may have`,
        fix: 'weights.yaml holds a few services; check that -c/--config names the right file',
      },
    ]);
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { ...YAML_OPTIONS, lineCounter: lc });
  const locate = makeLocate(doc, lc, file);
  const pos = (offset: number): SourcePosition => {
    const { line, col } = lc.linePos(offset);
    return { file, line, column: col };
  };

  const problems: (ConfigProblem & { position: SourcePosition })[] = [...doc.errors, ...doc.warnings].map((e) => ({
    position: pos(e.pos[0]),
    // After a syntax error the tree is a guess: name a key path only where the tree is sound.
    path:
      e.code === 'DUPLICATE_KEY' || e.code === 'TAG_RESOLVE_FAILED' ? formatPath(pathAt(doc.contents, e.pos[0])) : '',
    message: `invalid YAML: ${stripPeriod(e.message)}`,
    fix: YAML_FIXES[e.code] ?? DEFAULT_FIX,
  }));
  if (problems.length === 0 && doc.contents === null) {
    problems.push({
      position: pos(0),
      path: '',
      message: 'the file is empty',
      fix: 'Write at least nginx: and services: (start from examples/weights.production.yaml)',
    });
  }
  if (problems.length === 0) {
    visit(doc, {
      Alias(_, node) {
        if (node.resolve(doc) === undefined) {
          problems.push({
            position: pos(start(node)),
            path: formatPath(pathAt(doc.contents, start(node))),
            message: `alias *${node.source} has no anchor &${node.source} before it`,
            fix: 'Define the anchor before the alias, or write the value out',
          });
        }
      },
    });
  }
  let raw: unknown;
  if (problems.length === 0) {
    try {
      raw = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      problems.push({
        position: pos(0),
        path: '',
        message: `the YAML cannot be read: ${stripPeriod((err as Error).message)}`,
        fix: 'Write the values out instead of nesting aliases',
      });
    }
  }
  if (problems.length > 0) {
    problems.sort((a, b) => a.position.line - b.position.line || a.position.column - b.position.column);
    throw new ConfigError(problems);
  }
  const result = validateConfig(raw, file, locate, opts);
  if (!result.ok) throw new ConfigError(result.problems);
  return result.value;
}

/**
 * Where a key path sits in the text of a weights.yaml, as the loader's problems place it (`at: 'key'`
 * the key itself, `'value'` its value; a missing key answers its deepest existing ancestor), for
 * messages about a config that loaded fine (`check` naming the line of `fleet.etcd`). Pure; null when
 * the text is not one well-formed YAML document.
 */
export function locateIn(
  text: string,
  file: string,
  segments: readonly PathSegment[],
  at: 'key' | 'value' = 'value',
): SourcePosition | null {
  const lc = new LineCounter();
  const doc = parseDocument(text, { ...YAML_OPTIONS, lineCounter: lc });
  if (doc.errors.length > 0 || doc.contents === null) return null;
  return makeLocate(doc, lc, file)(segments, at);
}

/** Offset just past a parsed node's source, trailing comments and blank lines included. */
function end(node: Node): number {
  return node.range![2];
}

/** Offset where a parsed node's source starts. */
function start(node: Node): number {
  return node.range![0];
}

/**
 * Reads and validates weights.yaml. Throws ConfigError (exit 2) when the
 * file cannot be read (the problem names the file and the OS reason) or is
 * invalid (see {@link parseConfig}).
 */
export async function loadConfig(file: string): Promise<Config> {
  return parseConfig(await readConfigText(file), file);
}

/** Reads weights.yaml as UTF-8; an unreadable file → ConfigError whose one problem names the file and the OS reason. */
export async function readConfigText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([
      {
        position: null,
        path: '',
        message: `cannot read ${file} (${(err as Error).message})`,
        fix: 'Check the path given with -c/--config (default ./weights.yaml) and its permissions',
      },
    ]);
  }
}
