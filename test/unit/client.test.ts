/**
 * The SDK against a real HTTP server on a local port (node:http): what goes over the wire, retries
 * on 429/503 that honour Retry-After, typed errors that carry the problem details, jobs, and
 * codec loading over HTTP with its integrity check. Waits go through an injected recorder, so no
 * assertion depends on time.
 */
import { readFile } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseBitstream } from '../../src/bitstream/index.ts';
import { type Codec, LatentsightError, createClient, encodeImage, loadCodecFromDir, loadCodecFromUrl, parseRetryAfter, readImageFile } from '../../src/client/node.ts';
import { createNodeRuntime } from '../../src/codec/node.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const MODELS = join(REPO, 'models');
const CROP = join(REPO, 'test', 'fixtures', 'kodim23-64x48.png');

interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}
type Handler = (req: Seen, res: ServerResponse) => void | Promise<void>;

let server: Server;
let endpoint: string;
let seen: Seen[] = [];
let handlers: Handler[] = [];

const problem = (res: ServerResponse, status: number, code: string, extra: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/problem+json', 'x-request-id': 'req-12345678', ...extra });
  res.end(JSON.stringify({ type: `https://latentsight.dev/problems/${code.toLowerCase()}`, title: `T${status}`, status, detail: `detail of ${code}`, code, request_id: 'req-12345678' }));
};
const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const ANALYSIS = {
  request_id: 'r1',
  codec: 'ls-f8-q2',
  bpp: 0.5,
  image: { width: 64, height: 48 },
  results: { classify: { top: [{ label: 'macaw', id: 'n01818515', score: 0.9 }] } },
  models: { codec: { id: 'ls-f8-q2', version: '0.1.0' } },
  cache: 'miss',
  timings_ms: { total: 3 },
};

/** Records the delays the client asks for instead of waiting. */
function recorder() {
  const delays: number[] = [];
  return { delays, sleep: async (ms: number) => void delays.push(ms) };
}

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const s: Seen = { method: req.method!, path: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
    seen.push(s);
    const h = handlers.shift();
    if (!h) return problem(res, 500, 'NO_HANDLER');
    await h(s, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  seen = [];
  handlers = [];
});

