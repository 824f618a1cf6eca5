/**
 * Browser entry point of the SDK: everything in `index.ts` plus the onnxruntime-web (wasm) runtime
 * and a one-call codec loader for pages that serve the model files.
 */
import type { Codec } from '../codec/index.ts';
import { type WebRuntimeOptions, createWebRuntime } from '../codec/runtime-web.ts';
import { type UrlCodecOptions, loadCodecFromUrl } from './codec-url.ts';

export * from './index.ts';
export { type WebRuntimeOptions, createWebRuntime } from '../codec/runtime-web.ts';

/**
 * Loads the codec at `modelsUrl` (its `manifest.json` and files) on onnxruntime-web.
 *
 * @example
 * const codec = await loadWebCodec('/models/', { wasmPaths: '/ort/', threads: navigator.hardwareConcurrency })
 */
export function loadWebCodec(modelsUrl: string | URL, runtime: WebRuntimeOptions = {}, options: UrlCodecOptions = {}): Promise<Codec> {
  return loadCodecFromUrl(modelsUrl, createWebRuntime(runtime), options);
}
