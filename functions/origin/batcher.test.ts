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

  it('refuses at once a request that would finish after its deadline, with the excess as Retry-After', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run, maxBatch: 1, maxQueueDelayMs: 0 });
    // One run of one row in 1,000 ms: the speed the estimate starts from.
    const first = b.submit(1, one());
    await vi.advanceTimersByTimeAsync(1000);
    await r.finish();
    expect(await first).toBe(10);
    // One running (1,000 ms from now), two queued: a new request would be done in 4,000 ms.
    const kept = [b.submit(2, one()), b.submit(3, one()), b.submit(4, one())];
    await vi.advanceTimersByTimeAsync(0);
    expect(b.estimateMs(1)).toBe(4000);
    const late = await settled(b.submit(5, { rows: 1, key: 'k', deadline: Date.now() + 2500 }));
    expect(late.error!.code).toBe('OVERLOADED');
    expect(late.error!.retryAfterS).toBe(2);
    expect(r.calls).toEqual([[1], [2]]);
    // One that can wait that long is queued.
    const patient = b.submit(6, { rows: 1, key: 'k', deadline: Date.now() + 4500 });
    for (let i = 0; i < 4; i++) {
      await vi.advanceTimersByTimeAsync(1000);
      await r.finish();
    }
    expect(await Promise.all([...kept, patient])).toEqual([20, 30, 40, 60]);
  });

  it('scales its estimates with each request\'s cost, so that small and large images share one speed', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run, maxBatch: 1, maxQueueDelayMs: 0 });
    // A large image: cost 100 in 1,000 ms, 10 ms per unit.
    const large = b.submit(1, { rows: 1, key: 'big', deadline: far(), cost: 100 });
    await vi.advanceTimersByTimeAsync(1000);
    await r.finish();
    await large;
    // Forty small ones (cost 1) queue behind a running one: 10 ms each, not 1,000.
    const running = b.submit(2, { rows: 1, key: 'small', deadline: far(), cost: 1 });
    const small = Array.from({ length: 40 }, (_, i) => settled(b.submit(3 + i, { rows: 1, key: 'small', deadline: far(), cost: 1 })));
    await vi.advanceTimersByTimeAsync(0);
    expect(b.estimateMs(1)).toBe(420);
    expect(b.estimateMs(100)).toBe(1410);
    const queued = settled(b.submit(50, { rows: 1, key: 'small', deadline: Date.now() + 500, cost: 1 }));
    const refused = await settled(b.submit(51, { rows: 1, key: 'big', deadline: Date.now() + 500, cost: 100 }));
    expect(refused.error!.code).toBe('OVERLOADED');
    b.close('test over');
    // The small one had been queued (closing fails it), not refused.
    expect((await queued).error!.code).toBe('UNAVAILABLE');
    await r.finish();
    expect(await running).toBe(20);
    expect((await Promise.all(small)).every((x) => x.error?.code === 'UNAVAILABLE')).toBe(true);
  });

  it('leaves out of a batch a request that would push an earlier one past its deadline', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run, maxBatch: 4, maxQueueDelayMs: 5 });
    const first = b.submit(0, one());
    await vi.advanceTimersByTimeAsync(5);
    await vi.advanceTimersByTimeAsync(1000);
    await r.finish(); // 1,000 ms for one row
    await first;
    // A must be answered within 2.5 s: A with B ends in 2 s, A with B and C would end in 3 s.
    const a = b.submit(1, { rows: 1, key: 'k', deadline: Date.now() + 2500 });
    const rest = [b.submit(2, one()), b.submit(3, one())];
    await vi.advanceTimersByTimeAsync(5);
    expect(r.calls.at(-1)).toEqual([1, 2]);
    await vi.advanceTimersByTimeAsync(2000);
    await r.finish();
    expect(await a).toBe(10);
    expect(r.calls.at(-1)).toEqual([3]);
    await r.finish();
    expect(await Promise.all(rest)).toEqual([20, 30]);
  });

  it('admits everything before its first run, when it knows no speed yet', async () => {
    const r = controlledRun();
    const b = batcher({ run: r.run, maxBatch: 1, maxQueueDelayMs: 0 });
    expect(b.estimateMs(1)).toBe(0);
    const all = [1, 2, 3].map((x) => settled(b.submit(x, { rows: 1, key: 'k', deadline: Date.now() + 10 })));
    await vi.advanceTimersByTimeAsync(0);
    // Queued, not refused: the deadline's timer is what ends the two that wait too long.
    expect(b.depth).toBe(2);
    await vi.advanceTimersByTimeAsync(10);
    await r.finish();
    expect((await Promise.all(all)).map((x) => x.error?.code ?? x.value)).toEqual(['DEADLINE_EXCEEDED', 'QUEUE_TIMEOUT', 'QUEUE_TIMEOUT']);
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
