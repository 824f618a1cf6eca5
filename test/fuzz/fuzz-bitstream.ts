/**
 * `npm run fuzz [-- --inputs N --seed S --hang-ms MS]`: feeds N mutated bitstreams (default
 * 1,000,000) through the container parser and the entropy decoder, in a worker thread watched by
 * this one. An input that throws anything but a typed BitstreamError/EntropyError is a crash; one
 * that has not returned after --hang-ms (default 2000) is a hang: the worker is killed and the
 * campaign resumes after it. Prints `{"inputs", "crashes", "hangs", "max_ms", ...}` and exits 1 if
 * there was a crash or a hang. Deterministic: input i depends only on the seed and i.
 */
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

const { values: args } = parseArgs({
  options: {
    inputs: { type: 'string', default: '1000000' },
    seed: { type: 'string', default: '20261126' },
    'hang-ms': { type: 'string', default: '2000' },
  },
});
const total = Number(args.inputs);
const seed = Number(args.seed);
const hangMs = Number(args['hang-ms']);
if (!(Number.isInteger(total) && total > 0 && Number.isInteger(seed) && hangMs > 0)) {
  console.error('usage: npm run fuzz -- [--inputs N] [--seed S] [--hang-ms MS]');
  process.exit(2);
}

// Workers do not inherit tsx's loader on Node 20: the worker loads its TypeScript through tsx's API.
const WORKER_BOOTSTRAP = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
  .then(({ tsImport }) => tsImport(${JSON.stringify(new URL('./worker.ts', import.meta.url).href)}, ${JSON.stringify(import.meta.url)}))`;

const progress = new Int32Array(new SharedArrayBuffer(12));
const slowest = new Float64Array(new SharedArrayBuffer(8));
const hangs: number[] = [];
const crashes: { index: number; error: string }[] = [];
const codes: Record<string, number> = {};
const started = performance.now();

/** Runs inputs [from, total); resolves with the index to resume from (total when finished). */
function runFrom(from: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_BOOTSTRAP, {
      eval: true,
      workerData: { from, to: total, seed, progress: progress.buffer, slowest: slowest.buffer },
    });
    let last = -1;
    let since = performance.now();
    const watchdog = setInterval(() => {
      const current = Atomics.load(progress, 0);
      if (current !== last) {
        last = current;
        since = performance.now();
      } else if (performance.now() - since > hangMs) {
        clearInterval(watchdog);
        hangs.push(current);
        void worker.terminate().then(() => resolve(current + 1));
      }
    }, 100);
    worker.on('message', (m: { crash?: { index: number; error: string }; done?: boolean; codes?: Record<string, number> }) => {
      if (m.crash && crashes.length < 20) crashes.push(m.crash);
      if (m.codes) for (const [k, v] of Object.entries(m.codes)) codes[k] = (codes[k] ?? 0) + v;
      if (m.done) {
        clearInterval(watchdog);
        resolve(total);
      }
    });
    worker.on('error', (e) => {
      clearInterval(watchdog);
      reject(e);
    });
  });
}

let next = 0;
while (next < total) next = await runFrom(next);

const result = {
  inputs: Atomics.load(progress, 1) + hangs.length,
  crashes: Atomics.load(progress, 2),
  hangs: hangs.length,
  max_ms: Math.round(slowest[0] * 1000) / 1000,
  seconds: Math.round((performance.now() - started) / 100) / 10,
  outcomes: codes,
  ...(crashes.length ? { first_crashes: crashes } : {}),
  ...(hangs.length ? { hang_inputs: hangs.slice(0, 20) } : {}),
};
console.log(JSON.stringify(result));
process.exit(result.crashes || result.hangs ? 1 : 0);
