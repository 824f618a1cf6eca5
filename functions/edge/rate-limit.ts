/**
 * Per-key rate limiting from the isolate's side: tokens leased from the key's `RateLimiter` object.
 *
 * Asking the object on every request costs every request a round trip to wherever the object lives
 * (another continent, for a key used far from where it was first seen), and it was the last binding
 * call on a cache hit. Instead an isolate takes a few tokens at a time and spends them locally:
 *
 * - No request goes through without a token that the object granted, so a key never exceeds its
 *   limit, however many isolates serve it.
 * - A lease is spent within `LEASE_MS`; what is left after that goes back to the object with the
 *   isolate's next lease call for the key. Tokens an isolate holds are missing from the bucket
 *   meanwhile: at most `leaseCap(limit)` per isolate, about one second of the key's rate, and none
 *   for keys of up to 119 requests a minute, which ask the object on every request (exact counts,
 *   exact `remaining`).
 * - The lease size follows the key's demand in this isolate: it doubles (up to the cap) when a lease
 *   runs low before it expires and halves when one expires unspent. When a lease is half spent the
 *   next one is asked for in the background, so a steady stream of requests never waits for it.
 *
 * @example
 * const decision = await takeToken(c.env, key, 60, (p) => c.executionCtx.waitUntil(p))
 */
import type { ApiKey } from './auth.ts';
import { log } from './log.ts';
import { ProblemError } from './problem.ts';
import { type LeaseGrant, type RateDecision, decisionOf } from './rate-limiter.ts';
import { Recent } from './recent.ts';

/** How long an isolate may spend the tokens of a lease. */
export const LEASE_MS = 1_000;
/** The most tokens one lease holds. */
export const MAX_LEASE = 32;
/**
 * How long a call to the key's object may take (it normally takes milliseconds). A call that never
 * answers would otherwise hold every request of the key that waits for its lease: after this the
 * call counts as failed, and `takeToken` lets the request through (logged), as for any failure.
 */
export const LEASE_CALL_TIMEOUT_MS = 2_000;

/** Tokens a lease may hold for a key of `limit` requests a minute: about a second's worth, at most MAX_LEASE. */
export function leaseCap(limit: number): number {
  return Math.max(1, Math.min(MAX_LEASE, Math.floor(limit / 60)));
}

/** The key's object, as the leases see it. */
export type LeaseCall = (want: number, returned: number) => Promise<LeaseGrant>;

interface Lease {
  /** Tokens granted and not yet spent. */
  tokens: number;
  /** After this (ms since the epoch) the tokens are no longer spent here but given back. */
  expiresAt: number;
  /** What the next lease call asks for. */
  size: number;
  /** The bucket's `remaining` and `resetSeconds` as of the last grant. */
  bucketRemaining: number;
  resetSeconds: number;
  /** The lease call in flight, shared by every request that waits for it. */
  pending?: Promise<LeaseGrant>;
}

/**
 * The leases of one isolate, one per key (the most recently used 4,096 keys). Requests of one
 * isolate interleave only at `await`s, so the bookkeeping between them needs no lock.
 */
export class TokenLeases {
  readonly #leases: Recent<Lease>;

  constructor(
    maxKeys = 4096,
    private readonly now: () => number = Date.now,
    private readonly callTimeoutMs = LEASE_CALL_TIMEOUT_MS,
  ) {
    this.#leases = new Recent<Lease>(maxKeys);
  }

