/**
 * RFC 9457 problem details: the one error body shape of the public API.
 * Each `type` is a stable URI that names the problem; clients branch on it (or on `code`), never on
 * `title` or `detail`. The catalogue below is the only place that gives a problem its HTTP status.
 */

/** Base of every problem `type` URI; a suffix names the problem, e.g. `not-found`. */
export const PROBLEM_TYPE_BASE = 'https://latentsight.dev/problems/';

/** Media type of every error body (RFC 9457, section 3). */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/**
 * Every problem type the edge answers with: its HTTP status, the `code`s it comes with, its title and
 * when it happens. `openapi.ts` publishes this table; `docs/API.md` lists the same entries.
 */
export const PROBLEM_TYPES = {
  'invalid-query': {
    status: 400,
    title: 'Invalid Query',
    codes: ['UNKNOWN_TASK'],
    about: 'A query parameter is malformed or names an unknown task.',
  },
  'invalid-request': {
    status: 400,
    title: 'Invalid Request',
    codes: ['INVALID_JSON', 'INVALID_FIELD', 'INVALID_IDEMPOTENCY_KEY'],
    about: 'A JSON body or a header is malformed: a field is missing, of the wrong type or out of range.',
  },
  unauthorized: {
    status: 401,
    title: 'Unauthorized',
    codes: ['MISSING_API_KEY', 'MALFORMED_AUTHORIZATION', 'INVALID_API_KEY'],
    about: 'The Authorization header is missing, malformed or names no active API key.',
  },
  'insufficient-scope': {
    status: 403,
    title: 'Forbidden',
    codes: ['INSUFFICIENT_SCOPE'],
    about: 'The API key is valid but lacks the scope the route needs.',
  },
  'not-found': {
    status: 404,
    title: 'Not Found',
    codes: ['NOT_FOUND', 'JOB_NOT_FOUND', 'WEBHOOK_NOT_FOUND', 'REEVALUATION_NOT_FOUND'],
    about: "No route matches the method and path, or the job, webhook endpoint or re-evaluation named is not the key's tenant's.",
  },
  'content-too-large': {
    status: 413,
    title: 'Content Too Large',
    codes: ['BODY_TOO_LARGE', 'LIMIT_EXCEEDED', 'METADATA_TOO_LARGE'],
    about: "The body, or the image or latents its header declares, is larger than the edge's limits.",
  },
  'idempotency-key-in-use': {
    status: 409,
    title: 'Idempotency Key In Use',
    codes: ['IDEMPOTENCY_KEY_IN_USE'],
    about: 'A request with the same Idempotency-Key is still being processed; retry once it has finished.',
  },
  'webhook-limit-reached': {
    status: 409,
    title: 'Webhook Limit Reached',
    codes: ['WEBHOOK_LIMIT'],
    about: 'The tenant has as many webhook endpoints as it may have; delete one first.',
  },
  'unsupported-media-type': {
    status: 415,
    title: 'Unsupported Media Type',
    codes: ['UNSUPPORTED_MEDIA_TYPE', 'UNSUPPORTED_CONTENT_ENCODING'],
    about: 'The body must be application/vnd.latentsight+bitstream (or application/octet-stream), not content-encoded.',
  },
  'not-a-bitstream': {
    status: 422,
    title: 'Not a Bitstream',
    codes: ['EMPTY', 'BAD_MAGIC'],
    about: 'The body is empty or does not start with the bitstream magic.',
  },
  'unsupported-bitstream': {
    status: 422,
    title: 'Unsupported Bitstream',
    codes: ['UNSUPPORTED_VERSION', 'UNSUPPORTED_FEATURE', 'UNKNOWN_PART', 'UNSUPPORTED_CODER'],
    about: 'The stream uses a format version, feature, required part or entropy coder this edge does not implement.',
  },
  'corrupt-bitstream': {
    status: 422,
    title: 'Corrupt Bitstream',
    codes: ['TRUNCATED', 'TRAILING_DATA', 'CHECKSUM_MISMATCH', 'INVALID_HEADER', 'INVALID_PART', 'MISSING_PART', 'DUPLICATE_PART', 'CORRUPT_PAYLOAD', 'SHAPE_MISMATCH'],
    about: 'The stream is truncated, has trailing bytes, fails its checksum, or its header, parts or payload are malformed.',
  },
  'unknown-codec': {
    status: 422,
    title: 'Unknown Codec',
    codes: ['UNKNOWN_MODEL'],
    about: 'The stream names a codec model this edge does not serve; see GET /v1/models.',
  },
  'table-mismatch': {
    status: 422,
    title: 'Entropy Table Mismatch',
    codes: ['TABLE_MISMATCH'],
    about: "The stream was coded with other entropy tables than the served codec's; update the client's codec from GET /v1/models.",
  },
  'no-task-model': {
    status: 422,
    title: 'No Model for Task',
    codes: ['NO_TASK_MODEL'],
    about: "No model serves a requested task on the stream's codec; see GET /v1/models.",
  },
  'idempotency-key-reused': {
    status: 422,
    title: 'Idempotency Key Reused',
    codes: ['IDEMPOTENCY_KEY_REUSED'],
    about: 'The Idempotency-Key was already used with another request (method, path, query or body); use a new key.',
  },
  'invalid-callback-url': {
    status: 422,
    title: 'Invalid Callback URL',
    codes: ['CALLBACK_URL_INVALID', 'CALLBACK_URL_SCHEME', 'CALLBACK_URL_FORBIDDEN_HOST', 'CALLBACK_URL_NOT_REGISTERED'],
    about: 'A webhook or callback URL is malformed, not https, names a private, loopback or link-local host, or (for a job) is not a registered endpoint.',
  },
  'rate-limited': {
    status: 429,
    title: 'Too Many Requests',
    codes: ['RATE_LIMITED'],
    about: "The API key's per-minute limit is spent; retry after Retry-After seconds.",
  },
  'internal-error': {
    status: 500,
    title: 'Internal Server Error',
    codes: ['INTERNAL', 'INVALID_TABLE', 'ORIGIN_NOT_CONFIGURED'],
    about: 'The edge failed unexpectedly; retry later, and report it if it persists.',
  },
  'bad-gateway': {
    status: 502,
    title: 'Bad Gateway',
    codes: ['ORIGIN_BAD_RESPONSE', 'ORIGIN_REJECTED'],
    about: 'The inference origin answered with something the edge could not use.',
  },
  'origin-unavailable': {
    status: 503,
    title: 'Service Unavailable',
    codes: ['ORIGIN_UNAVAILABLE', 'ORIGIN_OVERLOADED', 'ORIGIN_TIMEOUT', 'CIRCUIT_OPEN'],
    about: 'The inference origin is down, at capacity, timing out or shed by the circuit breaker; retry after Retry-After seconds.',
  },
} as const satisfies Record<string, { status: number; codes: readonly string[]; title: string; about: string }>;

