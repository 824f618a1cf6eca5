/**
 * What an isolate remembers between requests: valid API keys for as long as KV's edge cache may
 * serve them (60 s), and results by their content-addressed key, so that repeated hits skip KV.
 */
import { describe, expect, it, vi } from 'vitest';
import { authenticate } from '../../functions/edge/auth.ts';
import { RECENT_RESULTS, getResult, putResult } from '../../functions/edge/cache.ts';

/** A KV namespace in memory that counts its reads. */
function countingKv(entries: Record<string, string> = {}) {
  const values = new Map(Object.entries(entries));
  const calls = { get: 0, put: 0 };
  const kv = {
    async get(key: string, options?: unknown) {
      calls.get++;
      const value = values.get(key);
      const type = typeof options === 'string' ? options : (options as { type?: string } | undefined)?.type;
      return value === undefined ? null : type === 'json' ? JSON.parse(value) : value;
    },
    async put(key: string, value: string) {
      calls.put++;
      values.set(key, value);
    },
  } as unknown as KVNamespace;
  return { kv, calls, values };
}

async function hashOf(key: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(key)));
  return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
}

describe('API keys', () => {
  it('reads a valid key once per minute per isolate; a revocation takes effect within that minute', async () => {
    const secret = 'ls_memo_valid_key_0001';
    const { kv, calls, values } = countingKv({ [await hashOf(secret)]: JSON.stringify({ tenant: 't', scopes: ['analyze'] }) });
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(new Date('2026-11-26T12:00:00Z'));
      expect((await authenticate(`Bearer ${secret}`, kv)).tenant).toBe('t');
      expect((await authenticate(`Bearer ${secret}`, kv)).tenant).toBe('t');
      expect(calls.get).toBe(1);

      values.clear(); // revoked
      vi.setSystemTime(new Date('2026-11-26T12:00:59Z'));
      expect((await authenticate(`Bearer ${secret}`, kv)).tenant).toBe('t');
      vi.setSystemTime(new Date('2026-11-26T12:01:01Z'));
      await expect(authenticate(`Bearer ${secret}`, kv)).rejects.toMatchObject({ code: 'INVALID_API_KEY' });
      expect(calls.get).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('does not remember an unknown key: one created after a 401 works at once', async () => {
    const secret = 'ls_memo_late_key_0002';
    const { kv, values } = countingKv();
    await expect(authenticate(`Bearer ${secret}`, kv)).rejects.toMatchObject({ code: 'INVALID_API_KEY' });
    values.set(await hashOf(secret), JSON.stringify({ tenant: 'late', scopes: [] }));
    expect((await authenticate(`Bearer ${secret}`, kv)).tenant).toBe('late');
  });

  it('keeps namespaces apart: a key valid in one is not valid in another', async () => {
    const secret = 'ls_memo_scoped_key_0003';
    const { kv } = countingKv({ [await hashOf(secret)]: JSON.stringify({ tenant: 'a', scopes: [] }) });
    expect((await authenticate(`Bearer ${secret}`, kv)).tenant).toBe('a');
    await expect(authenticate(`Bearer ${secret}`, countingKv().kv)).rejects.toMatchObject({ code: 'INVALID_API_KEY' });
  });
});

describe('results', () => {
  it('serves a result it wrote or read again without KV, per namespace', async () => {
    const { kv, calls } = countingKv();
    await putResult(kv, 'cls@1:aa', { classify: { top: [] } }, 60);
    expect(await getResult(kv, 'cls@1:aa')).toEqual({ v: 1, results: { classify: { top: [] } } });
    expect(calls.get).toBe(0);

    const other = countingKv({ 'cls@1:bb': JSON.stringify({ v: 1, results: { classify: 1 } }) });
    expect(await getResult(other.kv, 'cls@1:aa')).toBeUndefined();
    expect(await getResult(other.kv, 'cls@1:bb')).toEqual({ v: 1, results: { classify: 1 } });
    expect(await getResult(other.kv, 'cls@1:bb')).toEqual({ v: 1, results: { classify: 1 } });
    expect(other.calls.get).toBe(2); // the miss, then the first read of bb
  });

  it('keeps within its size budget, and does not remember an entry too large for it', async () => {
    const { kv, calls } = countingKv();
    const mask = 'x'.repeat(Math.floor(RECENT_RESULTS.maxChars / 20)); // about 1/20 of the budget each
    for (let i = 0; i < 25; i++) await putResult(kv, `seg@1:${i}`, { segment: { mask, i } }, 60);
    await getResult(kv, 'seg@1:24');
    expect(calls.get).toBe(0);
    await getResult(kv, 'seg@1:0'); // pushed out by size long before 512 entries
    expect(calls.get).toBe(1);

    await putResult(kv, 'seg@1:huge', { segment: { mask: 'x'.repeat(RECENT_RESULTS.maxChars / 8) } }, 60);
    expect(await getResult(kv, 'seg@1:huge')).toBeDefined();
    expect(calls.get).toBe(2);
  });

  it('forgets the least recently used beyond 512 results', async () => {
    const { kv, calls } = countingKv();
    for (let i = 0; i < 513; i++) await putResult(kv, `cls@1:${i}`, { i }, 60);
    await getResult(kv, 'cls@1:512');
    expect(calls.get).toBe(0);
    expect(await getResult(kv, 'cls@1:0')).toEqual({ v: 1, results: { i: 0 } }); // back from KV
    expect(calls.get).toBe(1);
  });
});
