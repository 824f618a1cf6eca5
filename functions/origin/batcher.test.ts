import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type BatcherOptions, MicroBatcher } from './batcher.ts';
import { OriginError } from './errors.ts';

/** A batch run the test finishes by hand: `calls` records each batch's payloads. */
function controlledRun() {
  const calls: number[][] = [];
  const pending: { resolve: (r: number[]) => void; reject: (e: unknown) => void; payloads: number[] }[] = [];
  const run = (payloads: number[]) => {
    calls.push(payloads);
    return new Promise<number[]>((resolve, reject) => pending.push({ resolve, reject, payloads }));
  };
  /** Completes the oldest running batch with payload * 10 for each request. */
  const finish = async () => {
    const p = pending.shift()!;
    p.resolve(p.payloads.map((x) => x * 10));
    await vi.advanceTimersByTimeAsync(0);
  };
  const fail = async (e: unknown) => {
    pending.shift()!.reject(e);
    await vi.advanceTimersByTimeAsync(0);
  };
  return { calls, run, finish, fail };
}

function batcher(overrides: Partial<BatcherOptions<number, number>> & Pick<BatcherOptions<number, number>, 'run'>) {
  return new MicroBatcher<number, number>({ maxBatch: 4, maxQueueDelayMs: 5, maxQueue: 100, now: () => Date.now(), ...overrides });
}

const far = () => Date.now() + 60_000;
const one = (key = 'k') => ({ rows: 1, key, deadline: far() });

async function settled<T>(p: Promise<T>): Promise<{ value?: T; error?: OriginError }> {
  return p.then(
    (value) => ({ value }),
    (error: OriginError) => ({ error }),
  );
}

