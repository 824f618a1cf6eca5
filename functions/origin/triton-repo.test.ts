import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { preferredSizes, tritonConfig, writeTritonRepository } from './triton-repo.ts';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const MANIFEST = JSON.parse(await readFile(join(FIXTURES, 'manifest.json'), 'utf8')) as { models: { id: string; files: { model: { sha256: string } } }[] };
const sha = (id: string) => MANIFEST.models.find((m) => m.id === id)!.files.model.sha256;

describe('writeTritonRepository', () => {
  let out: string;
  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('writes config.pbtxt and 1/model.onnx for every fixture', async () => {
    out = await mkdtemp(join(tmpdir(), 'triton-repo-'));
    const names = await writeTritonRepository(join(FIXTURES, 'manifest.json'), out, { maxBatch: 16, maxQueueDelayMs: 2 });
    expect(names).toEqual(['cls-test', 'seg-test', 'cls-c64-test', 'cls-rgb-test']);
    expect(await readFile(join(out, 'cls-test', 'config.pbtxt'), 'utf8')).toBe(`# Written by functions/origin/triton-repo.ts from the latentsight manifest: do not edit.
# model version 1, sha256 ${sha('cls-test')}
name: "cls-test"
platform: "onnxruntime_onnx"
max_batch_size: 16
input [
  {
    name: "latents"
    data_type: TYPE_INT16
    dims: [ 4, -1, -1 ]
  }
]
output [
  {
    name: "scores"
    data_type: TYPE_FP32
    dims: [ 5 ]
  },
  {
    name: "classes"
    data_type: TYPE_INT64
    dims: [ 5 ]
  }
]
dynamic_batching {
  preferred_batch_size: [ 4, 8, 16 ]
  max_queue_delay_microseconds: 2000
}
`);
    expect(await readFile(join(out, 'seg-test', 'config.pbtxt'), 'utf8')).toContain(`output [
  {
    name: "mask"
    data_type: TYPE_UINT8
    dims: [ -1, -1 ]
  }
]`);
    expect(await readFile(join(out, 'cls-rgb-test', 'config.pbtxt'), 'utf8')).toContain('dims: [ 3, 224, 224 ]');
    expect(await readFile(join(out, 'seg-test', '1', 'model.onnx'))).toEqual(await readFile(join(FIXTURES, 'seg-test.onnx')));
  });
});

describe('tritonConfig', () => {
  it('gives a model without a batch axis max_batch_size 0, full dims and no dynamic batching', () => {
    const text = tritonConfig(
      { name: 'fixed', version: '2', sha256: 'ab', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3] }], outputs: [{ name: 'y', datatype: 'BOOL', shape: [1] }] },
      { maxBatch: 16, maxQueueDelayMs: 2 },
    );
    expect(text).toContain('max_batch_size: 0\n');
    expect(text).toContain('dims: [ 1, 3 ]');
    expect(text).toContain('data_type: TYPE_BOOL');
    expect(text).not.toContain('dynamic_batching');
  });

  it.each([
    [1, []],
    [2, [2]],
    [8, [2, 4, 8]],
    [16, [4, 8, 16]],
  ])('prefers batch sizes %i -> %j', (max, sizes) => {
    expect(preferredSizes(max)).toEqual(sizes);
  });
});
