// The mask PNG encoder, read back chunk by chunk with an independent reader (support/png.ts).
import { describe, expect, it } from 'vitest';
import { base64, crc32, encodePalettePng } from '../../src/tasks/png.ts';
import { readPalettePng } from './support/png.ts';

describe('encodePalettePng', () => {
  it('computes the CRC-32 of PNG chunks', () => {
    expect(crc32(new TextEncoder().encode('IEND'))).toBe(0xae426082);
  });

  it('writes IHDR, PLTE, tRNS, IDAT and IEND with unfiltered rows of palette indices', async () => {
    const indices = Uint8Array.of(0, 1, 2, 2, 1, 0);
    const png = await encodePalettePng({
      width: 3,
      height: 2,
      indices,
      palette: Uint8Array.of(255, 0, 0, 0, 255, 0, 0, 0, 255),
      alpha: Uint8Array.of(255, 255, 0),
    });

    const { chunks, raw, pixels } = await readPalettePng(png);
    expect(chunks.map((c) => c.type)).toEqual(['IHDR', 'PLTE', 'tRNS', 'IDAT', 'IEND']);
    expect([...chunks[0].data]).toEqual([0, 0, 0, 3, 0, 0, 0, 2, 8, 3, 0, 0, 0]);
    expect([...chunks[1].data]).toEqual([255, 0, 0, 0, 255, 0, 0, 0, 255]);
    expect([...chunks[2].data]).toEqual([255, 255, 0]);
    expect([...raw]).toEqual([0, 0, 1, 2, 0, 2, 1, 0]);
    expect(pixels).toEqual(indices);
  });

  it('refuses indices that do not fill the image', async () => {
    await expect(encodePalettePng({ width: 2, height: 2, indices: new Uint8Array(3), palette: new Uint8Array(3) })).rejects.toThrow(RangeError);
  });

  it('base64-encodes large buffers in slices', () => {
    const bytes = new Uint8Array(100_000).map((_, i) => i);
    expect(atob(base64(bytes)).length).toBe(100_000);
    expect(base64(Uint8Array.of(0xff))).toBe('/w==');
  });
});
