import { CodecError } from './errors.ts';

/** 8-bit pixels, row-major and interleaved: RGB (3 bytes a pixel) or RGBA (4; alpha is ignored). */
export interface RgbImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
}

/** What the decoder returns: always RGB, 3 bytes a pixel. */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * Bytes per pixel of `image` (3 or 4); throws `CodecError('INVALID_IMAGE')` if data and size disagree.
 *
 * @example
 * pixelStride({ data: new Uint8Array(2 * 2 * 4), width: 2, height: 2 }) // 4
 */
export function pixelStride(image: RgbImage): 3 | 4 {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new CodecError('INVALID_IMAGE', `Image size ${width}x${height} is not positive integers.`);
  }
  const n = width * height;
  if (data.length === 3 * n) return 3;
  if (data.length === 4 * n) return 4;
  throw new CodecError('INVALID_IMAGE', `A ${width}x${height} image needs ${3 * n} (RGB) or ${4 * n} (RGBA) bytes, not ${data.length}.`);
}

const UNIT = Float32Array.from({ length: 256 }, (_, i) => i / 255);

/**
 * Interleaved 8-bit pixels -> planar float32 [3, H', W'] in [0, 1], with H' and W' rounded up
 * to a multiple of `multiple` by replicating the last row and column (what the encoder's
 * analysis transform expects, and what the decoder crops away again).
 *
 * @example
 * const { data, height, width } = toPaddedPlanar({ data: rgb, width: 37, height: 21 }, 8) // 3 x 24 x 40
 */
export function toPaddedPlanar(image: RgbImage, multiple: number): { data: Float32Array; height: number; width: number } {
  const bpp = pixelStride(image);
  const { width: w, height: h, data: src } = image;
  const pw = Math.ceil(w / multiple) * multiple;
  const ph = Math.ceil(h / multiple) * multiple;
  const plane = pw * ph;
  const out = new Float32Array(3 * plane);
  for (let y = 0; y < ph; y++) {
    const row = Math.min(y, h - 1) * w * bpp;
    const o = y * pw;
    for (let x = 0; x < pw; x++) {
      const i = row + Math.min(x, w - 1) * bpp;
      out[o + x] = UNIT[src[i]];
      out[plane + o + x] = UNIT[src[i + 1]];
      out[2 * plane + o + x] = UNIT[src[i + 2]];
    }
  }
  return { data: out, height: ph, width: pw };
}

/**
 * Planar float32 [3, planeHeight, planeWidth] in [0, 1] -> interleaved 8-bit RGB of the top-left
 * `width` x `height`, rounded to nearest and clamped.
 *
 * @example
 * const rgb = fromPlanar(output, 24, 40, 21, 37) // 37 x 21 x 3 bytes
 */
export function fromPlanar(planar: Float32Array, planeHeight: number, planeWidth: number, height: number, width: number): DecodedImage {
  const plane = planeHeight * planeWidth;
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const s = y * planeWidth;
    let o = y * width * 3;
    for (let x = 0; x < width; x++, o += 3) {
      // v * 255 + 0.5 truncated is round-half-up; the clamp also maps NaN to 0.
      out[o] = clampByte(planar[s + x] * 255 + 0.5);
      out[o + 1] = clampByte(planar[plane + s + x] * 255 + 0.5);
      out[o + 2] = clampByte(planar[2 * plane + s + x] * 255 + 0.5);
    }
  }
  return { data: out, width, height };
}

function clampByte(v: number): number {
  return v >= 255 ? 255 : v > 0 ? v | 0 : 0;
}

/**
 * PSNR in dB between two 8-bit images of the same size (RGB or RGBA; alpha ignored), over R, G and B.
 *
 * @example
 * psnr(original, decoded) // e.g. 31.4; Infinity when identical
 */
export function psnr(a: RgbImage, b: RgbImage): number {
  const sa = pixelStride(a);
  const sb = pixelStride(b);
  if (a.width !== b.width || a.height !== b.height) {
    throw new CodecError('INVALID_IMAGE', `Cannot compare a ${a.width}x${a.height} image with a ${b.width}x${b.height} one.`);
  }
  let sum = 0;
  const n = a.width * a.height;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const d = a.data[i * sa + c] - b.data[i * sb + c];
      sum += d * d;
    }
  }
  const mse = sum / (3 * n);
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}
