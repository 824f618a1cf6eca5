// Per-key rate limiting through the RateLimiter Durable Object: exact counts, 429 with Retry-After,
// refill over time, and one bucket per key.
import { runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import type { RateLimiter } from '../../functions/edge/rate-limiter.ts';
import { analyzeInit, seedKey, testEdge, testEnv } from './support/edge.ts';
import { testStream } from './support/models.ts';

describe('per-key rate limiting', () => {
  it('lets a key make rate_limit_per_minute requests, then answers 429 with Retry-After', async () => {
    const edge = testEdge();
    const key = await seedKey({ rate_limit_per_minute: 3 });
    const { bytes } = await testStream({ seed: 301 });

    const statuses: number[] = [];
    const remaining: (string | null)[] = [];
    for (let i = 0; i < 4; i++) {
      const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes));
      statuses.push(response.status);
      remaining.push(response.headers.get('ratelimit-remaining'));
      if (i < 3) await response.body?.cancel();
      else {
        expect(response.headers.get('content-type')).toBe('application/problem+json');
        // 3 per minute: a token every 20 s.
        expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(19);
        expect(Number(response.headers.get('retry-after'))).toBeLessThanOrEqual(20);
        expect(await response.json()).toMatchObject({ type: 'https://latentsight.dev/problems/rate-limited', status: 429, code: 'RATE_LIMITED' });
      }
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(remaining).toEqual(['2', '1', '0', '0']);
  });

  it('counts requests that fail later, so a key cannot probe for free', async () => {
    const edge = testEdge();
    const key = await seedKey({ rate_limit_per_minute: 1 });

    const first = await edge.fetch('/v1/analyze?tasks=nope', analyzeInit(key, null));
    const second = await edge.fetch('/v1/analyze?tasks=nope', analyzeInit(key, null));

    expect([first.status, second.status]).toEqual([400, 429]);
  });

  it('answers 429 to a limited key without reading its body to the end', async () => {
    const edge = testEdge();
    const key = await seedKey({ rate_limit_per_minute: 1 });
    const { bytes } = await testStream({ seed: 303 });
    await (await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes))).body?.cancel();

    // A valid header that declares 4 MiB, then a body that trickles in.
    const head = bytes.slice(0, 40);
    new DataView(head.buffer).setUint32(6, 4 << 20, true);
    let pulls = 0;
    const trickle = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        pulls++;
        await new Promise((resolve) => setTimeout(resolve, 5));
        controller.enqueue(pulls === 1 ? head : new Uint8Array(256));
      },
    });
    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, trickle));

    expect(response.status).toBe(429);
    expect(pulls).toBeLessThan(100);
  });

  it('keeps one bucket per key', async () => {
    const edge = testEdge();
    const a = await seedKey({ rate_limit_per_minute: 1 });
    const b = await seedKey({ rate_limit_per_minute: 1 });
    const { bytes } = await testStream({ seed: 302 });

    const statuses = [];
    for (const key of [a, a, b]) statuses.push((await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes))).status);

    expect(statuses).toEqual([200, 429, 200]);
  });
});

