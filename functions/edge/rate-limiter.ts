/**
 * Per-API-key rate limiting: a token bucket in a Durable Object, one object per key hash. Isolates
 * do not ask it once per request: they lease tokens from it (`rate-limit.ts`), so that a busy key
 * costs one round trip per lease, and a hit from the isolate's memory touches no binding at all.
 *
 * Why a Durable Object and not the Workers rate-limit binding: the binding counts per Cloudflare
 * location and converges eventually, so a key used from several locations at once gets several
 * times its limit, and its period is fixed to 10 or 60 s; locally it is not emulated with real
 * counts, so tests could not assert a 429. One object per key is a single thread that every
 * lease of the key passes through, wherever it comes from: no request is admitted without a token
 * the object granted, the limit is the key's own (`rate_limit_per_minute`), and the bucket survives
 * restarts in the object's storage (all but the last few grants: the reply does not wait for the
 * write).
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

/** A lease: the tokens granted (0: denied) and the bucket as the grant left it. */
export interface LeaseGrant extends RateDecision {
  granted: number;
}

/**
 * The token bucket of one API key: capacity `limit` requests, refilled at `limit` per minute, so a
 * key may burst its whole minute's allowance and then sustain its rate.
 *
 * @example
 * const grant = await env.RATE_LIMITER.getByName(key.keyHash).lease(key.rate_limit_per_minute ?? 60, 1)
 */
export class RateLimiter extends DurableObject<Env> {
  #bucket: Bucket | undefined;

  /**
   * Grants between 1 and `want` tokens, as many as the bucket holds, or none (then `allowed` is
   * false and `retryAfterSeconds` says when one will be there). `returned` tokens, left unspent by
   * an earlier lease of the caller's, go back into the bucket first. `remaining` counts what stays
   * in the bucket after the grant.
   */
  lease(limit: number, want: number, returned = 0): LeaseGrant {
    const now = Date.now();
    const bucket = (this.#bucket ??= this.ctx.storage.kv.get<Bucket>('bucket') ?? { tokens: limit, updatedAt: now });
    const perMs = limit / 60_000;
    // A lowered limit applies at once: the bucket never holds more than the current capacity.
    bucket.tokens = Math.min(limit, bucket.tokens + Math.max(0, now - bucket.updatedAt) * perMs + clampCount(returned, limit));
    bucket.updatedAt = now;
    const granted = Math.min(Math.max(1, clampCount(want, limit)), Math.floor(bucket.tokens));
    bucket.tokens -= granted;
    // The object's memory is the bucket; storage is its copy for a restart. The reply does not wait
    // for that copy to be durable (allowUnconfirmed): a crash in between forgets at most the last
    // few grants, and a rate limit that errs by a request or two beats a disk flush on every lease.
    // A failed write is not this request's failure: the bucket in memory is still right.
    this.ctx.storage.put('bucket', { ...bucket }, { allowUnconfirmed: true }).catch(() => {});
    return {
      granted,
      allowed: granted > 0,
      limit,
      remaining: Math.floor(bucket.tokens),
      retryAfterSeconds: granted > 0 ? 0 : Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000)),
      resetSeconds: Math.ceil((limit - bucket.tokens) / perMs / 1000),
    };
  }

  /**
   * One token: the call of the release before leases, kept so that its isolates go on being limited
   * while a deploy replaces them (an unknown method would fail open). Remove in the release after.
   */
  take(limit: number): RateDecision {
    return decisionOf(this.lease(limit, 1));
  }
}

/** A grant as a request's decision: the same, without the count of tokens granted. */
export function decisionOf({ granted: _granted, ...decision }: LeaseGrant): RateDecision {
  return decision;
}

/** A whole count in [0, max]: what a caller asks or gives back cannot exceed the bucket. */
function clampCount(n: number, max: number): number {
  return Number.isFinite(n) ? Math.min(max, Math.max(0, Math.floor(n))) : 0;
}
