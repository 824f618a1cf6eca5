/**
 * Calling the edge app inside workerd with the real bindings (KV, R2, the rate limiter) and a
 * test registry and origin, and seeding API keys.
 */
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { createApp } from '../../../functions/edge/app.ts';
import type { AppDeps } from '../../../functions/edge/context.ts';
import { hex, sha256 } from '../../../functions/edge/digest.ts';
import { testRegistry } from './models.ts';
import { ORIGIN_SECRET, ORIGIN_URL, fakeOrigin, wellBehaved } from './origin.ts';

export const EDGE = 'http://edge.test';
export const BITSTREAM_TYPE = 'application/vnd.latentsight+bitstream';

/** The Worker's bindings, with the origin pointed at the fake and its secret set. */
export const testEnv = { ...env, ORIGIN_URL, ORIGIN_HMAC_SECRET: ORIGIN_SECRET } as Env;

/**
 * An app on the test registry and a fake origin (well-behaved unless told otherwise), with fast
 * retries; `fetch` waits for the work the app left to `waitUntil` (KV and R2 writes).
 */
export function testEdge(overrides: Partial<AppDeps> & { origin?: AppDeps['origin'] } = {}) {
  const origin = overrides.origin ? undefined : fakeOrigin(wellBehaved);
  const app = createApp({
    registry: testRegistry,
    ...overrides,
    origin: overrides.origin ?? origin!.deps,
    config: { originBackoffMs: 10, ...overrides.config },
  });
  return {
    origin,
    async fetch(path: string, init: RequestInit = {}, bindings: Env = testEnv): Promise<Response> {
      const ctx = createExecutionContext();
      const response = await app.fetch(new Request(`${EDGE}${path}`, init), bindings, ctx);
      await waitOnExecutionContext(ctx);
      return response;
    },
  };
}

/** Stores an API key record and returns the key, unique per call. */
export async function seedKey(record: { tenant?: string; scopes?: string[]; rate_limit_per_minute?: number; store_bitstreams?: boolean } = {}): Promise<string> {
  const key = `ls_test_${crypto.randomUUID().replaceAll('-', '')}`;
  const value = { tenant: 'acme', scopes: ['analyze'], rate_limit_per_minute: 1000, ...record };
  await env.API_KEYS.put(hex(await sha256(key)), JSON.stringify(value));
  return key;
}

/** Request init for POST /v1/analyze with a bitstream body. */
export function analyzeInit(key: string | undefined, body: BodyInit | null, headers: Record<string, string> = {}): RequestInit {
  return {
    method: 'POST',
    body,
    headers: { 'content-type': BITSTREAM_TYPE, ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
  };
}
