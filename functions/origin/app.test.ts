import { gunzipSync, gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkTopK, classifierProbabilities, seededLatents, segmenterMask } from '../../test/fixtures/models/reference.ts';
import { createApp } from './app.ts';
import type { Tensor } from './datatypes.ts';
import { encodeInferRequest, parseInferResponse } from './kserve-client.ts';
import { createLogger } from '../../src/protocol/log.ts';
import { loadManifest, servedModels } from './manifest.ts';
import { createOriginMetrics } from './metrics.ts';
import { ModelRegistry } from './registry.ts';
import { type SigningKey, importSigningKey, signatureHeaders } from '../../src/protocol/signature.ts';

const SECRET = 'app-test-secret-0123456789abcdef0123';
const MANIFEST = fileURLToPath(new URL('../../test/fixtures/models/manifest.json', import.meta.url));

let registry: ModelRegistry;
let key: SigningKey;
const logs: string[] = [];
const state = { draining: false };
let app: ReturnType<typeof createApp>;
const metrics = createOriginMetrics();

beforeAll(async () => {
  key = await importSigningKey(SECRET);
  registry = await ModelRegistry.load(servedModels(await loadManifest(MANIFEST)), { threads: 1, maxBatch: 8, maxQueueDelayMs: 20, maxQueue: 64, metrics });
  const logger = createLogger({ level: 'debug', write: (l) => logs.push(l) });
  app = createApp({ registry, metrics, logger, auth: { key }, maxBodyBytes: 1 << 20, deadlineMs: 5000, state, serverVersion: '9.9.9' });
}, 30_000);

afterAll(async () => {
  await registry?.close();
});

async function send(method: string, path: string, body?: Uint8Array, headers: Record<string, string> = {}, sign = true): Promise<Response> {
  const url = new URL(path, 'http://localhost');
  const auth = sign ? await signatureHeaders(key, method, url, body ?? new Uint8Array()) : {};
  return app.request(path, { method, body: body as RequestInit['body'], headers: { ...auth, ...headers } });
}

async function infer(model: string, inputs: Tensor[], options: { gzip?: boolean; json?: boolean; headers?: Record<string, string> } = {}) {
  const { body, headerLength } = encodeInferRequest({ inputs, binaryInputs: !options.json, binaryOutputs: !options.json });
  const headers: Record<string, string> = { ...options.headers };
  if (headerLength !== undefined) headers['Inference-Header-Content-Length'] = String(headerLength);
  const sent = options.gzip ? new Uint8Array(gzipSync(body)) : body;
  if (options.gzip) headers['Content-Encoding'] = 'gzip';
  return send('POST', `/v2/models/${model}/infer`, sent, headers);
}

async function decode(res: Response) {
  let bytes = new Uint8Array(await res.arrayBuffer());
  if (res.headers.get('content-encoding') === 'gzip') bytes = new Uint8Array(gunzipSync(bytes));
  const hl = res.headers.get('inference-header-content-length');
  return parseInferResponse(bytes, hl === null ? undefined : Number(hl));
}

const errorOf = async (res: Response) => ((await res.json()) as { error: string }).error;

const latents = (shape: number[], seed: number): Tensor => ({ name: 'latents', datatype: 'INT16', shape, data: seededLatents(shape.reduce((a, b) => a * b), seed) });

describe('open endpoints', () => {
  it('answers liveness, readiness and metrics without a signature', async () => {
    expect((await send('GET', '/v2/health/live', undefined, {}, false)).status).toBe(200);
    expect((await send('GET', '/v2/health/ready', undefined, {}, false)).status).toBe(200);
    const metricsRes = await send('GET', '/metrics', undefined, {}, false);
    expect(metricsRes.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await metricsRes.text()).toContain('# TYPE latentsight_origin_requests_total counter');
  });
});

