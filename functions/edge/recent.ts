/**
 * A bounded memory for one isolate: at most `maxEntries` entries and at most `maxWeight` in all
 * (each entry weighs what its caller says, 1 by default); the least recently used goes first.
 * What the edge keeps between requests uses it: valid API keys (auth.ts), results (cache.ts) and
 * archived bitstreams (archive.ts).
 *
 * @example
 * const seen = new Recent<true>(4096);
 * seen.set(key, true);
 * seen.get(key) // true
 */
export class Recent<V> {
  readonly #entries = new Map<string, { value: V; weight: number }>();
  #weight = 0;

  constructor(
    readonly maxEntries: number,
    readonly maxWeight = Number.POSITIVE_INFINITY,
  ) {}

  /** The value, now the most recently used; undefined if absent. */
  get(key: string): V | undefined {
    const hit = this.#entries.get(key);
    if (!hit) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, hit);
    return hit.value;
  }

  /** Adds or replaces an entry, then forgets the least recently used until within both bounds. */
  set(key: string, value: V, weight = 1): void {
    this.delete(key);
    this.#entries.set(key, { value, weight });
    this.#weight += weight;
    while (this.#entries.size > this.maxEntries || this.#weight > this.maxWeight) {
      const [oldest, entry] = this.#entries.entries().next().value!;
      this.#entries.delete(oldest);
      this.#weight -= entry.weight;
    }
  }

  delete(key: string): void {
    const old = this.#entries.get(key);
    if (!old) return;
    this.#entries.delete(key);
    this.#weight -= old.weight;
  }
}
