/**
 * The origin as a real child process (`tsx functions/origin/main.ts`) on a free port, with the
 * fixture manifest, spoken to over real HTTP with signed requests: the edge's view of it.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../functions/origin/datatypes.ts';
import { encodeInferRequest, parseInferResponse } from '../../functions/origin/kserve-client.ts';
import { type OriginProcess, OriginExitError, startOrigin, taskModelsFor } from '../../functions/origin/process.ts';
import { type SigningKey, importSigningKey, signatureHeaders } from '../../src/protocol/signature.ts';
import { checkTopK, classifierProbabilities, seededLatents, segmenterMask } from '../fixtures/models/reference.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/models/', import.meta.url));
const MANIFEST = join(FIXTURES, 'manifest.json');
const SECRET = 'integration-secret-0123456789abcdef';
const BASE_ENV = { ORIGIN_MANIFEST: MANIFEST, ORIGIN_HMAC_SECRET: SECRET, ORIGIN_THREADS: '1', ORIGIN_LOG_LEVEL: 'info' };

let key: SigningKey;
let origin: OriginProcess;
/** maxQueue 1 and a 1.5 s queue delay: the second concurrent request finds the queue full. */
let crowded: OriginProcess;

beforeAll(async () => {
  key = await importSigningKey(SECRET);
  [origin, crowded] = await Promise.all([
    startOrigin({ ...BASE_ENV, ORIGIN_MAX_QUEUE_DELAY_MS: '10' }),
    startOrigin({ ...BASE_ENV, ORIGIN_MAX_QUEUE: '1', ORIGIN_MAX_QUEUE_DELAY_MS: '1500' }),
  ]);
}, 90_000);

afterAll(async () => {
  await Promise.all([origin?.stop(), crowded?.stop()]);
});

async function post(target: OriginProcess, model: string, body: Uint8Array, headers: Record<string, string> = {}, sign = true): Promise<Response> {
  const url = new URL(`/v2/models/${model}/infer`, target.url);
  const auth = sign ? await signatureHeaders(key, 'POST', url, body) : {};
  return fetch(url, { method: 'POST', body, headers: { ...auth, ...headers } });
}

async function inferBinary(target: OriginProcess, model: string, inputs: Tensor[], gzip: boolean, headers: Record<string, string> = {}): Promise<Response> {
  const { body, headerLength } = encodeInferRequest({ inputs, binaryOutputs: true });
  const sent = gzip ? new Uint8Array(gzipSync(body)) : body;
  return post(target, model, sent, {
    'Content-Type': 'application/octet-stream',
    'Inference-Header-Content-Length': String(headerLength),
    ...(gzip && { 'Content-Encoding': 'gzip' }),
    ...headers,
  });
}

async function outputs(res: Response) {
  const hl = res.headers.get('inference-header-content-length');
  return parseInferResponse(new Uint8Array(await res.arrayBuffer()), hl === null ? undefined : Number(hl)).outputs;
}

const latents = (shape: number[], seed: number): Tensor => ({ name: 'latents', datatype: 'INT16', shape, data: seededLatents(shape.reduce((a, b) => a * b), seed) });
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

