/**
 * Re-evaluation of stored bitstreams when the served task models change.
 *
 *   cron (hourly): the bundled manifest's classifier/segmenter per codec vs the last ones seen;
 *                  any newer one starts a run over every tenant's stored bitstreams
 *   admin:         POST /v1/admin/reevaluations starts a run for a tenant and/or an upload date range
 *   run:           `reeval-page` messages list R2 `bitstreams/` one page at a time (each page queues
 *                  the next) and queue one `reeval-item` message per bitstream; an item is skipped
 *                  when the tenant's store says its latest result came from the current models,
 *                  else it is analysed again (KV updated) and, where a task's result differs from
 *                  the previous one, an `analysis.updated` event goes to the tenant's endpoints
 *
 * Progress lives in the `Reevaluator` Durable Object (one, named `global`): per run the pages
 * listed, items queued and items done by outcome, each item counted once however often the queue
 * delivers its message.
 */
import { DurableObject } from 'cloudflare:workers';
import { analyzeBytes, originUnavailable, resultDigests } from './analysis.ts';
import { type BackgroundDeps, type JobMessage, type JobsConfig, queueDeliveries } from './background.ts';
import { getResult } from './cache.ts';
import { backoffSeconds } from './jobs.ts';
import { ProblemError } from './problem.ts';
import { type ModelRegistry, TASKS, type Task } from './registry.ts';
import { streamProblem } from './stream-problems.ts';
import { log } from './log.ts';

/** Stored bitstreams listed per page (one queue message per page). */
export const REEVAL_PAGE_SIZE = 50;

export type ItemOutcome = 'changed' | 'unchanged' | 'skipped' | 'failed';

export interface RunScope {
  /** One tenant, or every tenant when null. */
  tenant: string | null;
  /** Upload time range of the stored bitstreams (ms since the epoch, inclusive), open when null. */
  from: number | null;
  to: number | null;
}

export interface Run extends RunScope {
  id: string;
  reason: string;
  status: 'running' | 'completed';
  /** `<codec>/<task>` -> `<id>@<version>`: the models before, and the models the run brings results to. */
  previous: Record<string, string>;
  target: Record<string, string>;
  pages: number;
  listing_done: boolean;
  listed: number;
  queued: number;
  done: Record<ItemOutcome, number>;
  created_at: number;
  finished_at: number | null;
}

type Row = Record<string, SqlStorageValue>;

/**
 * The served task models by `<codec>/<task>`, as `<id>@<version>`.
 *
 * @example
 * servedModels(registry) // { 'ls-f8-q2/classify': 'cls-ls@1.1.0' }
 */
export function servedModels(registry: ModelRegistry): Record<string, string> {
  const out: Record<string, string> = {};
  for (const codec of registry.codecs) {
    for (const task of Object.keys(TASKS) as Task[]) {
      const m = registry.taskModel(codec.id, task);
      if (m) out[`${codec.id}/${task}`] = `${m.id}@${m.version}`;
    }
  }
  return out;
}

/**
 * The slots whose model is newer in `current` than in `previous`: another model id, or a higher
 * version (dot-separated numbers compared numerically). A slot new in `current` is not "newer":
 * no stored result came from an older model of it.
 *
 * @example
 * newerModels({ 'c/classify': 'cls@1.0.0' }, { 'c/classify': 'cls@1.1.0' }) // ['c/classify']
 */
export function newerModels(previous: Record<string, string>, current: Record<string, string>): string[] {
  return Object.keys(current).filter((slot) => {
    const before = previous[slot];
    if (!before || before === current[slot]) return false;
    const [idA, versionA] = splitAt(before);
    const [idB, versionB] = splitAt(current[slot]);
    return idA !== idB || compareVersions(versionB, versionA) > 0;
  });
}

