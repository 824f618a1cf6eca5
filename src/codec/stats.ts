import { type EntropyTables, type LatentShape, valueTables } from '../entropy/index.ts';

/** Summary of integer latents, as `latentsight inspect` prints it. */
export interface LatentStats {
  elements: number;
  min: number;
  max: number;
  meanAbs: number;
  /** Fraction of values that are not zero. */
  nonzero: number;
  /** Channels that are zero everywhere (skipped by the coder). */
  zeroChannels: number;
  /** Values outside their table's range, coded through the escape. */
  escapes: number;
}

/**
 * Summarises int16 latents (C x H x W, channel-major) against the codec's tables.
 *
 * @example
 * latentStats(latents, { channels: 64, height: 64, width: 96 }, codec.tables).escapes
 */
export function latentStats(latents: Int16Array, shape: LatentShape, tables: EntropyTables): LatentStats {
  const n = shape.height * shape.width;
  let min = Infinity, max = -Infinity, sumAbs = 0, nonzero = 0, zeroChannels = 0, escapes = 0;
  const tableOf = valueTables(latents, shape, tables);
  for (let c = 0; c < shape.channels; c++) {
    let channelNonzero = 0;
    for (let i = c * n, end = i + n; i < end; i++) {
      const v = latents[i];
      const lo = tables.offsets[tableOf[i]];
      const hi = lo + tables.sizes[tableOf[i]] - 2;
      if (v < min) min = v;
      if (v > max) max = v;
      if (v !== 0) channelNonzero++;
      if (v < lo || v > hi) escapes++;
      sumAbs += v < 0 ? -v : v;
    }
    nonzero += channelNonzero;
    if (channelNonzero === 0) zeroChannels++;
  }
  const elements = latents.length;
  return { elements, min, max, meanAbs: sumAbs / elements, nonzero: nonzero / elements, zeroChannels, escapes };
}
