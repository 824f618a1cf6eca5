import { encodeImage, readImageFile } from '../codec/node.ts';
import { COMMON_OPTIONS_HELP, onePositional, openCodec, parseCommandArgs, writeOutput } from './args.ts';
import { type CliIo, EXIT_OK, UsageError } from './errors.ts';

export const ENCODE_HELP = `Usage: latentsight encode <image> -o <file> [--codec ID]

Compresses an image (PNG, JPEG, WebP, AVIF, TIFF...) into a latentsight bitstream.

Options:
  -o, --output FILE  where to write the bitstream (required)
  --codec ID         codec model id (default: the manifest's default, else its first codec)
${COMMON_OPTIONS_HELP}`;

/**
 * `latentsight encode`: image file -> bitstream file; prints size and bits per pixel.
 *
 * @example
 * await encodeCommand(['photo.jpg', '-o', 'photo.lsb'], io)
 */
export async function encodeCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    output: { type: 'string', short: 'o' },
    codec: { type: 'string' },
  });
  if (values.help) {
    io.stdout.write(ENCODE_HELP);
    return EXIT_OK;
  }
  const input = onePositional(positionals, 'image path');
  if (!values.output) throw new UsageError('missing -o <file>');
  const image = await readImageFile(input);
  const codec = await openCodec(values.models, values.codec);
  try {
    const bytes = await encodeImage(image, codec);
    await writeOutput(values.output, bytes);
    const bpp = (bytes.length * 8) / (image.width * image.height);
    io.stdout.write(`${values.output}: ${bytes.length} bytes, ${bpp.toFixed(3)} bpp, ${image.width}x${image.height}, codec ${codec.id}\n`);
  } finally {
    await codec.release();
  }
  return EXIT_OK;
}