function splitAt(model: string): [string, string] {
  const at = model.lastIndexOf('@');
  return [model.slice(0, at), model.slice(at + 1)];
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/).map((p) => Number(p));
  const pb = b.split(/[.+-]/).map((p) => Number(p));
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0;
    const y = pb[i] ?? 0;
    if (Number.isNaN(x) || Number.isNaN(y)) return a === b ? 0 : a > b ? 1 : -1;
    if (x !== y) return x - y;
  }
  return 0;
}

/**
 * Runs and their progress, and the task models the cron saw last. One object: `env.REEVAL.getByName('global')`.
 *
 * @example
 * const run = await env.REEVAL.getByName('global').getRun(id)
 */
export class Reevaluator extends DurableObject<Env> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`
      CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY, tenant TEXT, from_ms INTEGER, to_ms INTEGER, reason TEXT NOT NULL, previous TEXT NOT NULL, target TEXT NOT NULL,
        pages INTEGER NOT NULL DEFAULT 0, listing_done INTEGER NOT NULL DEFAULT 0, listed INTEGER NOT NULL DEFAULT 0, queued INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL, finished_at INTEGER);
      CREATE TABLE IF NOT EXISTS run_items (run TEXT NOT NULL, key TEXT NOT NULL, outcome TEXT NOT NULL, PRIMARY KEY (run, key));
    `);
  }

  /** The task models last seen by the cron (empty before its first run). */
  seenModels(): Record<string, string> {
    const row = this.#sql.exec<Row>(`SELECT value FROM state WHERE key = 'models'`).toArray()[0];
    return row ? JSON.parse(row.value as string) : {};
  }

  /** Records the served models once a run for them has been started (or none was needed). */
  saveSeenModels(models: Record<string, string>): void {
    this.#sql.exec(`INSERT OR REPLACE INTO state VALUES ('models', ?)`, JSON.stringify(models));
  }

  createRun(scope: RunScope, reason: string, previous: Record<string, string>, target: Record<string, string>, now: number): Run {
    const id = `reeval_${crypto.randomUUID().replaceAll('-', '')}`;
    this.#sql.exec(
      'INSERT INTO runs (id, tenant, from_ms, to_ms, reason, previous, target, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      id, scope.tenant, scope.from, scope.to, reason, JSON.stringify(previous), JSON.stringify(target), now,
    );
    return this.getRun(id)!;
  }

  getRun(id: string): Run | null {
    const row = this.#sql.exec<Row>('SELECT * FROM runs WHERE id = ?', id).toArray()[0];
    return row ? this.#toRun(row) : null;
  }

  listRuns(limit: number): Run[] {
    return this.#sql.exec<Row>('SELECT * FROM runs ORDER BY created_at DESC LIMIT ?', limit).toArray().map((r) => this.#toRun(r));
  }

  /** Records page `page` of a run's listing; false if it was recorded already (a redelivered message). */
  recordPage(id: string, page: number, listed: number, queued: number, last: boolean, now: number): boolean {
    const moved = this.#sql.exec(
      'UPDATE runs SET pages = ?, listed = listed + ?, queued = queued + ?, listing_done = ? WHERE id = ? AND pages = ?',
      page, listed, queued, last ? 1 : 0, id, page - 1,
    ).rowsWritten;
    this.#finishIfDone(id, now);
    return moved > 0;
  }

  /** Counts an item's outcome once. */
  itemDone(id: string, key: string, outcome: ItemOutcome, now: number): void {
    this.#sql.exec('INSERT OR IGNORE INTO run_items VALUES (?, ?, ?)', id, key, outcome);
    this.#finishIfDone(id, now);
  }

  #finishIfDone(id: string, now: number): void {
    const run = this.getRun(id);
    if (!run || run.status === 'completed' || !run.listing_done) return;
    const done = Object.values(run.done).reduce((a, b) => a + b, 0);
    if (done >= run.queued) this.#sql.exec('UPDATE runs SET finished_at = ? WHERE id = ?', now, id);
  }

  #toRun(r: Row): Run {
    const done: Record<ItemOutcome, number> = { changed: 0, unchanged: 0, skipped: 0, failed: 0 };
    for (const c of this.#sql.exec<Row>('SELECT outcome, COUNT(*) AS n FROM run_items WHERE run = ? GROUP BY outcome', r.id as string)) {
      done[c.outcome as ItemOutcome] = c.n as number;
    }
    return {
      id: r.id as string,
      tenant: (r.tenant as string | null) ?? null,
      from: (r.from_ms as number | null) ?? null,
      to: (r.to_ms as number | null) ?? null,
      reason: r.reason as string,
      status: r.finished_at === null ? 'running' : 'completed',
      previous: JSON.parse(r.previous as string),
      target: JSON.parse(r.target as string),
      pages: r.pages as number,
      listing_done: r.listing_done === 1,
      listed: r.listed as number,
      queued: r.queued as number,
      done,
      created_at: r.created_at as number,
      finished_at: (r.finished_at as number | null) ?? null,
    };
  }
}

