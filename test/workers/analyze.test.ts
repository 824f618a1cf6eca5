// POST /v1/analyze end to end inside workerd: real KV, R2 and rate limiter, the test codec and a
// fake origin that records what the edge sends it.
import { env } from 'cloudflare:workers';
import { describe, expect, it, vi } from 'vitest';
import { bitstreamKey } from '../../functions/edge/archive.ts';
import { hex, sha256 } from '../../functions/edge/digest.ts';
import { importSigningKey, verifyRequest } from '../../src/protocol/signature.ts';
import { CLASSIFIER_LABELS, SEGMENTER_LABELS, testStream } from './support/models.ts';
import { ORIGIN_SECRET } from './support/origin.ts';
import { readConfig } from '../../functions/edge/config.ts';
import { analyzeInit, seedKey, testEdge, testEnv } from './support/edge.ts';

describe('POST /v1/analyze', () => {
  it('decodes the stream, sends its latents to the origin byte-exact and answers both tasks', async () => {
    const edge = testEdge();
    const key = await seedKey();
    const { bytes, latents, shape } = await testStream({ width: 37, height: 21, seed: 101 });

    const response = await edge.fetch('/v1/analyze?tasks=classify,segment', analyzeInit(key, bytes));

    expect(response.status).toBe(200);
    const body = await response.json<any>();
    const requests = edge.origin!.requests;
    expect(requests.map((r) => r.url.pathname).sort()).toEqual(['/v2/models/cls-test/infer', '/v2/models/seg-test/infer']);
    for (const r of requests) {
      expect(r.header.id).toBe(body.request_id);
      expect(r.header.inputs).toEqual([
        { name: 'latents', datatype: 'INT16', shape: [1, shape.channels, shape.height, shape.width], parameters: { binary_data_size: 2 * latents.length } },
      ]);
      expect(r.tensor).toEqual(new Uint8Array(latents.buffer));
      expect(r.headers.get('content-encoding')).toBe('gzip');
      expect(r.headers.get('x-request-id')).toBe(body.request_id);
    }
    expect(requests.find((r) => r.url.pathname.includes('cls'))!.header.outputs.map((o) => o.name)).toEqual(['scores', 'classes']);
    expect(requests.find((r) => r.url.pathname.includes('seg'))!.header.outputs.map((o) => o.name)).toEqual(['mask']);

    expect(body).toMatchObject({
      codec: 'fixture-c4',
      bpp: Number(((8 * bytes.length) / (37 * 21)).toFixed(4)),
      image: { width: 37, height: 21 },
      models: { codec: { id: 'fixture-c4', version: '0.1.0' }, classify: { id: 'cls-test', version: '1.0.0' }, segment: { id: 'seg-test', version: '1.0.0' } },
      cache: 'miss',
    });
    expect(body.results.classify.top).toEqual([
      { label: CLASSIFIER_LABELS[2].name, id: 'c2', score: 0.6 },
      { label: CLASSIFIER_LABELS[0].name, id: 'c0', score: 0.2 },
      { label: CLASSIFIER_LABELS[5].name, id: 'c5', score: 0.1 },
      { label: CLASSIFIER_LABELS[1].name, id: 'c1', score: 0.05 },
      { label: CLASSIFIER_LABELS[3].name, id: 'c3', score: 0.03 },
    ]);
    const segment = body.results.segment;
    expect(segment).toMatchObject({ width: 37, height: 21 });
    expect(segment.classes.map((c: { id: string }) => c.id)).toEqual(SEGMENTER_LABELS.map((l) => l.id));
    expect(Object.values(segment.fractions as Record<string, number>).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(atob(segment.mask).slice(1, 4)).toBe('PNG');
    expect(Object.keys(body.timings_ms)).toEqual(expect.arrayContaining(['auth', 'ratelimit', 'read', 'parse', 'cache', 'decode', 'origin', 'total']));
    expect(response.headers.get('server-timing')).toMatch(/(^|, )origin;dur=[\d.]+.*cache;desc="miss"/);
    expect(response.headers.get('x-request-id')).toBe(body.request_id);
    expect(response.headers.get('ratelimit-limit')).toBe('1000');
  });

  it('signs each origin request over the gzip body it sends', async () => {
    const edge = testEdge();
    const key = await seedKey();
    const { bytes } = await testStream({ seed: 102 });

    expect((await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes))).status).toBe(200);

    const [request] = edge.origin!.requests;
    const timestamp = request.headers.get('x-latentsight-timestamp')!;
    expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(60);
    // The origin's own verifier accepts it (the scheme itself is pinned by a Python vector in signature.test.ts).
    const parts = { method: 'POST', pathWithQuery: '/v2/models/cls-test/infer', timestamp, body: request.sent };
    const verdict = await verifyRequest(await importSigningKey(ORIGIN_SECRET), parts, request.headers.get('x-latentsight-signature'), Date.now() / 1000);
    expect(verdict).toEqual({ ok: true });
  });

  it('answers a repeated stream from the KV cache without calling the origin or decoding', async () => {
    const edge = testEdge();
    const key = await seedKey();
    const { bytes } = await testStream({ seed: 103 });

    const first = await (await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes))).json<any>();
    const second = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes));
    const body = await second.json<any>();

    expect(first.cache).toBe('miss');
    expect(body.cache).toBe('hit');
    expect(body.results).toEqual(first.results);
    expect(body.request_id).not.toBe(first.request_id);
    expect(body.timings_ms.decode).toBeUndefined();
    expect(second.headers.get('server-timing')).toContain('cache;desc="hit"');
    expect(edge.origin!.requests).toHaveLength(1);
    const digest = hex(await sha256(bytes));
    expect(await env.RESULTS.get(`cls-test@1.0.0:${digest}`, 'json')).toEqual({ v: 1, results: first.results });
    // Stored with the default TTL of 7 days.
    const { keys } = await env.RESULTS.list({ prefix: `cls-test@1.0.0:${digest}` });
    expect(keys[0].expiration! - Date.now() / 1000).toBeGreaterThan(7 * 24 * 3600 - 60);
    expect(keys[0].expiration! - Date.now() / 1000).toBeLessThanOrEqual(7 * 24 * 3600);
  });

  it('keys the cache by the set of models, so another task set misses', async () => {
    const edge = testEdge();
    const key = await seedKey();
    const { bytes } = await testStream({ seed: 104 });

    await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes));
    const both = await (await edge.fetch('/v1/analyze?tasks=segment,classify', analyzeInit(key, bytes))).json<any>();

    expect(both.cache).toBe('miss');
    const digest = hex(await sha256(bytes));
    expect(await env.RESULTS.get(`cls-test@1.0.0,seg-test@1.0.0:${digest}`)).not.toBeNull();
  });

  it('runs every task the codec has a model for when tasks is absent', async () => {
    const edge = testEdge();
    const key = await seedKey();
    const { bytes } = await testStream({ seed: 105 });

    const body = await (await edge.fetch('/v1/analyze', analyzeInit(key, bytes))).json<any>();

    expect(Object.keys(body.results).sort()).toEqual(['classify', 'segment']);
  });

  it('stores the bitstream in R2 when the key asks for it, once per tenant and content', async () => {
    const edge = testEdge();
    const key = await seedKey({ tenant: 'keeper/inc', store_bitstreams: true });
    const { bytes } = await testStream({ width: 40, height: 24, seed: 106 });
    const digest = hex(await sha256(bytes));

    const body = await (await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes))).json<any>();
    await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes));

    const object = await env.BITSTREAMS.get(bitstreamKey('keeper/inc', digest));
    expect(object).not.toBeNull();
    expect(new Uint8Array(await object!.arrayBuffer())).toEqual(bytes);
    expect(object!.httpMetadata?.contentType).toBe('application/vnd.latentsight+bitstream');
    expect(object!.customMetadata).toMatchObject({ codec: 'fixture-c4', width: '40', height: '24', first_request_id: body.request_id });
    expect(bitstreamKey('keeper/inc', digest)).toBe(`bitstreams/keeper%2Finc/${digest}.lsb`);
  });

  it('does not store the bitstream when the key does not ask for it', async () => {
    const edge = testEdge();
    const key = await seedKey({ tenant: 'no-store' });
    const { bytes } = await testStream({ seed: 107 });

    await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes));

    expect((await env.BITSTREAMS.list({ prefix: 'bitstreams/no-store/' })).objects).toEqual([]);
  });

  it('accepts application/octet-stream and a body that arrives in many small chunks', async () => {
    const edge = testEdge();
    const key = await seedKey();
    const { bytes } = await testStream({ seed: 108 });
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 7) controller.enqueue(bytes.slice(i, i + 7));
        controller.close();
      },
    });

    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, body, { 'content-type': 'application/octet-stream' }));

    expect(response.status).toBe(200);
    expect(new Uint8Array(edge.origin!.requests[0].tensor).length).toBeGreaterThan(0);
  });

  it('keeps a well-formed X-Request-Id from the client', async () => {
    const edge = testEdge();
    const key = await seedKey();
    const { bytes } = await testStream({ seed: 109 });

    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes, { 'x-request-id': 'client-trace-0001' }));

    expect((await response.json<any>()).request_id).toBe('client-trace-0001');
    expect(edge.origin!.requests[0].headers.get('x-request-id')).toBe('client-trace-0001');
  });
});

