import { crc32c } from './crc32c.ts';
import { BitstreamError } from './errors.ts';
import { CHECKSUM_BYTES, type Limits, PART_HEADER_BYTES, PartTag } from './format.ts';
import { type BitstreamHeader, readHeader, resolveLimits } from './header.ts';

/** One part of a stream: its tag and a view of its body (no copy). */
export interface Part {
  tag: string;
  body: Uint8Array;
}

/** A stream whose container has been fully checked. The latents are still entropy-coded. */
export interface Bitstream {
  header: BitstreamHeader;
  /** Body of the `LATN` part: decode it with `decodeLatents` from `src/entropy`. */
  latents: Uint8Array;
  /** Every part in stream order, optional ones included. */
  parts: Part[];
}

/** What a reader knows about a codec model: enough to reject a stream it cannot decode. */
export interface KnownModel {
  tableHash: string;
  /** Table hashes of the model's earlier versions that this reader still decodes (archived streams). */
  legacyTableHashes?: readonly string[];
}

export interface ParseOptions {
  limits?: Partial<Limits>;
  /** Looks up a model id; when given, unknown ids and table-hash mismatches are rejected. */
  models?: (modelId: string) => KnownModel | undefined;
}

/**
 * Parses a whole stream strictly: header and limits, exact length, checksum, parts. Throws a
 * `BitstreamError` with a stable code for anything else; never returns a partially valid stream.
 *
 * @example
 * const { header, latents } = parseBitstream(bytes, { models: (id) => registry.get(id) })
 */
export function parseBitstream(bytes: Uint8Array, options: ParseOptions = {}): Bitstream {
  const limits = resolveLimits(options.limits);
  const header = readHeader(bytes, limits);
  if (bytes.length < header.totalLength) {
    throw new BitstreamError('TRUNCATED', `The stream declares ${header.totalLength} bytes but only ${bytes.length} arrived.`);
  }
  if (bytes.length > header.totalLength) {
    throw new BitstreamError(
      'TRAILING_DATA',
      `${bytes.length - header.totalLength} bytes follow the end of the stream (declared length ${header.totalLength}).`,
    );
  }
  const end = bytes.length - CHECKSUM_BYTES;
  const stored = (bytes[end] | (bytes[end + 1] << 8) | (bytes[end + 2] << 16) | (bytes[end + 3] << 24)) >>> 0;
  if (crc32c(bytes, 0, end) !== stored) {
    throw new BitstreamError('CHECKSUM_MISMATCH', 'The checksum does not match: the stream was corrupted in transit or storage.');
  }

  const parts: Part[] = [];
  let latents: Uint8Array | undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let pos = header.headerLength; pos < end; ) {
    if (parts.length === limits.maxParts) {
      throw new BitstreamError('LIMIT_EXCEEDED', `The stream has more than ${limits.maxParts} parts.`);
    }
    if (end - pos < PART_HEADER_BYTES) throw new BitstreamError('INVALID_PART', `A part header at byte ${pos} is cut short.`);
    const tag = String.fromCharCode(bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]);
    if (!/^[A-Za-z]{4}$/.test(tag)) throw new BitstreamError('INVALID_PART', `The part tag at byte ${pos} is not 4 ASCII letters.`);
    const length = view.getUint32(pos + 4, true);
    const start = pos + PART_HEADER_BYTES;
    if (length > end - start) {
      throw new BitstreamError('INVALID_PART', `Part ${tag} declares ${length} bytes but only ${end - start} remain.`);
    }
    const body = bytes.subarray(start, start + length);
    if (tag === PartTag.latents) {
      if (latents) throw new BitstreamError('DUPLICATE_PART', `The stream has more than one ${PartTag.latents} part.`);
      latents = body;
    } else if (isRequired(tag)) {
      throw new BitstreamError('UNKNOWN_PART', `Part ${tag} is required but this reader does not know it.`);
    }
    parts.push({ tag, body });
    pos = start + length;
  }
  if (!latents) throw new BitstreamError('MISSING_PART', `The stream has no ${PartTag.latents} part.`);

  if (options.models) {
    const model = options.models(header.modelId);
    if (!model) throw new BitstreamError('UNKNOWN_MODEL', `Codec model "${header.modelId}" is not known here; see GET /v1/models.`);
    if (model.tableHash !== header.tableHash && !model.legacyTableHashes?.includes(header.tableHash)) {
      throw new BitstreamError(
        'TABLE_MISMATCH',
        `The stream was coded with entropy tables ${header.tableHash}, but model "${header.modelId}" has ${model.tableHash}.`,
      );
    }
  }
  return { header, latents, parts };
}

/** Upper-case first letter: a reader must understand the part (PNG's critical-chunk rule). */
export function isRequired(tag: string): boolean {
  const c = tag.charCodeAt(0);
  return c >= 65 && c <= 90;
}