/**
 * The cron trigger: starts a run over every stored bitstream when a served classifier or segmenter
 * is newer than the one seen last. The first run of the cron only records what is served.
 *
 * @example
 * export default { scheduled: (c, env, ctx) => reevaluateOnNewModels(env, deps) }
 */
export async function reevaluateOnNewModels(env: Env, deps: BackgroundDeps): Promise<Run | null> {
  const current = servedModels(await deps.registry(env));
  const reevaluator = env.REEVAL.getByName('global');
  const previous = await reevaluator.seenModels();
  const newer = Object.keys(previous).length ? newerModels(previous, current) : [];
  let run: Run | null = null;
  if (newer.length) {
    const reason = `newer models: ${newer.map((slot) => `${slot} ${previous[slot]} -> ${current[slot]}`).join(', ')}`;
    run = await startRun(env, { tenant: null, from: null, to: null }, reason, previous, current, deps.now());
  }
  // Saved only once the run is queued: a failure above means the next cron tries again.
  await reevaluator.saveSeenModels(current);
  return run;
}

/**
 * Creates a run and queues its first page.
 *
 * @example
 * await startRun(env, { tenant: 'acme', from: null, to: null }, 'requested by admin', seen, served, Date.now())
 */
export async function startRun(env: Env, scope: RunScope, reason: string, previous: Record<string, string>, target: Record<string, string>, now: number): Promise<Run> {
  const run = await env.REEVAL.getByName('global').createRun(scope, reason, previous, target, now);
  await env.JOBS.send({ kind: 'reeval-page', run: run.id, page: 1, cursor: null } satisfies JobMessage);
  return run;
}

/**
 * One page of a run's listing: queues an item per stored bitstream in scope, then the next page.
 *
 * @example
 * await reevalPage(message, message.body, env, deps)
 */
export async function reevalPage(message: Message<JobMessage>, body: Extract<JobMessage, { kind: 'reeval-page' }>, env: Env, deps: BackgroundDeps): Promise<void> {
  const reevaluator = env.REEVAL.getByName('global');
  const run = await reevaluator.getRun(body.run);
  if (!run || run.pages >= body.page) {
    message.ack();
    return;
  }
  const prefix = run.tenant === null ? 'bitstreams/' : `bitstreams/${encodeURIComponent(run.tenant)}/`;
  const listing = await env.BITSTREAMS.list({ prefix, limit: REEVAL_PAGE_SIZE, ...(body.cursor ? { cursor: body.cursor } : {}) });
  const inScope = listing.objects.filter((o) => {
    const t = o.uploaded.getTime();
    return (run.from === null || t >= run.from) && (run.to === null || t <= run.to) && o.key.endsWith('.lsb');
  });
  const items = inScope.map((o) => ({ body: { kind: 'reeval-item', run: run.id, tenant: decodeURIComponent(o.key.split('/')[1]), key: o.key } satisfies JobMessage }));
  if (items.length) await env.JOBS.sendBatch(items);
  if (listing.truncated) await env.JOBS.send({ kind: 'reeval-page', run: run.id, page: body.page + 1, cursor: listing.cursor } satisfies JobMessage);
  await reevaluator.recordPage(run.id, body.page, listing.objects.length, items.length, !listing.truncated, deps.now());
  message.ack();
}

