/**
 * `npm run bench -- int8`: each int8 task model (`<id>-int8`, made by training/tasks/quantize.py)
 * against its float source, in onnxruntime-node on this CPU.
 *
 * - Time: milliseconds per image at 768x512 (kodim23, the test fixture), with one intra-op thread as
 *   the local stack's origin runs them (ORIGIN_THREADS=1). The input is what the origin receives for
 *   the image: the codec's encoder makes the bitstream, and its entropy decoder gives the latents back. Float and int8 are timed in alternation, ROUNDS rounds of RUNS calls each, so that
 *   load from other processes hits both alike; the medians and their ratio per model.
 * - Agreement off the training domain: on every image of kodak/ in $LATENTSIGHT_DATA (default
 *   ../shared/data; photos that neither task model was trained on), how often the int8 model gives the float model's top-1
 *   (classifiers) and the fraction of mask pixels both give (segmenters: median and lowest over the
 *   images). Skipped with the reason when the folder is missing. Accuracy on val is measured by
 *   `npx latentsight eval` (docs/RESULTS.md), not here.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { type Codec, decodeBitstreamLatents, encodeImage, loadCodecFromDir, readImageFile } from '../src/codec/node.ts';
import { listImages } from '../src/eval/rd-run.ts';
import { median } from './lib/timing.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const ROUNDS = 7;
const RUNS = 3;

interface Entry {
  id: string;
  kind: string;
  version: string;
  codec?: string;
  files: { model?: { path: string } };
  quantized_from?: { id: string };
}

export async function benchInt8(): Promise<Record<string, unknown>> {
  const dir = join(process.env.LATENTSIGHT_DATA ?? join(REPO, '../shared/data'), 'kodak');
  const manifest = JSON.parse(await readFile(join(REPO, 'models/manifest.json'), 'utf8')) as { models: Entry[] };
  const byId = new Map(manifest.models.map((m) => [m.id, m]));
  const images = await listImages(dir).then(
    (paths) => (paths.length ? paths : `no images in ${dir}`),
    () => `${dir} is not readable`,
  );
  const codecs = new Map<string, Codec>();
  const models: Record<string, unknown> = {};
  for (const q of manifest.models.filter((m) => m.quantized_from)) {
    const source = byId.get(q.quantized_from!.id);
    if (!source?.files.model || !q.files.model || !q.codec || !byId.has(q.codec)) {
      models[q.id] = { skipped: `its source ${q.quantized_from!.id} or codec ${q.codec} is not in the manifest` };
      continue;
    }
    if (!codecs.has(q.codec)) codecs.set(q.codec, await loadCodecFromDir(undefined, q.codec));
    const codec = codecs.get(q.codec)!;
    const [float, int8] = await Promise.all([source, q].map((m) => ort.InferenceSession.create(join(REPO, 'models', m.files.model!.path), { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' })));
    const run = async (s: ort.InferenceSession, input: ort.Tensor) => (await s.run({ [s.inputNames[0]]: input }))[s.outputNames.at(-1)!].data as ArrayLike<number | bigint>;

    const fixture = await latentsOf(join(REPO, 'test/fixtures/kodim23.png'), codec);
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
        const input = await latentsOf(path, codec);
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

/** The latents the origin receives for an image: encoded by the codec, entropy-decoded again. */
async function latentsOf(path: string, codec: Codec): Promise<ort.Tensor> {
  const { header, latents } = decodeBitstreamLatents(await encodeImage(await readImageFile(path), codec, { allowDecodeOnly: true }), codec);
  return new ort.Tensor('int16', latents, [1, header.channels, header.latentHeight, header.latentWidth]);
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
