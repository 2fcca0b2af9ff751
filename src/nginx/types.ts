/**
 * Ports around nginx. The pure renderer (`model.ts` + `render.ts`) turns
 * config + weights + generation into the include file; everything that runs
 * the nginx binary, touches files or the disk sits behind these interfaces so
 * tests can hand a real nginx on loopback or a test double.
 */
import type { Config } from '../config/types.js';
import type { CanaryError } from '../errors.js';
import type { WeightRaise } from './rollback-choice.js';

/** Open-source nginx or NGINX Plus, read from `nginx -V` ("nginx-plus" in the version line). */
export type Flavor = 'oss' | 'plus';

/** What `nginx -V` told us. */
export interface NginxVersion {
  /** `plus` when the version line names "nginx-plus", else `oss`. */
  flavor: Flavor;
  /** e.g. `1.22.1` or `1.25.3 (nginx-plus-r31)`. */
  version: string;
  /**
   * The compiled prefix (`--prefix=` in `nginx -V`; `/usr/local/nginx` when absent): what relative
   * `load_module`, log and temp paths resolve against when nginx runs without `-p`.
   */
  prefix: string;
}

/** Result of `nginx -t`. */
export interface TestResult {
  /** True when `nginx -t` exited 0 (a run killed at its timeout is false). */
  ok: boolean;
  /** nginx's own stderr, trimmed (names the file and line of a parse error). */
  output: string;
}

/** Runs the nginx binary and reads its status server. */
export interface NginxCtl {
  /** `nginx -V`. Throws NC_NGINX_BINARY when the binary cannot run. */
  version(): Promise<NginxVersion>;
  /**
   * `nginx -t [-p prefix] -c <conf>`; `conf` defaults to the configured nginx.conf. Never throws for a
   * failing test; throws NC_NGINX_BINARY when the binary cannot run.
   */
  test(conf?: string): Promise<TestResult>;
  /** `nginx -s reload`. Throws a CanaryError (NC_RELOAD_FAILED) when the command fails. */
  reload(): Promise<void>;
  /** The generation (integer ≥ 0) the status server answers now, or null when it does not answer; never throws. */
  generation(): Promise<number | null>;
}

/** Free space of the volume holding `path`, ratio 0–1. Injectable so a test needs no full disk (README "Faults, and what the sidecar does"). */
export interface DiskStat {
  /** Free ratio 0–1 (not percent) of the volume holding `path`; rejects with the fs error when it cannot be measured. */
  freeRatio(path: string): Promise<number>;
}

/** Minimum free ratio before any change (docs/design.md "Numbers": abort when free disk < 10 %). */
export const MIN_FREE_DISK_RATIO = 0.1;

/** What the runner asks the applier to make live. */
export interface ApplyRequest {
  /** Canary weight per service, percent 0–100. */
  weights: Record<string, number>;
  /** The generation to render; must be greater than the live one. */
  generation: number;
  /** Why (recorded in the snapshot manifest). */
  reason: string;
  /**
   * Services whose canary is drained (the runner's phase `drained`); default none. Passed to
   * `buildModel` (model.ts `BuildOptions.drained`): their `X-Canary: always` goes to the primary and
   * their comment line in the include file says `drained`. Names not in the config are ignored.
   */
  drained?: readonly string[];
}

/** Stage at which an apply stopped. */
export type ApplyStage =
  'interval' | 'workers' | 'disk' | 'preflight' | 'snapshot' | 'write' | 'test' | 'reload' | 'verify';

/** Every {@link ApplyStage}, in the order an apply runs them (metrics initialise one series per stage). */
export const APPLY_STAGES: readonly ApplyStage[] = [
  'interval',
  'workers',
  'disk',
  'preflight',
  'snapshot',
  'write',
  'test',
  'reload',
  'verify',
];

/**
 * Outcome of one apply. On failure nothing is left changed (the snapshot was
 * restored when needed; `restored` says whether it was). `durationMs` is the
 * time the apply took, ms on the monotonic clock; `snapshotId` is the
 * {@link SnapshotInfo.id} taken before the change.
 */
export type ApplyResult =
  | { ok: true; generation: number; snapshotId: string; durationMs: number }
  | { ok: false; stage: ApplyStage; error: CanaryError; restored: boolean; durationMs: number };

/** One snapshot on disk. */
export interface SnapshotInfo {
  /** Sortable id, e.g. `20261121T170501.123Z-g42`. */
  id: string;
  /** Absolute path of the `.tar.gz`. */
  file: string;
  /** Epoch ms when taken. */
  at: number;
  /** Generation live when it was taken (the config it holds). */
  generation: number;
  /** Canary weight per service live when it was taken, percent 0–100. */
  weights: Record<string, number>;
  /** Why it was taken (the apply's or rollback's reason). */
  reason: string;
}

/** Stage at which a rollback stopped: `select` = the snapshot is missing, invalid, or none is older than the live config. */
export type RollbackStage = 'select' | ApplyStage;

/**
 * Outcome of one rollback. On failure the config directory was put back as it
 * was before the rollback when `restored`. `durationMs`: ms on the monotonic
 * clock; `generation`: the snapshot's generation, now live.
 */
export type RollbackResult =
  | {
      ok: true;
      snapshot: SnapshotInfo;
      generation: number;
      /** Canary weights the restore raised above what was live (only ever non-empty for a named snapshot). */
      raises: WeightRaise[];
      durationMs: number;
    }
  | {
      ok: false;
      stage: RollbackStage;
      error: CanaryError;
      restored: boolean;
      snapshot: SnapshotInfo | null;
      durationMs: number;
    };

/**
 * The runner's one port to nginx (docs/fleet.md "Data flow in both modes"; the shape of Argo Rollouts'
 * traffic router: set a weight *and verify it*). Everything nginx — flavor, rendering, the include
 * file's header, `nginx -t`, reload, snapshots, the live generation — stays behind it; nginx/apply.ts
 * `Applier` is the real one, and a fake of a few lines drives the Runner in tests.
 */
export interface NginxPort {
  /** `oss` or `plus` (slow_start is emulated by a ramp on oss). */
  flavor(): Promise<Flavor>;
  /** Renders `req`, then disk guard → preflight → snapshot → write → `nginx -t` → reload → verify; restores on failure. */
  apply(req: ApplyRequest): Promise<ApplyResult>;
  /** Writes the include for `req` without a reload (nginx not started yet, or no include yet). */
  writeInitial(req: ApplyRequest): Promise<ApplyResult>;
  /** Restores a snapshot (`id`, or the newest older one that raises no weight) and proves it live. */
  rollback(id?: string): Promise<RollbackResult>;
  /**
   * True when the include file on disk is exactly what `req` renders and nginx answers `req.generation`
   * (the reconcile check: false after a hand edit of the file or a reload of another config).
   */
  isLive(req: ApplyRequest): Promise<boolean>;
  /**
   * Milliseconds until `apply(req)` would pass the interval guard (0 = now): nginx.min_reload_interval
   * counted from the port's own last reload signal, on the monotonic clock, for a change that raises a
   * weight or lowers none; 0 for one that only lowers. A drift reconcile waits this out instead of
   * failing at stage `interval`. Never throws.
   */
  reloadWaitMs(req: Pick<ApplyRequest, 'weights'>): Promise<number>;
  /** The generation in the include file's header on disk, 0 when there is none (a fresh state continues from it). */
  fileGeneration(): Promise<number>;
  /** Adopts a reloaded weights.yaml. @throws ConfigError for changes that need a restart. */
  reconfigure(config: Config): Promise<void>;
}