describe('MicroBatcher', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('runs up to maxBatch concurrent requests together, in arrival order, each getting its own result', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run });
    const results = [1, 2, 3, 4, 5].map((x) => b.submit(x, one()));
    // Four rows fill a batch: it runs at once, without waiting out the delay.
    await vi.advanceTimersByTimeAsync(0);
    expect(r.calls).toEqual([[1, 2, 3, 4]]);
    // One batch at a time: the fifth waits out the run, however long its delay has been spent.
    await vi.advanceTimersByTimeAsync(5);
    expect(r.calls).toEqual([[1, 2, 3, 4]]);
    await r.finish();
    expect(r.calls).toEqual([[1, 2, 3, 4], [5]]);
    await r.finish();
    expect(await Promise.all(results)).toEqual([10, 20, 30, 40, 50]);
  });

  it('waits maxQueueDelayMs from the oldest request for company, then runs what it has', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run });
    const first = b.submit(1, one());
    await vi.advanceTimersByTimeAsync(3);
    const second = b.submit(2, one());
    await vi.advanceTimersByTimeAsync(1);
    expect(r.calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(r.calls).toEqual([[1, 2]]);
    await r.finish();
    expect(await Promise.all([first, second])).toEqual([10, 20]);
  });

  it('counts rows, not requests, against maxBatch', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run });
    const big = b.submit(1, { rows: 3, key: 'k', deadline: far() });
    const other = b.submit(2, { rows: 2, key: 'k', deadline: far() });
    await vi.advanceTimersByTimeAsync(0);
    expect(r.calls).toEqual([[1]]);
    await r.finish();
    await vi.advanceTimersByTimeAsync(5);
    expect(r.calls).toEqual([[1], [2]]);
    await r.finish();
    expect(await Promise.all([big, other])).toEqual([10, 20]);
  });

  it('never mixes requests of different keys (shapes) in one batch', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run });
    const all = [b.submit(1, one('a')), b.submit(2, one('b')), b.submit(3, one('a')), b.submit(4, one('b'))];
    await vi.advanceTimersByTimeAsync(5);
    expect(r.calls).toEqual([[1, 3]]);
    await r.finish();
    expect(r.calls).toEqual([[1, 3], [2, 4]]);
    await r.finish();
    expect(await Promise.all(all)).toEqual([10, 20, 30, 40]);
  });

  it('reports rows and duration of each run, and the queue depth as it changes', async () => {
    const r = controlledRun();
    const runs: number[] = [];
    const depths: number[] = [];
    const b = batcher({ run: r.run, onRun: (rows) => runs.push(rows), onDepth: (d) => depths.push(d) });
    const all = [b.submit(1, one()), b.submit(2, one())];
    expect(b.depth).toBe(2);
    await vi.advanceTimersByTimeAsync(5);
    expect(b.busy).toBe(true);
    await r.finish();
    await Promise.all(all);
    expect(runs).toEqual([2]);
    expect(depths).toEqual([1, 2, 0]);
  });

  it('refuses a request when maxQueue are waiting: OVERLOADED with a Retry-After', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run, maxQueue: 2, maxQueueDelayMs: 100 });
    const kept = [b.submit(1, one()), b.submit(2, one())];
    const refused = await settled(b.submit(3, one()));
    expect(refused.error).toBeInstanceOf(OriginError);
    expect(refused.error!.code).toBe('OVERLOADED');
    expect(refused.error!.retryAfterS).toBe(1);
    expect(refused.error!.message).toBe('the queue is full (2 requests waiting); retry after a moment');
    await vi.advanceTimersByTimeAsync(100);
    await r.finish();
    expect(await Promise.all(kept)).toEqual([10, 20]);
  });

  it('drops a request whose deadline passes while queued (QUEUE_TIMEOUT) without running it', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run, maxBatch: 1 });
    const running = b.submit(1, one());
    await vi.advanceTimersByTimeAsync(5);
    const late = settled(b.submit(2, { rows: 1, key: 'k', deadline: Date.now() + 50 }));
    await vi.advanceTimersByTimeAsync(50);
    const { error } = await late;
    expect(error!.code).toBe('QUEUE_TIMEOUT');
    expect(error!.retryAfterS).toBe(1);
    expect(b.depth).toBe(0);
    await r.finish();
    expect(await running).toBe(10);
    expect(r.calls).toEqual([[1]]);
  });

  it('answers DEADLINE_EXCEEDED when the deadline passes mid-run; the rest of the batch still succeeds', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run });
    const short = settled(b.submit(1, { rows: 1, key: 'k', deadline: Date.now() + 20 }));
    const long = b.submit(2, one());
    await vi.advanceTimersByTimeAsync(5);
    expect(r.calls).toEqual([[1, 2]]);
    await vi.advanceTimersByTimeAsync(15);
    expect((await short).error!.code).toBe('DEADLINE_EXCEEDED');
    await r.finish();
    expect(await long).toBe(20);
  });

  it('rejects a request whose deadline has already passed', async () => {
    const b = batcher({ run: controlledRun().run });
    expect((await settled(b.submit(1, { rows: 1, key: 'k', deadline: Date.now() }))).error!.code).toBe('QUEUE_TIMEOUT');
  });

  it('fails every request of a batch whose run fails, and keeps serving', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run, maxBatch: 2 });
    const a = settled(b.submit(1, one()));
    const c = settled(b.submit(2, one()));
    const d = b.submit(3, one());
    await vi.advanceTimersByTimeAsync(0);
    await r.fail(new Error('onnxruntime exploded'));
    expect((await a).error!.message).toBe('onnxruntime exploded');
    expect((await c).error!.message).toBe('onnxruntime exploded');
    await vi.advanceTimersByTimeAsync(5);
    await r.finish();
    expect(await d).toBe(30);
  });

  it('fails the batch when a run returns the wrong number of results', async () => {
    const b = batcher({ run: async () => [1] });
    const results = [settled(b.submit(1, one())), settled(b.submit(2, one()))];
    await vi.advanceTimersByTimeAsync(5);
    for (const r of await Promise.all(results)) expect(r.error!.code).toBe('INTERNAL');
  });

  it('drain() runs queued requests without waiting out the delay and resolves once idle', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run, maxQueueDelayMs: 1000 });
    const result = b.submit(1, one());
    let drained = false;
    void b.drain().then(() => (drained = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(r.calls).toEqual([[1]]);
    expect(drained).toBe(false);
    await r.finish();
    expect(drained).toBe(true);
    expect(await result).toBe(10);
  });

  it('close() fails waiting requests with UNAVAILABLE and refuses new ones', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run, maxQueueDelayMs: 1000 });
    const waiting = settled(b.submit(1, one()));
    b.close('shutting down');
    expect((await waiting).error!.code).toBe('UNAVAILABLE');
    expect((await settled(b.submit(2, one()))).error!.message).toBe('shutting down');
    expect(r.calls).toEqual([]);
  });
});
