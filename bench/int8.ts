/**
 * `npm run bench -- int8`: milliseconds per image of each int8 task model (`<id>-int8`, made by
 * training/tasks/quantize.py) against its float source, in onnxruntime-node on this CPU.
 *
 * Input: kodim23 (768x512) encoded by the CLI with each model's codec and entropy-decoded, so the
 * tensor is what the origin receives for that image (64 x 64 x 96 latents). Both sessions run with one
 * intra-op thread, as the local stack's origin runs them (ORIGIN_THREADS=1), and are timed in
 * alternation, ROUNDS rounds of RUNS calls each, so that load from other processes hits both alike;
 * the JSON gives the medians and their ratio per model, and whether both gave the same top-1 / how
 * many mask pixels they share on this image. Accuracy on val is measured by `npx latentsight eval`
 * (docs/RESULTS.md), not here.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ort from 'onnxruntime-node';
import { parseBitstream } from '../src/bitstream/index.ts';
import { decodeLatents, parseTables } from '../src/entropy/index.ts';
import { median } from './lib/timing.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const ROUNDS = 7;
const RUNS = 3;

interface Entry {
  id: string;
  kind: string;
  version: string;
  codec?: string;
  files: { model?: { path: string }; tables?: { path: string } };
  quantized_from?: { id: string };
}

export async function benchInt8(): Promise<Record<string, unknown>> {
  const manifest = JSON.parse(await readFile(join(REPO, 'models/manifest.json'), 'utf8')) as { models: Entry[] };
  const byId = new Map(manifest.models.map((m) => [m.id, m]));
  const variants = manifest.models.filter((m) => m.quantized_from);
  const latents = new Map<string, ort.Tensor>();
  const models: Record<string, unknown> = {};
  for (const q of variants) {
    const source = byId.get(q.quantized_from!.id);
    if (!source?.files.model || !q.files.model || !q.codec) {
      models[q.id] = { skipped: `its source ${q.quantized_from!.id} is not in the manifest` };
      continue;
    }
    if (!latents.has(q.codec)) latents.set(q.codec, await kodim23Latents(byId.get(q.codec)!));
    const input = latents.get(q.codec)!;
    const [float, int8] = await Promise.all([source, q].map((m) => ort.InferenceSession.create(join(REPO, 'models', m.files.model!.path), { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' })));
    const run = async (s: ort.InferenceSession) => (await s.run({ [s.inputNames[0]]: input }))[s.outputNames.at(-1)!];
    const [a, b] = [await run(float), await run(int8)];
    const times: [number[], number[]] = [[], []];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, s] of [float, int8].entries()) {
        const t0 = performance.now();
        for (let n = 0; n < RUNS; n++) await run(s);
        times[i].push((performance.now() - t0) / RUNS);
      }
    }
    const [msFloat, msInt8] = times.map(median);
    models[q.id] = {
      source: `${source.id}@${source.version}`,
      ms_float: round2(msFloat),
      ms_int8: round2(msInt8),
      speedup: round2(msFloat / msInt8),
      ...agreement(q.kind, a.data as ArrayLike<number | bigint>, b.data as ArrayLike<number | bigint>),
    };
    await Promise.all([float.release(), int8.release()]);
  }
  return { bench: 'int8', image: 'kodim23 768x512', threads: 1, rounds: ROUNDS, models };
}

/** The classifier's first top-k index, or the fraction of mask pixels both give. */
function agreement(kind: string, a: ArrayLike<number | bigint>, b: ArrayLike<number | bigint>): Record<string, unknown> {
  if (kind === 'classifier') return { same_top1: a[0] === b[0] };
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return { mask_pixels_shared: round2((same / a.length) * 100) / 100 };
}

/** kodim23 through the CLI's encoder with `codec`, entropy-decoded: the origin's input for that image. */
async function kodim23Latents(codec: Entry): Promise<ort.Tensor> {
  const dir = await mkdtemp(join(tmpdir(), 'latentsight-int8-'));
  try {
    const path = join(dir, 'kodim23.lsb');
    await promisify(execFile)(process.execPath, [join(REPO, 'bin', 'latentsight.js'), 'encode', join(REPO, 'test/fixtures/kodim23.png'), '-o', path, '--codec', codec.id], { cwd: REPO });
    const { header, latents } = parseBitstream(new Uint8Array(await readFile(path)));
    const tables = parseTables(new Uint8Array(await readFile(join(REPO, 'models', codec.files.tables!.path))));
    const shape = { channels: header.channels, height: header.latentHeight, width: header.latentWidth };
    return new ort.Tensor('int16', decodeLatents(latents, shape, tables), [1, shape.channels, shape.height, shape.width]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
