/** Node adapter: onnxruntime-node's native CPU build. */
import * as ort from 'onnxruntime-node';
import { ortRuntime } from './ort-adapter.ts';
import type { ModelRuntime } from './runtime.ts';

export interface NodeRuntimeOptions {
  /** Threads per model run; onnxruntime's default (0) uses every core. */
  threads?: number;
}

/**
 * A `ModelRuntime` over onnxruntime-node on the CPU.
 *
 * @example
 * const codec = await loadCodec(entry, { readFile, runtime: createNodeRuntime({ threads: 1 }) })
 */
export function createNodeRuntime(options: NodeRuntimeOptions = {}): ModelRuntime {
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: options.threads ?? 0,
  };
  return ortRuntime('onnxruntime-node', {
    createSession: (model) => ort.InferenceSession.create(model, sessionOptions),
    createTensor: (type, data, dims) => new ort.Tensor(type, data, dims),
  });
}
