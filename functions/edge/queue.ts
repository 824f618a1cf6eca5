/**
 * Consumer of the `JOBS` queue. No job kind is handled yet: the async-jobs issue adds them.
 */

/**
 * Handles one batch from the `JOBS` queue.
 *
 * Until job kinds exist, every message is retried, so that it ends in the dead letter queue
 * (`latentsight-jobs-dlq`, after `max_retries`) instead of being acknowledged and lost.
 *
 * @example
 * export default { queue: handleJobs } satisfies ExportedHandler<Env>;
 */
export async function handleJobs(batch: MessageBatch, _env: Env, _ctx: ExecutionContext): Promise<void> {
  for (const message of batch.messages) {
    console.warn('no handler for job', { queue: batch.queue, id: message.id, attempts: message.attempts });
    message.retry();
  }
}
