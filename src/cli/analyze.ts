import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { MAGIC } from '../bitstream/index.ts';
import { type AnalyzeResult, type LatentsightClient, TASKS, checkTasks, createClient } from '../client/index.ts';
import { type Codec, readImageFile } from '../codec/node.ts';
import { COMMON_OPTIONS_HELP, onePositional, openCodec, parseCommandArgs, readInput } from './args.ts';
import { BITSTREAM_EXTENSION, IMAGE_EXTENSIONS, type Outcome, isDirectory, listInputs, mapPool, parseConcurrency } from './batch.ts';
import { type CliIo, EXIT_OK, UsageError, batchExit, classify } from './errors.ts';
import { type JpegComparison, compareWithJpeg } from './jpeg-compare.ts';
import { progressBar } from './progress.ts';
import { formatBytes, formatTable, percentOf } from './table.ts';

export const ANALYZE_HELP = `Usage: latentsight analyze <image|bitstream|DIR> --endpoint URL --key KEY [options]

Sends a bitstream to the API's POST /v1/analyze and prints the results: the top-5 labels and the
segmentation's class shares. An image is first encoded here (with the local codec). Requests
that meet 429 or 503 are retried with backoff, honouring Retry-After.

Given a folder, analyses every image and .lsb bitstream in it (not recursive), with a progress bar
on stderr (on a terminal only), and prints a summary table: each stream's size against the
original file and against a JPEG of equal PSNR (images only), and the top label and the largest
segment class. A failed item is listed with its error code; the others still run.

Options:
  --endpoint URL     the edge, e.g. http://127.0.0.1:8787 (default: $LATENTSIGHT_ENDPOINT)
  --key KEY          API key (default: $LATENTSIGHT_API_KEY; the environment keeps it out of
                     your shell history and the process list)
  --tasks LIST       comma-separated, from ${TASKS.join(', ')} (default: every task the API serves)
  --json             print the API's JSON (folder mode: one object with every item)
  --codec ID         codec for encoding images (default: the manifest's default)
  --concurrency N    folder mode: items in flight at once (1-64, default 4)
  --retries N        retries on 429/503/network errors (default 3)
${COMMON_OPTIONS_HELP}`;

/** One analysed input of a batch. */
export interface AnalyzedItem {
  input: string;
  kind: 'image' | 'bitstream';
  originalBytes: number;
  bytes: number;
  result: AnalyzeResult;
  /** Images only: our PSNR and the JPEG of equal PSNR. */
  jpeg?: JpegComparison;
}

/**
 * `latentsight analyze`: one image or bitstream, or a folder of them, through the API.
 *
 * @example
 * await analyzeCommand(['photo.jpg', '--endpoint', 'http://127.0.0.1:8787', '--key', key], io)
 */
export async function analyzeCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    endpoint: { type: 'string' },
    key: { type: 'string' },
    tasks: { type: 'string' },
    json: { type: 'boolean' },
    codec: { type: 'string' },
    concurrency: { type: 'string' },
    retries: { type: 'string' },
  });
  if (values.help) {
    io.stdout.write(ANALYZE_HELP);
    return EXIT_OK;
  }
  const input = onePositional(positionals, 'image, bitstream or folder path');
  const endpoint = values.endpoint ?? process.env.LATENTSIGHT_ENDPOINT;
  const apiKey = values.key ?? process.env.LATENTSIGHT_API_KEY;
  if (!endpoint) throw new UsageError('missing --endpoint URL (or $LATENTSIGHT_ENDPOINT)');
  if (!apiKey) throw new UsageError('missing --key KEY (or $LATENTSIGHT_API_KEY)');
  const tasks = values.tasks === undefined ? undefined : checkTasks(values.tasks.split(',').map((t) => t.trim()));
  const retries = values.retries === undefined ? 3 : Number(values.retries);
  if (!Number.isInteger(retries) || retries < 0 || retries > 10) throw new UsageError(`--retries takes a whole number from 0 to 10, not '${values.retries}'`);
  const folder = await isDirectory(input);
  const concurrency = parseConcurrency(values.concurrency, 4);

  let codec: Codec | undefined;
  const needCodec = async () => (codec ??= await openCodec(values.models, values.codec));
  const client = (c?: Codec) => createClient({ endpoint, apiKey, codec: c, retry: { retries } });
  try {
    if (!folder) {
      const item = await analyzeOne(input, tasks, client, needCodec, false);
      io.stdout.write(values.json ? `${JSON.stringify(item.result)}\n` : describeResult(item));
      return EXIT_OK;
    }
    const paths = await listInputs(input, new Set([...IMAGE_EXTENSIONS, BITSTREAM_EXTENSION]));
    const bar = progressBar(io.stderr, paths.length, 'analyze');
    let outcomes: Outcome<AnalyzedItem>[];
    try {
      outcomes = await mapPool(paths, concurrency, (p) => analyzeOne(p, tasks, client, needCodec, true), (p, o) => bar.tick(basename(p), !o.ok));
    } finally {
      bar.done();
    }
    if (values.json) {
      const items = outcomes.map((o, i) =>
        o.ok ? { input: o.value.input, bytes: o.value.bytes, original_bytes: o.value.originalBytes, jpeg: o.value.jpeg, result: o.value.result } : { input: paths[i], error: classify(o.error).code },
      );
      io.stdout.write(`${JSON.stringify({ items })}\n`);
    } else {
      io.stdout.write(analyzeSummary(paths, outcomes));
    }
    return batchExit(outcomes, paths, 'analyze', io);
  } finally {
    await (codec as Codec | undefined)?.release();
  }
}

