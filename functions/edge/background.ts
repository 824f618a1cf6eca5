/**
 * What the Worker's background handlers (the `JOBS` queue consumer and the cron trigger) share: the
 * messages the queue carries, their dependencies, and the settings of jobs and webhook deliveries
 * (vars in wrangler.toml, with defaults).
 */
import type { AppDeps } from './context.ts';
import type { DeliveryRef } from './tenant-store.ts';
import { log } from './log.ts';

/** The messages of the `JOBS` queue, one kind per piece of work. */
export type JobMessage =
  | { kind: 'job'; tenant: string; id: string }
  | { kind: 'delivery'; tenant: string; id: string; attempt: number }
  | { kind: 'reeval-page'; run: string; page: number; cursor: string | null }
  | { kind: 'reeval-item'; run: string; tenant: string; key: string };

/** The app's dependencies plus the clock and the network of webhook deliveries (tests replace them). */
export interface BackgroundDeps extends AppDeps {
  webhookFetch: (url: string, init: RequestInit) => Promise<Response>;
  now: () => number;
  /** Uniform in [0, 1): backoff jitter. */
  random: () => number;
}

export interface JobsConfig {
  /** `development` allows http callbacks to loopback hosts (`ENVIRONMENT` var); anything else is production. */
  development: boolean;
  /** First delay of a job whose origin is unavailable; doubles per attempt (full jitter), up to `jobRetryMaxSeconds`. */
  jobRetryBaseSeconds: number;
  jobRetryMaxSeconds: number;
  /** A job still waiting for the origin this long after it was submitted fails (`analysis.failed`). */
  jobMaxAgeSeconds: number;
  /** The consumer's `max_retries` in wrangler.toml: on the last delivery of a message that keeps failing, its job is marked failed. */
  queueMaxRetries: number;
  /** Webhook retries: delay n (from 1) is base * 4^(n-1), capped, +-20 % jitter, until the nominal delays add up to the window. */
  webhookRetryBaseSeconds: number;
  webhookRetryMaxDelaySeconds: number;
  webhookRetryWindowSeconds: number;
  /** Timeout of one delivery attempt. */
  webhookTimeoutMs: number;
  /** How long a rotated-out secret keeps signing beside the new one. */
  webhookSecretOverlapSeconds: number;
}

export const JOBS_DEFAULTS: JobsConfig = {
  development: false,
  jobRetryBaseSeconds: 10,
  jobRetryMaxSeconds: 600,
  jobMaxAgeSeconds: 24 * 3600,
  queueMaxRetries: 5,
  webhookRetryBaseSeconds: 5,
  webhookRetryMaxDelaySeconds: 36_000,
  webhookRetryWindowSeconds: 24 * 3600,
  webhookTimeoutMs: 10_000,
  webhookSecretOverlapSeconds: 24 * 3600,
};

/** Cloudflare Queues delay a message by at most 12 hours. */
export const MAX_QUEUE_DELAY_SECONDS = 43_200;

/**
 * The jobs settings from the Worker's vars; a var that is not a positive integer is ignored (logged).
 *
 * @example
 * const jobs = readJobsConfig(env)
 */
export function readJobsConfig(env: Env): JobsConfig {
  const vars = env as unknown as Record<string, unknown>;
  const int = (name: string, fallback: number) => {
    const raw = vars[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (Number.isSafeInteger(value) && value > 0) return value;
    log.error('ignoring var: not a positive integer', { var: name, value: raw });
    return fallback;
  };
  return {
    development: vars.ENVIRONMENT === 'development',
    jobRetryBaseSeconds: int('JOB_RETRY_BASE_SECONDS', JOBS_DEFAULTS.jobRetryBaseSeconds),
    jobRetryMaxSeconds: Math.min(MAX_QUEUE_DELAY_SECONDS, int('JOB_RETRY_MAX_SECONDS', JOBS_DEFAULTS.jobRetryMaxSeconds)),
    jobMaxAgeSeconds: int('JOB_MAX_AGE_SECONDS', JOBS_DEFAULTS.jobMaxAgeSeconds),
    queueMaxRetries: int('JOBS_MAX_RETRIES', JOBS_DEFAULTS.queueMaxRetries),
    webhookRetryBaseSeconds: int('WEBHOOK_RETRY_BASE_SECONDS', JOBS_DEFAULTS.webhookRetryBaseSeconds),
    webhookRetryMaxDelaySeconds: Math.min(MAX_QUEUE_DELAY_SECONDS, int('WEBHOOK_RETRY_MAX_DELAY_SECONDS', JOBS_DEFAULTS.webhookRetryMaxDelaySeconds)),
    webhookRetryWindowSeconds: int('WEBHOOK_RETRY_WINDOW_SECONDS', JOBS_DEFAULTS.webhookRetryWindowSeconds),
    webhookTimeoutMs: int('WEBHOOK_TIMEOUT_MS', JOBS_DEFAULTS.webhookTimeoutMs),
    webhookSecretOverlapSeconds: int('WEBHOOK_SECRET_OVERLAP_SECONDS', JOBS_DEFAULTS.webhookSecretOverlapSeconds),
  };
}

/**
 * The nominal delay before webhook attempt `attempt + 1` (seconds), or undefined when attempt
 * `attempt` was the last: the nominal delays so far already span the retry window.
 *
 * @example
 * webhookRetryDelay(1, JOBS_DEFAULTS) // 5
 * webhookRetryDelay(3, JOBS_DEFAULTS) // 80
 */
export function webhookRetryDelay(attempt: number, config: JobsConfig): number | undefined {
  let elapsed = 0;
  for (let n = 1; n < attempt; n++) elapsed += Math.min(config.webhookRetryMaxDelaySeconds, config.webhookRetryBaseSeconds * 4 ** (n - 1));
  if (elapsed >= config.webhookRetryWindowSeconds) return undefined;
  return Math.min(config.webhookRetryMaxDelaySeconds, config.webhookRetryBaseSeconds * 4 ** (attempt - 1));
}

/**
 * Hands deliveries' next attempts to the queue (at once), then records that it did.
 *
 * @example
 * await queueDeliveries(env, 'acme', refs)
 */
export async function queueDeliveries(env: Env, tenant: string, refs: DeliveryRef[]): Promise<void> {
  for (let i = 0; i < refs.length; i += 100) {
    const chunk = refs.slice(i, i + 100);
    await env.JOBS.sendBatch(chunk.map((r) => ({ body: { kind: 'delivery', tenant, id: r.id, attempt: r.attempt } satisfies JobMessage })));
    await env.TENANTS.getByName(tenant).markQueued(chunk.map((r) => r.id));
  }
}
