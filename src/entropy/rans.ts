/**
 * rANS with a 32-bit state and 16-bit renormalisation (Duda 2013; the word variant of ryg_rans),
 * written so that JavaScript never needs 64-bit or BigInt arithmetic:
 *
 *   state x in [L, 2^32), L = 2^16; frequencies sum to M = 2^P, P <= 16.
 *   decode: slot = x mod M; find s with cum[s] <= slot < cum[s] + f[s];
 *           x = f[s] * (x >> P) + slot - cum[s]; if x < L: x = (x << 16) | next 16-bit word.
 *   encode (in reverse): if x >= f << (32 - P): emit x & 0xffff, x >>= 16;
 *           x = (x / f) << P + x mod f + cum[s].
 *
 * f * (x >> P) < 2^32 always, so the decoder computes it with Math.imul and keeps the state as an
 * int32 holding the unsigned value's bits: `x >>> 16 === 0` is the unsigned test x < 2^16.
 * One renormalisation step always suffices: after a decode step x >= 2^(16 - P) >= 1.
 */
export const RANS_L = 1 << 16;
/** Coder id stored in the first byte of a `LATN` body. */
export const CODER_RANS32X16 = 1;
/** The same coder with each value's table chosen by its context (version-2 table files). */
export const CODER_RANS32X16_CONTEXT = 2;
export const MAX_LANES = 8;

/**
 * Escape payload: the distance d >= 0 of a value beyond its table's range (d = 2k for hi + 1 + k,
 * d = 2k + 1 for lo - 1 - k) in 4-bit nibbles through the same lane, each coded with a uniform
 * frequency 2^(P-4): first (nibbles - 1), then the nibbles, least significant first. Five nibbles
 * cover every int16 value.
 */
export const ESCAPE_NIBBLE_BITS = 4;
export const MAX_ESCAPE_NIBBLES = 5;

/** Grows a word buffer for the encoder; words are pushed in reverse stream order. */
export class WordSink {
  words: Uint16Array;
  length = 0;
  constructor(capacity: number) {
    this.words = new Uint16Array(Math.max(64, capacity));
  }
  push(word: number): void {
    if (this.length === this.words.length) {
      const grown = new Uint16Array(this.words.length * 2);
      grown.set(this.words);
      this.words = grown;
    }
    this.words[this.length++] = word;
  }
}

/**
 * One encode step: returns the new state. `x` is the unsigned state as a number (< 2^32).
 *
 * @example
 * x = encodeSymbol(x, sink, cum, freq, 12)
 */
export function encodeSymbol(x: number, sink: WordSink, cum: number, freq: number, precision: number): number {
  if (x >= freq * 2 ** (32 - precision)) {
    sink.push(x & 0xffff);
    x = Math.floor(x / 65536);
  }
  const q = Math.floor(x / freq);
  return q * 2 ** precision + (x - q * freq) + cum;
}

/** Nibbles of an escape distance, least significant first (at least one). */
export function escapeNibbles(distance: number): number[] {
  const nibbles = [distance & 15];
  for (let d = distance >>> 4; d > 0; d >>>= 4) nibbles.push(d & 15);
  return nibbles;
}
