// The model registry: the bundled manifest and tables load cleanly, a broken entry is left out
// with a reason, and GET /v1/models lists what is served.
import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { hex, sha256 } from '../../functions/edge/digest.ts';
import { BUNDLED_TABLES, MANIFEST } from '../../functions/edge/models.ts';
import { loadRegistry } from '../../functions/edge/registry.ts';
import { testEdge, testEnv } from './support/edge.ts';
import { testManifest } from './support/models.ts';

const EDGE = 'http://edge.test';

describe('the bundled models', () => {
  it('serve every codec of models/manifest.json, with tables whose hash is the manifest\'s', async () => {
    const { registry, problems } = await loadRegistry(MANIFEST, BUNDLED_TABLES);
    const manifest = MANIFEST as {
      models: { id: string; kind: string; table_hash: string; files: { tables: { path: string } }; legacy_tables?: { table_hash: string }[] }[];
    };
    const codecs = manifest.models.filter((m) => m.kind === 'codec');

    expect(problems).toEqual([]);
    expect(registry.codecs.map((c) => c.id)).toEqual(codecs.map((c) => c.id));
    for (const c of codecs) {
      const bytes = new Uint8Array(BUNDLED_TABLES[c.files.tables.path] as ArrayBuffer);
      expect(hex(await sha256(bytes)).slice(0, 16)).toBe(c.table_hash);
      expect(registry.codec(c.id)!.tables.channels).toBe(registry.codec(c.id)!.channels);
      // Earlier versions' tables are bundled too, so that archived streams still decode.
      expect(registry.codec(c.id)!.legacyTableHashes).toEqual((c.legacy_tables ?? []).map((l) => l.table_hash));
    }
  });
});

describe('loadRegistry', () => {
  it('leaves out a codec whose tables are missing or altered, and the task models on it, saying why', async () => {
    const { manifest, files } = await testManifest([
      { id: 'other-codec', kind: 'codec', version: '1', stride: 8, channels: 4, table_hash: '0000000000000000', files: { tables: { path: 'other/tables.lst', sha256: 'x' } } },
      { id: 'orphan', kind: 'classifier', version: '1', codec: 'other-codec', input: 'latent', labels: [{ id: 'a', name: 'A' }] },
      { id: 'pixels', kind: 'classifier', version: '1', codec: 'fixture-c4', input: 'image', labels: [{ id: 'a', name: 'A' }] },
      { id: 'future', kind: 'upscaler', version: '1' },
    ]);
    const altered = { ...files, 'fixture-c4/tables.lst': files['fixture-c4/tables.lst'].slice() };

    const ok = await loadRegistry(manifest, files);
    expect(ok.problems).toEqual(['codec other-codec: its table file other/tables.lst is not bundled with the edge (functions/edge/models.ts)', 'classifier orphan: its codec "other-codec" is not served']);
    expect(ok.registry.taskModels.map((m) => m.id)).toEqual(['cls-test', 'seg-test']);

    altered['fixture-c4/tables.lst'][20] ^= 1;
    const bad = await loadRegistry(manifest, altered);
    expect(bad.registry.codecs).toEqual([]);
    expect(bad.problems[0]).toMatch(/^codec fixture-c4: fixture-c4\/tables.lst has sha256 [0-9a-f]{64}, the manifest says/);
  });

  it("decodes an earlier version's tables only when they belong to the codec's analysis transform", async () => {
    const { manifest, files, tables } = await testManifest();
    const codec = manifest.models[0] as Record<string, unknown> & { files: Record<string, unknown> };
    codec.files.analysis = { path: 'fixture-c4/analysis.onnx', sha256: 'a'.repeat(64), bytes: 1 };
    const old = { version: '0.0.1', path: 'fixture-c4/tables-0.0.1.lst', sha256: tables.sha256, bytes: tables.bytes.length, table_hash: tables.tableHash };
    const withOld = { ...files, 'fixture-c4/tables-0.0.1.lst': tables.bytes };

    codec.legacy_tables = [{ ...old, analysis_sha256: 'a'.repeat(64) }];
    const same = await loadRegistry(manifest, withOld);
    expect(same.problems).toEqual([]);
    expect(same.registry.codec('fixture-c4')!.legacyTableHashes).toEqual([tables.tableHash]);

    codec.legacy_tables = [{ ...old, analysis_sha256: 'b'.repeat(64) }];
    const other = await loadRegistry(manifest, withOld);
    expect(other.problems[0]).toBe('codec fixture-c4: legacy_tables[0] belongs to another analysis transform');

    codec.legacy_tables = [{ ...old, analysis_sha256: 'a'.repeat(64) }];
    const missing = await loadRegistry(manifest, files);
    expect(missing.problems[0]).toMatch(/tables-0\.0\.1\.lst is not bundled/);
  });

  it('leaves out a task model trained on latents of another analysis transform than the codec shipped', async () => {
    const { manifest, files } = await testManifest([
      { id: 'stale', kind: 'classifier', version: '1', codec: 'fixture-c4', input: 'latent', labels: [{ id: 'a', name: 'A' }], training: { codec: { analysis_sha256: 'd'.repeat(64) } } },
      { id: 'current', kind: 'segmenter', version: '1', codec: 'fixture-c4', input: 'latent', labels: [{ id: 'a', name: 'A' }], training: { codec: { analysis_sha256: 'a'.repeat(64) } } },
    ]);
    const codec = manifest.models[0] as { files: Record<string, unknown> };
    codec.files.analysis = { path: 'fixture-c4/analysis.onnx', sha256: 'a'.repeat(64), bytes: 1 };

    const { registry, problems } = await loadRegistry(manifest, files);
    expect(problems).toEqual(['classifier stale: it was trained on other latents than codec "fixture-c4" 0.1.0 makes (analysis sha256 dddddddddddd…, shipped aaaaaaaaaaaa…)']);
    expect(registry.taskModels.map((m) => m.id)).toEqual(['cls-test', 'seg-test', 'current']);
  });

  it('serves a (codec, task) pair with the model TASK_MODELS names, else with the first listed', async () => {
    const { manifest, files } = await testManifest([
      { id: 'cls-test-int8', kind: 'classifier', version: '1.0.0', codec: 'fixture-c4', input: 'latent', labels: [{ id: 'a', name: 'A' }] },
      { id: 'cls-test-other', kind: 'classifier', version: '1.0.0', codec: 'fixture-c4', input: 'latent', labels: [{ id: 'a', name: 'A' }] },
    ]);

    const plain = await loadRegistry(manifest, files);
    expect(plain.registry.taskModel('fixture-c4', 'classify')?.id).toBe('cls-test');

    // The first id of the list wins a pair that several of its ids serve; the other pairs keep their default.
    const preferred = await loadRegistry(manifest, files, ['cls-test-other', 'cls-test-int8']);
    expect(preferred.problems).toEqual([]);
    expect(preferred.registry.taskModel('fixture-c4', 'classify')?.id).toBe('cls-test-other');
    expect(preferred.registry.taskModel('fixture-c4', 'segment')?.id).toBe('seg-test');
    expect(preferred.registry.taskModels.map((m) => m.id)).toEqual(['cls-test', 'seg-test', 'cls-test-int8', 'cls-test-other']);

    const unknown = await loadRegistry(manifest, files, ['cls-missing']);
    expect(unknown.problems).toEqual(['TASK_MODELS names "cls-missing", which is not a served task model']);
    expect(unknown.registry.taskModel('fixture-c4', 'classify')?.id).toBe('cls-test');
  });

  it('rejects a manifest of another schema', async () => {
    await expect(loadRegistry({ schema: 2, models: [] }, {})).rejects.toThrow(/schema/);
  });
});

