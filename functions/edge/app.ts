/**
 * The edge's HTTP app: request ids, routes and the one error handler that turns every failure into
 * a problem+json response. Handlers stay thin: parsing, decoding and formatting live in `src/` and
 * in this folder's single-purpose modules.
 */
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { discardUnreadBody } from './body.ts';
import { log as logger } from './log.ts';
import { BreakerRegistry } from './breaker.ts';
import type { AppDeps, AppEnv } from './context.ts';
import { BUNDLED_TABLES, MANIFEST } from './models.ts';
import { OriginError, defaultOriginDeps } from './origin.ts';
import { PROBLEM_TYPES, ProblemError, type ProblemKind, problemOf, problemResponse } from './problem.ts';
import { type ModelRegistry, loadRegistry } from './registry.ts';
import { idempotent } from './idempotency.ts';
import { createReevaluation, getReevaluation, listReevaluations } from './routes/admin.ts';
import { analyze } from './routes/analyze.ts';
import { docsPage, openApiDocument } from './routes/docs.ts';
import { createJob, getJob, getJobDeliveries, jobsBodyLimit } from './routes/jobs.ts';
import { listModels } from './routes/models.ts';
import { createWebhook, deleteWebhook, listWebhooks, rotateWebhookSecret } from './routes/webhooks.ts';
import { readConfig } from './config.ts';
import { streamProblem } from './stream-problems.ts';

/** A client's X-Request-Id is kept if it looks like an id; otherwise the edge makes one. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * Builds the app. Production uses the defaults (bundled models, real network); tests pass their
 * own registry, settings and origin.
 *
 * @example
 * const app = createApp({ config: { originAttempts: 1 } })
 * await app.fetch(request, env, ctx)
 */
