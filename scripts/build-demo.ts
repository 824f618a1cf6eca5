/**
 * Builds the demo page that the edge serves at `/` as Workers static assets (wrangler.toml
 * `[assets]`) into `dist/demo/` (git-ignored):
 *
 *   index.html, style.css     from demo/
 *   app.js                    demo/main.ts bundled by esbuild for browsers (the SDK, the codec,
 *                             onnxruntime-web's wasm flavour)
 *   ort/                      onnxruntime-web's wasm runtime (glue .mjs + .wasm), loaded by app.js
 *   models/                   a manifest with the codecs only and their analysis, synthesis and
 *                             table files (the page checks each file's SHA-256 against it)
 *   samples/kodim23.png       an image to try without one of your own
 *   _headers                  cross-origin isolation, so that the wasm runtime may use threads
 *
 * `npm start` and `npm test` run it first (wrangler reads the folder). Usage: `npm run build:demo`.
 */
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const REPO = fileURLToPath(new URL('../', import.meta.url));
/** The assets folder named by wrangler.toml's `[assets] directory`. */
export const DEMO_DIST = join(REPO, 'dist', 'demo');
const ORT_DIST = dirname(createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
/** The runtime files app.js loads at run time: the threaded SIMD wasm build and its glue. */
const ORT_FILES = ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];

interface ManifestEntry {
  id: string;
  kind: string;
  files?: Record<string, { path: string }>;
  decode_only?: unknown;
}

/** Copies `from` to `to` unless `to` already has its size and is not older (the wasm is 14 MB). */
async function copyIfChanged(from: string, to: string): Promise<void> {
  const [a, b] = await Promise.all([stat(from), stat(to).catch(() => undefined)]);
  if (b && b.size === a.size && b.mtimeMs >= a.mtimeMs) return;
  await mkdir(dirname(to), { recursive: true });
  await copyFile(from, to);
}

/**
 * Writes `to` unless it already holds exactly `bytes`: `wrangler dev` watches the assets folder and
 * reloads on every write, dropping the requests in flight, so a rebuild that changes nothing (as
 * `npm start` and the tests run it while another stack is up) must write nothing.
 */
async function writeIfChanged(to: string, bytes: Uint8Array | string): Promise<void> {
  const data = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  const old = await readFile(to).catch(() => undefined);
  if (old && Buffer.compare(old, data) === 0) return;
  await mkdir(dirname(to), { recursive: true });
  await writeFile(to, data);
}

/**
 * Builds `dist/demo/` and returns its path. It updates the folder in place, never removing it and
 * never rewriting an unchanged file: `wrangler dev` and the workers tests may be reading it while a
 * test builds it again.
 *
 * @example
 * await buildDemo() // '/…/dist/demo'
 */
export async function buildDemo(): Promise<string> {
  await mkdir(DEMO_DIST, { recursive: true });

  const bundle = await build({
    entryPoints: [join(REPO, 'demo', 'main.ts')],
    outfile: join(DEMO_DIST, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    // onnxruntime-web's wasm-only flavour, with its glue kept out of the bundle and loaded from
    // `wasmPaths` (ort/): worker threads are then started from that file, not from app.js.
    alias: { 'onnxruntime-web': 'onnxruntime-web/wasm' },
    conditions: ['onnxruntime-web-use-extern-wasm'],
    logLevel: 'warning',
    write: false,
  });
  for (const out of bundle.outputFiles) await writeIfChanged(out.path, out.contents);
  for (const f of ['index.html', 'style.css']) await copyIfChanged(join(REPO, 'demo', f), join(DEMO_DIST, f));
  for (const f of ORT_FILES) await copyIfChanged(join(ORT_DIST, f), join(DEMO_DIST, 'ort', f));
  await copyIfChanged(join(REPO, 'test', 'fixtures', 'kodim23.png'), join(DEMO_DIST, 'samples', 'kodim23.png'));

  // Only the codecs that encode: task models run at the origin, never in the page, and the page
  // decodes only what it encoded, so a decode-only codec would be dead weight.
  const manifest = JSON.parse(await readFile(join(REPO, 'models', 'manifest.json'), 'utf8')) as { models: ManifestEntry[] };
  const codecs = manifest.models.filter((m) => m.kind === 'codec' && !m.decode_only);
  for (const codec of codecs) {
    for (const file of Object.values(codec.files ?? {})) {
      await copyIfChanged(join(REPO, 'models', file.path), join(DEMO_DIST, 'models', file.path));
    }
  }
  await writeIfChanged(join(DEMO_DIST, 'models', 'manifest.json'), JSON.stringify({ ...manifest, models: codecs }, null, 2));

  // COOP + COEP make the page cross-origin isolated, which SharedArrayBuffer (wasm threads) needs.
  await writeIfChanged(
    join(DEMO_DIST, '_headers'),
    ['/*', '  Cross-Origin-Opener-Policy: same-origin', '  Cross-Origin-Embedder-Policy: require-corp', '  X-Content-Type-Options: nosniff', ''].join('\n'),
  );
  return DEMO_DIST;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = performance.now();
  buildDemo().then(
    (dir) => process.stdout.write(`[build-demo] ${dir} in ${Math.round(performance.now() - started)} ms\n`),
    (e: unknown) => {
      process.stderr.write(`[build-demo] failed: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
