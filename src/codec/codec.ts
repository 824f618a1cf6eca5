import { type EntropyTables, parseTables } from '../entropy/index.ts';
import { CodecError } from './errors.ts';
import type { CodecEntry, ModelFile } from './manifest.ts';
import type { ModelRuntime, ModelSession } from './runtime.ts';

/** Where a codec's files come from and what runs them. */
export interface CodecSource {
  /** Reads a file by its manifest path (relative to the manifest's folder): disk, fetch, R2... */
  readFile(path: string): Promise<Uint8Array>;
  runtime: ModelRuntime;
  /**
   * Also load the earlier versions' tables (`legacy_tables`), so that streams coded with them
   * decode. Off by default: an encoder (a browser, a mobile client) needs only the current tables.
   */
  legacyTables?: boolean;
}

/** A loaded codec: verified entropy tables now, each ONNX model verified and loaded on first use. */
export interface Codec {
  readonly id: string;
  readonly version: string;
  readonly stride: number;
  readonly channels: number;
  readonly tableHash: string;
  /** The tables the encoder uses. */
  readonly tables: EntropyTables;
  /** Table hashes of earlier versions that still decode (`legacy_tables`, when the source asked for them). */
  readonly legacyTableHashes: readonly string[];
  /** The tables for a stream's table hash: the current ones or a legacy set; undefined otherwise. */
  tablesFor(tableHash: string): EntropyTables | undefined;
  readonly entry: CodecEntry;
  readonly runtime: ModelRuntime;
  /** The analysis transform (image -> int latents); encoders need it. */
  analysis(): Promise<ModelSession>;
  /** The synthesis transform (latents -> image); decoders need it. */
  synthesis(): Promise<ModelSession>;
  /** Frees the loaded models. */
  release(): Promise<void>;
}

/**
 * SHA-256 as lower-case hex, with WebCrypto (Node 20, browsers, workerd).
 *
 * @example
 * await sha256Hex(new TextEncoder().encode('abc')) // 'ba7816bf...'
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  // Web Crypto's types take ArrayBuffer-backed views only; ours never view a SharedArrayBuffer.
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  let hex = '';
  for (const b of digest) hex += b.toString(16).padStart(2, '0');
  return hex;
}

async function readVerified(entry: CodecEntry, role: string, file: ModelFile, source: CodecSource): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await source.readFile(file.path);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new CodecError('MODEL_UNAVAILABLE', `Cannot read ${role} file '${file.path}' of codec '${entry.id}': ${why}`, { cause: e });
  }
  const hash = await sha256Hex(bytes);
  if (hash !== file.sha256) {
    throw new CodecError(
      'MODEL_INTEGRITY',
      `The ${role} file '${file.path}' of codec '${entry.id}' has SHA-256 ${hash}, not ${file.sha256} as the manifest says: ` +
        're-fetch the models or re-run the export.',
    );
  }
  return bytes;
}

/**
 * Loads a codec from its manifest entry: verifies the table file's SHA-256 and that it matches
 * `table_hash`, parses the tables, and returns a codec whose ONNX models are read, verified and
 * loaded on first use (so a decoder never reads the analysis model).
 *
 * @example
 * const codec = await loadCodec(findCodec(manifest), { readFile: (p) => readFile(`models/${p}`), runtime: createNodeRuntime() })
 * const bytes = await encodeImage(image, codec)
 */
export async function loadCodec(entry: CodecEntry, source: CodecSource): Promise<Codec> {
  const tables = await loadTables(entry, 'tables', entry.files.tables, entry.table_hash, source);
  const legacy = new Map<string, EntropyTables>();
  for (const file of source.legacyTables ? (entry.legacy_tables ?? []) : []) {
    if (file.analysis_sha256 !== entry.files.analysis.sha256) {
      throw new CodecError('MODEL_INTEGRITY', `Codec '${entry.id}': legacy tables ${file.version} belong to another analysis transform.`);
    }
    legacy.set(file.table_hash, await loadTables(entry, `legacy tables ${file.version}`, file, file.table_hash, source));
  }
  const sessions = new Map<string, Promise<ModelSession>>();
  const session = (role: 'analysis' | 'synthesis') => {
    let s = sessions.get(role);
    if (!s) {
      s = readVerified(entry, role, entry.files[role], source).then((bytes) => source.runtime.load(bytes));
      // A failed load is not cached: the next call tries again.
      s.catch(() => sessions.delete(role));
      sessions.set(role, s);
    }
    return s;
  };
  return {
    id: entry.id,
    version: entry.version,
    stride: entry.stride,
    channels: entry.channels,
    tableHash: entry.table_hash,
    tables,
    legacyTableHashes: [...legacy.keys()],
    tablesFor: (hash) => (hash === entry.table_hash ? tables : legacy.get(hash)),
    entry,
    runtime: source.runtime,
    analysis: () => session('analysis'),
    synthesis: () => session('synthesis'),
    async release() {
      const loaded = await Promise.allSettled(sessions.values());
      sessions.clear();
      await Promise.all(loaded.map((r) => (r.status === 'fulfilled' ? r.value.release() : undefined)));
    },
  };
}

/** A table file: its manifest hash checked against `tableHash` before reading, then read, verified and parsed. */
async function loadTables(entry: CodecEntry, role: string, file: ModelFile, tableHash: string, source: CodecSource): Promise<EntropyTables> {
  if (file.sha256.slice(0, 16) !== tableHash) {
    throw new CodecError('MODEL_INTEGRITY', `Codec '${entry.id}': table_hash ${tableHash} does not match its ${role} file.`);
  }
  const bytes = await readVerified(entry, role, file, source);
  let tables: EntropyTables;
  try {
    tables = parseTables(bytes);
  } catch (e) {
    throw new CodecError('MODEL_INTEGRITY', `Codec '${entry.id}': ${(e as Error).message}`, { cause: e });
  }
  if (tables.channels !== entry.channels) {
    throw new CodecError('MODEL_INTEGRITY', `Codec '${entry.id}' has ${entry.channels} channels but its tables code ${tables.channels}.`);
  }
  return tables;
}
