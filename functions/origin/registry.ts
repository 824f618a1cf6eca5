/**
 * The models the origin serves: one onnxruntime session per graph, each in its own worker thread
 * behind its own micro-batcher, with the KServe signature (names, datatypes, shapes) that requests
 * are validated against.
 */
import { MicroBatcher } from './batcher.ts';
import { type Tensor, type TensorSpec, formatShape } from './datatypes.ts';
import { OriginError } from './errors.ts';
import type { ModelSignature } from './kserve-request.ts';
import type { Logger } from '../../src/protocol/log.ts';
import type { ManifestFile, ModelKind, ServedModelSpec } from './manifest.ts';
import type { OriginMetrics } from './metrics.ts';
import { type GraphSignature, type ExecutionProvider, SessionRunner } from './session-runner.ts';
import { batchKey, concatRows, splitRows } from './tensor-batch.ts';

export interface BatchingOptions {
  /** Most rows per batch run (ORIGIN_MAX_BATCH). */
  readonly maxBatch: number;
  readonly maxQueueDelayMs: number;
  readonly maxQueue: number;
}

export interface RegistryOptions extends BatchingOptions {
  /** Intra-op threads per session (ORIGIN_THREADS). */
  readonly threads: number;
  /** Execution providers, in order of preference (ORIGIN_EXECUTION_PROVIDERS; default ['cpu']). */
  readonly providers?: readonly ExecutionProvider[];
  readonly metrics?: OriginMetrics;
  readonly logger?: Logger;
}

/** A model being served: its signature, and inference through its batcher. */
export interface ServedModel extends ModelSignature {
  readonly version: string;
  readonly kind: ModelKind;
  /** The manifest entry's id (a codec serves two graphs under one id). */
  readonly entryId: string;
  readonly platform: 'onnxruntime_onnx';
  readonly file: ManifestFile;
  /** True when every input and output has a dynamic first axis, so requests can be concatenated. */
  readonly batchable: boolean;
  ready(): boolean;
  /** Requests waiting in its queue. */
  depth(): number;
  /**
   * Runs one validated request (inputs in the model's order) within the batch it lands in. The
   * inputs' buffers are transferred to the model's worker: do not use them afterwards.
   */
  infer(inputs: Tensor[], rows: number, deadline: number): Promise<Tensor[]>;
}

/**
 * @example
 * const registry = await ModelRegistry.load(servedModels(manifest), { threads: 2, maxBatch: 16, maxQueueDelayMs: 2, maxQueue: 256 });
 * const outputs = await registry.get('cls-test')!.infer(inputs, 1, performance.now() + 10_000);
 */
export class ModelRegistry {
  private constructor(private readonly models: Map<string, ManagedModel>) {}

  /** Starts every session (in parallel); if one fails, stops the others and throws. */
  static async load(specs: readonly ServedModelSpec[], options: RegistryOptions): Promise<ModelRegistry> {
    const started = await Promise.allSettled(specs.map((spec) => SessionRunner.start(spec.file.absolutePath, { threads: options.threads, providers: options.providers ?? ['cpu'] })));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const runners = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    try {
      if (failed) throw failed.reason;
      const models = new Map(specs.map((spec, i) => [spec.name, serve(spec, runners[i], options)]));
      return new ModelRegistry(models);
    } catch (e) {
      await Promise.all(runners.map((r) => r.close()));
      throw e;
    }
  }

  get(name: string): ServedModel | undefined {
    return this.models.get(name);
  }

  list(): ServedModel[] {
    return [...this.models.values()];
  }

  /** Every model's worker is alive. */
  ready(): boolean {
    for (const m of this.models.values()) if (!m.ready()) return false;
    return true;
  }

  /** Resolves once every queue is empty and no batch runs. */
  async drain(): Promise<void> {
    await Promise.all([...this.models.values()].map((m) => m.drain()));
  }

  /** Stops every worker; queued requests get UNAVAILABLE. */
  async close(): Promise<void> {
    await Promise.all([...this.models.values()].map((m) => m.close()));
  }
}

type ManagedModel = ServedModel & { drain(): Promise<void>; close(): Promise<void> };

