/**
 * The edge's client of the inference origin: one KServe v2 infer call, gzip-compressed and signed,
 * with a per-attempt timeout, bounded retries with jittered exponential backoff on network errors,
 * timeouts and 5xx/429, all inside an overall deadline, and a circuit breaker per origin.
 *
 * An origin at capacity says so: 503 (or 429) with Retry-After. That is an answer, not a failure: it
 * does not count against the breaker (an overloaded origin is up, and opening the breaker would shed
 * the requests it can serve), and the next attempt waits what the origin asked, with jitter, if the
 * deadline leaves room, instead of adding to its load at once.
 */
import { type SigningKey, importSigningKey, signatureHeaders } from '../../src/protocol/signature.ts';
import type { CircuitBreaker } from './breaker.ts';
import type { EdgeConfig } from './config.ts';
import { HEADER_LENGTH_HEADER, KserveError, type Tensor, decodeInferResponse, encodeInferRequest } from './kserve.ts';

export type OriginErrorCode =
  | 'ORIGIN_NOT_CONFIGURED'
  | 'ORIGIN_UNAVAILABLE'
  | 'ORIGIN_OVERLOADED'
  | 'ORIGIN_TIMEOUT'
  | 'CIRCUIT_OPEN'
  | 'ORIGIN_BAD_RESPONSE'
  | 'ORIGIN_REJECTED';

/**
 * The one error class of the origin client. `retryAfterSeconds` is set when the client should come
 * back later (the origin is down or shed by the breaker).
 *
 * @example
 * catch (e) { if (e instanceof OriginError && e.code === 'CIRCUIT_OPEN') ... }
 */
