/**
 * The result cache in KV `RESULTS`, keyed by content and model versions:
 *
 *   <sorted "id@version" of the task models, comma-separated>:<hex SHA-256 of the whole bitstream>
 *
 * The bitstream's bytes fix the codec, its tables (by hash) and so the latents; the task models'
 * versions fix what was computed from them. A new model version therefore misses, and old entries
 * expire with their TTL. Entries are shared across tenants: equal bytes give equal results.
 */
import type { TaskModel } from './registry.ts';
import { Recent } from './recent.ts';

/** A cached entry: the `results` member of the response, under a version for future changes. */
export interface CachedResult {
  v: 1;
  results: Record<string, unknown>;
}

/**
 * The cache key of a bitstream analysed by these models.
 *
 * @example
 * resultKey([seg, cls], 'ab12...') // 'cls-test@1.0.0,seg-test@1.0.0:ab12...'
 */
export function resultKey(models: readonly TaskModel[], bitstreamSha256: string): string {
  const ids = models.map((m) => `${m.id}@${m.version}`).sort();
  return `${ids.join(',')}:${bitstreamSha256}`;
}

/**
 * The cached results for a key, or undefined on a miss (or an entry of an unknown shape).
 *
 * @example
 * const hit = await getResult(env.RESULTS, key)
 */
export async function getResult(kv: KVNamespace, key: string): Promise<CachedResult | undefined> {
  const recent = recentOf(kv);
  const known = recent.get(key);
  if (known) return known;
  const text = await kv.get(key, 'text');
  if (text === null) return undefined;
  let value: CachedResult | undefined;
  try {
    value = JSON.parse(text) as CachedResult;
  } catch {
    return undefined;
  }
  const ok = value?.v === 1 && typeof value.results === 'object' && value.results !== null ? value : undefined;
  if (ok) remember(recent, key, ok, text.length);
  return ok;
}

/**
 * Results this isolate read or wrote lately, per namespace: a key names its content for good (the
 * bitstream's hash and the models' versions), so a remembered entry is never stale; only KV's TTL
 * may end sooner, and then the isolate serves what KV would have recomputed identically. Bounded
 * by count and by size (a segmentation mask of a large image is large; an isolate has 128 MB), the
 * least recently used going first; an entry above a sixteenth of the budget is not remembered.
 */
export const RECENT_RESULTS = { maxEntries: 512, maxChars: 8 << 20 };

const recentByNamespace = new WeakMap<KVNamespace, Recent<CachedResult>>();

function recentOf(kv: KVNamespace): Recent<CachedResult> {
  let recent = recentByNamespace.get(kv);
  if (!recent) recentByNamespace.set(kv, (recent = new Recent(RECENT_RESULTS.maxEntries, RECENT_RESULTS.maxChars)));
  return recent;
}

function remember(recent: Recent<CachedResult>, key: string, entry: CachedResult, chars: number): void {
  if (chars <= RECENT_RESULTS.maxChars / 16) recent.set(key, entry, chars);
}

/**
 * Stores results under a key for `ttlSeconds`.
 *
 * @example
 * ctx.waitUntil(putResult(env.RESULTS, key, results, 604800))
 */
export async function putResult(kv: KVNamespace, key: string, results: Record<string, unknown>, ttlSeconds: number): Promise<void> {
  const entry: CachedResult = { v: 1, results };
  const text = JSON.stringify(entry);
  await kv.put(key, text, { expirationTtl: ttlSeconds });
  remember(recentOf(kv), key, entry, text.length);
}
