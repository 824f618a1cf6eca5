/**
 * The API client: analyse a bitstream (or an image, encoded here first), submit asynchronous jobs,
 * read their state. Uses only web standards (fetch, Request, URL), so it runs in browsers, workers
 * and Node alike.
 */
import type { Codec, RgbImage } from '../codec/index.ts';
import { encodeImage } from '../codec/index.ts';
import { base64 } from '../tasks/index.ts';
import { LatentsightError } from './errors.ts';
import { type RetryOptions, errorFromResponse, fetchWithRetry } from './retry.ts';
import { type AnalyzeResult, type Job, type JobAccepted, type ModelList, TASKS, type Task } from './types.ts';

/** The media type of a bitstream body. */
export const BITSTREAM_MEDIA_TYPE = 'application/vnd.latentsight+bitstream';

export interface ClientOptions {
  /** Base URL of the edge, e.g. `https://api.example.com` or `http://127.0.0.1:8787`. */
  endpoint: string;
  /** The API key, sent as `Authorization: Bearer <key>`. */
  apiKey?: string;
  /** Encodes images passed to `analyze` and `submitJob`; bitstreams need none. */
  codec?: Codec;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  retry?: RetryOptions;
}

/** Something to analyse: bitstream bytes, or 8-bit RGB(A) pixels that the client's codec encodes. */
export type AnalyzeInput = Uint8Array | RgbImage;

export interface RequestOptions {
  /** Tasks to run; absent: every task the API has a model for. */
  tasks?: readonly Task[];
  signal?: AbortSignal;
  /** Your id for the request (8-128 of `A-Za-z0-9._:-`), echoed in the answer. */
  requestId?: string;
}

export interface JobOptions extends RequestOptions {
  /** A registered webhook endpoint's URL that receives the job's events. */
  callbackUrl?: string;
  /** Your JSON, kept with the job and echoed in its events. */
  metadata?: Record<string, unknown>;
  /** Makes retries safe: the same key and body give the same job. Default: a fresh UUID per call. */
  idempotencyKey?: string;
}

/** A client bound to one endpoint and key. */
export interface LatentsightClient {
  /** `POST /v1/analyze`: the results of the requested tasks. */
  analyze(input: AnalyzeInput, options?: RequestOptions): Promise<AnalyzeResult>;
  /** `POST /v1/jobs`: queues an analysis; its results come by webhook or `getJob`. */
  submitJob(input: AnalyzeInput, options?: JobOptions): Promise<JobAccepted>;
  /** `GET /v1/jobs/{id}`. */
  getJob(id: string, options?: { signal?: AbortSignal }): Promise<Job>;
  /** `GET /v1/models`. */
  models(options?: { signal?: AbortSignal }): Promise<ModelList>;
  /** The bitstream for `input`: the bytes as given, or the image encoded with the client's codec. */
  toBitstream(input: AnalyzeInput): Promise<Uint8Array>;
}

/**
 * Creates a client. Nothing is sent until a method is called.
 *
 * @example
 * const client = createClient({ endpoint: 'http://127.0.0.1:8787', apiKey: process.env.LATENTSIGHT_API_KEY })
 * const { results } = await client.analyze(bitstream, { tasks: ['classify'] })
 * console.log(results.classify?.top[0].label)
 */
