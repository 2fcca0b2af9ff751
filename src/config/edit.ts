/**
 * Changes the target weight (and the canary's version) in weights.yaml in
 * place (docs/design.md "weights.yaml": the CLI and the API edit the file;
 * the daemon picks the change up). Only the target
 * value's characters change when the key exists, so comments, alignment and
 * quoting elsewhere survive byte for byte; otherwise the yaml Document API
 * adds the key (comments survive, spacing may be normalized). The new text
 * is validated in full before it is written, and written atomically; writers
 * are serialized by `<weights.yaml>.lock` (src/lock.ts) and a file changed by
 * an editor meanwhile is re-edited, never overwritten (see setTarget).
 */
import { readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { isMap, isScalar, parseDocument } from 'yaml';
import { ConfigError, errors } from '../errors.js';
import { acquireLock } from '../lock.js';
import { syncDir, writeTempBeside } from '../util/atomic.js';
import { parseConfig, readConfigText, YAML_OPTIONS } from './load.js';
import { toTenthPercent } from './units.js';
import { formatPath } from './validate.js';

/** A key of `services.<service>.rollout` the CLI and API edit, with the value it takes. */
export type RolloutEdit = { key: 'target'; value: number } | { key: 'version'; value: string };

/** A value as YAML text: a number as `String(n)`; a string always double-quoted, so `1.10` stays a string. */
function yamlValue(edit: RolloutEdit): string {
  return edit.key === 'target' ? String(edit.value) : JSON.stringify(edit.value);
}

/**
 * Returns `text` with `services.<service>.rollout.<key>` set to the edit's value
 * (a target, percent 0–100, as `String(weight)`; a version double-quoted). Pure.
 * Only the value's characters change when the key exists; otherwise it creates
 * `rollout:` or the key (and the service). Does not validate the result. `text`
 * must hold `services.<service>` as a plain mapping (true of any valid file:
 * servers are unique, so a service cannot be an alias of another).
 *
 * @throws Error (from the yaml library) when `services.<service>` is a scalar, e.g.
 *   "Expected YAML collection at gateway".
 */
export function replaceRolloutKey(text: string, service: string, edit: RolloutEdit): string {
  const doc = parseDocument(text, YAML_OPTIONS);
  const at = ['services', service, 'rollout', edit.key];
  const node = doc.getIn(at, true);
  if (isScalar(node) && node.range) {
    return text.slice(0, node.range[0]) + yamlValue(edit) + text.slice(node.range[1]);
  }
  const rollout = doc.getIn(at.slice(0, 3), true);
  if (isMap(rollout)) rollout.set(edit.key, edit.value);
  else {
    const created = doc.createNode({ [edit.key]: edit.value });
    created.comment = isScalar(rollout) ? rollout.comment : undefined;
    doc.setIn(at.slice(0, 3), created);
  }
  return doc.toString();
}

/** {@link replaceRolloutKey} for the target (percent 0–100). Pure; throws as it does. */
export function replaceTarget(text: string, service: string, weight: number): string {
  return replaceRolloutKey(text, service, { key: 'target', value: weight });
}

/**
 * Plans the edit of `text`: the key's current value (`from`) and the new text.
 * Pure apart from naming `file` in errors.
 * @throws what {@link setTarget} documents for an invalid file, an unknown service or an aliased rollout.
 */
function plan<E extends RolloutEdit>(
  text: string,
  file: string,
  service: string,
  edit: E,
): { from: E['value'] | null; next: string } {
  const before = parseConfig(text, file);
  const current = before.services.find((s) => s.name === service);
  if (!current) throw errors.unknownService(service);
  const next = replaceRolloutKey(text, service, edit);
  const after = parseConfig(next, file);
  let from: E['value'] | null;
  if (edit.key === 'target') {
    from = current.rollout.target;
    current.rollout.target = edit.value;
  } else {
    from = current.rollout.version;
    current.rollout.version = edit.value;
  }
  if (!isDeepStrictEqual(before, after)) {
    throw new ConfigError([
      {
        position: null,
        path: formatPath(['services', service, 'rollout', edit.key]),
        message:
          'cannot be edited alone: the rollout settings are shared with another entry through a YAML anchor or alias',
        fix: `Write \`rollout:\` of this service out in full (no &anchor / *alias), then set the ${edit.key} again`,
      },
    ]);
  }
  return { from, next };
}

/**
 * Writes `next` over `real` (a real path) atomically — temp file beside it
 * with its mode and (when allowed) owner, fsync, rename, fsync of the
 * directory (src/util/atomic.ts) — but only if `real` still holds `expected` just before the
 * rename. Resolves to false, leaving `real` alone, when it does not.
 */
async function replaceIfUnchanged(
  real: string,
  file: string,
  expected: string,
  next: string,
  beforeCommit: (() => Promise<void>) | undefined,
): Promise<boolean> {
  const { mode, uid, gid } = await stat(real);
  let tmp: string | undefined;
  try {
    tmp = await writeTempBeside(real, next, { mode: mode & 0o7777, owner: { uid, gid } });
    await beforeCommit?.();
    // Compare before rename: a writer that takes no lock (an editor) saved meanwhile? Then redo the edit on its text.
    if ((await readFile(real, 'utf8')) !== expected) {
      await rm(tmp, { force: true });
      return false;
    }
    await rename(tmp, real);
  } catch (cause) {
    if (tmp !== undefined) await rm(tmp, { force: true });
    throw errors.configWrite(file, cause);
  }
  await syncDir(path.dirname(real));
  return true;
}

/** Options of {@link setTarget}. */
export interface SetTargetOptions {
  /** How long to wait for another writer's `<weights.yaml>.lock`, ms (default 5000; a chosen bound). */
  lockWaitMs?: number;
  /** Edits tried at most when the file keeps changing under the edit (default 5; a chosen bound). */
  attempts?: number;
  /** Test seam: runs after the new text is in its temp file, before the compare and rename. */
  beforeCommit?: () => Promise<void>;
}

/**
 * Sets `services.<service>.rollout.target` in `file` to `weight` (percent
 * 0–100, at most one decimal) and returns the old and new target (percent;
 * `from` is the value this edit replaced).
 *
 * Concurrent writers lose no update: writers through this function (the CLI
 * `target`, the API via runner.setTarget, in any process) are serialized by
 * the lock file `<real path of file>.lock` (src/lock.ts; waits up to
 * `opts.lockWaitMs`, a dead holder's lock is taken over), each reading,
 * editing and renaming under it; and a writer that takes no lock (an
 * operator's editor) is caught by comparing the file with the text read just
 * before the rename: the edit is then redone on the new text (up to
 * `opts.attempts` times). Readers only ever see the old or the new file.
 *
 * Throws, leaving the file byte-identical: ConfigError naming the key when
 * the weight is out of range or finer than 0.1, or when the edit would change
 * more than this one target (a value shared through a YAML anchor/alias);
 * ConfigError when the file is unreadable or invalid before or after the edit; `errors.unknownService`
 * (NC_UNKNOWN_SERVICE) when no such service; NC_LOCK_TIMEOUT when another writer holds the lock
 * past `opts.lockWaitMs`; NC_CONFIG_BUSY when the file changed under each attempt;
 * `errors.configWrite` (NC_CONFIG_WRITE) when the temp file cannot be written or renamed; the plain fs
 * error when the file's real path cannot be resolved or stat'ed, the lock file cannot be created, or
 * (after the rename, so the new text is in place) the directory cannot be fsynced. Writing the same
 * target again leaves the file untouched (and takes no lock).
 */
export async function setTarget(
  file: string,
  service: string,
  weight: number,
  opts: SetTargetOptions = {},
): Promise<{ from: number; to: number }> {
  const to = targetOf(service, weight);
  const from = await editRollout(file, service, { key: 'target', value: to }, opts);
  return { from: from ?? 0, to };
}

/**
 * Sets `services.<service>.rollout.version` in `file` to `version` (`nginx-canary release`: a new
 * canary build, which the sidecar walks from the slice) and returns the old version (null when
 * there was none) and the new one. The same lock, compare-before-rename and atomic write as
 * {@link setTarget}, which documents the errors; a version outside letters, digits and `. _ + -`
 * is a ConfigError naming `rollout.version`, and the file is left byte-identical.
 */
export async function setVersion(
  file: string,
  service: string,
  version: string,
  opts: SetTargetOptions = {},
): Promise<{ from: string | null; to: string }> {
  const from = await editRollout(file, service, { key: 'version', value: version }, opts);
  return { from, to: version };
}

/** The locked read-edit-compare-rename loop of {@link setTarget} and {@link setVersion}; resolves to the value replaced. */
async function editRollout<E extends RolloutEdit>(
  file: string,
  service: string,
  edit: E,
  opts: SetTargetOptions,
): Promise<E['value'] | null> {
  // A first look without the lock: invalid requests and no-ops never touch the directory.
  const seen = await readConfigText(file);
  const first = plan(seen, file, service, edit);
  if (first.next === seen) return first.from;
  const real = await realpath(file);
  const lock = await acquireLock(`${real}.lock`, { waitMs: opts.lockWaitMs ?? 5000 });
  try {
    const attempts = opts.attempts ?? 5;
    for (let i = 0; i < attempts; i++) {
      const text = await readConfigText(file);
      const { from, next } = plan(text, file, service, edit);
      if (next === text) return from;
      if (await replaceIfUnchanged(real, file, text, next, opts.beforeCommit)) return from;
    }
    throw errors.configBusy(file, attempts);
  } finally {
    await lock.release();
  }
}

/** `weight` as a target (percent 0–100, one decimal). @throws ConfigError naming `rollout.target` otherwise. */
function targetOf(service: string, weight: number): number {
  const to = weight >= 0 && weight <= 100 ? toTenthPercent(weight) : null;
  if (to === null) {
    throw new ConfigError([
      {
        position: null,
        path: formatPath(['services', service, 'rollout', 'target']),
        message: `must be a percentage from 0 to 100 with at most one decimal (got ${String(weight)})`,
        fix: 'Give a weight such as 60 or 12.5',
      },
    ]);
  }
  return to;
}

/**
 * Checks a target (percent 0–100, at most one decimal) or version edit exactly as {@link setTarget} /
 * {@link setVersion} would, on the text of `file`, without writing anything (fleet mode: the value goes
 * to etcd, weights.yaml stays as it is). Returns the normalized value. Throws what those document for an
 * invalid value or an unknown service.
 */
export async function checkRolloutEdit<E extends RolloutEdit>(
  file: string,
  service: string,
  edit: E,
): Promise<E['value']> {
  const value: E['value'] = edit.key === 'target' ? targetOf(service, edit.value) : edit.value;
  plan(await readConfigText(file), file, service, { ...edit, value });
  return value;
}
