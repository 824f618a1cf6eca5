/**
 * `npm run bench -- int8` (`BENCH_INT8_IMAGES=DIR` for the agreement pass): each int8 task model (`<id>-int8`,
 * made by training/tasks/quantize.py) against its float source, in onnxruntime-node on this CPU.
 *
 * - Time: milliseconds per image at 768x512 (kodim23, the test fixture), with one intra-op thread as
 *   the local stack's origin runs them (ORIGIN_THREADS=1). The input is the latents the codec's
 *   analysis transform makes of the image (what the origin receives once the edge has entropy-decoded
 *   the stream). Float and int8 are timed in alternation, ROUNDS rounds of RUNS calls each, so that
 *   load from other processes hits both alike; the medians and their ratio per model.
 * - Agreement off the training domain: on every image of DIR (default ../shared/data/kodak, photos
 *   that neither task model was trained on), how often the int8 model gives the float model's top-1
 *   (classifiers) and the fraction of mask pixels both give (segmenters: median and lowest over the
 *   images). Skipped with the reason when DIR is missing. Accuracy on val is measured by
 *   `npx latentsight eval` (docs/RESULTS.md), not here.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { readImageFile } from '../src/codec/image-node.ts';
import { toPaddedPlanar } from '../src/codec/pixels.ts';
import { median } from './lib/timing.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const ROUNDS = 7;
const RUNS = 3;
const STRIDE = 8;

interface Entry {
  id: string;
  kind: string;
  version: string;
  codec?: string;
  files: { model?: { path: string }; analysis?: { path: string } };
  quantized_from?: { id: string };
}

export async function benchInt8(): Promise<Record<string, unknown>> {
  const dir = process.env.BENCH_INT8_IMAGES || join(REPO, '..', 'shared', 'data', 'kodak');
  const manifest = JSON.parse(await readFile(join(REPO, 'models/manifest.json'), 'utf8')) as { models: Entry[] };
  const byId = new Map(manifest.models.map((m) => [m.id, m]));
  const images = await imageFiles(dir);
  const analyses = new Map<string, Analysis>();
  const models: Record<string, unknown> = {};
  for (const q of manifest.models.filter((m) => m.quantized_from)) {
    const source = byId.get(q.quantized_from!.id);
    const codec = q.codec ? byId.get(q.codec) : undefined;
    if (!source?.files.model || !q.files.model || !codec?.files.analysis) {
      models[q.id] = { skipped: `its source ${q.quantized_from!.id} or codec ${q.codec} is not in the manifest` };
      continue;
    }
    if (!analyses.has(codec.id)) analyses.set(codec.id, await Analysis.load(join(REPO, 'models', codec.files.analysis.path)));
    const analysis = analyses.get(codec.id)!;
    const [float, int8] = await Promise.all([source, q].map((m) => ort.InferenceSession.create(join(REPO, 'models', m.files.model!.path), { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' })));
    const run = async (s: ort.InferenceSession, input: ort.Tensor) => (await s.run({ [s.inputNames[0]]: input }))[s.outputNames.at(-1)!].data as ArrayLike<number | bigint>;

    const fixture = await analysis.latents(join(REPO, 'test/fixtures/kodim23.png'));
    await run(float, fixture);
    await run(int8, fixture);
    const times: [number[], number[]] = [[], []];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, s] of [float, int8].entries()) {
        const t0 = performance.now();
        for (let n = 0; n < RUNS; n++) await run(s, fixture);
        times[i].push((performance.now() - t0) / RUNS);
      }
    }
    const [msFloat, msInt8] = times.map(median);

    let offDomain: Record<string, unknown>;
    if (typeof images === 'string') {
      offDomain = { skipped: images };
    } else {
      const shared: number[] = [];
      for (const path of images) {
        const input = await analysis.latents(path);
        const [a, b] = [await run(float, input), await run(int8, input)];
        shared.push(q.kind === 'classifier' ? Number(a[0] === b[0]) : agreeing(a, b));
      }
      offDomain =
        q.kind === 'classifier'
          ? { images: shared.length, same_top1: shared.reduce((s, x) => s + x, 0) }
          : { images: shared.length, mask_pixels_shared_median: round4(median(shared)), mask_pixels_shared_lowest: round4(Math.min(...shared)) };
    }
    models[q.id] = { source: `${source.id}@${source.version}`, ms_float: round2(msFloat), ms_int8: round2(msInt8), speedup: round2(msFloat / msInt8), off_domain: offDomain };
    await Promise.all([float.release(), int8.release()]);
  }
  return { bench: 'int8', image: 'kodim23 768x512', threads: 1, rounds: ROUNDS, images: typeof images === 'string' ? null : dir, models };
}

/** A codec's analysis transform: an image file to the int16 latents a client's encoder makes of it. */
class Analysis {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async load(path: string): Promise<Analysis> {
    return new Analysis(await ort.InferenceSession.create(path, { graphOptimizationLevel: 'all' }));
  }

  async latents(path: string): Promise<ort.Tensor> {
    const planar = toPaddedPlanar(await readImageFile(path), STRIDE);
    const out = await this.session.run({ [this.session.inputNames[0]]: new ort.Tensor('float32', planar.data, [1, 3, planar.height, planar.width]) });
    return out[this.session.outputNames[0]];
  }
}

/** The image files of `dir`, or why there are none. */
async function imageFiles(dir: string): Promise<string[] | string> {
  try {
    const files = (await readdir(dir)).filter((f) => /\.(png|jpe?g|webp)$/i.test(f)).sort();
    return files.length ? files.map((f) => join(dir, f)) : `no images in ${dir}`;
  } catch {
    return `${dir} is not readable`;
  }
}

function agreeing(a: ArrayLike<number | bigint>, b: ArrayLike<number | bigint>): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function round4(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}
