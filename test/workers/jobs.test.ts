// Async jobs end to end inside workerd: POST /v1/jobs -> the JOBS consumer -> the origin (a fake) ->
// the tenant's store -> signed webhooks verified by the `standardwebhooks` reference library.
import { describe, expect, it, vi } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { JOBS_DEFAULTS, webhookRetryDelay } from '../../functions/edge/background.ts';
import { BITSTREAM_TYPE, seedKey } from './support/edge.ts';
import { registerEndpoint, testWorker } from './support/jobs.ts';
import { testStream } from './support/models.ts';
import { wellBehaved } from './support/origin.ts';

const tenantName = () => `t-${crypto.randomUUID().slice(0, 8)}`;

function submitRaw(key: string, bytes: Uint8Array, headers: Record<string, string> = {}): RequestInit {
  return { method: 'POST', body: bytes, headers: { authorization: `Bearer ${key}`, 'content-type': BITSTREAM_TYPE, ...headers } };
}

async function setup() {
  const t = testWorker();
  const tenant = tenantName();
  const key = await seedKey({ tenant });
  const url = `https://hooks.example.com/${tenant}`;
  const endpoint = await registerEndpoint(t, key, url);
  const submit = async (seed: number, extra: Record<string, string> = {}) => {
    const { bytes } = await testStream({ seed });
    const init = submitRaw(key, bytes, extra);
    return t.fetch(`/v1/jobs?tasks=classify,segment&callback_url=${encodeURIComponent(url)}`, init);
  };
  const get = (path: string) => t.fetch(path, { headers: { authorization: `Bearer ${key}` } });
  return { t, tenant, key, url, endpoint, submit, get };
}

