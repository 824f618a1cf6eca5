/**
 * Everything asynchronous a tenant owns, in one SQLite-backed Durable Object per tenant: its jobs,
 * webhook endpoints (with their secrets), events and deliveries with the log of every attempt, and
 * the models behind each stored bitstream's latest result (for re-evaluation).
 *
 * Why a Durable Object and not KV or D1: the queue delivers at least once, so "has this job already
 * completed?" and "has this delivery attempt already been made?" must be answered by a
 * read-your-writes store, atomically with the write that changes the answer. KV is eventually
 * consistent (a completed job can read as queued for up to a minute elsewhere) and has no
 * transactions; D1 would do, but a tenant's rows are only ever touched together, and an object per
 * tenant keeps them in one single-threaded place, its transactions local (no network round trip per
 * statement), and tenants isolated from each other by construction.
 */
import { DurableObject } from 'cloudflare:workers';

export const EVENT_TYPES = ['analysis.completed', 'analysis.failed', 'analysis.updated'] as const;
export type EventType = (typeof EVENT_TYPES)[number];
export type JobStatus = 'queued' | 'running' | 'completed' | 'failed';
export type DeliveryStatus = 'pending' | 'delivered' | 'dead';

/** Largest event body stored and sent; above it an event's `data.results` is left out (`results_omitted`). */
export const MAX_EVENT_BYTES = 256 * 1024;
/** Largest result kept in the object; a larger one goes to R2 (`result_in_r2`). */
export const MAX_STORED_RESULT_BYTES = 512 * 1024;
/** Jobs (and their deliveries) are kept this long after they finish. */
export const JOB_RETENTION_MS = 30 * 24 * 3600 * 1000;

export interface NewJob {
  id: string;
  tasks: string[];
  callback_url: string | null;
  metadata: Record<string, unknown> | null;
  bitstream_sha256: string;
  codec: string;
  width: number;
  height: number;
}

export interface JobRecord extends NewJob {
  status: JobStatus;
  attempts: number;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
  result: Record<string, unknown> | null;
  result_in_r2: boolean;
  models: Record<string, { id: string; version: string }> | null;
  error: { code: string; detail: string } | null;
}

export type JobOutcome =
  | { status: 'completed'; result: Record<string, unknown> | null; result_in_r2: boolean; models: Record<string, { id: string; version: string }> }
  | { status: 'failed'; error: { code: string; detail: string } };

export interface Endpoint {
  id: string;
  url: string;
  events: EventType[];
  created_at: number;
  /** Set while a rotated-out secret is still used to sign. */
  previous_secret_expires_at: number | null;
}

/** A delivery the queue must carry: its id and the attempt the next message makes. */
export interface DeliveryRef {
  id: string;
  attempt: number;
}

/** What one delivery attempt sends. */
export interface DeliveryWork {
  webhookId: string;
  url: string;
  secrets: string[];
  body: string;
  eventType: EventType;
}

export interface DeliveryLog {
  id: string;
  webhook_id: string;
  endpoint_id: string;
  url: string;
  event_type: EventType;
  status: DeliveryStatus;
  attempts: { attempt: number; at: number; status_code: number | null; error: string | null; duration_ms: number }[];
  next_attempt_at: number | null;
}

/** The models and per-task result digests behind a stored bitstream's latest result. */
export interface Evaluation {
  models: Record<string, string>;
  digests: Record<string, string>;
  updated_at: number;
}

type Row = Record<string, SqlStorageValue>;

/**
 * One tenant's jobs, webhook endpoints and deliveries. Reached by name: `env.TENANTS.getByName(tenant)`.
 *
 * @example
 * const job = await env.TENANTS.getByName(key.tenant).getJob(id)
 */
