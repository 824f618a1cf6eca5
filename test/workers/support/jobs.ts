/**
 * The async path inside workerd: the Worker's handlers (`createWorker`) on the test registry and a
 * fake origin, a recording `JOBS` queue and a webhook receiver that verifies every delivery with the
 * `standardwebhooks` reference library.
 *
 * Stand-in: the queue. The real `JOBS` binding would hand messages to the main module's consumer,
 * which serves the product models (none yet); so the test binding records what the Worker sends and
 * `drain` delivers it in batches built by the pool (`createMessageBatch`), reading back each
 * message's ack or retry (`getQueueResult`) as the real queue would. Delays are recorded, not waited.
 */
import { createExecutionContext, createMessageBatch, getQueueResult, waitOnExecutionContext } from 'cloudflare:test';
import { Webhook } from 'standardwebhooks';
import type { BackgroundDeps, JobMessage } from '../../../functions/edge/background.ts';
import { BreakerRegistry } from '../../../functions/edge/breaker.ts';
import { createWorker } from '../../../functions/edge/index.ts';
import type { ModelRegistry } from '../../../functions/edge/registry.ts';
import { EDGE, testEnv } from './edge.ts';
import { testRegistry } from './models.ts';
import { type Behaviour, fakeOrigin, wellBehaved } from './origin.ts';

export interface QueuedMessage {
  id: string;
  body: JobMessage;
  attempts: number;
  delaySeconds: number;
}

/** A `Queue` binding that records messages. */
export class RecordingQueue {
  pending: QueuedMessage[] = [];
  sent: QueuedMessage[] = [];
  #next = 0;

  async send(body: unknown, options: QueueSendOptions = {}): Promise<void> {
    this.#push(body as JobMessage, options.delaySeconds ?? 0, 1);
  }

  async sendBatch(messages: Iterable<MessageSendRequest>, options: QueueSendBatchOptions = {}): Promise<void> {
    for (const m of messages) this.#push(m.body as JobMessage, m.delaySeconds ?? options.delaySeconds ?? 0, 1);
  }

  /** Puts a message back as the queue does on retry: same id, one more attempt. */
  requeue(message: QueuedMessage, delaySeconds: number): void {
    const again = { ...message, attempts: message.attempts + 1, delaySeconds };
    this.pending.push(again);
  }

  #push(body: JobMessage, delaySeconds: number, attempts: number): void {
    const m = { id: `m${++this.#next}`, body: structuredClone(body), attempts, delaySeconds };
    this.pending.push(m);
    this.sent.push(m);
  }
}

/** One webhook request as the receiver saw it. */
export interface Received {
  url: string;
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  verified: boolean;
  event?: { type: string; data: Record<string, unknown> };
}

/**
 * A webhook receiver: verifies with `standardwebhooks` against the secret of the endpoint the URL
 * belongs to (set after registering), answers with `respond` (200 by default).
 */
export function webhookReceiver() {
  const secrets = new Map<string, string[]>();
  const received: Received[] = [];
  let respond: (r: Received, nth: number) => number = () => 200;
  const fetch = async (url: string, init: RequestInit): Promise<Response> => {
    const headers = new Headers(init.headers);
    const r: Received = {
      url,
      id: headers.get('webhook-id') ?? '',
      timestamp: headers.get('webhook-timestamp') ?? '',
      signature: headers.get('webhook-signature') ?? '',
      body: String(init.body),
      verified: false,
    };
    for (const secret of secrets.get(url) ?? []) {
      try {
        r.event = new Webhook(secret).verify(r.body, { 'webhook-id': r.id, 'webhook-timestamp': r.timestamp, 'webhook-signature': r.signature }) as Received['event'];
        r.verified = true;
        break;
      } catch {
        // try the next secret
      }
    }
    received.push(r);
    const status = respond(r, received.filter((x) => x.id === r.id).length);
    return new Response(status === 200 ? 'ok' : 'no', { status });
  };
  return {
    secrets,
    received,
    fetch,
    respondWith(f: (r: Received, nth: number) => number) {
      respond = f;
    },
  };
}

