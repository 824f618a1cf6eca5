/** A dense tensor: row-major data and its dimensions. */
export interface Tensor {
  data: Float32Array | Int16Array | Int32Array;
  dims: readonly number[];
}

/** A loaded model: runs with named input tensors, returns named output tensors. */
export interface ModelSession {
  run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>>;
  release(): Promise<void>;
}

/**
 * What the codec needs from an inference engine: load an ONNX model from its bytes. Adapters:
 * `runtime-node.ts` (onnxruntime-node, native CPU) and `runtime-web.ts` (onnxruntime-web, wasm).
 *
 * @example
 * const session = await runtime.load(bytes)
 * const { latents } = await session.run({ image: { data, dims: [1, 3, 512, 768] } })
 */
export interface ModelRuntime {
  /** Short name for messages and benchmarks, e.g. `onnxruntime-node`. */
  readonly name: string;
  load(model: Uint8Array): Promise<ModelSession>;
}
