/**
 * Browser (and worker) adapter: onnxruntime-web on WebAssembly. Imports nothing from Node, so
 * bundlers can take it into a page; it also runs under Node, which is how the tests exercise it.
 */
import * as ort from 'onnxruntime-web';
import { ortRuntime } from './ort-adapter.ts';
import type { ModelRuntime } from './runtime.ts';

export interface WebRuntimeOptions {
  /** wasm threads (needs cross-origin isolation in browsers); 1 by default. */
  threads?: number;
  /** Where the `ort-wasm-*.wasm` files are served from, if not beside the bundle. */
  wasmPaths?: string;
}

/**
 * A `ModelRuntime` over onnxruntime-web's wasm backend.
 *
 * @example
 * const runtime = createWebRuntime({ wasmPaths: '/ort/' })
 * const codec = await loadCodec(entry, { readFile: (p) => fetchBytes(`/models/${p}`), runtime })
 */
export function createWebRuntime(options: WebRuntimeOptions = {}): ModelRuntime {
  ort.env.wasm.numThreads = options.threads ?? 1;
  if (options.wasmPaths !== undefined) ort.env.wasm.wasmPaths = options.wasmPaths;
  const sessionOptions: ort.InferenceSession.SessionOptions = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
  return ortRuntime('onnxruntime-web', {
    createSession: (model) => ort.InferenceSession.create(model, sessionOptions),
    createTensor: (type, data, dims) => new ort.Tensor(type, data, dims),
  });
}
