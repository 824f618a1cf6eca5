import { CodecError } from './errors.ts';

/** The manifest schema this reader understands (`schema` in `models/manifest.json`). */
export const MANIFEST_SCHEMA = 1;

/** One file of a model: path relative to the manifest's folder, size and SHA-256 (hex). */
export interface ModelFile {
  path: string;
  sha256: string;
  bytes: number;
}

/** A codec's entry in `models/manifest.json` (see `models/README.md`). */
export interface CodecEntry {
  id: string;
  kind: 'codec';
  version: string;
  stride: number;
  channels: number;
  files: { analysis: ModelFile; synthesis: ModelFile; tables: ModelFile };
  /** First 16 hex digits of the SHA-256 of the table file, as bitstream headers carry it. */
  table_hash: string;
  table_precision: number;
  /** Table files of earlier versions with the same transforms: decoded, never encoded with. */
  legacy_tables?: LegacyTables[];
  /**
   * A codec kept for the streams already stored with it: they decode and their task models still
   * serve them, but `encodeImage` refuses new encodes unless told it is measuring (`allowDecodeOnly`).
   */
  decode_only?: DecodeOnly;
  metrics?: Record<string, unknown>;
  [field: string]: unknown;
}

/** Why a codec takes no new encodes, and which codec to encode with instead. */
export interface DecodeOnly {
  /** Date (YYYY-MM-DD) from which new encodes are refused. */
  since: string;
  /** The codec id that new encodes should use. */
  successor: string;
  reason: string;
}

/** An earlier version's entropy tables, kept so that streams coded with them still decode. */
export interface LegacyTables extends ModelFile {
  version: string;
  table_hash: string;
  /** The analysis transform the tables' streams were coded with: it must be the codec's current one. */
  analysis_sha256: string;
}

export interface Manifest {
  schema: number;
  /** Id of the codec used when none is named; otherwise the first codec listed that is not decode-only. */
  default_codec?: string;
  models: Array<{ id: string; kind: string; [field: string]: unknown }>;
}

function invalid(why: string): CodecError {
  return new CodecError('INVALID_MANIFEST', `The model manifest is invalid: ${why}.`);
}

/**
 * Parses and checks a manifest (JSON text or an already parsed value).
 *
 * @example
 * const manifest = parseManifest(await readFile('models/manifest.json', 'utf8'))
 */
export function parseManifest(input: string | unknown): Manifest {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (e) {
      throw invalid(`not JSON (${(e as Error).message})`);
    }
  }
  const m = value as Manifest;
  if (typeof m !== 'object' || m === null || !Array.isArray(m.models)) throw invalid('no "models" list');
  if (m.schema !== MANIFEST_SCHEMA) throw invalid(`schema ${String(m.schema)} is not ${MANIFEST_SCHEMA}; update latentsight`);
  return m;
}

/**
 * Finds a codec entry by id, or the default codec when `id` is undefined, and checks its fields.
 * The default is never a decode-only codec: a manifest that names one is invalid.
 *
 * @example
 * const entry = findCodec(manifest, 'ls-f8-q2') // throws CodecError('UNKNOWN_CODEC') if absent
 */
export function findCodec(manifest: Manifest, id?: string): CodecEntry {
  const codecs = manifest.models.filter((e) => e.kind === 'codec');
  const wanted = id ?? manifest.default_codec ?? (codecs.find((e) => !e.decode_only) ?? codecs[0])?.id;
  const entry = codecs.find((e) => e.id === wanted);
  if (!entry) {
    const known = codecs.map((e) => e.id).join(', ') || 'none';
    throw new CodecError(
      'UNKNOWN_CODEC',
      wanted === undefined ? 'The model manifest lists no codec.' : `No codec '${wanted}' in the model manifest (known: ${known}).`,
    );
  }
  const checked = checkEntry(entry as CodecEntry);
  if (id === undefined && checked.decode_only) {
    throw invalid(`the default codec '${checked.id}' is decode-only: name its successor '${checked.decode_only.successor}' as default_codec`);
  }
  return checked;
}

function checkEntry(e: CodecEntry): CodecEntry {
  const where = `codec '${e.id}'`;
  if (!Number.isInteger(e.stride) || !Number.isInteger(e.channels) || e.stride < 1 || e.channels < 1) {
    throw invalid(`${where} needs integer stride and channels`);
  }
  if (typeof e.table_hash !== 'string' || !/^[0-9a-f]{16}$/.test(e.table_hash)) throw invalid(`${where} needs a 16-hex-digit table_hash`);
  const d = e.decode_only;
  if (d !== undefined && (typeof d !== 'object' || d === null || typeof d.successor !== 'string' || typeof d.since !== 'string' || typeof d.reason !== 'string')) {
    throw invalid(`${where}: decode_only needs since, successor and reason`);
  }
  for (const role of ['analysis', 'synthesis', 'tables'] as const) {
    const f = e.files?.[role];
    if (!f || typeof f.path !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256)) throw invalid(`${where} lacks files.${role} with path and sha256`);
  }
  return e;
}
