/**
 * Ingest benchmark (`npx tsx bench/ingest.ts [lines]`): access-log lines →
 * Observer windows, on one core (docs/design.md "Targets": ingest speed is a
 * goal; JSON.parse plus aggregation was measured at ~0.6–0.8 M lines/s).
 *
 * Lines are generated in memory first (a deterministic mix: direct primary
 * and canary attempts, canary attempts refused and retried on the primary,
 * 5xx answers, requests nginx answered itself, an unmanaged upstream), then
 * fed in batches of 1,000, three ways, each timed on a fresh Observer (the
 * fastest of 3 interleaved rounds; wall time and this process's CPU per line):
 * `bytes`, the lines as one buffer fed as ranges with `Observer.addBytes`
 * (what the follower's `onBytes` hands over: no string per line); `lines`,
 * `addLines` on strings; `reference`, `parseLine` + `addRecord` (the path
 * every line took before the byte path). The three must agree on line and
 * attempt counts and on the observations, or the bench throws.
 */
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import type { Config } from '../src/config/types.js';
import { config, service, stateSince } from '../test/fixtures/observe/config.js';
import { Observer } from '../src/observe/aggregate.js';
import { parseLine } from '../src/observe/parse.js';

/** One way of feeding the Observer, timed. */
export interface IngestPath {
  /** `bytes` (Observer.addBytes on read-sized chunks, the follower's onBytes), `lines` (addLines on strings), `reference` (parseLine + addRecord). */
  name: 'bytes' | 'lines' | 'reference';
  /** Wall time of the feeding, s (the fastest of the rounds). */
  seconds: number;
  linesPerSecond: number;
  /** CPU time of this process per line, µs (utime + stime over the fastest round: GC threads included). */
  cpuMicrosPerLine: number;
}

/** What {@link benchIngest} measured. */
export interface IngestResult {
  lines: number;
  /** Wall time of the feeding on the sidecar's path (`bytes`), s. */
  seconds: number;
  linesPerSecond: number;
  /** Resident set size after the run, MiB. */
  rssMiB: number;
  /** Every path, in this order: bytes, lines, reference. */
  paths: IngestPath[];
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

/** Lines of a batch, as the follower hands them over (a 64 KiB read holds ~250 lines of ~250 bytes; 1,000 kept from before). */
const BATCH = 1000;
/** Rounds per path; the fastest counts (the box is shared: the others carry its load). */
const ROUNDS = 3;

/**
 * Generates `lines` lines (default 1e6), then times the Observer on them in batches of 1,000, three
 * ways, each on a fresh Observer, ROUNDS rounds interleaved, the fastest kept: `bytes` (the lines
 * joined into one buffer, fed as ranges with addBytes, the sidecar's path), `lines` (addLines on the
 * strings) and `reference` (parseLine + addRecord, what every line went through before the byte
 * path). Throws if the Observer did not count every line, or if the three do not agree on line
 * counts, attempt counts and observations (a broken run is not a figure).
 */
export async function benchIngest(lines = 1_000_000): Promise<IngestResult> {
  const now = Date.now();
  const input = generateLines(lines, now);
  const blob = Buffer.from(input.join('\n'), 'utf8');
  // Batch boundaries in the blob: the offset of each batch's first line, and one past the last.
  const cuts: number[] = [0];
  for (let i = BATCH, off = 0; i < input.length; i += BATCH) {
    for (let k = i - BATCH; k < i; k++) off += Buffer.byteLength(input[k] as string) + 1;
    cuts.push(off);
  }
  cuts.push(blob.length + 1);
  const feed: Record<IngestPath['name'], (o: Observer) => void> = {
    bytes: (o) => {
      for (let b = 0; b + 1 < cuts.length; b++) o.addBytes(blob, cuts[b] as number, (cuts[b + 1] as number) - 1, now);
    },
    lines: (o) => {
      for (let i = 0; i < input.length; i += BATCH) o.addLines(input.slice(i, i + BATCH), now);
    },
    reference: (o) => {
      for (let i = 0; i < input.length; i += BATCH)
        for (const line of input.slice(i, i + BATCH)) {
          const rec = parseLine(line);
          if (rec === null) throw new Error(`bench: the reference path refused a generated line: ${line}`);
          o.addRecord(rec, now);
        }
    },
  };
  const gc = (globalThis as { gc?: () => void }).gc;
  const best = new Map<IngestPath['name'], { seconds: number; cpu: number }>();
  const results = new Map<IngestPath['name'], Observer>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of ['bytes', 'lines', 'reference'] as const) {
      const observer = new Observer(benchConfig());
      gc?.();
      await Promise.resolve();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      feed[name](observer);
      const seconds = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      const prev = best.get(name);
      if (prev === undefined || seconds < prev.seconds) best.set(name, { seconds, cpu: (c.user + c.system) / 1e6 });
      results.set(name, observer);
    }
  }
  const ref = results.get('reference') as Observer;
  const counts = ref.lineCounts();
  const seen = counts.parsed + counts.invalid + counts.unattributed;
  if (seen !== lines || counts.invalid !== 0)
    throw new Error(`bench: counted ${seen} lines (${counts.invalid} invalid) of ${lines}`);
  const cfg = benchConfig();
  const state = stateSince({ gateway: now - 3_600_000 });
  for (const [name, o] of results) {
    const same =
      JSON.stringify([o.lineCounts(), o.attemptCounts(), o.observations(cfg, state, now)]) ===
      JSON.stringify([ref.lineCounts(), ref.attemptCounts(), ref.observations(cfg, state, now)]);
    if (!same) throw new Error(`bench: the ${name} path disagrees with the reference path`);
  }
  const paths: IngestPath[] = (['bytes', 'lines', 'reference'] as const).map((name) => {
    const b = best.get(name) as { seconds: number; cpu: number };
    return { name, seconds: b.seconds, linesPerSecond: lines / b.seconds, cpuMicrosPerLine: (b.cpu * 1e6) / lines };
  });
  const main = paths[0] as IngestPath;
  return {
    lines,
    seconds: main.seconds,
    linesPerSecond: main.linesPerSecond,
    rssMiB: process.memoryUsage().rss / 2 ** 20,
    paths,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const n = Number(process.argv[2] ?? 1_000_000);
  const r = await benchIngest(n);
  const load = (await readFile('/proc/loadavg', 'utf8').catch(() => '?')).split(' ').slice(0, 3).join(' ');
  console.log(
    `ingest: ${r.lines.toLocaleString('en')} lines, load average ${load}, fastest of ${ROUNDS} rounds per path`,
  );
  for (const p of r.paths)
    console.log(
      `  ${p.name.padEnd(9)} ${p.seconds.toFixed(3)} s = ${Math.round(p.linesPerSecond).toLocaleString('en').padStart(9)} lines/s, ` +
        `${p.cpuMicrosPerLine.toFixed(2)} µs CPU per line`,
    );
  console.log(`  the three paths agree (line and attempt counts, observations); rss ${r.rssMiB.toFixed(0)} MiB`);
}
