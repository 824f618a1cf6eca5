// Every client error of POST /v1/analyze as RFC 9457 problem+json: auth, query, media type, size
// limits and each way a stream can be rejected, plus the mutated streams of the fuzzer's suite.
import { env } from 'cloudflare:workers';
import { describe, expect, it, vi } from 'vitest';
import { crc32c, writeBitstream } from '../../src/bitstream/index.ts';
import { hex, sha256 } from '../../functions/edge/digest.ts';
import { PROBLEM_TYPES } from '../../functions/edge/problem.ts';
import { loadRegistry } from '../../functions/edge/registry.ts';
import { mulberry32 } from '../support/synthetic.ts';
import { mutate } from '../fuzz/mutate.ts';
import { analyzeInit, seedKey, testEdge } from './support/edge.ts';
import { CHANNELS, CODEC_ID, STRIDE, testManifest, testStream, testTables } from './support/models.ts';

/** Asserts a problem+json response and returns its body. */
async function expectProblem(response: Response, status: number, type: string, code: string) {
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  const body = await response.json<Record<string, unknown>>();
  expect({ status: response.status, type: body.type, code: body.code }).toEqual({
    status,
    type: `https://latentsight.dev/problems/${type}`,
    code,
  });
  expect(body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String), instance: '/v1/analyze' });
  expect(body.request_id).toBe(response.headers.get('x-request-id'));
  return body;
}

/** Rewrites the checksum after an edit, so that the edit reaches the checks behind it. */
function reseal(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  new DataView(out.buffer).setUint32(out.length - 4, crc32c(out, 0, out.length - 4), true);
  return out;
}

async function streamWith(fields: Partial<{ width: number; height: number; channels: number; modelId: string; tableHash: string; latents: Uint8Array }>) {
  const { tableHash } = await testTables();
  return writeBitstream({
    width: 16,
    height: 16,
    stride: STRIDE,
    channels: CHANNELS,
    modelId: CODEC_ID,
    tableHash,
    latents: Uint8Array.of(1, 4, 0x0f, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0),
    ...fields,
  });
}

