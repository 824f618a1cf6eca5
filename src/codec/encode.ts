import { FORMAT_LIMITS, writeBitstream } from '../bitstream/index.ts';
import { type EncodeOptions as EntropyEncodeOptions, encodeLatents } from '../entropy/index.ts';
import type { Codec } from './codec.ts';
import { CodecError } from './errors.ts';
import { type RgbImage, pixelStride, toPaddedPlanar } from './pixels.ts';
import type { Tensor } from './runtime.ts';

/**
 * Throws CodecError `CODEC_DECODE_ONLY` if the codec's manifest entry marks it `decode_only`,
 * so that a batch fails before it reads its first image.
 *
 * @example
 * assertEncodable(await loadCodecFromDir(undefined, 'ls-f8-q2')) // throws: use ls-f8-q3
 */
export function assertEncodable(codec: Codec): void {
  const retired = codec.entry.decode_only;
  if (!retired) return;
  throw new CodecError(
    'CODEC_DECODE_ONLY',
    `Codec '${codec.id}' is decode-only since ${retired.since} (${retired.reason}): streams stored with it still decode ` +
      `and are still analysed, but new images are encoded with '${retired.successor}'.`,
  );
}

export interface EncodeOptions extends EntropyEncodeOptions {
  /**
   * Encode with a `decode_only` codec anyway. For measuring it and the task models that still
   * serve its stored streams (`eval`, `bench`), never for streams that will be stored.
   */
  allowDecodeOnly?: boolean;
}

/**
 * Compresses an 8-bit RGB(A) image of any size to a latentsight bitstream: pads it to a multiple
 * of the codec's stride by edge replication, runs the analysis transform (which rounds in-graph),
 * entropy-codes the integer latents and wraps them in a v1 container naming the codec and its tables.
 * A codec marked `decode_only` in the manifest refuses (CodecError `CODEC_DECODE_ONLY`, naming its
 * successor) unless `options.allowDecodeOnly` is set.
 *
 * @example
 * const bytes = await encodeImage({ data: rgb, width: 768, height: 512 }, codec)
 */
export async function encodeImage(image: RgbImage, codec: Codec, options: EncodeOptions = {}): Promise<Uint8Array> {
  if (!options.allowDecodeOnly) assertEncodable(codec);
  pixelStride(image);
  const { width, height } = image;
  const { stride, channels } = codec;
  const latentHeight = Math.ceil(height / stride);
  const latentWidth = Math.ceil(width / stride);
  if (width > FORMAT_LIMITS.maxDimension || height > FORMAT_LIMITS.maxDimension) {
    throw new CodecError('INVALID_IMAGE', `Image ${width}x${height} exceeds ${FORMAT_LIMITS.maxDimension} pixels a side: downscale it first.`);
  }
  if (channels * latentHeight * latentWidth > FORMAT_LIMITS.maxLatentElements) {
    throw new CodecError('INVALID_IMAGE', `Image ${width}x${height} has too many pixels for one bitstream: downscale or tile it.`);
  }
  const padded = toPaddedPlanar(image, stride);
  const session = await codec.analysis();
  const out = await session.run({ image: { data: padded.data, dims: [1, 3, padded.height, padded.width] } });
  const latents = toInt16(out.latents, [1, channels, latentHeight, latentWidth]);
  return writeBitstream({
    width,
    height,
    stride,
    channels,
    modelId: codec.id,
    tableHash: codec.tableHash,
    latents: encodeLatents(latents, { channels, height: latentHeight, width: latentWidth }, codec.tables, { lanes: options.lanes }),
  });
}

/** The analysis output as int16, after checking its shape; int32 outputs are narrowed with a range check. */
function toInt16(t: Tensor | undefined, dims: number[]): Int16Array {
  if (!t || t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) {
    throw new CodecError('MODEL_RUNTIME', `The analysis model returned latents of shape [${t?.dims ?? 'none'}], expected [${dims}].`);
  }
  if (t.data instanceof Int16Array) return t.data;
  if (t.data instanceof Int32Array) {
    const out = new Int16Array(t.data.length);
    for (let i = 0; i < out.length; i++) {
      const v = t.data[i];
      if (v < -32768 || v > 32767) throw new CodecError('MODEL_RUNTIME', `Latent value ${v} is outside int16.`);
      out[i] = v;
    }
    return out;
  }
  throw new CodecError('MODEL_RUNTIME', 'The analysis model must output integer latents (int16 or int32), rounded in-graph.');
}
