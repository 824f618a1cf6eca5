/**
 * A model registry for tests: a 4-channel codec with synthetic tables, named as the codec that the
 * origin's protocol fixtures (test/fixtures/models: cls-test, seg-test) run on, a classifier and a
 * segmenter on its latents, and streams written with the real encoder from `src/`.
 */
import { writeBitstream } from '../../../src/bitstream/index.ts';
import { EntropyTables, encodeLatents, serializeTables } from '../../../src/entropy/index.ts';
import { hex, sha256 } from '../../../functions/edge/digest.ts';
import { type ModelRegistry, loadRegistry } from '../../../functions/edge/registry.ts';
import { laplaceTable, syntheticLatents } from '../../support/synthetic.ts';

export const CODEC_ID = 'fixture-c4';
export const CHANNELS = 4;
export const STRIDE = 8;

export const CLASSIFIER_LABELS = ['tench', 'springer', 'cassette', 'chainsaw', 'church', 'horn'].map((name, i) => ({ id: `c${i}`, name }));
export const SEGMENTER_LABELS = [
  { id: 'sky', name: 'Sky' },
  { id: 'road', name: 'Road' },
  { id: 'car', name: 'Car' },
];

/** The test codec's table file and its hashes. */
export async function testTables() {
  const tables = new EntropyTables(12, [0.5, 1, 2, 3].map((s) => laplaceTable(s, 12)));
  const bytes = serializeTables(tables);
  const digest = hex(await sha256(bytes));
  return { tables, bytes, sha256: digest, tableHash: digest.slice(0, 16) };
}

/** A manifest in the schema of models/manifest.json, serving the test codec and its task models. */
export async function testManifest(extra: Record<string, unknown>[] = []) {
  const t = await testTables();
  return {
    manifest: {
      schema: 1,
      models: [
        {
          id: CODEC_ID,
          kind: 'codec',
          version: '0.1.0',
          stride: STRIDE,
          channels: CHANNELS,
          table_hash: t.tableHash,
          table_precision: 12,
          files: { tables: { path: `${CODEC_ID}/tables.lst`, sha256: t.sha256, bytes: t.bytes.length } },
        },
        { id: 'cls-test', kind: 'classifier', version: '1.0.0', codec: CODEC_ID, input: 'latent', labels: CLASSIFIER_LABELS },
        { id: 'seg-test', kind: 'segmenter', version: '1.0.0', codec: CODEC_ID, input: 'latent', labels: SEGMENTER_LABELS },
        ...extra,
      ],
    },
    files: { [`${CODEC_ID}/tables.lst`]: t.bytes },
    tables: t,
  };
}

let cached: Promise<ModelRegistry> | undefined;

/** The test registry, built once per test file. */
export function testRegistry(): Promise<ModelRegistry> {
  return (cached ??= testManifest().then(async ({ manifest, files }) => {
    const { registry, problems } = await loadRegistry(manifest, files);
    if (problems.length) throw new Error(problems.join('; '));
    return registry;
  }));
}

/**
 * A valid stream of the test codec: latents drawn with `seed` (distinct seeds give distinct
 * streams, so tests sharing KV do not share cache entries).
 */
export async function testStream({ width = 37, height = 21, seed = 1 } = {}) {
  const { tables, tableHash } = await testTables();
  const shape = { channels: CHANNELS, height: Math.ceil(height / STRIDE), width: Math.ceil(width / STRIDE) };
  const { latents } = syntheticLatents(shape, { seed, minScale: 0.3, maxScale: 3 });
  const bytes = writeBitstream({
    width,
    height,
    stride: STRIDE,
    channels: CHANNELS,
    modelId: CODEC_ID,
    tableHash,
    latents: encodeLatents(latents, shape, tables),
  });
  return { bytes, latents, shape, tables };
}
