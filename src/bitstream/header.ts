import { BitstreamError } from './errors.ts';
import {
  ElementType,
  FIXED_HEADER_BYTES,
  FORMAT_LIMITS,
  FORMAT_VERSION,
  KNOWN_FEATURES,
  type Limits,
  MAGIC,
  MIN_STREAM_BYTES,
  MODEL_ID_PATTERN,
  TABLE_HASH_BYTES,
  latentSide,
} from './format.ts';

/** The fixed header of a v1 stream, with the latent shape derived from it. */
export interface BitstreamHeader {
  version: number;
  /** Whole stream in bytes, checksum included. */
  totalLength: number;
  width: number;
  height: number;
  stride: number;
  elementType: ElementType;
  channels: number;
  latentHeight: number;
  latentWidth: number;
  modelId: string;
  /** First 8 bytes of the SHA-256 of the model's entropy table file, as 16 lower-case hex digits. */
  tableHash: string;
  /** Offset of the first part. */
  headerLength: number;
}

/** Header fields a writer supplies; the rest is derived. */
export type HeaderFields = Pick<
  BitstreamHeader,
  'width' | 'height' | 'stride' | 'channels' | 'modelId' | 'tableHash'
>;

/** Limits after merging a caller's stricter ones; looser ones are clamped to the format's. */
export function resolveLimits(limits: Partial<Limits> = {}): Limits {
  const out = { ...FORMAT_LIMITS };
  for (const key of Object.keys(out) as (keyof Limits)[]) {
    const v = limits[key];
    if (v !== undefined) out[key] = Math.min(out[key], v);
  }
  return out;
}

/**
 * Reads and checks the header from the first bytes of a stream (the whole stream is not needed,
 * so a server can reject a stream before it has read the body). Every limit is checked here,
 * before anything is allocated for the latents.
 *
 * @example
 * const h = readHeader(firstBytes) // throws BitstreamError('TRUNCATED') if firstBytes is too short
 * if (h.totalLength > maxBody) reject()
 */
export function readHeader(bytes: Uint8Array, limits: Partial<Limits> = {}): BitstreamHeader {
  const lim = resolveLimits(limits);
  if (bytes.length === 0) throw new BitstreamError('EMPTY', 'The body is empty: send a latentsight bitstream.');
  for (let i = 0; i < MAGIC.length; i++) {
    if (i >= bytes.length) throw truncated(bytes.length, MAGIC.length);
    if (bytes[i] !== MAGIC[i]) {
      throw new BitstreamError('BAD_MAGIC', 'Not a latentsight bitstream: the first 4 bytes must be 89 4C 53 42.');
    }
  }
  if (bytes.length < 5) throw truncated(bytes.length, FIXED_HEADER_BYTES);
  const version = bytes[4];
  if (version !== FORMAT_VERSION) {
    throw new BitstreamError(
      'UNSUPPORTED_VERSION',
      `Bitstream format version ${version} is not supported; this reader understands version ${FORMAT_VERSION}.`,
    );
  }
  if (bytes.length < FIXED_HEADER_BYTES) throw truncated(bytes.length, FIXED_HEADER_BYTES);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const features = bytes[5];
  if ((features & ~KNOWN_FEATURES) !== 0) {
    throw new BitstreamError(
      'UNSUPPORTED_FEATURE',
      `The stream requires features 0x${features.toString(16)} that this reader does not implement.`,
    );
  }
  const totalLength = view.getUint32(6, true);
  const width = view.getUint16(10, true);
  const height = view.getUint16(12, true);
  const stride = bytes[14];
  const elementType = bytes[15];
  const channels = view.getUint16(16, true);
  const idLength = bytes[18];

  if (totalLength > lim.maxStreamBytes) {
    throw new BitstreamError('LIMIT_EXCEEDED', `The stream declares ${totalLength} bytes; the limit is ${lim.maxStreamBytes}.`);
  }
  if (totalLength < MIN_STREAM_BYTES) {
    throw new BitstreamError('INVALID_HEADER', `The declared length ${totalLength} is shorter than any valid stream.`);
  }
  if (width === 0 || height === 0) throw new BitstreamError('INVALID_HEADER', 'Image width and height must be at least 1.');
  if (width > lim.maxDimension || height > lim.maxDimension) {
    throw new BitstreamError('LIMIT_EXCEEDED', `Image ${width}x${height} exceeds the limit of ${lim.maxDimension} pixels a side.`);
  }
  if (stride === 0 || stride > 64 || (stride & (stride - 1)) !== 0) {
    throw new BitstreamError('INVALID_HEADER', `Stride ${stride} is not a power of two between 1 and 64.`);
  }
  if (elementType !== ElementType.int16) {
    throw new BitstreamError('INVALID_HEADER', `Latent element type ${elementType} is not defined (1 = int16).`);
  }
  if (channels === 0) throw new BitstreamError('INVALID_HEADER', 'The latents must have at least one channel.');
  if (channels > lim.maxChannels) {
    throw new BitstreamError('LIMIT_EXCEEDED', `${channels} latent channels exceed the limit of ${lim.maxChannels}.`);
  }
  const latentHeight = latentSide(height, stride);
  const latentWidth = latentSide(width, stride);
  const elements = channels * latentHeight * latentWidth;
  if (elements > lim.maxLatentElements) {
    throw new BitstreamError('LIMIT_EXCEEDED', `${elements} latent elements exceed the limit of ${lim.maxLatentElements}.`);
  }
  if (idLength === 0 || idLength > 32) {
    throw new BitstreamError('INVALID_HEADER', `Model id length ${idLength} is outside 1..32.`);
  }
  const headerLength = FIXED_HEADER_BYTES + idLength;
  if (bytes.length < headerLength) throw truncated(bytes.length, headerLength);
  let modelId = '';
  for (let i = FIXED_HEADER_BYTES; i < headerLength; i++) modelId += String.fromCharCode(bytes[i]);
  if (!MODEL_ID_PATTERN.test(modelId)) {
    throw new BitstreamError('INVALID_HEADER', 'The model id must be 1-32 characters of [a-z0-9._-].');
  }
  let tableHash = '';
  for (let i = 19; i < 19 + TABLE_HASH_BYTES; i++) tableHash += bytes[i].toString(16).padStart(2, '0');
  return {
    version,
    totalLength,
    width,
    height,
    stride,
    elementType: elementType as ElementType,
    channels,
    latentHeight,
    latentWidth,
    modelId,
    tableHash,
    headerLength,
  };
}

function truncated(have: number, need: number): BitstreamError {
  return new BitstreamError('TRUNCATED', `The stream ends after ${have} bytes; its header alone needs ${need}.`);
}
