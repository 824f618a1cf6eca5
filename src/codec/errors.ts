/**
 * Stable codes of the codec layer. Bitstream and entropy failures keep their own classes
 * (`BitstreamError`, `EntropyError`) and pass through unchanged.
 */
export type CodecErrorCode =
  /** No codec with that id in the manifest (or the manifest lists no codec). */
  | 'UNKNOWN_CODEC'
  /** The manifest is not valid JSON of a known schema, or an entry lacks a field. */
  | 'INVALID_MANIFEST'
  /** A model file could not be read. */
  | 'MODEL_UNAVAILABLE'
  /** A model file's SHA-256, or the table hash, differs from the manifest. */
  | 'MODEL_INTEGRITY'
  /** The model runtime failed to load or run a model, or returned an unexpected tensor. */
  | 'MODEL_RUNTIME'
  /** An image file could not be read or decoded. */
  | 'IMAGE_UNREADABLE'
  /** Pixel data whose size does not match its width and height, or dimensions out of range. */
  | 'INVALID_IMAGE'
  /** A bitstream whose stride or channel count differs from its codec's. */
  | 'CODEC_MISMATCH'
  /** An encode asked of a codec that is kept for decoding stored streams only (`decode_only`). */
  | 'CODEC_DECODE_ONLY';

/**
 * The one error class of `src/codec`. `message` says what was wrong and what to do.
 *
 * @example
 * try { await loadCodec(entry, source) } catch (e) { if (e instanceof CodecError && e.code === 'MODEL_INTEGRITY') refetch() }
 */
export class CodecError extends Error {
  override readonly name = 'CodecError';
  constructor(
    readonly code: CodecErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
