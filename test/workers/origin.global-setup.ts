/**
 * Vitest global setup of the `workers` project (runs in Node, not in workerd): starts the real
 * origin (`functions/origin`, the fixture models of test/fixtures/models) on a free port and
 * provides its URL and secret to `origin-integration.test.ts`. Kept out of the Worker's TypeScript
 * program (see test/workers/tsconfig.json): it uses Node.
 */
import type { TestProject } from 'vitest/node';
import { startOrigin } from '../../functions/origin/process.ts';

// 32+ characters: the origin refuses shorter secrets.
const SECRET = `integration-${crypto.randomUUID()}`;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const origin = await startOrigin({
    ORIGIN_MANIFEST: 'test/fixtures/models/manifest.json',
    ORIGIN_HMAC_SECRET: SECRET,
    ORIGIN_THREADS: '1',
    // startOrigin waits for the 'listening' line, logged at info.
    ORIGIN_LOG_LEVEL: 'info',
  });
  project.provide('origin', { url: origin.url, secret: SECRET });
  return async () => {
    await origin.stop();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    origin: { url: string; secret: string };
  }
}
