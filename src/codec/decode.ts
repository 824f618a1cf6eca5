import { type BitstreamHeader, type Limits, parseBitstream } from '../bitstream/index.ts';
import { type EntropyTables, decodeLatents } from '../entropy/index.ts';
import type { Codec } from './codec.ts';
import { CodecError } from './errors.ts';
import { type DecodedImage, fromPlanar } from './pixels.ts';

export interface DecodeOptions {
  /** Stricter container limits than the format's (e.g. a server's). */
  limits?: Partial<Limits>;
}

/**
 * Parses a bitstream strictly for `codec` and entropy-decodes its latents (int16, C x H x W),
 * without running any model. Throws `BitstreamError` (container; `UNKNOWN_MODEL` or
 * `TABLE_MISMATCH` when the stream names another codec or tables), `EntropyError` (payload) or
 * `CodecError('CODEC_MISMATCH')`.
 *
 * @example
 * const { header, latents } = decodeBitstreamLatents(bytes, codec)
 */
export function decodeBitstreamLatents(bytes: Uint8Array, codec: Codec, options: DecodeOptions = {}): { header: BitstreamHeader; latents: Int16Array } {
  const stream = parseBitstream(bytes, {
    limits: options.limits,
    models: (id) => (id === codec.id ? codec : undefined),
  });
  const { header } = stream;
  if (header.stride !== codec.stride || header.channels !== codec.channels) {
    throw new CodecError(
      'CODEC_MISMATCH',
      `The stream has stride ${header.stride} and ${header.channels} channels; codec '${codec.id}' has ${codec.stride} and ${codec.channels}.`,
    );
  }
  const shape = { channels: header.channels, height: header.latentHeight, width: header.latentWidth };
  // parseBitstream accepted the table hash: the current tables or a legacy set.
  return { header, latents: decodeLatents(stream.latents, shape, codec.tablesFor(header.tableHash) as EntropyTables) };
}

/**
 * Decodes a bitstream to 8-bit RGB: container and entropy decoding, the synthesis transform,
 * then a crop back to the original size.
 *
 * @example
 * const { data, width, height } = await decodeImage(bytes, codec) // data: width x height x 3 bytes
 */
export async function decodeImage(bytes: Uint8Array, codec: Codec, options: DecodeOptions = {}): Promise<DecodedImage> {
  const { header, latents } = decodeBitstreamLatents(bytes, codec, options);
  const { channels, latentHeight: lh, latentWidth: lw, stride } = header;
  const session = await codec.synthesis();
  const out = await session.run({ latents: { data: Float32Array.from(latents), dims: [1, channels, lh, lw] } });
  const image = out.image;
  const dims = [1, 3, lh * stride, lw * stride];
  if (!(image?.data instanceof Float32Array) || image.dims.some((d, i) => d !== dims[i])) {
    throw new CodecError('MODEL_RUNTIME', `The synthesis model must return float32 [${dims}], not [${image?.dims ?? 'none'}].`);
  }
  return fromPlanar(image.data, dims[2], dims[3], header.height, header.width);
}
