/**
 * The codecs latentsight is measured against, through sharp (libvips): JPEG 4:2:0 as libjpeg-turbo
 * encodes it (the baseline of published rate-distortion curves), mozjpeg (what a careful user would
 * pick: trellis quantisation, optimised scans), WebP and AVIF. Node only.
 */
import sharp from 'sharp';
import type { RgbImage } from '../codec/index.ts';

export const REFERENCE_CODECS = ['jpeg', 'mozjpeg', 'webp', 'avif'] as const;
export type ReferenceCodec = (typeof REFERENCE_CODECS)[number];

/** Quality sweeps wide enough to bracket 0.1-1.5 bpp on photographs. */
export const DEFAULT_QUALITIES: Record<ReferenceCodec, number[]> = {
  jpeg: [5, 10, 15, 20, 30, 40, 50, 60, 75, 85, 95],
  mozjpeg: [5, 10, 15, 20, 30, 40, 50, 60, 75, 85, 95],
  webp: [5, 10, 20, 30, 40, 50, 60, 75, 85, 95],
  avif: [10, 20, 30, 40, 50, 60, 70, 80],
};

/**
 * Encodes `image` with a reference codec at `quality` and decodes it back.
 *
 * @example
 * const { bytes, decoded } = await referenceRoundTrip(image, 'mozjpeg', 75)
 */
export async function referenceRoundTrip(
  image: RgbImage,
  codec: ReferenceCodec,
  quality: number,
): Promise<{ bytes: number; decoded: RgbImage }> {
  const input = sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), {
    raw: { width: image.width, height: image.height, channels: 3 },
  });
  const encoded = await (codec === 'jpeg'
    ? input.jpeg({ quality, chromaSubsampling: '4:2:0' })
    : codec === 'mozjpeg'
      ? input.jpeg({ quality, mozjpeg: true })
      : codec === 'webp'
        ? input.webp({ quality })
        : input.avif({ quality, chromaSubsampling: '4:2:0' })
  ).toBuffer();
  const { data, info } = await sharp(encoded).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== image.width || info.height !== image.height) {
    throw new Error(`${codec} decoded to ${info.width}x${info.height}x${info.channels}`);
  }
  return { bytes: encoded.length, decoded: { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height } };
}

/**
 * Reads any image sharp understands as 8-bit RGB.
 *
 * @example
 * const image = await readRgb('test/fixtures/kodim23.png')
 */
export async function readRgb(path: string): Promise<RgbImage> {
  const { data, info } = await sharp(path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}
