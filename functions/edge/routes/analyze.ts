/**
 * POST /v1/analyze?tasks=classify,segment: a bitstream in, analysis results out.
 *
 *   auth -> rate limit, overlapped with: query -> media type -> body (size limit, header checked
 *   on arrival) -> container (length, checksum, parts, codec, table hash) -> SHA-256 -> KV lookup
 *   -> 429 if limited; KV hit? answer
 *   -> else entropy-decode -> origin (one infer call per task, in parallel) -> answer
 *   -> store the result in KV and, if the key asks, the bitstream in R2 (after the answer)
 *
 * A cache hit skips entropy decoding: only streams that decoded once are ever cached, and equal
 * bytes decode to equal latents.
 */
import type { Context } from 'hono';
import type { BitstreamHeader } from '../../../src/bitstream/index.ts';
import { inferTasks, selectModels } from '../analysis.ts';
import { storeBitstream } from '../archive.ts';
import { authenticate, requireScope } from '../auth.ts';
import { checkMediaType, readBitstream } from '../body.ts';
import { getResult, putResult, resultKey } from '../cache.ts';
import { type EdgeConfig, readConfig } from '../config.ts';
import type { AppEnv } from '../context.ts';
import { checkStream, codecFor, decodeStreamLatents } from '../decode.ts';
import { hex, sha256 } from '../digest.ts';
import { ProblemError } from '../problem.ts';
import { rateLimitHeaders, rateLimited, takeToken } from '../rate-limit.ts';
import { TASKS, type Task, type TaskModel } from '../registry.ts';
import { Timings } from '../timings.ts';
import { log } from '../log.ts';

/** The scope a key needs for this route. */
export const ANALYZE_SCOPE = 'analyze';

/** Handles POST /v1/analyze. */
export async function analyze(c: Context<AppEnv>): Promise<Response> {
  const timings = new Timings();
  const deps = c.get('deps');
  const requestId = c.get('requestId');
  const config = readConfig(c.env, deps.config);

  const key = await timings.measure('auth', () => authenticate(c.req.header('authorization'), c.env.API_KEYS));
  requireScope(key, ANALYZE_SCOPE);
  // The rate limiter's round trip overlaps reading and checking the body; its verdict still comes
  // first, and a denial stops the body from being read on.
  const stopReading = new AbortController();
  const pendingRate = timings.measure('ratelimit', () => takeToken(c.env, key, config.defaultRateLimitPerMinute, (work) => c.executionCtx.waitUntil(work)));
  pendingRate.then((r) => r.allowed || stopReading.abort()).catch(() => {});
  const [rateOutcome, checkedOutcome] = await Promise.allSettled([pendingRate, checkRequest(c, config, timings, stopReading.signal)]);
  if (rateOutcome.status === 'rejected') throw rateOutcome.reason;
  const rate = rateOutcome.value;
  if (!rate.allowed) throw rateLimited(rate);
  if (checkedOutcome.status === 'rejected') throw checkedOutcome.reason;
  const { bytes, header, stream, codec, models, digest, cacheKey, cached } = checkedOutcome.value;

  let results: Record<string, unknown>;
  if (cached) {
    results = cached.results;
  } else {
    const latents = await timings.measure('decode', () => decodeStreamLatents(stream, codec));
    results = await timings.measure('origin', () => runModels(c, config, models, stream.header, latents));
    c.executionCtx.waitUntil(
      putResult(c.env.RESULTS, cacheKey, results, config.resultTtlSeconds).catch((error) => log.error('result cache write failed', { request_id: requestId, error: String(error) })),
    );
  }
  if (key.store_bitstreams) {
    c.executionCtx.waitUntil(
      storeBitstream(c.env.BITSTREAMS, key.tenant, digest, bytes, header, requestId).catch((error) =>
        log.error('bitstream store failed', { request_id: requestId, error: String(error) }),
      ),
    );
  }

  const cache = cached ? 'hit' : 'miss';
  const body = {
    request_id: requestId,
    codec: codec.id,
    bpp: Number(((8 * bytes.length) / (header.width * header.height)).toFixed(4)),
    image: { width: header.width, height: header.height },
    results,
    models: {
      codec: { id: codec.id, version: codec.version },
      ...Object.fromEntries(models.map((m) => [m.task, { id: m.id, version: m.version }])),
    },
    cache,
    timings_ms: timings.toJSON(),
  };
  return c.json(body, 200, {
    ...rateLimitHeaders(rate),
    'cache-control': 'no-store',
    'server-timing': timings.serverTiming({ cache }),
  });
}

/** Every task model's answer for the latents (see `inferTasks`). */
async function runModels(c: Context<AppEnv>, config: EdgeConfig, models: TaskModel[], header: BitstreamHeader, latents: Int16Array) {
  return inferTasks(c.get('deps'), config, c.get('requestId'), models, header, latents);
}

/**
 * Everything about the request but its key: query, media type, the body (read under the size
 * limit, its header checked on arrival), the whole container, its SHA-256 and the cache lookup.
 */
async function checkRequest(c: Context<AppEnv>, config: EdgeConfig, timings: Timings, signal: AbortSignal) {
  const requested = parseTasks(c.req.query('tasks'));
  checkMediaType(c.req.raw.headers);
  const registry = await c.get('deps').registry(c.env);
  let models: TaskModel[] = [];
  const { bytes, header } = await timings.measure('read', () =>
    readBitstream(c.req.raw, {
      maxBytes: config.maxBodyBytes,
      limits: config.limits,
      signal,
      // Refuse a stream for an unknown codec, other tables or an unserved task before reading its body.
      onHeader: (h) => {
        codecFor(h, registry);
        models = selectModels(registry, h.modelId, requested);
      },
    }),
  );
  const { stream, codec } = await timings.measure('parse', () => checkStream(bytes, registry, config.limits));
  const digest = hex(await sha256(bytes));
  const cacheKey = resultKey(models, digest);
  const cached = await timings.measure('cache', () => getResult(c.env.RESULTS, cacheKey));
  return { bytes, header, stream, codec, models, digest, cacheKey, cached };
}

/**
 * The tasks named by the `tasks` query parameter, in canonical order; undefined when absent (then
 * every task the codec has a model for runs). Throws a 400 `ProblemError` for anything else.
 *
 * @example
 * parseTasks('segment,classify') // ['classify', 'segment']
 */
export function parseTasks(value: string | undefined): Task[] | undefined {
  if (value === undefined) return undefined;
  const names = value.split(',').map((s) => s.trim());
  const known = Object.keys(TASKS) as Task[];
  const unknown = names.filter((n) => !known.includes(n as Task));
  if (unknown.length || names.length === 0) {
    throw new ProblemError(
      'invalid-query',
      'UNKNOWN_TASK',
      `tasks=${value} names no task or an unknown one (${unknown.map((u) => `"${u}"`).join(', ')}); use a comma-separated list of ${known.join(', ')}.`,
    );
  }
  return known.filter((t) => names.includes(t));
}
