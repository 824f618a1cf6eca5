/**
 * The edge's settings: read once per request from the Worker's vars (wrangler.toml) and secrets,
 * with defaults for everything that is not a deployment choice. Tests override any of them.
 */
import type { Limits } from '../../src/bitstream/index.ts';
import { EDGE_LIMITS } from './limits.ts';
import { log } from './log.ts';

export interface EdgeConfig {
  /** Base URL of the KServe v2 origin, without a trailing slash. */
  originUrl: string;
  /** HMAC key shared with the origin; without it the edge refuses to forward. */
  originSecret: string | undefined;
  /** Timeout of one infer attempt. */
  originTimeoutMs: number;
  /** Attempts per infer call, the first included. */
  originAttempts: number;
  /** Base of the exponential backoff between attempts (full jitter: a delay in [0, base * 2^n)). */
  originBackoffMs: number;
  /** Budget of one infer call across all its attempts and backoffs. */
  originDeadlineMs: number;
  /** Consecutive failed attempts that open an origin's circuit breaker. */
  breakerFailureThreshold: number;
  /** How long an open breaker sheds requests before it lets one probe through. */
  breakerCooldownMs: number;
  /** Retry-After, in seconds, of a 503 when the origin failed but the breaker is still closed. */
  unavailableRetryAfterSeconds: number;
  /** TTL of a cached result in RESULTS. */
  resultTtlSeconds: number;
  /** Largest accepted body; also the bitstream header's `maxStreamBytes`. */
  maxBodyBytes: number;
  /** The edge's limits on top of the format's (see docs/FORMAT.md, section 5). */
  limits: Partial<Limits>;
  /** Requests per minute of a key whose record does not set `rate_limit_per_minute`. */
  defaultRateLimitPerMinute: number;
}

export const DEFAULTS: Omit<EdgeConfig, 'originUrl' | 'originSecret'> = {
  originTimeoutMs: 10_000,
  originAttempts: 3,
  originBackoffMs: 100,
  originDeadlineMs: 30_000,
  breakerFailureThreshold: 5,
  breakerCooldownMs: 30_000,
  unavailableRetryAfterSeconds: 5,
  resultTtlSeconds: 7 * 24 * 3600,
  maxBodyBytes: 4 << 20,
  limits: EDGE_LIMITS,
  defaultRateLimitPerMinute: 60,
};

/**
 * The settings for one request: vars and secrets from `env`, then `overrides` (tests), then defaults.
 * A var that is not a positive integer is ignored with a logged error rather than taking the edge down.
 *
 * @example
 * const config = readConfig(c.env, { originAttempts: 1 })
 */
export function readConfig(env: Env, overrides: Partial<EdgeConfig> = {}): EdgeConfig {
  const timeout = positiveInt(env, 'ORIGIN_TIMEOUT_MS') ?? DEFAULTS.originTimeoutMs;
  const maxBodyBytes = positiveInt(env, 'MAX_BODY_BYTES') ?? DEFAULTS.maxBodyBytes;
  const config: EdgeConfig = {
    ...DEFAULTS,
    originUrl: (env.ORIGIN_URL ?? '').replace(/\/+$/, ''),
    originSecret: env.ORIGIN_HMAC_SECRET || undefined,
    originTimeoutMs: timeout,
    originDeadlineMs: 3 * timeout,
    resultTtlSeconds: Math.max(60, positiveInt(env, 'RESULT_TTL_SECONDS') ?? DEFAULTS.resultTtlSeconds),
    maxBodyBytes,
    ...overrides,
  };
  config.limits = { ...config.limits, maxStreamBytes: Math.min(config.limits.maxStreamBytes ?? Infinity, config.maxBodyBytes) };
  return config;
}

function positiveInt(env: Env, name: string): number | undefined {
  const raw = (env as unknown as Record<string, unknown>)[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (Number.isSafeInteger(value) && value > 0) return value;
  log.error('ignoring var: not a positive integer', { var: name, value: raw });
  return undefined;
}
