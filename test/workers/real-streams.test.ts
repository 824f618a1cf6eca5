// Streams not made by the edge's own test helpers reach the origin as exactly the latents they
// encode: the golden vectors (written by the independent Python reference coder) and a stream
// coded with each shipped codec's real tables by the encoder in src/.
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { readHeader, writeBitstream } from '../../src/bitstream/index.ts';
import { encodeLatents } from '../../src/entropy/index.ts';
import { hex, sha256 } from '../../functions/edge/digest.ts';
import { BUNDLED_TABLES, MANIFEST } from '../../functions/edge/models.ts';
import { loadRegistry } from '../../functions/edge/registry.ts';
import { syntheticLatents } from '../support/synthetic.ts';
import { analyzeInit, seedKey, testEdge } from './support/edge.ts';
import { CLASSIFIER_LABELS } from './support/models.ts';

const files = (env as unknown as { TEST_VECTORS: Record<string, string> }).TEST_VECTORS;
const bytes = (name: string) => Uint8Array.from(atob(files[name]), (c) => c.charCodeAt(0));
const index = JSON.parse(new TextDecoder().decode(bytes('vectors.json'))) as {
  cases: { name: string; tables: string; model_id: string; stream: string; latents: string }[];
};

/** A classifier on `codec`, so that the edge has somewhere to send the codec's latents. */
const classifierOn = (codec: string) => ({ id: 'cls-test', kind: 'classifier', version: '1.0.0', codec, input: 'latent', labels: CLASSIFIER_LABELS });

describe('real streams through POST /v1/analyze', () => {
  it.each(index.cases)('golden vector $name reaches the origin as its stored latents, byte for byte', async (c) => {
    const stream = bytes(c.stream);
    const header = readHeader(stream);
    const tables = bytes(c.tables);
    const digest = hex(await sha256(tables));
    const manifest = {
      schema: 1,
      models: [
        {
          id: c.model_id,
          kind: 'codec',
          version: 'vector',
          stride: header.stride,
          channels: header.channels,
          table_hash: digest.slice(0, 16),
          files: { tables: { path: c.tables, sha256: digest } },
        },
        classifierOn(c.model_id),
      ],
    };
    const { registry, problems } = await loadRegistry(manifest, { [c.tables]: tables });
    expect(problems).toEqual([]);
    const edge = testEdge({ registry: async () => registry });

    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(await seedKey(), stream));

    expect(response.status).toBe(200);
    const [request] = edge.origin!.requests;
    expect(request.header.inputs[0].shape).toEqual([1, header.channels, header.latentHeight, header.latentWidth]);
    expect(request.tensor).toEqual(bytes(c.latents));
  });

  const manifest = MANIFEST as { schema: number; models: { id: string; kind: string }[] };

  // Each codec's current tables, and every earlier version's it still decodes (streams archived in
  // R2 before a table update, clients not yet updated).
  const tableSets = (MANIFEST as { models: { id: string; kind: string; table_hash: string; legacy_tables?: { table_hash: string }[] }[] }).models
    .filter((m) => m.kind === 'codec')
    .flatMap((m) => [m.table_hash, ...(m.legacy_tables ?? []).map((l) => l.table_hash)].map((hash) => [m.id, hash] as const));

  it.each(tableSets)('a 256x192 stream coded with the real %s tables %s reaches the origin as its latents', async (id, hash) => {
    const { registry, problems } = await loadRegistry({ ...manifest, models: [...manifest.models, classifierOn(id)] }, BUNDLED_TABLES);
    expect(problems).toEqual([]);
    const codec = registry.codec(id)!;
    const tables = hash === codec.tableHash ? codec.tables : codec.legacyTables.get(hash)!;
    const shape = { channels: codec.channels, height: 192 / codec.stride, width: 256 / codec.stride };
    const { latents } = syntheticLatents(shape, { seed: 7, minScale: 0.05, maxScale: 4 });
    const stream = writeBitstream({
      width: 256,
      height: 192,
      stride: codec.stride,
      channels: codec.channels,
      modelId: codec.id,
      tableHash: hash,
      latents: encodeLatents(latents, shape, tables),
    });
    const edge = testEdge({ registry: async () => registry });

    const response = await edge.fetch('/v1/analyze?tasks=classify', analyzeInit(await seedKey(), stream));

    expect(response.status).toBe(200);
    expect((await response.json<{ codec: string }>()).codec).toBe(id);
    // Compared by digest: a deep equality over 100k elements is slow.
    expect(hex(await sha256(edge.origin!.requests[0].tensor))).toBe(hex(await sha256(new Uint8Array(latents.buffer))));
  });
});
