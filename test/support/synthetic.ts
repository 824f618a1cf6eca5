import { EntropyTables, type LatentShape, type TableSpec, valueTables } from '../../src/entropy/index.ts';

/**
 * Synthetic latents shaped like a factorized-prior codec's: per-channel Laplacian scales, most mass
 * at zero, with tables quantised from the same discretised Laplacian. For tests and benchmarks only;
 * real tables come from `training/` and are never computed in TypeScript.
 */

/** Deterministic PRNG (mulberry32), so tests and benchmarks see the same data on every run. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** P(round(X) = v) for X ~ Laplace(0, scale). */
function laplaceMass(v: number, scale: number): number {
  const cdf = (x: number) => (x < 0 ? 0.5 * Math.exp(x / scale) : 1 - 0.5 * Math.exp(-x / scale));
  return cdf(v + 0.5) - cdf(v - 0.5);
}

/**
 * Quantises a pmf (escape mass last) to integer frequencies summing to 2^precision, each >= 1.
 * Largest-remainder rounding, then the surplus or deficit taken from the largest frequencies.
 */
export function quantizePmf(pmf: readonly number[], precision: number): number[] {
  const total = 1 << precision;
  const sum = pmf.reduce((a, b) => a + b, 0);
  const freqs = pmf.map((p) => Math.max(1, Math.floor((p / sum) * total)));
  let diff = total - freqs.reduce((a, b) => a + b, 0);
  const order = freqs.map((_, i) => i).sort((a, b) => pmf[b] - pmf[a]);
  for (let i = 0; diff !== 0; i = (i + 1) % order.length) {
    const s = order[i];
    if (diff > 0) {
      freqs[s]++;
      diff--;
    } else if (freqs[s] > 1) {
      freqs[s]--;
      diff++;
    }
  }
  return freqs;
}

/** A table for Laplace(0, scale) over the values whose mass exceeds `minMass`, escape last. */
export function laplaceTable(scale: number, precision: number, minMass = 1e-6): TableSpec {
  let range = 0;
  while (laplaceMass(range + 1, scale) > minMass && range < 1000) range++;
  const pmf: number[] = [];
  for (let v = -range; v <= range; v++) pmf.push(laplaceMass(v, scale));
  const inRange = pmf.reduce((a, b) => a + b, 0);
  pmf.push(Math.max(1 - inRange, 0));
  return { offset: -range, freqs: quantizePmf(pmf, precision) };
}

export interface SyntheticLatents {
  shape: LatentShape;
  tables: EntropyTables;
  latents: Int16Array;
  scales: number[];
}

/**
 * Latents of `shape` with scales log-uniform in [minScale, maxScale] per channel.
 *
 * @example
 * const { latents, tables, shape } = syntheticLatents({ channels: 128, height: 64, width: 96 }, { seed: 1 })
 */
export function syntheticLatents(
  shape: LatentShape,
  { seed = 1, minScale = 0.1, maxScale = 1.5, precision = 12 } = {},
): SyntheticLatents {
  const rand = mulberry32(seed);
  const n = shape.height * shape.width;
  const scales: number[] = [];
  const latents = new Int16Array(shape.channels * n);
  for (let c = 0; c < shape.channels; c++) {
    const scale = minScale * (maxScale / minScale) ** rand();
    scales.push(scale);
    for (let i = 0; i < n; i++) {
      const u = rand() - 0.5;
      latents[c * n + i] = Math.round(-scale * Math.sign(u) * Math.log(1 - 2 * Math.abs(u)));
    }
  }
  const tables = new EntropyTables(precision, scales.map((s) => laplaceTable(s, precision)));
  return { shape, tables, latents, scales };
}

/**
 * Ideal size in bits of coding `latents` with `tables` (the information content under the
 * quantised tables), skipped all-zero channels excluded, escapes at their exact coded cost.
 */
export function idealBits(latents: Int16Array, shape: LatentShape, tables: EntropyTables): number {
  const n = shape.height * shape.width;
  const p = tables.precision;
  let bits = 0;
  const tableOf = valueTables(latents, shape, tables);
  for (let c = 0; c < shape.channels; c++) {
    let zero = true;
    for (let i = 0; i < n && zero; i++) zero = latents[c * n + i] === 0;
    if (zero) continue;
    for (let i = 0; i < n; i++) {
      const t = tableOf[c * n + i];
      const start = tables.starts[t];
      const lo = tables.offsets[t];
      const esc = tables.sizes[t] - 1;
      const v = latents[c * n + i];
      if (v >= lo && v < lo + esc) {
        bits += p - Math.log2(tables.freqs[start + v - lo]);
      } else {
        const hi = lo + esc - 1;
        const d = v > hi ? (v - hi - 1) * 2 : (lo - 1 - v) * 2 + 1;
        const nibbles = Math.max(1, Math.ceil(Math.log2(d + 1) / 4));
        bits += p - Math.log2(tables.freqs[start + esc]) + 4 * (nibbles + 1);
      }
    }
  }
  return bits;
}
