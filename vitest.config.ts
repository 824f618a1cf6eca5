import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';

// `npm test` runs both projects; `npx vitest run --project unit` (or `workers`) runs one.
export default defineConfig({
  test: {
    // A project with no test files yet must not fail the run.
    passWithNoTests: true,
    projects: [
      {
        test: {
          name: 'unit',
          environment: 'node',
          include: ['src/**/*.test.ts', 'test/unit/**/*.test.ts', 'functions/origin/**/*.test.ts'],
        },
      },
      {
        // Runs the tests inside workerd (miniflare) with the bindings of wrangler.toml; the Worker
        // named by its `main` shares the isolate, so `exports.default` from 'cloudflare:workers' is it.
        // The pool turns on nodejs_compat for its own runner: the edge itself runs without it.
        plugins: [cloudflareTest({ wrangler: { configPath: './wrangler.toml' } })],
        test: {
          name: 'workers',
          include: ['test/workers/**/*.test.ts'],
        },
      },
    ],
  },
});
