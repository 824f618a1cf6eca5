import { describe, expect, it } from 'vitest';
import { fromPlanar, pixelStride, psnr, toPaddedPlanar } from './pixels.ts';

describe('toPaddedPlanar', () => {
  it('pads to the next multiple by repeating the last column and row', () => {
    // 3x2 RGB image: pixel (x, y) has R = 10 * y + x, G = 100, B = 0.
    const data = Uint8Array.from({ length: 18 }, (_, i) => [10 * Math.floor(i / 9) + Math.floor((i % 9) / 3), 100, 0][i % 3]);
    const { data: planar, height, width } = toPaddedPlanar({ data, width: 3, height: 2 }, 4);
    expect([height, width]).toEqual([4, 4]);
    const red = Array.from(planar.subarray(0, 16), (v) => Math.round(v * 255));
    expect(red).toEqual([0, 1, 2, 2, 10, 11, 12, 12, 10, 11, 12, 12, 10, 11, 12, 12]);
    expect(planar[16]).toBeCloseTo(100 / 255);
  });

  it('reads RGBA input and ignores alpha', () => {
    const rgba = Uint8ClampedArray.of(255, 0, 51, 7);
    const { data } = toPaddedPlanar({ data: rgba, width: 1, height: 1 }, 1);
    expect(Array.from(data, (v) => Math.round(v * 255))).toEqual([255, 0, 51]);
  });
});

describe('fromPlanar', () => {
  it('crops, rounds to nearest and clamps out-of-range and NaN values', () => {
    // 1 x 3 planes of 2x2, cropped to 1x2.
    const planar = Float32Array.of(0.5, 9, 1.5, 9, /* G */ -0.2, 9, 0.002, 9, /* B */ Number.NaN, 9, 1, 9);
    const out = fromPlanar(planar, 2, 2, 2, 1);
    expect([out.width, out.height]).toEqual([1, 2]);
    expect(Array.from(out.data)).toEqual([128, 0, 0, 255, 1, 255]);
  });
});

describe('pixelStride and psnr', () => {
  it('rejects data whose length fits neither RGB nor RGBA', () => {
    expect(() => pixelStride({ data: new Uint8Array(5), width: 1, height: 1 })).toThrow(expect.objectContaining({ code: 'INVALID_IMAGE' }));
  });

  it('is infinite for identical images and 20 log10(255 / error) for a uniform error', () => {
    const a = { data: new Uint8Array(12).fill(100), width: 2, height: 2 };
    expect(psnr(a, a)).toBe(Infinity);
    expect(psnr(a, { ...a, data: new Uint8Array(12).fill(110) })).toBeCloseTo(20 * Math.log10(25.5));
  });
});
