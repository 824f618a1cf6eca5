/**
 * Every way a bitstream can be rejected by the container layer. Codes are stable: the edge maps
 * them to problem+json types, clients switch on them, and tests assert them.
 */
export type BitstreamErrorCode =
  | 'EMPTY'
  | 'BAD_MAGIC'
  | 'UNSUPPORTED_VERSION'
  | 'UNSUPPORTED_FEATURE'
  | 'TRUNCATED'
  | 'TRAILING_DATA'
  | 'CHECKSUM_MISMATCH'
  | 'LIMIT_EXCEEDED'
  | 'INVALID_HEADER'
  | 'UNKNOWN_PART'
  | 'MISSING_PART'
  | 'DUPLICATE_PART'
  | 'UNKNOWN_MODEL'
  | 'INVALID_PART'
  | 'TABLE_MISMATCH';

/**
 * The one error class of `src/bitstream`. `message` says what was wrong and what to do.
 *
 * @example
 * try { parseBitstream(bytes) } catch (e) { if (e instanceof BitstreamError && e.code === 'TRUNCATED') retry() }
 */
export class BitstreamError extends Error {
  override readonly name = 'BitstreamError';
  constructor(
    readonly code: BitstreamErrorCode,
    message: string,
  ) {
    super(message);
  }
}
