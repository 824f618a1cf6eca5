/**
 * API-key authentication. Keys travel as `Authorization: Bearer <key>` and are stored only as the hex
 * SHA-256 of the key in KV `API_KEYS`, so a leak of the namespace reveals no usable key.
 */
import { hex, sha256 } from './digest.ts';
import { ProblemError } from './problem.ts';
import { Recent } from './recent.ts';

/** What `API_KEYS` holds for a key (the value of `<hex sha256 of key>`). */
export interface ApiKeyRecord {
  tenant: string;
  /** Routes a key may use, e.g. `analyze`. */
  scopes: string[];
  rate_limit_per_minute?: number;
  /** Keep the key's bitstreams in R2 so that new model versions can re-evaluate them. */
  store_bitstreams?: boolean;
}

/** An authenticated key: its record plus the hash that names it in KV and the rate limiter. */
export interface ApiKey extends ApiKeyRecord {
  keyHash: string;
}

const REALM = 'Bearer realm="latentsight"';
// RFC 6750 b64token; real keys are far shorter than the bound, which only caps the hashing work.
const TOKEN = /^Bearer ([A-Za-z0-9\-._~+/]{8,256}=*)$/;
/** A changed key takes at most this long to reach every location (KV edge cache). */
const KEY_CACHE_TTL_SECONDS = 60;

/**
 * Checks the Authorization header against `API_KEYS`. Throws a 401 `ProblemError` if the header is
 * missing or malformed or names no key.
 *
 * @example
 * const key = await authenticate(c.req.header('authorization'), c.env.API_KEYS)
 */
export async function authenticate(authorization: string | undefined, keys: KVNamespace): Promise<ApiKey> {
  if (!authorization) {
    throw new ProblemError('unauthorized', 'MISSING_API_KEY', 'Send your API key as "Authorization: Bearer <key>".', {
      headers: { 'www-authenticate': REALM },
    });
  }
  const match = TOKEN.exec(authorization.trim());
  if (!match) {
    throw new ProblemError('unauthorized', 'MALFORMED_AUTHORIZATION', 'The Authorization header must be "Bearer <key>".', {
      headers: { 'www-authenticate': `${REALM}, error="invalid_request"` },
    });
  }
  const keyHash = hex(await sha256(match[1]));
  const recent = recentKeys.get(keyHash);
  if (recent && recent.until > Date.now() && recent.keys === keys) return recent.key;
  if (recent) recentKeys.delete(keyHash);
  const record = await keys.get<unknown>(keyHash, { type: 'json', cacheTtl: KEY_CACHE_TTL_SECONDS });
  if (record === null) {
    throw new ProblemError('unauthorized', 'INVALID_API_KEY', 'The API key is not valid: it is unknown or was revoked.', {
      headers: { 'www-authenticate': `${REALM}, error="invalid_token"` },
    });
  }
  const key = { ...checkRecord(record, keyHash), keyHash };
  recentKeys.set(keyHash, { key, keys, until: Date.now() + KEY_CACHE_TTL_SECONDS * 1000 });
  return key;
}

/**
 * Valid keys this isolate read lately, for as long as KV's own edge cache may serve the record
 * (`cacheTtl`): a change or revocation takes effect within that bound either way. Unknown keys are
 * not remembered. At most 1024, the least recently used forgotten first.
 */
const recentKeys = new Recent<{ key: ApiKey; keys: KVNamespace; until: number }>(1024);

/**
 * Throws a 403 `ProblemError` unless the key has `scope`.
 *
 * @example
 * requireScope(key, 'analyze')
 */
export function requireScope(key: ApiKey, scope: string): void {
  if (!key.scopes.includes(scope)) {
    throw new ProblemError('insufficient-scope', 'INSUFFICIENT_SCOPE', `This API key lacks the "${scope}" scope that the route needs.`, {
      headers: { 'www-authenticate': `${REALM}, error="insufficient_scope", scope="${scope}"` },
    });
  }
}

/** A record that does not have the documented shape is an operator's error: fail loudly, in the log. */
function checkRecord(value: unknown, keyHash: string): ApiKeyRecord {
  const r = value as Partial<ApiKeyRecord> | null;
  const ok =
    typeof r?.tenant === 'string' &&
    Array.isArray(r.scopes) &&
    r.scopes.every((s) => typeof s === 'string') &&
    (r.rate_limit_per_minute === undefined || (Number.isInteger(r.rate_limit_per_minute) && r.rate_limit_per_minute > 0)) &&
    (r.store_bitstreams === undefined || typeof r.store_bitstreams === 'boolean');
  if (!ok) throw new Error(`API_KEYS record ${keyHash.slice(0, 12)}... does not have the documented shape`);
  return r as ApiKeyRecord;
}