export function createClient(options: ClientOptions): LatentsightClient {
  let base: URL;
  try {
    base = new URL(options.endpoint.endsWith('/') ? options.endpoint : `${options.endpoint}/`);
  } catch {
    throw new LatentsightError('INVALID_INPUT', `The endpoint '${options.endpoint}' is not a URL; give one like http://127.0.0.1:8787.`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new LatentsightError('INVALID_INPUT', `The endpoint must be an http(s) URL, not ${base.protocol}.`);
  }
  const fetcher = options.fetch ?? ((input, init) => fetch(input, init));
  const url = (path: string) => new URL(path.replace(/^\//, ''), base);
  const headers = (extra: Record<string, string>, requestId?: string) => {
    const h = new Headers(extra);
    if (options.apiKey) h.set('authorization', `Bearer ${options.apiKey}`);
    if (requestId) h.set('x-request-id', requestId);
    return h;
  };

  async function toBitstream(input: AnalyzeInput): Promise<Uint8Array> {
    if (input instanceof Uint8Array) return input;
    if (!options.codec) throw new LatentsightError('INVALID_INPUT', 'An image needs a codec to encode it: pass `codec` to createClient, or pass bitstream bytes.');
    return encodeImage(input, options.codec);
  }

  /** Sends with retries; any answer but `ok` becomes a LatentsightError; the body must be JSON. */
  async function send<T>(make: () => Request, signal: AbortSignal | undefined, expected: number[]): Promise<T> {
    const response = await fetchWithRetry(fetcher, make, options.retry, signal);
    if (!expected.includes(response.status)) throw await errorFromResponse(response, 1);
    try {
      return (await response.json()) as T;
    } catch (e) {
      throw new LatentsightError('INVALID_RESPONSE', `The API answered ${response.status} with a body that is not JSON.`, { status: response.status, cause: e });
    }
  }

  return {
    toBitstream,

    async analyze(input, opts = {}) {
      const bytes = await toBitstream(input);
      const target = url('v1/analyze');
      if (opts.tasks) target.searchParams.set('tasks', checkTasks(opts.tasks).join(','));
      // A Blob is a body every fetch takes (typed arrays over a SharedArrayBuffer are not).
      const body = new Blob([bytes.slice()], { type: BITSTREAM_MEDIA_TYPE });
      const result = await send<AnalyzeResult>(
        () => new Request(target, { method: 'POST', headers: headers({ 'content-type': BITSTREAM_MEDIA_TYPE }, opts.requestId), body }),
        opts.signal,
        [200],
      );
      if (typeof result?.results !== 'object' || typeof result.bpp !== 'number') {
        throw new LatentsightError('INVALID_RESPONSE', 'The API answered 200 without `results` and `bpp`: is the endpoint a latentsight edge?', { status: 200 });
      }
      return result;
    },

    async submitJob(input, opts = {}) {
      const bytes = await toBitstream(input);
      const body = JSON.stringify({
        bitstream: base64(bytes),
        ...(opts.tasks ? { tasks: checkTasks(opts.tasks) } : {}),
        ...(opts.callbackUrl ? { callback_url: opts.callbackUrl } : {}),
        ...(opts.metadata ? { metadata: opts.metadata } : {}),
      });
      // One key for every retry of this call, so that a retried submission cannot make a second job.
      const idempotencyKey = opts.idempotencyKey ?? crypto.randomUUID();
      const accepted = await send<JobAccepted>(
        () => new Request(url('v1/jobs'), { method: 'POST', headers: headers({ 'content-type': 'application/json', 'idempotency-key': idempotencyKey }, opts.requestId), body }),
        opts.signal,
        [200, 201, 202],
      );
      if (typeof accepted?.id !== 'string') throw new LatentsightError('INVALID_RESPONSE', 'The API accepted the job but sent no `id`.');
      return accepted;
    },

    async getJob(id, opts = {}) {
      if (!id) throw new LatentsightError('INVALID_INPUT', 'getJob needs a job id.');
      return send<Job>(() => new Request(url(`v1/jobs/${encodeURIComponent(id)}`), { headers: headers({ accept: 'application/json' }) }), opts.signal, [200]);
    },

    async models(opts = {}) {
      return send<ModelList>(() => new Request(url('v1/models'), { headers: headers({ accept: 'application/json' }) }), opts.signal, [200]);
    },
  };
}

/**
 * Checks task names before anything is sent.
 *
 * @example
 * checkTasks(['segment', 'classify']) // ['segment', 'classify']
 */
export function checkTasks(tasks: readonly string[]): Task[] {
  const unknown = tasks.filter((t) => !(TASKS as readonly string[]).includes(t));
  if (unknown.length || tasks.length === 0) {
    throw new LatentsightError('INVALID_INPUT', `Unknown or no tasks (${unknown.join(', ') || 'none given'}); use ${TASKS.join(', ')}.`);
  }
  return tasks as Task[];
}
