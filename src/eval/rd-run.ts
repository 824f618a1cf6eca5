/**
 * Runs the rate-distortion comparison: every image of a folder through our codecs (real encoder,
 * real bitstream bytes, real decoder) and through the reference codecs' quality sweeps. Node only.
 */
import { readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { type Codec, decodeImage, encodeImage, readImageFile } from '../codec/node.ts';
import type { RgbImage } from '../codec/index.ts';
import { type RdPoint, bitSavings, meanPoint, measure, median } from './rd.ts';
import { DEFAULT_QUALITIES, type ReferenceCodec, referenceRoundTrip } from './reference-codecs.ts';

export interface RdReport {
  images: number;
  /** Per codec: one point per operating point (ours) or quality setting (references), bpp ascending. */
  codecs: Record<string, RdPoint[]>;
  /** savings[our id][reference][metric]: fraction of bits saved at equal quality (null: out of range). */
  savings: Record<string, Record<string, { psnr: number | null; msssim: number | null }>>;
  /** Median milliseconds per image of our encoder and decoder, per codec id. */
  timings_ms: Record<string, { encode: number; decode: number }>;
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff', '.bmp']);

/** Image files of a folder (not recursive), sorted by name. */
export async function listImages(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase())).sort();
  return names.map((n) => join(dir, n));
}

/**
 * Measures `codecs` (ours) and `references` on the images at `paths`.
 *
 * @example
 * const report = await runRd(await listImages('../shared/data/kodak'), [q1, q2], ['jpeg', 'webp'])
 */
export async function runRd(
  paths: readonly string[],
  codecs: readonly Codec[],
  references: readonly ReferenceCodec[],
  progress: (message: string) => void = () => {},
): Promise<RdReport> {
  const ours = new Map<string, RdPoint[]>(codecs.map((c) => [c.id, []]));
  const times = new Map<string, { encode: number[]; decode: number[] }>(codecs.map((c) => [c.id, { encode: [], decode: [] }]));
  const refs = new Map<string, RdPoint[][]>(references.map((r) => [r, DEFAULT_QUALITIES[r].map(() => [])]));
  for (const [i, path] of paths.entries()) {
    progress(`[${i + 1}/${paths.length}] ${path}`);
    const image: RgbImage = await readImageFile(path);
    for (const codec of codecs) {
      const t0 = performance.now();
      const bytes = await encodeImage(image, codec, { allowDecodeOnly: true });
      const t1 = performance.now();
      const decoded = await decodeImage(bytes, codec);
      times.get(codec.id)!.encode.push(t1 - t0);
      times.get(codec.id)!.decode.push(performance.now() - t1);
      ours.get(codec.id)!.push(measure(image, decoded, bytes.length));
    }
    for (const ref of references) {
      const qualities = DEFAULT_QUALITIES[ref];
      for (const [q, quality] of qualities.entries()) {
        const { bytes, decoded } = await referenceRoundTrip(image, ref, quality);
        refs.get(ref)![q].push(measure(image, decoded, bytes));
      }
    }
  }
  const report: RdReport = { images: paths.length, codecs: {}, savings: {}, timings_ms: {} };
  for (const [id, points] of ours) {
    report.codecs[id] = [meanPoint(points)];
    const t = times.get(id)!;
    report.timings_ms[id] = { encode: round(median(t.encode)), decode: round(median(t.decode)) };
  }
  for (const ref of references) {
    report.codecs[ref] = refs.get(ref)!.map((points, q) => meanPoint(points, DEFAULT_QUALITIES[ref][q])).sort((a, b) => a.bpp - b.bpp);
  }
  for (const codec of codecs) {
    const [point] = report.codecs[codec.id];
    report.savings[codec.id] = Object.fromEntries(
      references.map((ref) => [ref, { psnr: bitSavings(point, report.codecs[ref], 'psnr'), msssim: bitSavings(point, report.codecs[ref], 'msssim') }]),
    );
  }
  return report;
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
