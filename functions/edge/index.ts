/**
 * The edge Worker's entry point: it only wires handlers (see wrangler.toml for the bindings).
 */
import { createApp, defaultDeps } from './app.ts';
import type { BackgroundDeps } from './background.ts';
import { createQueueHandler } from './queue.ts';
import { reevaluateOnNewModels } from './reeval.ts';

// Durable Object classes must be exported by the main module.
export { RateLimiter } from './rate-limiter.ts';
export { IdempotencyKeys } from './idempotency.ts';
export { TenantStore } from './tenant-store.ts';
export { Reevaluator } from './reeval.ts';

/**
 * The Worker's handlers over one set of dependencies: HTTP, the `JOBS` queue and the cron trigger
 * (re-evaluation when the served models change). Tests build one with their registry and origin.
 *
 * @example
 * const worker = createWorker({ ...deps, webhookFetch: receiver.fetch, now: Date.now, random: Math.random })
 * await worker.scheduled(createScheduledController(), env, ctx)
 */
export function createWorker(deps: BackgroundDeps) {
  const app = createApp(deps);
  return {
    fetch: app.fetch,
    queue: createQueueHandler(deps),
    scheduled: async (_controller: ScheduledController, env: Env, _ctx: ExecutionContext) => {
      await reevaluateOnNewModels(env, deps);
    },
  } satisfies ExportedHandler<Env>;
}

/** Production: the bundled models and the real network; one registry and breaker set per isolate. */
export default createWorker({ ...defaultDeps, webhookFetch: (url, init) => fetch(url, init), now: Date.now, random: Math.random });
