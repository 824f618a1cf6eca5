import { BitstreamError } from '../bitstream/index.ts';
import { CodecError } from '../codec/index.ts';
import { LatentsightError } from '../client/index.ts';
import { EntropyError } from '../entropy/index.ts';

/** Where the CLI writes; injected so that tests can capture it. */
export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/** Exit codes, documented in `latentsight --help`. */
export const EXIT_OK = 0;
export const EXIT_INTERNAL = 1;
/** A command line that could not be understood (the shell's convention). */
export const EXIT_USAGE = 2;
export const EXIT_FILE = 3;
export const EXIT_BITSTREAM = 4;
export const EXIT_UNKNOWN_CODEC = 5;
export const EXIT_MODELS = 6;
/** The API refused the request (a 4xx problem other than 429, or an answer that is not the API's). */
export const EXIT_API_REFUSED = 7;
/** The API could not be reached or stayed unavailable (network, 429, 5xx) after the retries. */
export const EXIT_API_UNAVAILABLE = 8;
/** Folder mode: at least one item failed (each failure is printed); the others completed. */
export const EXIT_BATCH_PARTIAL = 9;

export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  internal error (a bug: please report it)
  2  bad command line
  3  an input file cannot be read or decoded, or an output cannot be written
       (FILE_UNREADABLE, FILE_UNWRITABLE, IMAGE_UNREADABLE, INVALID_IMAGE)
  4  the bitstream is corrupt or invalid (its BitstreamError / EntropyError code is printed)
  5  the codec is not available here (UNKNOWN_CODEC, UNKNOWN_MODEL, TABLE_MISMATCH), or it is
       kept for decoding stored streams only and takes no new encodes (CODEC_DECODE_ONLY)
  6  the model files are missing or damaged
       (INVALID_MANIFEST, MODEL_UNAVAILABLE, MODEL_INTEGRITY, MODEL_RUNTIME)
  7  the API refused the request: its problem code is printed (e.g. INVALID_API_KEY,
       UNKNOWN_MODEL, NO_TASK_MODEL), or it answered with something that is not the API's
  8  the API was unreachable or unavailable after retries with backoff
       (NETWORK_ERROR, RATE_LIMITED, ORIGIN_UNAVAILABLE, other 5xx)
  9  folder mode: some items failed (each is listed with its code) and the rest completed;
       when every item failed for the same reason, that reason's code instead
`;

/** A command line the CLI cannot run; its message says why. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** File access failed (code FILE_UNREADABLE or FILE_UNWRITABLE). */
export class FileError extends Error {
  override readonly name = 'FileError';
  constructor(
    readonly code: 'FILE_UNREADABLE' | 'FILE_UNWRITABLE',
    message: string,
  ) {
    super(message);
  }
}

const CODEC_EXITS: Record<string, number> = {
  IMAGE_UNREADABLE: EXIT_FILE,
  INVALID_IMAGE: EXIT_FILE,
  UNKNOWN_CODEC: EXIT_UNKNOWN_CODEC,
  CODEC_DECODE_ONLY: EXIT_UNKNOWN_CODEC,
  CODEC_MISMATCH: EXIT_BITSTREAM,
};

/**
 * The exit code for an error and the stable code to print with it.
 *
 * @example
 * classify(new CodecError('UNKNOWN_CODEC', '...')) // { exit: 5, code: 'UNKNOWN_CODEC' }
 */
export function classify(e: unknown): { exit: number; code: string } {
  if (e instanceof UsageError) return { exit: EXIT_USAGE, code: 'USAGE' };
  if (e instanceof FileError) return { exit: EXIT_FILE, code: e.code };
  if (e instanceof CodecError) return { exit: CODEC_EXITS[e.code] ?? EXIT_MODELS, code: e.code };
  if (e instanceof BitstreamError) {
    const unavailable = e.code === 'UNKNOWN_MODEL' || e.code === 'TABLE_MISMATCH';
    return { exit: unavailable ? EXIT_UNKNOWN_CODEC : EXIT_BITSTREAM, code: e.code };
  }
  if (e instanceof EntropyError) return { exit: EXIT_BITSTREAM, code: e.code };
  if (e instanceof LatentsightError) {
    if (e.code === 'INVALID_INPUT') return { exit: EXIT_USAGE, code: e.code };
    const unavailable = e.status === 0 || e.status === 429 || e.status >= 500;
    return { exit: unavailable ? EXIT_API_UNAVAILABLE : EXIT_API_REFUSED, code: e.code };
  }
  return { exit: EXIT_INTERNAL, code: 'INTERNAL' };
}

/**
 * Prints an error as `latentsight <command>: <CODE>: <message>` and returns its exit code.
 *
 * @example
 * catch (e) { return reportError('encode', e, io) }
 */
export function reportError(command: string, e: unknown, io: CliIo): number {
  const { exit, code } = classify(e);
  const message = e instanceof Error ? e.message : String(e);
  io.stderr.write(`latentsight ${command}: ${code}: ${message}\n`);
  if (exit === EXIT_USAGE) io.stderr.write(`Run 'latentsight ${command} --help' for usage.\n`);
  if (exit === EXIT_INTERNAL && e instanceof Error && e.stack) io.stderr.write(`${e.stack}\n`);
  return exit;
}

/**
 * The exit code of a folder run: 0 when every item succeeded; else each failure is printed on
 * stderr and the code is `EXIT_BATCH_PARTIAL`, or the failures' own code when all failed alike.
 *
 * @example
 * return batchExit(outcomes, paths, 'encode', io)
 */
export function batchExit(outcomes: readonly ({ ok: true } | { ok: false; error: unknown })[], paths: readonly string[], command: string, io: CliIo): number {
  const failures = outcomes.flatMap((o, i) => (o.ok ? [] : [{ path: paths[i], error: o.error }]));
  if (!failures.length) return EXIT_OK;
  for (const f of failures) {
    const { code } = classify(f.error);
    io.stderr.write(`latentsight ${command}: ${f.path}: ${code}: ${f.error instanceof Error ? f.error.message : String(f.error)}\n`);
  }
  const exits = new Set(failures.map((f) => classify(f.error).exit));
  return failures.length === outcomes.length && exits.size === 1 ? [...exits][0] : EXIT_BATCH_PARTIAL;
}
