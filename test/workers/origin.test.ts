// The edge against a misbehaving origin: retries with backoff, timeouts, the circuit breaker,
// 503 with Retry-After, 502 for answers it cannot use, and both response encodings.
import { describe, expect, it, vi } from 'vitest';
import { analyzeInit, seedKey, testEdge, testEnv } from './support/edge.ts';
import { testStream } from './support/models.ts';
import { binaryResponse, classifierOutputs, fakeOrigin, jsonResponse, wellBehaved } from './support/origin.ts';

async function problemOf(response: Response) {
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  return response.json<{ type: string; code: string; retry_after?: number; detail: string }>();
}

describe('the origin client', () => {
  it('retries a 503 with exponential, jittered backoff and then answers', async () => {
    const origin = fakeOrigin((request, attempt) => (attempt <= 2 ? new Response('busy', { status: 503 }) : wellBehaved(request)));
    const edge = testEdge({ origin: origin.deps, config: { originBackoffMs: 100 } });
    const { bytes } = await testStream({ seed: 201 });

    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(await seedKey(), bytes));

    expect(response.status).toBe(200);
    expect(origin.requests).toHaveLength(3);
    // random() = 0.5: half of 100 * 2^0, then half of 100 * 2^1.
    expect(origin.sleeps).toEqual([50, 100]);
  });

  it('waits what an origin at capacity asks (503 with Retry-After), then answers', async () => {
    const busy = () => new Response('at capacity', { status: 503, headers: { 'retry-after': '2' } });
    const origin = fakeOrigin((request, attempt) => (attempt <= 2 ? busy() : wellBehaved(request)));
    const edge = testEdge({ origin: origin.deps, config: { originBackoffMs: 100, originDeadlineMs: 60_000 } });

    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(await seedKey(), (await testStream({ seed: 221 })).bytes));

    expect(response.status).toBe(200);
    expect(origin.requests).toHaveLength(3);
    // random() = 0.5: 2 s plus a quarter (jitter up to half), not the 50 and 100 ms of the backoff.
    expect(origin.sleeps).toEqual([2500, 2500]);
  });

  it('answers 503 ORIGIN_OVERLOADED with the origin\'s Retry-After when the deadline leaves no room to wait', async () => {
    const origin = fakeOrigin(() => new Response('at capacity', { status: 503, headers: { 'retry-after': '20' } }));
    const edge = testEdge({ origin: origin.deps, config: { originDeadlineMs: 10_000 } });

    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(await seedKey(), (await testStream({ seed: 222 })).bytes));

    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('20');
    expect(await problemOf(response)).toMatchObject({ type: 'https://latentsight.dev/problems/origin-unavailable', code: 'ORIGIN_OVERLOADED', retry_after: 20 });
    expect(origin.requests).toHaveLength(1);
    expect(origin.sleeps).toEqual([]);
  });

  it('does not open the breaker for an origin at capacity: it is up, and serves what it can', async () => {
    let full = true;
    const origin = fakeOrigin((request) => (full ? new Response('at capacity', { status: 503, headers: { 'retry-after': '1' } }) : wellBehaved(request)));
    const edge = testEdge({ origin: origin.deps, config: { originAttempts: 1 } });
    const key = await seedKey();

    // Twice the breaker's threshold of consecutive failed attempts (5).
    for (let i = 0; i < 10; i++) {
      const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, (await testStream({ seed: 230 + i })).bytes));
      expect((await problemOf(response)).code).toBe('ORIGIN_OVERLOADED');
    }
    full = false;
    const served = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, (await testStream({ seed: 240 })).bytes));

    expect(served.status).toBe(200);
    expect(origin.requests).toHaveLength(11);
  });

  it('retries a network error', async () => {
    const origin = fakeOrigin((request, attempt) => (attempt === 1 ? 'network-error' : wellBehaved(request)));
    const edge = testEdge({ origin: origin.deps });

    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(await seedKey(), (await testStream({ seed: 202 })).bytes));

    expect(response.status).toBe(200);
    expect(origin.requests).toHaveLength(2);
  });

  it('answers 503 with Retry-After when the origin stays down, after a bounded number of attempts', async () => {
    const origin = fakeOrigin(() => 'network-error');
    const edge = testEdge({ origin: origin.deps, config: { originAttempts: 3, unavailableRetryAfterSeconds: 7 } });

    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(await seedKey(), (await testStream({ seed: 203 })).bytes));

    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('7');
    const body = await problemOf(response);
    expect(body).toMatchObject({ type: 'https://latentsight.dev/problems/origin-unavailable', code: 'ORIGIN_UNAVAILABLE', retry_after: 7 });
    expect(origin.requests).toHaveLength(3);
  });

  it('gives up on an origin that does not answer within the timeout', async () => {
    const origin = fakeOrigin(() => 'hang');
    const edge = testEdge({ origin: origin.deps, config: { originTimeoutMs: 30, originDeadlineMs: 200, originAttempts: 2 } });

    const started = Date.now();
    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(await seedKey(), (await testStream({ seed: 204 })).bytes));

    expect(response.status).toBe(503);
    expect((await problemOf(response)).code).toBe('ORIGIN_TIMEOUT');
    expect(origin.requests).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('does not retry a 4xx from the origin, and answers 502', async () => {
    const origin = fakeOrigin(() => new Response('no such model', { status: 404 }));
    const edge = testEdge({ origin: origin.deps });
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});

    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(await seedKey(), (await testStream({ seed: 205 })).bytes));

    expect(response.status).toBe(502);
    expect(await problemOf(response)).toMatchObject({ type: 'https://latentsight.dev/problems/bad-gateway', code: 'ORIGIN_REJECTED' });
    expect(origin.requests).toHaveLength(1);
    logged.mockRestore();
  });

  it.each([
    ['a body that is not KServe', 211, () => new Response('<html>gateway</html>', { headers: { 'inference-header-content-length': '5' } })],
    ['a class index beyond the labels', 212, () => binaryResponse(classifierOutputs([99, 0, 1, 2, 3]))],
    ['scores and classes of different lengths', 213, () => binaryResponse(classifierOutputs([0, 1], [0.5, 0.3, 0.2]))],
    ['a missing output', 214, () => binaryResponse(classifierOutputs().slice(0, 1))],
  ])('answers 502 for %s, without caching it', async (_, seed, respond) => {
    const origin = fakeOrigin(respond);
    const edge = testEdge({ origin: origin.deps });
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    const key = await seedKey();
    const { bytes } = await testStream({ seed });

    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes));
    expect(response.status).toBe(502);
    expect((await problemOf(response)).code).toBe('ORIGIN_BAD_RESPONSE');
    const good = testEdge();
    expect((await (await good.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes))).json<any>()).cache).toBe('miss');
    logged.mockRestore();
  });

  it('reads plain-JSON responses (data arrays) as well as binary ones', async () => {
    const origin = fakeOrigin(() => jsonResponse(classifierOutputs([4, 3, 2, 1, 0])));
    const edge = testEdge({ origin: origin.deps });

    const body = await (await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(await seedKey(), (await testStream({ seed: 207 })).bytes))).json<any>();

    expect(body.results.classify.top.map((t: { id: string }) => t.id)).toEqual(['c4', 'c3', 'c2', 'c1', 'c0']);
  });

  it('refuses to send unsigned requests when ORIGIN_HMAC_SECRET is not set', async () => {
    const edge = testEdge();
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});

    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(await seedKey(), (await testStream({ seed: 208 })).bytes), {
      ...testEnv,
      ORIGIN_HMAC_SECRET: undefined,
    });

    expect(response.status).toBe(500);
    expect((await problemOf(response)).code).toBe('ORIGIN_NOT_CONFIGURED');
    expect(edge.origin!.requests).toEqual([]);
    logged.mockRestore();
  });
});

