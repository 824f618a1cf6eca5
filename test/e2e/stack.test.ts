/**
 * End to end against real processes: the `latentsight` CLI encodes Kodak fixtures with the shipped
 * codec, `wrangler dev` (workerd) serves the edge, the origin runs the shipped task models on
 * onnxruntime-node, and every call is real HTTP. Covers the first call (miss), the cache hit, an origin
 * killed while the edge keeps serving (503 with Retry-After, never a hang), recovery after a restart,
 * hostile bodies, and the logs (one request id across edge and origin, no secret in either).
 */
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from '../../scripts/stack.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(REPO, 'bin', 'latentsight.js');
const BITSTREAM = 'application/vnd.latentsight+bitstream';
/** A guard against hangs (the "no hang"), far above any expected answer. */
const HANG_GUARD_MS = 60_000;

let stack: Stack;
let dir: string;
const streams: Record<string, Uint8Array> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latentsight-e2e-'));
  // The real CLI, as a user runs it.
  // Each test that needs a cache miss gets a bitstream of its own; a mirrored kodim23 makes one more.
  const mirrored = join(dir, 'kodim23-mirrored.png');
  await sharp(join(REPO, 'test', 'fixtures', 'kodim23.png')).flop().png().toFile(mirrored);
  const images: Record<string, string> = { mirrored };
  for (const name of ['kodim23', 'kodim15', 'kodim23-64x48', 'kodim15-37x21']) images[name] = join(REPO, 'test', 'fixtures', `${name}.png`);
  for (const [name, image] of Object.entries(images)) {
    const out = join(dir, `${name}.lsb`);
    await promisify(execFile)(process.execPath, [CLI, 'encode', image, '-o', out], { cwd: REPO });
    streams[name] = new Uint8Array(await readFile(out));
  }
  stack = await startStack();
});

