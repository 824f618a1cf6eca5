/**
 * Request bodies: read with a size limit (before and while reading), and decompressed from gzip or
 * deflate with the same limit on the output, so neither a large upload nor a zip bomb gets through.
 */
import { promisify } from 'node:util';
import { constants, gunzip, gzip, inflate, inflateRaw } from 'node:zlib';
import { OriginError } from './errors.ts';
import { readLimited } from '../../src/protocol/body.ts';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);
const inflateRawAsync = promisify(inflateRaw);
const gzipAsync = promisify(gzip);

/** Responses smaller than this go out uncompressed: gzip would not pay for its header and CPU. */
export const COMPRESS_MIN_BYTES = 1024;

const tooLarge = (what: string, max: number) => new OriginError('PAYLOAD_TOO_LARGE', `${what} is over ${max} bytes (ORIGIN_MAX_BODY_BYTES); split the request`);

/**
 * The raw body bytes, as sent. Refuses a Content-Length over `maxBytes` before reading, and stops
 * reading as soon as a body without one goes over.
 *
 * @example
 * const raw = await readBody(c.req.raw, 64 << 20);
 */
export function readBody(request: Request, maxBytes: number): Promise<Uint8Array> {
  return readLimited(request, maxBytes, (declared) => tooLarge(declared === undefined ? 'the body' : `the body (Content-Length ${declared})`, maxBytes));
}

/**
 * Undoes `Content-Encoding` (gzip, deflate, identity or none). Deflate is the zlib format (RFC 9110);
 * raw deflate, which some clients send instead, is accepted too.
 *
 * @example
 * const body = await decodeContentEncoding(raw, c.req.header('content-encoding'), 64 << 20);
 */
export async function decodeContentEncoding(raw: Uint8Array, encoding: string | null | undefined, maxBytes: number): Promise<Uint8Array> {
  const name = (encoding ?? '').trim().toLowerCase();
  if (name === '' || name === 'identity') return raw;
  const options = { maxOutputLength: maxBytes };
  try {
    if (name === 'gzip' || name === 'x-gzip') return await gunzipAsync(raw, options);
    if (name === 'deflate') {
      try {
        return await inflateAsync(raw, options);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'Z_DATA_ERROR') throw e;
        return await inflateRawAsync(raw, options);
      }
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(`the ${name}-decoded body`, maxBytes);
    throw new OriginError('BAD_REQUEST', `the body is not valid ${name} data (${(e as Error).message})`);
  }
  throw new OriginError('UNSUPPORTED_ENCODING', `Content-Encoding '${encoding}' is not supported; send gzip, deflate or an uncompressed body`);
}

/**
 * Gzips a response body when the client accepts gzip and the body is worth it (segmentation masks
 * shrink ~50x); level 1, since the origin's CPU is better spent on inference. Returns the body to send
 * and its Content-Encoding, if any.
 *
 * @example
 * const { body, encoding } = await maybeGzip(bytes, c.req.header('accept-encoding'));
 */
export async function maybeGzip(body: Uint8Array, acceptEncoding: string | null | undefined): Promise<{ body: Uint8Array; encoding?: 'gzip' }> {
  if (body.byteLength < COMPRESS_MIN_BYTES || !acceptsGzip(acceptEncoding)) return { body };
  return { body: await gzipAsync(body, { level: constants.Z_BEST_SPEED }), encoding: 'gzip' };
}

/**
 * Whether an Accept-Encoding header lists gzip (or *) without q=0.
 *
 * @example
 * acceptsGzip('deflate, gzip;q=0.5') // true;  acceptsGzip('gzip;q=0') // false
 */
export function acceptsGzip(header: string | null | undefined): boolean {
  if (!header) return false;
  return header.split(',').some((part) => {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (name.trim() !== 'gzip' && name.trim() !== '*') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}
