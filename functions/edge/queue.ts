/**
 * Consumer of the `JOBS` queue: one message is one piece of background work, by `kind`:
 *
 * - `job`: an async analysis (jobs.ts);
 * - `delivery`: one webhook delivery attempt (webhooks.ts);
 * - `reeval-page`, `reeval-item`: a re-evaluation run's listing page and one stored bitstream (reeval.ts).
 *
 * Messages of a batch run concurrently; each is acknowledged or retried on its own. A message of an
 * unknown kind is retried, so that it ends in the dead letter queue (`latentsight-jobs-dlq`, after
 * `max_retries`) instead of being acknowledged and lost.
 */
import { type BackgroundDeps, type JobMessage, type JobsConfig, readJobsConfig } from './background.ts';
import { runJob } from './jobs.ts';
import { reevalItem, reevalPage } from './reeval.ts';
import { deliver } from './webhooks.ts';
import { log } from './log.ts';

/**
 * The queue handler with its dependencies (tests pass a registry, an origin and a webhook network).
 *
 * @example
 * export default { queue: createQueueHandler(deps) } satisfies ExportedHandler<Env>;
 */
export function createQueueHandler(deps: BackgroundDeps) {
  return async (batch: MessageBatch, env: Env, _ctx: ExecutionContext): Promise<void> => {
    const config = readJobsConfig(env);
    await Promise.all(batch.messages.map((message) => handle(message, env, deps, config, batch.queue)));
  };
}

async function handle(message: Message, env: Env, deps: BackgroundDeps, config: JobsConfig, queue: string): Promise<void> {
  const body = message.body as JobMessage | null;
  try {
    switch (body?.kind) {
      case 'job':
        return await runJob(message as Message<JobMessage>, body, env, deps, config);
      case 'delivery':
        return await deliver(message as Message<JobMessage>, body, env, deps, config);
      case 'reeval-page':
        return await reevalPage(message as Message<JobMessage>, body, env, deps);
      case 'reeval-item':
        return await reevalItem(message as Message<JobMessage>, body, env, deps, config);
      default:
        log.warn('no handler for job', { queue, message_id: message.id, attempts: message.attempts });
        message.retry();
    }
  } catch (error) {
    // A store or queue call failed: the queue tries again later (and dead-letters after max_retries).
    log.error('queue message failed', { queue, message_id: message.id, kind: body?.kind, attempts: message.attempts, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
    message.retry({ delaySeconds: Math.min(300, 5 * 2 ** Math.max(0, message.attempts - 1)) });
  }
}
