import { crc32c } from '../../src/bitstream/index.ts';

/** Values that find off-by-one and overflow bugs more often than random ones. */
const INTERESTING_U8 = [0, 1, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_U16 = [0, 1, 7, 8, 9, 0x7fff, 0x8000, 0xffff, 16384, 16385];
const INTERESTING_U32 = [0, 1, 39, 40, 0x7fffffff, 0x80000000, 0xffffffff, 1 << 25, (1 << 25) + 1];

/**
 * Mutates a valid stream: 1-4 random edits (bit flips, byte and field overwrites with interesting
 * values, truncation, extension, slice deletion and duplication), then, half the time, re-seals
 * the declared length and checksum so the mutation reaches the layers behind them.
 */
export function mutate(seed: Uint8Array, rand: () => number): Uint8Array {
  let b: Uint8Array = seed.slice();
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const at = (len: number) => Math.floor(rand() * Math.max(1, len));
  const edits = 1 + Math.floor(rand() * 4);
  for (let e = 0; e < edits; e++) {
    const op = Math.floor(rand() * 9);
    if (op === 0 && b.length) b[at(b.length)] ^= 1 << at(8);
    else if (op === 1 && b.length) b[at(b.length)] = pick(INTERESTING_U8);
    else if (op === 2 && b.length) b[at(b.length)] = at(256);
    else if (op === 3 && b.length > 1) {
      const i = at(b.length - 1);
      const v = pick(INTERESTING_U16);
      b[i] = v & 0xff;
      b[i + 1] = v >>> 8;
    } else if (op === 4 && b.length > 3) {
      // Header fields live in the first 40 bytes: aim there most of the time.
      const i = rand() < 0.7 ? at(Math.min(36, b.length - 3)) : at(b.length - 3);
      new DataView(b.buffer, b.byteOffset).setUint32(i, pick(INTERESTING_U32), true);
    } else if (op === 5) b = b.slice(0, at(b.length + 1));
    else if (op === 6) {
      const extra = Uint8Array.from({ length: 1 + at(16) }, () => at(256));
      b = concat(b, extra);
    } else if (op === 7 && b.length > 2) {
      const i = at(b.length);
      const len = 1 + at(Math.min(32, b.length - i));
      b = concat(b.subarray(0, i), b.subarray(i + len));
    } else if (op === 8 && b.length > 2) {
      const i = at(b.length);
      const len = 1 + at(Math.min(32, b.length - i));
      b = concat(b.subarray(0, i + len), b.subarray(i));
    }
  }
  if (rand() < 0.5 && b.length >= 14) {
    const view = new DataView(b.buffer, b.byteOffset);
    if (rand() < 0.9) view.setUint32(6, b.length, true);
    view.setUint32(b.length - 4, crc32c(b, 0, b.length - 4), true);
  }
  return b;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
