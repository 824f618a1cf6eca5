import { readFileSync } from 'node:fs';
import { writeBitstream } from '../../src/bitstream/index.ts';
import { encodeLatents, parseTables, type EntropyTables } from '../../src/entropy/index.ts';
import { sampleStream } from '../support/streams.ts';
import { syntheticLatents } from '../support/synthetic.ts';

export interface Seed {
  name: string;
  bytes: Uint8Array;
  modelId: string;
  tableHash: string;
  tables: EntropyTables;
}

/**
 * Valid streams to mutate: the golden vectors (every lane count, precisions 8/12/16, escapes,
 * skipped channels, an optional part) and a synthetic codec-shaped stream.
 */
export function loadSeeds(): Seed[] {
  const dir = new URL('../vectors/', import.meta.url);
  const index = JSON.parse(readFileSync(new URL('vectors.json', dir), 'utf8')) as {
    cases: { name: string; tables: string; table_hash: string; model_id: string; stream: string }[];
  };
  const seeds: Seed[] = index.cases.map((c) => ({
    name: c.name,
    bytes: new Uint8Array(readFileSync(new URL(c.stream, dir))),
    modelId: c.model_id,
    tableHash: c.table_hash,
    tables: parseTables(new Uint8Array(readFileSync(new URL(c.tables, dir)))),
  }));
  const sample = sampleStream({ width: 96, height: 64, channels: 6, seed: 9 });
  seeds.push({ name: 'synthetic-6ch', bytes: sample.bytes, modelId: 'test-f8', tableHash: '00112233445566aa', tables: sample.tables });
  // The shipped codec's context tables (coder 2, its 4-lane fast path), on codec-shaped latents.
  const shipped = parseTables(new Uint8Array(readFileSync(new URL('../../models/ls-f8-q2/tables.lst', import.meta.url))));
  const shape = { channels: 64, height: 8, width: 12 };
  const { latents } = syntheticLatents(shape, { seed: 11, minScale: 0.05, maxScale: 3 });
  latents[5] = 4000; // an escape
  const bytes = writeBitstream({
    width: 96, height: 64, stride: 8, channels: 64, modelId: 'test-ctx-f8', tableHash: '00112233445566bb',
    latents: encodeLatents(latents, shape, shipped),
  });
  seeds.push({ name: 'shipped-ls-f8-q2-context', bytes, modelId: 'test-ctx-f8', tableHash: '00112233445566bb', tables: shipped });
  return seeds;
}