describe('GET /v1/models', () => {
  it('lists codecs with table hashes and task models with labels', async () => {
    const edge = testEdge();
    const response = await edge.fetch('/v1/models');

    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('public, max-age=300');
    const body = await response.json<any>();
    const { tables } = await testManifest();
    expect(body.codecs).toEqual([{ id: 'fixture-c4', version: '0.1.0', stride: 8, channels: 4, table_hash: tables.tableHash, table_precision: 12, legacy_table_hashes: [] }]);
    expect(body.task_models.map((m: { id: string; task: string; serves: boolean }) => [m.id, m.task, m.serves])).toEqual([
      ['cls-test', 'classify', true],
      ['seg-test', 'segment', true],
    ]);
    expect(body.task_models[1].labels[0]).toEqual({ index: 0, id: 'sky', name: 'Sky' });
  });

  it('serves the bundled int8 variants where the TASK_MODELS var names them, the float models otherwise', async () => {
    const edge = testEdge({ registry: undefined }); // the bundled manifest, as the Worker loads it
    const served = async (vars: Partial<Env>) => {
      const body = await (await edge.fetch('/v1/models', {}, { ...testEnv, ...vars } as Env)).json<{ task_models: { id: string; codec: string; serves: boolean }[] }>();
      return body.task_models.filter((m) => m.codec === 'ls-f8-q2' && m.serves).map((m) => m.id).sort();
    };

    expect(await served({ TASK_MODELS: '' })).toEqual(['cls-latent-ls-f8-q2', 'seg-latent-ls-f8-q2']);
    expect(await served({ TASK_MODELS: 'cls-latent-ls-f8-q2-int8, seg-latent-ls-f8-q2-int8' })).toEqual(['cls-latent-ls-f8-q2-int8', 'seg-latent-ls-f8-q2-int8']);
  });

  it('lists the bundled codecs through the Worker itself, without an API key', async () => {
    const response = await exports.default.fetch(`${EDGE}/v1/models`);
    type Listed = { id: string; table_hash: string; legacy_table_hashes: string[]; decode_only?: { since: string; successor: string } };
    const body = await response.json<{ codecs: Listed[] }>();
    const manifest = MANIFEST as {
      default_codec: string;
      models: { id: string; kind: string; table_hash: string; legacy_tables?: { table_hash: string }[]; decode_only?: { since: string; successor: string } }[];
    };
    const codecs = manifest.models.filter((m) => m.kind === 'codec');

    expect(body.codecs.map((c) => [c.id, c.table_hash, c.legacy_table_hashes])).toEqual(
      codecs.map((m) => [m.id, m.table_hash, (m.legacy_tables ?? []).map((l) => l.table_hash)]),
    );
    // A decode-only codec is still served (its stored streams decode) and says what to encode with.
    expect(body.codecs.map((c) => [c.id, c.decode_only ?? null])).toEqual(
      codecs.map((m) => [m.id, m.decode_only ? { since: m.decode_only.since, successor: m.decode_only.successor } : null]),
    );
    const retired = body.codecs.filter((c) => c.decode_only);
    expect(retired.length).toBeGreaterThan(0);
    for (const c of retired) expect(body.codecs.some((o) => o.id === c.decode_only!.successor && !o.decode_only)).toBe(true);
    expect(retired.map((c) => c.id)).not.toContain(manifest.default_codec);
  });
});
