/**
 * The real {@link DiskStat}: `statfs(2)` through `fs.promises.statfs`.
 */
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import type { DiskStat } from './types.js';

/**
 * Free ratio 0–1 of the volume holding `p`: blocks available to an
 * unprivileged user (`bavail`, i.e. what `df` shows as available) over all
 * blocks. A path that does not exist yet (a snapshot dir before the first
 * snapshot) is measured at its nearest existing ancestor.
 *
 * @throws the fs error when no ancestor can be stat'ed (e.g. EACCES).
 */
async function freeRatio(p: string): Promise<number> {
  let at = path.resolve(p);
  for (;;) {
    try {
      const s = await statfs(at);
      return s.blocks > 0 ? s.bavail / s.blocks : 1;
    } catch (err) {
      const parent = path.dirname(at);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === at) throw err;
      at = parent;
    }
  }
}

/**
 * The real disk: `freeRatio(path)` resolves to the free share of the volume
 * holding `path` as a ratio 0–1 (not percent): `bavail / blocks` at the
 * nearest existing ancestor, 1 for a volume that reports 0 blocks. The
 * applier compares it with MIN_FREE_DISK_RATIO (0.1, docs/design.md "Numbers"). Rejects with
 * the fs error (e.g. EACCES) when no ancestor can be stat'ed.
 */
export const statfsDisk: DiskStat = { freeRatio };
