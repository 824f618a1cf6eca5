/**
 * The HMAC signature of an edge -> origin request. The origin recomputes it over the bytes it
 * received and rejects a request whose signature or timestamp does not check out.
 *
 *   X-Latentsight-Timestamp: <unix seconds>
 *   X-Latentsight-Signature: v1=<hex HMAC-SHA256(secret, METHOD \n PATH_WITH_QUERY \n TIMESTAMP \n hex SHA-256(body))>
 *
 * The body is hashed exactly as sent (gzip-compressed here), so the origin checks it before inflating.
 */
import { hex, hmacSha256, sha256 } from './digest.ts';

export const TIMESTAMP_HEADER = 'x-latentsight-timestamp';
export const SIGNATURE_HEADER = 'x-latentsight-signature';

export interface SignInput {
  secret: string;
  method: string;
  /** Path and query of the request URL exactly as sent, e.g. `/v2/models/cls/infer`. */
  pathWithQuery: string;
  /** Unix time in seconds. */
  timestamp: number;
  /** Hex SHA-256 of the body as sent; `bodySha256` computes it. */
  bodyHash: string;
}

/**
 * Hex SHA-256 of a body, the last line of the signed string.
 *
 * @example
 * await bodySha256(new Uint8Array()) // 'e3b0c442...b855'
 */
export async function bodySha256(body: Uint8Array): Promise<string> {
  return hex(await sha256(body));
}

/**
 * The value of the X-Latentsight-Signature header.
 *
 * @example
 * await signature({ secret, method: 'POST', pathWithQuery: '/v2/models/cls/infer', timestamp: 1700000000, bodyHash })
 * // 'v1=5d1f...'
 */
export async function signature(input: SignInput): Promise<string> {
  const message = `${input.method.toUpperCase()}\n${input.pathWithQuery}\n${input.timestamp}\n${input.bodyHash}`;
  return `v1=${hex(await hmacSha256(input.secret, message))}`;
}
