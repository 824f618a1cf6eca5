// Integration tests: requests go through the Worker's own `fetch`, inside workerd.
import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';

const EDGE = 'http://edge.test';

describe('the edge Worker', () => {
  it('answers GET /healthz with 200 and {status: ok}', async () => {
    const response = await exports.default.fetch(`${EDGE}/healthz`);

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json\b/);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('answers an unknown route with a 404 problem+json naming the path', async () => {
    const response = await exports.default.fetch(`${EDGE}/v0/no-such-route?x=1`, { method: 'POST' });

    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(await response.json()).toEqual({
      type: 'https://latentsight.dev/problems/not-found',
      title: 'Not Found',
      status: 404,
      detail: 'No route matches POST /v0/no-such-route.',
      instance: '/v0/no-such-route',
      code: 'NOT_FOUND',
      request_id: response.headers.get('x-request-id'),
    });
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