function serve(spec: ServedModelSpec, runner: SessionRunner, options: RegistryOptions): ManagedModel {
  const where = `model '${spec.name}' (${spec.file.path})`;
  const { inputs, outputs } = mergeSignature(runner.signature, spec.entry.kind === 'codec' ? {} : { inputs: spec.entry.inputs, outputs: spec.entry.outputs }, where);
  const batchable = [...inputs, ...outputs].every((t) => t.shape.length > 0 && t.shape[0] === -1);
  const labels = { model: spec.name };
  const { metrics, logger } = options;
  const batcher = new MicroBatcher<Tensor[], Tensor[]>({
    // A graph without a batch axis runs one request at a time, as declared.
    maxBatch: batchable ? options.maxBatch : 1,
    maxQueueDelayMs: batchable ? options.maxQueueDelayMs : 0,
    maxQueue: options.maxQueue,
    run: async (payloads) => {
      const rows = payloads.map((p) => (batchable ? p[0].shape[0] : 1));
      // Inputs own their buffers (parseInferRequest copies, concatRows allocates): move them to the
      // worker instead of copying them again.
      const results = await runner.run(concatRows(payloads), true);
      return splitRows(results, rows);
    },
    onRun: (rows, ms) => {
      metrics?.batchSize.observe(labels, rows);
      metrics?.runSeconds.observe(labels, ms / 1000);
    },
    onDepth: (depth) => metrics?.queueDepth.set(labels, depth),
  });
  metrics?.queueDepth.set(labels, 0);
  runner.onUnexpectedExit((reason) => {
    logger?.error('model worker stopped; the origin is no longer ready', { model: spec.name, reason });
    batcher.close(`the worker of model '${spec.name}' stopped; the origin needs a restart`);
  });
  return {
    name: spec.name,
    version: spec.entry.version,
    kind: spec.entry.kind,
    entryId: spec.entry.id,
    platform: 'onnxruntime_onnx',
    file: spec.file,
    inputs,
    outputs,
    batchable,
    maxBatch: batchable ? options.maxBatch : 0,
    ready: () => runner.alive,
    depth: () => batcher.depth,
    // Cost: the first input's elements (rows x pixels of latents), so that large and small images share one run-time estimate.
    infer: (tensors, rows, deadline) => batcher.submit(tensors, { rows, key: batchKey(tensors), deadline, cost: tensors[0]?.data.length ?? rows }),
    drain: () => batcher.drain(),
    close: async () => {
      batcher.close('the origin is shutting down');
      await runner.close();
    },
  };
}

/**
 * The signature to serve: the graph's, narrowed by what the manifest declares. Names and datatypes
 * must agree; a dimension symbolic in the graph takes the manifest's value; fixed ones must match.
 *
 * @example
 * mergeSignature({ inputs: [{ name: 'latents', datatype: 'INT16', shape: [-1, -1, -1, -1] }], outputs }, { inputs: [{ name: 'latents', datatype: 'INT16', shape: [-1, 4, -1, -1] }] }, 'cls-test')
 * // inputs[0].shape: [-1, 4, -1, -1]
 */
export function mergeSignature(graph: GraphSignature, declared: { inputs?: readonly TensorSpec[]; outputs?: readonly TensorSpec[] }, where: string): GraphSignature {
  const merge = (actual: TensorSpec[], wanted: readonly TensorSpec[] | undefined, side: string): TensorSpec[] => {
    if (!wanted) return actual;
    const names = (ts: readonly TensorSpec[]) => ts.map((t) => t.name).sort().join(', ');
    if (names(actual) !== names(wanted)) throw new OriginError('MODEL_LOAD_FAILED', `${where}: the ONNX graph's ${side} are ${names(actual)}; the manifest declares ${names(wanted)}`);
    return actual.map((a) => {
      const w = wanted.find((t) => t.name === a.name)!;
      const mismatch = `${where}: ${side.slice(0, -1)} '${a.name}' is ${a.datatype} ${formatShape(a.shape)} in the ONNX graph, but the manifest declares ${w.datatype} ${formatShape(w.shape)}`;
      if (a.datatype !== w.datatype || a.shape.length !== w.shape.length) throw new OriginError('MODEL_LOAD_FAILED', mismatch);
      const shape = a.shape.map((d, i) => {
        if (d === -1) return w.shape[i];
        if (w.shape[i] !== -1 && w.shape[i] !== d) throw new OriginError('MODEL_LOAD_FAILED', mismatch);
        return d;
      });
      return { name: a.name, datatype: a.datatype, shape };
    });
  };
  return { inputs: merge(graph.inputs, declared.inputs, 'inputs'), outputs: merge(graph.outputs, declared.outputs, 'outputs') };
}
