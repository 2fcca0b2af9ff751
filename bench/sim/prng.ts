/**
 * Seeded random numbers for the gate simulations (bench/gates.ts): xoshiro128**
 * (Blackman & Vigna 2018, "Scrambled linear pseudorandom number generators",
 * 128-bit state, period 2^128 − 1) seeded through splitmix32, plus table-driven
 * Poisson and binomial samplers by inversion (Devroye 1986, "Non-Uniform
 * Random Variate Generation", §X.3 and §III.2). Deterministic for a seed.
 */

/** splitmix32 step: a well-mixed 32-bit value from a 32-bit counter (used only for seeding). */
function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** xoshiro128**: uniform 32-bit integers and doubles in [0, 1). */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** Seeds from any number of 32-bit integers (e.g. case seed, walk index). */
  constructor(...seed: number[]) {
    let h = 0x6a09e667;
    for (const s of seed) h = splitmix32(h ^ splitmix32(s | 0));
    this.#a = splitmix32(h);
    this.#b = splitmix32(this.#a ^ 0x1234567);
    this.#c = splitmix32(this.#b ^ 0x7654321);
    this.#d = splitmix32(this.#c ^ 0x0badf00d) | 1; // never an all-zero state
  }

  /** A uniform unsigned 32-bit integer. */
  nextU32(): number {
    const r = Math.imul(this.#rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = this.#rotl(this.#d, 11);
    return r;
  }

  /** A uniform double in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  #rotl(x: number, k: number): number {
    return (x << k) | (x >>> (32 - k));
  }
}

/**
 * Inversion with a guide table (Chen & Asau 1974, "indexed search"; Devroye
 * 1986 §III.2.4): `guide[j]` is the smallest k with cdf[k] > j / m, so a draw
 * costs about one comparison.
 */
class Inverter {
  readonly #cdf: Float64Array;
  readonly #guide: Int32Array;

  constructor(cdf: Float64Array) {
    this.#cdf = cdf;
    const m = cdf.length * 2;
    this.#guide = new Int32Array(m);
    let k = 0;
    for (let j = 0; j < m; j++) {
      while (k < cdf.length - 1 && (cdf[k] as number) <= j / m) k++;
      this.#guide[j] = k;
    }
  }

  /** Smallest k with cdf[k] > u, for u in [0, 1). */
  invert(u: number): number {
    const cdf = this.#cdf;
    let k = this.#guide[Math.floor(u * this.#guide.length)] as number;
    while (u >= (cdf[k] as number)) k++;
    return k;
  }
}

/** Poisson(λ) by inversion over a precomputed CDF (exact to double precision up to 1 − 1e-15). */
export class PoissonSampler {
  readonly #inv: Inverter;
  /** The mean λ. */
  readonly lambda: number;

  constructor(lambda: number) {
    this.lambda = lambda;
    const cdf: number[] = [];
    let p = Math.exp(-lambda);
    let f = p;
    cdf.push(f);
    for (let k = 1; f < 1 - 1e-15 && k < 10 * lambda + 50; k++) {
      p *= lambda / k;
      f += p;
      cdf.push(f);
    }
    cdf[cdf.length - 1] = 1;
    this.#inv = new Inverter(Float64Array.from(cdf));
  }

  sample(rng: Rng): number {
    return this.#inv.invert(rng.next());
  }
}

/**
 * Binomial(n, p) by inversion over per-n CDFs precomputed for n ≤ nMax (one
 * uniform per draw); larger n fall back to summing Bernoulli draws.
 */
export class BinomialSampler {
  readonly #inv: Inverter[] = [];
  /** The success probability. */
  readonly p: number;

  constructor(p: number, nMax = 64) {
    this.p = p;
    for (let n = 0; n <= nMax; n++) {
      const cdf = new Float64Array(n + 1);
      let f = 0;
      for (let k = 0; k <= n; k++) {
        f += binomialPmf(n, k, p);
        cdf[k] = f;
      }
      cdf[n] = 1;
      this.#inv.push(new Inverter(cdf));
    }
  }

  sample(rng: Rng, n: number): number {
    const inv = this.#inv[n];
    if (inv !== undefined) return inv.invert(rng.next());
    let k = 0;
    for (let i = 0; i < n; i++) if (rng.next() < this.p) k++;
    return k;
  }
}

/** P(X = k) for X ~ Binomial(n, p), through logs (exact enough for n ≤ 10^6). */
export function binomialPmf(n: number, k: number, p: number): number {
  if (k < 0 || k > n) return 0;
  if (p <= 0) return k === 0 ? 1 : 0;
  if (p >= 1) return k === n ? 1 : 0;
  let logC = 0;
  for (let i = 1; i <= k; i++) logC += Math.log((n - k + i) / i);
  return Math.exp(logC + k * Math.log(p) + (n - k) * Math.log1p(-p));
}

/** Samplers shared across walks (their tables depend only on λ and p). */
export class Samplers {
  readonly #poisson = new Map<number, PoissonSampler>();
  readonly #binomial = new Map<number, BinomialSampler>();

  poisson(lambda: number): PoissonSampler {
    let s = this.#poisson.get(lambda);
    if (s === undefined) this.#poisson.set(lambda, (s = new PoissonSampler(lambda)));
    return s;
  }

  binomial(p: number): BinomialSampler {
    let s = this.#binomial.get(p);
    if (s === undefined) this.#binomial.set(p, (s = new BinomialSampler(p)));
    return s;
  }
}
