/**
 * Request signatures between the edge and the origin: HMAC-SHA256 over the method, the path with its
 * query, a unix timestamp and the SHA-256 of the body bytes exactly as sent (compressed if compressed).
 * WebCrypto only, no platform API: the edge (workerd) imports this file to sign, the origin (Node) to
 * verify.
 *
 *   X-Latentsight-Timestamp: 1732590000
 *   X-Latentsight-Signature: v1=<hex HMAC-SHA256(secret, METHOD \n PATH?QUERY \n TIMESTAMP \n hex SHA-256(body))>
 */

export const TIMESTAMP_HEADER = 'X-Latentsight-Timestamp';
export const SIGNATURE_HEADER = 'X-Latentsight-Signature';
/** How far a timestamp may be from the verifier's clock, either way. */
export const MAX_CLOCK_SKEW_S = 300;

/** An HMAC-SHA256 key from `importSigningKey`. */
export type SigningKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

export interface SignedParts {
  /** HTTP method; upper-cased before signing. */
  readonly method: string;
  /** Path and query exactly as in the request line, e.g. `/v2/models/cls-test/infer?x=1`. */
  readonly pathWithQuery: string;
  /** Unix seconds, as the decimal string sent in the timestamp header. */
  readonly timestamp: string;
  /** The body as sent on the wire; empty for GET. */
  readonly body: Uint8Array;
}

export type VerifyResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

const encoder = new TextEncoder();

/**
 * Imports the shared secret as an HMAC-SHA256 key. Do it once, not per request.
 *
 * @example
 * const key = await importSigningKey(env.ORIGIN_HMAC_SECRET);
 */
export async function importSigningKey(secret: string): Promise<SigningKey> {
  return crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
}

/**
 * The string that is signed: four lines joined by '\n', no trailing newline.
 *
 * @example
 * await canonicalString({ method: 'GET', pathWithQuery: '/v2', timestamp: '1700000000', body: new Uint8Array() })
 * // 'GET\n/v2\n1700000000\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
 */
export async function canonicalString(parts: SignedParts): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', parts.body));
  return `${parts.method.toUpperCase()}\n${parts.pathWithQuery}\n${parts.timestamp}\n${toHex(digest)}`;
}

/**
 * The signature header's value for a request: `v1=<64 hex digits>`.
 *
 * @example
 * const signature = await signRequest(key, { method: 'POST', pathWithQuery: '/v2/models/cls-test/infer', timestamp, body });
 */
export async function signRequest(key: SigningKey, parts: SignedParts): Promise<string> {
  const mac = await crypto.subtle.sign('HMAC', key, encoder.encode(await canonicalString(parts)));
  return `v1=${toHex(new Uint8Array(mac))}`;
}

/**
 * Both headers for a request to `url`, stamped with the current time (or `nowS`).
 *
 * @example
 * const headers = await signatureHeaders(key, 'POST', new URL('http://origin/v2/models/cls-test/infer'), body);
 * await fetch(url, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body });
 */
export async function signatureHeaders(key: SigningKey, method: string, url: URL, body: Uint8Array, nowS = Math.floor(Date.now() / 1000)): Promise<Record<string, string>> {
  const timestamp = String(nowS);
  const signature = await signRequest(key, { method, pathWithQuery: url.pathname + url.search, timestamp, body });
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: signature };
}

/**
 * Checks a request's timestamp (within MAX_CLOCK_SKEW_S of `nowS`) and signature. The MAC comparison
 * is WebCrypto's `verify`, which is constant-time. `reason` is safe to send back: it never contains
 * the expected signature.
 *
 * @example
 * const result = await verifyRequest(key, { method, pathWithQuery, timestamp, body }, signatureHeader, nowS);
 * if (!result.ok) return c.json({ error: result.reason }, 401);
 */
export async function verifyRequest(key: SigningKey, parts: SignedParts, signature: string | null | undefined, nowS: number): Promise<VerifyResult> {
  const stale = checkTimestamp(parts.timestamp, nowS);
  if (stale) return { ok: false, reason: stale };
  const mac = parseSignature(signature);
  if (typeof mac === 'string') return { ok: false, reason: mac };
  const valid = await crypto.subtle.verify('HMAC', key, mac, encoder.encode(await canonicalString(parts)));
  return valid ? { ok: true } : { ok: false, reason: `${SIGNATURE_HEADER} does not match the request (method, path with query, timestamp and body digest are signed); check the shared secret` };
}

/**
 * Why a timestamp header is unusable, or undefined when it is fresh. Cheap: call it before reading
 * the body.
 *
 * @example
 * checkTimestamp('1700000000', 1700000400) // 'X-Latentsight-Timestamp is 400 s from the origin's clock; ...'
 */
export function checkTimestamp(timestamp: string | null | undefined, nowS: number): string | undefined {
  if (timestamp === null || timestamp === undefined || timestamp === '') return `missing ${TIMESTAMP_HEADER} header (unix seconds)`;
  if (!/^\d{1,12}$/.test(timestamp)) return `${TIMESTAMP_HEADER} must be unix seconds as a decimal integer`;
  const skew = Math.abs(nowS - Number(timestamp));
  if (skew > MAX_CLOCK_SKEW_S) return `${TIMESTAMP_HEADER} is ${skew} s from the origin's clock; the window is ${MAX_CLOCK_SKEW_S} s (sign each request when sending it, and keep clocks in sync)`;
  return undefined;
}

/**
 * The 32 MAC bytes of a `v1=<hex>` header, or why it is malformed.
 *
 * @example
 * parseSignature('v2=00') // "X-Latentsight-Signature must be 'v1=' followed by 64 hex digits"
 */
export function parseSignature(signature: string | null | undefined): Uint8Array | string {
  if (!signature) return `missing ${SIGNATURE_HEADER} header`;
  const m = /^v1=([0-9a-fA-F]{64})$/.exec(signature.trim());
  if (!m) return `${SIGNATURE_HEADER} must be 'v1=' followed by 64 hex digits`;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(m[1].slice(2 * i, 2 * i + 2), 16);
  return out;
}

function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += bytes[i].toString(16).padStart(2, '0');
  return s;
}