describe('authentication', () => {
  it('serves server metadata to a signed request', async () => {
    const res = await send('GET', '/v2');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: 'latentsight-origin', version: '9.9.9', extensions: ['binary_tensor_data'] });
  });

  it.each([
    ['no signature', {}, 'missing X-Latentsight-Timestamp header (unix seconds)'],
    ['an old timestamp', { 'X-Latentsight-Timestamp': '1000', 'X-Latentsight-Signature': `v1=${'0'.repeat(64)}` }, 'X-Latentsight-Timestamp is'],
    ['a malformed signature', { 'X-Latentsight-Timestamp': String(Math.floor(Date.now() / 1000)), 'X-Latentsight-Signature': 'sha256=abc' }, "X-Latentsight-Signature must be 'v1='"],
    ['a wrong signature', { 'X-Latentsight-Timestamp': String(Math.floor(Date.now() / 1000)), 'X-Latentsight-Signature': `v1=${'0'.repeat(64)}` }, 'X-Latentsight-Signature does not match the request'],
  ])('answers 401 to %s, saying why', async (_what, headers, reason) => {
    for (const path of ['/v2', '/v2/models/cls-test', '/v2/models/cls-test/infer']) {
      const res = await send(path.endsWith('infer') ? 'POST' : 'GET', path, undefined, headers, false);
      expect(res.status).toBe(401);
      expect((await errorOf(res))).toContain(reason);
    }
  });

  it('answers 401 when the body changed after signing', async () => {
    const url = new URL('/v2/models/cls-test/infer', 'http://localhost');
    const auth = await signatureHeaders(key, 'POST', url, new TextEncoder().encode('{"inputs":[]}'));
    const res = await app.request(url.pathname, { method: 'POST', body: '{"inputs":[1]}', headers: auth });
    expect(res.status).toBe(401);
  });
});

describe('metadata and readiness', () => {
  it('describes a model with KServe datatypes and -1 for dynamic dimensions', async () => {
    const res = await send('GET', '/v2/models/cls-test');
    expect(await res.json()).toEqual({
      name: 'cls-test',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'latents', datatype: 'INT16', shape: [-1, 4, -1, -1] }],
      outputs: [
        { name: 'scores', datatype: 'FP32', shape: [-1, 5] },
        { name: 'classes', datatype: 'INT64', shape: [-1, 5] },
      ],
    });
    expect((await send('GET', '/v2/models/cls-test/versions/1')).status).toBe(200);
    expect((await send('GET', '/v2/models/seg-test/ready')).status).toBe(200);
    expect((await send('GET', '/v2/models/seg-test/versions/1/ready')).status).toBe(200);
  });

  it('answers 404 for an unknown model, version or route', async () => {
    const unknown = await send('POST', '/v2/models/nope/infer', new TextEncoder().encode('{}'));
    expect(unknown.status).toBe(404);
    expect((await errorOf(unknown))).toBe("unknown model 'nope'; this origin serves 'cls-test', 'seg-test', 'cls-c64-test', 'cls-rgb-test'");
    const version = await send('GET', '/v2/models/cls-test/versions/7');
    expect(version.status).toBe(404);
    expect((await errorOf(version))).toBe("model 'cls-test' has no version '7'; it serves version '1' (or leave the version out)");
    expect((await send('GET', '/v2/repository/index', undefined, {}, false)).status).toBe(404);
  });
});

