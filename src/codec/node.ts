/** Node entry point: the platform-free codec plus disk loading, onnxruntime-node and sharp. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Codec, loadCodec } from './codec.ts';
import { CodecError } from './errors.ts';
import { type Manifest, findCodec, parseManifest } from './manifest.ts';
import { type NodeRuntimeOptions, createNodeRuntime } from './runtime-node.ts';

export * from './index.ts';
export { encodePng, readImageFile } from './image-node.ts';
export { type NodeRuntimeOptions, createNodeRuntime } from './runtime-node.ts';

/** The repository's `models/` folder, where the export step writes. */
export const DEFAULT_MODELS_DIR = fileURLToPath(new URL('../../models/', import.meta.url));

/**
 * Reads `manifest.json` from a models folder.
 *
 * @example
 * const manifest = await readManifest('models')
 */
export async function readManifest(modelsDir: string = DEFAULT_MODELS_DIR): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(join(modelsDir, 'manifest.json'), 'utf8');
  } catch (e) {
    throw new CodecError('INVALID_MANIFEST', `Cannot read ${join(modelsDir, 'manifest.json')}: ${(e as Error).message}`, { cause: e });
  }
  return parseManifest(text);
}

/**
 * Loads a codec (the manifest's default when `id` is undefined) from a models folder on disk,
 * running on onnxruntime-node, with its earlier versions' tables: files coded before a table
 * update still decode.
 *
 * @example
 * const codec = await loadCodecFromDir('models', 'ls-f8-q3')
 */
export async function loadCodecFromDir(
  modelsDir: string = DEFAULT_MODELS_DIR,
  id?: string,
  options: NodeRuntimeOptions = {},
): Promise<Codec> {
  const entry = findCodec(await readManifest(modelsDir), id);
  return loadCodec(entry, {
    readFile: async (path) => new Uint8Array(await readFile(join(modelsDir, path))),
    runtime: createNodeRuntime(options),
    legacyTables: true,
  });
}
