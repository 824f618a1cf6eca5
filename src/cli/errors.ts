import { BitstreamError } from '../bitstream/index.ts';
import { CodecError } from '../codec/index.ts';
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

export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  internal error (a bug: please report it)
  2  bad command line
  3  an input file cannot be read or decoded, or an output cannot be written
       (FILE_UNREADABLE, FILE_UNWRITABLE, IMAGE_UNREADABLE, INVALID_IMAGE)
  4  the bitstream is corrupt or invalid (its BitstreamError / EntropyError code is printed)
  5  the codec is not available here (UNKNOWN_CODEC, UNKNOWN_MODEL, TABLE_MISMATCH)
  6  the model files are missing or damaged
       (INVALID_MANIFEST, MODEL_UNAVAILABLE, MODEL_INTEGRITY, MODEL_RUNTIME)
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
