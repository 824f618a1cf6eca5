/**
 * `npm run bench -- origin` (or `tsx bench/origin.ts [--fixtures] [--latent-model ID] [--rgb-model ID]
 * [--codec ID] [--manifest PATH]`): images per second through the origin, started as a real process,
 * for the two ways of classifying the same latents:
 *
 *   latent path   latents INT16 -> latent classifier                          (one request per image)
 *   decoded path  latents FP32  -> <codec>.synthesis -> image -> RGB classifier (two requests per image)
 *
 * at concurrency 1 and 16, with micro-batching (ORIGIN_MAX_BATCH=16) and, as the baseline measured in
 * the same run, without (ORIGIN_MAX_BATCH=1). Requests are signed binary tensors like the edge's
 * (uncompressed, so that neither path pays for gzip). Every response is checked: shapes, top-5 order,
 * and, for the protocol fixtures, the exact answer. The client shares the machine's cores with the
 * origin. Model ids come from the manifest (the codec's latent and RGB classifiers by default); when
 * one is missing the JSON says "skipped" with the reason rather than inventing a figure. `--fixtures`
 * benches the fixture classifiers (test/fixtures/models) with the manifest's real codec: an end-to-end
 * check of the machinery whose classifier cost is negligible, so its ratio measures the decoder alone.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_MANIFEST } from '../functions/origin/config.ts';
import type { Tensor } from '../functions/origin/datatypes.ts';
import { encodeInferRequest, parseInferResponse } from '../functions/origin/kserve-client.ts';
import { type ModelEntry, parseManifest } from '../functions/origin/manifest.ts';
import { type OriginProcess, startOrigin } from '../functions/origin/process.ts';
import { type SigningKey, importSigningKey, signatureHeaders } from '../src/protocol/signature.ts';
import { checkTopK, classifierProbabilities, seededLatents } from '../test/fixtures/models/reference.ts';
import { median } from './lib/timing.ts';

const FIXTURE_MANIFEST = fileURLToPath(new URL('../test/fixtures/models/manifest.json', import.meta.url));
/** Latent side: 28 x 28 latents decode to the 224 x 224 images RGB classifiers take. */
const DEFAULT_SIDE = 28;
const INPUTS = 32;
const ROUNDS = 3;
const MIN_SECONDS = 3;

export interface OriginBenchOptions {
  manifest?: string;
  codec?: string;
  latentModel?: string;
  rgbModel?: string;
  /** Bench the protocol fixtures' classifiers with the manifest's codec. */
  fixtures?: boolean;
}

/** Options from `--flags` when run directly, else from BENCH_ORIGIN_* variables. */
function optionsFromProcess(): OriginBenchOptions {
  const env = process.env;
  const direct = process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href;
  const { values } = parseArgs({
    args: direct ? process.argv.slice(2) : [],
    options: { manifest: { type: 'string' }, codec: { type: 'string' }, 'latent-model': { type: 'string' }, 'rgb-model': { type: 'string' }, fixtures: { type: 'boolean' } },
  });
  return {
    manifest: values.manifest ?? env.BENCH_ORIGIN_MANIFEST ?? env.ORIGIN_MANIFEST,
    codec: values.codec ?? env.BENCH_ORIGIN_CODEC,
    latentModel: values['latent-model'] ?? env.BENCH_ORIGIN_LATENT_MODEL,
    rgbModel: values['rgb-model'] ?? env.BENCH_ORIGIN_RGB_MODEL,
    fixtures: values.fixtures ?? env.BENCH_ORIGIN_FIXTURES === '1',
  };
}

/**
 * Runs the benchmark and returns its JSON record.
 *
 * @example
 * console.log(JSON.stringify(await benchOrigin({ fixtures: true })));
 */
