/**
 * Rate-distortion points and bit savings at equal quality. Platform-free: the caller supplies the
 * codecs (ours through onnxruntime, the references through sharp).
 */
import type { RgbImage } from '../codec/index.ts';
import { MSSSIM_MIN_SIDE, msssim, msssimDb, psnr } from './metrics.ts';

/** One operating point: means over the images. */
export interface RdPoint {
  bpp: number;
  psnr: number;
  msssim: number;
  /** The codec's quality setting, for reference codecs. */
  quality?: number;
}

/** Measures one decoded image against its original; MS-SSIM is NaN for images under 176 px a side. */
export function measure(original: RgbImage, decoded: RgbImage, bytes: number): RdPoint {
  const big = Math.min(original.width, original.height) >= MSSSIM_MIN_SIDE;
  return {
    bpp: (bytes * 8) / (original.width * original.height),
    psnr: psnr(original, decoded),
    msssim: big ? msssim(original, decoded) : NaN,
  };
}

/**
 * Mean of several images' points (PSNR averaged in dB, as the published Kodak curves do); images
 * without an MS-SSIM (too small) are left out of its mean.
 */
export function meanPoint(points: readonly RdPoint[], quality?: number): RdPoint {
  const mean = (f: (p: RdPoint) => number) => {
    const xs = points.map(f).filter((x) => !Number.isNaN(x));
    return xs.reduce((s, x) => s + x, 0) / xs.length;
  };
  return { bpp: mean((p) => p.bpp), psnr: mean((p) => p.psnr), msssim: mean((p) => p.msssim), ...(quality === undefined ? {} : { quality }) };
}

/**
 * The fraction of bits a point saves against another codec's curve at equal quality: 1 - bpp /
 * bpp_other(quality), with bpp_other interpolated linearly in log(bpp) between the curve's two
 * neighbouring points (MS-SSIM on its dB scale). Negative when the point needs more bits; null when
 * the quality lies outside the other curve.
 *
 * @example
 * bitSavings({ bpp: 0.6, psnr: 32, msssim: 0.97 }, jpegCurve, 'psnr') // 0.31
 */
export function bitSavings(point: RdPoint, curve: readonly RdPoint[], metric: 'psnr' | 'msssim'): number | null {
  const q = (p: RdPoint) => (metric === 'psnr' ? p.psnr : msssimDb(p.msssim));
  const target = q(point);
  const sorted = [...curve].sort((a, b) => q(a) - q(b));
  for (let i = 1; i < sorted.length; i++) {
    const lo = sorted[i - 1];
    const hi = sorted[i];
    if (q(lo) <= target && target <= q(hi)) {
      const t = q(hi) === q(lo) ? 0 : (target - q(lo)) / (q(hi) - q(lo));
      const bpp = Math.exp(Math.log(lo.bpp) + t * (Math.log(hi.bpp) - Math.log(lo.bpp)));
      return 1 - point.bpp / bpp;
    }
  }
  return null;
}

/**
 * The median: robust to the noise of a shared machine (timings) and to outlier images.
 *
 * @example
 * median([3, 1, 2]) // 2
 */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length & 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}
