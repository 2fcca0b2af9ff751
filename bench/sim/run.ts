/** Runs a case: the same seeded walks replayed by every detector. */
import { Rng, Samplers } from './prng.js';
import { drawWalk, outcome } from './walk.js';
import type { Outcome, Scenario, SimParams, Walk } from './walk.js';
import type { Detector } from './detectors.js';

const samplers = new Samplers();

/**
 * Draws `walks` walks of `scenario` (walk i from seed (seed, i): the same
 * traffic for every detector, and for every bucket width) and returns each
 * detector's outcomes, detectors in order.
 */
export function runCase(
  params: SimParams,
  scenario: Scenario,
  detectors: readonly Detector[],
  walks: number,
  seed: number,
): Outcome[][] {
  const out: Outcome[][] = detectors.map(() => []);
  let buf: Walk | undefined;
  for (let i = 0; i < walks; i++) {
    buf = drawWalk(params, scenario, new Rng(seed, i), samplers, buf);
    for (let d = 0; d < detectors.length; d++) {
      out[d]?.push(outcome(buf, (detectors[d] as Detector).firstDrain(buf), params.tickMs));
    }
  }
  return out;
}