describe('inference', () => {
  it('classifies JSON latents as the reference math does', async () => {
    const input = latents([2, 4, 3, 5], 1);
    const res = await infer('cls-test', [input], { json: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const { outputs, modelName, modelVersion } = await decode(res);
    expect([modelName, modelVersion]).toEqual(['cls-test', '1']);
    const [scores, classes] = outputs;
    expect(scores.shape).toEqual([2, 5]);
    for (let row = 0; row < 2; row++) {
      const problem = checkTopK(classifierProbabilities(input.data as Int16Array, input.shape, row), scores.data.subarray(row * 5) as Float32Array, classes.data.subarray(row * 5) as BigInt64Array);
      expect(problem).toBeUndefined();
    }
  });

  it('segments gzip-compressed binary latents, answering binary and gzip-compressed', async () => {
    const input = latents([1, 4, 6, 7], 2);
    const res = await infer('seg-test', [input], { gzip: true, headers: { 'Accept-Encoding': 'gzip' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('content-encoding')).toBe('gzip');
    const [mask] = (await decode(res)).outputs;
    expect(mask.shape).toEqual([1, 48, 56]);
    expect(mask.data).toEqual(segmenterMask(input.data as Int16Array, input.shape));
  });

  it('batches concurrent requests and gives each its own rows back', async () => {
    const inputs = Array.from({ length: 6 }, (_, i) => latents([1, 4, 2, 2], 100 + i));
    const responses = await Promise.all(inputs.map((t) => infer('cls-test', [t])));
    for (const [i, res] of responses.entries()) {
      const [scores, classes] = (await decode(res)).outputs;
      expect(checkTopK(classifierProbabilities(inputs[i].data as Int16Array, inputs[i].shape, 0), scores.data as Float32Array, classes.data as BigInt64Array)).toBeUndefined();
    }
    const text = metrics.registry.render();
    const count = Number(/latentsight_origin_batch_size_count\{model="cls-test"\} (\d+)/.exec(text)![1]);
    const sum = Number(/latentsight_origin_batch_size_sum\{model="cls-test"\} (\d+)/.exec(text)![1]);
    // More rows than runs: at least two of the six shared a batch.
    expect(sum).toBeGreaterThan(count);
  });

  it.each([
    ['a wrong datatype', { inputs: [{ name: 'latents', datatype: 'FP32', shape: [1, 4, 1, 1], data: [1, 2, 3, 4] }] }, "input 'latents' has datatype FP32; model 'cls-test' expects INT16"],
    ['a wrong shape', { inputs: [{ name: 'latents', datatype: 'INT16', shape: [1, 3, 1, 1], data: [1, 2, 3] }] }, "input 'latents' has shape [1, 3, 1, 1]; model 'cls-test' expects [-1, 4, -1, -1]: dimension 1 is 3, must be 4"],
    ['a wrong byte count', { inputs: [{ name: 'latents', datatype: 'INT16', shape: [1, 4, 1, 1], parameters: { binary_data_size: 6 } }] }, "input 'latents' declares binary_data_size 6, but INT16 [1, 4, 1, 1] takes 4 x 2 = 8 bytes"],
  ])('answers 400 to %s, saying exactly what', async (_what, header, message) => {
    const res = await send('POST', '/v2/models/cls-test/infer', new TextEncoder().encode(JSON.stringify(header)));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: message });
  });

  it('answers 400 to a malformed Inference-Header-Content-Length, 415 to brotli, 413 to a huge body', async () => {
    const body = new TextEncoder().encode('{"inputs":[]}');
    expect((await send('POST', '/v2/models/cls-test/infer', body, { 'Inference-Header-Content-Length': 'ten' })).status).toBe(400);
    expect((await send('POST', '/v2/models/cls-test/infer', body, { 'Content-Encoding': 'br' })).status).toBe(415);
    expect((await send('POST', '/v2/models/cls-test/infer', new Uint8Array((1 << 20) + 1))).status).toBe(413);
    const bomb = new Uint8Array(gzipSync(new Uint8Array(4 << 20)));
    expect((await send('POST', '/v2/models/cls-test/infer', bomb, { 'Content-Encoding': 'gzip' })).status).toBe(413);
  });

  it('echoes a well-formed X-Request-Id and makes one up otherwise', async () => {
    expect((await send('GET', '/v2', undefined, { 'X-Request-Id': 'edge-123' })).headers.get('x-request-id')).toBe('edge-123');
    const made = (await send('GET', '/v2', undefined, { 'X-Request-Id': 'bad id with spaces' })).headers.get('x-request-id');
    expect(made).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('logs and metrics', () => {
  it('logs one line per request with its id, and never the secret, a signature or tensor values', async () => {
    await send('GET', '/v2', undefined, { 'X-Request-Id': 'log-check' });
    const line = logs.map((l) => JSON.parse(l)).find((l) => l.request_id === 'log-check');
    expect(line).toMatchObject({ level: 'info', msg: 'request', method: 'GET', path: '/v2', route: 'server', status: 200 });
    const all = logs.join('\n');
    expect(all).not.toContain(SECRET);
    expect(all).not.toMatch(/v1=[0-9a-f]{64}/);
  });

  it('counts requests by route, model and code, and errors by code', async () => {
    const text = metrics.registry.render();
    expect(text).toMatch(/latentsight_origin_requests_total\{route="infer",model="cls-test",code="200"\} \d+/);
    expect(text).toMatch(/latentsight_origin_requests_total\{route="infer",model="cls-test",code="400"\} \d+/);
    expect(text).toMatch(/latentsight_origin_errors_total\{model="cls-test",code="BAD_REQUEST"\} \d+/);
    expect(text).toMatch(/latentsight_origin_errors_total\{model="",code="UNAUTHORIZED"\} \d+/);
    expect(text).toMatch(/latentsight_origin_request_duration_seconds_count\{model="seg-test"\} \d+/);
    expect(text).toContain('latentsight_origin_queue_depth{model="cls-test"} 0');
  });
});

describe('draining', () => {
  it('fails readiness and refuses new inference with 503 while shutting down', async () => {
    state.draining = true;
    try {
      expect((await send('GET', '/v2/health/ready', undefined, {}, false)).status).toBe(400);
      const res = await infer('cls-test', [latents([1, 4, 1, 1], 3)]);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
    } finally {
      state.draining = false;
    }
  });
});
