/**
 * HMAC request authentication (see `signature.ts` for what is signed). The cheap checks (headers
 * present, timestamp fresh) run before the body is read; the MAC is verified over the raw body.
 */
import type { MiddlewareHandler } from 'hono';
import { type OriginEnv, rawBody } from './context.ts';
import { OriginError } from './errors.ts';
import { SIGNATURE_HEADER, type SigningKey, TIMESTAMP_HEADER, checkTimestamp, parseSignature, verifyRequest } from '../../src/protocol/signature.ts';

export interface AuthOptions {
  /** The shared secret's key; undefined only in ORIGIN_INSECURE_DEV mode, which skips the check. */
  readonly key: SigningKey | undefined;
  /** Unix seconds; a test can fix the clock. */
  readonly nowS?: () => number;
}

/**
 * Middleware that rejects unsigned, stale or wrongly signed requests with 401 UNAUTHORIZED.
 *
 * @example
 * app.use('/v2/models/*', signatureAuth({ key: await importSigningKey(secret) }));
 */
export function signatureAuth(options: AuthOptions): MiddlewareHandler<OriginEnv> {
  const nowS = options.nowS ?? (() => Math.floor(Date.now() / 1000));
  return async (c, next) => {
    const key = options.key;
    if (!key) return next();
    const timestamp = c.req.header(TIMESTAMP_HEADER);
    const signature = c.req.header(SIGNATURE_HEADER);
    const now = nowS();
    const stale = checkTimestamp(timestamp, now);
    if (stale) throw new OriginError('UNAUTHORIZED', stale);
    const mac = parseSignature(signature);
    if (typeof mac === 'string') throw new OriginError('UNAUTHORIZED', mac);
    const url = new URL(c.req.url);
    const result = await verifyRequest(key, { method: c.req.method, pathWithQuery: url.pathname + url.search, timestamp: timestamp!, body: await rawBody(c) }, signature, now);
    if (!result.ok) throw new OriginError('UNAUTHORIZED', result.reason);
    return next();
  };
}
