// The edge -> origin request signature against a vector computed independently (Python hmac/hashlib):
//   python3 -c "import hashlib,hmac; bh=hashlib.sha256(b'hello').hexdigest();
//     print(hmac.new(b'test-origin-secret', f'POST\n/v2/models/cls-test/infer?x=1\n1700000000\n{bh}'.encode(), hashlib.sha256).hexdigest())"
import { describe, expect, it } from 'vitest';
import { bodySha256, signature } from '../../functions/edge/signature.ts';
import { importSigningKey, signRequest } from '../../functions/origin/signature.ts';

describe('the origin request signature', () => {
  it('matches the independently computed vector', async () => {
    const bodyHash = await bodySha256(new TextEncoder().encode('hello'));
    expect(bodyHash).toBe('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    expect(
      await signature({ secret: 'test-origin-secret', method: 'post', pathWithQuery: '/v2/models/cls-test/infer?x=1', timestamp: 1700000000, bodyHash }),
    ).toBe('v1=c4234bfb46591cc203ca565f558a2b246e394f2c312225d99eb3bcf917a522b2');
  });

  it('changes with every signed field', async () => {
    const base = { secret: 's', method: 'POST', pathWithQuery: '/a', timestamp: 1, bodyHash: 'h' };
    const reference = await signature(base);
    for (const change of [{ secret: 't' }, { method: 'PUT' }, { pathWithQuery: '/b' }, { timestamp: 2 }, { bodyHash: 'i' }]) {
      expect(await signature({ ...base, ...change })).not.toBe(reference);
    }
  });

  it("is the signature the origin's verifier computes (functions/origin/signature.ts)", async () => {
    const body = crypto.getRandomValues(new Uint8Array(300));
    const parts = { method: 'POST', pathWithQuery: '/v2/models/seg-test/infer', timestamp: 1732590000 };
    const ours = await signature({ secret: 'shared-secret', ...parts, bodyHash: await bodySha256(body) });
    const theirs = await signRequest(await importSigningKey('shared-secret'), { ...parts, timestamp: String(parts.timestamp), body });
    expect(ours).toBe(theirs);
  });
});