afterAll(async () => {
  await stack?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function analyze(body: Uint8Array, init: { requestId?: string; contentType?: string; key?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${init.key ?? stack.apiKey}`, 'content-type': init.contentType ?? BITSTREAM };
  if (init.requestId) headers['x-request-id'] = init.requestId;
  return fetch(`${stack.edgeUrl}/v1/analyze?tasks=classify,segment`, { method: 'POST', headers, body, signal: AbortSignal.timeout(HANG_GUARD_MS) });
}

interface AnalyzeBody {
  request_id: string;
  codec: string;
  bpp: number;
  cache: 'hit' | 'miss';
  results: {
    classify: { top: { label: string; id: number; score: number }[] };
    segment: { width: number; height: number; classes: unknown[]; mask: string; fractions: Record<string, number> };
  };
  models: Record<string, { id: string; version: string }>;
}

async function expectProblem(res: Response, status: number): Promise<Record<string, unknown>> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = (await res.json()) as Record<string, unknown>;
  expect(body.status).toBe(status);
  expect(typeof body.type).toBe('string');
  expect(typeof body.code).toBe('string');
  return body;
}

describe('the local stack, end to end', () => {
  it('analyzes a bitstream from the CLI, then answers the same bitstream from the cache', async () => {
    const first = await analyze(streams.kodim23, { requestId: 'e2e-first-call-0001' });
    expect(first.status, await first.clone().text()).toBe(200);
    const a = (await first.json()) as AnalyzeBody;
    expect(a.request_id).toBe('e2e-first-call-0001');
    expect(a.cache).toBe('miss');
    // The stack's origin runs on CPUs: its edge asks for the manifest's int8 variants (TASK_MODELS).
    expect([a.models.classify.id, a.models.segment.id]).toEqual([`cls-latent-${a.codec}-int8`, `seg-latent-${a.codec}-int8`]);
    // The API rounds bpp to 4 decimals.
    expect(a.bpp).toBeCloseTo((streams.kodim23.byteLength * 8) / (768 * 512), 4);
    expect(a.results.classify.top).toHaveLength(5);
    const scores = a.results.classify.top.map((t) => t.score);
    expect(scores).toEqual([...scores].sort((x, y) => y - x));
    expect(a.results.segment).toMatchObject({ width: 768, height: 512 });
    // A PNG: the signature bytes after base64 decoding.
    expect(Buffer.from(a.results.segment.mask, 'base64').subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const fractionSum = Object.values(a.results.segment.fractions).reduce((s, f) => s + f, 0);
    expect(fractionSum).toBeCloseTo(1, 3);

    const second = await analyze(streams.kodim23);
    expect(second.status).toBe(200);
    const b = (await second.json()) as AnalyzeBody;
    expect(b.cache).toBe('hit');
    expect(b.results).toEqual(a.results);
  });

  it('carries one request id from the edge to the origin, and logs no key, secret or image data', async () => {
    const id = 'e2e-log-trace-0002';
    // kodim15 is not cached yet: this call reaches the origin.
    const res = await analyze(streams.kodim15, { requestId: id });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(((await res.json()) as AnalyzeBody).cache).toBe('miss');

    const edgeRecord = await eventually(() => jsonLines(stack.edgeLines).find((l) => l.request_id === id && l.msg === 'request'));
    expect(edgeRecord).toMatchObject({ level: 'info', method: 'POST', path: '/v1/analyze', status: 200 });
    const originRecords = stack.originLogs().filter((l) => l.request_id === id && l.msg === 'request');
    // One infer per task model, each logged by the origin under the edge's request id.
    expect(originRecords.length).toBeGreaterThanOrEqual(2);
    for (const r of originRecords) expect(r).toMatchObject({ route: 'infer', status: 200 });

    const everything = [...stack.edgeLines, ...stack.originLogs().map((l) => JSON.stringify(l))].join('\n');
    expect(everything).not.toContain(stack.apiKey);
    expect(everything).not.toContain(stack.secret);
    // No bitstream bytes either: a base64 run of the payload would show this prefix.
    expect(everything).not.toContain(Buffer.from(streams.kodim15.subarray(40, 64)).toString('base64'));
  });

  it('rejects corrupt and oversized bodies with problem+json', async () => {
    const corrupt = streams.kodim23.slice();
    corrupt[corrupt.length - 20] ^= 0x5a;
    const bad = await expectProblem(await analyze(corrupt), 422);
    expect(bad.code).toBe('CHECKSUM_MISMATCH');

    const truncated = await expectProblem(await analyze(streams.kodim23.subarray(0, 100)), 422);
    expect(truncated.code).toBe('TRUNCATED');

    // 5 MiB against the 4 MiB limit: refused from its Content-Length before any of it is read. A
    // client that asks first (Expect: 100-continue) gets the 413 and never sends the body.
    const huge = new Uint8Array(5 << 20);
    huge.set(streams.kodim23.subarray(0, 40));
    const url = `${stack.edgeUrl}/v1/analyze?tasks=classify`;
    const headers = { authorization: `Bearer ${stack.apiKey}`, 'content-type': BITSTREAM };
    const tooLarge = await postEarlyAnswer(url, { ...headers, expect: '100-continue' }, huge);
    expect(tooLarge.sent).toBe(false);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.contentType).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(tooLarge.body)).toMatchObject({ status: 413, code: 'BODY_TOO_LARGE' });
    // One that sends anyway: the edge stops reading and answers 413; the connection then closes with
    // the body unread, and TCP may reset it before the client reads the answer. Never a hang, never
    // another answer.
    // `wrangler dev`'s proxy worker (local only, not on Cloudflare) may turn that reset of its own
    // upstream connection into a plain-text 503 of its own; the edge's answers are problem+json.
    const pushed = await postEarlyAnswer(url, headers, huge).catch((e: Error) => e);
    if (pushed instanceof Error) expect(pushed.message).toMatch(/aborted|ECONNRESET|EPIPE|socket hang up/);
    else if (pushed.status === 503) expect(pushed.body).toMatch(/^Your worker restarted mid-request/);
    else expect(pushed.status).toBe(413);

    await expectProblem(await analyze(streams.kodim23, { contentType: 'image/png' }), 415);
    await expectProblem(await analyze(streams.kodim23, { key: 'ls_e2e_not-a-key-at-all' }), 401);
  });

  it('answers 503 with Retry-After while the origin is down, without hanging, and recovers after a restart', async () => {
    // A cache miss in flight when the origin dies: an answer either way (it may have finished first), never a hang.
    const inFlight = analyze(streams['kodim23-64x48'], { requestId: 'e2e-in-flight-0003' });
    await stack.killOrigin();
    const during = await inFlight;
    expect([200, 503], await during.clone().text()).toContain(during.status);
    if (during.status === 503) expect(Number(during.headers.get('retry-after')), JSON.stringify([...during.headers])).toBeGreaterThan(0);
    await during.body?.cancel();

    // Down: misses get 503 problem+json with Retry-After; hits are still served from KV.
    const down = await analyze(streams['kodim15-37x21']);
    const problem = await expectProblem(down, 503);
    expect(Number(down.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(problem.code).toMatch(/^(ORIGIN_UNAVAILABLE|ORIGIN_TIMEOUT|CIRCUIT_OPEN)$/);
    const hit = await analyze(streams.kodim23);
    expect(hit.status).toBe(200);
    expect(((await hit.json()) as AnalyzeBody).cache).toBe('hit');

    // Restarted on the same port: a client that honours Retry-After gets its answer.
    await stack.restartOrigin();
    const again = streams.mirrored;
    let res = await analyze(again);
    for (let attempt = 0; res.status === 503 && attempt < 10; attempt++) {
      const wait = Number(res.headers.get('retry-after'));
      await res.body?.cancel();
      await new Promise((r) => setTimeout(r, Math.min(Math.max(wait, 1), 35) * 1000));
      res = await analyze(again);
    }
    expect(res.status, await res.clone().text()).toBe(200);
    expect(((await res.json()) as AnalyzeBody).cache).toBe('miss');
  });
});

/**
 * POSTs `body` and resolves with the answer as soon as it is complete, even if the server stops
 * reading the body. With `expect: 100-continue` the body goes out only on the server's 100 Continue;
 * `sent` says whether it did.
 */
function postEarlyAnswer(url: string, headers: Record<string, string>, body: Uint8Array): Promise<{ status: number; contentType: string; body: string; sent: boolean }> {
  const waitForContinue = headers.expect === '100-continue';
  let sent = false;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { ...headers, 'content-length': String(body.byteLength) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: text, sent });
        if (!sent) req.destroy();
      });
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(new Error('no answer in time')), HANG_GUARD_MS);
    req.on('close', () => clearTimeout(timer));
    // EPIPE / ECONNRESET while still writing: the answer (or its absence) decides. The socket may
    // report the failed write after the request has finished, with no request left to hear it.
    req.on('error', (e) => setTimeout(() => reject(e), 1000));
    req.on('socket', (socket) => socket.on('error', () => {}));
    const send = () => {
      sent = true;
      req.end(body);
    };
    if (waitForContinue) {
      req.on('continue', send);
      req.flushHeaders();
    } else send();
  });
}

function jsonLines(lines: string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of lines) {
    const start = line.indexOf('{');
    if (start < 0) continue;
    try {
      out.push(JSON.parse(line.slice(start)) as Record<string, unknown>);
    } catch {
      // Not one of ours (wrangler's own output).
    }
  }
  return out;
}

/** Polls `find` until it returns something (log lines arrive through a pipe, a moment after the response). */
async function eventually<T>(find: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('not found in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
