/**
 * Reads `models/manifest.json` (schema 1), validates every entry the origin serves, and checks each
 * listed file's size and sha256 before anything is loaded. A mismatch stops the origin: serving a model
 * other than the one the manifest names would silently change results and cache keys.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type TensorSpec, isDatatype } from './datatypes.ts';
import { OriginError } from './errors.ts';

export type ModelKind = 'codec' | 'classifier' | 'segmenter';

export interface ManifestFile {
  /** As written in the manifest: relative to the manifest's folder. */
  readonly path: string;
  readonly absolutePath: string;
  readonly sha256: string;
  readonly bytes: number;
}

export interface ModelEntry {
  readonly id: string;
  readonly kind: ModelKind;
  readonly version: string;
  readonly files: Readonly<Record<string, ManifestFile>>;
  /** Task models: the codec whose latents (or decoded images) they take. */
  readonly codec?: string;
  /** Task models: 'latent' or 'rgb'. */
  readonly input?: string;
  /** Codecs: latent channels. */
  readonly channels?: number;
  /** Task models: sha256 of the analysis transform whose latents they were trained on. */
  readonly trainedOnAnalysis?: string;
  /** Quantised variants (training/tasks/quantize.py): the model and file they were made from. */
  readonly quantizedFrom?: { readonly id: string; readonly version: string; readonly sha256: string };
  /** Task models: declared I/O (KServe datatypes, -1 for dynamic dimensions). */
  readonly inputs?: readonly TensorSpec[];
  readonly outputs?: readonly TensorSpec[];
}

/** One ONNX graph the origin serves, under its KServe model name. */
export interface ServedModelSpec {
  /** `<id>` for task models, `<id>.analysis` / `<id>.synthesis` for codecs. */
  readonly name: string;
  readonly entry: ModelEntry;
  readonly file: ManifestFile;
}

export interface Manifest {
  readonly path: string;
  readonly models: readonly ModelEntry[];
  /** Entries of kinds this origin does not know: listed, not served. */
  readonly skipped: readonly { id: string; kind: string }[];
}

const ID = /^[a-z0-9._-]{1,32}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const KINDS: readonly ModelKind[] = ['codec', 'classifier', 'segmenter'];

const invalid = (where: string, what: string) => new OriginError('INVALID_MANIFEST', `${where}: ${what}`);

/**
 * Reads and validates a manifest and verifies every file it lists (size, then sha256). Throws
 * OriginError INVALID_MANIFEST or INTEGRITY_MISMATCH; the latter lists every bad file at once.
 *
 * @example
 * const manifest = await loadManifest('models/manifest.json');
 * servedModels(manifest).map((m) => m.name) // ['ls-f8-q2.analysis', 'ls-f8-q2.synthesis', ...]
 */
