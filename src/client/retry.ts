/**
 * Retries with backoff. 429 and 503 are retried after the server's Retry-After (seconds or an
 * HTTP date) when it gives one, else after an exponential backoff with full jitter; a network
 * failure is retried like a 503. Anything else is answered at once.
 */
import { LatentsightError, readProblem } from './errors.ts';

export interface RetryOptions {
  /** Retries after the first attempt (default 3; 0 disables retrying). */
  retries?: number;
  /** First backoff step in ms when the server names no delay (default 500). */
  baseDelayMs?: number;
  /** Longest wait before one retry in ms, Retry-After included (default 30 000): a longer Retry-After fails at once. */
  maxDelayMs?: number;
  /** Waits `ms`; tests pass a recorder. Default: a timer that the request's signal cancels. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Uniform random number in [0, 1) for jitter (default Math.random). */
  random?: () => number;
}

/** Statuses that mean "try again later". */
export const RETRYABLE_STATUSES: readonly number[] = [429, 503];

/**
 * Seconds to wait from a Retry-After header value: delay-seconds or an HTTP-date (RFC 9110,
 * section 10.2.3); undefined when absent or malformed.
 *
 * @example
 * parseRetryAfter('7') // 7
 * parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT', Date.parse('Wed, 21 Oct 2026 07:27:30 GMT')) // 30
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * The wait before retry number `attempt` (1-based): Retry-After when given, else full-jitter
 * exponential backoff, `random() * base * 2^(attempt-1)`, capped at `maxDelayMs`.
 *
 * @example
 * backoffDelay(2, undefined, { baseDelayMs: 500, random: () => 0.5 }) // 500
 */
export function backoffDelay(attempt: number, retryAfterSeconds: number | undefined, options: RetryOptions = {}): number {
  const max = options.maxDelayMs ?? 30_000;
  if (retryAfterSeconds !== undefined) return retryAfterSeconds * 1000;
  const base = options.baseDelayMs ?? 500;
  return Math.min(max, Math.floor((options.random ?? Math.random)() * base * 2 ** (attempt - 1)));
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      reject(signal?.reason);
    }
    signal?.addEventListener('abort', abort, { once: true });
  });
}

/**
 * Sends a request (built afresh by `make` for every attempt, since a body can be read only once)
 * and retries it on 429, 503 and network failures. Returns the first response that is neither;
 * throws `LatentsightError` with the last problem details when the retries are spent, or with
 * `NETWORK_ERROR` / `ABORTED`.
 *
 * @example
 * const res = await fetchWithRetry(fetch, () => new Request(url, { method: 'POST', body }), { retries: 2 })
 */
export async function fetchWithRetry(
  fetcher: typeof fetch,
  make: () => Request,
  options: RetryOptions = {},
  signal?: AbortSignal,
): Promise<Response> {
  const retries = options.retries ?? 3;
  const maxDelay = options.maxDelayMs ?? 30_000;
  const sleep = options.sleep ?? defaultSleep;
  for (let attempt = 1; ; attempt++) {
    let response: Response;
    try {
      response = await fetcher(make(), { signal });
    } catch (e) {
      if (signal?.aborted) throw new LatentsightError('ABORTED', `The request was aborted: ${String(signal.reason)}.`, { attempts: attempt, cause: e });
      if (attempt > retries) {
        const why = e instanceof Error ? `${e.message}${e.cause instanceof Error ? ` (${e.cause.message})` : ''}` : String(e);
        throw new LatentsightError('NETWORK_ERROR', `Cannot reach the API: ${why}. Check the endpoint URL and your network.`, { attempts: attempt, cause: e });
      }
      await pause(sleep, backoffDelay(attempt, undefined, options), signal, attempt);
      continue;
    }
    if (!RETRYABLE_STATUSES.includes(response.status)) return response;
    const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
    const delay = backoffDelay(attempt, retryAfter, options);
    if (attempt > retries || delay > maxDelay) throw await errorFromResponse(response, attempt);
    await response.body?.cancel();
    await pause(sleep, delay, signal, attempt);
  }
}

async function pause(sleep: NonNullable<RetryOptions['sleep']>, ms: number, signal: AbortSignal | undefined, attempt: number): Promise<void> {
  try {
    await sleep(ms, signal);
  } catch (e) {
    throw new LatentsightError('ABORTED', `The request was aborted while waiting to retry: ${String(signal?.reason ?? e)}.`, { attempts: attempt, cause: e });
  }
}

/**
 * The `LatentsightError` for a failed response: its problem details when it has some, else its status.
 *
 * @example
 * if (!res.ok) throw await errorFromResponse(res, 1)
 */
export async function errorFromResponse(response: Response, attempts: number): Promise<LatentsightError> {
  const problem = await readProblem(response);
  const retryAfterSeconds = parseRetryAfter(response.headers.get('retry-after'));
  const requestId = problem?.request_id ?? response.headers.get('x-request-id') ?? undefined;
  const code = problem?.code ?? `HTTP_${response.status}`;
  const what = problem ? `${problem.title}: ${problem.detail}` : `HTTP ${response.status} ${response.statusText}`.trim();
  const retries = attempts > 1 ? ` (after ${attempts} attempts)` : '';
  return new LatentsightError(code, `${what}${retries}`, { status: response.status, problem, retryAfterSeconds, requestId, attempts });
}
