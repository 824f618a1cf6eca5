/**
 * Bitstream format v1: constants and layout. `docs/FORMAT.md` is the prose version of this file;
 * change both together, and the golden vectors in `test/vectors/` pin the bytes.
 *
 * All integers are little-endian. Layout:
 *
 *   offset  size  field
 *   0       4     magic 89 4C 53 42 ("\x89LSB")
 *   4       1     format version (1)
 *   5       1     required features (bit set; v1 defines none, any set bit is rejected)
 *   6       4     total length of the stream in bytes, checksum included
 *   10      2     image width in pixels
 *   12      2     image height in pixels
 *   14      1     stride: image side / latent side (power of two, 1..64)
 *   15      1     latent element type (1 = int16)
 *   16      2     latent channels
 *   18      1     model id length n (1..32)
 *   19      8     table hash: first 8 bytes of the SHA-256 of the model's entropy table file
 *   27      n     model id, ASCII [a-z0-9._-]
 *   27+n    ...   parts: tag (4 ASCII bytes), body length (u32), body
 *   end-4   4     CRC-32C of every byte before it
 */

/** "\x89LSB": the high first byte catches 7-bit transports and text-mode mangling, as PNG's does. */
export const MAGIC = Uint8Array.of(0x89, 0x4c, 0x53, 0x42);
export const FORMAT_VERSION = 1;
/** Bytes of the fixed header before the model id. */
export const FIXED_HEADER_BYTES = 27;
export const CHECKSUM_BYTES = 4;
export const PART_HEADER_BYTES = 8;
/** The smallest well-formed stream: fixed header, 1-byte model id, one empty part, checksum. */
export const MIN_STREAM_BYTES = FIXED_HEADER_BYTES + 1 + PART_HEADER_BYTES + CHECKSUM_BYTES;
export const TABLE_HASH_BYTES = 8;

/** Feature bits a v1 reader understands. None yet: a writer that sets any bit needs a newer reader. */
export const KNOWN_FEATURES = 0;

export const ElementType = { int16: 1 } as const;
export type ElementType = (typeof ElementType)[keyof typeof ElementType];

/**
 * Part tags. As in PNG, an upper-case first letter marks a part that a reader must understand
 * (unknown ones are rejected); a lower-case first letter marks an optional part (unknown ones are skipped).
 */
export const PartTag = {
  /** The entropy-coded latents; exactly one. Its body layout belongs to `src/entropy`. */
  latents: 'LATN',
} as const;

/** Hard limits of format v1. Readers may pass stricter ones; never looser. */
export interface Limits {
  /** Image width and height, each. */
  maxDimension: number;
  /** channels x latent height x latent width. */
  maxLatentElements: number;
  /** Whole stream, header and checksum included. */
  maxStreamBytes: number;
  maxChannels: number;
  maxParts: number;
}

export const FORMAT_LIMITS: Readonly<Limits> = Object.freeze({
  maxDimension: 16384,
  maxLatentElements: 1 << 24,
  maxStreamBytes: 1 << 25,
  maxChannels: 1024,
  maxParts: 16,
});

export const MODEL_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,31}$/;

/** Latent side for an image side: ceil(side / stride). The encoder pads the image to a multiple of stride. */
export function latentSide(side: number, stride: number): number {
  return Math.ceil(side / stride);
}
