/**
 * Ingest benchmark: access-log lines → parseLine → Observer windows, on one
 * core (docs/design.md "Targets": ingest speed is a goal; JSON.parse plus
 * aggregation was measured at ~0.6–0.8 M lines/s).
 *
 * Lines are generated in memory first (a deterministic mix: direct primary
 * and canary attempts, canary attempts refused and retried on the primary,
 * 5xx answers, requests nginx answered itself, an unmanaged upstream), then
 * fed in batches of 1,000 as the follower delivers them; only the feeding is
 * timed.
 */
import { pathToFileURL } from 'node:url';
import type { Config } from '../src/config/types.js';
import { config, service } from '../test/fixtures/observe/config.js';
import { Observer } from '../src/observe/aggregate.js';

/** What {@link benchIngest} measured. */
export interface IngestResult {
  lines: number;
  /** Wall time of the feeding, s. */
  seconds: number;
  linesPerSecond: number;
  /** Resident set size after the run, MiB. */
  rssMiB: number;
}

const PRIMARY = ['127.0.0.1:18789', '127.0.0.1:18790'];
const CANARY = '127.0.0.1:18890';

/** The demo's gateway service with two primary servers and one canary (design defaults). */
function benchConfig(): Config {
  return config([service('gateway', PRIMARY, [CANARY])]);
}

/** Deterministic generator (mulberry32), so every run feeds the same lines. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` realistic lines in format nginx_canary, spread over the 10 min
 * before `nowMs` (epoch ms), as flat strings cut from 1,000-line blocks the
 * way the follower cuts them from a read.
 */
export function generateLines(count: number, nowMs: number): string[] {
  const rand = rng(42);
  const secs = (ms: number): string => (ms / 1000).toFixed(3);
  // The follower hands out slices of one decoded read (toString + split), not concatenated strings: do the same.
  const flat: string[] = [];
  let block: string[] = [];
  const flush = (): void => {
    for (const l of block.join('\n').split('\n')) flat.push(l);
    block = [];
  };
  for (let i = 0; i < count; i++) {
    const at = nowMs - 600_000 + Math.floor((i / count) * 600_000);
    const r = rand();
    const p = PRIMARY[i & 1] as string;
    const c = secs(Math.floor(rand() * 4));
    const h = secs(2 + Math.floor(rand() * 40));
    let status = '200';
    let upstream = 'gateway';
    let addr: string;
    let ustatus: string;
    let connect: string;
    let header: string;
    if (r < 0.8) {
      [addr, ustatus, connect, header] = [p, '200', c, h];
    } else if (r < 0.88) {
      [addr, ustatus, connect, header] = [CANARY, '200', c, h];
    } else if (r < 0.93) {
      // canary refused, retried on the primary
      [addr, ustatus, connect, header] = [`${CANARY}, ${p}`, '502, 200', `-, ${c}`, `-, ${h}`];
    } else if (r < 0.96) {
      status = r < 0.95 ? '500' : '503';
      [addr, ustatus, connect, header] = [r < 0.945 ? CANARY : p, status, c, h];
    } else if (r < 0.98) {
      upstream = '';
      [addr, ustatus, connect, header] = ['', '', '', ''];
    } else {
      upstream = 'legacy';
      [addr, ustatus, connect, header] = ['10.0.0.7:8080', '200', c, h];
    }
    block.push(
      `{"msec":"${secs(at)}","status":"${status}","upstream":"${upstream}","addr":"${addr}","ustatus":"${ustatus}",` +
        `"connect":"${connect}","header":"${header}","response":"${header}","request_time":"${h}"}`,
    );
    if (block.length === 1000) flush();
  }
  if (block.length > 0) flush();
  return flat;
}

/**
 * Generates `lines` lines (default 1e6), then times parseLine + Observer
 * attribution and windowing over them in batches of 1,000 on this thread.
 * Throws if the Observer did not count every line (a broken run is not a figure).
 */
export async function benchIngest(lines = 1_000_000): Promise<IngestResult> {
  const now = Date.now();
  const input = generateLines(lines, now);
  const observer = new Observer(benchConfig());
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  await Promise.resolve();
  const t0 = performance.now();
  const batch = 1000;
  for (let i = 0; i < input.length; i += batch) observer.addLines(input.slice(i, i + batch), now);
  const seconds = (performance.now() - t0) / 1000;
  const counts = observer.lineCounts();
  const seen = counts.parsed + counts.invalid + counts.unattributed;
  if (seen !== lines || counts.invalid !== 0)
    throw new Error(`bench: counted ${seen} lines (${counts.invalid} invalid) of ${lines}`);
  return {
    lines,
    seconds,
    linesPerSecond: lines / seconds,
    rssMiB: process.memoryUsage().rss / 2 ** 20,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const n = Number(process.argv[2] ?? 1_000_000);
  const r = await benchIngest(n);
  console.log(
    `ingest: ${r.lines} lines in ${r.seconds.toFixed(3)} s = ${Math.round(r.linesPerSecond).toLocaleString('en')} lines/s, rss ${r.rssMiB.toFixed(0)} MiB`,
  );
}
