/**
 * Batch mode: the inputs of a folder, run through one function with bounded concurrency, results
 * in input order. A failing item does not stop the others; its error is kept in its slot.
 */
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { FileError, UsageError } from './errors.ts';

/** Image files the CLI reads (through sharp). */
export const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.avif', '.tif', '.tiff', '.gif']);
/** Bitstream files, as `encode` names them. */
export const BITSTREAM_EXTENSION = '.lsb';

/** The most items in flight at once that `--concurrency` accepts. */
export const MAX_CONCURRENCY = 64;

/**
 * True when `path` is a folder; a missing path is a `FileError`.
 *
 * @example
 * if (await isDirectory(input)) runBatch(...)
 */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (e) {
    throw new FileError('FILE_UNREADABLE', `Cannot read '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
}

/**
 * The files of `dir` (not recursive, sorted by name) whose extension is in `extensions`.
 *
 * @example
 * await listInputs('photos', IMAGE_EXTENSIONS) // ['photos/a.jpg', 'photos/b.png']
 */
export async function listInputs(dir: string, extensions: ReadonlySet<string>): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw new FileError('FILE_UNREADABLE', `Cannot list '${dir}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
  const paths = names.filter((n) => extensions.has(extname(n).toLowerCase())).sort().map((n) => join(dir, n));
  if (!paths.length) throw new FileError('FILE_UNREADABLE', `No input files in '${dir}' (looked for ${[...extensions].join(' ')}).`);
  return paths;
}

/**
 * `--concurrency N`: a whole number from 1 to `MAX_CONCURRENCY`; `fallback` when absent.
 *
 * @example
 * parseConcurrency(values.concurrency, 2)
 */
export function parseConcurrency(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_CONCURRENCY) throw new UsageError(`--concurrency takes a whole number from 1 to ${MAX_CONCURRENCY}, not '${value}'`);
  return n;
}

/** One item's outcome: its value or its error. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

/**
 * Runs `work` over `items` with at most `concurrency` in flight; `onDone` is called as each ends.
 *
 * @example
 * const outcomes = await mapPool(paths, 4, (p) => encodeOne(p), (p, o) => bar.tick(p, !o.ok))
 */
export async function mapPool<I, T>(
  items: readonly I[],
  concurrency: number,
  work: (item: I, index: number) => Promise<T>,
  onDone: (item: I, outcome: Outcome<T>) => void = () => {},
): Promise<Outcome<T>[]> {
  const outcomes: Outcome<T>[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        outcomes[i] = { ok: true, value: await work(items[i], i) };
      } catch (error) {
        outcomes[i] = { ok: false, error };
      }
      onDone(items[i], outcomes[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return outcomes;
}