describe('POST /v1/jobs through the queue', () => {
  it('accepts a raw bitstream, runs it from the queue and sends one signed analysis.completed', async () => {
    const { t, submit, get, endpoint } = await setup();
    const accepted = await submit(701);
    expect(accepted.status).toBe(202);
    const { id, status } = await accepted.json<{ id: string; status: string }>();
    expect(status).toBe('queued');
    expect(accepted.headers.get('location')).toBe(`/v1/jobs/${id}`);
    expect(t.queue.sent.map((m) => m.body)).toEqual([{ kind: 'job', tenant: expect.any(String), id }]);

    await t.drain();

    const job = await (await get(`/v1/jobs/${id}`)).json<any>();
    expect(job).toMatchObject({ id, status: 'completed', tasks: ['classify', 'segment'], attempts: 1 });
    expect(job.results.classify.top).toHaveLength(5);
    expect(job.results.segment).toMatchObject({ width: 37, height: 21 });
    expect(job.models).toEqual({ classify: { id: 'cls-test', version: '1.0.0' }, segment: { id: 'seg-test', version: '1.0.0' } });
    expect(t.receiver.received).toHaveLength(1);
    const [delivery] = t.receiver.received;
    expect(delivery.verified).toBe(true);
    expect(delivery.id).toMatch(/^msg_/);
    expect(delivery.signature).toMatch(/^v1,[A-Za-z0-9+/=]+$/);
    expect(delivery.event).toMatchObject({ type: 'analysis.completed', data: { job_id: id, status: 'completed', results: job.results } });
    const log = await (await get(`/v1/jobs/${id}/deliveries`)).json<any>();
    expect(log.deliveries).toEqual([
      expect.objectContaining({ endpoint_id: endpoint.id, webhook_id: delivery.id, status: 'delivered', attempts: [expect.objectContaining({ attempt: 1, status_code: 200, error: null })] }),
    ]);
  });

  it('acknowledges a redelivered job message without running the job or sending its event again', async () => {
    const { t, submit } = await setup();
    await submit(702);
    const [message] = t.queue.sent;
    await t.drain();
    const originCalls = t.origin.requests.length;
    t.queue.pending.push({ ...message, attempts: 2 });

    const [outcome] = await t.drain();

    expect(outcome).toEqual({ acked: 1, retried: 0 });
    expect(t.origin.requests.length).toBe(originCalls);
    expect(t.receiver.received).toHaveLength(1);
  });

  it('takes the JSON form with metadata, which every event echoes', async () => {
    const { t, key, url } = await setup();
    const { bytes } = await testStream({ seed: 703 });
    const bitstream = btoa(String.fromCharCode(...bytes));
    const response = await t.fetch('/v1/jobs', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ bitstream, tasks: ['classify'], callback_url: url, metadata: { order: 42 } }),
    });
    expect(response.status).toBe(202);
    await t.drain();
    expect(t.receiver.received[0].event).toMatchObject({ type: 'analysis.completed', data: { metadata: { order: 42 } } });
    expect(Object.keys((t.receiver.received[0].event!.data as { results: object }).results)).toEqual(['classify']);
  });

  it.each([
    ['not JSON', '{', 400, 'INVALID_JSON'],
    ['an unknown member', { bitstream: 'AAAA', colour: 1 }, 400, 'INVALID_FIELD'],
    ['bad base64', { bitstream: '!!!' }, 400, 'INVALID_FIELD'],
    ['an unknown task', { bitstream: 'AAAA', tasks: ['colour'] }, 400, 'UNKNOWN_TASK'],
    ['too much metadata', { bitstream: 'AAAA', metadata: { blob: 'x'.repeat(5000) } }, 413, 'METADATA_TOO_LARGE'],
    ['a bitstream that is not one', { bitstream: btoa('hello world, not a stream') }, 422, 'BAD_MAGIC'],
    ['an unregistered callback_url', 'stream+https://elsewhere.example.com/hook', 422, 'CALLBACK_URL_NOT_REGISTERED'],
    ['a private callback_url', 'stream+https://10.0.0.7/hook', 422, 'CALLBACK_URL_FORBIDDEN_HOST'],
  ])('refuses %s before queuing anything', async (_name, body, status, code) => {
    const { t, key } = await setup();
    let payload: string;
    if (typeof body === 'string' && body.startsWith('stream+')) {
      const { bytes } = await testStream({ seed: 704 });
      payload = JSON.stringify({ bitstream: btoa(String.fromCharCode(...bytes)), callback_url: body.slice(7) });
    } else payload = typeof body === 'string' ? body : JSON.stringify(body);
    const response = await t.fetch('/v1/jobs', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: payload });
    expect(response.status).toBe(status);
    expect(await response.json()).toMatchObject({ code });
    expect(t.queue.sent).toEqual([]);
  });

  it("answers 404 for another tenant's job", async () => {
    const a = await setup();
    const { id } = await (await a.submit(705)).json<{ id: string }>();
    const otherKey = await seedKey({ tenant: tenantName() });
    const response = await a.t.fetch(`/v1/jobs/${id}`, { headers: { authorization: `Bearer ${otherKey}` } });
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ code: 'JOB_NOT_FOUND' });
  });
});

describe('an origin outage', () => {
  it('loses no job: jobs wait with growing backoff while the origin is down and all complete once it is back', async () => {
    const { t, submit, get } = await setup();
    t.setBehaviour(() => 'network-error');
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await (await submit(800 + i)).json<{ id: string }>()).id);

    // Three rounds of attempts while the origin is down (20 jobs: 2 batches a round).
    const down = await t.drain(6);
    expect(down.every((o) => o.retried === 0)).toBe(true);
    const waiting = await Promise.all(ids.map(async (id) => (await get(`/v1/jobs/${id}`)).json<any>()));
    expect(waiting.every((j) => j.status === 'queued' && /^(ORIGIN_UNAVAILABLE|CIRCUIT_OPEN)$/.test(j.last_error.code))).toBe(true);
    expect(t.receiver.received).toEqual([]);
    // Each job's re-sent messages: backoff 10 s * 2^(n-1) with equal jitter (random 0.5 -> 3/4 of it).
    const delays = t.queue.sent.filter((m) => m.body.kind === 'job' && m.body.id === ids[0]).map((m) => m.delaySeconds);
    expect(delays).toEqual([0, 8, 15, 30]);

    t.setBehaviour(wellBehaved);
    t.origin.clock.advance(60_000); // past the breaker's cooldown
    await t.drain();

    const jobs = await Promise.all(ids.map(async (id) => (await get(`/v1/jobs/${id}`)).json<any>()));
    expect(jobs.map((j) => j.status)).toEqual(ids.map(() => 'completed'));
    const events = t.receiver.received.filter((r) => r.verified && r.event?.type === 'analysis.completed');
    expect(new Set(events.map((e) => (e.event!.data as { job_id: string }).job_id))).toEqual(new Set(ids));
    expect(new Set(events.map((e) => e.id)).size).toBe(20);
    expect(t.receiver.received).toHaveLength(20);
    expect(t.dlq.sent).toEqual([]);
  });
});

