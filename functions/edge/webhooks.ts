/**
 * Webhook deliveries from the `JOBS` queue, per the Standard Webhooks specification: one attempt
 * per message, signed with every valid secret of the endpoint, under the event's fixed `webhook-id`
 * and body. A 2xx answer delivers; anything else (another status, a redirect, a timeout, a network
 * error) schedules the next attempt with exponential backoff and jitter (`webhookRetryDelay`) until
 * the retries span 24 hours; then the delivery is dead: logged, and its message is put on the dead
 * letter queue. Every attempt is logged in the tenant's store (GET /v1/jobs/{id}/deliveries).
 */
import { type BackgroundDeps, type JobMessage, type JobsConfig, webhookRetryDelay } from './background.ts';
import { checkCallbackUrl } from './callback-url.ts';
import { ProblemError } from './problem.ts';
import { signatureHeader } from './webhook-signature.ts';

/** At most this much of an endpoint's answer is read (and thrown away) before the connection is closed. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Makes one delivery attempt; acknowledges the message once the outcome is logged and any retry queued.
 *
 * @example
 * await deliver(message, message.body, env, deps, readJobsConfig(env))
 */
export async function deliver(message: Message<JobMessage>, body: Extract<JobMessage, { kind: 'delivery' }>, env: Env, deps: BackgroundDeps, config: JobsConfig): Promise<void> {
  const store = env.TENANTS.getByName(body.tenant);
  const work = await store.beginDelivery(body.id, body.attempt, deps.now());
  if (!work) {
    // Finished, or this attempt was already logged: a redelivered message.
    message.ack();
    return;
  }
  const started = deps.now();
  let outcome: { status_code: number | null; error: string | null };
  try {
    // Checked again at send time: the rules may be stricter now than when the endpoint was registered.
    const url = checkCallbackUrl(work.url, { development: config.development });
    const timestamp = Math.floor(deps.now() / 1000);
    const response = await deps.webhookFetch(url, {
      method: 'POST',
      redirect: 'manual',
      body: work.body,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'latentsight-webhooks/1',
        'webhook-id': work.webhookId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': await signatureHeader(work.secrets, work.webhookId, timestamp, work.body),
      },
      signal: AbortSignal.timeout(config.webhookTimeoutMs),
    });
    await drain(response);
    outcome = { status_code: response.status, error: response.ok ? null : `HTTP ${response.status}` };
  } catch (error) {
    const text = error instanceof ProblemError ? `${error.code}: ${error.detail}` : error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    outcome = { status_code: null, error: text.slice(0, 500) };
  }
  const result = { ...outcome, duration_ms: deps.now() - started };
  const now = deps.now();
  if (outcome.error === null) {
    await store.finishDelivery(body.id, body.attempt, result, { state: 'delivered' }, now);
    message.ack();
    return;
  }
  const nominal = webhookRetryDelay(body.attempt, config);
  if (nominal === undefined) {
    await store.finishDelivery(body.id, body.attempt, result, { state: 'dead' }, now);
    // Kept for inspection and replay: the dead letter queue is not consumed.
    await env.JOBS_DLQ.send({ ...body, reason: 'webhook retries exhausted', last_error: outcome.error });
    message.ack();
    return;
  }
  // +-20 % jitter: endpoints that failed together do not all come back at the same second.
  const delaySeconds = Math.max(1, Math.round(nominal * (0.8 + 0.4 * deps.random())));
  // The next attempt's message first: if logging fails, this message is retried and the attempt made again.
  await env.JOBS.send({ kind: 'delivery', tenant: body.tenant, id: body.id, attempt: body.attempt + 1 } satisfies JobMessage, { delaySeconds });
  await store.finishDelivery(body.id, body.attempt, result, { state: 'retry', retryInMs: delaySeconds * 1000 }, now);
  message.ack();
}

/** Reads and discards up to `MAX_ANSWER_BYTES` of an answer, so the connection can be reused. */
async function drain(response: Response): Promise<void> {
  if (!response.body) return;
  const reader = response.body.getReader();
  let read = 0;
  try {
    while (read <= MAX_ANSWER_BYTES) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}