/**
 * The Worker's handlers with the test registry, a fake origin, the recording queue and the receiver.
 *
 * @example
 * const t = testWorker()
 * await t.fetch('/v1/jobs', { method: 'POST', ... })
 * await t.drain()
 */
export function testWorker(options: { behaviour?: Behaviour; registry?: () => Promise<ModelRegistry>; env?: Partial<Env> } = {}) {
  let behaviour: Behaviour = options.behaviour ?? wellBehaved;
  const origin = fakeOrigin((request, attempt) => behaviour(request, attempt));
  const receiver = webhookReceiver();
  const queue = new RecordingQueue();
  const dlq = new RecordingQueue();
  const clock = { skipped: 0 };
  let random = 0.5;
  const deps: BackgroundDeps = {
    registry: options.registry ?? testRegistry,
    config: { originBackoffMs: 10, originAttempts: 1 },
    origin: origin.deps,
    breakers: new BreakerRegistry(),
    webhookFetch: receiver.fetch,
    now: () => Date.now() + clock.skipped,
    random: () => random,
  };
  const worker = createWorker(deps);
  const env = { ...testEnv, JOBS: queue as unknown as Queue, JOBS_DLQ: dlq as unknown as Queue, ...options.env } as Env;
  return {
    deps,
    env,
    origin,
    receiver,
    queue,
    dlq,
    clock,
    setBehaviour(b: Behaviour) {
      behaviour = b;
    },
    setRandom(r: number) {
      random = r;
    },
    async fetch(path: string, init: RequestInit = {}): Promise<Response> {
      const ctx = createExecutionContext();
      const response = await worker.fetch(new Request(`${EDGE}${path}`, init), env, ctx);
      await waitOnExecutionContext(ctx);
      return response;
    },
    async scheduled(): Promise<void> {
      const { createScheduledController } = await import('cloudflare:test');
      const ctx = createExecutionContext();
      await worker.scheduled(createScheduledController({ scheduledTime: new Date(), cron: '7 * * * *' }), env, ctx);
      await waitOnExecutionContext(ctx);
    },
    /**
     * Delivers pending messages in batches of up to 10 until none is left or `rounds` batches ran;
     * retried messages come back with one more attempt. Returns every batch's outcome.
     */
    async drain(rounds = 1000) {
      const outcomes: { acked: number; retried: number }[] = [];
      for (let i = 0; i < rounds && queue.pending.length; i++) {
        const messages = queue.pending.splice(0, 10);
        const batch = createMessageBatch<JobMessage>(
          'latentsight-jobs',
          messages.map((m) => ({ id: m.id, timestamp: new Date(), attempts: m.attempts, body: m.body })),
        );
        const ctx = createExecutionContext();
        await worker.queue(batch, env, ctx);
        const result = await getQueueResult(batch, ctx);
        for (const r of result.retryMessages) {
          const m = messages.find((x) => x.id === r.msgId)!;
          queue.requeue(m, r.delaySeconds ?? 0);
        }
        outcomes.push({ acked: result.explicitAcks.length, retried: result.retryMessages.length });
      }
      return outcomes;
    },
  };
}

/** Registers a webhook endpoint through the API and gives its secret to the receiver. */
export async function registerEndpoint(t: ReturnType<typeof testWorker>, key: string, url: string, events?: string[]) {
  const response = await t.fetch('/v1/webhooks', {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url, ...(events ? { events } : {}) }),
  });
  const body = await response.json<{ id: string; url: string; secret: string }>();
  if (response.status !== 201) throw new Error(`register: ${response.status} ${JSON.stringify(body)}`);
  t.receiver.secrets.set(body.url, [body.secret]);
  return body;
}
