/**
 * Dynamic micro-batching for one model: concurrent requests wait up to `maxQueueDelayMs` (measured
 * from the oldest) to be run together, up to `maxBatch` rows; one batch runs at a time. The queue is
 * bounded, and each request has a deadline. Generic over what a request is: the registry concatenates
 * tensors, tests use plain numbers.
 *
 * Admission by deadline: from the recent runs' time per unit of work (`cost`: rows times the elements
 * of a row, so that small and large images share one estimate), the batcher estimates when a new
 * request would finish (the batch that runs, everything queued, then its own). If that is past the request's
 * deadline it is refused at once (OVERLOADED, with a Retry-After of the excess) instead of queued to
 * expire: under overload the model's time goes to requests that can still be answered in time, and the
 * excess learns at once when to come back.
 */
import { OriginError } from './errors.ts';

export interface BatcherOptions<I, O> {
  /** Most rows in one run (a request with more runs alone). */
  readonly maxBatch: number;
  /** Longest the oldest queued request waits for company before its batch runs. */
  readonly maxQueueDelayMs: number;
  /** Most requests waiting (not counting the batch that runs); more are refused with OVERLOADED. */
  readonly maxQueue: number;
  /** Runs one batch; must return one result per payload, in order. */
  run(payloads: I[]): Promise<O[]>;
  /** After each run: the rows it held and its duration. */
  onRun?(rows: number, ms: number): void;
  /** Whenever the number of waiting requests changes. */
  onDepth?(depth: number): void;
  /** Milliseconds on a monotonic clock; `performance.now` unless a test fakes it. */
  now?(): number;
}

export interface SubmitOptions {
  /** Rows along the batch axis. */
  readonly rows: number;
  /** Only requests with equal keys share a batch (same non-batch dimensions). */
  readonly key: string;
  /** Work relative to other requests (default `rows`), e.g. rows x elements per row; what the run-time estimates scale with. */
  readonly cost?: number;
  /** Absolute deadline on the `now()` clock. */
  readonly deadline: number;
}

interface Item<I, O> {
  readonly payload: I;
  readonly rows: number;
  readonly key: string;
  readonly cost: number;
  readonly enqueuedAt: number;
  readonly deadline: number;
  readonly resolve: (o: O) => void;
  readonly reject: (e: unknown) => void;
  deadlineTimer?: ReturnType<typeof setTimeout>;
  running: boolean;
  settled: boolean;
}

/**
 * @example
 * const batcher = new MicroBatcher({ maxBatch: 16, maxQueueDelayMs: 2, maxQueue: 256, run: (xs) => model.run(xs) });
 * const out = await batcher.submit(request, { rows: 1, key: '4x32x48', deadline: performance.now() + 10_000 });
 */
export class MicroBatcher<I, O> {
  private readonly queue: Item<I, O>[] = [];
  private running = false;
  private flushTimer?: ReturnType<typeof setTimeout>;
  private idleWaiters: (() => void)[] = [];
  private closedReason?: string;
  private readonly now: () => number;
  /** Milliseconds per unit of cost of the recent runs (a moving average); undefined before the first run. */
  private msPerCost?: number;
  /** When the running batch should end, by that average. */
  private runEndsAt = 0;

  constructor(private readonly options: BatcherOptions<I, O>) {
    if (!(options.maxBatch >= 1 && options.maxQueue >= 1 && options.maxQueueDelayMs >= 0)) throw new RangeError('MicroBatcher needs maxBatch >= 1, maxQueue >= 1, maxQueueDelayMs >= 0');
    this.now = options.now ?? (() => performance.now());
  }

  /** Requests waiting to run. */
  get depth(): number {
    return this.queue.length;
  }

  /** Whether a batch is running now. */
  get busy(): boolean {
    return this.running;
  }

  /**
   * Milliseconds until a request of `cost` submitted now would have run, by the recent runs' speed:
   * what is left of the running batch, everything queued, then itself. 0 before the first run.
   */
  estimateMs(cost: number): number {
    if (this.msPerCost === undefined) return 0;
    let queued = 0;
    for (const item of this.queue) queued += item.cost;
    const running = this.running ? Math.max(0, this.runEndsAt - this.now()) : 0;
    return running + (queued + cost) * this.msPerCost;
  }

  /**
   * Queues one request; resolves with its result, or rejects with OVERLOADED (queue full, or it would
   * not run before its deadline),
   * QUEUE_TIMEOUT (deadline passed before it ran), DEADLINE_EXCEEDED (passed while it ran),
   * UNAVAILABLE (closed) or the run's own error.
   */
  submit(payload: I, { rows, key, deadline, cost = rows }: SubmitOptions): Promise<O> {
    if (this.closedReason) return Promise.reject(new OriginError('UNAVAILABLE', this.closedReason, 1));
    if (this.queue.length >= this.options.maxQueue) {
      return Promise.reject(new OriginError('OVERLOADED', `the queue is full (${this.options.maxQueue} requests waiting); retry after a moment`, 1));
    }
    const now = this.now();
    const estimate = this.estimateMs(cost);
    if (deadline - now > 0 && estimate > deadline - now) {
      const excessS = Math.max(1, Math.ceil((estimate - (deadline - now)) / 1000));
      return Promise.reject(new OriginError('OVERLOADED', `the model is busy: this request would finish in about ${Math.round(estimate)} ms, after its deadline; retry in ${excessS} s`, excessS));
    }
    return new Promise<O>((resolve, reject) => {
      const item: Item<I, O> = { payload, rows, key, cost, enqueuedAt: now, deadline, resolve, reject, running: false, settled: false };
      const remaining = deadline - now;
      if (remaining <= 0) {
        reject(new OriginError('QUEUE_TIMEOUT', 'the request reached its deadline before it could be queued', 1));
        return;
      }
      item.deadlineTimer = setTimeout(() => this.expire(item), remaining);
      this.queue.push(item);
      this.options.onDepth?.(this.queue.length);
      this.schedule();
    });
  }

