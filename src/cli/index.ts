/**
 * The `latentsight` command: wires one file per command (`encode.ts`, `decode.ts`, `inspect.ts`,
 * `eval.ts`, `analyze.ts`);
 * exit codes and error printing live in `errors.ts`.
 */
import { readFileSync } from 'node:fs';
import { analyzeCommand } from './analyze.ts';
import { decodeCommand } from './decode.ts';
import { encodeCommand } from './encode.ts';
import { type CliIo, EXIT_CODES_HELP, EXIT_USAGE, reportError } from './errors.ts';
import { evalCommand } from './eval.ts';
import { inspectCommand } from './inspect.ts';

export { type CliIo, EXIT_USAGE } from './errors.ts';

type Command = (args: readonly string[], io: CliIo) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  encode: encodeCommand,
  decode: decodeCommand,
  inspect: inspectCommand,
  eval: evalCommand,
  analyze: analyzeCommand,
};

const USAGE = `Usage: latentsight <command> [options]

Commands:
  encode <image> -o <file> [--codec ID]   compress an image into a bitstream
  encode <DIR> -o <OUTDIR>                compress a folder of images, with a summary table
  decode <file> -o <image.png>            decode a bitstream to PNG
  inspect <file>                          print a bitstream's header and latent statistics as JSON
  eval rd --images DIR [--json]           rate-distortion against JPEG, mozjpeg, WebP and AVIF
  analyze <image|bitstream|DIR> --endpoint URL --key KEY [--tasks LIST] [--json]
                                          labels and segmentation from the API
  help                                    show this message

Options:
  -h, --help     show this message (after a command: that command's help)
  -v, --version  print the version

${EXIT_CODES_HELP}`;

/**
 * Runs one command line and returns the process exit code.
 *
 * @example
 * process.exitCode = await runCli(process.argv.slice(2), process);
 */
export async function runCli(args: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = args;
  if (command === '--version' || command === '-v') {
    io.stdout.write(`${readVersion()}\n`);
    return 0;
  }
  if (command === 'help' || command === '--help' || command === '-h') {
    io.stdout.write(USAGE);
    return 0;
  }
  const run = command === undefined ? undefined : COMMANDS[command];
  if (!run) {
    io.stderr.write(command === undefined ? USAGE : `latentsight: unknown command '${command}'\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  try {
    return await run(rest, io);
  } catch (e) {
    return reportError(command, e, io);
  }
}

// The version lives in package.json only, so that a release bumps it in one place.
function readVersion(): string {
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}
