/**
 * A circuit breaker per origin. State lives in the isolate: each isolate (one per location and
 * instance) learns on its own that an origin is down, after `failureThreshold` failed attempts of
 * its own. That is enough to stop one isolate hammering a dead origin and to answer at once with a
 * 503 instead of waiting out timeouts; it needs no storage round trip on the hot path.
 *
 *   closed --(threshold consecutive failures)--> open --(cooldown)--> half-open
 *   half-open: one probe at a time; success -> closed, failure -> open again
 *
 * A probe that never reports (its request was cancelled, its isolate's invocation ended) would hold
 * the half-open slot for ever; after `cooldownMs` without a report it counts as lost and the next
 * caller probes instead.
 */

export interface BreakerOptions {
  failureThreshold: number;
  cooldownMs: number;
  /** Clock in milliseconds; tests pass their own. */
  now?: () => number;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

/**
 * @example
 * const breaker = new CircuitBreaker({ failureThreshold: 5, cooldownMs: 30_000 })
 * const wait = breaker.acquire(); if (wait > 0) return unavailable(wait)
 * try { await call(); breaker.success() } catch (e) { breaker.failure(); throw e }
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #cooldownMs: number;
  readonly #now: () => number;
  #failures = 0;
  #openedAt = 0;
  #state: BreakerState = 'closed';
  #probing = false;
  #probeStartedAt = 0;

  constructor(options: BreakerOptions) {
    this.#threshold = options.failureThreshold;
    this.#cooldownMs = options.cooldownMs;
    this.#now = options.now ?? Date.now;
  }

  get state(): BreakerState {
    if (this.#state === 'open' && this.#now() - this.#openedAt >= this.#cooldownMs) return 'half-open';
    return this.#state;
  }

  /**
   * Asks to send one attempt. Returns 0 if it may go, else the milliseconds until the breaker will
   * let a probe through. Every attempt that was let through must end in `success` or `failure`.
   */
  acquire(): number {
    // Half-open admits exactly one probe; the others wait as if the breaker were still open.
    const wait = this.waitMs();
    if (wait > 0 || this.state === 'closed') return wait;
    this.#state = 'half-open';
    this.#probing = true;
    this.#probeStartedAt = this.#now();
    return 0;
  }

  /** Milliseconds until an attempt could go (0: now), without asking for one. */
  waitMs(): number {
    const state = this.state;
    if (state === 'open') return this.#openedAt + this.#cooldownMs - this.#now();
    if (state === 'half-open' && this.#probing) {
      if (this.#now() - this.#probeStartedAt >= this.#cooldownMs) return 0;
      return Math.max(1, Math.round(this.#cooldownMs / 10));
    }
    return 0;
  }

  success(): void {
    this.#failures = 0;
    this.#probing = false;
    this.#state = 'closed';
  }

  failure(): void {
    this.#failures++;
    if (this.#probing || this.#failures >= this.#threshold) {
      this.#state = 'open';
      this.#openedAt = this.#now();
    }
    this.#probing = false;
  }
}

/**
 * One breaker per origin URL, created on first use with the options of that use.
 *
 * @example
 * const breakers = new BreakerRegistry()
 * breakers.get('https://origin.example', { failureThreshold: 5, cooldownMs: 30_000 }).acquire()
 */
export class BreakerRegistry {
  readonly #breakers = new Map<string, CircuitBreaker>();

  get(origin: string, options: BreakerOptions): CircuitBreaker {
    let breaker = this.#breakers.get(origin);
    if (!breaker) {
      breaker = new CircuitBreaker(options);
      this.#breakers.set(origin, breaker);
    }
    return breaker;
  }
}