export async function loadManifest(path: string): Promise<Manifest> {
  const absolute = resolve(path);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (e) {
    throw new OriginError('INVALID_MANIFEST', `cannot read the manifest ${absolute} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); set ORIGIN_MANIFEST to its path`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw invalid(absolute, `not valid JSON (${(e as Error).message})`);
  }
  const manifest = parseManifest(json, absolute);
  await verifyFiles(manifest);
  return manifest;
}

/**
 * Validates a parsed manifest (no file access). Paths resolve against the manifest's folder.
 *
 * @example
 * parseManifest({ schema: 1, models: [] }, '/srv/models/manifest.json').models // []
 */
export function parseManifest(json: unknown, manifestPath: string): Manifest {
  if (!isObject(json)) throw invalid(manifestPath, 'must be a JSON object');
  if (json.schema !== 1) throw invalid(manifestPath, `schema ${JSON.stringify(json.schema)} is not supported; this origin reads schema 1`);
  if (!Array.isArray(json.models)) throw invalid(manifestPath, "'models' must be an array");
  const dir = dirname(manifestPath);
  const models: ModelEntry[] = [];
  const skipped: { id: string; kind: string }[] = [];
  const ids = new Set<string>();
  json.models.forEach((raw, i) => {
    const where = `${manifestPath} models[${i}]`;
    if (!isObject(raw)) throw invalid(where, 'must be an object');
    if (typeof raw.id !== 'string' || !ID.test(raw.id)) throw invalid(where, `id ${JSON.stringify(raw.id)} must be 1-32 characters of [a-z0-9._-]`);
    if (ids.has(raw.id)) throw invalid(where, `id '${raw.id}' appears twice`);
    ids.add(raw.id);
    if (!KINDS.includes(raw.kind as ModelKind)) {
      skipped.push({ id: raw.id, kind: String(raw.kind) });
      return;
    }
    models.push(parseEntry(raw, `${manifestPath} model '${raw.id}'`, dir));
  });
  checkLatentCodecs(models, manifestPath);
  return { path: manifestPath, models, skipped };
}

/**
 * A task model must fit its codec (when both are in this manifest): a latent model takes as many
 * channels as the codec makes, and a model trained on one analysis transform is never served beside
 * another (a retrained codec under the same id makes other latents: the task model would answer,
 * and answer wrongly). Likewise an int8 variant is never served beside another version of the model
 * it was quantised from: it would answer for weights that no longer ship.
 */
function checkLatentCodecs(models: readonly ModelEntry[], manifestPath: string): void {
  for (const m of models) {
    if (m.kind === 'codec' || !m.codec) continue;
    const codec = models.find((c) => c.kind === 'codec' && c.id === m.codec);
    const shipped = codec?.files.analysis?.sha256;
    if (m.trainedOnAnalysis !== undefined && shipped !== undefined && m.trainedOnAnalysis !== shipped) {
      throw invalid(`${manifestPath} model '${m.id}'`, `it was trained on codec '${m.codec}' with analysis sha256 ${m.trainedOnAnalysis.slice(0, 12)}…, but the manifest ships ${shipped.slice(0, 12)}…; retrain it on this codec (training/tasks) or ship the codec it was trained on`);
    }
    const source = m.quantizedFrom && models.find((s) => s.id === m.quantizedFrom!.id);
    if (source && (source.version !== m.quantizedFrom!.version || source.files.model?.sha256 !== m.quantizedFrom!.sha256)) {
      throw invalid(`${manifestPath} model '${m.id}'`, `it was quantised from '${source.id}' ${m.quantizedFrom!.version} (sha256 ${m.quantizedFrom!.sha256.slice(0, 12)}…), but the manifest ships ${source.version} (${String(source.files.model?.sha256).slice(0, 12)}…); quantise it again (training/tasks/quantize.py)`);
    }
    if (m.input !== 'latent') continue;
    const channels = m.inputs?.[0]?.shape[1];
    if (codec?.channels !== undefined && channels !== undefined && channels !== -1 && channels !== codec.channels) {
      throw invalid(`${manifestPath} model '${m.id}'`, `its input has ${channels} channels, but its codec '${codec.id}' makes ${codec.channels}`);
    }
  }
}

function parseQuantizedFrom(raw: unknown, where: string): { id: string; version: string; sha256: string } {
  if (!isObject(raw) || typeof raw.id !== 'string' || typeof raw.version !== 'string' || typeof raw.sha256 !== 'string' || !SHA256.test(raw.sha256)) {
    throw invalid(where, 'must be {id, version, sha256} (64 lowercase hex digits)');
  }
  return { id: raw.id, version: raw.version, sha256: raw.sha256 };
}

/** `training.codec.analysis_sha256`, written by training/tasks/export.py, when present. */
function trainedOnAnalysis(raw: Record<string, unknown>, where: string): string | undefined {
  const codec = isObject(raw.training) ? raw.training.codec : undefined;
  const sha = isObject(codec) ? codec.analysis_sha256 : undefined;
  if (sha === undefined) return undefined;
  if (typeof sha !== 'string' || !SHA256.test(sha)) throw invalid(where, 'training.codec.analysis_sha256 must be 64 lowercase hex digits');
  return sha;
}

function parseEntry(raw: Record<string, unknown>, where: string, dir: string): ModelEntry {
  const kind = raw.kind as ModelKind;
  if (typeof raw.version !== 'string' || raw.version === '') throw invalid(where, "'version' must be a non-empty string");
  if (!isObject(raw.files)) throw invalid(where, "'files' must be an object of {path, sha256, bytes}");
  const files: Record<string, ManifestFile> = {};
  for (const [role, f] of Object.entries(raw.files)) files[role] = parseFile(f, `${where} files.${role}`, dir);
  const required = kind === 'codec' ? ['analysis', 'synthesis'] : ['model'];
  for (const role of required) if (!files[role]) throw invalid(where, `a ${kind} needs files.${role}`);
  const trainedOn = trainedOnAnalysis(raw, where);
  const entry: ModelEntry = {
    id: raw.id as string,
    kind,
    version: raw.version,
    files,
    ...(typeof raw.codec === 'string' && { codec: raw.codec }),
    ...(typeof raw.input === 'string' && { input: raw.input }),
    ...(typeof raw.channels === 'number' && { channels: raw.channels }),
    ...(trainedOn !== undefined && { trainedOnAnalysis: trainedOn }),
    ...(raw.quantized_from !== undefined && { quantizedFrom: parseQuantizedFrom(raw.quantized_from, `${where} quantized_from`) }),
    ...(raw.inputs !== undefined && { inputs: parseSpecs(raw.inputs, `${where} inputs`) }),
    ...(raw.outputs !== undefined && { outputs: parseSpecs(raw.outputs, `${where} outputs`) }),
  };
  if (kind !== 'codec' && (!entry.inputs || !entry.outputs)) throw invalid(where, `a ${kind} must declare 'inputs' and 'outputs'`);
  return entry;
}

function parseFile(f: unknown, where: string, dir: string): ManifestFile {
  if (!isObject(f)) throw invalid(where, 'must be {path, sha256, bytes}');
  const { path, sha256, bytes } = f;
  if (typeof path !== 'string' || path === '' || isAbsolute(path)) throw invalid(where, `path ${JSON.stringify(path)} must be relative to the manifest's folder`);
  if (typeof sha256 !== 'string' || !SHA256.test(sha256)) throw invalid(where, 'sha256 must be 64 lowercase hex digits');
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) throw invalid(where, 'bytes must be a non-negative integer');
  return { path, absolutePath: resolve(dir, path), sha256, bytes };
}

