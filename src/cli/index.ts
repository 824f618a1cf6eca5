/**
 * The `latentsight` command. Commands (encode, decode, inspect, analyze) arrive with their issues;
 * each stays thin over the SDK in `src/client/`.
 */
import { readFileSync } from 'node:fs';

/** Where the CLI writes; injected so that tests can capture it. */
export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/** Exit code for a command line that could not be understood (the shell's convention). */
export const EXIT_USAGE = 2;

const USAGE = `Usage: latentsight <command> [options]

Commands:
  help           show this message

Options:
  -h, --help     show this message
  -v, --version  print the version
`;

/**
 * Runs one command line and returns the process exit code.
 *
 * @example
 * process.exitCode = await runCli(process.argv.slice(2), process);
 */
export async function runCli(args: readonly string[], io: CliIo): Promise<number> {
  const [command] = args;
  if (command === '--version' || command === '-v') {
    io.stdout.write(`${readVersion()}\n`);
    return 0;
  }
  if (command === 'help' || command === '--help' || command === '-h') {
    io.stdout.write(USAGE);
    return 0;
  }
  io.stderr.write(command === undefined ? USAGE : `latentsight: unknown command '${command}'\n\n${USAGE}`);
  return EXIT_USAGE;
}

// The version lives in package.json only, so that a release bumps it in one place.
function readVersion(): string {
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}
