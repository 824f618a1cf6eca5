import { type Bitstream, type Limits, parseBitstream, writeBitstream } from '../../src/bitstream/index.ts';
import { type EntropyTables, decodeLatents, encodeLatents } from '../../src/entropy/index.ts';
import { syntheticLatents } from './synthetic.ts';

/** Model id and table hash used by the synthetic streams of the tests and the fuzzer. */
export const TEST_MODEL = { id: 'test-f8', tableHash: '00112233445566aa' } as const;

/** A small valid stream (3 channels at 1/8 of a 37x21 image) with the tables that decode it. */
export function sampleStream(opts: { width?: number; height?: number; channels?: number; seed?: number; lanes?: number } = {}) {
  const { width = 37, height = 21, channels = 3, seed = 3, lanes = 4 } = opts;
  const shape = { channels, height: Math.ceil(height / 8), width: Math.ceil(width / 8) };
  const { latents, tables } = syntheticLatents(shape, { seed, minScale: 0.3, maxScale: 3 });
  const bytes = writeBitstream({
    width,
    height,
    stride: 8,
    channels,
    modelId: TEST_MODEL.id,
    tableHash: TEST_MODEL.tableHash,
    latents: encodeLatents(latents, shape, tables, { lanes }),
  });
  return { bytes, latents, tables, shape };
}

/**
 * Parses and entropy-decodes a whole stream, as the edge does: the container against the known
 * model, then the latents with that model's tables.
 */
export function decodeStream(bytes: Uint8Array, tables: EntropyTables, limits?: Partial<Limits>): { stream: Bitstream; latents: Int16Array } {
  const stream = parseBitstream(bytes, {
    limits,
    models: (id) => (id === TEST_MODEL.id ? { tableHash: TEST_MODEL.tableHash } : undefined),
  });
  const { channels, latentHeight: height, latentWidth: width } = stream.header;
  return { stream, latents: decodeLatents(stream.latents, { channels, height, width }, tables) };
}
