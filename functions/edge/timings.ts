/**
 * Per-request phase timings, reported both as `timings_ms` in the body and as a `Server-Timing`
 * header. Inside workerd the clock only advances across I/O (a Spectre mitigation), so pure CPU
 * phases such as decoding read as 0 there; the I/O phases (KV, R2, origin) are real.
 */
export class Timings {
  readonly #start = performance.now();
  readonly #phases: [string, number][] = [];

  /**
   * Runs `fn` and records how long it took under `name`.
   *
   * @example
   * const key = await timings.measure('auth', () => authenticate(header, env.API_KEYS))
   */
  async measure<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.#phases.push([name, performance.now() - t0]);
    }
  }

  /** Phase durations in ms (rounded to 0.01) plus `total`. */
  toJSON(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, ms] of this.#phases) out[name] = round(ms + (out[name] ?? 0));
    out.total = round(performance.now() - this.#start);
    return out;
  }

  /**
   * The Server-Timing header value, e.g. `auth;dur=1.2, cache;desc="hit", total;dur=9.8`.
   *
   * @example
   * c.header('server-timing', timings.serverTiming({ cache: 'hit' }))
   */
  serverTiming(descriptions: Record<string, string> = {}): string {
    const parts = Object.entries(this.toJSON()).map(([name, ms]) => `${name};dur=${ms}`);
    for (const [name, desc] of Object.entries(descriptions)) parts.push(`${name};desc="${desc.replace(/["\\]/g, '')}"`);
    return parts.join(', ');
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
