/**
 * `Idempotency-Key` on POST routes (draft-ietf-httpapi-idempotency-key-header): a client that
 * retries a request with the same key gets the first request's response instead of a second
 * execution.
 *
 * - The key is a Structured Field string (`Idempotency-Key: "8e03978e-..."`); a bare token of the
 *   same characters is accepted too. 1-255 printable ASCII characters; anything else is a 400.
 * - Keys are scoped to the API key and the route: one object of the `IdempotencyKeys` Durable
 *   Object per (API key hash, method and path, key), so the lock and the stored response are
 *   strongly consistent wherever the retries arrive.
 * - The request's fingerprint is the SHA-256 of its method, path, query, content type and body. The
 *   same key with another fingerprint is a 422; while the first request is still being processed a
 *   retry gets a 409; afterwards the stored response (status, content type, body) is replayed with
 *   `Idempotent-Replayed: true`.
 * - A 5xx or 429 response is not stored (the key is released: retrying may succeed); a response
 *   over `MAX_STORED_RESPONSE_BYTES` is not stored either. Keys expire `KEY_TTL_MS` after first use.
 */
import { DurableObject } from 'cloudflare:workers';
import type { MiddlewareHandler } from 'hono';
import { authenticate } from './auth.ts';
import { concat } from '../../src/protocol/body.ts';
import { readBodyBounded } from './body.ts';
import type { AppEnv } from './context.ts';
import { hex, sha256 } from './digest.ts';
import { ProblemError } from './problem.ts';

/** Stored keys (and their responses) are forgotten this long after first use. */
export const KEY_TTL_MS = 24 * 3600 * 1000;
/** A request holding a key this long without finishing is presumed dead: its key may be taken again. */
export const LOCK_LEASE_MS = 5 * 60 * 1000;
/** Largest response stored for replay. */
export const MAX_STORED_RESPONSE_BYTES = 1024 * 1024;

const KEY_SYNTAX = /^[\x20-\x7e]{1,255}$/;

/** A response kept for replay. */
export interface StoredResponse {
  status: number;
  contentType: string | null;
  body: string;
}

/** What `begin` decided. */
export type Begin = { state: 'new' } | { state: 'in-flight' } | { state: 'mismatch' } | { state: 'replay'; response: StoredResponse };

interface Entry {
  fingerprint: string;
  startedAt: number;
  response?: StoredResponse;
}

/**
 * One idempotency key: its request's fingerprint, its lock and, once done, its response.
 *
 * @example
 * const decision = await env.IDEMPOTENCY.getByName(name).begin(fingerprint, Date.now())
 */
export class IdempotencyKeys extends DurableObject<Env> {
  /** Takes the key for a request with `fingerprint`, or says why not. */
  async begin(fingerprint: string, now: number): Promise<Begin> {
    const entry = this.ctx.storage.kv.get<Entry>('entry');
    if (entry && entry.fingerprint !== fingerprint) return { state: 'mismatch' };
    if (entry?.response) return { state: 'replay', response: entry.response };
    if (entry && now - entry.startedAt < LOCK_LEASE_MS) return { state: 'in-flight' };
    this.ctx.storage.kv.put('entry', { fingerprint, startedAt: now } satisfies Entry);
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now + KEY_TTL_MS);
    return { state: 'new' };
  }

  /** Stores the response of the request holding the key, or releases the key (`null`). */
  finish(fingerprint: string, response: StoredResponse | null): void {
    const entry = this.ctx.storage.kv.get<Entry>('entry');
    if (!entry || entry.fingerprint !== fingerprint || entry.response) return;
    if (response) this.ctx.storage.kv.put('entry', { ...entry, response } satisfies Entry);
    else this.ctx.storage.kv.delete('entry');
  }

  /** The key expires. */
  override async alarm(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }
}

/**
 * Middleware for a POST route: with an `Idempotency-Key` header, runs the route at most once per
 * key and fingerprint and replays its response; without one, does nothing. `maxBodyBytes` bounds
 * the body it reads to fingerprint (413 above it).
 *
 * @example
 * app.post('/v1/jobs', idempotent((c) => jobBodyLimit(c)), createJob)
 */
export function idempotent(maxBodyBytes: (env: Env) => number): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header('idempotency-key');
    if (header === undefined || c.req.method !== 'POST') return next();
    const key = parseKey(header);
    let apiKey;
    try {
      apiKey = await authenticate(c.req.header('authorization'), c.env.API_KEYS);
    } catch {
      // The route answers the 401 itself; nothing is executed, so there is nothing to remember.
      return next();
    }
    const bytes = await readBodyBounded(c.req.raw, maxBodyBytes(c.env));
    const url = new URL(c.req.url);
    const prefix = new TextEncoder().encode(`${c.req.method}\n${url.pathname}\n${url.search}\n${c.req.header('content-type') ?? ''}\n`);
    const fingerprint = hex(await sha256(concat([prefix, bytes], prefix.length + bytes.length)));
    const stub = c.env.IDEMPOTENCY.getByName(`${apiKey.keyHash}\n${c.req.method} ${url.pathname}\n${key}`);
    const decision = await stub.begin(fingerprint, Date.now());
    if (decision.state === 'mismatch') {
      throw new ProblemError('idempotency-key-reused', 'IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used with a different request; send a new key for a new request.');
    }
    if (decision.state === 'in-flight') {
      throw new ProblemError('idempotency-key-in-use', 'IDEMPOTENCY_KEY_IN_USE', 'A request with this Idempotency-Key is still being processed; retry in a few seconds.', {
        headers: { 'retry-after': '2' },
        members: { retry_after: 2 },
      });
    }
    if (decision.state === 'replay') {
      const { status, contentType, body } = decision.response;
      c.res = new Response(body, { status, headers: { ...(contentType ? { 'content-type': contentType } : {}), 'idempotent-replayed': 'true', 'cache-control': 'no-store' } });
      return;
    }
    // The route reads the body again: hand it the bytes already read.
    c.req.raw = new Request(c.req.raw, { body: bytes.length ? bytes : null });
    let stored: StoredResponse | null = null;
    try {
      await next();
      const res = c.res;
      if (res.status < 500 && res.status !== 429) {
        const body = await res.clone().text();
        if (body.length <= MAX_STORED_RESPONSE_BYTES) stored = { status: res.status, contentType: res.headers.get('content-type'), body };
      }
    } finally {
      await stub.finish(fingerprint, stored);
    }
  };
}

/**
 * The key of an `Idempotency-Key` header: an sf-string, or a bare token. Throws a 400 `ProblemError`.
 *
 * @example
 * parseKey('"8e03978e-40d5-43e8-bc93-6894a57f9324"') // '8e03978e-40d5-43e8-bc93-6894a57f9324'
 */
export function parseKey(header: string): string {
  const value = header.trim();
  const quoted = /^"((?:[^"\\]|\\["\\])*)"$/.exec(value);
  const key = quoted ? quoted[1].replace(/\\(["\\])/g, '$1') : value;
  if (!KEY_SYNTAX.test(key) || (!quoted && /["\\\s]/.test(key))) {
    throw new ProblemError('invalid-request', 'INVALID_IDEMPOTENCY_KEY', 'Idempotency-Key must be a string of 1 to 255 printable ASCII characters, e.g. "8e03978e-40d5-43e8-bc93-6894a57f9324".');
  }
  return key;
}
