import { crc32c } from './crc32c.ts';
import { BitstreamError } from './errors.ts';
import {
  CHECKSUM_BYTES,
  ElementType,
  FIXED_HEADER_BYTES,
  FORMAT_VERSION,
  MAGIC,
  PART_HEADER_BYTES,
  PartTag,
  TABLE_HASH_BYTES,
} from './format.ts';
import { type HeaderFields, readHeader } from './header.ts';
import type { Part } from './reader.ts';

export interface WriteInput extends HeaderFields {
  /** Body of the `LATN` part, as `encodeLatents` from `src/entropy` returns it. */
  latents: Uint8Array;
  /** Further parts, written after `LATN` in this order. */
  extraParts?: Part[];
}

/**
 * Writes a v1 stream. The result is checked with the reader's own header rules, so a writer can
 * never produce a stream that a reader with default limits rejects.
 *
 * @example
 * const bytes = writeBitstream({ width: 768, height: 512, stride: 8, channels: 64,
 *   modelId: 'ls-f8-q2', tableHash: '0123456789abcdef', latents: encodeLatents(...) })
 */
export function writeBitstream(input: WriteInput): Uint8Array {
  if (!/^[0-9a-f]{16}$/.test(input.tableHash)) {
    throw new BitstreamError('INVALID_HEADER', 'The table hash must be 16 lower-case hex digits.');
  }
  const parts: Part[] = [{ tag: PartTag.latents, body: input.latents }, ...(input.extraParts ?? [])];
  const idLength = input.modelId.length;
  let total = FIXED_HEADER_BYTES + idLength + CHECKSUM_BYTES;
  for (const p of parts) {
    if (!/^[A-Za-z]{4}$/.test(p.tag)) throw new BitstreamError('INVALID_PART', `Part tag "${p.tag}" is not 4 ASCII letters.`);
    total += PART_HEADER_BYTES + p.body.length;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  out[4] = FORMAT_VERSION;
  out[5] = 0;
  view.setUint32(6, total, true);
  view.setUint16(10, input.width, true);
  view.setUint16(12, input.height, true);
  out[14] = input.stride;
  out[15] = ElementType.int16;
  view.setUint16(16, input.channels, true);
  out[18] = idLength;
  for (let i = 0; i < TABLE_HASH_BYTES; i++) out[19 + i] = parseInt(input.tableHash.slice(2 * i, 2 * i + 2), 16);
  for (let i = 0; i < idLength; i++) out[FIXED_HEADER_BYTES + i] = input.modelId.charCodeAt(i) & 0xff;
  // Validate what was written with the reader's rules (dimensions, limits, id syntax) before going on.
  const header = readHeader(out);
  if (header.width !== input.width || header.height !== input.height || header.channels !== input.channels) {
    throw new BitstreamError('INVALID_HEADER', 'Width, height and channels must each fit in 16 bits.');
  }
  let pos = header.headerLength;
  for (const p of parts) {
    for (let i = 0; i < 4; i++) out[pos + i] = p.tag.charCodeAt(i);
    view.setUint32(pos + 4, p.body.length, true);
    out.set(p.body, pos + PART_HEADER_BYTES);
    pos += PART_HEADER_BYTES + p.body.length;
  }
  view.setUint32(pos, crc32c(out, 0, pos), true);
  return out;
}
