/**
 * Which snapshot a plain `nginx-canary rollback` restores. Pure.
 *
 * A rollback exists to get back to safety, so restoring a snapshot must never
 * raise a canary's live weight behind the walk's back: after a drain (canary
 * at 0) the snapshot taken just before the drain holds the failing canary at
 * its old weight, and restoring it would send that canary traffic again. A
 * plain rollback therefore restores the newest snapshot older than the live
 * config whose every canary weight is at or below the live one; a snapshot
 * that raises a weight is restored only when named explicitly.
 */
import type { SnapshotInfo } from './types.js';

/** One service whose canary weight a snapshot would raise: percent 0–100, from the live weight to the snapshot's. */
export interface WeightRaise {
  service: string;
  from: number;
  to: number;
}

/** The outcome of {@link chooseRollback}. */
export type RollbackChoice =
  | { ok: true; snapshot: SnapshotInfo; raises: WeightRaise[] }
  /** No snapshot older than the live generation exists at all. */
  | { ok: false; reason: 'none-older' }
  /** Snapshots older than the live one exist, but each raises a weight; `newest` is the newest of them. */
  | { ok: false; reason: 'all-raise'; newest: SnapshotInfo; raises: WeightRaise[] };

/**
 * The weights `snapshot` would raise against `live` (percent 0–100 per service; a service missing from
 * either side counts as 0), in the snapshot's service order.
 */
export function raisesOf(snapshot: SnapshotInfo, live: Readonly<Record<string, number>>): WeightRaise[] {
  return Object.entries(snapshot.weights)
    .filter(([service, to]) => to > (live[service] ?? 0))
    .map(([service, to]) => ({ service, from: live[service] ?? 0, to }));
}

/**
 * Picks the snapshot a rollback restores.
 *
 * @param snapshots every snapshot on disk, newest first (SnapshotStore.list order).
 * @param live the canary weights the live include file holds, percent 0–100 per service.
 * @param liveGeneration the generation nginx serves now (or the include file's, when nginx does not answer).
 * @param id the snapshot the operator named, or undefined for a plain rollback.
 * @returns with an id: that snapshot (ok even when it raises; `raises` says what it will do), or `null`
 *   when no snapshot has that id. Without: the newest snapshot with 0 < generation < liveGeneration that
 *   raises no weight, else why there is none.
 */
export function chooseRollback(
  snapshots: readonly SnapshotInfo[],
  live: Readonly<Record<string, number>>,
  liveGeneration: number,
  id?: string,
): RollbackChoice | null {
  if (id !== undefined) {
    const named = snapshots.find((s) => s.id === id);
    return named === undefined ? null : { ok: true, snapshot: named, raises: raisesOf(named, live) };
  }
  const older = snapshots.filter((s) => s.generation > 0 && s.generation < liveGeneration);
  const newest = older[0];
  if (newest === undefined) return { ok: false, reason: 'none-older' };
  const safe = older.find((s) => raisesOf(s, live).length === 0);
  if (safe !== undefined) return { ok: true, snapshot: safe, raises: [] };
  return { ok: false, reason: 'all-raise', newest, raises: raisesOf(newest, live) };
}

/** `gateway 0 % → 30 %, billing 5 % → 10 %`: what a list of raises does, for messages. */
export function describeRaises(raises: readonly WeightRaise[]): string {
  return raises.map((r) => `${r.service} ${r.from} % → ${r.to} %`).join(', ');
}
