/**
 * GET /v1/models: the codecs a client may encode with (ids, versions, table hashes), those kept
 * only to decode stored streams (`decode_only`, naming the codec to encode with instead), and the
 * task models that run on their latents (with labels). Public: it holds nothing secret, and a client
 * needs it before it has anything to send.
 */
import type { Context } from 'hono';
import type { AppEnv } from '../context.ts';

/** Handles GET /v1/models. */
export async function listModels(c: Context<AppEnv>): Promise<Response> {
  const registry = await c.get('deps').registry(c.env);
  const body = {
    codecs: registry.codecs.map((m) => ({
      id: m.id,
      version: m.version,
      stride: m.stride,
      channels: m.channels,
      table_hash: m.tableHash,
      table_precision: m.tablePrecision,
      legacy_table_hashes: m.legacyTableHashes,
      ...(m.decodeOnly && { decode_only: m.decodeOnly }),
    })),
    task_models: registry.taskModels.map((m) => ({
      id: m.id,
      version: m.version,
      kind: m.kind,
      task: m.task,
      codec: m.codec,
      serves: registry.taskModel(m.codec, m.task) === m,
      labels: m.labels,
    })),
  };
  return c.json(body, 200, { 'cache-control': 'public, max-age=300' });
}
