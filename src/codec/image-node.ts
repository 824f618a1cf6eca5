/** Node-only image I/O through sharp: any format sharp reads in, PNG out. */
import sharp from 'sharp';
import { CodecError } from './errors.ts';
import type { DecodedImage, RgbImage } from './pixels.ts';

/**
 * Reads an image file (PNG, JPEG, WebP, AVIF, TIFF, GIF...) as 8-bit sRGB RGB, applying its EXIF
 * orientation and dropping alpha. Throws `CodecError('IMAGE_UNREADABLE')` for anything else.
 *
 * @example
 * const image = await readImageFile('photo.jpg') // { data, width, height }, 3 bytes a pixel
 */
export async function readImageFile(path: string): Promise<DecodedImage> {
  try {
    const { data, info } = await sharp(path, { failOn: 'error' })
      .rotate()
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();
    throw new CodecError('IMAGE_UNREADABLE', `Cannot read '${path}' as an image: ${why}.`, { cause: e });
  }
}

/**
 * Encodes 8-bit RGB(A) pixels as PNG bytes.
 *
 * @example
 * await writeFile('out.png', await encodePng(await decodeImage(bytes, codec)))
 */
export async function encodePng(image: RgbImage): Promise<Uint8Array> {
  const channels = image.data.length === image.width * image.height * 4 ? 4 : 3;
  const png = await sharp(image.data, { raw: { width: image.width, height: image.height, channels } }).png().toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.length);
}
