/**
 * One analysis of a whole bitstream held in memory, for the background paths (jobs, re-evaluation):
 * container check, task models, KV cache, entropy decoding, the origin (one infer call per task, in
 * parallel) and the KV write. The synchronous route (routes/analyze.ts) does the same steps
 * interleaved with reading the request.
 */
import { getResult, putResult, resultKey } from './cache.ts';
import type { BitstreamHeader } from '../../src/bitstream/index.ts';
import { type EdgeConfig, readConfig } from './config.ts';
import type { AppDeps } from './context.ts';
import { checkStream, decodeStreamLatents } from './decode.ts';
import { hex, sha256 } from './digest.ts';
import { int16Bytes } from './kserve.ts';
import { OriginError, infer } from './origin.ts';
import { PROBLEM_TYPES, ProblemError } from './problem.ts';
import { type ModelRegistry, TASKS, type Task, type TaskModel } from './registry.ts';
import { TASK_OUTPUTS, formatClassify, formatSegment } from './results.ts';

export interface Analysis {
  results: Record<string, unknown>;
  models: TaskModel[];
  bitstreamSha256: string;
  cache: 'hit' | 'miss';
}

/**
 * Analyses `bytes` with the models serving `tasks` (every served task when undefined). Throws the
 * stream's typed errors, `ProblemError` (`NO_TASK_MODEL`) and `OriginError`.
 *
 * @example
 * const { results, models } = await analyzeBytes(bytes, ['classify'], env, deps, 'job_1')
 */
export async function analyzeBytes(bytes: Uint8Array, tasks: Task[] | undefined, env: Env, deps: AppDeps, requestId: string): Promise<Analysis> {
  const registry = await deps.registry(env);
  const config = readConfig(env, deps.config);
  const { stream, codec } = checkStream(bytes, registry, config.limits);
  const models = selectModels(registry, codec.id, tasks);
  const bitstreamSha256 = hex(await sha256(bytes));
  const key = resultKey(models, bitstreamSha256);
  const cached = await getResult(env.RESULTS, key);
  if (cached) return { results: cached.results, models, bitstreamSha256, cache: 'hit' };

  const latents = decodeStreamLatents(stream, codec);
  const results = await inferTasks(deps, config, requestId, models, stream.header, latents);
  await putResult(env.RESULTS, key, results, config.resultTtlSeconds);
  return { results, models, bitstreamSha256, cache: 'miss' };
}

/**
 * Sends the latents to every task model at the origin, in parallel, and formats their answers. One
 * task failing fails the whole (a partial answer would be cached as if it were whole), but only once
 * every call has ended: a call abandoned when its request ends may be the circuit breaker's half-open
 * probe, which would then never report, and the breaker would shed requests for a cooldown more.
 *
 * @example
 * const results = await inferTasks(deps, config, requestId, models, stream.header, latents)
 */
export async function inferTasks(deps: AppDeps, config: EdgeConfig, requestId: string, models: TaskModel[], header: BitstreamHeader, latents: Int16Array): Promise<Record<string, unknown>> {
  const data = int16Bytes(latents);
  const shape = [1, header.channels, header.latentHeight, header.latentWidth];
  const breaker = deps.breakers.get(config.originUrl, { failureThreshold: config.breakerFailureThreshold, cooldownMs: config.breakerCooldownMs, now: deps.origin.now });
  const settled = await Promise.allSettled(
    models.map(async (model) => {
      const outputs = await infer({ modelId: model.id, requestId, inputName: 'latents', shape, data, outputs: TASK_OUTPUTS[model.task] }, config, breaker, deps.origin);
      return [model.task, model.task === 'classify' ? formatClassify(outputs, model) : await formatSegment(outputs, model, header)] as const;
    }),
  );
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return Object.fromEntries(settled.map((s) => (s as PromiseFulfilledResult<readonly [Task, unknown]>).value));
}

/**
 * The task models for a codec: those of `tasks`, or every task served on it. Throws a 422
 * `ProblemError` (`NO_TASK_MODEL`) when one is not served.
 *
 * @example
 * selectModels(registry, 'ls-f8-q2', ['classify'])
 */
export function selectModels(registry: ModelRegistry, codecId: string, tasks: Task[] | undefined): TaskModel[] {
  const wanted = tasks ?? (Object.keys(TASKS) as Task[]).filter((t) => registry.taskModel(codecId, t));
  const missing = wanted.filter((t) => !registry.taskModel(codecId, t));
  if (wanted.length === 0 || missing.length) {
    throw new ProblemError('no-task-model', 'NO_TASK_MODEL', `No model serves ${missing.length ? missing.join(' and ') : 'any task'} on codec "${codecId}" yet; see GET /v1/models.`);
  }
  return wanted.map((t) => registry.taskModel(codecId, t)!);
}

/**
 * Whether an error means "the origin cannot answer now": the work should wait and try again.
 *
 * @example
 * if (originUnavailable(error)) reschedule()
 */
export function originUnavailable(error: unknown): error is OriginError {
  // The codes of the 503 `origin-unavailable` problem: one list, in problem.ts.
  return error instanceof OriginError && (PROBLEM_TYPES['origin-unavailable'].codes as readonly string[]).includes(error.code);
}

/**
 * The models of an analysis by task, as jobs and events report them.
 *
 * @example
 * modelsByTask(models) // { classify: { id: 'cls-test', version: '1' } }
 */
export function modelsByTask(models: readonly TaskModel[]): Record<string, { id: string; version: string }> {
  return Object.fromEntries(models.map((m) => [m.task, { id: m.id, version: m.version }]));
}

/**
 * The SHA-256 (hex) of each task's result JSON: what re-evaluation compares to tell a changed result.
 *
 * @example
 * await resultDigests({ classify: {...} }) // { classify: '9f86...' }
 */
export async function resultDigests(results: Record<string, unknown>): Promise<Record<string, string>> {
  const entries = await Promise.all(Object.entries(results).map(async ([task, r]) => [task, hex(await sha256(JSON.stringify(r)))] as const));
  return Object.fromEntries(entries);
}
