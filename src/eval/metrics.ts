/**
 * Image quality metrics on 8-bit RGB (interleaved, 3 bytes a pixel), as rate-distortion papers
 * report them: PSNR over all channels, and MS-SSIM (Wang, Simoncelli and Bovik 2003) computed per
 * channel and averaged, with the standard 11-tap Gaussian (sigma 1.5), 5 scales, weights
 * [0.0448, 0.2856, 0.3001, 0.2363, 0.1333], K1 = 0.01, K2 = 0.03, "valid" filtering and 2x2
 * average pooling between scales (the convention of pytorch-msssim and CompressAI's figures).
 * PSNR is the codec layer's (`src/codec/pixels.ts`), re-exported here.
 */
import { CodecError, type RgbImage, pixelStride } from '../codec/index.ts';

export { psnr } from '../codec/index.ts';

const WEIGHTS = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
const GAUSS = gaussian(11, 1.5);
/** The smallest side whose fifth scale still holds an 11 x 11 window. */
export const MSSSIM_MIN_SIDE = 11 * 2 ** (WEIGHTS.length - 1);
const C1 = (0.01 * 255) ** 2;
const C2 = (0.03 * 255) ** 2;

function gaussian(size: number, sigma: number): Float64Array {
  const g = new Float64Array(size);
  let sum = 0;
  for (let i = 0; i < size; i++) {
    const x = i - (size - 1) / 2;
    g[i] = Math.exp(-(x * x) / (2 * sigma * sigma));
    sum += g[i];
  }
  for (let i = 0; i < size; i++) g[i] /= sum;
  return g;
}

/**
 * Mean SSIM and mean contrast-structure term of two planes at one scale. The five local statistics
 * (means, variances, covariance) come from one fused separable "valid" Gaussian pass: horizontal
 * sums of x, y, x^2, y^2 and xy into five row buffers, then vertical sums.
 */
function ssimAtScale(x: Float64Array, y: Float64Array, w: number, h: number): { ssim: number; cs: number } {
  const g = GAUSS;
  const k = g.length;
  const ow = w - k + 1;
  const oh = h - k + 1;
  const hx = new Float64Array(ow * h);
  const hy = new Float64Array(ow * h);
  const hxx = new Float64Array(ow * h);
  const hyy = new Float64Array(ow * h);
  const hxy = new Float64Array(ow * h);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < ow; c++) {
      let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
      for (let i = 0, at = r * w + c; i < k; i++, at++) {
        const a = x[at], b = y[at], wgt = g[i];
        sx += wgt * a;
        sy += wgt * b;
        sxx += wgt * a * a;
        syy += wgt * b * b;
        sxy += wgt * a * b;
      }
      const o = r * ow + c;
      hx[o] = sx; hy[o] = sy; hxx[o] = sxx; hyy[o] = syy; hxy[o] = sxy;
    }
  }
  let ssim = 0;
  let cs = 0;
  for (let r = 0; r < oh; r++) {
    for (let c = 0; c < ow; c++) {
      let mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
      for (let i = 0, at = r * ow + c; i < k; i++, at += ow) {
        const wgt = g[i];
        mx += wgt * hx[at];
        my += wgt * hy[at];
        sxx += wgt * hxx[at];
        syy += wgt * hyy[at];
        sxy += wgt * hxy[at];
      }
      const csMap = (2 * (sxy - mx * my) + C2) / (sxx - mx * mx + (syy - my * my) + C2);
      cs += csMap;
      ssim += ((2 * mx * my + C1) / (mx * mx + my * my + C1)) * csMap;
    }
  }
  const n = ow * oh;
  return { ssim: ssim / n, cs: cs / n };
}

/** 2x2 average pooling (odd trailing rows and columns dropped). */
function pool(src: Float64Array, w: number, h: number): { plane: Float64Array; w: number; h: number } {
  const ow = w >> 1;
  const oh = h >> 1;
  const out = new Float64Array(ow * oh);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const i = 2 * y * w + 2 * x;
      out[y * ow + x] = (src[i] + src[i + 1] + src[i + w] + src[i + w + 1]) / 4;
    }
  }
  return { plane: out, w: ow, h: oh };
}

/**
 * Multi-scale SSIM in [0, 1] (1 for identical images). Needs at least 176 pixels a side so that
 * the fifth scale still holds an 11 x 11 window.
 *
 * @example
 * msssim(original, decoded) // 0.971
 */
export function msssim(a: RgbImage, b: RgbImage): number {
  const sa = pixelStride(a);
  const sb = pixelStride(b);
  if (a.width !== b.width || a.height !== b.height) {
    throw new CodecError('INVALID_IMAGE', `Cannot compare a ${a.width}x${a.height} image with a ${b.width}x${b.height} one.`);
  }
  if (a.width < MSSSIM_MIN_SIDE || a.height < MSSSIM_MIN_SIDE) {
    throw new RangeError(`MS-SSIM needs images of at least ${MSSSIM_MIN_SIDE}x${MSSSIM_MIN_SIDE} pixels.`);
  }
  let total = 0;
  for (let c = 0; c < 3; c++) {
    let w = a.width;
    let h = a.height;
    let x: Float64Array = new Float64Array(w * h);
    let y: Float64Array = new Float64Array(w * h);
    for (let i = 0; i < w * h; i++) {
      x[i] = a.data[sa * i + c];
      y[i] = b.data[sb * i + c];
    }
    let value = 1;
    for (let s = 0; s < WEIGHTS.length; s++) {
      const { ssim, cs } = ssimAtScale(x, y, w, h);
      const term = s === WEIGHTS.length - 1 ? ssim : cs;
      value *= Math.max(term, 0) ** WEIGHTS[s];
      if (s < WEIGHTS.length - 1) {
        const px = pool(x, w, h);
        const py = pool(y, w, h);
        x = px.plane;
        y = py.plane;
        w = px.w;
        h = px.h;
      }
    }
    total += value;
  }
  return total / 3;
}

/** MS-SSIM on the dB scale papers plot: -10 log10(1 - MS-SSIM). */
export function msssimDb(value: number): number {
  return value >= 1 ? Infinity : -10 * Math.log10(1 - value);
}
