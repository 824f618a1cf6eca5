import { readHeader } from '../bitstream/index.ts';
import { CodecError, decodeBitstreamLatents, latentStats } from '../codec/node.ts';
import { COMMON_OPTIONS_HELP, onePositional, openCodec, parseCommandArgs, readInput } from './args.ts';
import { type CliIo, EXIT_OK } from './errors.ts';

export const INSPECT_HELP = `Usage: latentsight inspect <file>

Prints a bitstream's header as JSON, with its size in bits per pixel. When the codec it names is
in the manifest, the whole stream is checked and its latents are decoded and summarised (no model
is run). A corrupt stream prints its header, then the error, and exits 4.

Options:
${COMMON_OPTIONS_HELP}`;

/**
 * `latentsight inspect`: bitstream file -> JSON on stdout.
 *
 * @example
 * await inspectCommand(['photo.lsb'], io) // {"header": {...}, "bytes": 25890, "bpp": 0.53, ...}
 */
export async function inspectCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {});
  if (values.help) {
    io.stdout.write(INSPECT_HELP);
    return EXIT_OK;
  }
  const bytes = await readInput(onePositional(positionals, 'bitstream path'));
  const header = readHeader(bytes);
  const report: Record<string, unknown> = {
    header,
    bytes: bytes.length,
    bpp: (bytes.length * 8) / (header.width * header.height),
    codec: null,
    latents: null,
  };
  const print = () => io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  let codec;
  try {
    codec = await openCodec(values.models, header.modelId);
  } catch (e) {
    if (!(e instanceof CodecError && e.code === 'UNKNOWN_CODEC')) throw e;
    print(); // an unknown codec still has a readable header
    return EXIT_OK;
  }
  // Which of the codec's table sets the stream was coded with: its current one or an earlier version's.
  const legacy = codec.entry.legacy_tables?.find((l) => l.table_hash === header.tableHash);
  const streamTables = header.tableHash === codec.tableHash ? 'current' : legacy ? `legacy ${legacy.version}` : 'other';
  report.codec = { id: codec.id, version: codec.version, tableHash: codec.tableHash, streamTables };
  try {
    const { latents } = decodeBitstreamLatents(bytes, codec);
    const shape = { channels: header.channels, height: header.latentHeight, width: header.latentWidth };
    report.latents = latentStats(latents, shape, codec.tablesFor(header.tableHash) ?? codec.tables);
  } catch (e) {
    print();
    throw e;
  } finally {
    await codec.release();
  }
  print();
  return EXIT_OK;
}
