/**
 * `npm run bench`, "probe": the sidecar's CPU per synthetic probe (src/probe/prober.ts `probe`), so the
 * fixed cost of `probe.interval` is known: every server of every service gets two probes per interval
 * (health and ready), each over a new connection. A child process (plain node, no TypeScript) answers
 * `GET /health` with 200 on 127.0.0.1; this process runs `rounds` rounds of `n` probes one after another
 * and measures its own CPU per probe (process.cpuUsage: user + system). The first round is a warm-up
 * (JIT compilation) and is not reported. Bounded: n × rounds probes, each with a 1 s timeout; the child
 * is killed by pid at the end.
 */
import { spawn } from 'node:child_process';
import { probe } from '../src/probe/prober.js';

/** The answering server: prints its port, answers every request with 200 "ok". */
const SERVER = `require('node:http').createServer((q, s) => s.end('ok'))
  .listen(0, '127.0.0.1', function () { console.log(this.address().port); });`;

/** One round's figures. */
export interface ProbeCost {
  probes: number;
  /** This process's CPU per probe, µs. */
  cpuUsPerProbe: number;
  /** Wall time per probe, µs. */
  wallUsPerProbe: number;
}

/**
 * Runs `rounds` (≥ 2) rounds of `n` (≥ 1) probes and returns every round but the first.
 * Throws when a probe fails (the bench then measures nothing meaningful).
 */
export async function benchProbeCost(n = 1500, rounds = 4): Promise<ProbeCost[]> {
  const server = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
    });
    const out: ProbeCost[] = [];
    for (let round = 0; round < rounds; round++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const r = await probe({ host: '127.0.0.1', port }, { kind: 'health', path: '/health', timeoutMs: 1000 });
        if (!r.ok) throw new Error(`probe failed: ${JSON.stringify(r)}`);
      }
      const c = process.cpuUsage(c0);
      if (round > 0)
        out.push({
          probes: n,
          cpuUsPerProbe: (c.user + c.system) / n,
          wallUsPerProbe: ((performance.now() - t0) * 1000) / n,
        });
    }
    return out;
  } finally {
    server.kill('SIGKILL');
  }
}
