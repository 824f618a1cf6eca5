/**
 * Async jobs:
 *
 * - `POST /v1/jobs?tasks=...&callback_url=...` with the bitstream as the body, or
 *   `POST /v1/jobs` with JSON `{"bitstream": "<base64>", "tasks": [...], "callback_url": "...", "metadata": {...}}`
 *   -> 202 `{id, status, ...}` with `Location: /v1/jobs/{id}`. The stream is checked in full (container,
 *   codec, task models) before the job is accepted, so a job fails later only for want of the origin.
 * - `GET /v1/jobs/{id}` -> the job: status (`queued`, `running`, `completed`, `failed`), result or error.
 * - `GET /v1/jobs/{id}/deliveries` -> the delivery log of the job's events.
 *
 * The bitstream waits in R2 (`jobs/<tenant>/<id>.lsb`) and the job's state in the tenant's
 * `TenantStore`; the queue message only names the job.
 */
import type { Context } from 'hono';
import { selectModels } from '../analysis.ts';
import { storeBitstream } from '../archive.ts';
import { authenticate, requireScope } from '../auth.ts';
import type { JobMessage } from '../background.ts';
import { readJobsConfig } from '../background.ts';
import { checkMediaType, readBitstream, readBodyBounded } from '../body.ts';
import { checkCallbackUrl } from '../callback-url.ts';
import { readConfig } from '../config.ts';
import type { AppEnv } from '../context.ts';
import { checkStream } from '../decode.ts';
import { hex, sha256 } from '../digest.ts';
import { jobBitstreamKey, jobResultKey } from '../jobs.ts';
import { ProblemError } from '../problem.ts';
import { rateLimited, takeToken } from '../rate-limit.ts';
import { TASKS, type Task } from '../registry.ts';
import type { JobRecord } from '../tenant-store.ts';
import { ANALYZE_SCOPE, parseTasks } from './analyze.ts';

/** Largest `metadata`, serialised as JSON; it is echoed in every event of the job. */
export const MAX_METADATA_BYTES = 4096;

/**
 * Largest body of POST /v1/jobs: a base64 bitstream of the largest accepted size plus room for
 * the other members.
 *
 * @example
 * jobsBodyLimit(env) // 5_656_576 with MAX_BODY_BYTES = 4194304
 */
export function jobsBodyLimit(env: Env): number {
  return Math.ceil((readConfig(env).maxBodyBytes * 4) / 3) + 64 * 1024;
}

interface Submission {
  bytes: Uint8Array;
  tasks: Task[] | undefined;
  callbackUrl: string | undefined;
  metadata: Record<string, unknown> | null;
}

/** Handles POST /v1/jobs. */
export async function createJob(c: Context<AppEnv>): Promise<Response> {
  const deps = c.get('deps');
  const config = readConfig(c.env, deps.config);
  const key = await authenticate(c.req.header('authorization'), c.env.API_KEYS);
  requireScope(key, ANALYZE_SCOPE);
  const rate = await takeToken(c.env, key, config.defaultRateLimitPerMinute, (work) => c.executionCtx.waitUntil(work));
  if (!rate.allowed) throw rateLimited(rate);
  const submission = isJson(c.req.header('content-type')) ? await readJson(c) : await readRaw(c, config.maxBodyBytes, config.limits);
  const registry = await deps.registry(c.env);
  const { stream, codec } = checkStream(submission.bytes, registry, config.limits);
  const models = selectModels(registry, codec.id, submission.tasks);
  const store = c.env.TENANTS.getByName(key.tenant);
  let callbackUrl: string | null = null;
  if (submission.callbackUrl !== undefined) {
    callbackUrl = checkCallbackUrl(submission.callbackUrl, { development: readJobsConfig(c.env).development });
    if (!(await store.hasEndpointUrl(callbackUrl))) {
      throw new ProblemError('invalid-callback-url', 'CALLBACK_URL_NOT_REGISTERED', 'callback_url must be the URL of one of your webhook endpoints; register it with POST /v1/webhooks first.');
    }
  }
  const digest = hex(await sha256(submission.bytes));
  const id = `job_${crypto.randomUUID().replaceAll('-', '')}`;
  const header = stream.header;
  await c.env.BITSTREAMS.put(jobBitstreamKey(key.tenant, id), submission.bytes, { customMetadata: { codec: header.modelId, request_id: c.get('requestId') } });
  if (key.store_bitstreams) await storeBitstream(c.env.BITSTREAMS, key.tenant, digest, submission.bytes, header, c.get('requestId'));
  const tasks = models.map((m) => m.task);
  await store.createJob(
    { id, tasks, callback_url: callbackUrl, metadata: submission.metadata, bitstream_sha256: digest, codec: codec.id, width: header.width, height: header.height },
    Date.now(),
  );
  try {
    await c.env.JOBS.send({ kind: 'job', tenant: key.tenant, id } satisfies JobMessage);
  } catch (error) {
    // Not queued: forget the job rather than show one that will never run.
    await store.discardJob(id);
    await c.env.BITSTREAMS.delete(jobBitstreamKey(key.tenant, id));
    throw error;
  }
  const job = await store.getJob(id);
  return c.json(await jobView(job!, c.env, key.tenant), 202, { location: `/v1/jobs/${id}`, 'cache-control': 'no-store' });
}

/** Handles GET /v1/jobs/{id}. */
export async function getJob(c: Context<AppEnv>): Promise<Response> {
  const key = await authenticate(c.req.header('authorization'), c.env.API_KEYS);
  requireScope(key, ANALYZE_SCOPE);
  const job = await c.env.TENANTS.getByName(key.tenant).getJob(c.req.param('id') ?? '');
  if (!job) throw jobNotFound(c.req.param('id'));
  return c.json(await jobView(job, c.env, key.tenant), 200, { 'cache-control': 'no-store' });
}