  /** Runs everything queued without waiting out the delay; resolves once idle. */
  drain(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.schedule(true);
    });
  }

  /** Refuses new requests and rejects the waiting ones with UNAVAILABLE; a running batch finishes. */
  close(reason: string): void {
    this.closedReason = reason;
    clearTimeout(this.flushTimer);
    for (const item of this.queue.splice(0)) this.settle(item, new OriginError('UNAVAILABLE', reason, 1));
    this.options.onDepth?.(0);
    this.notifyIdle();
  }

  private schedule(force = false): void {
    if (this.running || this.queue.length === 0) return;
    const { maxBatch, maxQueueDelayMs } = this.options;
    let rows = 0;
    for (const item of this.queue) rows += item.rows;
    const waited = this.now() - this.queue[0].enqueuedAt;
    if (force || this.idleWaiters.length > 0 || rows >= maxBatch || waited >= maxQueueDelayMs) {
      this.flush();
    } else if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.schedule(true);
      }, maxQueueDelayMs - waited);
    }
  }

  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const batch = this.takeBatch();
    this.options.onDepth?.(this.queue.length);
    this.running = true;
    const rows = batch.reduce((n, item) => n + item.rows, 0);
    const cost = batch.reduce((n, item) => n + item.cost, 0);
    const started = this.now();
    this.runEndsAt = started + cost * (this.msPerCost ?? 0);
    let results: O[] | undefined;
    let failure: unknown;
    this.options
      .run(batch.map((item) => item.payload))
      .then(
        (r) => {
          results = r;
          if (r.length !== batch.length) failure = new OriginError('INTERNAL', `batch run returned ${r.length} results for ${batch.length} requests`);
        },
        (e) => {
          failure = e;
        },
      )
      .finally(() => {
        const ms = this.now() - started;
        // A failed run says nothing about the model's speed.
        if (failure === undefined && cost > 0) this.msPerCost = this.msPerCost === undefined ? ms / cost : 0.7 * this.msPerCost + (0.3 * ms) / cost;
        this.options.onRun?.(rows, ms);
        batch.forEach((item, i) => (failure !== undefined ? this.settle(item, failure) : this.settle(item, undefined, results![i])));
        this.running = false;
        this.schedule();
        this.notifyIdle();
      });
  }

  /**
   * The oldest request and, in arrival order, every later one with its key that still fits: within
   * maxBatch rows, and (once the run speed is known) without making the batch end, by that speed,
   * after the earliest deadline in it. A batch answers all its requests at its end, so a late joiner
   * must not push an earlier request past its deadline.
   */
  private takeBatch(): Item<I, O>[] {
    const first = this.queue[0];
    const batch = [first];
    let rows = first.rows;
    let cost = first.cost;
    let earliest = first.deadline;
    const start = this.now();
    const rest: Item<I, O>[] = [];
    let full = false;
    for (let i = 1; i < this.queue.length; i++) {
      const item = this.queue[i];
      const fitsTime = this.msPerCost === undefined || start + (cost + item.cost) * this.msPerCost <= Math.min(earliest, item.deadline);
      if (!full && item.key === first.key && rows + item.rows <= this.options.maxBatch && fitsTime) {
        earliest = Math.min(earliest, item.deadline);
        batch.push(item);
        rows += item.rows;
        cost += item.cost;
      } else {
        // Keep arrival order: once one same-key request does not fit, later ones wait too.
        if (item.key === first.key) full = true;
        rest.push(item);
      }
    }
    this.queue.length = 0;
    this.queue.push(...rest);
    for (const item of batch) item.running = true;
    return batch;
  }

  private expire(item: Item<I, O>): void {
    if (item.settled) return;
    if (item.running) {
      this.settle(item, new OriginError('DEADLINE_EXCEEDED', 'the request reached its deadline while its batch was running; the result was dropped'));
      return;
    }
    const i = this.queue.indexOf(item);
    if (i >= 0) this.queue.splice(i, 1);
    this.options.onDepth?.(this.queue.length);
    this.settle(item, new OriginError('QUEUE_TIMEOUT', 'the request reached its deadline while queued (the model is busy); retry after a moment', 1));
    this.notifyIdle();
  }

  private settle(item: Item<I, O>, error: unknown, result?: O): void {
    if (item.settled) return;
    item.settled = true;
    clearTimeout(item.deadlineTimer);
    if (error !== undefined) item.reject(error);
    else item.resolve(result as O);
  }

  private notifyIdle(): void {
    if (this.running || this.queue.length > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
