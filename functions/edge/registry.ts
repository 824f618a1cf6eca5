/**
 * The models the edge serves, built once per isolate from `models/manifest.json` and the codecs'
 * entropy table files: codecs (to check and decode streams) and task models (to route latents to).
 */
import { type EntropyTables, parseTables } from '../../src/entropy/index.ts';
import { hex, sha256 } from './digest.ts';

/** The analyses a request can ask for, each served by one kind of task model. */
export const TASKS = { classify: 'classifier', segment: 'segmenter' } as const;
export type Task = keyof typeof TASKS;

/** Model ids as a bitstream header allows them (docs/FORMAT.md, section 1). */
const MODEL_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,31}$/;

/** A codec whose tables loaded and matched the manifest's hashes. */
export interface CodecModel {
  id: string;
  version: string;
  stride: number;
  channels: number;
  /** 16 hex digits: the first 8 bytes of the SHA-256 of the table file, as in a stream header. */
  tableHash: string;
  tablePrecision: number;
  /** The current tables (what clients encode with). */
  tables: EntropyTables;
  /** Earlier versions' tables by table hash: streams coded with them still decode (R2 archives, old clients). */
  legacyTables: ReadonlyMap<string, EntropyTables>;
  legacyTableHashes: readonly string[];
  /** sha256 of the analysis transform: task models trained on other latents are not served with it. */
  analysisSha256?: string;
  /** Set for a codec kept for stored streams only (manifest `decode_only`): clients encode with `successor`. */
  decodeOnly?: { since: string; successor: string };
}

/**
 * The tables that decode a stream coded with `tableHash`: the codec's current ones or an earlier
 * version's (`legacy_tables`); undefined for any other hash.
 *
 * @example
 * const tables = tablesFor(codec, header.tableHash)
 */
export function tablesFor(codec: CodecModel, tableHash: string): EntropyTables | undefined {
  return tableHash === codec.tableHash ? codec.tables : codec.legacyTables.get(tableHash);
}

/** One output class of a task model; `index` is its value in the model's output. */
export interface Label {
  index: number;
  id: string;
  name: string;
}

/** A classifier or segmenter that runs on one codec's latents at the origin. */
export interface TaskModel {
  id: string;
  version: string;
  task: Task;
  kind: (typeof TASKS)[Task];
  codec: string;
  labels: Label[];
}

/**
 * The served models. A task model named in `preferred` (the TASK_MODELS var) serves its (codec, task)
 * pair; otherwise the first listed for the pair does.
 *
 * @example
 * const { registry } = await loadRegistry(manifest, { 'ls-f8-q2/tables.lst': tableBytes })
 * registry.codec('ls-f8-q2')?.tableHash
 */
export class ModelRegistry {
  readonly #codecs = new Map<string, CodecModel>();
  readonly #tasks = new Map<string, TaskModel>();
  readonly taskModels: readonly TaskModel[];

