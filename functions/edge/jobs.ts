/**
 * Running an async job from the `JOBS` queue:
 *
 *   claim (TenantStore; a finished job is a redelivered message: only re-queue its deliveries)
 *   -> bitstream from R2 -> analysis (cache, decode, origin) -> result + event deliveries in one
 *   transaction -> deliveries to the queue -> the job's bitstream copy deleted -> ack
 *
 * The origin being down is not a failure: the job goes back to `queued` and a new message comes
 * back after an exponential backoff with jitter (base `JOB_RETRY_BASE_SECONDS`, cap
 * `JOB_RETRY_MAX_SECONDS`), for up to `JOB_MAX_AGE_SECONDS`; that path does not spend the queue's
 * retries. A stream or model problem fails the job at once (`analysis.failed`). Anything unexpected
 * is retried by the queue, and on the message's last delivery (`max_retries`) the job is marked
 * failed before the message moves to the dead letter queue, so no job stays queued forever.
 */
import { analyzeBytes, modelsByTask, originUnavailable, resultDigests } from './analysis.ts';
import { type BackgroundDeps, type JobMessage, type JobsConfig, MAX_QUEUE_DELAY_SECONDS, queueDeliveries } from './background.ts';
import { ProblemError } from './problem.ts';
import type { Task } from './registry.ts';
import { streamProblem } from './stream-problems.ts';
import { type JobRecord, MAX_STORED_RESULT_BYTES } from './tenant-store.ts';
import { log } from './log.ts';

/**
 * The R2 key of a job's bitstream, kept from submission until the job completes.
 *
 * @example
 * jobBitstreamKey('acme', 'job_ab12') // 'jobs/acme/job_ab12.lsb'
 */
export function jobBitstreamKey(tenant: string, id: string): string {
  return `jobs/${encodeURIComponent(tenant)}/${id}.lsb`;
}

/**
 * The R2 key of a job's result when it is too large for the tenant's store.
 *
 * @example
 * jobResultKey('acme', 'job_ab12') // 'jobs/acme/job_ab12.result.json'
 */
export function jobResultKey(tenant: string, id: string): string {
  return `jobs/${encodeURIComponent(tenant)}/${id}.result.json`;
}

/**
 * Runs one job message; acknowledges or retries it.
 *
 * @example
 * await runJob(message, env, deps, readJobsConfig(env))
 */
export async function runJob(message: Message<JobMessage>, body: Extract<JobMessage, { kind: 'job' }>, env: Env, deps: BackgroundDeps, config: JobsConfig): Promise<void> {
  const { tenant, id } = body;
  const store = env.TENANTS.getByName(tenant);
  // The RPC type of a record with `unknown` members (metadata, results) collapses; it is a JobRecord.
  const { job, run } = (await store.claimJob(id, deps.now())) as { job: JobRecord | null; run: boolean };
  if (!job) {
    log.warn('job message for an unknown job', { tenant, job_id: id });
    message.ack();
    return;
  }
  if (!run) {
    // A redelivered message of a finished job: its events may not have reached the queue yet.
    await queueDeliveries(env, tenant, await store.unqueuedDeliveries(id));
    message.ack();
    return;
  }
  try {
    const object = await env.BITSTREAMS.get(jobBitstreamKey(tenant, id));
    if (!object) throw new ProblemError('internal-error', 'BITSTREAM_MISSING', 'The stored bitstream of this job is missing.');
    const bytes = new Uint8Array(await object.arrayBuffer());
    const analysis = await analyzeBytes(bytes, job.tasks as Task[], env, deps, id);
    const models = modelsByTask(analysis.models);
    let result: Record<string, unknown> | null = analysis.results;
    const json = JSON.stringify(analysis.results);
    if (new TextEncoder().encode(json).length > MAX_STORED_RESULT_BYTES) {
      await env.BITSTREAMS.put(jobResultKey(tenant, id), json, { httpMetadata: { contentType: 'application/json' } });
      result = null;
    }
    const data = { job_id: id, status: 'completed', bitstream_sha256: job.bitstream_sha256, models, results: analysis.results, metadata: job.metadata };
    const now = deps.now();
    const { deliveries } = await store.finishJob(id, { status: 'completed', result, result_in_r2: result === null, models }, data, now);
    await store.putEvaluation(job.bitstream_sha256, {
      models: Object.fromEntries(analysis.models.map((m) => [m.task, `${m.id}@${m.version}`])),
      digests: await resultDigests(analysis.results),
      updated_at: now,
    });
    await queueDeliveries(env, tenant, deliveries);
    await env.BITSTREAMS.delete(jobBitstreamKey(tenant, id));
    message.ack();
  } catch (error) {
    await handleFailure(error, message, job, env, deps, config);
  }
}

