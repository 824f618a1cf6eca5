/**
 * Operator routes (keys with the `admin` scope):
 *
 * - `POST /v1/admin/reevaluations {tenant?, from?, to?}` -> 202: re-analyses the stored bitstreams of
 *   a tenant (or every tenant) uploaded in a date range (ISO 8601, inclusive; open when absent) with
 *   the served models, and sends `analysis.updated` where a result changed;
 * - `GET /v1/admin/reevaluations` -> the 20 latest runs; `GET /v1/admin/reevaluations/{id}` -> one run's progress.
 */
import type { Context } from 'hono';
import { authenticate, requireScope } from '../auth.ts';
import type { AppEnv } from '../context.ts';
import { ProblemError } from '../problem.ts';
import { type Run, servedModels, startRun } from '../reeval.ts';

/** The scope of the admin routes. */
export const ADMIN_SCOPE = 'admin';

/** Handles POST /v1/admin/reevaluations. */
export async function createReevaluation(c: Context<AppEnv>): Promise<Response> {
  const key = await authenticate(c.req.header('authorization'), c.env.API_KEYS);
  requireScope(key, ADMIN_SCOPE);
  const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') throw new ProblemError('unsupported-media-type', 'UNSUPPORTED_MEDIA_TYPE', 'Send the scope as application/json: {"tenant": ..., "from": ..., "to": ...}.');
  const text = await c.req.text();
  if (text.length > 4096) throw new ProblemError('content-too-large', 'BODY_TOO_LARGE', 'The body is larger than 4096 bytes.');
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    throw new ProblemError('invalid-request', 'INVALID_JSON', 'The body is not valid JSON.');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ProblemError('invalid-request', 'INVALID_JSON', 'The body must be a JSON object.');
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !['tenant', 'from', 'to'].includes(k));
  if (unknown.length) throw invalid(`Unknown member(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}; allowed: tenant, from, to.`);
  if (b.tenant !== undefined && (typeof b.tenant !== 'string' || b.tenant.length === 0 || b.tenant.length > 128)) throw invalid('"tenant" must be a tenant name.');
  const from = date(b.from, 'from');
  const to = date(b.to, 'to');
  if (from !== null && to !== null && from > to) throw invalid('"from" is after "to".');
  const reevaluator = c.env.REEVAL.getByName('global');
  const served = servedModels(await c.get('deps').registry(c.env));
  const run = await startRun(c.env, { tenant: (b.tenant as string | undefined) ?? null, from, to }, `requested by an admin key (${key.tenant})`, await reevaluator.seenModels(), served, Date.now());
  return c.json(view(run), 202, { location: `/v1/admin/reevaluations/${run.id}`, 'cache-control': 'no-store' });
}

/** Handles GET /v1/admin/reevaluations/{id}. */
export async function getReevaluation(c: Context<AppEnv>): Promise<Response> {
  const key = await authenticate(c.req.header('authorization'), c.env.API_KEYS);
  requireScope(key, ADMIN_SCOPE);
  const id = c.req.param('id') ?? '';
  const run = await c.env.REEVAL.getByName('global').getRun(id);
  if (!run) throw new ProblemError('not-found', 'REEVALUATION_NOT_FOUND', `No re-evaluation ${JSON.stringify(id)}.`);
  return c.json(view(run), 200, { 'cache-control': 'no-store' });
}

/** Handles GET /v1/admin/reevaluations. */
export async function listReevaluations(c: Context<AppEnv>): Promise<Response> {
  const key = await authenticate(c.req.header('authorization'), c.env.API_KEYS);
  requireScope(key, ADMIN_SCOPE);
  const runs = await c.env.REEVAL.getByName('global').listRuns(20);
  return c.json({ data: runs.map(view) }, 200, { 'cache-control': 'no-store' });
}

function view(run: Run) {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  const done = Object.values(run.done).reduce((a, b) => a + b, 0);
  return {
    id: run.id,
    status: run.status,
    reason: run.reason,
    scope: { tenant: run.tenant, from: iso(run.from), to: iso(run.to) },
    models: { previous: run.previous, target: run.target },
    progress: { pages: run.pages, listing_done: run.listing_done, listed: run.listed, queued: run.queued, done, ...run.done },
    created_at: iso(run.created_at),
    finished_at: iso(run.finished_at),
  };
}

function date(value: unknown, name: string): number | null {
  if (value === undefined || value === null) return null;
  const ms = typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) throw invalid(`"${name}" must be an ISO 8601 date or date-time, e.g. "2026-05-01" or "2026-05-01T12:00:00Z".`);
  return ms;
}

function invalid(detail: string): ProblemError {
  return new ProblemError('invalid-request', 'INVALID_FIELD', detail);
}
