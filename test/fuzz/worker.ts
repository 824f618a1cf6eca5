// Runs inputs [from, to) of the fuzz campaign; the main thread watches `progress` for hangs.
import { parentPort, workerData } from 'node:worker_threads';
import { BitstreamError, parseBitstream } from '../../src/bitstream/index.ts';
import { EntropyError, decodeLatents } from '../../src/entropy/index.ts';
import { mulberry32 } from '../support/synthetic.ts';
import { mutate } from './mutate.ts';
import { loadSeeds } from './seeds.ts';

interface Job {
  from: number;
  to: number;
  seed: number;
  /** [0] index of the input being run, [1] inputs done, [2] crashes. */
  progress: SharedArrayBuffer;
  /** [0] slowest input in ms. */
  slowest: SharedArrayBuffer;
}

const job = workerData as Job;
const progress = new Int32Array(job.progress);
const slowest = new Float64Array(job.slowest);
const seeds = loadSeeds();
const registry = new Map(seeds.map((s) => [s.modelId, s]));
const codes = new Map<string, number>();

for (let i = job.from; i < job.to; i++) {
  Atomics.store(progress, 0, i);
  const rand = mulberry32(job.seed ^ Math.imul(i, 0x9e3779b1));
  const seed = seeds[Math.floor(rand() * seeds.length)];
  const input = mutate(seed.bytes, rand);
  const t0 = performance.now();
  let code = 'accepted';
  try {
    const stream = parseBitstream(input, { models: (id) => registry.get(id) });
    const model = registry.get(stream.header.modelId)!;
    const { channels, latentHeight: height, latentWidth: width } = stream.header;
    decodeLatents(stream.latents, { channels, height, width }, model.tables);
  } catch (e) {
    if (e instanceof BitstreamError || e instanceof EntropyError) code = e.code;
    else {
      code = 'CRASH';
      Atomics.add(progress, 2, 1);
      parentPort?.postMessage({ crash: { index: i, error: String((e as Error)?.stack ?? e) } });
    }
  }
  const ms = performance.now() - t0;
  if (ms > slowest[0]) slowest[0] = ms;
  codes.set(code, (codes.get(code) ?? 0) + 1);
  Atomics.add(progress, 1, 1);
}
parentPort?.postMessage({ done: true, codes: Object.fromEntries(codes) });