async function handleFailure(error: unknown, message: Message<JobMessage>, job: JobRecord, env: Env, deps: BackgroundDeps, config: JobsConfig): Promise<void> {
  const tenantOf = (message.body as Extract<JobMessage, { kind: 'job' }>).tenant;
  const store = env.TENANTS.getByName(tenantOf);
  const now = deps.now();
  if (originUnavailable(error)) {
    if (now - job.created_at >= config.jobMaxAgeSeconds * 1000) {
      await fail(env, deps, tenantOf, job, { code: error.code, detail: `The inference origin stayed unavailable for ${config.jobMaxAgeSeconds} s.` });
      message.ack();
      return;
    }
    const delaySeconds = backoffSeconds(job.attempts, config.jobRetryBaseSeconds, config.jobRetryMaxSeconds, deps.random);
    await store.deferJob(job.id, { code: error.code, detail: `The inference origin is unavailable; next attempt in about ${delaySeconds} s.` }, now);
    // The new message first: if the ack is lost, the duplicate finds the job claimed or finished.
    await env.JOBS.send({ kind: 'job', tenant: tenantOf, id: job.id } satisfies JobMessage, { delaySeconds });
    message.ack();
    return;
  }
  const problem = error instanceof ProblemError ? error : streamProblem(error);
  if (problem && problem.kind !== 'internal-error') {
    await fail(env, deps, tenantOf, job, { code: problem.code, detail: problem.detail });
    message.ack();
    return;
  }
  log.error('job failed unexpectedly', { job_id: job.id, attempts: message.attempts, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
  if (message.attempts > config.queueMaxRetries) {
    // The queue's last try: the message goes to the dead letter queue, the job is failed for good.
    await fail(env, deps, tenantOf, job, { code: 'INTERNAL', detail: 'The job failed repeatedly; it was moved to the dead letter queue.' });
  } else {
    await store.deferJob(job.id, { code: 'INTERNAL', detail: 'The job failed unexpectedly and will be retried.' }, now);
  }
  message.retry({ delaySeconds: backoffSeconds(message.attempts, config.jobRetryBaseSeconds, config.jobRetryMaxSeconds, deps.random) });
}

async function fail(env: Env, deps: BackgroundDeps, tenant: string, job: JobRecord, error: { code: string; detail: string }): Promise<void> {
  const store = env.TENANTS.getByName(tenant);
  const data = { job_id: job.id, status: 'failed', bitstream_sha256: job.bitstream_sha256, error, metadata: job.metadata };
  const { deliveries } = await store.finishJob(job.id, { status: 'failed', error }, data, deps.now());
  await queueDeliveries(env, tenant, deliveries);
}

/**
 * Exponential backoff with equal jitter: attempt n waits between half and all of base * 2^(n-1),
 * capped; never less than a second.
 *
 * @example
 * backoffSeconds(3, 10, 600, Math.random) // 20..40
 */
export function backoffSeconds(attempt: number, baseSeconds: number, maxSeconds: number, random: () => number): number {
  const nominal = Math.min(maxSeconds, baseSeconds * 2 ** Math.max(0, attempt - 1), MAX_QUEUE_DELAY_SECONDS);
  return Math.max(1, Math.round(nominal / 2 + random() * (nominal / 2)));
}
