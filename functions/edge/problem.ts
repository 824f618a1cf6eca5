/**
 * RFC 9457 problem details: the one error body shape of the public API.
 * Each `type` is a stable URI that names the problem; clients branch on it, never on `title`.
 */

/** Base of every problem `type` URI; a suffix names the problem, e.g. `not-found`. */
export const PROBLEM_TYPE_BASE = 'https://latentsight.dev/problems/';

/** Media type of every error body (RFC 9457, section 3). */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

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
}

/**
 * Builds a problem+json response.
 *
 * @example
 * problemResponse({
 *   type: `${PROBLEM_TYPE_BASE}not-found`, title: 'Not Found', status: 404,
 *   detail: 'No route matches GET /nope.', instance: '/nope',
 * });
 */
export function problemResponse(problem: Problem): Response {
  return new Response(JSON.stringify(problem), {
    status: problem.status,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE },
  });
}