describe('POST /v1/analyze rejects', () => {
  const edge = testEdge();

  it('a request without an API key with 401 and a WWW-Authenticate challenge', async () => {
    const { bytes } = await testStream();
    const response = await edge.fetch('/v1/analyze', analyzeInit(undefined, bytes));
    await expectProblem(response, 401, 'unauthorized', 'MISSING_API_KEY');
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="latentsight"');
  });

  it('a malformed Authorization header with 401', async () => {
    const response = await edge.fetch('/v1/analyze', { method: 'POST', headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    await expectProblem(response, 401, 'unauthorized', 'MALFORMED_AUTHORIZATION');
  });

  it('an unknown or revoked key with 401 invalid_token', async () => {
    const key = await seedKey();
    await env.API_KEYS.delete(hex(await sha256(key)));
    const response = await edge.fetch('/v1/analyze', analyzeInit(key, null));
    await expectProblem(response, 401, 'unauthorized', 'INVALID_API_KEY');
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('a key without the analyze scope with 403', async () => {
    const key = await seedKey({ scopes: ['jobs'] });
    const response = await edge.fetch('/v1/analyze', analyzeInit(key, null));
    await expectProblem(response, 403, 'insufficient-scope', 'INSUFFICIENT_SCOPE');
    expect(response.headers.get('www-authenticate')).toContain('scope="analyze"');
  });

  it('a key whose stored record is malformed with a 500 that leaks nothing', async () => {
    const key = 'ls_test_malformed_record';
    await env.API_KEYS.put(hex(await sha256(key)), JSON.stringify({ tenant: 7 }));
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    const response = await edge.fetch('/v1/analyze', analyzeInit(key, null));
    const body = await expectProblem(response, 500, 'internal-error', 'INTERNAL');
    expect(body.detail).not.toContain('API_KEYS');
    const lines = logged.mock.calls.map((args) => JSON.parse(String(args[0])) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'error', msg: 'request failed', error: expect.stringContaining('API_KEYS record') }));
    logged.mockRestore();
  });

  it.each(['colour', '', 'classify,,segment', 'classify,detect'])('tasks=%j with 400', async (tasks) => {
    const key = await seedKey();
    const { bytes } = await testStream();
    const response = await edge.fetch(`/v1/analyze?tasks=${tasks}`, analyzeInit(key, bytes));
    await expectProblem(response, 400, 'invalid-query', 'UNKNOWN_TASK');
  });

  it('a body of another media type with 415 and Accept-Post', async () => {
    const key = await seedKey();
    const { bytes } = await testStream();
    const response = await edge.fetch('/v1/analyze', analyzeInit(key, bytes, { 'content-type': 'image/jpeg' }));
    await expectProblem(response, 415, 'unsupported-media-type', 'UNSUPPORTED_MEDIA_TYPE');
    expect(response.headers.get('accept-post')).toContain('application/vnd.latentsight+bitstream');
  });

  it('a content-encoded body with 415', async () => {
    const key = await seedKey();
    const { bytes } = await testStream();
    const response = await edge.fetch('/v1/analyze', analyzeInit(key, bytes, { 'content-encoding': 'gzip' }));
    await expectProblem(response, 415, 'unsupported-media-type', 'UNSUPPORTED_CONTENT_ENCODING');
  });

  it('a body whose Content-Length exceeds the limit with 413, before reading it', async () => {
    const small = testEdge({ config: { maxBodyBytes: 64 } });
    const key = await seedKey();
    const { bytes } = await testStream({ width: 64, height: 64 });
    expect(bytes.length).toBeGreaterThan(64);
    const response = await small.fetch('/v1/analyze', analyzeInit(key, bytes));
    const body = await expectProblem(response, 413, 'content-too-large', 'BODY_TOO_LARGE');
    expect(body.max_bytes).toBe(64);
  });

  it('an endless body whose header declares more than the limit with 413 after its first chunk', async () => {
    const small = testEdge({ config: { maxBodyBytes: 1000 } });
    const key = await seedKey();
    const head = (await streamWith({ latents: new Uint8Array(2000) })).slice(0, 64);
    let pulls = 0;
    const endless = new ReadableStream<Uint8Array>({ pull: (controller) => void (pulls++, controller.enqueue(pulls === 1 ? head : new Uint8Array(1024))) });
    const response = await small.fetch('/v1/analyze', analyzeInit(key, endless));
    await expectProblem(response, 413, 'content-too-large', 'LIMIT_EXCEEDED');
    expect(pulls).toBeLessThan(4);
  });

  it('an endless body that is not a bitstream with 422 after its first chunk', async () => {
    const key = await seedKey();
    let pulls = 0;
    const endless = new ReadableStream<Uint8Array>({ pull: (controller) => void (pulls++, controller.enqueue(new TextEncoder().encode('GIF89a...'))) });
    const response = await edge.fetch('/v1/analyze', analyzeInit(key, endless));
    await expectProblem(response, 422, 'not-a-bitstream', 'BAD_MAGIC');
    expect(pulls).toBeLessThan(4);
  });

  it('a stream that goes on past its declared length with 422 TRAILING_DATA, without reading on', async () => {
    const key = await seedKey();
    const { bytes } = await testStream();
    let pulls = 0;
    const endless = new ReadableStream<Uint8Array>({ pull: (controller) => void (pulls++, controller.enqueue(pulls === 1 ? bytes : new Uint8Array(512))) });
    const response = await edge.fetch('/v1/analyze', analyzeInit(key, endless));
    await expectProblem(response, 422, 'corrupt-bitstream', 'TRAILING_DATA');
    expect(pulls).toBeLessThan(4);
  });

  it('an image larger than the edge allows with 413, from the header alone', async () => {
    const key = await seedKey();
    const response = await edge.fetch('/v1/analyze', analyzeInit(key, await streamWith({ width: 4097 })));
    await expectProblem(response, 413, 'content-too-large', 'LIMIT_EXCEEDED');
  });

  it('a stream for a task no model serves on its codec with 422', async () => {
    const { manifest, files } = await testManifest();
    manifest.models = manifest.models.filter((m) => m.id !== 'seg-test');
    const { registry } = await loadRegistry(manifest, files);
    const noSegmenter = testEdge({ registry: async () => registry });
    const key = await seedKey();
    const { bytes } = await testStream();
    const response = await noSegmenter.fetch('/v1/analyze?tasks=segment', analyzeInit(key, bytes));
    const body = await expectProblem(response, 422, 'no-task-model', 'NO_TASK_MODEL');
    expect(body.detail).toContain('segment');
    expect(noSegmenter.origin!.requests).toEqual([]);
  });

  const cases: [string, () => Promise<Uint8Array>, number, string, string][] = [
    ['an empty body', async () => new Uint8Array(0), 422, 'not-a-bitstream', 'EMPTY'],
    ['a JPEG', async () => Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 0x10), 422, 'not-a-bitstream', 'BAD_MAGIC'],
    ['a stream cut inside its header', async () => (await testStream()).bytes.slice(0, 20), 422, 'corrupt-bitstream', 'TRUNCATED'],
    ['a stream cut inside its payload', async () => (await testStream()).bytes.slice(0, -3), 422, 'corrupt-bitstream', 'TRUNCATED'],
    ['a stream with a flipped payload bit', async () => flip((await testStream()).bytes, -8), 422, 'corrupt-bitstream', 'CHECKSUM_MISMATCH'],
    ['format version 2', async () => { const b = (await testStream()).bytes.slice(); b[4] = 2; return b; }, 422, 'unsupported-bitstream', 'UNSUPPORTED_VERSION'],
    ['a required feature bit', async () => { const b = (await testStream()).bytes.slice(); b[5] = 1; return b; }, 422, 'unsupported-bitstream', 'UNSUPPORTED_FEATURE'],
    ['stride 3', async () => { const b = (await testStream()).bytes.slice(); b[14] = 3; return b; }, 422, 'corrupt-bitstream', 'INVALID_HEADER'],
    ['an unknown codec', async () => streamWith({ modelId: 'ls-f99' }), 422, 'unknown-codec', 'UNKNOWN_MODEL'],
    ['other entropy tables', async () => streamWith({ tableHash: '0123456789abcdef' }), 422, 'table-mismatch', 'TABLE_MISMATCH'],
    ['channels the codec does not have', async () => streamWith({ channels: 3 }), 422, 'corrupt-bitstream', 'SHAPE_MISMATCH'],
    ['an unknown entropy coder', async () => streamWith({ latents: Uint8Array.of(9, 4, 0) }), 422, 'unsupported-bitstream', 'UNSUPPORTED_CODER'],
    ['a payload that does not decode', async () => streamWith({ latents: Uint8Array.of(1, 4, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16) }), 422, 'corrupt-bitstream', 'CORRUPT_PAYLOAD'],
    ['an unknown required part', async () => reseal(retag(await streamWith({}), 'LATN', 'LATX')), 422, 'unsupported-bitstream', 'UNKNOWN_PART'],
    ['no latent part', async () => reseal(retag(await streamWith({}), 'LATN', 'latx')), 422, 'corrupt-bitstream', 'MISSING_PART'],
  ];

  it.each(cases)('%s with %i %s (%s)', async (_, make, status, type, code) => {
    const key = await seedKey();
    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, await make()));
    await expectProblem(response, status, type, code);
  });

  it('every mutated stream of the fuzzer with a 4xx problem (or an answer, if it is still valid)', async () => {
    const key = await seedKey();
    const { bytes } = await testStream({ width: 64, height: 40, seed: 5 });
    const rand = mulberry32(2024);
    const seen = new Map<string, number>();
    for (let i = 0; i < 80; i++) {
      const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, mutate(bytes, rand)));
      if (response.status === 200) {
        await response.body?.cancel();
        seen.set('ok', (seen.get('ok') ?? 0) + 1);
        continue;
      }
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      const body = await response.json<{ type: string; code: string }>();
      expect(Object.keys(PROBLEM_TYPES).map((k) => `https://latentsight.dev/problems/${k}`)).toContain(body.type);
      seen.set(body.code, (seen.get(body.code) ?? 0) + 1);
    }
    // The suite must actually reach the checks behind the checksum, not just fail it.
    expect([...seen.keys()]).toEqual(expect.arrayContaining(['CHECKSUM_MISMATCH', 'TRUNCATED', 'CORRUPT_PAYLOAD']));
  });
});

function flip(bytes: Uint8Array, at: number): Uint8Array {
  const out = bytes.slice();
  out[(at + out.length) % out.length] ^= 0x10;
  return out;
}

function retag(bytes: Uint8Array, from: string, to: string): Uint8Array {
  const out = bytes.slice();
  const text = String.fromCharCode(...out);
  const at = text.indexOf(from);
  for (let i = 0; i < 4; i++) out[at + i] = to.charCodeAt(i);
  return out;
}
