import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../test/support/synthetic.ts';
import type { RgbImage } from '../codec/index.ts';
import { msssim, msssimDb, psnr } from './metrics.ts';

/** A smooth 192x184 test pattern and a copy with uniform noise in [-20, 20). */
function pair(): [RgbImage, RgbImage] {
  const width = 192;
  const height = 184;
  const rand = mulberry32(42);
  const a = new Uint8Array(width * height * 3);
  const b = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        const i = (y * width + x) * 3 + c;
        a[i] = Math.round(127 + 100 * Math.sin(x / (7 + c)) * Math.cos(y / 11));
        b[i] = Math.max(0, Math.min(255, a[i] + Math.round((rand() - 0.5) * 40)));
      }
    }
  }
  return [{ data: a, width, height }, { data: b, width, height }];
}

describe('psnr', () => {
  it('is infinite for identical images and 20 log10(255 / rmse) otherwise', () => {
    const a = { data: new Uint8Array(12).fill(100), width: 2, height: 2 };
    const b = { data: new Uint8Array(12).fill(110), width: 2, height: 2 };
    expect(psnr(a, a)).toBe(Infinity);
    expect(psnr(a, b)).toBeCloseTo(20 * Math.log10(255 / 10), 12);
  });

  it('rejects images of different sizes', () => {
    const a = { data: new Uint8Array(12), width: 2, height: 2 };
    expect(() => psnr(a, { data: new Uint8Array(6), width: 2, height: 1 })).toThrowError(/Cannot compare/);
  });
});

describe('msssim', () => {
  it('matches an independent numpy implementation of the pytorch-msssim convention', () => {
    // Values computed once with a separate numpy implementation (np.convolve, "valid" windows,
    // 2x2 mean pooling) on exactly these images: 0.9710284955785623 and 26.881558231479286 dB.
    const [a, b] = pair();
    expect(msssim(a, b)).toBeCloseTo(0.9710284955785623, 12);
    expect(psnr(a, b)).toBeCloseTo(26.881558231479286, 12);
  });

  it('is 1 for identical images, symmetric, and falls as distortion grows', () => {
    const [a, b] = pair();
    expect(msssim(a, a)).toBeCloseTo(1, 12);
    expect(msssim(b, a)).toBeCloseTo(msssim(a, b), 12);
    const worse = { ...b, data: b.data.map((v, i) => Math.max(0, Math.min(255, v + (a.data[i] - v) * -1))) };
    expect(msssim(a, worse)).toBeLessThan(msssim(a, b));
  });

  it('refuses images too small for five scales', () => {
    const small = { data: new Uint8Array(100 * 100 * 3), width: 100, height: 100 };
    expect(() => msssim(small, small)).toThrowError(/at least 176x176/);
  });

  it('has a dB scale of -10 log10(1 - value)', () => {
    expect(msssimDb(0.99)).toBeCloseTo(20, 12);
    expect(msssimDb(1)).toBe(Infinity);
  });
});