describe('webhook deliveries', () => {
  it('retries a failed delivery under the same webhook-id and body, and logs both attempts', async () => {
    const { t, submit, get } = await setup();
    t.receiver.respondWith((_r, nth) => (nth === 1 ? 500 : 200));
    const { id } = await (await submit(901)).json<{ id: string }>();

    await t.drain();

    const [first, second] = t.receiver.received;
    expect(t.receiver.received).toHaveLength(2);
    expect(second.id).toBe(first.id);
    expect(second.body).toBe(first.body);
    expect(first.verified && second.verified).toBe(true);
    const retry = t.queue.sent.find((m) => m.body.kind === 'delivery' && m.body.attempt === 2)!;
    expect(retry.delaySeconds).toBe(5); // 5 s * 4^0, jitter factor 0.8 + 0.4 * 0.5 = 1
    const log = await (await get(`/v1/jobs/${id}/deliveries`)).json<any>();
    expect(log.deliveries[0].status).toBe('delivered');
    expect(log.deliveries[0].attempts.map((a: { status_code: number }) => a.status_code)).toEqual([500, 200]);
  });

  it('keeps retrying for at least 24 hours with exponential backoff, then dead-letters the delivery', async () => {
    const { t, submit, get } = await setup();
    t.receiver.respondWith(() => 503);
    const { id } = await (await submit(902)).json<{ id: string }>();

    await t.drain();

    const delays = t.queue.sent.filter((m) => m.body.kind === 'delivery' && m.body.attempt > 1).map((m) => m.delaySeconds);
    expect(delays).toEqual([5, 20, 80, 320, 1280, 5120, 20480, 36000, 36000]);
    expect(delays.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(24 * 3600);
    expect(new Set(t.receiver.received.map((r) => r.id)).size).toBe(1);
    expect(t.receiver.received).toHaveLength(10);
    const log = await (await get(`/v1/jobs/${id}/deliveries`)).json<any>();
    expect(log.deliveries[0]).toMatchObject({ status: 'dead', next_attempt_at: null });
    expect(log.deliveries[0].attempts).toHaveLength(10);
    expect(t.dlq.sent.map((m) => m.body)).toEqual([expect.objectContaining({ kind: 'delivery', id: log.deliveries[0].id, attempt: 10 })]);
  });

  it('jitters webhook retry delays by up to 20 % either way', () => {
    expect(webhookRetryDelay(1, JOBS_DEFAULTS)).toBe(5);
    expect(webhookRetryDelay(9, JOBS_DEFAULTS)).toBe(36000);
    expect(webhookRetryDelay(10, JOBS_DEFAULTS)).toBeUndefined();
  });

  it('signs with both secrets after a rotation, so a receiver holding either one verifies', async () => {
    const { t, key, endpoint, url, submit } = await setup();
    const rotated = await t.fetch(`/v1/webhooks/${endpoint.id}/rotate`, { method: 'POST', headers: { authorization: `Bearer ${key}` } });
    expect(rotated.status).toBe(200);
    const { secret, previous_secret_expires_at } = await rotated.json<{ secret: string; previous_secret_expires_at: string }>();
    expect(secret).toMatch(/^whsec_/);
    expect(secret).not.toBe(endpoint.secret);
    expect(Date.parse(previous_secret_expires_at)).toBeGreaterThan(Date.now());
    t.receiver.secrets.set(url, [secret]);
    await submit(903);
    await t.drain();

    const [r] = t.receiver.received;
    expect(r.signature.split(' ')).toHaveLength(2);
    const headers = { 'webhook-id': r.id, 'webhook-timestamp': r.timestamp, 'webhook-signature': r.signature };
    expect(() => new Webhook(secret).verify(r.body, headers)).not.toThrow();
    expect(() => new Webhook(endpoint.secret).verify(r.body, headers)).not.toThrow();
  });

  it('gives signatures that the reference library rejects when replayed late, re-timed or on another body', async () => {
    const { t, submit, endpoint } = await setup();
    await submit(904);
    await t.drain();
    const [r] = t.receiver.received;
    const wh = new Webhook(endpoint.secret);
    const headers = { 'webhook-id': r.id, 'webhook-timestamp': r.timestamp, 'webhook-signature': r.signature };
    expect(() => wh.verify(r.body, headers)).not.toThrow();
    expect(() => wh.verify(r.body.replace('completed', 'failed'), headers)).toThrow();
    expect(() => wh.verify(r.body, { ...headers, 'webhook-timestamp': String(Number(r.timestamp) + 1) })).toThrow();
    expect(() => wh.verify(r.body, { ...headers, 'webhook-id': 'msg_other' })).toThrow();
    const now = vi.spyOn(Date, 'now').mockReturnValue(Number(r.timestamp) * 1000 + 6 * 60 * 1000);
    try {
      expect(() => wh.verify(r.body, headers)).toThrow(/too old/i);
    } finally {
      now.mockRestore();
    }
  });

  it('sends a delivery signed 10 minutes late, which the receiver refuses, again with a fresh timestamp', async () => {
    const { t, submit } = await setup();
    await submit(905);
    // Drain the job only (its delivery message stays queued), then sign the delivery with a stale clock.
    await t.drain(1);
    t.clock.skipped = -10 * 60 * 1000;
    t.receiver.respondWith((r) => (r.verified ? 200 : 400));
    await t.drain(1);
    t.clock.skipped = 0;
    await t.drain();

    const [late, fresh] = t.receiver.received;
    expect(late.verified).toBe(false);
    expect(fresh.verified).toBe(true);
    expect(fresh.id).toBe(late.id);
  });
});

describe('webhook endpoints', () => {
  it('lists and deletes endpoints of the tenant only, without secrets', async () => {
    const { t, key, endpoint } = await setup();
    const other = await seedKey({ tenant: tenantName() });
    const list = await (await t.fetch('/v1/webhooks', { headers: { authorization: `Bearer ${key}` } })).json<any>();
    expect(list.data).toEqual([expect.objectContaining({ id: endpoint.id, url: endpoint.url, events: ['analysis.completed', 'analysis.failed', 'analysis.updated'] })]);
    expect(JSON.stringify(list)).not.toContain('whsec_');
    expect((await t.fetch(`/v1/webhooks/${endpoint.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${other}` } })).status).toBe(404);
    expect((await t.fetch(`/v1/webhooks/${endpoint.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } })).status).toBe(204);
    const after = await (await t.fetch('/v1/webhooks', { headers: { authorization: `Bearer ${key}` } })).json<any>();
    expect(after.data).toEqual([]);
  });

  it.each([
    ['http://hooks.example.com/x', 'CALLBACK_URL_SCHEME'],
    ['https://127.0.0.1/x', 'CALLBACK_URL_FORBIDDEN_HOST'],
    ['https://localhost/x', 'CALLBACK_URL_FORBIDDEN_HOST'],
    ['https://[::1]/x', 'CALLBACK_URL_FORBIDDEN_HOST'],
    ['https://169.254.169.254/latest/meta-data', 'CALLBACK_URL_FORBIDDEN_HOST'],
    ['ftp://hooks.example.com/x', 'CALLBACK_URL_SCHEME'],
    ['https://user:pw@hooks.example.com/x', 'CALLBACK_URL_INVALID'],
  ])('refuses to register %s', async (url, code) => {
    const { t, key } = await setup();
    const response = await t.fetch('/v1/webhooks', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ url }) });
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({ type: 'https://latentsight.dev/problems/invalid-callback-url', code });
  });

  it('refuses unknown event types and an eleventh endpoint', async () => {
    const { t, key } = await setup();
    const post = (body: unknown) => t.fetch('/v1/webhooks', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await post({ url: 'https://hooks.example.com/a', events: ['analysis.exploded'] })).status).toBe(400);
    for (let i = 1; i < 10; i++) expect((await post({ url: `https://hooks.example.com/${i}` })).status).toBe(201);
    const eleventh = await post({ url: 'https://hooks.example.com/11' });
    expect(eleventh.status).toBe(409);
    expect(await eleventh.json()).toMatchObject({ code: 'WEBHOOK_LIMIT' });
  });
});
