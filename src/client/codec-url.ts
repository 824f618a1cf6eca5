/**
 * Loads a codec over HTTP: `manifest.json` and the codec's files from one base URL (the demo page
 * serves them as static assets). Every file is checked against the manifest's SHA-256.
 */
import { type Codec, type ModelRuntime, findCodec, loadCodec, parseManifest } from '../codec/index.ts';
import { LatentsightError } from './errors.ts';

export interface UrlCodecOptions {
  /** Codec id; default: the manifest's default codec. */
  id?: string;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

/**
 * Loads the codec described by `<baseUrl>/manifest.json`, its files fetched relative to it.
 *
 * @example
 * const codec = await loadCodecFromUrl('/models/', createWebRuntime({ wasmPaths: '/ort/' }))
 */
export async function loadCodecFromUrl(baseUrl: string | URL, runtime: ModelRuntime, options: UrlCodecOptions = {}): Promise<Codec> {
  const fetcher = options.fetch ?? ((input, init) => fetch(input, init));
  // A relative URL is taken relative to the page (browsers); Node needs an absolute one.
  const page = (globalThis as { location?: { href: string } }).location?.href;
  const base = new URL(baseUrl, page);
  const get = async (path: string): Promise<Response> => {
    const at = new URL(path, base);
    let res: Response;
    try {
      res = await fetcher(at, { signal: options.signal });
    } catch (e) {
      throw new LatentsightError('NETWORK_ERROR', `Cannot fetch ${at.href}: ${e instanceof Error ? e.message : String(e)}.`, { cause: e });
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new LatentsightError(`HTTP_${res.status}`, `Cannot fetch ${at.href}: HTTP ${res.status}.`, { status: res.status });
    }
    return res;
  };
  const manifest = parseManifest(await (await get('manifest.json')).text());
  return loadCodec(findCodec(manifest, options.id), {
    readFile: async (path) => new Uint8Array(await (await get(path)).arrayBuffer()),
    runtime,
  });
}