export function createApp(overrides: Partial<AppDeps> = {}): Hono<AppEnv> {
  const deps: AppDeps = {
    registry: overrides.registry ?? bundledRegistry(),
    config: overrides.config ?? {},
    origin: overrides.origin ?? defaultOriginDeps,
    breakers: overrides.breakers ?? new BreakerRegistry(),
  };
  const app = new Hono<AppEnv>();

  // Request id (carried to the origin in X-Request-Id) and one log line per request, errors included.
  app.use(async (c, next) => {
    const started = Date.now();
    const given = c.req.header('x-request-id');
    c.set('requestId', given && REQUEST_ID.test(given) ? given : crypto.randomUUID());
    c.set('deps', deps);
    await next();
    // Most requests read their body or have none: only the rest pays for the config lookup.
    if (c.req.raw.body && !c.req.raw.bodyUsed) await discardUnreadBody(c.req.raw, readConfig(c.env, deps.config).maxBodyBytes);
    c.header('x-request-id', c.get('requestId'));
    // Workers' clocks advance only across I/O, so `ms` is the request's wall time spent waiting (KV, origin).
    const fields = { request_id: c.get('requestId'), method: c.req.method, path: c.req.path, status: c.res.status, ms: Date.now() - started };
    if (c.req.path === '/healthz' && c.res.status === 200) logger.debug('request', fields);
    else logger.info('request', fields);
  });

  // Browsers may call the API from any page: keys travel in Authorization, never in cookies, so a
  // wildcard origin grants nothing that the key does not.
  app.use(
    '/v1/*',
    cors({
      origin: '*',
      allowMethods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
      allowHeaders: ['authorization', 'content-type', 'x-request-id', 'idempotency-key'],
      exposeHeaders: ['x-request-id', 'location', 'idempotent-replayed', 'server-timing', 'retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'www-authenticate'],
      maxAge: 86400,
    }),
  );
  app.use('/v1/*', async (c, next) => {
    await next();
    // Lets pages read Server-Timing across origins (Resource Timing API).
    c.header('timing-allow-origin', '*');
  });

  // Liveness only: it touches no binding, so it answers even while KV, R2 or the origin are down.
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/v1/models', listModels);
  // Idempotency-Key on the POST routes that create something (middleware: its own route entry would count as an operation).
  app.use('/v1/analyze', idempotent((env) => readConfig(env, deps.config).maxBodyBytes));
  app.use('/v1/jobs', idempotent(jobsBodyLimit));
  app.post('/v1/analyze', analyze);
  app.post('/v1/jobs', createJob);
  app.get('/v1/jobs/:id', getJob);
  app.get('/v1/jobs/:id/deliveries', getJobDeliveries);
  app.post('/v1/webhooks', createWebhook);
  app.get('/v1/webhooks', listWebhooks);
  app.delete('/v1/webhooks/:id', deleteWebhook);
  app.post('/v1/webhooks/:id/rotate', rotateWebhookSecret);
  app.post('/v1/admin/reevaluations', createReevaluation);
  app.get('/v1/admin/reevaluations', listReevaluations);
  app.get('/v1/admin/reevaluations/:id', getReevaluation);
  app.get('/openapi.json', openApiDocument);
  app.get('/docs', docsPage);

  app.notFound((c) => {
    const path = new URL(c.req.url).pathname;
    return problem(c.get('requestId'), path, new ProblemError('not-found', 'NOT_FOUND', `No route matches ${c.req.method} ${path}.`));
  });

  // The one place where an error becomes an HTTP status.
  app.onError((error, c) => {
    const requestId = c.get('requestId') ?? crypto.randomUUID();
    const path = new URL(c.req.url).pathname;
    const known = toProblem(error);
    if (!known || known.kind === 'internal-error' || known.kind === 'bad-gateway') {
      logger.error('request failed', { request_id: requestId, path, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
    }
    return problem(requestId, path, known ?? new ProblemError('internal-error', 'INTERNAL', ''));
  });
  return app;
}

/** The production dependencies, one set per isolate: the app and the background handlers share them. */
export const defaultDeps: AppDeps = { registry: bundledRegistry(), config: {}, origin: defaultOriginDeps, breakers: new BreakerRegistry() };

/** The production app, one per isolate (so its breakers and registry are shared by its requests). */
export const app = createApp(defaultDeps);

function toProblem(error: unknown): ProblemError | undefined {
  if (error instanceof ProblemError) return error;
  const stream = streamProblem(error);
  if (stream) return stream;
  if (error instanceof OriginError) {
    const kind: ProblemKind =
      error.code === 'ORIGIN_NOT_CONFIGURED' ? 'internal-error' : error.code === 'ORIGIN_BAD_RESPONSE' || error.code === 'ORIGIN_REJECTED' ? 'bad-gateway' : 'origin-unavailable';
    if (kind !== 'origin-unavailable') return new ProblemError(kind, error.code, 'The inference origin failed to answer this request; retry later, and report it if it persists.');
    const retryAfter = error.retryAfterSeconds ?? 5;
    const what =
      error.code === 'CIRCUIT_OPEN'
        ? 'is shed by the circuit breaker after repeated failures'
        : error.code === 'ORIGIN_TIMEOUT'
          ? 'is timing out'
          : error.code === 'ORIGIN_OVERLOADED'
            ? 'is at capacity'
            : 'is unavailable';
    return new ProblemError('origin-unavailable', error.code, `The inference origin ${what}; retry in ${retryAfter} s.`, {
      headers: { 'retry-after': String(retryAfter) },
      members: { retry_after: retryAfter },
    });
  }
  return undefined;
}

function problem(requestId: string, instance: string, error: ProblemError): Response {
  // An internal error's detail is fixed: messages of unexpected errors may carry internals.
  const detail = error.kind === 'internal-error' ? PROBLEM_TYPES['internal-error'].about : error.detail;
  const body = { ...problemOf(error.kind, error.code, detail, instance, requestId), ...error.extra.members };
  return problemResponse(body, { ...error.extra.headers, 'x-request-id': requestId });
}

/**
 * The registry of the bundled manifest and tables, loaded once per isolate for each value of the
 * TASK_MODELS var (comma-separated ids: the task models that serve their (codec, task) pair).
 */
function bundledRegistry(): (env: Env) => Promise<ModelRegistry> {
  const loaded = new Map<string, () => Promise<ModelRegistry>>();
  return (env) => {
    const preferred = (env.TASK_MODELS ?? '').split(',').map((id) => id.trim()).filter(Boolean);
    const key = preferred.join(',');
    let load = loaded.get(key);
    if (!load) {
      load = memo(async () => {
        const { registry, problems } = await loadRegistry(MANIFEST, BUNDLED_TABLES, preferred);
        for (const p of problems) logger.error('model not served', { problem: p });
        return registry;
      });
      loaded.set(key, load);
    }
    return load();
  };
}

/** Runs `load` once; a failure is not remembered, so the next call tries again. */
function memo<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => (pending ??= load().catch((error) => {
    pending = undefined;
    throw error;
  }));
}
