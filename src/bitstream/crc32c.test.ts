import { describe, expect, it } from 'vitest';
import { crc32c } from './crc32c.ts';

const ascii = (s: string) => new TextEncoder().encode(s);

describe('crc32c', () => {
  it('matches the CRC-32C check value of "123456789"', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
  });

  it('is 0 for no bytes and matches a bitwise reference on every length up to 64', () => {
    expect(crc32c(new Uint8Array(0))).toBe(0);
    const bytes = Uint8Array.from({ length: 64 }, (_, i) => (i * 151 + 7) & 0xff);
    for (let len = 0; len <= 64; len++) expect(crc32c(bytes, 0, len)).toBe(bitwise(bytes.subarray(0, len)));
  });

  it('covers exactly the range it is given', () => {
    const bytes = ascii('xx123456789yy');
    expect(crc32c(bytes, 2, 11)).toBe(0xe3069283);
  });
});

/** The textbook bit-at-a-time CRC-32C, independent of the table-driven one. */
function bitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
