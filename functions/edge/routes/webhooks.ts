/**
 * Webhook endpoints of the key's tenant:
 *
 * - `POST /v1/webhooks {url, events}` -> 201 `{id, url, events, secret, created_at}`: the only time
 *   the secret (`whsec_...`) is shown;
 * - `GET /v1/webhooks` -> `{data: [...]}` without secrets;
 * - `DELETE /v1/webhooks/{id}` -> 204;
 * - `POST /v1/webhooks/{id}/rotate` -> 200 with the new secret: deliveries carry a signature with
 *   each of the two secrets until `previous_secret_expires_at`, so receivers can switch without a gap.
 */
import type { Context } from 'hono';
import { authenticate, requireScope } from '../auth.ts';
import { readJobsConfig } from '../background.ts';
import { checkCallbackUrl } from '../callback-url.ts';
import type { AppEnv } from '../context.ts';
import { ProblemError } from '../problem.ts';
import { EVENT_TYPES, type Endpoint, type EventType } from '../tenant-store.ts';
import { newSecret } from '../webhook-signature.ts';
import { ANALYZE_SCOPE } from './analyze.ts';

/** Endpoints a tenant may register. */
export const MAX_ENDPOINTS = 10;
/** Largest body of POST /v1/webhooks. */
const MAX_BODY_BYTES = 8192;

/** Handles POST /v1/webhooks. */
export async function createWebhook(c: Context<AppEnv>): Promise<Response> {
  const key = await authenticate(c.req.header('authorization'), c.env.API_KEYS);
  requireScope(key, ANALYZE_SCOPE);
  const body = await readBody(c.req.raw);
  const url = checkCallbackUrl(body.url, { development: readJobsConfig(c.env).development });
  let events: EventType[] = [...EVENT_TYPES];
  if (body.events !== undefined) {
    if (!Array.isArray(body.events) || body.events.length === 0 || body.events.some((e) => !EVENT_TYPES.includes(e as EventType))) {
      throw invalid(`"events" must be a non-empty array of ${EVENT_TYPES.join(', ')}.`);
    }
    events = [...new Set(body.events as EventType[])];
  }
  const created = await c.env.TENANTS.getByName(key.tenant).createEndpoint(url, events, newSecret(), MAX_ENDPOINTS, Date.now());
  if (!created) throw new ProblemError('webhook-limit-reached', 'WEBHOOK_LIMIT', `A tenant may have ${MAX_ENDPOINTS} webhook endpoints; delete one first.`);
  return c.json({ ...view(created), secret: created.secret }, 201, { location: `/v1/webhooks/${created.id}`, 'cache-control': 'no-store' });
}

/** Handles GET /v1/webhooks. */
export async function listWebhooks(c: Context<AppEnv>): Promise<Response> {
  const key = await authenticate(c.req.header('authorization'), c.env.API_KEYS);
  requireScope(key, ANALYZE_SCOPE);
  const endpoints = await c.env.TENANTS.getByName(key.tenant).listEndpoints();
  return c.json({ data: endpoints.map(view) }, 200, { 'cache-control': 'no-store' });
}

/** Handles DELETE /v1/webhooks/{id}. */
export async function deleteWebhook(c: Context<AppEnv>): Promise<Response> {
  const key = await authenticate(c.req.header('authorization'), c.env.API_KEYS);
  requireScope(key, ANALYZE_SCOPE);
  const id = c.req.param('id') ?? '';
  if (!(await c.env.TENANTS.getByName(key.tenant).deleteEndpoint(id))) throw notFound(id);
  return c.body(null, 204);
}

/** Handles POST /v1/webhooks/{id}/rotate. */
export async function rotateWebhookSecret(c: Context<AppEnv>): Promise<Response> {
  const key = await authenticate(c.req.header('authorization'), c.env.API_KEYS);
  requireScope(key, ANALYZE_SCOPE);
  const id = c.req.param('id') ?? '';
  const overlapMs = readJobsConfig(c.env).webhookSecretOverlapSeconds * 1000;
  const rotated = await c.env.TENANTS.getByName(key.tenant).rotateSecret(id, newSecret(), overlapMs, Date.now());
  if (!rotated) throw notFound(id);
  return c.json({ ...view(rotated), secret: rotated.secret }, 200, { 'cache-control': 'no-store' });
}

function view(e: Endpoint) {
  return {
    id: e.id,
    url: e.url,
    events: e.events,
    created_at: new Date(e.created_at).toISOString(),
    previous_secret_expires_at: e.previous_secret_expires_at === null ? null : new Date(e.previous_secret_expires_at).toISOString(),
  };
}

async function readBody(request: Request): Promise<{ url?: unknown; events?: unknown }> {
  const type = (request.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    throw new ProblemError('unsupported-media-type', 'UNSUPPORTED_MEDIA_TYPE', 'Send the endpoint as application/json: {"url": "https://...", "events": [...]}.');
  }
  const buffer = await new Response(request.body).arrayBuffer();
  if (buffer.byteLength > MAX_BODY_BYTES) throw new ProblemError('content-too-large', 'BODY_TOO_LARGE', `The body is larger than ${MAX_BODY_BYTES} bytes.`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(buffer));
  } catch {
    throw new ProblemError('invalid-request', 'INVALID_JSON', 'The body is not valid JSON.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ProblemError('invalid-request', 'INVALID_JSON', 'The body must be a JSON object.');
  const unknown = Object.keys(value).filter((k) => k !== 'url' && k !== 'events');
  if (unknown.length) throw invalid(`Unknown member(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}; allowed: url, events.`);
  return value as { url?: unknown; events?: unknown };
}

function invalid(detail: string): ProblemError {
  return new ProblemError('invalid-request', 'INVALID_FIELD', detail);
}

function notFound(id: string): ProblemError {
  return new ProblemError('not-found', 'WEBHOOK_NOT_FOUND', `No webhook endpoint ${JSON.stringify(id)} belongs to this API key's tenant.`);
}
