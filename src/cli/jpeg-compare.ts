/**
 * "How many bytes would JPEG need for the same quality?": the smallest libjpeg-turbo (4:2:0, as in
 * `eval rd`) quality whose PSNR reaches that of our decoded image, found by bisection on quality.
 */
import { type Codec, type RgbImage, decodeImage, psnr } from '../codec/node.ts';
import { referenceRoundTrip } from '../eval/reference-codecs.ts';

/** Our stream's PSNR and the JPEG that matches it. */
export interface JpegComparison {
  /** PSNR of our decoded image, dB. */
  psnr: number;
  /** Bytes of the smallest JPEG at least as good; null if even quality 100 falls short. */
  jpegBytes: number | null;
  jpegQuality: number | null;
  jpegPsnr: number | null;
}

/**
 * Decodes `bitstream` with `codec`, measures its PSNR against `original` and bisects JPEG quality
 * 1..100 for the smallest file of at least that PSNR (PSNR rises with quality, so ~7 encodes).
 *
 * @example
 * const { psnr, jpegBytes } = await compareWithJpeg(image, bytes, codec)
 */
export async function compareWithJpeg(original: RgbImage, bitstream: Uint8Array, codec: Codec): Promise<JpegComparison> {
  const target = psnr(original, await decodeImage(bitstream, codec));
  let lo = 1;
  let hi = 100;
  let best: { bytes: number; quality: number; psnr: number } | null = null;
  while (lo <= hi) {
    const q = (lo + hi) >> 1;
    const { bytes, decoded } = await referenceRoundTrip(original, 'jpeg', q);
    const p = psnr(original, decoded);
    if (p >= target) {
      best = { bytes, quality: q, psnr: p };
      hi = q - 1;
    } else {
      lo = q + 1;
    }
  }
  return { psnr: target, jpegBytes: best?.bytes ?? null, jpegQuality: best?.quality ?? null, jpegPsnr: best?.psnr ?? null };
}
