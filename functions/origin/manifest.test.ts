import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { OriginError } from './errors.ts';
import { loadManifest, parseManifest, selectServed, servedModels } from './manifest.ts';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const FIXTURE_MANIFEST = join(FIXTURES, 'manifest.json');

async function failure(p: Promise<unknown> | (() => unknown)): Promise<OriginError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(OriginError);
    return e as OriginError;
  }
  throw new Error('expected an OriginError');
}

const codec = { id: 'ls-f8-q2', kind: 'codec', version: '1', channels: 64, files: { analysis: { path: 'a.onnx', sha256: 'a'.repeat(64), bytes: 1 }, synthesis: { path: 's.onnx', sha256: 'b'.repeat(64), bytes: 1 } } };
const classifier = (channels: number) => ({
  id: 'cls',
  kind: 'classifier',
  version: '1',
  codec: 'ls-f8-q2',
  input: 'latent',
  files: { model: { path: 'cls.onnx', sha256: 'c'.repeat(64), bytes: 1 } },
  inputs: [{ name: 'latents', datatype: 'INT16', shape: [-1, channels, -1, -1] }],
  outputs: [{ name: 'scores', datatype: 'FP32', shape: [-1, 5] }],
});

describe('loadManifest', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  /** A copy of the fixture folder, with the manifest edited by `edit`. */
  async function fixtureCopy(edit: (m: { models: { id: string; files: Record<string, { path: string; sha256: string; bytes: number }> }[] }) => void): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'origin-manifest-'));
    dirs.push(dir);
    const manifest = JSON.parse(await readFile(FIXTURE_MANIFEST, 'utf8'));
    for (const m of manifest.models) await copyFile(join(FIXTURES, m.files.model.path), join(dir, m.files.model.path));
    edit(manifest);
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
    return join(dir, 'manifest.json');
  }

  it('loads the fixture manifest and serves each task model under its id', async () => {
    const manifest = await loadManifest(FIXTURE_MANIFEST);
    expect(servedModels(manifest).map((m) => m.name)).toEqual(['cls-test', 'seg-test', 'cls-c64-test', 'cls-rgb-test']);
    const cls = manifest.models[0];
    expect(cls).toMatchObject({ id: 'cls-test', kind: 'classifier', version: '1', input: 'latent' });
    expect(cls.files.model.absolutePath).toBe(join(FIXTURES, 'cls-test.onnx'));
  });

  it('serves only the ids ORIGIN_MODELS names, and refuses an id the manifest lacks', async () => {
    const specs = servedModels(await loadManifest(FIXTURE_MANIFEST));
    expect(selectServed(specs, undefined)).toBe(specs);
    expect(selectServed(specs, ['seg-test', 'cls-test']).map((m) => m.name)).toEqual(['cls-test', 'seg-test']);
    expect(() => selectServed(specs, ['cls-test', 'cls-nope'])).toThrow(/ORIGIN_MODELS names 'cls-nope', which the manifest does not list/);
  });

  it('refuses a file whose sha256 differs from the manifest, naming the file and both digests', async () => {
    const path = await fixtureCopy((m) => (m.models[1].files.model.sha256 = '0'.repeat(64)));
    const e = await failure(loadManifest(path));
    expect(e.code).toBe('INTEGRITY_MISMATCH');
    expect(e.message).toMatch(/model 'seg-test' files\.model \(seg-test\.onnx\): sha256 [0-9a-f]{64}, the manifest says 0{64}/);
  });

  it('refuses a file whose size differs, and lists every bad file at once', async () => {
    let size = 0;
    const path = await fixtureCopy((m) => {
      size = m.models[0].files.model.bytes;
      m.models[0].files.model.bytes += 1;
      m.models[2].files.model.sha256 = 'f'.repeat(64);
    });
    const e = await failure(loadManifest(path));
    expect(e.message).toContain(`model 'cls-test' files.model (cls-test.onnx): ${size} bytes on disk, the manifest says ${size + 1}`);
    expect(e.message).toContain("model 'cls-c64-test' files.model");
  });

  it('refuses a missing file', async () => {
    const path = await fixtureCopy((m) => (m.models[0].files.model.path = 'gone.onnx'));
    expect((await failure(loadManifest(path))).message).toMatch(/cannot read .*gone\.onnx \(ENOENT\)/);
  });

  it('refuses a missing manifest with a hint', async () => {
    const e = await failure(loadManifest('/nonexistent/manifest.json'));
    expect(e.code).toBe('INVALID_MANIFEST');
    expect(e.message).toContain('set ORIGIN_MANIFEST to its path');
  });
});

