/**
 * Maps the typed errors of `src/bitstream` and `src/entropy` to problem kinds. The layers' codes
 * travel unchanged in the problem's `code`, so a client sees exactly what the reader rejected.
 */
import { BitstreamError, type BitstreamErrorCode } from '../../src/bitstream/index.ts';
import { EntropyError, type EntropyErrorCode } from '../../src/entropy/index.ts';
import { ProblemError, type ProblemKind } from './problem.ts';

/** Every code of both layers, each with its problem kind (a missing code fails type-checking). */
export const STREAM_PROBLEMS: Record<BitstreamErrorCode | EntropyErrorCode, ProblemKind> = {
  EMPTY: 'not-a-bitstream',
  BAD_MAGIC: 'not-a-bitstream',
  UNSUPPORTED_VERSION: 'unsupported-bitstream',
  UNSUPPORTED_FEATURE: 'unsupported-bitstream',
  UNKNOWN_PART: 'unsupported-bitstream',
  UNSUPPORTED_CODER: 'unsupported-bitstream',
  TRUNCATED: 'corrupt-bitstream',
  TRAILING_DATA: 'corrupt-bitstream',
  CHECKSUM_MISMATCH: 'corrupt-bitstream',
  INVALID_HEADER: 'corrupt-bitstream',
  INVALID_PART: 'corrupt-bitstream',
  MISSING_PART: 'corrupt-bitstream',
  DUPLICATE_PART: 'corrupt-bitstream',
  CORRUPT_PAYLOAD: 'corrupt-bitstream',
  SHAPE_MISMATCH: 'corrupt-bitstream',
  // Image or latents larger than the edge's limits: the request is too large, not malformed.
  LIMIT_EXCEEDED: 'content-too-large',
  UNKNOWN_MODEL: 'unknown-codec',
  TABLE_MISMATCH: 'table-mismatch',
  // The codec's own tables failed to load: the edge's fault, never the client's.
  INVALID_TABLE: 'internal-error',
};

/**
 * Turns a `BitstreamError` or `EntropyError` into a `ProblemError`; returns undefined for anything else.
 *
 * @example
 * try { parseBitstream(bytes) } catch (e) { throw streamProblem(e) ?? e }
 */
export function streamProblem(error: unknown): ProblemError | undefined {
  if (error instanceof BitstreamError || error instanceof EntropyError) {
    return new ProblemError(STREAM_PROBLEMS[error.code], error.code, error.message);
  }
  return undefined;
}
