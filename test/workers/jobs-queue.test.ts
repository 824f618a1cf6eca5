// Unit test of the queue handler, called directly with a batch built by the pool.
import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it, vi } from 'vitest';
import worker from '../../functions/edge/index.ts';

describe('the JOBS queue consumer', () => {
  it('retries a job it has no handler for, so that it ends in the dead letter queue', async () => {
    const batch = createMessageBatch('latentsight-jobs', [
      { id: 'job-1', timestamp: new Date(0), attempts: 1, body: { kind: 'unknown' } },
    ]);
    const ctx = createExecutionContext();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});

    await worker.queue(batch, env, ctx);
    const result = await getQueueResult(batch, ctx);

    expect(result.explicitAcks).toEqual([]);
    expect(result.retryMessages).toEqual([{ msgId: 'job-1' }]);
    const lines = warn.mock.calls.map((args) => JSON.parse(String(args[0])) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'no handler for job', message_id: 'job-1' }));
    warn.mockRestore();
  });
});
