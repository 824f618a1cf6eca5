// The edge -> origin request signature (src/protocol/signature.ts) inside workerd, against a vector
// computed independently with Python's hmac/hashlib:
//   python3 -c "import hashlib,hmac; bh=hashlib.sha256(b'hello').hexdigest();
//     print(hmac.new(b'test-origin-secret', f'POST\n/v2/models/cls-test/infer?x=1\n1700000000\n{bh}'.encode(), hashlib.sha256).hexdigest())"
import { describe, expect, it } from 'vitest';
import { importSigningKey, signRequest, signatureHeaders, verifyRequest } from '../../src/protocol/signature.ts';

const hello = new TextEncoder().encode('hello');

describe('the origin request signature inside workerd', () => {
  it('matches the independently computed vector', async () => {
    const key = await importSigningKey('test-origin-secret');
    expect(await signRequest(key, { method: 'post', pathWithQuery: '/v2/models/cls-test/infer?x=1', timestamp: '1700000000', body: hello })).toBe(
      'v1=c4234bfb46591cc203ca565f558a2b246e394f2c312225d99eb3bcf917a522b2',
    );
  });

  it('signs headers that the verifier accepts, and rejects them for another body', async () => {
    const key = await importSigningKey('shared-secret');
    const url = new URL('http://origin.test/v2/models/seg-test/infer');
    const body = crypto.getRandomValues(new Uint8Array(300));
    const headers = await signatureHeaders(key, 'POST', url, body, 1732590000);
    const parts = { method: 'POST', pathWithQuery: url.pathname, timestamp: headers['X-Latentsight-Timestamp'] };
    expect(await verifyRequest(key, { ...parts, body }, headers['X-Latentsight-Signature'], 1732590010)).toEqual({ ok: true });
    expect((await verifyRequest(key, { ...parts, body: hello }, headers['X-Latentsight-Signature'], 1732590010)).ok).toBe(false);
  });
});
