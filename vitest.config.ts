import { readFileSync } from 'node:fs';
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';

/**
 * The golden vectors as one JSON binding (files base64-encoded), so that tests inside workerd, which
 * has no file system, decode exactly the bytes the Node tests decode.
 */
function goldenVectorsBinding(): Record<string, string> {
  const dir = new URL('./test/vectors/', import.meta.url);
  const index = JSON.parse(readFileSync(new URL('vectors.json', dir), 'utf8')) as { cases: { stream: string; latents: string; tables: string }[] };
  const files: Record<string, string> = { 'vectors.json': readFileSync(new URL('vectors.json', dir)).toString('base64') };
  for (const c of index.cases) for (const f of [c.stream, c.latents, c.tables]) files[f] = readFileSync(new URL(f, dir)).toString('base64');
  return files;
}

// `npm test` runs every project; `npx vitest run --project unit` (or `workers`, `e2e`) runs one.
export default defineConfig({
  test: {
    // A project with no test files yet must not fail the run.
    passWithNoTests: true,
    projects: [
      {
        test: {
          name: 'unit',
          environment: 'node',
          // Real ONNX models and real processes on a 2-core machine: a limit against hangs, not a timing assertion.
          testTimeout: 60_000,
          hookTimeout: 60_000,
          include: ['src/**/*.test.ts', 'test/unit/**/*.test.ts', 'functions/origin/**/*.test.ts'],
        },
      },
      {
        // Real processes talking real HTTP: the CLI, the origin, `wrangler dev` and headless Chromium.
        // Files run one after another: each starts a whole stack, and this machine has two cores.
        test: {
          name: 'e2e',
          environment: 'node',
          include: ['test/e2e/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      {
        // Runs the tests inside workerd (miniflare) with the bindings of wrangler.toml; the Worker
        // named by its `main` shares the isolate, so `exports.default` from 'cloudflare:workers' is it.
        // The pool turns on nodejs_compat for its own runner: the edge itself runs without it.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: './wrangler.toml' },
            miniflare: { bindings: { TEST_VECTORS: goldenVectorsBinding() } },
          }),
        ],
        test: {
          name: 'workers',
          include: ['test/workers/**/*.test.ts'],
          // One workerd runtime for all files instead of one per file; storage is shared anyway and the
          // tests use distinct keys.
          isolate: false,
          // Starts the real origin (fixture models) for origin-integration.test.ts.
          globalSetup: ['test/workers/origin.global-setup.ts'],
        },
      },
    ],
  },
});
