/**
 * The SDK's job calls against the real local stack: `wrangler dev` with its local Queue, the origin
 * with the shipped models. A job submitted with `submitJob` is run by the queue consumer and read
 * back with `getJob`; the same Idempotency-Key gives the same job.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.ts';
import { type Stack, startStack } from '../../scripts/stack.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
let stack: Stack;
let dir: string;
let stream: Uint8Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latentsight-jobs-e2e-'));
  const out = join(dir, 'kodim15.lsb');
  await promisify(execFile)(process.execPath, [join(REPO, 'bin', 'latentsight.js'), 'encode', join(REPO, 'test/fixtures/kodim15.png'), '-o', out], { cwd: REPO });
  stream = new Uint8Array(await readFile(out));
  stack = await startStack();
});

afterAll(async () => {
  await stack?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('jobs through the SDK, end to end', () => {
  it('submits a job, the queue runs it, and getJob returns its results; a repeated key gives the same job', async () => {
    const client = createClient({ endpoint: stack.edgeUrl, apiKey: stack.apiKey });
    const accepted = await client.submitJob(stream, { tasks: ['classify'], idempotencyKey: 'e2e-job-0001', metadata: { source: 'e2e' } });
    expect(accepted.id).toBeTruthy();
    const again = await client.submitJob(stream, { tasks: ['classify'], idempotencyKey: 'e2e-job-0001', metadata: { source: 'e2e' } });
    expect(again.id).toBe(accepted.id);

    const deadline = Date.now() + 120_000;
    let job = await client.getJob(accepted.id);
    while (job.status !== 'completed' && job.status !== 'failed' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      job = await client.getJob(accepted.id);
    }
    expect(job.status, JSON.stringify(job)).toBe('completed');
    expect(job.tasks).toEqual(['classify']);
    expect(job.metadata).toEqual({ source: 'e2e' });
    expect(job.image).toEqual({ width: 768, height: 512 });
    expect(job.results?.classify?.top).toHaveLength(5);

    // The same stream analysed synchronously gives the same labels (now from the cache the job filled).
    const sync = await client.analyze(stream, { tasks: ['classify'] });
    expect(sync.cache).toBe('hit');
    expect(sync.results.classify).toEqual(job.results?.classify);
  });
});