/** Handles GET /v1/jobs/{id}/deliveries. */
export async function getJobDeliveries(c: Context<AppEnv>): Promise<Response> {
  const key = await authenticate(c.req.header('authorization'), c.env.API_KEYS);
  requireScope(key, ANALYZE_SCOPE);
  const store = c.env.TENANTS.getByName(key.tenant);
  const id = c.req.param('id') ?? '';
  if (!(await store.getJob(id))) throw jobNotFound(id);
  const deliveries = (await store.deliveriesForJob(id)).map((d) => ({
    ...d,
    next_attempt_at: d.next_attempt_at === null ? null : new Date(d.next_attempt_at).toISOString(),
    attempts: d.attempts.map((a) => ({ ...a, at: new Date(a.at).toISOString() })),
  }));
  return c.json({ job_id: id, deliveries }, 200, { 'cache-control': 'no-store' });
}

/** A job as the API shows it. */
async function jobView(job: JobRecord, env: Env, tenant: string) {
  let result = job.result;
  if (job.status === 'completed' && job.result_in_r2) {
    const object = await env.BITSTREAMS.get(jobResultKey(tenant, job.id));
    result = object ? await object.json() : null;
  }
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: job.id,
    status: job.status,
    tasks: job.tasks,
    bitstream_sha256: job.bitstream_sha256,
    image: { width: job.width, height: job.height },
    callback_url: job.callback_url,
    metadata: job.metadata,
    attempts: job.attempts,
    created_at: iso(job.created_at),
    updated_at: iso(job.updated_at),
    finished_at: iso(job.finished_at),
    ...(job.status === 'completed' ? { results: result, models: job.models } : {}),
    ...(job.status === 'failed' ? { error: job.error } : {}),
    ...(job.status !== 'completed' && job.status !== 'failed' && job.error ? { last_error: job.error } : {}),
  };
}

function jobNotFound(id: string | undefined): ProblemError {
  return new ProblemError('not-found', 'JOB_NOT_FOUND', `No job ${JSON.stringify(id ?? '')} belongs to this API key's tenant.`);
}

function isJson(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  return type === 'application/json';
}

/** The raw-body form: the bitstream as the body, `tasks` and `callback_url` in the query. */
async function readRaw(c: Context<AppEnv>, maxBytes: number, limits: ReturnType<typeof readConfig>['limits']): Promise<Submission> {
  const tasks = parseTasks(c.req.query('tasks'));
  checkMediaType(c.req.raw.headers);
  const { bytes } = await readBitstream(c.req.raw, { maxBytes, limits });
  return { bytes, tasks, callbackUrl: c.req.query('callback_url'), metadata: null };
}

/** The JSON form. Every member is checked; unknown members are refused (a typo must not pass silently). */
async function readJson(c: Context<AppEnv>): Promise<Submission> {
  const limit = jobsBodyLimit(c.env);
  const text = await readText(c.req.raw, limit);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid('INVALID_JSON', 'The body is not valid JSON.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('INVALID_JSON', 'The body must be a JSON object.');
  const body = value as Record<string, unknown>;
  const unknown = Object.keys(body).filter((k) => !['bitstream', 'tasks', 'callback_url', 'metadata'].includes(k));
  if (unknown.length) throw invalid('INVALID_FIELD', `Unknown member(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}; allowed: bitstream, tasks, callback_url, metadata.`);
  if (typeof body.bitstream !== 'string' || body.bitstream.length === 0) throw invalid('INVALID_FIELD', '"bitstream" must be the base64 of a bitstream.');
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(body.bitstream), (ch) => ch.charCodeAt(0));
  } catch {
    throw invalid('INVALID_FIELD', '"bitstream" is not valid base64.');
  }
  const maxBytes = readConfig(c.env, c.get('deps').config).maxBodyBytes;
  if (bytes.length > maxBytes) throw new ProblemError('content-too-large', 'BODY_TOO_LARGE', `The bitstream is larger than ${maxBytes} bytes.`);
  let tasks: Task[] | undefined;
  if (body.tasks !== undefined) {
    if (!Array.isArray(body.tasks) || body.tasks.some((t) => typeof t !== 'string')) throw invalid('INVALID_FIELD', `"tasks" must be an array of ${Object.keys(TASKS).join(', ')}.`);
    tasks = parseTasks((body.tasks as string[]).join(','));
  }
  if (body.callback_url !== undefined && typeof body.callback_url !== 'string') throw invalid('INVALID_FIELD', '"callback_url" must be a string.');
  let metadata: Record<string, unknown> | null = null;
  if (body.metadata !== undefined && body.metadata !== null) {
    if (typeof body.metadata !== 'object' || Array.isArray(body.metadata)) throw invalid('INVALID_FIELD', '"metadata" must be a JSON object.');
    metadata = body.metadata as Record<string, unknown>;
    const size = new TextEncoder().encode(JSON.stringify(metadata)).length;
    if (size > MAX_METADATA_BYTES) throw new ProblemError('content-too-large', 'METADATA_TOO_LARGE', `"metadata" is ${size} bytes as JSON; at most ${MAX_METADATA_BYTES} are kept.`);
  }
  return { bytes, tasks, callbackUrl: body.callback_url as string | undefined, metadata };
}

async function readText(request: Request, maxBytes: number): Promise<string> {
  return new TextDecoder().decode(await readBodyBounded(request, maxBytes));
}

function invalid(code: string, detail: string): ProblemError {
  return new ProblemError('invalid-request', code, detail);
}
