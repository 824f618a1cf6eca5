import { describe, expect, it } from 'vitest';
import { EntropyError } from '../entropy/index.ts';
import { TEST_MODEL, decodeStream, sampleStream } from '../../test/support/streams.ts';
import { crc32c } from './crc32c.ts';
import { BitstreamError, type BitstreamErrorCode } from './errors.ts';
import { FORMAT_LIMITS, MIN_STREAM_BYTES } from './format.ts';
import { readHeader } from './header.ts';
import { parseBitstream } from './reader.ts';
import { writeBitstream } from './writer.ts';

const latents = Uint8Array.of(1, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1);
const fields = { width: 768, height: 512, stride: 8, channels: 64, modelId: 'ls-f8-q2', tableHash: '0123456789abcdef' };

function codeOf(fn: () => unknown): BitstreamErrorCode | string {
  try {
    fn();
  } catch (e) {
    if (e instanceof BitstreamError || e instanceof EntropyError) return e.code;
    throw e;
  }
  return 'accepted';
}

/** Rewrites a header field and re-seals the checksum, so that the check under test is the one that fires. */
function patch(bytes: Uint8Array, edit: (view: DataView, bytes: Uint8Array) => void): Uint8Array {
  const out = bytes.slice();
  edit(new DataView(out.buffer), out);
  new DataView(out.buffer).setUint32(out.length - 4, crc32c(out, 0, out.length - 4), true);
  return out;
}

describe('writeBitstream and parseBitstream', () => {
  it('round-trip every header field and the latent part', () => {
    const bytes = writeBitstream({ ...fields, latents });
    const { header, latents: body, parts } = parseBitstream(bytes);
    expect(header).toEqual({
      version: 1, totalLength: bytes.length, width: 768, height: 512, stride: 8, elementType: 1, channels: 64,
      latentHeight: 64, latentWidth: 96, modelId: 'ls-f8-q2', tableHash: '0123456789abcdef', headerLength: 35,
    });
    expect([...body]).toEqual([...latents]);
    expect(parts.map((p) => p.tag)).toEqual(['LATN']);
  });

  it('lay out the bytes as docs/FORMAT.md says', () => {
    const bytes = writeBitstream({ ...fields, latents });
    expect([...bytes.subarray(0, 6)]).toEqual([0x89, 0x4c, 0x53, 0x42, 1, 0]);
    const view = new DataView(bytes.buffer);
    expect(view.getUint32(6, true)).toBe(bytes.length);
    expect(new TextDecoder().decode(bytes.subarray(27, 35))).toBe('ls-f8-q2');
    expect(new TextDecoder().decode(bytes.subarray(35, 39))).toBe('LATN');
    expect(view.getUint32(39, true)).toBe(latents.length);
    expect(view.getUint32(bytes.length - 4, true)).toBe(crc32c(bytes, 0, bytes.length - 4));
  });

  it('skip an unknown optional part and keep it in the part list', () => {
    const note = { tag: 'note', body: new TextEncoder().encode('hello') };
    const { parts, latents: body } = parseBitstream(writeBitstream({ ...fields, latents, extraParts: [note] }));
    expect(parts.map((p) => p.tag)).toEqual(['LATN', 'note']);
    expect(body.length).toBe(latents.length);
  });

  it('reject an unknown required part, a duplicate latent part and a stream with no latent part', () => {
    const extra = (tag: string) => ({ ...fields, latents, extraParts: [{ tag, body: new Uint8Array(3) }] });
    expect(codeOf(() => parseBitstream(writeBitstream(extra('XTRA'))))).toBe('UNKNOWN_PART');
    expect(codeOf(() => parseBitstream(writeBitstream(extra('LATN'))))).toBe('DUPLICATE_PART');
    const renamed = patch(writeBitstream({ ...fields, latents }), (_, b) => b.set([0x6c], 35)); // "lATN": optional
    expect(codeOf(() => parseBitstream(renamed))).toBe('MISSING_PART');
  });

  it('check the model id and table hash against the known models when asked', () => {
    const bytes = writeBitstream({ ...fields, latents });
    expect(codeOf(() => parseBitstream(bytes, { models: () => undefined }))).toBe('UNKNOWN_MODEL');
    expect(codeOf(() => parseBitstream(bytes, { models: () => ({ tableHash: 'ffffffffffffffff' }) }))).toBe('TABLE_MISMATCH');
    expect(codeOf(() => parseBitstream(bytes, { models: () => ({ tableHash: fields.tableHash }) }))).toBe('accepted');
  });

  it('refuse to write what a reader would reject', () => {
    expect(codeOf(() => writeBitstream({ ...fields, latents, modelId: 'Bad Id' }))).toBe('INVALID_HEADER');
    expect(codeOf(() => writeBitstream({ ...fields, latents, tableHash: 'xyz' }))).toBe('INVALID_HEADER');
    expect(codeOf(() => writeBitstream({ ...fields, latents, width: 20000 }))).toBe('LIMIT_EXCEEDED');
    expect(codeOf(() => writeBitstream({ ...fields, latents, stride: 3 }))).toBe('INVALID_HEADER');
    expect(codeOf(() => writeBitstream({ ...fields, latents, extraParts: [{ tag: 'no', body: latents }] }))).toBe('INVALID_PART');
  });
});

