/**
 * The edge Worker's entry point: it only wires handlers (see wrangler.toml for the bindings).
 */
import { app } from './app.ts';
import { handleJobs } from './queue.ts';

export default {
  fetch: app.fetch,
  queue: handleJobs,
} satisfies ExportedHandler<Env>;