/** True when the bytes start with the bitstream magic (then they are sent as they are). */
function isBitstream(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b);
}

async function analyzeOne(
  path: string,
  tasks: ReturnType<typeof checkTasks> | undefined,
  client: (codec?: Codec) => LatentsightClient,
  needCodec: () => Promise<Codec>,
  compare: boolean,
): Promise<AnalyzedItem> {
  const raw = await readInput(path);
  if (isBitstream(raw)) {
    const result = await client().analyze(raw, { tasks });
    return { input: path, kind: 'bitstream', originalBytes: raw.length, bytes: raw.length, result };
  }
  const image = await readImageFile(path);
  const codec = await needCodec();
  const c = client(codec);
  const bytes = await c.toBitstream(image);
  const [result, jpeg] = await Promise.all([c.analyze(bytes, { tasks }), compare ? compareWithJpeg(image, bytes, codec) : undefined]);
  return { input: path, kind: 'image', originalBytes: (await stat(path)).size, bytes: bytes.length, result, jpeg };
}

/** One result in words: size, top-5 labels, class shares. */
function describeResult(item: AnalyzedItem): string {
  const r = item.result;
  const lines = [
    `${item.input}: ${item.bytes} bytes, ${r.bpp} bpp, ${r.image.width}x${r.image.height}, codec ${r.codec}` +
      `${item.kind === 'image' ? ` (encoded here; the image file is ${formatBytes(item.originalBytes)})` : ''}; cache ${r.cache}, request ${r.request_id}`,
  ];
  const top = r.results.classify?.top;
  if (top) {
    lines.push(`classify (${r.models.classify?.id ?? '?'} ${r.models.classify?.version ?? ''}):`);
    for (const t of top) lines.push(`  ${(t.score * 100).toFixed(1).padStart(5)}%  ${t.label} (${t.id})`);
  }
  const seg = r.results.segment;
  if (seg) {
    lines.push(`segment (${r.models.segment?.id ?? '?'} ${r.models.segment?.version ?? ''}), ${seg.width}x${seg.height} mask:`);
    const shares = seg.classes.map((c) => ({ name: c.name, share: seg.fractions[c.id] ?? 0 })).filter((c) => c.share > 0).sort((a, b) => b.share - a.share);
    for (const c of shares) lines.push(`  ${(c.share * 100).toFixed(1).padStart(5)}%  ${c.name}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The top label with its score, and the class covering most of the mask. */
function labelsOf(r: AnalyzeResult): [string, string] {
  const top = r.results.classify?.top[0];
  const seg = r.results.segment;
  let largest = '-';
  if (seg) {
    const best = seg.classes.reduce<{ name: string; share: number } | null>((b, c) => {
      const share = seg.fractions[c.id] ?? 0;
      return share > (b?.share ?? 0) ? { name: c.name, share } : b;
    }, null);
    if (best) largest = `${best.name} ${(best.share * 100).toFixed(0)}%`;
  }
  return [top ? `${top.label} ${(top.score * 100).toFixed(0)}%` : '-', largest];
}

/**
 * The closing table of `analyze DIR`: per item, sizes (against the original and JPEG at equal
 * PSNR for images) and labels; then totals.
 */
export function analyzeSummary(paths: readonly string[], outcomes: readonly Outcome<AnalyzedItem>[]): string {
  const rows: string[][] = [];
  let bytes = 0, original = 0, jpeg = 0, jpegCovered = 0;
  outcomes.forEach((o, i) => {
    if (!o.ok) {
      rows.push([`${basename(paths[i])} (failed: ${classify(o.error).code})`, '-', '-', '-', '-', '-', '-', '-']);
      return;
    }
    const v = o.value;
    bytes += v.bytes;
    if (v.kind === 'image') original += v.originalBytes;
    const jb = v.jpeg?.jpegBytes ?? null;
    if (jb !== null) {
      jpeg += jb;
      jpegCovered += v.bytes;
    }
    rows.push([
      basename(v.input),
      formatBytes(v.bytes),
      v.result.bpp.toFixed(3),
      v.kind === 'image' ? percentOf(v.bytes, v.originalBytes) : '-',
      jb === null ? '-' : formatBytes(jb),
      percentOf(v.bytes, jb),
      ...labelsOf(v.result),
    ]);
  });
  const ok = outcomes.filter((o) => o.ok).length;
  rows.push([`total (${ok}/${outcomes.length} ok)`, formatBytes(bytes), '', original ? percentOf(bytes, original) : '-', jpeg ? formatBytes(jpeg) : '-', percentOf(jpegCovered, jpeg || null), '', '']);
  return formatTable(['file', 'bitstream', 'bpp', 'of original', 'JPEG same PSNR', 'of JPEG', 'top label', 'largest segment'], rows);
}
