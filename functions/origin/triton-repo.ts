/**
 * Writes a Triton model repository from the manifest, so that the edge can point at a stock Triton
 * server (GPUs, several machines) instead of this origin, with the same model names and I/O:
 *
 *   tsx functions/origin/triton-repo.ts --out DIR [--manifest models/manifest.json] [--max-batch 16] [--max-queue-delay-ms 2]
 *
 * For each served graph: DIR/<name>/config.pbtxt and DIR/<name>/1/model.onnx (Triton versions are
 * integers; the manifest's version is kept in a comment). Files are checked against their sha256 first.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { DEFAULT_MANIFEST } from './config.ts';
import { DATATYPES, type TensorSpec, datatypeOfOrt } from './datatypes.ts';
import { OriginError } from './errors.ts';
import { type ServedModelSpec, loadManifest, servedModels } from './manifest.ts';
import { mergeSignature } from './registry.ts';

export interface TritonModel {
  readonly name: string;
  /** The manifest's version string and the file's sha256, recorded in a comment. */
  readonly version: string;
  readonly sha256: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

export interface TritonOptions {
  readonly maxBatch: number;
  readonly maxQueueDelayMs: number;
}

/**
 * The `config.pbtxt` text for one model. A model whose inputs and outputs all have a dynamic first
 * axis gets `max_batch_size` and dynamic batching, and its dims lose that axis (Triton adds it back);
 * any other model gets `max_batch_size: 0` and its full shapes.
 *
 * @example
 * tritonConfig({ name: 'cls-test', version: '1', sha256, inputs, outputs }, { maxBatch: 16, maxQueueDelayMs: 2 })
 * // 'name: "cls-test"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 16\n...'
 */
export function tritonConfig(model: TritonModel, options: TritonOptions): string {
  const batchable = [...model.inputs, ...model.outputs].every((t) => t.shape.length > 0 && t.shape[0] === -1);
  const tensors = (ts: readonly TensorSpec[]) =>
    ts
      .map((t) => {
        const dims = batchable ? t.shape.slice(1) : t.shape;
        return `  {\n    name: "${t.name}"\n    data_type: ${DATATYPES[t.datatype].triton}\n    dims: [ ${dims.join(', ')} ]\n  }`;
      })
      .join(',\n');
  const lines = [
    `# Written by functions/origin/triton-repo.ts from the latentsight manifest: do not edit.`,
    `# model version ${model.version}, sha256 ${model.sha256}`,
    `name: "${model.name}"`,
    `platform: "onnxruntime_onnx"`,
    `max_batch_size: ${batchable ? options.maxBatch : 0}`,
    `input [\n${tensors(model.inputs)}\n]`,
    `output [\n${tensors(model.outputs)}\n]`,
  ];
  if (batchable) {
    lines.push(`dynamic_batching {\n  preferred_batch_size: [ ${preferredSizes(options.maxBatch).join(', ')} ]\n  max_queue_delay_microseconds: ${Math.round(options.maxQueueDelayMs * 1000)}\n}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Preferred batch sizes for Triton: a quarter, half and all of the max batch, those of at least 2.
 *
 * @example
 * preferredSizes(16) // [4, 8, 16]
 */
export function preferredSizes(maxBatch: number): number[] {
  return [...new Set([Math.floor(maxBatch / 4), Math.floor(maxBatch / 2), maxBatch])].filter((n) => n >= 2);
}

/**
 * Verifies the manifest's files, reads each graph's I/O with onnxruntime, and writes the repository.
 * Returns the model names written.
 *
 * @example
 * await writeTritonRepository('models/manifest.json', '/srv/triton/models', { maxBatch: 16, maxQueueDelayMs: 2 });
 */
export async function writeTritonRepository(manifestPath: string, outDir: string, options: TritonOptions): Promise<string[]> {
  const manifest = await loadManifest(manifestPath);
  const written: string[] = [];
  for (const spec of servedModels(manifest)) {
    const model = await describe(spec);
    const dir = join(outDir, spec.name);
    await mkdir(join(dir, '1'), { recursive: true });
    await writeFile(join(dir, 'config.pbtxt'), tritonConfig(model, options));
    await copyFile(spec.file.absolutePath, join(dir, '1', 'model.onnx'));
    written.push(spec.name);
  }
  return written;
}

async function describe(spec: ServedModelSpec): Promise<TritonModel> {
  const session = await ort.InferenceSession.create(spec.file.absolutePath);
  try {
    const toSpec = (m: ort.InferenceSession.ValueMetadata): TensorSpec => {
      const datatype = m.isTensor ? datatypeOfOrt(m.type) : undefined;
      if (!m.isTensor || !datatype) throw new OriginError('MODEL_LOAD_FAILED', `${spec.file.path}: '${m.name}' has no Triton datatype here`);
      return { name: m.name, datatype, shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)) };
    };
    const graph = { inputs: session.inputMetadata.map(toSpec), outputs: session.outputMetadata.map(toSpec) };
    const declared = spec.entry.kind === 'codec' ? {} : { inputs: spec.entry.inputs, outputs: spec.entry.outputs };
    const { inputs, outputs } = mergeSignature(graph, declared, `model '${spec.name}'`);
    return { name: spec.name, version: spec.entry.version, sha256: spec.file.sha256, inputs, outputs };
  } finally {
    await session.release();
  }
}

async function cli(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      manifest: { type: 'string', default: process.env.ORIGIN_MANIFEST || DEFAULT_MANIFEST },
      'max-batch': { type: 'string', default: process.env.ORIGIN_MAX_BATCH || '16' },
      'max-queue-delay-ms': { type: 'string', default: process.env.ORIGIN_MAX_QUEUE_DELAY_MS || '2' },
    },
  });
  const maxBatch = Number(values['max-batch']);
  const maxQueueDelayMs = Number(values['max-queue-delay-ms']);
  if (!values.out || !Number.isInteger(maxBatch) || maxBatch < 1 || !(maxQueueDelayMs >= 0)) {
    process.stderr.write('usage: tsx functions/origin/triton-repo.ts --out DIR [--manifest PATH] [--max-batch N>=1] [--max-queue-delay-ms MS]\n');
    process.exit(2);
  }
  const names = await writeTritonRepository(values.manifest!, values.out, { maxBatch, maxQueueDelayMs });
  process.stdout.write(`${JSON.stringify({ out: values.out, models: names })}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  cli(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`triton-repo: ${e.message}\n`);
    process.exit(1);
  });
}