/**
 * One stored bitstream of a run: re-analysed unless its latest result came from the current models;
 * `analysis.updated` where a task's result changed.
 *
 * @example
 * await reevalItem(message, message.body, env, deps, readJobsConfig(env))
 */
export async function reevalItem(message: Message<JobMessage>, body: Extract<JobMessage, { kind: 'reeval-item' }>, env: Env, deps: BackgroundDeps, config: JobsConfig): Promise<void> {
  const reevaluator = env.REEVAL.getByName('global');
  const done = async (outcome: ItemOutcome) => {
    await reevaluator.itemDone(body.run, body.key, outcome, deps.now());
    message.ack();
  };
  const run = await reevaluator.getRun(body.run);
  const object = run && (await env.BITSTREAMS.get(body.key));
  if (!run || !object) return run ? done('skipped') : message.ack();
  const bytes = new Uint8Array(await object.arrayBuffer());
  const store = env.TENANTS.getByName(body.tenant);
  try {
    const digest = body.key.split('/').pop()!.replace(/\.lsb$/, '');
    const registry = await deps.registry(env);
    const codec = object.customMetadata?.codec ?? '';
    const current = Object.fromEntries(
      (Object.keys(TASKS) as Task[]).flatMap((t) => {
        const m = registry.taskModel(codec, t);
        return m ? [[t, `${m.id}@${m.version}`]] : [];
      }),
    );
    const before = await store.getEvaluation(digest);
    if (before && Object.entries(current).every(([t, m]) => before.models[t] === m)) return done('skipped');
    // Without a record (stored by the synchronous route), the previous result is the run's previous models' cache entry.
    let previousDigests = before?.digests ?? {};
    let previousModels = before?.models ?? {};
    if (!before) {
      previousModels = Object.fromEntries(Object.keys(current).flatMap((t) => (run.previous[`${codec}/${t}`] ? [[t, run.previous[`${codec}/${t}`]]] : [])));
      const ids = Object.values(previousModels).sort();
      const cached = ids.length ? await getResult(env.RESULTS, `${ids.join(',')}:${digest}`) : undefined;
      if (cached) previousDigests = await resultDigests(cached.results);
    }
    const analysis = await analyzeBytes(bytes, undefined, env, deps, `${run.id}:${digest.slice(0, 16)}`);
    const digests = await resultDigests(analysis.results);
    const now = deps.now();
    await store.putEvaluation(digest, { models: Object.fromEntries(analysis.models.map((m) => [m.task, `${m.id}@${m.version}`])), digests, updated_at: now });
    const changed = Object.keys(digests).filter((t) => previousDigests[t] !== undefined && previousDigests[t] !== digests[t]);
    if (changed.length === 0) return done('unchanged');
    const data = {
      bitstream_sha256: digest,
      reevaluation_id: run.id,
      changed_tasks: changed,
      previous_models: previousModels,
      models: Object.fromEntries(analysis.models.map((m) => [m.task, { id: m.id, version: m.version }])),
      results: analysis.results,
    };
    await queueDeliveries(env, body.tenant, await store.emitEvent('analysis.updated', data, now));
    return done('changed');
  } catch (error) {
    const problem = error instanceof ProblemError ? error : streamProblem(error);
    if (!originUnavailable(error) && problem && problem.kind !== 'internal-error') return done('failed');
    if (message.attempts > config.queueMaxRetries) await reevaluator.itemDone(body.run, body.key, 'failed', deps.now());
    else if (!originUnavailable(error)) log.error('re-evaluation item failed', { run: body.run, key: body.key, error: String(error) });
    message.retry({ delaySeconds: backoffSeconds(message.attempts, config.jobRetryBaseSeconds, config.jobRetryMaxSeconds, deps.random) });
  }
}