function parseSpecs(raw: unknown, where: string): TensorSpec[] {
  if (!Array.isArray(raw) || raw.length === 0) throw invalid(where, 'must be a non-empty array of {name, datatype, shape}');
  return raw.map((t, i) => {
    if (!isObject(t) || typeof t.name !== 'string') throw invalid(`${where}[${i}]`, 'needs a string name');
    if (!isDatatype(t.datatype)) throw invalid(`${where}[${i}]`, `datatype ${JSON.stringify(t.datatype)} is not a KServe datatype this origin serves`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && (d === -1 || d > 0))) throw invalid(`${where}[${i}]`, 'shape must list positive integers, -1 for dynamic');
    return { name: t.name, datatype: t.datatype, shape: t.shape as number[] };
  });
}

/**
 * The ONNX graphs to serve, by KServe model name.
 *
 * @example
 * servedModels(manifest).find((m) => m.name === 'ls-f8-q2.synthesis')?.file.absolutePath
 */
export function servedModels(manifest: Manifest): ServedModelSpec[] {
  return manifest.models.flatMap((entry) =>
    entry.kind === 'codec'
      ? (['analysis', 'synthesis'] as const).map((role) => ({ name: `${entry.id}.${role}`, entry, file: entry.files[role] }))
      : [{ name: entry.id, entry, file: entry.files.model }],
  );
}

/**
 * The served graphs of the manifest entries named in `ids` (all when undefined), e.g. the latent
 * models and their codec on a production host that need not load the baselines. Throws
 * INVALID_CONFIG for an id the manifest does not list.
 *
 * @example
 * selectServed(servedModels(manifest), ['ls-f8-q2', 'cls-latent-ls-f8-q2']).map((m) => m.name)
 * // ['ls-f8-q2.analysis', 'ls-f8-q2.synthesis', 'cls-latent-ls-f8-q2']
 */
export function selectServed(specs: ServedModelSpec[], ids: readonly string[] | undefined): ServedModelSpec[] {
  if (!ids) return specs;
  const known = new Set(specs.map((s) => s.entry.id));
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length) throw new OriginError('INVALID_CONFIG', `ORIGIN_MODELS names ${unknown.map((id) => `'${id}'`).join(', ')}, which the manifest does not list (it has ${[...known].join(', ')})`);
  return specs.filter((s) => ids.includes(s.entry.id));
}

async function verifyFiles(manifest: Manifest): Promise<void> {
  const problems: string[] = [];
  for (const entry of manifest.models) {
    for (const [role, file] of Object.entries(entry.files)) {
      const label = `model '${entry.id}' files.${role} (${file.path})`;
      try {
        const { size } = await stat(file.absolutePath);
        if (size !== file.bytes) {
          problems.push(`${label}: ${size} bytes on disk, the manifest says ${file.bytes}`);
          continue;
        }
        const digest = await sha256File(file.absolutePath);
        if (digest !== file.sha256) problems.push(`${label}: sha256 ${digest}, the manifest says ${file.sha256}`);
      } catch (e) {
        problems.push(`${label}: cannot read ${file.absolutePath} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
    }
  }
  if (problems.length) {
    throw new OriginError('INTEGRITY_MISMATCH', `${manifest.path} does not match the files on disk; re-export the models or fix the manifest:\n  ${problems.join('\n  ')}`);
  }
}

/**
 * A file's SHA-256 in hex, streamed: model files can be large.
 *
 * @example
 * await sha256File('models/ls-f8-q2/synthesis.onnx') // '7df0b66c...'
 */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolveDigest, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolveDigest(hash.digest('hex')));
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
