import { mkdir, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { type Codec, CodecError, assertEncodable, encodeImage, readImageFile } from '../codec/node.ts';
import { COMMON_OPTIONS_HELP, onePositional, openCodec, parseCommandArgs, writeOutput } from './args.ts';
import { BITSTREAM_EXTENSION, IMAGE_EXTENSIONS, type Outcome, isDirectory, listInputs, mapPool, parseConcurrency } from './batch.ts';
import { type CliIo, EXIT_OK, FileError, UsageError, batchExit, classify } from './errors.ts';
import { type JpegComparison, compareWithJpeg } from './jpeg-compare.ts';
import { progressBar } from './progress.ts';
import { formatBytes, formatTable, percentOf } from './table.ts';

export const ENCODE_HELP = `Usage: latentsight encode <image> -o <file> [--codec ID]
       latentsight encode <DIR> -o <OUTDIR> [--concurrency N] [--json] [--codec ID]

Compresses an image (PNG, JPEG, WebP, AVIF, TIFF...) into a latentsight bitstream.

Given a folder, encodes every image in it (not recursive) into OUTDIR/<name>.lsb, with a progress
bar on stderr (on a terminal only), and prints a summary table: each bitstream's size against the
original file and against a JPEG of equal PSNR (the smallest libjpeg-turbo 4:2:0 quality whose
PSNR reaches the decoded bitstream's, found by bisection). A failed image is listed with its error
code; the others still run (exit code 9 if any failed).

Options:
  -o, --output PATH  where to write the bitstream, or the output folder (required)
  --codec ID         codec model id (default: the manifest's default, else its first codec);
                     a codec marked decode_only takes no new encodes (CODEC_DECODE_ONLY, exit 5)
  --concurrency N    folder mode: images in flight at once (1-64, default 2)
  --json             folder mode: print one JSON object instead of the table
${COMMON_OPTIONS_HELP}`;

/**
 * `latentsight encode`: image file -> bitstream file, or a folder of images -> a folder of
 * bitstreams with a summary.
 *
 * @example
 * await encodeCommand(['photo.jpg', '-o', 'photo.lsb'], io)
 * await encodeCommand(['photos/', '-o', 'streams/', '--concurrency', '4'], io)
 */
export async function encodeCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    output: { type: 'string', short: 'o' },
    codec: { type: 'string' },
    concurrency: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    io.stdout.write(ENCODE_HELP);
    return EXIT_OK;
  }
  const input = onePositional(positionals, 'image path');
  if (!values.output) throw new UsageError('missing -o <file>');
  if (await isDirectory(input)) {
    const concurrency = parseConcurrency(values.concurrency, 2);
    return encodeFolder(input, values.output, { concurrency, json: values.json ?? false, codecId: values.codec, models: values.models }, io);
  }
  if (values.concurrency !== undefined || values.json) throw new UsageError('--concurrency and --json apply to a folder of images');
  const codec = await openCodec(values.models, values.codec);
  try {
    assertEncodable(codec);
    const image = await readImageFile(input);
    const bytes = await encodeImage(image, codec);
    await writeOutput(values.output, bytes);
    const bpp = (bytes.length * 8) / (image.width * image.height);
    io.stdout.write(`${values.output}: ${bytes.length} bytes, ${bpp.toFixed(3)} bpp, ${image.width}x${image.height}, codec ${codec.id}\n`);
  } finally {
    await codec.release();
  }
  return EXIT_OK;
}

/** One encoded image of a batch. */
export interface EncodedItem extends JpegComparison {
  input: string;
  output: string;
  width: number;
  height: number;
  /** Size of the input file. */
  originalBytes: number;
  bytes: number;
  bpp: number;
}

async function encodeFolder(
  dir: string,
  outDir: string,
  options: { concurrency: number; json: boolean; codecId?: string; models?: string },
  io: CliIo,
): Promise<number> {
  const paths = await listInputs(dir, IMAGE_EXTENSIONS);
  const codec = await openCodec(options.models, options.codecId);
  try {
    assertEncodable(codec);
    await mkdir(outDir, { recursive: true });
  } catch (e) {
    await codec.release();
    if (e instanceof CodecError) throw e;
    throw new FileError('FILE_UNWRITABLE', `Cannot create '${outDir}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
  const bar = progressBar(io.stderr, paths.length, 'encode');
  let outcomes: Outcome<EncodedItem>[];
  try {
    outcomes = await mapPool(paths, options.concurrency, (path) => encodeOne(path, outDir, codec), (path, o) => bar.tick(basename(path), !o.ok));
  } finally {
    bar.done();
    await codec.release();
  }
  if (options.json) {
    const items = outcomes.map((o, i) => (o.ok ? o.value : { input: paths[i], error: classify(o.error).code, message: String((o.error as Error)?.message ?? o.error) }));
    io.stdout.write(`${JSON.stringify({ codec: codec.id, items })}\n`);
  } else {
    io.stdout.write(encodeSummary(paths, outcomes, codec.id));
  }
  return batchExit(outcomes, paths, 'encode', io);
}

async function encodeOne(path: string, outDir: string, codec: Codec): Promise<EncodedItem> {
  const [image, info] = await Promise.all([readImageFile(path), stat(path)]);
  const bytes = await encodeImage(image, codec);
  const output = join(outDir, `${basename(path, extname(path))}${BITSTREAM_EXTENSION}`);
  await writeOutput(output, bytes);
  const comparison = await compareWithJpeg(image, bytes, codec);
  return {
    input: path,
    output,
    width: image.width,
    height: image.height,
    originalBytes: info.size,
    bytes: bytes.length,
    bpp: (bytes.length * 8) / (image.width * image.height),
    ...comparison,
  };
}

/**
 * The closing table of `encode DIR`: per image and in total, sizes against the original file and
 * against JPEG at equal PSNR.
 */
export function encodeSummary(paths: readonly string[], outcomes: readonly Outcome<EncodedItem>[], codecId: string): string {
  const rows: string[][] = [];
  let total = 0, original = 0, jpeg = 0, jpegCovered = 0;
  outcomes.forEach((o, i) => {
    if (!o.ok) {
      rows.push([`${basename(paths[i])} (failed: ${classify(o.error).code})`, '-', '-', '-', '-', '-', '-', '-', '-']);
      return;
    }
    const v = o.value;
    total += v.bytes;
    original += v.originalBytes;
    if (v.jpegBytes !== null) {
      jpeg += v.jpegBytes;
      jpegCovered += v.bytes;
    }
    rows.push([
      basename(v.input),
      `${v.width}x${v.height}`,
      formatBytes(v.originalBytes),
      formatBytes(v.bytes),
      v.bpp.toFixed(3),
      v.psnr.toFixed(2),
      percentOf(v.bytes, v.originalBytes),
      v.jpegBytes === null ? 'n/a' : formatBytes(v.jpegBytes),
      percentOf(v.bytes, v.jpegBytes),
    ]);
  });
  const ok = outcomes.filter((o) => o.ok).length;
  rows.push(['total', `${ok}/${outcomes.length}`, formatBytes(original), formatBytes(total), '', '', percentOf(total, original), jpeg ? formatBytes(jpeg) : '-', percentOf(jpegCovered, jpeg || null)]);
  const header = ['file', 'size', 'original', 'bitstream', 'bpp', 'PSNR dB', 'of original', 'JPEG same PSNR', 'of JPEG'];
  return `codec ${codecId}\n${formatTable(header, rows)}`;
}