export class TenantStore extends DurableObject<Env> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, tasks TEXT NOT NULL, callback_url TEXT, metadata TEXT,
        bitstream_sha256 TEXT NOT NULL, codec TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, finished_at INTEGER,
        result TEXT, result_in_r2 INTEGER NOT NULL DEFAULT 0, models TEXT, error TEXT);
      CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);
      CREATE TABLE IF NOT EXISTS endpoints (
        id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL,
        previous_secret TEXT, previous_secret_expires_at INTEGER, created_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS deliveries (
        id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL, endpoint_id TEXT NOT NULL, url TEXT NOT NULL, job_id TEXT,
        event_type TEXT NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        enqueued INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS deliveries_job ON deliveries (job_id);
      CREATE TABLE IF NOT EXISTS delivery_attempts (
        delivery_id TEXT NOT NULL, attempt INTEGER NOT NULL, at INTEGER NOT NULL, status_code INTEGER, error TEXT,
        duration_ms INTEGER NOT NULL, PRIMARY KEY (delivery_id, attempt));
      CREATE TABLE IF NOT EXISTS evaluations (
        bitstream_sha256 TEXT PRIMARY KEY, models TEXT NOT NULL, digests TEXT NOT NULL, updated_at INTEGER NOT NULL);
    `);
  }

  // ---- jobs -------------------------------------------------------------------------------------

  /** Records a new job as queued (a second call with the same id changes nothing). */
  createJob(job: NewJob, now: number): void {
    this.#sql.exec(
      `INSERT OR IGNORE INTO jobs (id, status, tasks, callback_url, metadata, bitstream_sha256, codec, width, height, created_at, updated_at)
       VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      job.id, JSON.stringify(job.tasks), job.callback_url, job.metadata ? JSON.stringify(job.metadata) : null,
      job.bitstream_sha256, job.codec, job.width, job.height, now, now,
    );
    this.#prune(now);
  }

  /** Forgets a job that could not be queued (so that no record claims work that will never happen). */
  discardJob(id: string): void {
    this.#sql.exec(`DELETE FROM jobs WHERE id = ? AND status = 'queued' AND attempts = 0`, id);
  }

  getJob(id: string): JobRecord | null {
    const row = this.#sql.exec<Row>('SELECT * FROM jobs WHERE id = ?', id).toArray()[0];
    return row ? toJob(row) : null;
  }

  /**
   * Marks a job running and counts the attempt, unless it has finished (a redelivered message):
   * then `run` is false and the caller only makes sure its deliveries were queued.
   */
  claimJob(id: string, now: number): { job: JobRecord | null; run: boolean } {
    const row = this.#sql.exec<Row>('SELECT * FROM jobs WHERE id = ?', id).toArray()[0];
    if (!row) return { job: null, run: false };
    const job = toJob(row);
    if (job.status === 'completed' || job.status === 'failed') return { job, run: false };
    this.#sql.exec(`UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ? WHERE id = ?`, now, id);
    return { job: { ...job, status: 'running', attempts: job.attempts + 1 }, run: true };
  }

  /** Puts a running job back to queued while it waits for the origin; `error` says why (shown as `last_error`). */
  deferJob(id: string, error: { code: string; detail: string }, now: number): void {
    this.#sql.exec(`UPDATE jobs SET status = 'queued', error = ?, updated_at = ? WHERE id = ? AND status = 'running'`, JSON.stringify(error), now, id);
  }

  /**
   * Finishes a job once: the first call moves it to completed or failed and, in the same
   * transaction, creates its event's deliveries; later calls (redelivered messages) change nothing
   * and return no deliveries.
   */
  finishJob(id: string, outcome: JobOutcome, data: Record<string, unknown>, now: number): { finished: boolean; deliveries: DeliveryRef[] } {
    return this.ctx.storage.transactionSync(() => {
      const row = this.#sql.exec<Row>('SELECT status, callback_url FROM jobs WHERE id = ?', id).toArray()[0];
      if (!row || row.status === 'completed' || row.status === 'failed') return { finished: false, deliveries: [] };
      if (outcome.status === 'completed') {
        this.#sql.exec(
          `UPDATE jobs SET status = 'completed', result = ?, result_in_r2 = ?, models = ?, error = NULL, updated_at = ?, finished_at = ? WHERE id = ?`,
          outcome.result ? JSON.stringify(outcome.result) : null, outcome.result_in_r2 ? 1 : 0, JSON.stringify(outcome.models), now, now, id,
        );
      } else {
        this.#sql.exec(`UPDATE jobs SET status = 'failed', error = ?, updated_at = ?, finished_at = ? WHERE id = ?`, JSON.stringify(outcome.error), now, now, id);
      }
      const type: EventType = outcome.status === 'completed' ? 'analysis.completed' : 'analysis.failed';
      return { finished: true, deliveries: this.#createEvent(type, data, id, (row.callback_url as string | null) ?? null, now) };
    });
  }

  // ---- events and deliveries --------------------------------------------------------------------

  /** Creates an event that belongs to no job (`analysis.updated`) and its deliveries. */
  emitEvent(type: EventType, data: Record<string, unknown>, now: number): DeliveryRef[] {
    return this.ctx.storage.transactionSync(() => this.#createEvent(type, data, null, null, now));
  }

  /** Deliveries created but not yet handed to the queue (a crash between the two), for `jobId` or all. */
  unqueuedDeliveries(jobId: string | null): DeliveryRef[] {
    const rows = jobId
      ? this.#sql.exec<Row>(`SELECT id, attempts FROM deliveries WHERE job_id = ? AND enqueued = 0 AND status = 'pending'`, jobId).toArray()
      : this.#sql.exec<Row>(`SELECT id, attempts FROM deliveries WHERE enqueued = 0 AND status = 'pending' LIMIT 100`).toArray();
    return rows.map((r) => ({ id: r.id as string, attempt: (r.attempts as number) + 1 }));
  }

  /** Records that the queue holds these deliveries' next attempts. */
  markQueued(ids: string[]): void {
    for (const id of ids) this.#sql.exec('UPDATE deliveries SET enqueued = 1 WHERE id = ?', id);
  }

  /**
   * What attempt `attempt` of a delivery sends. Null if the delivery is finished or that attempt
   * was already logged (a redelivered message), so a logged attempt is never made again; an attempt
   * whose outcome was not logged (the consumer died) is made again, under the same `webhook-id`.
   */
  beginDelivery(id: string, attempt: number, now: number): DeliveryWork | null {
    const row = this.#sql.exec<Row>('SELECT * FROM deliveries WHERE id = ?', id).toArray()[0];
    if (!row || row.status !== 'pending' || row.attempts !== attempt - 1) return null;
    const endpoint = this.#sql.exec<Row>('SELECT * FROM endpoints WHERE id = ?', row.endpoint_id as string).toArray()[0];
    if (!endpoint) {
      // The endpoint was deleted after the event: nothing to send to.
      this.finishDelivery(id, attempt, { status_code: null, error: 'endpoint deleted', duration_ms: 0 }, { state: 'dead' }, now);
      return null;
    }
    const secrets = [endpoint.secret as string];
    const expires = endpoint.previous_secret_expires_at as number | null;
    if (endpoint.previous_secret && expires !== null && expires > now) secrets.push(endpoint.previous_secret as string);
    return { webhookId: row.webhook_id as string, url: endpoint.url as string, secrets, body: row.body as string, eventType: row.event_type as EventType };
  }

  /**
   * Logs attempt `attempt` and moves the delivery on: delivered, retried after `retryInMs`, or dead.
   * False if that attempt was already logged (a concurrent duplicate).
   */
  finishDelivery(
    id: string,
    attempt: number,
    result: { status_code: number | null; error: string | null; duration_ms: number },
    next: { state: 'delivered' } | { state: 'retry'; retryInMs: number } | { state: 'dead' },
    now: number,
  ): boolean {
    return this.ctx.storage.transactionSync(() => {
      const status: DeliveryStatus = next.state === 'retry' ? 'pending' : next.state;
      const nextAt = next.state === 'retry' ? now + next.retryInMs : null;
      const moved = this.#sql.exec(
        `UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, updated_at = ? WHERE id = ? AND attempts = ? AND status = 'pending'`,
        status, attempt, nextAt, now, id, attempt - 1,
      ).rowsWritten;
      if (moved === 0) return false;
      this.#sql.exec('INSERT OR REPLACE INTO delivery_attempts VALUES (?, ?, ?, ?, ?, ?)', id, attempt, now, result.status_code, result.error, Math.round(result.duration_ms));
      return true;
    });
  }

  /** The delivery log of a job: every delivery of its events, with every attempt. */
  deliveriesForJob(jobId: string): DeliveryLog[] {
    const rows = this.#sql.exec<Row>('SELECT * FROM deliveries WHERE job_id = ? ORDER BY created_at, id', jobId).toArray();
    return rows.map((r) => ({
      id: r.id as string,
      webhook_id: r.webhook_id as string,
      endpoint_id: r.endpoint_id as string,
      url: r.url as string,
      event_type: r.event_type as EventType,
      status: r.status as DeliveryStatus,
      next_attempt_at: (r.next_attempt_at as number | null) ?? null,
      attempts: this.#sql
        .exec<Row>('SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt', r.id as string)
        .toArray()
        .map((a) => ({
          attempt: a.attempt as number,
          at: a.at as number,
          status_code: (a.status_code as number | null) ?? null,
          error: (a.error as string | null) ?? null,
          duration_ms: a.duration_ms as number,
        })),
    }));
  }

  // ---- webhook endpoints ------------------------------------------------------------------------

  /** Registers an endpoint; null when the tenant already has `max` of them. */
  createEndpoint(url: string, events: EventType[], secret: string, max: number, now: number): (Endpoint & { secret: string }) | null {
    return this.ctx.storage.transactionSync(() => {
      const count = this.#sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM endpoints').one().n;
      if (count >= max) return null;
      const id = `ep_${crypto.randomUUID().replaceAll('-', '')}`;
      this.#sql.exec('INSERT INTO endpoints (id, url, events, secret, created_at) VALUES (?, ?, ?, ?, ?)', id, url, JSON.stringify(events), secret, now);
      return { id, url, events, created_at: now, previous_secret_expires_at: null, secret };
    });
  }

  listEndpoints(): Endpoint[] {
    return this.#sql.exec<Row>('SELECT * FROM endpoints ORDER BY created_at, id').toArray().map(toEndpoint);
  }

  /** Whether `url` (normalised) is one of the tenant's endpoints. */
  hasEndpointUrl(url: string): boolean {
    return this.#sql.exec('SELECT 1 FROM endpoints WHERE url = ?', url).toArray().length > 0;
  }

  deleteEndpoint(id: string): boolean {
    return this.#sql.exec('DELETE FROM endpoints WHERE id = ?', id).rowsWritten > 0;
  }

  /** Replaces an endpoint's secret; the old one keeps signing (beside the new) for `overlapMs`. */
  rotateSecret(id: string, secret: string, overlapMs: number, now: number): (Endpoint & { secret: string }) | null {
    const row = this.#sql.exec<Row>('SELECT * FROM endpoints WHERE id = ?', id).toArray()[0];
    if (!row) return null;
    const expires = now + overlapMs;
    this.#sql.exec('UPDATE endpoints SET previous_secret = secret, previous_secret_expires_at = ?, secret = ? WHERE id = ?', expires, secret, id);
    return { ...toEndpoint(row), previous_secret_expires_at: expires, secret };
  }

  // ---- evaluations (re-evaluation) ----------------------------------------------------------------

  getEvaluation(bitstreamSha256: string): Evaluation | null {
    const row = this.#sql.exec<Row>('SELECT * FROM evaluations WHERE bitstream_sha256 = ?', bitstreamSha256).toArray()[0];
    return row ? { models: JSON.parse(row.models as string), digests: JSON.parse(row.digests as string), updated_at: row.updated_at as number } : null;
  }

  putEvaluation(bitstreamSha256: string, evaluation: Evaluation): void {
    this.#sql.exec(
      'INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?)',
      bitstreamSha256, JSON.stringify(evaluation.models), JSON.stringify(evaluation.digests), evaluation.updated_at,
    );
  }

  // ---- internals ---------------------------------------------------------------------------------

  /**
   * One event: its body is fixed now (retries resend the same bytes under the same `webhook-id`)
   * and goes to every endpoint subscribed to its type, and to the job's callback endpoint.
   */
  #createEvent(type: EventType, data: Record<string, unknown>, jobId: string | null, callbackUrl: string | null, now: number): DeliveryRef[] {
    const webhookId = `msg_${crypto.randomUUID().replaceAll('-', '')}`;
    const body = eventBody(type, data, now);
    const refs: DeliveryRef[] = [];
    for (const endpoint of this.listEndpoints()) {
      if (!endpoint.events.includes(type) && endpoint.url !== callbackUrl) continue;
      const id = `dlv_${crypto.randomUUID().replaceAll('-', '')}`;
      this.#sql.exec(
        `INSERT INTO deliveries (id, webhook_id, endpoint_id, url, job_id, event_type, body, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
        id, webhookId, endpoint.id, endpoint.url, jobId, type, body, now, now,
      );
      refs.push({ id, attempt: 1 });
    }
    return refs;
  }

  #prune(now: number): void {
    const before = now - JOB_RETENTION_MS;
    this.#sql.exec('DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE updated_at < ? AND status != ?)', before, 'pending');
    this.#sql.exec(`DELETE FROM deliveries WHERE updated_at < ? AND status != 'pending'`, before);
    this.#sql.exec('DELETE FROM jobs WHERE finished_at < ?', before);
  }
}

/**
 * The body of an event (Standard Webhooks payload structure: `type`, `timestamp`, `data`), at most
 * `MAX_EVENT_BYTES`: a larger one loses `data.results` (fetch them from GET /v1/jobs/{id}).
 *
 * @example
 * eventBody('analysis.completed', { job_id: 'job_1', results: {...} }, Date.now())
 */
export function eventBody(type: EventType, data: Record<string, unknown>, now: number): string {
  const timestamp = new Date(now).toISOString();
  let body = JSON.stringify({ type, timestamp, data });
  if (new TextEncoder().encode(body).length > MAX_EVENT_BYTES) {
    const { results: _dropped, ...rest } = data;
    body = JSON.stringify({ type, timestamp, data: { ...rest, results_omitted: true } });
  }
  if (new TextEncoder().encode(body).length > MAX_EVENT_BYTES) throw new Error(`event ${type} is larger than ${MAX_EVENT_BYTES} bytes without its results`);
  return body;
}

function toJob(r: Row): JobRecord {
  return {
    id: r.id as string,
    status: r.status as JobStatus,
    tasks: JSON.parse(r.tasks as string),
    callback_url: (r.callback_url as string | null) ?? null,
    metadata: r.metadata ? JSON.parse(r.metadata as string) : null,
    bitstream_sha256: r.bitstream_sha256 as string,
    codec: r.codec as string,
    width: r.width as number,
    height: r.height as number,
    attempts: r.attempts as number,
    created_at: r.created_at as number,
    updated_at: r.updated_at as number,
    finished_at: (r.finished_at as number | null) ?? null,
    result: r.result ? JSON.parse(r.result as string) : null,
    result_in_r2: r.result_in_r2 === 1,
    models: r.models ? JSON.parse(r.models as string) : null,
    error: r.error ? JSON.parse(r.error as string) : null,
  };
}

function toEndpoint(r: Row): Endpoint {
  return {
    id: r.id as string,
    url: r.url as string,
    events: JSON.parse(r.events as string),
    created_at: r.created_at as number,
    previous_secret_expires_at: (r.previous_secret_expires_at as number | null) ?? null,
  };
}
