import { deflateRawSync, deflateSync, gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { COMPRESS_MIN_BYTES, acceptsGzip, decodeContentEncoding, maybeGzip, readBody } from './body.ts';
import { OriginError } from './errors.ts';

const payload = new TextEncoder().encode('{"inputs":[]}'.repeat(50));

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(OriginError);
    return (e as OriginError).code;
  }
  throw new Error('expected an OriginError');
}

describe('decodeContentEncoding', () => {
  it.each([
    ['gzip', gzipSync(payload)],
    ['x-gzip', gzipSync(payload)],
    ['deflate', deflateSync(payload)],
    ['deflate', deflateRawSync(payload)],
    ['identity', payload],
    [undefined, payload],
  ])('decodes %s', async (encoding, body) => {
    expect(new Uint8Array(await decodeContentEncoding(new Uint8Array(body), encoding, 1 << 20))).toEqual(payload);
  });

  it('stops a zip bomb at the limit: PAYLOAD_TOO_LARGE', async () => {
    const bomb = gzipSync(new Uint8Array(10 << 20));
    expect(bomb.length).toBeLessThan(20_000);
    expect(await code(decodeContentEncoding(bomb, 'gzip', 1 << 20))).toBe('PAYLOAD_TOO_LARGE');
  });

  it('rejects corrupt data as BAD_REQUEST and unknown encodings as UNSUPPORTED_ENCODING', async () => {
    expect(await code(decodeContentEncoding(payload, 'gzip', 1 << 20))).toBe('BAD_REQUEST');
    expect(await code(decodeContentEncoding(payload, 'br', 1 << 20))).toBe('UNSUPPORTED_ENCODING');
    expect(await code(decodeContentEncoding(payload, 'gzip, gzip', 1 << 20))).toBe('UNSUPPORTED_ENCODING');
  });
});

describe('readBody', () => {
  it('reads a streamed body whole', async () => {
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(payload.subarray(0, 10));
        c.enqueue(payload.subarray(10));
        c.close();
      },
    });
    const req = new Request('http://x/', { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    expect(await readBody(req, 1 << 20)).toEqual(payload);
  });

  it('refuses an oversized Content-Length before reading, and an oversized stream while reading', async () => {
    const declared = new Request('http://x/', { method: 'POST', body: payload, headers: { 'content-length': String(payload.length) } });
    expect(await code(readBody(declared, 100))).toBe('PAYLOAD_TOO_LARGE');
    const streamed = new Request('http://x/', { method: 'POST', body: new Blob([payload]).stream(), duplex: 'half' } as RequestInit);
    expect(await code(readBody(streamed, 100))).toBe('PAYLOAD_TOO_LARGE');
  });

  it('gives an empty body for GET', async () => {
    expect((await readBody(new Request('http://x/'), 10)).length).toBe(0);
  });
});

describe('maybeGzip', () => {
  it('compresses large bodies for clients that accept gzip, and nothing else', async () => {
    const big = new Uint8Array(COMPRESS_MIN_BYTES * 4);
    const sent = await maybeGzip(big, 'gzip, deflate, br');
    expect(sent.encoding).toBe('gzip');
    expect(new Uint8Array(gunzipSync(sent.body))).toEqual(big);
    expect((await maybeGzip(big, 'identity')).encoding).toBeUndefined();
    expect((await maybeGzip(big, undefined)).encoding).toBeUndefined();
    expect((await maybeGzip(new Uint8Array(10), 'gzip')).encoding).toBeUndefined();
  });

  it.each([
    ['gzip', true],
    ['deflate, gzip;q=0.5', true],
    ['*', true],
    ['gzip;q=0', false],
    ['br', false],
    ['', false],
  ])('acceptsGzip(%j) is %s', (header, expected) => {
    expect(acceptsGzip(header)).toBe(expected);
  });
});
