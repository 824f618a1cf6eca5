/**
 * What the origin's middleware leave on Hono's context for the handlers after them.
 */
import type { Context } from 'hono';
import { readBody } from './body.ts';

export interface OriginEnv {
  Variables: {
    /** From X-Request-Id, or generated; echoed back and in every log line. */
    requestId: string;
    /** The served model a request addressed, for metrics and logs (unset for other routes). */
    model?: string;
    /** The body as sent, once read (auth reads it to hash it; handlers reuse it). */
    rawBody?: Uint8Array;
    /** ORIGIN_MAX_BODY_BYTES, for `rawBody`. */
    maxBodyBytes: number;
  };
}

/**
 * The request's body exactly as sent, read once (with the size limit) and cached on the context.
 *
 * @example
 * const raw = await rawBody(c);
 */
export async function rawBody(c: Context<OriginEnv>): Promise<Uint8Array> {
  let body = c.get('rawBody');
  if (!body) {
    body = await readBody(c.req.raw, c.get('maxBodyBytes'));
    c.set('rawBody', body);
  }
  return body;
}