export async function benchOrigin(options: OriginBenchOptions = optionsFromProcess()): Promise<Record<string, unknown>> {
  const manifestPath = options.manifest ?? DEFAULT_MANIFEST;
  const base = parseManifest(JSON.parse(await readFile(manifestPath, 'utf8')), manifestPath);
  const fixtures = options.fixtures ? parseManifest(JSON.parse(await readFile(FIXTURE_MANIFEST, 'utf8')), FIXTURE_MANIFEST) : undefined;
  const entries = [...base.models, ...(fixtures?.models ?? [])];
  const codec = entries.find((m) => m.kind === 'codec' && (options.codec === undefined || m.id === options.codec));
  const skip = (reason: string) => ({ bench: 'origin', skipped: reason, manifest: manifestPath });
  if (!codec) return skip(options.codec ? `no codec '${options.codec}' in ${manifestPath}` : `${manifestPath} lists no codec`);
  const pick = (id: string | undefined, input: 'latent' | 'rgb') =>
    entries.find((m) => m.kind === 'classifier' && (id !== undefined ? m.id === id : m.input === input && (input === 'rgb' || m.codec === codec.id) && (options.fixtures ? m.id.endsWith('-test') : true)));
  const latent = pick(options.latentModel, 'latent');
  const rgb = pick(options.rgbModel, 'rgb');
  const hint = 'pass --latent-model/--rgb-model (BENCH_ORIGIN_LATENT_MODEL/_RGB_MODEL under npm run bench), or --fixtures (BENCH_ORIGIN_FIXTURES=1) for an end-to-end check with the protocol fixtures';
  if (!latent) return skip(options.latentModel ? `no classifier '${options.latentModel}' in the manifest` : `no latent classifier for codec '${codec.id}' in ${manifestPath} yet (another issue trains it); ${hint}`);
  if (!rgb) return skip(options.rgbModel ? `no classifier '${options.rgbModel}' in the manifest` : `no RGB classifier for codec '${codec.id}' in ${manifestPath} yet (another issue trains it); ${hint}`);
  const channels = latent.inputs![0].shape[1];
  if (codec.channels !== undefined && channels !== codec.channels) return skip(`latent classifier '${latent.id}' takes ${channels} channels, codec '${codec.id}' makes ${codec.channels}: not the same inputs`);
  const rgbShape = rgb.inputs![0].shape;
  const side = rgbShape[2] > 0 ? rgbShape[2] / 8 : DEFAULT_SIDE;
  if (!Number.isInteger(side) || (rgbShape[3] > 0 && rgbShape[3] !== rgbShape[2])) return skip(`RGB classifier '${rgb.id}' takes ${rgbShape.join('x')} images, which no whole latent grid decodes to`);

  // One manifest with just the three models, paths relative to a temporary folder.
  const dir = await mkdtemp(join(tmpdir(), 'bench-origin-'));
  try {
    const manifest = join(dir, 'manifest.json');
    await writeFile(manifest, JSON.stringify({ schema: 1, models: [codec, latent, rgb].map((m) => relocate(m, dir)) }));
    return await measure({ manifest, codec, latent, rgb, channels: codec.channels ?? channels, side, fixtures: !!options.fixtures });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function relocate(entry: ModelEntry, dir: string): Record<string, unknown> {
  const files = Object.fromEntries(Object.entries(entry.files).map(([role, f]) => [role, { path: relative(dir, f.absolutePath), sha256: f.sha256, bytes: f.bytes }]));
  return { ...entry, files };
}

interface Setup {
  manifest: string;
  codec: ModelEntry;
  latent: ModelEntry;
  rgb: ModelEntry;
  channels: number;
  side: number;
  fixtures: boolean;
}

interface Run {
  ips: number;
  p50_ms: number;
  p99_ms: number;
  images: number;
  errors: number;
}

async function measure(setup: Setup): Promise<Record<string, unknown>> {
  const loadAtStart = loadavg()[0];
  const secret = randomBytes(32).toString('hex');
  const key = await importSigningKey(secret);
  // A generous deadline: a saturated closed loop on a slow shared CPU measures throughput, not 504s
  // (16 synthesis requests queued behind ORIGIN_MAX_BATCH=1 wait for 15 runs of ~0.5 s each).
  const env = { ORIGIN_MANIFEST: setup.manifest, ORIGIN_HMAC_SECRET: secret, ORIGIN_LOG_LEVEL: 'warn', ORIGIN_MAX_QUEUE_DELAY_MS: '2', ORIGIN_DEADLINE_MS: '120000' };
  const [batched, unbatched] = await Promise.all([startOrigin({ ...env, ORIGIN_MAX_BATCH: '16' }), startOrigin({ ...env, ORIGIN_MAX_BATCH: '1' })]);
  try {
    const { channels, side } = setup;
    const images = Array.from({ length: INPUTS }, (_, i) => seededLatents(channels * side * side, 1000 + i, 4));
    const paths = {
      latent: latentPath(setup, key, images),
      decoded: decodedPath(setup, key, images),
    };
    const errors = { count: 0, first: undefined as string | undefined };
    const runs: Record<string, Run[]> = {};
    const record = async (name: string, origin: OriginProcess, path: keyof typeof paths, concurrency: number) => {
      const run = await closedLoop(origin, paths[path], concurrency, errors);
      (runs[name] ??= []).push(run);
    };
    // Warm both processes (sessions, JIT, connections), then interleave measurement and baseline.
    for (const origin of [batched, unbatched]) {
      await closedLoop(origin, paths.latent, 4, errors, 0, 8);
      await closedLoop(origin, paths.decoded, 2, errors, 0, 4);
    }
    for (let round = 0; round < ROUNDS; round++) {
      await record('latent_c1', batched, 'latent', 1);
      await record('latent_c16', batched, 'latent', 16);
      await record('latent_c16_batch1', unbatched, 'latent', 16);
      await record('decoded_c1', batched, 'decoded', 1);
      await record('decoded_c16', batched, 'decoded', 16);
      await record('decoded_c16_batch1', unbatched, 'decoded', 16);
    }
    const summary = Object.fromEntries(Object.entries(runs).map(([name, rs]) => [name, summarise(rs)]));
    const get = (name: string) => summary[name] as Run;
    const latentIps = get('latent_c16').ips;
    const decodedIps = get('decoded_c16').ips;
    return {
      bench: 'origin',
      latent_ips: latentIps,
      decoded_ips: decodedIps,
      ratio: round2(latentIps / decodedIps),
      batching_gain: round2(latentIps / get('latent_c16_batch1').ips),
      batching_gain_decoded: round2(decodedIps / get('decoded_c16_batch1').ips),
      p50_ms: get('latent_c16').p50_ms,
      p99_ms: get('latent_c16').p99_ms,
      errors: errors.count,
      ...(errors.first && { first_error: errors.first }),
      headline: 'images/s and latency at concurrency 16 with micro-batching; ratio = latent / decoded; batching_gain = ORIGIN_MAX_BATCH=16 vs 1 at concurrency 16',
      models: { codec: `${setup.codec.id}@${setup.codec.version}`, latent: `${setup.latent.id}@${setup.latent.version}`, rgb: `${setup.rgb.id}@${setup.rgb.version}` },
      ...(setup.fixtures && { fixtures: 'latent and RGB classifiers are protocol fixtures (average pool + linear): the ratio measures the synthesis transform, not a product classifier' }),
      input: { latents: [1, channels, side, side], image: [1, 3, 8 * side, 8 * side], distinct_inputs: INPUTS, transport: 'HMAC-signed binary tensors, uncompressed' },
      origin: { ORIGIN_MAX_QUEUE_DELAY_MS: 2, ORIGIN_DEADLINE_MS: 120000, ORIGIN_THREADS: 'default (CPU count)', load_average_1m_at_start: round2(loadAtStart), cpus: availableParallelism() },
      method: `${ROUNDS} interleaved rounds per configuration, each >= ${MIN_SECONDS} s and >= 2 x concurrency images, closed loop; medians of rounds; the client shares the CPU with the origin`,
      runs: summary,
    };
  } finally {
    await Promise.all([batched.stop(), unbatched.stop()]);
  }
}

/** One image's round trip through a path; throws if an answer is wrong. */
type Path = (origin: OriginProcess, index: number) => Promise<void>;

function latentPath(setup: Setup, key: SigningKey, images: Int16Array[]): Path {
  const shape = [1, setup.channels, setup.side, setup.side];
  const bodies = images.map((data) => encodeInferRequest({ inputs: [{ name: 'latents', datatype: 'INT16', shape, data }], binaryOutputs: true }));
  return async (origin, i) => {
    const [scores, classes] = await infer(origin, key, setup.latent.id, bodies[i % images.length]);
    checkClassifier(scores, classes, setup.fixtures ? classifierProbabilities(images[i % images.length], shape, 0) : undefined);
  };
}

function decodedPath(setup: Setup, key: SigningKey, images: Int16Array[]): Path {
  const shape = [1, setup.channels, setup.side, setup.side];
  const bodies = images.map((data) => encodeInferRequest({ inputs: [{ name: 'latents', datatype: 'FP32', shape, data: Float32Array.from(data) }], binaryOutputs: true }));
  return async (origin, i) => {
    const [image] = await infer(origin, key, `${setup.codec.id}.synthesis`, bodies[i % images.length]);
    const expected = [1, 3, 8 * setup.side, 8 * setup.side];
    if (image.datatype !== 'FP32' || image.shape.join() !== expected.join()) throw new Error(`synthesis returned ${image.datatype} [${image.shape}], expected FP32 [${expected}]`);
    const rgb: Tensor = { name: setup.rgb.inputs![0].name, datatype: 'FP32', shape: image.shape, data: image.data };
    const [scores, classes] = await infer(origin, key, setup.rgb.id, encodeInferRequest({ inputs: [rgb], binaryOutputs: true }));
    checkClassifier(scores, classes, setup.fixtures ? classifierProbabilities(image.data as Float32Array, image.shape, 0) : undefined);
  };
}

async function infer(origin: OriginProcess, key: SigningKey, model: string, request: { body: Uint8Array; headerLength?: number }): Promise<Tensor[]> {
  const url = new URL(`/v2/models/${model}/infer`, origin.url);
  const res = await fetch(url, {
    method: 'POST',
    body: request.body,
    headers: {
      ...(await signatureHeaders(key, 'POST', url, request.body)),
      'Content-Type': 'application/octet-stream',
      'Inference-Header-Content-Length': String(request.headerLength),
      'Accept-Encoding': 'identity',
    },
  });
  if (res.status !== 200) throw new Error(`${model}: HTTP ${res.status} ${await res.text()}`);
  const hl = res.headers.get('inference-header-content-length');
  return parseInferResponse(new Uint8Array(await res.arrayBuffer()), hl === null ? undefined : Number(hl)).outputs;
}

/** Top-5 in order; with `probabilities` (the fixtures' reference), exactly the right classes too. */
function checkClassifier(scores: Tensor, classes: Tensor, probabilities: number[] | undefined): void {
  if (scores.shape.join() !== '1,5' || classes.shape.join() !== '1,5' || classes.datatype !== 'INT64') throw new Error(`classifier returned scores [${scores.shape}], classes ${classes.datatype} [${classes.shape}]`);
  const s = scores.data as Float32Array;
  for (let i = 1; i < 5; i++) if (s[i] > s[i - 1] + 1e-6) throw new Error('top-5 scores do not descend');
  if (probabilities) {
    // The image went through FP32 synthesis: allow float noise relative to the JS recomputation.
    const problem = checkTopK(probabilities, s, classes.data as BigInt64Array, 1e-4);
    if (problem) throw new Error(`wrong answer: ${problem}`);
  }
}

/** `concurrency` clients, each sending its next image as soon as the last is answered. */
async function closedLoop(origin: OriginProcess, path: Path, concurrency: number, errors: { count: number; first?: string }, minSeconds = MIN_SECONDS, minImages = 2 * concurrency): Promise<Run> {
  const latencies: number[] = [];
  let next = 0;
  let failed = 0;
  const started = performance.now();
  const client = async () => {
    while (latencies.length + failed < minImages || (performance.now() - started) / 1000 < minSeconds) {
      const i = next++;
      const t0 = performance.now();
      try {
        await path(origin, i);
        latencies.push(performance.now() - t0);
      } catch (e) {
        failed++;
        errors.count++;
        errors.first ??= (e as Error).message.slice(0, 300);
        if (failed > 20) return;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const seconds = (performance.now() - started) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  const quantile = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);
  return { ips: round2(latencies.length / seconds), p50_ms: round2(quantile(0.5)), p99_ms: round2(quantile(0.99)), images: latencies.length, errors: failed };
}

function summarise(runs: Run[]): Run & { rounds_ips: number[] } {
  return {
    ips: round2(median(runs.map((r) => r.ips))),
    p50_ms: round2(median(runs.map((r) => r.p50_ms))),
    p99_ms: round2(median(runs.map((r) => r.p99_ms))),
    images: runs.reduce((n, r) => n + r.images, 0),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    rounds_ips: runs.map((r) => r.ips),
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchOrigin()));
}

