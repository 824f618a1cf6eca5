/**
 * The edge Worker's entry point: it only wires handlers (see wrangler.toml for the bindings).
 */
import { app } from './app.ts';
import { handleJobs } from './queue.ts';

// Durable Object classes must be exported by the main module.
export { RateLimiter } from './rate-limiter.ts';

export default {
  fetch: app.fetch,
  queue: handleJobs,
} satisfies ExportedHandler<Env>;
