/**
 * The one error class of the origin. Codes are stable: logs, metrics and tests use them, and the app's
 * error handler (`app.ts`) is the only place that turns one into an HTTP status.
 */
export type OriginErrorCode =
  /** Malformed request: bad JSON, a tensor with the wrong name, datatype, shape or byte count. */
  | 'BAD_REQUEST'
  /** Missing, malformed, stale or wrong HMAC signature. */
  | 'UNAUTHORIZED'
  /** No such model, version or route. */
  | 'NOT_FOUND'
  /** The body (as sent, or once decompressed) is over ORIGIN_MAX_BODY_BYTES. */
  | 'PAYLOAD_TOO_LARGE'
  /** A Content-Encoding other than gzip, deflate or identity. */
  | 'UNSUPPORTED_ENCODING'
  /** The model's queue is full: retry after a moment. */
  | 'OVERLOADED'
  /** The request's deadline passed while it waited in the queue (it never ran): safe to retry. */
  | 'QUEUE_TIMEOUT'
  /** The request's deadline passed while its batch ran; the result was dropped. */
  | 'DEADLINE_EXCEEDED'
  /** Shutting down, or the model's worker is gone. */
  | 'UNAVAILABLE'
  /** A bug or a runtime failure: the message is logged, never sent. */
  | 'INTERNAL'
  /** Startup: an environment variable is missing or invalid. */
  | 'INVALID_CONFIG'
  /** Startup: the manifest is unreadable or breaks its schema. */
  | 'INVALID_MANIFEST'
  /** Startup: a model file's sha256 or size differs from the manifest's. */
  | 'INTEGRITY_MISMATCH'
  /** Startup: onnxruntime could not load a model, or its I/O contradicts the manifest. */
  | 'MODEL_LOAD_FAILED';

/**
 * An origin failure with a stable `code`; `message` says what was wrong and what to do about it.
 * `retryAfterS` goes into a Retry-After header on 503s.
 *
 * @example
 * throw new OriginError('BAD_REQUEST', "input 'latents' has datatype FP32; model 'cls-test' expects INT16")
 */
export class OriginError extends Error {
  override readonly name = 'OriginError';
  constructor(
    readonly code: OriginErrorCode,
    message: string,
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

const STATUS: Partial<Record<OriginErrorCode, number>> = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_ENCODING: 415,
  OVERLOADED: 503,
  QUEUE_TIMEOUT: 503,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
};

/**
 * The HTTP status for an error code (500 for anything that is not the client's or the load's doing).
 *
 * @example
 * httpStatusOf('OVERLOADED') // 503
 */
export function httpStatusOf(code: OriginErrorCode): number {
  return STATUS[code] ?? 500;
}
