import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { type Codec, CodecError, loadCodecFromDir, readManifest } from '../codec/node.ts';
import { msssimDb } from '../eval/metrics.ts';
import { rdPlotSvg } from '../eval/plot.ts';
import { type RdReport, listImages, runRd } from '../eval/rd-run.ts';
import { REFERENCE_CODECS, type ReferenceCodec } from '../eval/reference-codecs.ts';
import { type ClassifyReport, type SegmentReport, TASK_INPUTS, type TaskInput, type TaskModelEntry, evalClassify, evalSegment } from '../eval/tasks-run.ts';
import { COMMON_OPTIONS_HELP, modelsDir, parseCommandArgs } from './args.ts';
import { type CliIo, EXIT_OK, FileError, UsageError } from './errors.ts';

export const EVAL_HELP = `Usage: latentsight eval rd --images DIR [options]
       latentsight eval classify --data DIR [--input latent|rgb|decoded] [options]
       latentsight eval segment --images DIR --masks DIR [--input latent|rgb|decoded] [options]

Rate-distortion evaluation: every image in DIR through our codecs (the real encoder, the real
bitstream bytes, the real decoder) and through quality sweeps of JPEG (libjpeg-turbo 4:2:0),
mozjpeg, WebP and AVIF (all through sharp). Reports bits per pixel, PSNR and MS-SSIM (means over
the images) and the fraction of bits each of our codecs saves at equal quality.

Options:
  --images DIR       folder of images (e.g. ../shared/data/kodak)
  --codecs IDS       comma-separated codec ids (default: every codec in the manifest)
  --references LIST  comma-separated, from ${REFERENCE_CODECS.join(', ')} (default: all)
  --plot FILE        SVG plot to write (default: docs/rd-<folder name>.svg; "none" to skip)
  --limit N          only the first N images (for a quick look)
  --json             print one JSON object instead of tables

classify / segment: every image through the product's path (TypeScript encoder, the bitstream's
bytes, TypeScript decoder, the task model's ONNX graph) and the accuracy against the labels.
  --data DIR         classify: one folder per class, named by the model's label ids (Imagenette wnids)
  --images DIR       segment: the images; --masks DIR: label masks with the same base names
  --input KIND       latent (default): decoded latents; decoded: the codec's reconstruction (same
                     bits); rgb: the original pixels (no codec)
  --model ID         the task model (default: the manifest's for that input and codec)
  --codec ID         the codec (default: the model's)
  --limit N          only N images, spread over the set (for a quick look)
  --json             print one JSON object: {task, input, n, bpp, macs, top1, top5} or
                     {task, input, n, bpp, macs, miou, pixel_accuracy, per_class_iou}
${COMMON_OPTIONS_HELP}`;

/**
 * `latentsight eval rd`.
 *
 * @example
 * await evalCommand(['rd', '--images', '../shared/data/kodak', '--json'], io)
 */
