/**
 * Entropy coding of latents: rANS with 32-bit states, quantised per-channel tables shipped as
 * data, escape coding for values outside a table. No platform API, integer arithmetic only.
 */
export { EntropyError, type EntropyErrorCode } from './errors.ts';
export { DEFAULT_LANES, type EncodeOptions, type LatentShape, decodeLatents, encodeLatents, valueTables } from './latents.ts';
export { CODER_RANS32X16, CODER_RANS32X16_CONTEXT, MAX_LANES, RANS_L } from './rans.ts';
export {
  type DecodeLookup,
  EntropyTables,
  MAX_PRECISION,
  MAX_SYMBOLS,
  MIN_PRECISION,
  type ContextSpec,
  type TableContext,
  type TableSpec,
  parseTables,
  serializeTables,
} from './tables.ts';