describe('the origin process', () => {
  it('answers health checks without a signature', async () => {
    expect((await fetch(`${origin.url}/v2/health/live`)).status).toBe(200);
    expect((await fetch(`${origin.url}/v2/health/ready`)).status).toBe(200);
  });

  it('classifies signed JSON latents as the reference math does', async () => {
    const input = latents([1, 4, 8, 12], 11);
    const res = await post(origin, 'cls-test', json({ id: 'json-1', inputs: [{ name: 'latents', datatype: 'INT16', shape: input.shape, data: [...input.data] }] }), { 'Content-Type': 'application/json' });
    expect(res.status).toBe(200);
    const body = parseInferResponse(new Uint8Array(await res.arrayBuffer()));
    expect(body.id).toBe('json-1');
    const [scores, classes] = body.outputs;
    expect(checkTopK(classifierProbabilities(input.data as Int16Array, input.shape, 0), scores.data as Float32Array, classes.data as BigInt64Array)).toBeUndefined();
  });

  it('segments gzip-compressed binary latents, with binary outputs', async () => {
    const input = latents([2, 4, 5, 9], 12);
    const res = await inferBinary(origin, 'seg-test', [input], true, { 'X-Request-Id': 'seg-gzip-1' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('seg-gzip-1');
    const [mask] = await outputs(res);
    expect(mask.shape).toEqual([2, 40, 72]);
    expect(mask.data).toEqual(segmenterMask(input.data as Int16Array, input.shape));
    // The request id reaches the process's logs.
    expect(origin.logs.some((l) => l.request_id === 'seg-gzip-1' && l.status === 200)).toBe(true);
  });

  it('keeps each of 24 concurrent requests its own answer while batching them', async () => {
    const inputs = Array.from({ length: 24 }, (_, i) => latents([1, 4, 6, 6], 200 + i));
    const responses = await Promise.all(inputs.map((t) => inferBinary(origin, 'cls-test', [t], false)));
    for (const [i, res] of responses.entries()) {
      expect(res.status).toBe(200);
      const [scores, classes] = await outputs(res);
      expect(checkTopK(classifierProbabilities(inputs[i].data as Int16Array, inputs[i].shape, 0), scores.data as Float32Array, classes.data as BigInt64Array)).toBeUndefined();
    }
    const metrics = await (await fetch(`${origin.url}/metrics`)).text();
    const runs = Number(/latentsight_origin_batch_size_count\{model="cls-test"\} (\d+)/.exec(metrics)![1]);
    const rows = Number(/latentsight_origin_batch_size_sum\{model="cls-test"\} (\d+)/.exec(metrics)![1]);
    expect(rows).toBeGreaterThan(runs);
  });

  it.each([
    ['a wrong datatype', { inputs: [{ name: 'latents', datatype: 'INT32', shape: [1, 4, 1, 1], data: [1, 2, 3, 4] }] }, "input 'latents' has datatype INT32; model 'cls-test' expects INT16"],
    ['a wrong shape', { inputs: [{ name: 'latents', datatype: 'INT16', shape: [1, 4, 1], data: [1, 2, 3, 4] }] }, "input 'latents' has shape [1, 4, 1] (rank 3); model 'cls-test' expects [-1, 4, -1, -1] (rank 4)"],
    ['a wrong element count', { inputs: [{ name: 'latents', datatype: 'INT16', shape: [1, 4, 2, 1], data: [1, 2, 3, 4] }] }, "input 'latents' has 4 elements in 'data'; shape [1, 4, 2, 1] needs 8"],
  ])('answers 400 to %s, saying what was wrong', async (_what, header, message) => {
    const res = await post(origin, 'cls-test', json(header));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: message });
  });

  it('answers 400 to a binary section shorter than declared', async () => {
    const { body, headerLength } = encodeInferRequest({ inputs: [latents([1, 4, 2, 2], 1)] });
    const res = await post(origin, 'cls-test', body.subarray(0, body.length - 2), { 'Inference-Header-Content-Length': String(headerLength) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe(`the binary section has 30 bytes after the ${headerLength}-byte JSON header, but the inputs' binary_data_size add up to 32`);
  });

  it('answers 401 to a bad signature and to an old one', async () => {
    const body = json({ inputs: [] });
    const url = new URL('/v2/models/cls-test/infer', origin.url);
    const wrongKey = await importSigningKey(`${SECRET}-other`);
    const bad = await fetch(url, { method: 'POST', body, headers: await signatureHeaders(wrongKey, 'POST', url, body) });
    expect(bad.status).toBe(401);
    const old = await fetch(url, { method: 'POST', body, headers: await signatureHeaders(key, 'POST', url, body, Math.floor(Date.now() / 1000) - 301) });
    expect(old.status).toBe(401);
    expect(((await old.json()) as { error: string }).error).toMatch(/^X-Latentsight-Timestamp is 30\d s from the origin's clock/);
  });

  it('answers 404 to an unknown model', async () => {
    const res = await post(origin, 'resnet-50', json({ inputs: [] }));
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toMatch(/^unknown model 'resnet-50'/);
  });

  it('exposes Prometheus metrics for what it served', async () => {
    const res = await fetch(`${origin.url}/metrics`);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    expect(text).toMatch(/^latentsight_origin_requests_total\{route="infer",model="seg-test",code="200"\} 1$/m);
    expect(text).toMatch(/^latentsight_origin_requests_total\{route="infer",model="cls-test",code="400"\} 4$/m);
    expect(text).toMatch(/^latentsight_origin_errors_total\{model="",code="UNAUTHORIZED"\} 2$/m);
    expect(text).toMatch(/^latentsight_origin_requests_total\{route="infer",model="",code="404"\} 1$/m);
    expect(text).toMatch(/^latentsight_origin_request_duration_seconds_bucket\{model="cls-test",le="\+Inf"\} \d+$/m);
    expect(text).toMatch(/^latentsight_origin_queue_depth\{model="cls-test"\} 0$/m);
  });
});

describe('the task models an edge asks this origin for', () => {
  it('names the int8 variants on CPUs and none (the float models) when the origin runs on cuda', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'latentsight-taskmodels-'));
    const manifest = join(dir, 'manifest.json');
    await writeFile(manifest, JSON.stringify({ models: [{ id: 'cls-a' }, { id: 'cls-a-int8', quantized_from: { id: 'cls-a' } }, { id: 'seg-b-int8', quantized_from: { id: 'seg-b' } }] }));
    try {
      expect(taskModelsFor({}, manifest)).toBe('cls-a-int8,seg-b-int8');
      expect(taskModelsFor({ ORIGIN_EXECUTION_PROVIDERS: 'cpu' }, manifest)).toBe('cls-a-int8,seg-b-int8');
      expect(taskModelsFor({ ORIGIN_EXECUTION_PROVIDERS: 'cuda,cpu' }, manifest)).toBe('');
      await writeFile(manifest, JSON.stringify({ models: [{ id: 'cls-a' }] }));
      expect(taskModelsFor({}, manifest)).toBe('');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('overload and shutdown', () => {
  it('answers 503 with Retry-After when the queue is full, then drains the queued request on SIGTERM', async () => {
    const queued = inferBinary(crowded, 'cls-test', [latents([1, 4, 2, 2], 5)], false);
    // Let the first request reach the queue, where it waits out the 1.5 s delay.
    await new Promise((r) => setTimeout(r, 300));
    const refused = await inferBinary(crowded, 'cls-test', [latents([1, 4, 2, 2], 6)], false);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toEqual({ error: 'the queue is full (1 requests waiting); retry after a moment' });

    const started = performance.now();
    const exit = crowded.stop('SIGTERM');
    const res = await queued;
    expect(res.status).toBe(200);
    // Drained at once rather than after the remaining queue delay.
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await exit).toBe(0);
    expect(crowded.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['draining', 'stopped']));
  });
});

describe('refusing to start', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('refuses without ORIGIN_HMAC_SECRET, saying what to set', async () => {
    const e = await startOrigin({ ORIGIN_MANIFEST: MANIFEST, ORIGIN_HMAC_SECRET: '' }).catch((x: OriginExitError) => x);
    expect(e).toBeInstanceOf(OriginExitError);
    expect((e as OriginExitError).exitCode).toBe(2);
    expect((e as OriginExitError).stderr).toContain('ORIGIN_HMAC_SECRET is not set');
  });

  it('reports a port in use as OriginExitError, and never moves a given ORIGIN_PORT elsewhere', async () => {
    // An HTTP server that is not ready, so the wait for readiness can only end with the child's exit.
    const taken = createServer((_req, res) => res.writeHead(503).end());
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const { port } = taken.address() as AddressInfo;
    try {
      const e = await startOrigin({ ...BASE_ENV, ORIGIN_PORT: String(port) }).catch((x: OriginExitError) => x);
      expect(e).toBeInstanceOf(OriginExitError);
      expect((e as OriginExitError).stderr).toContain('EADDRINUSE');
    } finally {
      taken.closeAllConnections();
      await new Promise((r) => taken.close(r));
    }
  });

  it('refuses a model file whose sha256 differs from the manifest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'origin-process-'));
    dirs.push(dir);
    const manifest = JSON.parse(await readFile(MANIFEST, 'utf8'));
    manifest.models = [manifest.models[0]];
    // Same size, one byte changed: only the digest can tell.
    const bytes = await readFile(join(FIXTURES, 'cls-test.onnx'));
    bytes[bytes.length - 1] ^= 1;
    await writeFile(join(dir, 'cls-test.onnx'), bytes);
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
    const e = await startOrigin({ ...BASE_ENV, ORIGIN_MANIFEST: join(dir, 'manifest.json') }).catch((x: OriginExitError) => x);
    expect((e as OriginExitError).exitCode).toBe(1);
    expect((e as OriginExitError).stderr).toMatch(/cannot start \(INTEGRITY_MISMATCH\).*\n.*model 'cls-test' files\.model \(cls-test\.onnx\): sha256 [0-9a-f]{64}, the manifest says/);
  });
});