export class OriginError extends Error {
  override readonly name = 'OriginError';
  constructor(
    readonly code: OriginErrorCode,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** Side effects of the client, injectable so that tests control the network and the clock. */
export interface OriginDeps {
  fetch: (input: string, init: RequestInit) => Promise<Response>;
  sleep: (ms: number) => Promise<void>;
  /** Uniform in [0, 1): the backoff jitter. */
  random: () => number;
  now: () => number;
}

export const defaultOriginDeps: OriginDeps = {
  fetch: (input, init) => fetch(input, init),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  random: Math.random,
  now: Date.now,
};

/** One infer call: an INT16 tensor in, the named outputs back. */
export interface InferCall {
  modelId: string;
  requestId: string;
  inputName: string;
  /** [1, C, H, W] */
  shape: number[];
  /** Little-endian INT16 tensor bytes. */
  data: Uint8Array;
  outputs: string[];
}

/** Statuses worth another attempt: the origin is overloaded or restarting, or a proxy in front of it is. */
const RETRYABLE = new Set([429, 500, 502, 503, 504]);

/** HMAC keys by secret, imported once per isolate: importing is a WebCrypto call, signing with a held key is cheap. */
const signingKeys = new Map<string, Promise<SigningKey>>();

function signingKey(secret: string): Promise<SigningKey> {
  let key = signingKeys.get(secret);
  if (!key) {
    key = importSigningKey(secret);
    signingKeys.set(secret, key);
  }
  return key;
}

/**
 * Sends one infer request to the origin and returns its outputs by name. Throws `OriginError`.
 *
 * @example
 * const outputs = await infer({ modelId: 'cls', requestId, inputName: 'latents', shape, data, outputs: ['scores', 'classes'] },
 *   config, breakers.get(config.originUrl, ...), defaultOriginDeps)
 */
export async function infer(call: InferCall, config: EdgeConfig, breaker: CircuitBreaker, deps: OriginDeps): Promise<Map<string, Tensor>> {
  if (!config.originUrl || !config.originSecret) {
    throw new OriginError('ORIGIN_NOT_CONFIGURED', 'ORIGIN_URL or ORIGIN_HMAC_SECRET is not set');
  }
  const url = new URL(`${config.originUrl}/v2/models/${encodeURIComponent(call.modelId)}/infer`);
  const { body, headerLength } = encodeInferRequest(call.requestId, call.inputName, call.shape, call.data, call.outputs);
  const gz = await gzip(body);
  const key = await signingKey(config.originSecret);
  const deadline = deps.now() + config.originDeadlineMs;
  let last = new OriginError('ORIGIN_UNAVAILABLE', 'no attempt was made');
  for (let attempt = 0; attempt < config.originAttempts; attempt++) {
    if (attempt > 0) {
      // Full jitter: spreads the retries of many isolates instead of synchronising them. An origin at
      // capacity said when to come back: up to half as long again, so the retries do not arrive together.
      const backoff = Math.floor(deps.random() * config.originBackoffMs * 2 ** (attempt - 1));
      const asked = last.code === 'ORIGIN_OVERLOADED' ? Math.floor((last.retryAfterSeconds ?? 1) * 1000 * (1 + deps.random() / 2)) : 0;
      const delay = Math.max(backoff, asked);
      if (deps.now() + delay >= deadline) break;
      await deps.sleep(delay);
    }
    const remaining = deadline - deps.now();
    if (remaining <= 0) break;
    const wait = breaker.acquire();
    if (wait > 0) {
      throw new OriginError('CIRCUIT_OPEN', 'the circuit breaker of the origin is open', Math.max(1, Math.ceil(wait / 1000)));
    }
    let outcome: Map<string, Tensor> | OriginError;
    try {
      const headers = {
        'content-type': 'application/octet-stream',
        'content-encoding': 'gzip',
        'accept-encoding': 'gzip',
        [HEADER_LENGTH_HEADER]: String(headerLength),
        'x-request-id': call.requestId,
        // Signed per attempt: the timestamp must be fresh when the origin checks it.
        ...(await signatureHeaders(key, 'POST', url, gz, Math.floor(deps.now() / 1000))),
      };
      outcome = await attemptOnce(url.href, { method: 'POST', headers, body: gz }, Math.min(config.originTimeoutMs, remaining), deps);
    } catch (error) {
      // Every attempt the breaker let through must report, or a half-open breaker waits for it.
      breaker.failure();
      throw error;
    }
    if (outcome instanceof Map) {
      breaker.success();
      return outcome;
    }
    if (outcome.code === 'ORIGIN_BAD_RESPONSE' || outcome.code === 'ORIGIN_REJECTED') {
      // The origin is up and answered: a bug to report, not an outage to wait out.
      breaker.success();
      throw outcome;
    }
    // At capacity is up; anything else counts towards opening the breaker.
    if (outcome.code === 'ORIGIN_OVERLOADED') breaker.success();
    else breaker.failure();
    last = outcome;
  }
  // Come back when the breaker will let a probe through, if these failures opened it; or when the
  // origin said it would have room.
  const wait = breaker.waitMs();
  throw new OriginError(last.code, last.message, wait > 0 ? Math.ceil(wait / 1000) : (last.retryAfterSeconds ?? config.unavailableRetryAfterSeconds));
}

async function attemptOnce(url: string, init: RequestInit, timeoutMs: number, deps: OriginDeps): Promise<Map<string, Tensor> | OriginError> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    const response = await deps.fetch(url, { ...init, signal: controller.signal });
    if (!response.ok) {
      await response.body?.cancel();
      const retryAfter = retryAfterSeconds(response.headers.get('retry-after'));
      if ((response.status === 503 || response.status === 429) && retryAfter !== undefined) {
        return new OriginError('ORIGIN_OVERLOADED', `the origin is at capacity (${response.status}) and asks to retry in ${retryAfter} s`, retryAfter);
      }
      const code = RETRYABLE.has(response.status) ? 'ORIGIN_UNAVAILABLE' : 'ORIGIN_REJECTED';
      return new OriginError(code, `the origin answered ${response.status}`);
    }
    let bytes: Uint8Array = new Uint8Array(await response.arrayBuffer());
    // workerd inflates gzip responses itself and leaves the header; a mocked or proxied one may not.
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = await gunzip(bytes);
    const length = response.headers.get(HEADER_LENGTH_HEADER);
    try {
      return decodeInferResponse(bytes, length === null ? undefined : Number(length));
    } catch (error) {
      if (error instanceof KserveError) return new OriginError('ORIGIN_BAD_RESPONSE', `the origin's response is malformed: ${error.message}`);
      throw error;
    }
  } catch (error) {
    if (timedOut) return new OriginError('ORIGIN_TIMEOUT', `the origin did not answer within ${timeoutMs} ms`);
    return new OriginError('ORIGIN_UNAVAILABLE', `the origin is unreachable: ${(error as Error)?.message ?? String(error)}`);
  } finally {
    clearTimeout(timer);
  }
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A Retry-After of delta-seconds (what the origin and proxies send), at most an hour; undefined otherwise. */
function retryAfterSeconds(value: string | null): number | undefined {
  if (value === null || !/^\d{1,6}$/.test(value.trim())) return undefined;
  return Math.min(3600, Math.max(1, Number(value.trim())));
}