describe('a hostile stream', () => {
  const { bytes, tables } = sampleStream();

  it('is rejected when empty, or when it is not a latentsight stream', () => {
    expect(codeOf(() => parseBitstream(new Uint8Array(0)))).toBe('EMPTY');
    expect(codeOf(() => parseBitstream(new TextEncoder().encode('{"image": "not a bitstream"}')))).toBe('BAD_MAGIC');
    expect(codeOf(() => parseBitstream(Uint8Array.of(0xff, 0xd8, 0xff, 0xe0)))).toBe('BAD_MAGIC');
  });

  it('is rejected with TRUNCATED when cut at any byte', () => {
    for (let len = 1; len < bytes.length; len++) {
      expect(codeOf(() => decodeStream(bytes.subarray(0, len), tables)), `cut at ${len}`).toBe('TRUNCATED');
    }
    expect(codeOf(() => decodeStream(bytes, tables))).toBe('accepted');
  });

  it('is rejected with a typed error for every single-bit flip', () => {
    const seen = new Set<string>();
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const flipped = bytes.slice();
      flipped[bit >> 3] ^= 1 << (bit & 7);
      const code = codeOf(() => decodeStream(flipped, tables));
      expect(code, `bit ${bit}`).not.toBe('accepted');
      seen.add(code);
    }
    // The flips reach several checks, not only the checksum.
    expect([...seen].sort()).toEqual(expect.arrayContaining(['BAD_MAGIC', 'CHECKSUM_MISMATCH', 'UNSUPPORTED_VERSION', 'TRUNCATED']));
  });

  it('is rejected with CHECKSUM_MISMATCH when only the checksum is wrong', () => {
    const bad = bytes.slice();
    bad[bad.length - 1] ^= 0x80;
    expect(codeOf(() => parseBitstream(bad))).toBe('CHECKSUM_MISMATCH');
  });

  it('is rejected with TRAILING_DATA when bytes follow the declared end', () => {
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expect(codeOf(() => parseBitstream(longer))).toBe('TRAILING_DATA');
  });

  it('is rejected with LIMIT_EXCEEDED for huge declared dimensions, before the body is read', () => {
    const huge = patch(bytes, (v) => { v.setUint16(10, 65535, true); v.setUint16(12, 65535, true); });
    expect(codeOf(() => parseBitstream(huge))).toBe('LIMIT_EXCEEDED');
    // The header alone is enough to refuse it: a server need not read the rest.
    expect(codeOf(() => readHeader(huge.subarray(0, 40)))).toBe('LIMIT_EXCEEDED');
    const manyLatents = patch(bytes, (v) => { v.setUint16(10, 16384, true); v.setUint16(12, 16384, true); v.setUint16(16, 1024, true); });
    expect(codeOf(() => parseBitstream(manyLatents))).toBe('LIMIT_EXCEEDED');
    const longDeclared = patch(bytes, (v) => v.setUint32(6, FORMAT_LIMITS.maxStreamBytes + 1, true));
    expect(codeOf(() => parseBitstream(longDeclared))).toBe('LIMIT_EXCEEDED');
  });

  it('is held to stricter limits a caller passes, and never to looser ones', () => {
    expect(codeOf(() => parseBitstream(bytes, { limits: { maxStreamBytes: bytes.length - 1 } }))).toBe('LIMIT_EXCEEDED');
    expect(codeOf(() => parseBitstream(bytes, { limits: { maxDimension: 36 } }))).toBe('LIMIT_EXCEEDED');
    const huge = patch(bytes, (v) => v.setUint16(10, 60000, true));
    expect(codeOf(() => parseBitstream(huge, { limits: { maxDimension: 1e9 } }))).toBe('LIMIT_EXCEEDED');
  });

  it('is rejected with a typed error for each malformed header field', () => {
    expect(codeOf(() => parseBitstream(patch(bytes, (_, b) => { b[4] = 2; })))).toBe('UNSUPPORTED_VERSION');
    expect(codeOf(() => parseBitstream(patch(bytes, (_, b) => { b[5] = 1; })))).toBe('UNSUPPORTED_FEATURE');
    expect(codeOf(() => parseBitstream(patch(bytes, (v) => v.setUint16(10, 0, true))))).toBe('INVALID_HEADER');
    expect(codeOf(() => parseBitstream(patch(bytes, (_, b) => { b[14] = 6; })))).toBe('INVALID_HEADER');
    expect(codeOf(() => parseBitstream(patch(bytes, (_, b) => { b[15] = 2; })))).toBe('INVALID_HEADER');
    expect(codeOf(() => parseBitstream(patch(bytes, (v) => v.setUint16(16, 0, true))))).toBe('INVALID_HEADER');
    expect(codeOf(() => parseBitstream(patch(bytes, (_, b) => { b[18] = 0; })))).toBe('INVALID_HEADER');
    expect(codeOf(() => parseBitstream(patch(bytes, (_, b) => { b[27] = 0x41; })))).toBe('INVALID_HEADER');
    expect(codeOf(() => parseBitstream(patch(bytes, (v) => v.setUint32(6, MIN_STREAM_BYTES - 1, true))))).toBe('INVALID_HEADER');
  });

  it('is rejected with INVALID_PART when a part overruns the stream', () => {
    const at = 27 + TEST_MODEL.id.length + 4;
    expect(codeOf(() => parseBitstream(patch(bytes, (v) => v.setUint32(at, 1e6, true))))).toBe('INVALID_PART');
    expect(codeOf(() => parseBitstream(patch(bytes, (_, b) => { b[at - 4] = 0x31; })))).toBe('INVALID_PART');
  });

  it('with a valid checksum but a corrupt latent payload is rejected by the entropy decoder', () => {
    const at = 27 + TEST_MODEL.id.length + 8;
    const codes = new Set<string>();
    for (let i = at; i < bytes.length - 4; i++) {
      const bad = patch(bytes, (_, b) => { b[i] ^= 0x5a; });
      codes.add(codeOf(() => decodeStream(bad, tables)));
    }
    expect(codes.has('accepted')).toBe(false);
    expect(codes).toContain('CORRUPT_PAYLOAD');
  });
});
