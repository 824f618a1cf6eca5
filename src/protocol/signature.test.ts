import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { MAX_CLOCK_SKEW_S, canonicalString, checkTimestamp, importSigningKey, parseSignature, signRequest, signatureHeaders, verifyRequest } from './signature.ts';

const SECRET = '0123456789abcdef0123456789abcdef';
const NOW = 1_700_000_000;
const utf8 = new TextEncoder();

// Computed with Python's hmac/hashlib, an implementation independent of WebCrypto:
//   hmac.new(secret, 'POST\n/v2/models/cls-test/infer?trace=1\n1700000000\n' + sha256(body).hexdigest(), sha256)
const VECTORS = [
  {
    parts: { method: 'POST', pathWithQuery: '/v2/models/cls-test/infer?trace=1', timestamp: '1700000000', body: utf8.encode('{"inputs":[]}') },
    canonical: 'POST\n/v2/models/cls-test/infer?trace=1\n1700000000\n62b512d8c76bbed3048fc81bd94bd2aeaab2de4d3b36edbed2f3d3dd8ff3e33e',
    signature: 'v1=9e9b3ef31a435d8860129a8077ef19b6cc875c9c3cf15b78ab0bc046c06fedeb',
  },
  {
    parts: { method: 'get', pathWithQuery: '/v2', timestamp: '1700000000', body: new Uint8Array() },
    canonical: 'GET\n/v2\n1700000000\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    signature: 'v1=7f74363ac9fe5db6144b0223b65c5b42dc23beefc067a1ddf654c2e6872bb732',
  },
];

describe('signRequest', () => {
  it.each(VECTORS)('matches an independent HMAC-SHA256 for $parts.method $parts.pathWithQuery', async ({ parts, canonical, signature }) => {
    const key = await importSigningKey(SECRET);
    expect(await canonicalString(parts)).toBe(canonical);
    expect(await signRequest(key, parts)).toBe(signature);
  });

  it('hashes the body as sent: a gzip body signs differently from the JSON inside it', async () => {
    const key = await importSigningKey(SECRET);
    const json = utf8.encode('{"inputs":[]}');
    const base = { method: 'POST', pathWithQuery: '/v2/models/m/infer', timestamp: String(NOW) };
    expect(await signRequest(key, { ...base, body: gzipSync(json) })).not.toBe(await signRequest(key, { ...base, body: json }));
  });

  it('signatureHeaders stamps the time and signs the URL path with its query', async () => {
    const key = await importSigningKey(SECRET);
    const headers = await signatureHeaders(key, 'POST', new URL('http://origin:8788/v2/models/cls-test/infer?trace=1'), VECTORS[0].parts.body, NOW);
    expect(headers).toEqual({ 'X-Latentsight-Timestamp': '1700000000', 'X-Latentsight-Signature': VECTORS[0].signature });
  });
});

describe('verifyRequest', () => {
  const parts = VECTORS[0].parts;

  it('accepts a correct signature anywhere in the 5-minute window, either side', async () => {
    const key = await importSigningKey(SECRET);
    for (const now of [NOW, NOW - MAX_CLOCK_SKEW_S, NOW + MAX_CLOCK_SKEW_S]) {
      expect(await verifyRequest(key, parts, VECTORS[0].signature, now)).toEqual({ ok: true });
    }
  });

  it('accepts upper-case hex and surrounding spaces', async () => {
    const key = await importSigningKey(SECRET);
    expect(await verifyRequest(key, parts, ` v1=${VECTORS[0].signature.slice(3).toUpperCase()} `, NOW)).toEqual({ ok: true });
  });

  it('rejects a timestamp just outside the window, saying by how much', async () => {
    const key = await importSigningKey(SECRET);
    const result = await verifyRequest(key, parts, VECTORS[0].signature, NOW + MAX_CLOCK_SKEW_S + 1);
    expect(result).toEqual({ ok: false, reason: expect.stringContaining('X-Latentsight-Timestamp is 301 s from the origin\'s clock; the window is 300 s') });
  });

  it.each([
    ['the method', { method: 'PUT' }],
    ['the path', { pathWithQuery: '/v2/models/seg-test/infer?trace=1' }],
    ['the query', { pathWithQuery: '/v2/models/cls-test/infer?trace=2' }],
    ['the timestamp', { timestamp: String(NOW + 1) }],
    ['one body byte', { body: utf8.encode('{"inputs":[1]}') }],
  ])('rejects a request whose %s changed after signing', async (_what, change) => {
    const key = await importSigningKey(SECRET);
    const result = await verifyRequest(key, { ...parts, ...change }, VECTORS[0].signature, NOW);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/^X-Latentsight-Signature does not match the request/);
  });

  it('rejects a signature made with another secret', async () => {
    const other = await importSigningKey(`${SECRET}x`);
    expect((await verifyRequest(other, parts, VECTORS[0].signature, NOW)).ok).toBe(false);
  });

  it('never puts the expected signature in its reason', async () => {
    const key = await importSigningKey(SECRET);
    const wrong = `v1=${'0'.repeat(64)}`;
    const result = await verifyRequest(key, parts, wrong, NOW);
    expect(JSON.stringify(result)).not.toContain(VECTORS[0].signature.slice(3));
  });
});

describe('header checks', () => {
  it.each([
    [undefined, 'missing X-Latentsight-Timestamp header (unix seconds)'],
    ['', 'missing X-Latentsight-Timestamp header (unix seconds)'],
    ['1700000000.5', 'X-Latentsight-Timestamp must be unix seconds as a decimal integer'],
    ['-5', 'X-Latentsight-Timestamp must be unix seconds as a decimal integer'],
    ['Tue, 14 Nov 2023', 'X-Latentsight-Timestamp must be unix seconds as a decimal integer'],
  ])('checkTimestamp(%j) says what is wrong', (value, reason) => {
    expect(checkTimestamp(value, NOW)).toBe(reason);
  });

  it.each([
    [undefined, 'missing X-Latentsight-Signature header'],
    ['9e9b3ef31a435d8860129a8077ef19b6cc875c9c3cf15b78ab0bc046c06fedeb', "X-Latentsight-Signature must be 'v1=' followed by 64 hex digits"],
    ['v2=9e9b3ef31a435d8860129a8077ef19b6cc875c9c3cf15b78ab0bc046c06fedeb', "X-Latentsight-Signature must be 'v1=' followed by 64 hex digits"],
    ['v1=9e9b', "X-Latentsight-Signature must be 'v1=' followed by 64 hex digits"],
    [`v1=${'g'.repeat(64)}`, "X-Latentsight-Signature must be 'v1=' followed by 64 hex digits"],
  ])('parseSignature(%j) says what is wrong', (value, reason) => {
    expect(parseSignature(value)).toBe(reason);
  });
});