/** The name of a problem type: the suffix of its `type` URI. */
export type ProblemKind = keyof typeof PROBLEM_TYPES;

/** The members of a problem details object that this API always sets. */
export interface Problem {
  /** Stable URI naming the problem, `PROBLEM_TYPE_BASE` + a kebab-case name. */
  type: string;
  /** Short summary of the problem type; the same for every occurrence. */
  title: string;
  /** HTTP status code, repeated in the body for clients that lose the response line. */
  status: number;
  /** What was wrong with this request and what to do about it. */
  detail: string;
  /** The request path that the problem occurred on. */
  instance: string;
  /** Stable machine-readable code, finer than `type` (e.g. `CHECKSUM_MISMATCH`). */
  code?: string;
  /** The request's id, as in the `X-Request-Id` response header. */
  request_id?: string;
  /** Extension members (RFC 9457, section 3.2), e.g. `retry_after`. */
  [extension: string]: unknown;
}

/**
 * An error that becomes a problem response in the edge's error handler, which alone turns `kind`
 * into an HTTP status (from `PROBLEM_TYPES`).
 *
 * @example
 * throw new ProblemError('invalid-query', 'UNKNOWN_TASK', 'Unknown task "colour"; use classify or segment.');
 */
export class ProblemError extends Error {
  override readonly name = 'ProblemError';
  constructor(
    readonly kind: ProblemKind,
    readonly code: string,
    readonly detail: string,
    /** Response headers the problem needs (`Retry-After`, `WWW-Authenticate`) and extension members. */
    readonly extra: { headers?: Record<string, string>; members?: Record<string, unknown> } = {},
  ) {
    super(detail);
  }
}

/**
 * Builds the problem details object of a kind.
 *
 * @example
 * problemOf('not-found', 'NOT_FOUND', 'No route matches GET /nope.', '/nope', 'req-1')
 */
export function problemOf(kind: ProblemKind, code: string, detail: string, instance: string, requestId?: string): Problem {
  const { status, title } = PROBLEM_TYPES[kind];
  const problem: Problem = { type: `${PROBLEM_TYPE_BASE}${kind}`, title, status, detail, instance, code };
  if (requestId !== undefined) problem.request_id = requestId;
  return problem;
}

/**
 * Builds a problem+json response.
 *
 * @example
 * problemResponse(problemOf('not-found', 'NOT_FOUND', 'No route matches GET /nope.', '/nope'));
 */
export function problemResponse(problem: Problem, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(problem), {
    status: problem.status,
    headers: { ...headers, 'content-type': PROBLEM_CONTENT_TYPE },
  });
}
