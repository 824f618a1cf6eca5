// Idempotency-Key on POST /v1/analyze and POST /v1/jobs, the SSRF guard on callback URLs, and
// re-evaluation of stored bitstreams (cron and admin) inside workerd.
import { describe, expect, it } from 'vitest';
import { checkCallbackUrl } from '../../functions/edge/callback-url.ts';
import { loadRegistry } from '../../functions/edge/registry.ts';
import { BITSTREAM_TYPE, seedKey } from './support/edge.ts';
import { registerEndpoint, testWorker } from './support/jobs.ts';
import { testManifest, testStream } from './support/models.ts';
import { type OriginRequest, binaryResponse, classifierOutputs, wellBehaved } from './support/origin.ts';

const tenantName = () => `t-${crypto.randomUUID().slice(0, 8)}`;
const analyzeInit = (key: string, body: Uint8Array, idem?: string): RequestInit => ({
  method: 'POST',
  body,
  headers: { authorization: `Bearer ${key}`, 'content-type': BITSTREAM_TYPE, ...(idem ? { 'idempotency-key': idem } : {}) },
});

describe('Idempotency-Key', () => {
  it('replays the first response for the same key and body, without analysing again', async () => {
    const t = testWorker();
    const key = await seedKey({ tenant: tenantName() });
    const { bytes } = await testStream({ seed: 1001 });
    const first = await t.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes, '"k-1001"'));
    const calls = t.origin.requests.length;
    const again = await t.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes, '"k-1001"'));

    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.text()).toBe(await first.text());
    expect(t.origin.requests.length).toBe(calls);
  });

  it('answers 422 for the same key with another body, and 400 for a malformed key', async () => {
    const t = testWorker();
    const key = await seedKey({ tenant: tenantName() });
    const a = await testStream({ seed: 1002 });
    const b = await testStream({ seed: 1003 });
    expect((await t.fetch('/v1/analyze?tasks=classify', analyzeInit(key, a.bytes, 'k-1002'))).status).toBe(200);
    const other = await t.fetch('/v1/analyze?tasks=classify', analyzeInit(key, b.bytes, 'k-1002'));
    expect(other.status).toBe(422);
    expect(await other.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    const otherQuery = await t.fetch('/v1/analyze?tasks=segment', analyzeInit(key, a.bytes, 'k-1002'));
    expect(otherQuery.status).toBe(422);
    const bad = await t.fetch('/v1/analyze?tasks=classify', analyzeInit(key, a.bytes, '"unterminated'));
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'INVALID_IDEMPOTENCY_KEY' });
  });

  it('answers 409 while the first request is still in flight', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const started = new Promise<void>((resolve) => (entered = resolve));
    const t = testWorker({
      behaviour: async (request: OriginRequest) => {
        entered();
        await gate;
        return wellBehaved(request) as Response;
      },
    });
    const key = await seedKey({ tenant: tenantName() });
    const { bytes } = await testStream({ seed: 1004 });
    const first = t.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes, 'k-1004'));
    await started;
    const second = await t.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes, 'k-1004'));
    release();

    expect(second.status).toBe(409);
    expect(await second.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_IN_USE', retry_after: 2 });
    expect((await first).status).toBe(200);
  });

  it('releases the key after a 5xx, so that a retry with it runs', async () => {
    const t = testWorker({ behaviour: () => 'network-error' });
    const key = await seedKey({ tenant: tenantName() });
    const { bytes } = await testStream({ seed: 1005 });
    expect((await t.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes, 'k-1005'))).status).toBe(503);
    t.setBehaviour(wellBehaved);
    const retried = await t.fetch('/v1/analyze?tasks=classify', analyzeInit(key, bytes, 'k-1005'));
    expect(retried.status).toBe(200);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
  });

  it('creates one job for two submissions with the same key', async () => {
    const t = testWorker();
    const key = await seedKey({ tenant: tenantName() });
    const { bytes } = await testStream({ seed: 1006 });
    const a = await (await t.fetch('/v1/jobs?tasks=classify', analyzeInit(key, bytes, 'job-1006'))).json<{ id: string }>();
    const b = await t.fetch('/v1/jobs?tasks=classify', analyzeInit(key, bytes, 'job-1006'));
    expect(b.status).toBe(202);
    expect((await b.json<{ id: string }>()).id).toBe(a.id);
    expect(t.queue.sent).toHaveLength(1);
  });
});