describe('CORS on /v1', () => {
  it('answers a preflight for POST /v1/analyze with the headers a browser needs', async () => {
    const edge = testEdge();
    const response = await edge.fetch('/v1/analyze', {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });

    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(response.headers.get('access-control-allow-headers')).toContain('authorization');
    expect(response.headers.get('access-control-allow-methods')).toContain('POST');
  });

  it('lets a page read an answer and its headers, errors included', async () => {
    const edge = testEdge();
    const key = await seedKey();
    const { bytes } = await testStream({ seed: 110 });

    for (const response of [
      await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes, { origin: 'https://app.example' })),
      await edge.fetch('/v1/analyze', analyzeInit(undefined, bytes, { origin: 'https://app.example' })),
    ]) {
      expect(response.headers.get('access-control-allow-origin')).toBe('*');
      expect(response.headers.get('access-control-expose-headers')).toContain('server-timing');
      expect(response.headers.get('timing-allow-origin')).toBe('*');
      await response.body?.cancel();
    }
  });
});

describe('readConfig', () => {
  it('takes the TTL, body limit and timeout from the vars, and derives the deadline and stream limit', () => {
    const config = readConfig({ ...testEnv, RESULT_TTL_SECONDS: '120', MAX_BODY_BYTES: '1000', ORIGIN_TIMEOUT_MS: '250', ORIGIN_URL: 'http://o.test/base/' });
    expect(config).toMatchObject({ resultTtlSeconds: 120, maxBodyBytes: 1000, originTimeoutMs: 250, originDeadlineMs: 750, originUrl: 'http://o.test/base' });
    expect(config.limits.maxStreamBytes).toBe(1000);
  });

  it('ignores a var that is not a positive integer, saying so in the log', () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    const config = readConfig({ ...testEnv, MAX_BODY_BYTES: '4MB', RESULT_TTL_SECONDS: '5' });
    expect(config.maxBodyBytes).toBe(4 << 20);
    expect(config.resultTtlSeconds).toBe(60); // KV's minimum
    const lines = logged.mock.calls.map((args) => JSON.parse(String(args[0])) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'error', msg: 'ignoring var: not a positive integer', var: 'MAX_BODY_BYTES', value: '4MB' }));
    logged.mockRestore();
  });
});