  /** `call`, rejected if it has not answered within `callTimeoutMs`. */
  #bounded(call: LeaseCall, want: number, returned: number): Promise<LeaseGrant> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the rate limiter did not answer within ${this.callTimeoutMs} ms`)), this.callTimeoutMs);
    });
    return Promise.race([call(want, returned), timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * One token for key `id` (a limit of `limit` per minute): spent from this isolate's lease, or
   * leased from the object through `call`. `background` keeps a prefetch alive after the response
   * (`waitUntil`). Rejects if `call` does.
   */
  async take(id: string, limit: number, call: LeaseCall, background: (work: Promise<unknown>) => void): Promise<RateDecision> {
    const cap = leaseCap(limit);
    if (cap === 1) return decisionOf(await this.#bounded(call, 1, 0));
    let lease = this.#leases.get(id);
    if (!lease) this.#leases.set(id, (lease = { tokens: 0, expiresAt: 0, size: 1, bucketRemaining: 0, resetSeconds: 0 }));
    // Bounded: a request that waited for a lease and found it spent by others waits for at most three
    // leases, then asks the object for one token of its own.
    for (let round = 0; ; round++) {
      if (lease.tokens >= 1 && this.now() < lease.expiresAt) {
        lease.tokens--;
        if (!lease.pending && lease.tokens < lease.size / 2) {
          lease.size = Math.min(cap, lease.size * 2);
          background(this.#renew(lease, call, cap).catch((error) => log.warn('rate limit lease prefetch failed', { error: String(error) })));
        }
        return { allowed: true, limit, remaining: lease.bucketRemaining + lease.tokens, retryAfterSeconds: 0, resetSeconds: lease.resetSeconds };
      }
      if (round === 3) return decisionOf(await this.#bounded(call, 1, 0));
      const grant = await (lease.pending ?? this.#renew(lease, call, cap));
      if (!grant.allowed) return decisionOf(grant);
    }
  }

  /** Calls the object for the next lease: gives back an expired lease's rest, asks for `size` more (within `cap`). */
  #renew(lease: Lease, call: LeaseCall, cap: number): Promise<LeaseGrant> {
    // A key whose limit was lowered asks for no more than its new cap.
    lease.size = Math.min(lease.size, cap);
    let returned = 0;
    if (this.now() >= lease.expiresAt && lease.tokens > 0) {
      // It expired unspent: give its rest back, and ask for less next time.
      returned = lease.tokens;
      lease.tokens = 0;
      lease.size = Math.max(1, Math.ceil(lease.size / 2));
    }
    // If the call fails or times out, what it was giving back is lost, and so is what a late answer
    // grants (the key gets fewer requests, never more).
    const pending = this.#bounded(call, lease.size, returned).then((grant) => {
      lease.tokens += grant.granted;
      lease.expiresAt = this.now() + LEASE_MS;
      lease.bucketRemaining = grant.remaining;
      lease.resetSeconds = grant.resetSeconds;
      if (!grant.allowed) lease.size = 1;
      return grant;
    });
    lease.pending = pending;
    pending.finally(() => {
      if (lease.pending === pending) lease.pending = undefined;
    }).catch(() => {});
    return pending;
  }
}

const leases = new TokenLeases();

/**
 * One token of the key's rate limit (`rate_limit_per_minute`, else `defaultLimit`), through this
 * isolate's leases. If the limiter itself fails the request goes through: an outage of the limiter
 * must not become an outage of the API (it is logged).
 */
export async function takeToken(env: Env, key: ApiKey, defaultLimit: number, background: (work: Promise<unknown>) => void): Promise<RateDecision> {
  const limit = key.rate_limit_per_minute ?? defaultLimit;
  try {
    return await leases.take(key.keyHash, limit, (want, returned) => env.RATE_LIMITER.getByName(key.keyHash).lease(limit, want, returned), background);
  } catch (error) {
    log.error('rate limiter unavailable; letting the request through', { error: String(error) });
    return { allowed: true, limit, remaining: limit, retryAfterSeconds: 0, resetSeconds: 0 };
  }
}

/** The 429 for a denied decision, with Retry-After and the RateLimit headers. */
export function rateLimited(decision: RateDecision): ProblemError {
  return new ProblemError('rate-limited', 'RATE_LIMITED', `This API key may make ${decision.limit} requests per minute; retry in ${decision.retryAfterSeconds} s.`, {
    headers: { ...rateLimitHeaders(decision), 'retry-after': String(decision.retryAfterSeconds) },
    members: { retry_after: decision.retryAfterSeconds },
  });
}

/** The RateLimit-* response headers of a decision. */
export function rateLimitHeaders(decision: RateDecision): Record<string, string> {
  return {
    'ratelimit-limit': String(decision.limit),
    'ratelimit-remaining': String(decision.remaining),
    'ratelimit-reset': String(decision.resetSeconds),
  };
}
