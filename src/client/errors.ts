/**
 * The one error class of the SDK. A refusal by the API carries the RFC 9457 problem+json body it
 * came with (`problem`), so callers branch on its stable `type` or `code`, never on the message.
 */

/** Problem details as the API sends them (functions/edge/problem.ts). */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  code?: string;
  request_id?: string;
  [extension: string]: unknown;
}

/**
 * Codes the SDK itself gives (the API's own codes, e.g. `RATE_LIMITED`, pass through unchanged).
 */
export type ClientErrorCode =
  /** The endpoint could not be reached (DNS, refused connection, reset). */
  | 'NETWORK_ERROR'
  /** The request was aborted by the caller's signal or timed out. */
  | 'ABORTED'
  /** The API answered with something that is not the documented JSON. */
  | 'INVALID_RESPONSE'
  /** The caller passed something the SDK cannot send (no codec for an image, bad options). */
  | 'INVALID_INPUT';

/**
 * An SDK failure. `status` is the HTTP status (0 when no response came), `code` the API's `code`
 * (or a `ClientErrorCode`), `problem` the full problem details when the API sent some.
 *
 * @example
 * try { await client.analyze(bytes) } catch (e) { if (e instanceof LatentsightError && e.code === 'RATE_LIMITED') wait(e.retryAfterSeconds) }
 */
export class LatentsightError extends Error {
  override readonly name = 'LatentsightError';
  constructor(
    readonly code: string,
    message: string,
    readonly details: {
      status?: number;
      problem?: ProblemDetails;
      retryAfterSeconds?: number;
      requestId?: string;
      /** How many requests were sent in all, retries included. */
      attempts?: number;
      cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
  }

  /** HTTP status of the answer, 0 when none came. */
  get status(): number {
    return this.details.status ?? 0;
  }

  /** The problem `type` URI, when the API sent problem details. */
  get type(): string | undefined {
    return this.details.problem?.type;
  }

  get problem(): ProblemDetails | undefined {
    return this.details.problem;
  }

  get retryAfterSeconds(): number | undefined {
    return this.details.retryAfterSeconds;
  }

  get requestId(): string | undefined {
    return this.details.requestId;
  }
}

/**
 * Reads a problem+json body if the response has one (any JSON object with `type` and `status`).
 *
 * @example
 * const problem = await readProblem(response) // undefined for a non-problem body
 */
export async function readProblem(response: Response): Promise<ProblemDetails | undefined> {
  const type = response.headers.get('content-type') ?? '';
  if (!/json/i.test(type)) {
    await response.body?.cancel();
    return undefined;
  }
  try {
    const body: unknown = await response.json();
    if (typeof body === 'object' && body !== null && typeof (body as ProblemDetails).type === 'string') return body as ProblemDetails;
  } catch {
    // Not JSON after all: the status alone describes the failure.
  }
  return undefined;
}