export async function evalCommand(args: readonly string[], io: CliIo): Promise<number> {
  const [task, ...rest] = args;
  if (task === undefined || task === '--help' || task === '-h') {
    io.stdout.write(EVAL_HELP);
    return task === undefined ? 2 : EXIT_OK;
  }
  if (task === 'classify' || task === 'segment') return evalTask(task, rest, io);
  if (task !== 'rd') throw new UsageError(`unknown evaluation '${task}' (known: rd, classify, segment)`);
  const { values } = parseCommandArgs(rest, {
    images: { type: 'string' },
    codecs: { type: 'string' },
    references: { type: 'string' },
    plot: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    io.stdout.write(EVAL_HELP);
    return EXIT_OK;
  }
  if (!values.images) throw new UsageError('missing --images DIR');
  const references = (values.references?.split(',') ?? [...REFERENCE_CODECS]) as ReferenceCodec[];
  const unknown = references.filter((r) => !REFERENCE_CODECS.includes(r));
  if (unknown.length) throw new UsageError(`unknown reference codec '${unknown.join(',')}'`);
  const limit = values.limit === undefined ? Infinity : Number(values.limit);
  if (!(limit >= 1)) throw new UsageError('--limit takes a positive number');

  let paths: string[];
  try {
    paths = (await listImages(values.images)).slice(0, limit);
  } catch (e) {
    throw new FileError('FILE_UNREADABLE', `Cannot list '${values.images}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
  if (!paths.length) throw new FileError('FILE_UNREADABLE', `No images in '${values.images}'.`);

  const dir = modelsDir(values.models);
  const ids = values.codecs?.split(',') ?? (await readManifest(dir)).models.filter((m) => m.kind === 'codec').map((m) => m.id);
  const codecs: Codec[] = [];
  try {
    for (const id of ids) codecs.push(await loadCodecFromDir(dir, id));
    const report = await runRd(paths, codecs, references, (m) => io.stderr.write(`${m}\n`));
    const plot = values.plot ?? `docs/rd-${basename(resolve(values.images))}.svg`;
    if (plot !== 'none') {
      await mkdir(dirname(plot), { recursive: true });
      await writeFile(plot, rdPlotSvg(report.codecs, ids, `${basename(resolve(values.images))}: ${paths.length} images`));
    }
    io.stdout.write(values.json ? `${JSON.stringify(report)}\n` : formatReport(report, ids));
  } finally {
    for (const c of codecs) await c.release();
  }
  return EXIT_OK;
}

/** Plain-text tables: the curves, then the savings. */
function formatReport(report: RdReport, ours: readonly string[]): string {
  const lines = [`${report.images} images`, '', 'codec      quality    bpp     PSNR dB  MS-SSIM  MS-SSIM dB'];
  for (const [name, points] of Object.entries(report.codecs)) {
    for (const p of points) {
      lines.push(
        `${name.padEnd(10)} ${String(p.quality ?? '-').padStart(7)}  ${p.bpp.toFixed(3).padStart(6)}  ${p.psnr.toFixed(2).padStart(7)}  ${p.msssim.toFixed(4)}  ${msssimDb(p.msssim).toFixed(2).padStart(6)}`,
      );
    }
  }
  lines.push('', 'bits saved at equal quality (negative: more bits)', 'codec      against    PSNR     MS-SSIM');
  const pct = (x: number | null) => (x === null ? 'n/a' : `${(x * 100).toFixed(1)}%`).padStart(7);
  for (const id of ours) {
    for (const [ref, s] of Object.entries(report.savings[id] ?? {})) lines.push(`${id.padEnd(10)} ${ref.padEnd(9)} ${pct(s.psnr)}  ${pct(s.msssim)}`);
  }
  for (const [id, t] of Object.entries(report.timings_ms)) lines.push('', `${id}: encode ${t.encode} ms, decode ${t.decode} ms per image (median)`);
  return `${lines.join('\n')}\n`;
}

/** `latentsight eval classify|segment`. */
async function evalTask(task: 'classify' | 'segment', args: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(args, {
    data: { type: 'string' },
    images: { type: 'string' },
    masks: { type: 'string' },
    input: { type: 'string' },
    model: { type: 'string' },
    codec: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    io.stdout.write(EVAL_HELP);
    return EXIT_OK;
  }
  const input = (values.input ?? 'latent') as TaskInput;
  if (!TASK_INPUTS.includes(input)) throw new UsageError(`--input must be one of ${TASK_INPUTS.join(', ')}`);
  if (task === 'classify' && !values.data) throw new UsageError('missing --data DIR (one folder per class)');
  if (task === 'segment' && (!values.images || !values.masks)) throw new UsageError('missing --images DIR or --masks DIR');
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1)) throw new UsageError('--limit takes a positive integer');

  const dir = modelsDir(values.models);
  const manifest = (await readManifest(dir)) as unknown as { models: TaskModelEntry[] };
  const kind = task === 'classify' ? 'classifier' : 'segmenter';
  const entry = manifest.models.find((m) => (values.model ? m.id === values.model : m.kind === kind && m.input === input && (!values.codec || m.codec === values.codec)));
  if (!entry || entry.kind !== kind) {
    throw new CodecError('MODEL_UNAVAILABLE', values.model ? `No ${kind} '${values.model}' in ${dir}/manifest.json.` : `No ${kind} on ${input} input in ${dir}/manifest.json${input === 'latent' ? '' : ' (the baselines are exported under models/baselines/ once trained)'}.`);
  }
  const codecId = values.codec ?? entry.codec ?? undefined;
  const codec = input === 'rgb' ? undefined : await loadCodecFromDir(dir, codecId);
  const progress = (done: number, total: number) => {
    if (done % 100 === 0 || done === total) io.stderr.write(`${task}: ${done}/${total}\n`);
  };
  try {
    const path = join(dir, entry.files.model.path);
    const report =
      task === 'classify'
        ? await evalClassify(values.data!, entry, path, input, codec, { limit, progress })
        : await evalSegment(values.images!, values.masks!, entry, path, input, codec, { limit, progress });
    io.stdout.write(values.json ? `${JSON.stringify(report)}\n` : formatTaskReport(report));
  } catch (e) {
    if (e instanceof Error && !(e instanceof UsageError) && !('code' in e)) throw new FileError('FILE_UNREADABLE', e.message);
    throw e;
  } finally {
    await codec?.release();
  }
  return EXIT_OK;
}

function formatTaskReport(r: ClassifyReport | SegmentReport): string {
  const head = `${r.task} ${r.model} on ${r.input}${r.codec ? ` (${r.codec})` : ''}: ${r.n} images, ${r.bpp === null ? 'no bitstream' : `${r.bpp.toFixed(3)} bpp`}, ${r.macs === null ? '?' : (r.macs / 1e9).toFixed(2)} GMACs per image`;
  if (r.task === 'classify') return `${head}\ntop-1 ${(100 * r.top1).toFixed(2)}%  top-5 ${(100 * r.top5).toFixed(2)}%\n`;
  const classes = Object.entries(r.per_class_iou).map(([name, iou]) => `  ${name.padEnd(12)} ${iou === null ? 'n/a' : `${(100 * iou).toFixed(1)}%`}`);
  return `${head}\nmIoU ${(100 * r.miou).toFixed(2)}%  pixel accuracy ${(100 * r.pixel_accuracy).toFixed(2)}%\n${classes.join('\n')}\n`;
}