describe('analyze', () => {
  it('posts the bitstream as is, with the key, media type and tasks, and returns the parsed result', async () => {
    handlers.push((_, res) => json(res, 200, ANALYSIS));
    const bytes = Uint8Array.of(0x89, 0x4c, 0x53, 0x42, 1, 2, 3);
    const result = await createClient({ endpoint, apiKey: 'ls_test_key' }).analyze(bytes, { tasks: ['segment', 'classify'], requestId: 'my-req-0001' });
    expect(result).toEqual(ANALYSIS);
    const [req] = seen;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/v1/analyze?tasks=segment%2Cclassify');
    expect(req.headers.authorization).toBe('Bearer ls_test_key');
    expect(req.headers['content-type']).toBe('application/vnd.latentsight+bitstream');
    expect(req.headers['x-request-id']).toBe('my-req-0001');
    expect(new Uint8Array(req.body)).toEqual(bytes);
  });

  it("encodes an image with the client's codec; the bytes sent are exactly encodeImage's", async () => {
    const codec = await loadCodecFromDir(MODELS);
    try {
      handlers.push((_, res) => json(res, 200, ANALYSIS));
      const image = await readImageFile(CROP);
      await createClient({ endpoint, apiKey: 'k'.repeat(10), codec }).analyze(image);
      const sent = new Uint8Array(seen[0].body);
      expect(sent).toEqual(await encodeImage(image, codec));
      expect(parseBitstream(sent).header).toMatchObject({ width: 64, height: 48, modelId: codec.id });
    } finally {
      await codec.release();
    }
  });

  it('refuses an image without a codec, and unknown tasks, before sending anything', async () => {
    const client = createClient({ endpoint });
    await expect(client.analyze({ data: new Uint8Array(12), width: 2, height: 2 })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(client.analyze(new Uint8Array(4), { tasks: ['colour' as 'classify'] })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(seen).toHaveLength(0);
  });

  it('retries a 429 after the Retry-After the server gives, then succeeds', async () => {
    handlers.push((_, res) => problem(res, 429, 'RATE_LIMITED', { 'retry-after': '2' }));
    handlers.push((_, res) => problem(res, 503, 'ORIGIN_UNAVAILABLE', { 'retry-after': '1' }));
    handlers.push((_, res) => json(res, 200, ANALYSIS));
    const { delays, sleep } = recorder();
    const result = await createClient({ endpoint, retry: { sleep } }).analyze(new Uint8Array(8));
    expect(result.request_id).toBe('r1');
    expect(delays).toEqual([2000, 1000]);
    expect(seen).toHaveLength(3);
    // Every attempt carries the whole body again.
    expect(seen.map((s) => s.body.length)).toEqual([8, 8, 8]);
  });

  it('backs off exponentially with jitter when a 503 names no delay', async () => {
    for (let i = 0; i < 3; i++) handlers.push((_, res) => problem(res, 503, 'ORIGIN_UNAVAILABLE'));
    handlers.push((_, res) => json(res, 200, ANALYSIS));
    const { delays, sleep } = recorder();
    await createClient({ endpoint, retry: { sleep, baseDelayMs: 100, random: () => 0.5 } }).analyze(new Uint8Array(1));
    expect(delays).toEqual([50, 100, 200]);
  });

  it('gives up after the retries with a typed error carrying the last problem', async () => {
    for (let i = 0; i < 3; i++) handlers.push((_, res) => problem(res, 503, 'ORIGIN_TIMEOUT', { 'retry-after': '1' }));
    const { delays, sleep } = recorder();
    const error = await createClient({ endpoint, retry: { sleep, retries: 2 } }).analyze(new Uint8Array(1)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LatentsightError);
    expect(error).toMatchObject({ code: 'ORIGIN_TIMEOUT', status: 503, retryAfterSeconds: 1, requestId: 'req-12345678', type: 'https://latentsight.dev/problems/origin_timeout' });
    expect((error as LatentsightError).problem?.detail).toBe('detail of ORIGIN_TIMEOUT');
    expect((error as LatentsightError).details.attempts).toBe(3);
    expect(delays).toEqual([1000, 1000]);
  });

  it('fails at once when Retry-After is longer than the longest wait allowed', async () => {
    handlers.push((_, res) => problem(res, 429, 'RATE_LIMITED', { 'retry-after': '3600' }));
    const { delays, sleep } = recorder();
    await expect(createClient({ endpoint, retry: { sleep, maxDelayMs: 60_000 } }).analyze(new Uint8Array(1))).rejects.toMatchObject({ code: 'RATE_LIMITED', retryAfterSeconds: 3600 });
    expect(delays).toEqual([]);
  });

  it('does not retry a refusal such as 401, and keeps its problem details', async () => {
    handlers.push((_, res) => problem(res, 401, 'INVALID_API_KEY', { 'www-authenticate': 'Bearer' }));
    const { delays, sleep } = recorder();
    const error = (await createClient({ endpoint, apiKey: 'wrong-key-1', retry: { sleep } }).analyze(new Uint8Array(1)).catch((e: unknown) => e)) as LatentsightError;
    expect(error).toMatchObject({ code: 'INVALID_API_KEY', status: 401 });
    expect(error.message).toContain('detail of INVALID_API_KEY');
    expect(seen).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it('turns a 200 that is not the API into INVALID_RESPONSE, and a non-problem error into HTTP_<status>', async () => {
    handlers.push((_, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>a proxy page</html>');
    });
    handlers.push((_, res) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('bad gateway');
    });
    const client = createClient({ endpoint });
    await expect(client.analyze(new Uint8Array(1))).rejects.toMatchObject({ code: 'INVALID_RESPONSE', status: 200 });
    await expect(client.analyze(new Uint8Array(1))).rejects.toMatchObject({ code: 'HTTP_502', status: 502, problem: undefined });
  });

  it('retries network failures, then reports NETWORK_ERROR', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const { delays, sleep } = recorder();
    const error = await createClient({ endpoint: `http://127.0.0.1:${port}`, retry: { sleep, retries: 2, random: () => 1, baseDelayMs: 10 } })
      .analyze(new Uint8Array(1))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'NETWORK_ERROR', status: 0 });
    expect(delays).toEqual([10, 20]);
  });

  it('stops waiting when the caller aborts', async () => {
    handlers.push((_, res) => problem(res, 503, 'ORIGIN_UNAVAILABLE', { 'retry-after': '5' }));
    const controller = new AbortController();
    const sleep = (_ms: number, signal?: AbortSignal) =>
      new Promise<void>((_, reject) => {
        signal?.addEventListener('abort', () => reject(signal.reason));
        controller.abort(new Error('user cancelled'));
      });
    await expect(createClient({ endpoint, retry: { sleep } }).analyze(new Uint8Array(1), { signal: controller.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('rejects an endpoint that is not an http(s) URL', () => {
    expect(() => createClient({ endpoint: 'ftp://example.com' })).toThrow(LatentsightError);
    expect(() => createClient({ endpoint: 'not a url' })).toThrow(/not a URL/);
  });
});

describe('jobs', () => {
  it('submits the bitstream as base64 JSON with one Idempotency-Key across retries, and reads the job back', async () => {
    handlers.push((_, res) => problem(res, 503, 'ORIGIN_UNAVAILABLE', { 'retry-after': '0' }));
    handlers.push((_, res) => json(res, 202, { id: 'job_1', status: 'queued' }));
    handlers.push((req, res) => json(res, 200, { id: decodeURIComponent(req.path.split('/').pop()!), status: 'completed', result: ANALYSIS }));
    const { sleep } = recorder();
    const client = createClient({ endpoint, apiKey: 'ls_test_key', retry: { sleep } });
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
    const accepted = await client.submitJob(bytes, { tasks: ['classify'], callbackUrl: 'https://hooks.example.com/in', metadata: { photo: 42 } });
    expect(accepted.id).toBe('job_1');
    const [first, second] = seen;
    expect(first.path).toBe('/v1/jobs');
    expect(first.headers['content-type']).toBe('application/json');
    expect(first.headers['idempotency-key']).toMatch(/^[0-9a-f-]{36}$/);
    expect(second.headers['idempotency-key']).toBe(first.headers['idempotency-key']);
    const body = JSON.parse(second.body.toString()) as Record<string, unknown>;
    expect(new Uint8Array(Buffer.from(body.bitstream as string, 'base64'))).toEqual(bytes);
    expect(body).toMatchObject({ tasks: ['classify'], callback_url: 'https://hooks.example.com/in', metadata: { photo: 42 } });

    const job = await client.getJob('job_1');
    expect(seen[2]).toMatchObject({ method: 'GET', path: '/v1/jobs/job_1' });
    expect(job).toMatchObject({ id: 'job_1', status: 'completed', result: { codec: 'ls-f8-q2' } });
  });

  it('reports a job refusal with its problem', async () => {
    handlers.push((_, res) => problem(res, 422, 'CALLBACK_NOT_REGISTERED'));
    await expect(createClient({ endpoint }).submitJob(new Uint8Array(3), { callbackUrl: 'https://x.example/' })).rejects.toMatchObject({ code: 'CALLBACK_NOT_REGISTERED', status: 422 });
  });
});

describe('parseRetryAfter', () => {
  it('reads delay-seconds and HTTP dates, and ignores junk', () => {
    expect(parseRetryAfter('7')).toBe(7);
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT', Date.parse('Wed, 21 Oct 2026 07:27:30 GMT'))).toBe(30);
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT', Date.parse('Wed, 21 Oct 2026 08:00:00 GMT'))).toBe(0);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});

describe('loadCodecFromUrl', () => {
  const serveModels = (tamper?: string): Handler => async (req, res) => {
    const path = decodeURIComponent(req.path).replace(/^\/models\//, '');
    if (path.includes('..')) return problem(res, 400, 'BAD_PATH');
    const bytes = await readFile(join(MODELS, path)).catch(() => undefined);
    if (!bytes) return problem(res, 404, 'NOT_FOUND');
    if (path === tamper) bytes[bytes.length - 1] ^= 1;
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end(bytes);
  };

  it('loads the codec over HTTP and encodes exactly as the codec from disk does', async () => {
    for (let i = 0; i < 4; i++) handlers.push(serveModels());
    const [fromUrl, fromDisk] = await Promise.all([loadCodecFromUrl(`${endpoint}/models/`, createNodeRuntime()), loadCodecFromDir(MODELS)]);
    try {
      const image = await readImageFile(CROP);
      expect(await encodeImage(image, fromUrl as Codec)).toEqual(await encodeImage(image, fromDisk));
      expect(seen.map((s) => s.path)).toEqual(expect.arrayContaining(['/models/manifest.json', `/models/${fromDisk.entry.files.tables.path}`]));
    } finally {
      await Promise.all([fromUrl.release(), fromDisk.release()]);
    }
  });

  it('refuses a tampered model file (MODEL_INTEGRITY)', async () => {
    const entry = (await loadCodecFromDir(MODELS)).entry;
    handlers.push(serveModels(), serveModels(entry.files.tables.path));
    await expect(loadCodecFromUrl(`${endpoint}/models/`, createNodeRuntime())).rejects.toMatchObject({ code: 'MODEL_INTEGRITY' });
  });
});

describe('the browser entry point', () => {
  it('bundles for browsers without any Node built-in module', async () => {
    const result = await build({
      entryPoints: [join(REPO, 'src', 'client', 'web.ts')],
      bundle: true,
      write: false,
      platform: 'browser',
      format: 'esm',
      metafile: true,
      external: ['onnxruntime-web'],
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.some((p) => p.endsWith('src/client/client.ts'))).toBe(true);
    expect(inputs.filter((p) => p.startsWith('node:') || /image-node|runtime-node|codec\/node/.test(p))).toEqual([]);
  });
});