describe('the circuit breaker', () => {
  it('opens after repeated failures, sheds requests with 503 and Retry-After, then probes and closes', async () => {
    let down = true;
    const origin = fakeOrigin((request) => (down ? 'network-error' : wellBehaved(request)));
    const edge = testEdge({ origin: origin.deps, config: { originAttempts: 1, breakerFailureThreshold: 2, breakerCooldownMs: 20_000 } });
    const key = await seedKey();
    const { bytes } = await testStream({ seed: 209 });
    const analyze = () => edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes));

    expect((await analyze()).status).toBe(503);
    const opening = await analyze();
    expect(opening.status).toBe(503);
    // The failure that opened the breaker already points the client at the end of the cooldown.
    expect(opening.headers.get('retry-after')).toBe('20');
    expect(origin.requests).toHaveLength(2);

    const shed = await analyze();
    expect(shed.status).toBe(503);
    expect((await problemOf(shed)).code).toBe('CIRCUIT_OPEN');
    expect(shed.headers.get('retry-after')).toBe('20');
    expect(origin.requests).toHaveLength(2);

    origin.clock.advance(15_000);
    expect((await analyze()).headers.get('retry-after')).toBe('5');

    origin.clock.advance(5_000);
    down = false;
    expect((await analyze()).status).toBe(200);
    expect(origin.requests).toHaveLength(3);
    expect((await analyze()).status).toBe(200);
  });

  it('reopens when the probe fails', async () => {
    const origin = fakeOrigin(() => 'network-error');
    const edge = testEdge({ origin: origin.deps, config: { originAttempts: 1, breakerFailureThreshold: 1, breakerCooldownMs: 10_000 } });
    const key = await seedKey();
    const { bytes } = await testStream({ seed: 210 });
    const analyze = () => edge.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes));

    await analyze();
    origin.clock.advance(10_000);
    const probe = await analyze();

    expect((await problemOf(probe)).code).toBe('ORIGIN_UNAVAILABLE');
    expect(probe.headers.get('retry-after')).toBe('10');
    expect(origin.requests).toHaveLength(2);
    expect((await problemOf(await analyze())).code).toBe('CIRCUIT_OPEN');
  });
});
