/**
 * Checks a stream against the served codecs and entropy-decodes it: the edge side of
 * docs/FORMAT.md, section 6. All parsing and decoding is `src/`'s; this only wires it to the registry.
 */
import { type Bitstream, BitstreamError, type BitstreamHeader, type Limits, parseBitstream } from '../../src/bitstream/index.ts';
import { decodeLatents } from '../../src/entropy/index.ts';
import { ProblemError } from './problem.ts';
import { type CodecModel, type ModelRegistry, tablesFor } from './registry.ts';

/**
 * The codec that decodes a stream with this header. Throws `UNKNOWN_MODEL` or `TABLE_MISMATCH`, or
 * `SHAPE_MISMATCH` if the header's stride or channels are not the codec's: all from the header
 * alone, so that `readBitstream` can refuse such a stream before reading its body.
 *
 * @example
 * const codec = codecFor(readHeader(firstBytes), registry)
 */
export function codecFor(header: BitstreamHeader, registry: ModelRegistry): CodecModel {
  const codec = registry.codec(header.modelId);
  if (!codec) throw new BitstreamError('UNKNOWN_MODEL', `Codec model "${header.modelId}" is not served here; see GET /v1/models.`);
  if (!tablesFor(codec, header.tableHash)) {
    throw new BitstreamError(
      'TABLE_MISMATCH',
      `The stream was coded with entropy tables ${header.tableHash}, but codec "${codec.id}" has ${codec.tableHash}; update the client's codec.`,
    );
  }
  if (header.stride !== codec.stride || header.channels !== codec.channels) {
    throw new ProblemError(
      'corrupt-bitstream',
      'SHAPE_MISMATCH',
      `Codec "${codec.id}" has ${codec.channels} channels at stride ${codec.stride}; the header declares ${header.channels} at stride ${header.stride}.`,
    );
  }
  return codec;
}

/**
 * Parses a whole stream strictly (length, checksum, parts, codec and table hash) and returns it
 * with its codec; the latents stay entropy-coded. Throws the layers' typed errors.
 *
 * @example
 * const { stream, codec } = checkStream(bytes, registry, config.limits)
 */
export function checkStream(bytes: Uint8Array, registry: ModelRegistry, limits: Partial<Limits>): { stream: Bitstream; codec: CodecModel } {
  const stream = parseBitstream(bytes, { limits, models: (id) => registry.codec(id) });
  return { stream, codec: codecFor(stream.header, registry) };
}

/**
 * Entropy-decodes a checked stream's latents (C x H x W, channel-major) with its codec's tables.
 *
 * @example
 * const latents = decodeStreamLatents(stream, codec)
 */
export function decodeStreamLatents(stream: Bitstream, codec: CodecModel): Int16Array {
  const { channels, latentHeight: height, latentWidth: width } = stream.header;
  const tables = tablesFor(codec, stream.header.tableHash);
  if (!tables) throw new BitstreamError('TABLE_MISMATCH', `Codec "${codec.id}" has no tables ${stream.header.tableHash}.`);
  return decodeLatents(stream.latents, { channels, height, width }, tables);
}

/** A fully checked and decoded stream. */
export interface DecodedStream {
  header: BitstreamHeader;
  codec: CodecModel;
  /** C x H x W, channel-major. */
  latents: Int16Array;
}

/**
 * `checkStream` then `decodeStreamLatents`: all the CPU work the edge does on a stream that misses
 * the cache (what `bench/edge.ts` times).
 *
 * @example
 * const { latents, header } = decodeStream(bytes, registry, EDGE_LIMITS)
 */
export function decodeStream(bytes: Uint8Array, registry: ModelRegistry, limits: Partial<Limits>): DecodedStream {
  const { stream, codec } = checkStream(bytes, registry, limits);
  return { header: stream.header, codec, latents: decodeStreamLatents(stream, codec) };
}
