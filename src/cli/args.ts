import { readFile, writeFile } from 'node:fs/promises';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type Codec, DEFAULT_MODELS_DIR, loadCodecFromDir } from '../codec/node.ts';
import { FileError, UsageError } from './errors.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Options every command takes. */
export const COMMON_OPTIONS_HELP = `  --models DIR   folder holding manifest.json and the model files
                 (default: $LATENTSIGHT_MODELS, else the package's models/)
  -h, --help     show this message
`;

/**
 * Parses one command's arguments strictly: unknown options and missing values are usage errors.
 *
 * @example
 * const { values, positionals } = parseCommandArgs(args, { output: { type: 'string', short: 'o' } })
 */
export function parseCommandArgs<O extends Options>(args: readonly string[], options: O) {
  try {
    return parseArgs({
      args: [...args],
      options: { ...options, models: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * Exactly one positional argument, named `what` in the usage error otherwise.
 *
 * @example
 * const input = onePositional(positionals, 'image path')
 */
export function onePositional(positionals: string[], what: string): string {
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? `missing ${what}` : `expected one ${what}, got ${positionals.length} arguments`);
  }
  return positionals[0];
}

/**
 * The models folder: `--models`, else `$LATENTSIGHT_MODELS`, else the package's `models/`.
 *
 * @example
 * modelsDir(values.models)
 */
export function modelsDir(option: string | undefined): string {
  return option ?? process.env.LATENTSIGHT_MODELS ?? DEFAULT_MODELS_DIR;
}

/**
 * Loads the codec `id` (or the manifest's default) from the models folder.
 *
 * @example
 * const codec = await openCodec(values.models, values.codec)
 */
export async function openCodec(models: string | undefined, id?: string): Promise<Codec> {
  return loadCodecFromDir(modelsDir(models), id);
}

/**
 * Reads a file; failures become `FileError('FILE_UNREADABLE')` (exit 3).
 *
 * @example
 * const bytes = await readInput('photo.lsb')
 */
export async function readInput(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    throw new FileError('FILE_UNREADABLE', `Cannot read '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
}

/**
 * Writes a file; failures become `FileError('FILE_UNWRITABLE')` (exit 3).
 *
 * @example
 * await writeOutput('photo.lsb', bytes)
 */
export async function writeOutput(path: string, bytes: Uint8Array): Promise<void> {
  try {
    await writeFile(path, bytes);
  } catch (e) {
    throw new FileError('FILE_UNWRITABLE', `Cannot write '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
}
