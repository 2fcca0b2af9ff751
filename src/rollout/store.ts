/**
 * state.json: the walk's progress (docs/design.md "weights.yaml": progress only,
 * desired state lives in weights.yaml). Written atomically (temp file in the
 * same directory, fsync, rename, fsync of the directory) so a crash leaves
 * either the old or the new file, never a mix; read strictly (a file that is
 * not exactly a State is an error, never a guess).
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { errors } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { State } from './types.js';

/** `s` with control characters and non-ASCII shown as JSON escapes, cut to 200 characters (for error messages). */
function printable(s: string): string {
  const escaped = JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s).slice(1, -1);
  return escaped.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `T | null`. */
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

const PhaseSchema = Type.Union([
  Type.Literal('idle'),
  Type.Literal('slice'),
  Type.Literal('step'),
  Type.Literal('paused'),
  Type.Literal('drained'),
  Type.Literal('complete'),
  Type.Literal('promoted'),
]);

const ServiceStateSchema = Type.Object(
  {
    weight: Type.Number({ minimum: 0, maximum: 100 }),
    phase: PhaseSchema,
    resumePhase: Nullable(
      Type.Union([Type.Literal('idle'), Type.Literal('slice'), Type.Literal('step'), Type.Literal('complete')]),
    ),
    pausedBy: Nullable(Type.Union([Type.Literal('gate'), Type.Literal('operator')])),
    target: Type.Number({ minimum: 0, maximum: 100 }),
    since: Type.Number(),
    soakedMs: Type.Number({ minimum: 0 }),
    lastTickAt: Type.Number(),
    drainReason: Nullable(Type.String()),
    ramp: Type.Optional(
      Nullable(
        Type.Object(
          {
            to: Type.Number({ minimum: 0, maximum: 100 }),
            step: Type.Integer({ minimum: 1 }),
            steps: Type.Integer({ minimum: 1 }),
            startedAt: Type.Number(),
            cause: Type.Union([Type.Literal('slice'), Type.Literal('recovery')]),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    canary: Type.Optional(Nullable(Type.String())),
    releasedAt: Type.Optional(Nullable(Type.Number())),
    promotedVersion: Type.Optional(Nullable(Type.String())),
  },
  { additionalProperties: false },
);

/** TypeBox schema of a gate result (rollout/types.ts `GateResult`). */
export const GateResultSchema = Type.Object(
  {
    gate: Type.Union([
      Type.Literal('ready'),
      Type.Literal('connect_p95'),
      Type.Literal('error_ratio'),
      Type.Literal('probe_failure_ratio'),
      Type.Literal('baseline_p95'),
      Type.Literal('crash_loop'),
      Type.Literal('starved'),
    ]),
    kind: Type.Union([Type.Literal('hold'), Type.Literal('drain')]),
    pool: Type.Union([Type.Literal('primary'), Type.Literal('canary')]),
    verdict: Type.Union([Type.Literal('pass'), Type.Literal('fail'), Type.Literal('inconclusive')]),
    value: Nullable(Type.Number()),
    threshold: Type.Number(),
    samples: Type.Number({ minimum: 0 }),
    minSamples: Type.Number({ minimum: 0 }),
    detail: Type.Optional(Type.Record(Type.String(), Nullable(Type.Number()))),
  },
  { additionalProperties: false },
);

const RolloutEventSchema = Type.Object(
  {
    at: Type.Number(),
    service: Type.String(),
    kind: Type.Union([
      Type.Literal('target'),
      Type.Literal('slice'),
      Type.Literal('step'),
      Type.Literal('lower'),
      Type.Literal('complete'),
      Type.Literal('pause'),
      Type.Literal('resume'),
      Type.Literal('drain'),
      Type.Literal('abort'),
      Type.Literal('apply_failed'),
      Type.Literal('rollback'),
      Type.Literal('hold'),
      Type.Literal('ramp'),
      Type.Literal('release'),
      Type.Literal('promote'),
    ]),
    from: Type.Number(),
    to: Type.Number(),
    reason: Type.String(),
    gates: Type.Array(GateResultSchema),
  },
  { additionalProperties: false },
);

/** TypeBox schema of state.json (rollout/types.ts `State`); both validator and static type. */
export const StateSchema = Type.Object(
  {
    version: Type.Literal(1),
    generation: Type.Integer({ minimum: 0 }),
    lastReloadAt: Type.Number(),
    services: Type.Record(Type.String(), ServiceStateSchema),
    history: Type.Array(RolloutEventSchema),
  },
  { additionalProperties: false },
);

/** Compile-time proof that the schema and the hand-written State type are the same shape. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _schemaMatchesState: Same<Static<typeof StateSchema>, State> = true;

/**
 * Validates a parsed state.json against {@link StateSchema}. Returns the State
 * or throws NC_STATE_CORRUPT naming `file` and the first problems (JSON pointer: message).
 */
export function parseState(file: string, data: unknown): State {
  if (Value.Check(StateSchema, data)) return data;
  const problems = [...Value.Errors(StateSchema, data)].slice(0, 3).map((e) => `${e.path || '/'}: ${e.message}`);
  throw errors.stateCorrupt(file, `not a nginx-canary state: ${problems.join('; ')}`);
}

/**
 * The state.json file. `load` reads and validates it; `save` replaces it
 * atomically. Saves from one StateStore are serialized (run one after another
 * in call order), so the file always ends as the last saved state.
 */
export class StateStore {
  readonly #file: string;
  #queue: Promise<unknown> = Promise.resolve();

  /** `file`: absolute path of state.json (config sidecar.state_file). */
  constructor(file: string) {
    this.#file = file;
  }

  /** Absolute path of state.json. */
  get file(): string {
    return this.#file;
  }

  /**
   * Reads state.json. Returns null when the file does not exist (first run).
   * Throws NC_STATE_CORRUPT (errors.stateCorrupt, naming the file) when it
   * cannot be read, is not JSON (including a truncated write), or is not
   * exactly a State.
   */
  async load(): Promise<State | null> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (err) {
      // fs rejects with a NodeJS.ErrnoException (code, message).
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') return null;
      throw errors.stateCorrupt(this.#file, e.message);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw errors.stateCorrupt(
        this.#file,
        // V8 quotes the offending input; escape it so garbage bytes cannot break the one-line message.
        `invalid JSON (${printable((err as Error).message)}); a write may have been cut short`,
      );
    }
    return parseState(this.#file, data);
  }

  /**
   * Replaces state.json with `state` atomically (writeFileAtomic of
   * src/util/atomic.ts: a temp file beside it, mode 0600, fsync, rename,
   * fsync of the directory). Creates the directory (mode 0700) when missing.
   * Saves run one at a time, in call order.
   * Rejects with the fs error (the temp file is removed); the old file stays.
   */
  save(state: State): Promise<void> {
    const text = `${JSON.stringify(state, null, 2)}\n`;
    const run = this.#queue.then(() => this.#write(text));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #write(text: string): Promise<void> {
    await mkdir(dirname(this.#file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.#file, text, 0o600);
  }
}