describe('callback URLs (SSRF)', () => {
  const production = { development: false };
  it.each([
    'https://127.0.0.1/', 'https://2130706433/', 'https://0x7f000001/', 'https://0177.0.0.1/', 'https://127.1/', 'https://017700000001/',
    'https://10.1.2.3/', 'https://172.16.0.1/', 'https://192.168.1.1/', 'https://100.64.0.1/', 'https://169.254.169.254/', 'https://0.0.0.0/',
    'https://224.0.0.1/', 'https://255.255.255.255/', 'https://[::1]/', 'https://[::]/', 'https://[::ffff:127.0.0.1]/', 'https://[::ffff:a9fe:a9fe]/',
    'https://[fe80::1]/', 'https://[fd00::1]/', 'https://[fc00::1]/', 'https://[64:ff9b::10.0.0.1]/', 'https://[2002:0a00:0001::1]/', 'https://[ff02::1]/',
    'https://localhost/', 'https://LOCALHOST./', 'https://api.localhost/', 'https://printer.local/', 'https://db.internal/', 'https://intranet/',
  ])('refuses %s in production', (url) => {
    expect(() => checkCallbackUrl(url, production)).toThrow(expect.objectContaining({ code: 'CALLBACK_URL_FORBIDDEN_HOST' }));
  });

  it('accepts public https hosts, and http to loopback only in development', () => {
    expect(checkCallbackUrl('https://hooks.example.com/a?b=1', production)).toBe('https://hooks.example.com/a?b=1');
    expect(checkCallbackUrl('https://8.8.8.8/', production)).toBe('https://8.8.8.8/');
    expect(checkCallbackUrl('https://[2606:4700::1111]/', production)).toBe('https://[2606:4700::1111]/');
    expect(() => checkCallbackUrl('http://127.0.0.1:9000/', production)).toThrow(expect.objectContaining({ code: 'CALLBACK_URL_SCHEME' }));
    expect(checkCallbackUrl('http://127.0.0.1:9000/hook', { development: true })).toBe('http://127.0.0.1:9000/hook');
    expect(checkCallbackUrl('http://localhost:9000/hook', { development: true })).toBe('http://localhost:9000/hook');
    expect(() => checkCallbackUrl('http://hooks.example.com/', { development: true })).toThrow(expect.objectContaining({ code: 'CALLBACK_URL_SCHEME' }));
    expect(() => checkCallbackUrl('x'.repeat(3000), production)).toThrow(expect.objectContaining({ code: 'CALLBACK_URL_INVALID' }));
  });
});

/** The test registry with the classifier at `version`. */
async function registryWithClassifier(version: string) {
  const { manifest, files } = await testManifest();
  const models = manifest.models.map((m) => (m.id === 'cls-test' ? { ...m, version } : m));
  const { registry } = await loadRegistry({ ...manifest, models }, files);
  return registry;
}

describe('re-evaluation', () => {
  it('on the cron, re-analyses stored bitstreams when the classifier is newer and sends analysis.updated where results changed', async () => {
    const v1 = await registryWithClassifier('1.0.0');
    const v2 = await registryWithClassifier('2.0.0');
    let registry = v1;
    const t = testWorker({ registry: async () => registry });
    const tenant = tenantName();
    const key = await seedKey({ tenant, store_bitstreams: true, scopes: ['analyze', 'admin'] });
    const url = `https://hooks.example.com/${tenant}`;
    await registerEndpoint(t, key, url, ['analysis.updated']);
    // One stream through a job (its models are recorded), one through the synchronous route (only cached).
    const job = await testStream({ seed: 1101 });
    const sync = await testStream({ seed: 1102 });
    expect((await t.fetch('/v1/jobs', analyzeInit(key, job.bytes))).status).toBe(202);
    expect((await t.fetch('/v1/analyze', analyzeInit(key, sync.bytes))).status).toBe(200);
    await t.drain();
    await t.scheduled(); // the models now served become the ones seen
    t.queue.sent.length = 0;
    await t.scheduled();
    expect(t.queue.sent).toEqual([]); // nothing newer: no run

    // Version 2 of the classifier ranks the classes the other way round.
    registry = v2;
    t.setBehaviour((request) => (request.url.pathname.includes('cls-test') ? binaryResponse(classifierOutputs([3, 1, 5, 0, 2])) : wellBehaved(request)));
    await t.scheduled();
    const [start] = t.queue.sent;
    expect(start.body).toMatchObject({ kind: 'reeval-page', page: 1 });
    await t.drain();

    const updates = t.receiver.received.filter((r) => r.url === url);
    expect(updates.every((u) => u.verified)).toBe(true);
    const events = updates.map((u) => u.event as { type: string; data: { bitstream_sha256: string; changed_tasks: string[]; models: { classify: { version: string } } } });
    expect(events.map((e) => e.type)).toEqual(['analysis.updated', 'analysis.updated']);
    expect(events.every((e) => e.data.changed_tasks.join() === 'classify' && e.data.models.classify.version === '2.0.0')).toBe(true);
    const runId = (start.body as { run: string }).run;
    const progress = await (await t.fetch(`/v1/admin/reevaluations/${runId}`, { headers: { authorization: `Bearer ${key}` } })).json<any>();
    expect(progress).toMatchObject({ status: 'completed', models: { previous: { 'fixture-c4/classify': 'cls-test@1.0.0' }, target: { 'fixture-c4/classify': 'cls-test@2.0.0' } } });
    expect(progress.progress.changed).toBeGreaterThanOrEqual(2);
    expect(progress.progress.done).toBe(progress.progress.queued);

    // An admin run for the tenant now finds both results current: listed, skipped, completed.
    const started = await t.fetch('/v1/admin/reevaluations', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tenant, from: '2020-01-01' }),
    });
    expect(started.status).toBe(202);
    const { id } = await started.json<{ id: string }>();
    await t.drain();
    const admin = await (await t.fetch(`/v1/admin/reevaluations/${id}`, { headers: { authorization: `Bearer ${key}` } })).json<any>();
    expect(admin).toMatchObject({ status: 'completed', scope: { tenant }, progress: { listed: 2, queued: 2, skipped: 2, changed: 0, done: 2 } });
  });

  it('refuses the admin routes to a key without the admin scope, and a bad date range', async () => {
    const t = testWorker();
    const plain = await seedKey({ tenant: tenantName() });
    const admin = await seedKey({ tenant: tenantName(), scopes: ['admin'] });
    const post = (key: string, body: unknown) =>
      t.fetch('/v1/admin/reevaluations', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await post(plain, {})).status).toBe(403);
    expect((await post(admin, { from: '2026-05-02', to: '2026-05-01' })).status).toBe(400);
    expect((await post(admin, { from: 'yesterday' })).status).toBe(400);
    expect(t.queue.sent).toEqual([]);
  });
});