  constructor(codecs: CodecModel[], taskModels: TaskModel[], preferred: readonly string[] = []) {
    for (const c of codecs) this.#codecs.set(c.id, c);
    this.taskModels = taskModels;
    const ranked = [...preferred.flatMap((id) => taskModels.filter((m) => m.id === id)), ...taskModels];
    for (const m of ranked) {
      const key = `${m.codec}\n${m.task}`;
      if (!this.#tasks.has(key)) this.#tasks.set(key, m);
    }
  }

  get codecs(): CodecModel[] {
    return [...this.#codecs.values()];
  }

  codec(id: string): CodecModel | undefined {
    return this.#codecs.get(id);
  }

  /** The model serving `task` on `codecId`'s latents, if any. */
  taskModel(codecId: string, task: Task): TaskModel | undefined {
    return this.#tasks.get(`${codecId}\n${task}`);
  }
}

/** Files a manifest names, by their path relative to `models/`. */
export type TableFiles = Record<string, ArrayBuffer | Uint8Array>;

/**
 * Builds the registry from a manifest and the table files bundled with the Worker. A model that
 * cannot be served (its tables missing, their hash not the manifest's, a task model for an unknown
 * codec) is left out and described in `problems`, so that one bad entry does not take the edge
 * down; a manifest of an unknown schema throws.
 *
 * `preferred` (the TASK_MODELS var, e.g. the int8 variants for an origin on CPUs) picks the model
 * of a (codec, task) pair where several are listed; an id there that is not a served task model is a
 * problem too.
 *
 * @example
 * const { registry, problems } = await loadRegistry(manifest, BUNDLED_TABLES, ['seg-latent-ls-f8-q2-int8'])
 * for (const p of problems) console.error(p)
 */
export async function loadRegistry(manifest: unknown, files: TableFiles, preferred: readonly string[] = []): Promise<{ registry: ModelRegistry; problems: string[] }> {
  const m = manifest as { schema?: unknown; models?: unknown };
  if (m?.schema !== 1 || !Array.isArray(m.models)) {
    throw new Error('models/manifest.json: expected {"schema": 1, "models": [...]}');
  }
  const problems: string[] = [];
  const codecs: CodecModel[] = [];
  const entries = m.models as Record<string, unknown>[];
  for (const entry of entries) {
    if (entry?.kind !== 'codec') continue;
    try {
      codecs.push(await loadCodec(entry, files));
    } catch (error) {
      problems.push(`codec ${String(entry.id)}: ${(error as Error).message}`);
    }
  }
  const known = new Map(codecs.map((c) => [c.id, c]));
  const taskModels: TaskModel[] = [];
  for (const entry of entries) {
    const task = (Object.keys(TASKS) as Task[]).find((t) => TASKS[t] === entry?.kind);
    if (!task || entry.input !== 'latent') continue;
    try {
      const model = readTaskModel(entry, task);
      const codec = known.get(model.codec);
      if (!codec) throw new Error(`its codec "${model.codec}" is not served`);
      const trainedOn = (entry.training as { codec?: { analysis_sha256?: unknown } } | undefined)?.codec?.analysis_sha256;
      if (trainedOn !== undefined && codec.analysisSha256 !== undefined && trainedOn !== codec.analysisSha256) {
        throw new Error(`it was trained on other latents than codec "${codec.id}" ${codec.version} makes (analysis sha256 ${String(trainedOn).slice(0, 12)}…, shipped ${codec.analysisSha256.slice(0, 12)}…)`);
      }
      taskModels.push(model);
    } catch (error) {
      problems.push(`${String(entry.kind)} ${String(entry.id)}: ${(error as Error).message}`);
    }
  }
  for (const id of preferred) {
    if (!taskModels.some((m) => m.id === id)) problems.push(`TASK_MODELS names "${id}", which is not a served task model`);
  }
  return { registry: new ModelRegistry(codecs, taskModels, preferred), problems };
}

async function loadCodec(entry: Record<string, unknown>, files: TableFiles): Promise<CodecModel> {
  const id = modelId(entry.id);
  const version = text(entry.version, 'version');
  const stride = entry.stride;
  const channels = entry.channels;
  if (typeof stride !== 'number' || !Number.isInteger(stride)) throw new Error('stride is not an integer');
  if (typeof channels !== 'number' || !Number.isInteger(channels)) throw new Error('channels is not an integer');
  const tableHash = text(entry.table_hash, 'table_hash');
  const spec = (entry.files as { tables?: TableFileSpec } | undefined)?.tables;
  const tables = await loadTables(spec, tableHash, channels, files, 'files.tables');
  const legacyTables = new Map<string, EntropyTables>();
  const legacy = entry.legacy_tables ?? [];
  if (!Array.isArray(legacy)) throw new Error('legacy_tables is not an array');
  const analysis = (entry.files as { analysis?: { sha256?: unknown } } | undefined)?.analysis?.sha256;
  for (const [i, old] of (legacy as TableFileSpec[]).entries()) {
    const hash = text(old?.table_hash, `legacy_tables[${i}].table_hash`);
    // Old tables decode old streams to the latents these transforms and task models expect only if
    // the analysis transform is the one they were coded with.
    if (old.analysis_sha256 !== analysis) throw new Error(`legacy_tables[${i}] belongs to another analysis transform`);
    legacyTables.set(hash, await loadTables(old, hash, channels, files, `legacy_tables[${i}]`));
  }
  const retired = entry.decode_only as { since?: unknown; successor?: unknown } | undefined;
  return {
    id, version, stride, channels, tableHash, tablePrecision: tables.precision, tables,
    legacyTables, legacyTableHashes: [...legacyTables.keys()],
    ...(typeof analysis === 'string' && { analysisSha256: analysis }),
    ...(retired !== undefined && {
      decodeOnly: { since: text(retired?.since, 'decode_only.since'), successor: modelId(retired?.successor) },
    }),
  };
}

interface TableFileSpec {
  path?: unknown;
  sha256?: unknown;
  table_hash?: unknown;
  analysis_sha256?: unknown;
}

/** A bundled table file, checked against its manifest sha256 and table hash, parsed. */
async function loadTables(spec: TableFileSpec | undefined, tableHash: string, channels: number, files: TableFiles, field: string): Promise<EntropyTables> {
  const path = text(spec?.path, `${field}.path`);
  const file = files[path];
  if (!file) throw new Error(`its table file ${path} is not bundled with the edge (functions/edge/models.ts)`);
  const bytes = file instanceof Uint8Array ? file : new Uint8Array(file);
  const digest = hex(await sha256(bytes));
  if (digest !== spec?.sha256) throw new Error(`${path} has sha256 ${digest}, the manifest says ${String(spec?.sha256)}`);
  if (digest.slice(0, 16) !== tableHash) throw new Error(`table_hash ${tableHash} is not the first 8 bytes of ${path}'s sha256`);
  const tables = parseTables(bytes);
  if (tables.channels !== channels) throw new Error(`${path} codes ${tables.channels} channels, not ${channels}`);
  return tables;
}

function readTaskModel(entry: Record<string, unknown>, task: Task): TaskModel {
  const labels = entry.labels;
  if (!Array.isArray(labels) || labels.length === 0) throw new Error('labels is not a non-empty array');
  return {
    id: modelId(entry.id),
    version: text(entry.version, 'version'),
    task,
    kind: TASKS[task],
    codec: modelId(entry.codec),
    labels: labels.map((l: { id?: unknown; name?: unknown; index?: unknown }, i) => ({
      index: typeof l?.index === 'number' ? l.index : i,
      id: String(l?.id ?? i),
      name: String(l?.name ?? l?.id ?? i),
    })),
  };
}

function modelId(value: unknown): string {
  if (typeof value !== 'string' || !MODEL_ID_PATTERN.test(value)) throw new Error(`id ${String(value)} is not 1-32 of [a-z0-9._-]`);
  return value;
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') throw new Error(`${field} is missing`);
  return value;
}
