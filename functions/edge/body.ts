/**
 * Reads a bitstream request body under a size limit, checking the header as soon as its bytes have
 * arrived: a body that is too large, not a bitstream, or for a codec the edge cannot decode is
 * refused before the rest of it is read.
 */
import { BitstreamError, type BitstreamHeader, type Limits, readHeader } from '../../src/bitstream/index.ts';
import { ProblemError } from './problem.ts';
import { concat, readLimited } from '../../src/protocol/body.ts';

/** Media types accepted for a bitstream body (parameters ignored). */
export const BITSTREAM_MEDIA_TYPES = ['application/vnd.latentsight+bitstream', 'application/octet-stream'];

/**
 * Throws a 415 `ProblemError` unless the request carries a bitstream media type, unencoded.
 *
 * @example
 * checkMediaType(c.req.raw.headers)
 */
export function checkMediaType(headers: Headers): void {
  const type = (headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (!BITSTREAM_MEDIA_TYPES.includes(type)) {
    throw new ProblemError(
      'unsupported-media-type',
      'UNSUPPORTED_MEDIA_TYPE',
      `Content-Type ${type ? `"${type}"` : '(none)'} is not accepted; send the bitstream as ${BITSTREAM_MEDIA_TYPES[0]}.`,
      { headers: { 'accept-post': BITSTREAM_MEDIA_TYPES.join(', ') } },
    );
  }
  const encoding = (headers.get('content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity') {
    throw new ProblemError(
      'unsupported-media-type',
      'UNSUPPORTED_CONTENT_ENCODING',
      `Content-Encoding "${encoding}" is not accepted: a bitstream is already entropy-coded, send it as is.`,
    );
  }
}

export interface ReadOptions {
  /** Largest accepted body in bytes. */
  maxBytes: number;
  /** Header limits (the edge's, stricter than the format's). */
  limits: Partial<Limits>;
  /** Called once with the header, before the rest of the body is read; throw to refuse the stream. */
  onHeader?: (header: BitstreamHeader) => void;
  /** Stops reading: the body is cancelled and the read fails. */
  signal?: AbortSignal;
}

/**
 * Reads the body of a bitstream request. Throws a 413 `ProblemError` as soon as more than
 * `maxBytes` have arrived (or Content-Length announces more), and the header's `BitstreamError`
 * as soon as the first bytes show it is not an acceptable stream; cancels the body in both cases.
 * The container is not checked beyond its header: `parseBitstream` does that next.
 *
 * @example
 * const { bytes, header } = await readBitstream(c.req.raw, { maxBytes: 4 << 20, limits: EDGE_LIMITS })
 */
export async function readBitstream(request: Request, options: ReadOptions): Promise<{ bytes: Uint8Array; header: BitstreamHeader }> {
  const { maxBytes } = options;
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) throw tooLarge(`Content-Length ${declared}`, maxBytes);
  if (!request.body) throw new BitstreamError('EMPTY', 'The body is empty: send a latentsight bitstream.');
  const limits = { ...options.limits, maxStreamBytes: Math.min(maxBytes, options.limits.maxStreamBytes ?? maxBytes) };
  const reader = request.body.getReader();
  const stop = () => void reader.cancel().catch(() => {});
  if (options.signal?.aborted) stop();
  options.signal?.addEventListener('abort', stop);
  // Bytes before the header parses; then one buffer of the declared length, filled in place.
  let pending: Uint8Array[] = [];
  let received = 0;
  let header: BitstreamHeader | undefined;
  let out: Uint8Array | undefined;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value.length === 0) continue;
      if (received + value.length > maxBytes) throw tooLarge(`The body (more than ${received + value.length} bytes)`, maxBytes);
      if (out) {
        if (received + value.length > out.length) throw trailing(out.length, received + value.length);
        out.set(value, received);
        received += value.length;
        continue;
      }
      pending.push(value);
      received += value.length;
      const head = concat(pending, received);
      try {
        header = readHeader(head, limits);
      } catch (error) {
        // Too few bytes to judge yet: read on. Any other verdict is final.
        if (error instanceof BitstreamError && error.code === 'TRUNCATED') continue;
        throw error;
      }
      options.onHeader?.(header);
      if (received > header.totalLength) throw trailing(header.totalLength, received);
      out = new Uint8Array(header.totalLength);
      out.set(head);
      pending = [];
    }
  } catch (error) {
    reader.cancel().catch(() => {});
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', stop);
  }
  if (options.signal?.aborted) throw new Error('reading the body was stopped');
  if (!out || !header) {
    // The whole body was too short for a header: let readHeader name the exact reason.
    readHeader(concat(pending, received), limits);
    throw new BitstreamError('TRUNCATED', `The stream ends after ${received} bytes.`);
  }
  if (received < out.length) {
    throw new BitstreamError('TRUNCATED', `The stream declares ${out.length} bytes but only ${received} arrived.`);
  }
  return { bytes: out, header };
}

function tooLarge(what: string, maxBytes: number): ProblemError {
  return new ProblemError('content-too-large', 'BODY_TOO_LARGE', `${what} exceeds the limit of ${maxBytes} bytes.`, {
    members: { max_bytes: maxBytes },
  });
}

function trailing(declared: number, received: number): BitstreamError {
  return new BitstreamError('TRAILING_DATA', `More than ${declared} bytes arrived (${received} so far) for a stream that declares ${declared}.`);
}

/**
 * Reads and drops what is left of a request body that a handler answered without reading (an early
 * 401, 415 or 422), up to `limit` bytes, then cancels the rest. Under `wrangler dev`, a response sent
 * over an unread body left the client's keep-alive connection broken, and the client's next request
 * failed; reading the body to its end (it is bounded by the edge's body limit) keeps the connection
 * usable. Bodies over the limit are cancelled: the client is told 413 or similar anyway.
 *
 * @example
 * await next(); await discardUnreadBody(c.req.raw, config.maxBodyBytes)
 */
export async function discardUnreadBody(request: Request, limit: number): Promise<void> {
  if (!request.body || request.bodyUsed) return;
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    await request.body.cancel().catch(() => {});
    return;
  }
  let reader: ReadableStreamDefaultReader<Uint8Array>;
  try {
    reader = request.body.getReader();
  } catch {
    return; // Locked: a handler is reading it.
  }
  try {
    let seen = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      seen += value.byteLength;
      if (seen > limit) {
        await reader.cancel();
        return;
      }
    }
  } catch {
    // The client went away: nothing to keep usable.
  } finally {
    reader.releaseLock();
  }
}

/**
 * The whole body, at most `maxBytes` of it: a 413 `ProblemError` (`BODY_TOO_LARGE`) from a larger
 * Content-Length before reading, or as soon as the bytes read pass the limit.
 *
 * @example
 * const bytes = await readBodyBounded(c.req.raw, 64 * 1024)
 */
export function readBodyBounded(request: Request, maxBytes: number): Promise<Uint8Array> {
  return readLimited(request, maxBytes, () => new ProblemError('content-too-large', 'BODY_TOO_LARGE', `The body is larger than this route's limit of ${maxBytes} bytes.`, { members: { max_bytes: maxBytes } }));
}
