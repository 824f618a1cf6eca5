/**
 * The origin's HTTP surface, the KServe v2 / Triton inference protocol over HTTP/REST:
 *
 *   GET  /v2/health/live, /v2/health/ready, /metrics                      open
 *   GET  /v2                                                              server metadata
 *   GET  /v2/models/{name}[/versions/{v}]                                 model metadata
 *   GET  /v2/models/{name}[/versions/{v}]/ready                           model readiness
 *   POST /v2/models/{name}[/versions/{v}]/infer                           inference
 *
 * Everything but health and metrics needs an HMAC signature (auth.ts). Handlers stay thin: decoding
 * is in body.ts and kserve-request.ts, batching in registry.ts, encoding in kserve-response.ts.
 */
import { type Context, Hono } from 'hono';
import { signatureAuth, type AuthOptions } from './auth.ts';
import { decodeContentEncoding, maybeGzip } from './body.ts';
import { type OriginEnv, rawBody } from './context.ts';
import { OriginError, httpStatusOf } from './errors.ts';
import { INFERENCE_HEADER_CONTENT_LENGTH, parseHeaderLength } from './kserve-body.ts';
import { parseInferRequest } from './kserve-request.ts';
import { encodeInferResponse } from './kserve-response.ts';
import type { Logger } from '../../src/protocol/log.ts';
import { METRICS_CONTENT_TYPE, type OriginMetrics } from './metrics.ts';
import type { ServedModel } from './registry.ts';

