import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { seededLatents } from '../../test/fixtures/models/reference.ts';
import { OriginError } from './errors.ts';
import { loadManifest, servedModels } from './manifest.ts';
import { ModelRegistry, mergeSignature } from './registry.ts';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const OPTIONS = { threads: 1, maxBatch: 4, maxQueueDelayMs: 1, maxQueue: 8 };

describe('mergeSignature', () => {
  const graph = {
    inputs: [{ name: 'latents', datatype: 'INT16' as const, shape: [-1, -1, -1, -1] }],
    outputs: [{ name: 'scores', datatype: 'FP32' as const, shape: [-1, 5] }],
  };

  it('narrows symbolic graph dimensions to the declared ones and keeps fixed ones', () => {
    const merged = mergeSignature(graph, { inputs: [{ name: 'latents', datatype: 'INT16', shape: [-1, 4, -1, -1] }], outputs: [{ name: 'scores', datatype: 'FP32', shape: [-1, -1] }] }, 'm');
    expect(merged.inputs[0].shape).toEqual([-1, 4, -1, -1]);
    expect(merged.outputs[0].shape).toEqual([-1, 5]);
  });

  it.each([
    ['another input name', { inputs: [{ name: 'image', datatype: 'INT16' as const, shape: [-1, 4, -1, -1] }] }, "m: the ONNX graph's inputs are latents; the manifest declares image"],
    ['another datatype', { inputs: [{ name: 'latents', datatype: 'INT32' as const, shape: [-1, 4, -1, -1] }] }, "m: input 'latents' is INT16 [-1, -1, -1, -1] in the ONNX graph, but the manifest declares INT32 [-1, 4, -1, -1]"],
    ['a fixed dimension that differs', { outputs: [{ name: 'scores', datatype: 'FP32' as const, shape: [-1, 3] }] }, "m: output 'scores' is FP32 [-1, 5] in the ONNX graph, but the manifest declares FP32 [-1, 3]"],
  ])('refuses a manifest that declares %s', (_what, declared, message) => {
    expect(() => mergeSignature(graph, declared, 'm')).toThrow(new OriginError('MODEL_LOAD_FAILED', message));
  });
});

describe('ModelRegistry', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('serves every fixture, batchable, and runs one', async () => {
    const registry = await ModelRegistry.load(servedModels(await loadManifest(join(FIXTURES, 'manifest.json'))), OPTIONS);
    try {
      expect(registry.ready()).toBe(true);
      expect(registry.list().map((m) => [m.name, m.batchable, m.maxBatch])).toEqual([
        ['cls-test', true, 4],
        ['seg-test', true, 4],
        ['cls-c64-test', true, 4],
        ['cls-rgb-test', true, 4],
      ]);
      const out = await registry.get('seg-test')!.infer([{ name: 'latents', datatype: 'INT16', shape: [2, 4, 1, 1], data: seededLatents(8, 1) }], 2, performance.now() + 5000);
      expect(out[0].shape).toEqual([2, 8, 8]);
    } finally {
      await registry.close();
    }
  });

  it('refuses to start when the ONNX graph contradicts the manifest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'origin-registry-'));
    dirs.push(dir);
    const manifest = JSON.parse(await readFile(join(FIXTURES, 'manifest.json'), 'utf8'));
    manifest.models = manifest.models.slice(0, 2);
    manifest.models[1].inputs[0].datatype = 'INT32';
    for (const m of manifest.models) await copyFile(join(FIXTURES, m.files.model.path), join(dir, m.files.model.path));
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
    const load = ModelRegistry.load(servedModels(await loadManifest(join(dir, 'manifest.json'))), OPTIONS);
    await expect(load).rejects.toThrow("model 'seg-test' (seg-test.onnx): input 'latents' is INT16 [-1, 4, -1, -1] in the ONNX graph, but the manifest declares INT32 [-1, 4, -1, -1]");
  });

  it('refuses a file onnxruntime cannot load', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'origin-registry-'));
    dirs.push(dir);
    await writeFile(join(dir, 'broken.onnx'), 'not a model');
    const spec = { name: 'broken', entry: { id: 'broken', kind: 'classifier' as const, version: '1', files: {} }, file: { path: 'broken.onnx', absolutePath: join(dir, 'broken.onnx'), sha256: '', bytes: 11 } };
    const e = await ModelRegistry.load([spec], OPTIONS).catch((x: OriginError) => x);
    expect(e).toBeInstanceOf(OriginError);
    expect((e as OriginError).code).toBe('MODEL_LOAD_FAILED');
    expect((e as OriginError).message).toContain(`onnxruntime could not load ${join(dir, 'broken.onnx')}`);
  });
});
