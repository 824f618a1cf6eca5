/**
 * Node entry point of the SDK: everything in `index.ts` plus codecs from a models folder on disk
 * (onnxruntime-node) and image files through sharp.
 *
 * @example
 * import { createClient, loadCodecFromDir, readImageFile } from 'latentsight/src/client/node.ts'
 * const client = createClient({ endpoint, apiKey, codec: await loadCodecFromDir() })
 * const { results } = await client.analyze(await readImageFile('photo.jpg'))
 */
export * from './index.ts';
export { DEFAULT_MODELS_DIR, encodePng, loadCodecFromDir, readImageFile, readManifest } from '../codec/node.ts';
