import { describe, expect, it } from 'vitest';
import { rdPlotSvg } from './plot.ts';
import { bitSavings, meanPoint } from './rd.ts';

const jpeg = [
  { bpp: 0.5, psnr: 28, msssim: 0.9 },
  { bpp: 1.0, psnr: 32, msssim: 0.96 },
  { bpp: 2.0, psnr: 36, msssim: 0.99 },
];

describe('bitSavings', () => {
  it('interpolates the other curve in log(bpp) at equal PSNR', () => {
    // At 30 dB, halfway between 0.5 and 1.0 bpp in log space: sqrt(0.5) = 0.7071 bpp.
    expect(bitSavings({ bpp: 0.5, psnr: 30, msssim: 0.93 }, jpeg, 'psnr')).toBeCloseTo(1 - 0.5 / Math.SQRT1_2, 12);
    expect(bitSavings({ bpp: 1.0, psnr: 32, msssim: 0.96 }, jpeg, 'psnr')).toBeCloseTo(0, 12);
  });

  it('is negative when the point needs more bits, and null outside the other curve', () => {
    expect(bitSavings({ bpp: 1.5, psnr: 32, msssim: 0.96 }, jpeg, 'psnr')).toBeCloseTo(-0.5, 12);
    expect(bitSavings({ bpp: 0.1, psnr: 20, msssim: 0.5 }, jpeg, 'psnr')).toBeNull();
  });

  it('compares MS-SSIM on its dB scale', () => {
    // 0.96 is a point of the curve: equal bits there, whatever the scale.
    expect(bitSavings({ bpp: 0.8, psnr: 0, msssim: 0.96 }, jpeg, 'msssim')).toBeCloseTo(0.2, 12);
  });
});

describe('meanPoint and rdPlotSvg', () => {
  it('average points and draw one path per codec with a legend', () => {
    const mean = meanPoint([{ bpp: 1, psnr: 30, msssim: 0.9 }, { bpp: 3, psnr: 32, msssim: 0.94 }], 50);
    expect(mean).toMatchObject({ bpp: 2, psnr: 31, quality: 50 });
    expect(mean.msssim).toBeCloseTo(0.92, 12);
    const svg = rdPlotSvg({ 'ls-f8-q2': [{ bpp: 0.6, psnr: 31, msssim: 0.95 }, { bpp: 0.3, psnr: 28, msssim: 0.92 }], jpeg }, ['ls-f8-q2'], 'Kodak <24>');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<path /g)?.length).toBe(4); // two codecs x two panels
    expect(svg).toContain('Kodak &lt;24&gt;');
    expect(svg).toContain('>ls-f8-q2</text>');
  });
});