describe('per-key rate limiting of a busy key', () => {
  /** The test bindings with the rate limiter's lease calls counted. */
  function countingEnv() {
    const counted = { calls: 0 };
    const RATE_LIMITER = {
      getByName(name: string) {
        const stub = env.RATE_LIMITER.getByName(name);
        return {
          lease: (limit: number, want: number, returned?: number) => {
            counted.calls++;
            return stub.lease(limit, want, returned);
          },
        };
      },
    };
    return { bindings: { ...testEnv, RATE_LIMITER } as unknown as Env, counted };
  }

  it('leases tokens, so that 60 requests make a few calls to the object', async () => {
    const edge = testEdge();
    const key = await seedKey({ rate_limit_per_minute: 6000 });
    const { bindings, counted } = countingEnv();
    const statuses = new Set<number>();
    // An unknown task: the token is taken, then the request ends in a 400 without any other work.
    for (let i = 0; i < 60; i++) statuses.add((await edge.fetch('/v1/analyze?tasks=nope', analyzeInit(key, null), bindings)).status);
    expect([...statuses]).toEqual([400]);
    // Leases of 1, 2, 4, 8, 16 and 32 tokens cover 63 requests; the next is asked for (in the
    // background) once the last is half spent: 7 calls where every request used to make one.
    expect(counted.calls).toBeLessThanOrEqual(7);
  });

  it('never admits more than the object granted', async () => {
    const edge = testEdge();
    const key = await seedKey({ rate_limit_per_minute: 600 });
    const started = Date.now();
    let admitted = 0;
    let limited = 0;
    for (let i = 0; i < 650 && limited < 5; i++) {
      const response = await edge.fetch('/v1/analyze?tasks=nope', analyzeInit(key, null));
      if (response.status === 429) limited++;
      else admitted++;
    }
    // 600 in the bucket, plus 10 a second that come back while the test runs.
    const refilled = Math.ceil(((Date.now() - started) / 1000) * 10);
    expect(limited).toBe(5);
    expect(admitted).toBeGreaterThanOrEqual(600);
    expect(admitted).toBeLessThanOrEqual(600 + refilled);
  });
});

describe('the RateLimiter object', () => {
  it('grants up to what is asked and what the bucket holds, and takes back what is returned', async () => {
    const stub = env.RATE_LIMITER.getByName('unit-lease');
    expect(await stub.lease(10, 4)).toMatchObject({ granted: 4, allowed: true, remaining: 6 });
    expect(await stub.lease(10, 8)).toMatchObject({ granted: 6, allowed: true, remaining: 0 });
    expect(await stub.lease(10, 1)).toMatchObject({ granted: 0, allowed: false, retryAfterSeconds: 6 });
    expect(await stub.lease(10, 2, 3)).toMatchObject({ granted: 2, remaining: 1 });
    // Never more than the capacity, whatever a caller claims to give back.
    expect(await stub.lease(10, 1, 1_000)).toMatchObject({ granted: 1, remaining: 9 });
    // The previous release's call, during a deploy: one token from the same bucket.
    expect(await stub.take(10)).toMatchObject({ allowed: true, remaining: 8 });
  });

  it('refills at the per-minute rate and never beyond capacity', async () => {
    const stub = env.RATE_LIMITER.getByName('unit-refill');
    expect(await stub.lease(2, 1)).toMatchObject({ allowed: true, remaining: 1 });
    expect(await stub.lease(2, 1)).toMatchObject({ allowed: true, remaining: 0 });
    expect(await stub.lease(2, 1)).toMatchObject({ allowed: false, remaining: 0, retryAfterSeconds: 30 });

    // An object that last saw an empty bucket 45 s ago: 1.5 tokens have come back since.
    const later = env.RATE_LIMITER.getByName('unit-refill-later');
    await runInDurableObject(later, (_: RateLimiter, state) => state.storage.kv.put('bucket', { tokens: 0, updatedAt: Date.now() - 45_000 }));
    expect(await later.lease(2, 1)).toMatchObject({ allowed: true, remaining: 0 });
    expect(await later.lease(2, 1)).toMatchObject({ allowed: false });

    const full = env.RATE_LIMITER.getByName('unit-capacity');
    await runInDurableObject(full, (_: RateLimiter, state) => state.storage.kv.put('bucket', { tokens: 0, updatedAt: Date.now() - 3_600_000 }));
    expect(await full.lease(5, 1)).toMatchObject({ allowed: true, remaining: 4 });
  });

  it('keeps its bucket in storage, so a restarted object does not forget', async () => {
    const stub = env.RATE_LIMITER.getByName('unit-durable');
    await stub.lease(10, 1);
    const stored = await runInDurableObject(stub, (_: RateLimiter, state) => state.storage.kv.get<{ tokens: number }>('bucket'));
    expect(stored?.tokens).toBeCloseTo(9, 2);
  });
});
