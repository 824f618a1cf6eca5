/**
 * The edge's logger: one JSON object per line in the Worker's log stream (`wrangler tail`, Workers
 * Logs), the same format as the origin's (`src/protocol/log.ts`). Never keys, bodies or latents.
 *
 * @example
 * log.error('result cache write failed', { request_id: requestId, error: String(error) })
 */
import { createLogger } from '../../src/protocol/log.ts';

export const log = createLogger({ level: 'info' });
