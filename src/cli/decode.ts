import { readHeader } from '../bitstream/index.ts';
import { decodeImage, encodePng } from '../codec/node.ts';
import { COMMON_OPTIONS_HELP, onePositional, openCodec, parseCommandArgs, readInput, writeOutput } from './args.ts';
import { type CliIo, EXIT_OK, UsageError } from './errors.ts';

export const DECODE_HELP = `Usage: latentsight decode <file> -o <image.png>

Decodes a latentsight bitstream to a PNG image, with the codec its header names.

Options:
  -o, --output FILE  where to write the PNG (required)
${COMMON_OPTIONS_HELP}`;

/**
 * `latentsight decode`: bitstream file -> PNG file.
 *
 * @example
 * await decodeCommand(['photo.lsb', '-o', 'photo.png'], io)
 */
export async function decodeCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { output: { type: 'string', short: 'o' } });
  if (values.help) {
    io.stdout.write(DECODE_HELP);
    return EXIT_OK;
  }
  const input = onePositional(positionals, 'bitstream path');
  if (!values.output) throw new UsageError('missing -o <image.png>');
  const bytes = await readInput(input);
  // The header alone names the codec; the full stream is checked against it in decodeImage.
  const codec = await openCodec(values.models, readHeader(bytes).modelId);
  try {
    const image = await decodeImage(bytes, codec);
    await writeOutput(values.output, await encodePng(image));
    io.stdout.write(`${values.output}: ${image.width}x${image.height} PNG, codec ${codec.id}\n`);
  } finally {
    await codec.release();
  }
  return EXIT_OK;
}
