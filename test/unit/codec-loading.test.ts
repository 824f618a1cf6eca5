import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Codec,
  type CodecEntry,
  DEFAULT_MODELS_DIR,
  type Manifest,
  type ModelRuntime,
  createNodeRuntime,
  decodeBitstreamLatents,
  decodeImage,
  encodeImage,
  findCodec,
  loadCodec,
  parseManifest,
  psnr,
  readImageFile,
  readManifest,
} from '../../src/codec/node.ts';
import { createWebRuntime } from '../../src/codec/runtime-web.ts';

const readModelFile = async (path: string) => new Uint8Array(await readFile(join(DEFAULT_MODELS_DIR, path)));

let manifest: Manifest;
let entry: CodecEntry;
beforeAll(async () => {
  manifest = await readManifest();
  entry = findCodec(manifest);
});

describe('findCodec and parseManifest', () => {
  it('picks the first codec that takes encodes when no id is given and the manifest names no default', () => {
    expect(findCodec({ ...manifest, default_codec: undefined }).id).toBe(manifest.models.find((m) => m.kind === 'codec' && !m.decode_only)?.id);
    // A decode-only codec can be named (to decode its streams) but never be the default.
    const retired = manifest.models.find((m) => m.kind === 'codec' && m.decode_only)!;
    expect(findCodec(manifest, retired.id).id).toBe(retired.id);
    expect(() => findCodec({ ...manifest, default_codec: retired.id })).toThrow(/default codec .* is decode-only/);
  });

  it('names the known codecs when asked for an unknown id', () => {
    expect(() => findCodec(manifest, 'no-such-codec')).toThrow(expect.objectContaining({ code: 'UNKNOWN_CODEC', message: expect.stringContaining(entry.id) }));
  });

  it('rejects a manifest of another schema and text that is not JSON', () => {
    expect(() => parseManifest({ schema: 2, models: [] })).toThrow(expect.objectContaining({ code: 'INVALID_MANIFEST' }));
    expect(() => parseManifest('{ nope')).toThrow(expect.objectContaining({ code: 'INVALID_MANIFEST' }));
  });

  it('rejects a codec entry without a table hash', () => {
    const broken = { schema: 1, models: [{ ...entry, table_hash: undefined }] };
    expect(() => findCodec(parseManifest(broken))).toThrow(expect.objectContaining({ code: 'INVALID_MANIFEST' }));
  });
});

describe('loadCodec', () => {
  const runtime = createNodeRuntime({ threads: 1 });

  it('rejects a table file whose SHA-256 differs from the manifest with MODEL_INTEGRITY', async () => {
    const tampered = async (path: string) => {
      const bytes = await readModelFile(path);
      bytes[bytes.length - 1] ^= 1;
      return bytes;
    };
    await expect(loadCodec(entry, { readFile: tampered, runtime })).rejects.toMatchObject({ code: 'MODEL_INTEGRITY' });
  });

  it('rejects a manifest whose table_hash does not match the table file', async () => {
    const wrong = { ...entry, table_hash: '0000000000000000' };
    await expect(loadCodec(wrong, { readFile: readModelFile, runtime })).rejects.toMatchObject({ code: 'MODEL_INTEGRITY' });
  });

  it('verifies an ONNX model when it is first used, not before', async () => {
    const reads: string[] = [];
    const readFile = async (path: string) => {
      reads.push(path);
      const bytes = await readModelFile(path);
      if (path.endsWith('synthesis.onnx')) bytes[100] ^= 1;
      return bytes;
    };
    const codec = await loadCodec(entry, { readFile, runtime });
    expect(reads).toEqual([entry.files.tables.path]);
    // Earlier versions' tables only when asked for (decoders of stored streams, not encoders).
    reads.length = 0;
    const decoder = await loadCodec(entry, { readFile, runtime, legacyTables: true });
    expect(reads).toEqual([entry.files.tables.path, ...(entry.legacy_tables ?? []).map((l) => l.path)]);
    expect(decoder.legacyTableHashes).toEqual((entry.legacy_tables ?? []).map((l) => l.table_hash));
    await expect(codec.synthesis()).rejects.toMatchObject({ code: 'MODEL_INTEGRITY' });
  });

  it('reports a file that cannot be read as MODEL_UNAVAILABLE', async () => {
    const missing = async () => {
      throw new Error('ENOENT');
    };
    await expect(loadCodec(entry, { readFile: missing, runtime })).rejects.toMatchObject({ code: 'MODEL_UNAVAILABLE' });
  });
});

// One conformance suite for every runtime adapter: onnxruntime-web runs its wasm build under Node here.
const runtimes: Array<[string, () => ModelRuntime]> = [
  ['onnxruntime-node', () => createNodeRuntime({ threads: 1 })],
  ['onnxruntime-web', () => createWebRuntime({ threads: 1 })],
];

describe.each(runtimes)('the codec on %s', (name, makeRuntime) => {
  let codec: Codec;
  let reference: Codec;
  beforeAll(async () => {
    codec = await loadCodec(entry, { readFile: readModelFile, runtime: makeRuntime() });
    reference = await loadCodec(entry, { readFile: readModelFile, runtime: createNodeRuntime({ threads: 1 }) });
  });
  afterAll(async () => {
    await codec?.release();
    await reference?.release();
  });

  it('reports its runtime name', () => {
    expect(codec.runtime.name).toBe(name);
  });

  it('produces the same latents as onnxruntime-node but for rare rounding ties, and decodes them alike', async () => {
    const image = await readImageFile(fileURLToPath(new URL('../fixtures/kodim23-64x48.png', import.meta.url)));
    const bytes = await encodeImage(image, codec);
    const mine = decodeBitstreamLatents(bytes, codec).latents;
    const theirs = decodeBitstreamLatents(await encodeImage(image, reference), reference).latents;
    let differ = 0;
    for (let i = 0; i < mine.length; i++) if (mine[i] !== theirs[i]) differ++;
    expect(differ / mine.length).toBeLessThan(1e-3);
    // Same bitstream, two runtimes: the float synthesis may differ in the last bits, never by a visible amount.
    expect(psnr(await decodeImage(bytes, codec), await decodeImage(bytes, reference))).toBeGreaterThan(60);
  });
});