export interface AppOptions {
  readonly registry: { get(name: string): ServedModel | undefined; list(): ServedModel[]; ready(): boolean };
  readonly metrics: OriginMetrics;
  readonly logger: Logger;
  readonly auth: AuthOptions;
  readonly maxBodyBytes: number;
  /** Each inference request's deadline, from arrival (ORIGIN_DEADLINE_MS). */
  readonly deadlineMs: number;
  /** Set `draining` on shutdown: readiness fails and new inference requests get 503. */
  readonly state: { draining: boolean };
  readonly serverVersion?: string;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The metrics label of a path: a handful of values, whatever the path. */
function routeOf(path: string): string {
  if (path.startsWith('/v2/health/')) return 'health';
  if (path === '/metrics') return 'metrics';
  if (path === '/v2') return 'server';
  if (!path.startsWith('/v2/models/')) return 'other';
  if (path.endsWith('/infer')) return 'infer';
  if (path.endsWith('/ready')) return 'ready';
  return 'metadata';
}

/**
 * Builds the Hono app; `main.ts` serves it, tests call `app.request(...)` or serve it on a port.
 *
 * @example
 * const app = createApp({ registry, metrics, logger, auth: { key }, maxBodyBytes: 64 << 20, deadlineMs: 10_000, state: { draining: false } });
 * serve({ fetch: app.fetch, port: 8788 });
 */
export function createApp(options: AppOptions): Hono<OriginEnv> {
  const { registry, metrics, logger, state } = options;
  const app = new Hono<OriginEnv>();

  // Request id, timing, metrics and one log line per request, around everything (errors included).
  app.use(async (c, next) => {
    const started = performance.now();
    const given = c.req.header('x-request-id');
    const requestId = given && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    const route = routeOf(c.req.path);
    c.set('requestId', requestId);
    c.set('maxBodyBytes', options.maxBodyBytes);
    await next();
    c.res.headers.set('X-Request-Id', requestId);
    const model = c.get('model') ?? '';
    const status = c.res.status;
    const ms = performance.now() - started;
    metrics.requests.inc({ route, model, code: String(status) });
    if (route === 'infer' && model) metrics.latency.observe({ model }, ms / 1000);
    const quiet = route === 'health' || route === 'metrics';
    const fields = { request_id: requestId, method: c.req.method, path: c.req.path, route, model: model || undefined, status, ms: Math.round(ms * 100) / 100 };
    if (quiet && status < 400) logger.debug('request', fields);
    else logger.info('request', fields);
  });

  app.get('/v2/health/live', (c) => c.body(null, 200));
  app.get('/v2/health/ready', (c) => {
    if (state.draining) return c.json({ error: 'shutting down' }, 400);
    if (!registry.ready()) return c.json({ error: 'a model worker has stopped; restart the origin' }, 400);
    return c.body(null, 200);
  });
  app.get('/metrics', (c) => c.body(metrics.registry.render(), 200, { 'Content-Type': METRICS_CONTENT_TYPE }));

  app.use('/v2', signatureAuth(options.auth));
  app.use('/v2/models/*', signatureAuth(options.auth));

  app.get('/v2', (c) => c.json({ name: 'latentsight-origin', version: options.serverVersion ?? '0.0.0', extensions: ['binary_tensor_data'] }));

  const model = (c: Context<OriginEnv>): ServedModel => {
    const name = c.req.param('name')!;
    const m = registry.get(name);
    if (!m) throw new OriginError('NOT_FOUND', `unknown model '${name}'; this origin serves ${registry.list().map((x) => `'${x.name}'`).join(', ') || 'no models'}`);
    c.set('model', m.name);
    const version = c.req.param('version');
    if (version !== undefined && version !== m.version) throw new OriginError('NOT_FOUND', `model '${name}' has no version '${version}'; it serves version '${m.version}' (or leave the version out)`);
    return m;
  };

  for (const base of ['/v2/models/:name', '/v2/models/:name/versions/:version']) {
    app.get(base, (c) => {
      const m = model(c);
      return c.json({ name: m.name, versions: [m.version], platform: m.platform, inputs: m.inputs, outputs: m.outputs });
    });
    app.get(`${base}/ready`, (c) => {
      const m = model(c);
      return m.ready() && !state.draining ? c.body(null, 200) : c.json({ error: `model '${m.name}' is not ready` }, 400);
    });
    app.post(`${base}/infer`, async (c) => {
      const arrived = performance.now();
      const m = model(c);
      if (state.draining) throw new OriginError('UNAVAILABLE', 'the origin is shutting down; retry on another instance', 1);
      const body = await decodeContentEncoding(await rawBody(c), c.req.header('content-encoding'), options.maxBodyBytes);
      const headerLength = parseHeaderLength(c.req.header(INFERENCE_HEADER_CONTENT_LENGTH));
      if (headerLength === null) throw new OriginError('BAD_REQUEST', `${INFERENCE_HEADER_CONTENT_LENGTH} must be a non-negative integer (the JSON header's byte length)`);
      const request = parseInferRequest(body, headerLength, m);
      const outputs = await m.infer(request.inputs, request.rows, arrived + options.deadlineMs);
      const encoded = encodeInferResponse({
        modelName: m.name,
        modelVersion: m.version,
        ...(request.id !== undefined && { id: request.id }),
        outputs: request.outputs.map((o) => ({ tensor: outputs.find((t) => t.name === o.name)!, binary: o.binary })),
      });
      const headers: Record<string, string> = { 'Content-Type': encoded.contentType, Vary: 'Accept-Encoding' };
      if (encoded.headerLength !== undefined) headers[INFERENCE_HEADER_CONTENT_LENGTH] = String(encoded.headerLength);
      // Inference-Header-Content-Length counts the JSON of the decompressed body, as in Triton.
      const sent = await maybeGzip(encoded.body, c.req.header('accept-encoding'));
      if (sent.encoding) headers['Content-Encoding'] = sent.encoding;
      return c.body(sent.body as Uint8Array<ArrayBuffer>, 200, headers);
    });
  }

  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));

  // The one place where an error becomes an HTTP status; internals are logged, never sent.
  app.onError((error, c) => {
    const model = c.get('model') ?? '';
    if (error instanceof OriginError && error.code !== 'INTERNAL') {
      metrics.errors.inc({ model, code: error.code });
      const headers: Record<string, string> = error.retryAfterS !== undefined ? { 'Retry-After': String(error.retryAfterS) } : {};
      return c.json({ error: error.message }, httpStatusOf(error.code) as 400, headers);
    }
    metrics.errors.inc({ model, code: 'INTERNAL' });
    logger.error('internal error', { request_id: c.get('requestId'), model: model || undefined, error });
    return c.json({ error: `internal error (request id ${c.get('requestId')}); see the origin's logs` }, 500);
  });

  return app;
}