describe('parseManifest', () => {
  it('serves a codec as <id>.analysis and <id>.synthesis, paths relative to the manifest', () => {
    const manifest = parseManifest({ schema: 1, models: [codec] }, '/srv/models/manifest.json');
    expect(servedModels(manifest).map((m) => [m.name, m.file.absolutePath])).toEqual([
      ['ls-f8-q2.analysis', '/srv/models/a.onnx'],
      ['ls-f8-q2.synthesis', '/srv/models/s.onnx'],
    ]);
  });

  it('lists entries of unknown kinds as skipped rather than failing', () => {
    const manifest = parseManifest({ schema: 1, models: [{ id: 'det', kind: 'detector' }] }, '/m.json');
    expect(manifest.skipped).toEqual([{ id: 'det', kind: 'detector' }]);
    expect(manifest.models).toEqual([]);
  });

  it.each([
    ['another schema', { schema: 2, models: [] }, 'schema 2 is not supported; this origin reads schema 1'],
    ['a bad id', { schema: 1, models: [{ ...codec, id: 'LS F8' }] }, 'id "LS F8" must be 1-32 characters of [a-z0-9._-]'],
    ['a duplicate id', { schema: 1, models: [codec, codec] }, "id 'ls-f8-q2' appears twice"],
    ['a codec without synthesis', { schema: 1, models: [{ ...codec, files: { analysis: codec.files.analysis } }] }, 'a codec needs files.synthesis'],
    ['an absolute path', { schema: 1, models: [{ ...codec, files: { ...codec.files, analysis: { ...codec.files.analysis, path: '/etc/passwd' } } }] }, 'path "/etc/passwd" must be relative'],
    ['a bad sha256', { schema: 1, models: [{ ...codec, files: { ...codec.files, analysis: { ...codec.files.analysis, sha256: 'XYZ' } } }] }, 'sha256 must be 64 lowercase hex digits'],
    ['a classifier without declared I/O', { schema: 1, models: [{ ...classifier(64), inputs: undefined }] }, "a classifier must declare 'inputs' and 'outputs'"],
    ['a declared datatype KServe lacks', { schema: 1, models: [{ ...classifier(64), inputs: [{ name: 'latents', datatype: 'INT4', shape: [-1] }] }] }, 'datatype "INT4" is not a KServe datatype'],
    ['a latent model with the wrong channel count for its codec', { schema: 1, models: [codec, classifier(32)] }, "its input has 32 channels, but its codec 'ls-f8-q2' makes 64"],
    ['a task model trained on another analysis transform than the codec shipped', { schema: 1, models: [codec, { ...classifier(64), training: { codec: { analysis_sha256: 'd'.repeat(64) } } }] }, "it was trained on codec 'ls-f8-q2' with analysis sha256 dddddddddddd…, but the manifest ships aaaaaaaaaaaa…"],
    ['an int8 variant of another version of its source', { schema: 1, models: [codec, classifier(64), { ...classifier(64), id: 'cls-int8', quantized_from: { id: 'cls', version: '0.9.0', sha256: 'c'.repeat(64) } }] }, "it was quantised from 'cls' 0.9.0 (sha256 cccccccccccc…), but the manifest ships"],
    ['a malformed quantized_from', { schema: 1, models: [{ ...classifier(64), quantized_from: { id: 'cls' } }] }, "model 'cls' quantized_from: must be {id, version, sha256}"],
    ['a malformed training codec fingerprint', { schema: 1, models: [{ ...classifier(64), training: { codec: { analysis_sha256: 'abc' } } }] }, 'training.codec.analysis_sha256 must be 64 lowercase hex digits'],
  ])('refuses %s', async (_what, json, message) => {
    const e = await failure(() => parseManifest(json, '/m.json'));
    expect(e.code).toBe('INVALID_MANIFEST');
    expect(e.message).toContain(message);
  });

  it('accepts a latent model whose channels match its codec', () => {
    expect(parseManifest({ schema: 1, models: [codec, classifier(64)] }, '/m.json').models).toHaveLength(2);
  });

  it('accepts an int8 variant of the source file the manifest ships, or of a source it does not list', () => {
    const variant = { ...classifier(64), id: 'cls-int8', quantized_from: { id: 'cls', version: '1', sha256: 'c'.repeat(64) } };
    expect(parseManifest({ schema: 1, models: [codec, classifier(64), variant] }, '/m.json').models[2]?.quantizedFrom).toEqual({ id: 'cls', version: '1', sha256: 'c'.repeat(64) });
    expect(parseManifest({ schema: 1, models: [codec, variant] }, '/m.json').models).toHaveLength(2);
  });

  it('accepts a task model trained on the analysis transform the manifest ships', () => {
    const trained = { ...classifier(64), training: { codec: { analysis_sha256: 'a'.repeat(64) } } };
    expect(parseManifest({ schema: 1, models: [codec, trained] }, '/m.json').models[1]?.trainedOnAnalysis).toBe('a'.repeat(64));
  });
});
