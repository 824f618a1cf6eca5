/**
 * Per-API-key rate limiting: a token bucket in a Durable Object, one object per key hash.
 *
 * Why a Durable Object and not the Workers rate-limit binding: the binding counts per Cloudflare
 * location and converges eventually, so a key used from several locations at once gets several
 * times its limit, and its period is fixed to 10 or 60 s; locally it is not emulated with real
 * counts, so tests could not assert a 429. One object per key is a single thread that every
 * request of the key passes through, wherever it comes from: the count is exact, the limit is the
 * key's own (`rate_limit_per_minute`), and the bucket survives restarts in the object's storage
 * (all but the last few takes: the reply does not wait for the write). The cost is one round trip
 * to the object per request, from the request's location.
 */
import { DurableObject } from 'cloudflare:workers';

/** What a request is told about its key's bucket. */
export interface RateDecision {
  allowed: boolean;
  /** The bucket's capacity: requests per minute. */
  limit: number;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Seconds until a token is available again (0 when allowed). */
  retryAfterSeconds: number;
  /** Seconds until the bucket is full again. */
  resetSeconds: number;
}

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date, in ms since the epoch. */
  updatedAt: number;
}

/**
 * The token bucket of one API key: capacity `limit` requests, refilled at `limit` per minute, so a
 * key may burst its whole minute's allowance and then sustain its rate.
 *
 * @example
 * const decision = await env.RATE_LIMITER.getByName(key.keyHash).take(key.rate_limit_per_minute ?? 60)
 */
export class RateLimiter extends DurableObject<Env> {
  #bucket: Bucket | undefined;

  /** Takes `cost` tokens if the bucket holds them. */
  take(limit: number, cost = 1): RateDecision {
    const now = Date.now();
    const bucket = (this.#bucket ??= this.ctx.storage.kv.get<Bucket>('bucket') ?? { tokens: limit, updatedAt: now });
    const perMs = limit / 60_000;
    // A lowered limit applies at once: the bucket never holds more than the current capacity.
    bucket.tokens = Math.min(limit, bucket.tokens + Math.max(0, now - bucket.updatedAt) * perMs);
    bucket.updatedAt = now;
    const allowed = bucket.tokens >= cost;
    if (allowed) bucket.tokens -= cost;
    // The object's memory is the bucket; storage is its copy for a restart. The reply does not wait
    // for that copy to be durable (allowUnconfirmed): a crash in between forgets at most the last
    // few takes, and a rate limit that errs by a request or two beats a disk flush on every request.
    // A failed write is not this request's failure: the bucket in memory is still right.
    this.ctx.storage.put('bucket', { ...bucket }, { allowUnconfirmed: true }).catch(() => {});
    return {
      allowed,
      limit,
      remaining: Math.floor(bucket.tokens),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((cost - bucket.tokens) / perMs / 1000)),
      resetSeconds: Math.ceil((limit - bucket.tokens) / perMs / 1000),
    };
  }
}
