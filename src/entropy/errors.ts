/** Stable codes of the entropy layer. A corrupt payload is the client's fault (HTTP 422 at the edge). */
export type EntropyErrorCode =
  | 'INVALID_TABLE'
  | 'SHAPE_MISMATCH'
  | 'UNSUPPORTED_CODER'
  | 'CORRUPT_PAYLOAD';

/**
 * The one error class of `src/entropy`.
 *
 * @example
 * try { decodeLatents(body, shape, tables) } catch (e) { if (e instanceof EntropyError) return reject(e.code) }
 */
export class EntropyError extends Error {
  override readonly name = 'EntropyError';
  constructor(
    readonly code: EntropyErrorCode,
    message: string,
  ) {
    super(message);
  }
}
