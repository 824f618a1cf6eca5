/**
 * `npm run bench -- storage`: what a folder of images costs to store as bitstreams of each shipped
 * codec, against its source files (Imagenette's JPEGs) and against lossless PNG.
 *
 * Input: `imagenette/train` of $LATENTSIGHT_DATA (default ../shared/data), every image, or the first
 * BENCH_STORAGE_LIMIT of them (spread over the classes); every codec of the manifest, decode-only ones
 * included (stored streams of them exist), or those BENCH_STORAGE_CODECS names (comma-separated). Each image goes through the real encoder
 * (src/codec on onnxruntime-node); PNG is sharp's at compression level 9. Prints bytes in all and per
 * image, and the ratios.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { encodeImage, loadCodecFromDir, readImageFile, readManifest } from '../src/codec/node.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const DATA = process.env.LATENTSIGHT_DATA ?? join(REPO, '../shared/data');

export async function benchStorage(): Promise<Record<string, unknown>> {
  const root = join(DATA, 'imagenette', 'train');
  let files: string[];
  try {
    files = [];
    for (const c of (await readdir(root)).sort()) for (const f of (await readdir(join(root, c))).sort()) files.push(join(root, c, f));
  } catch {
    return { bench: 'storage', skipped: `no ${root}` };
  }
  const limit = Number(process.env.BENCH_STORAGE_LIMIT ?? 0);
  if (limit > 0) files = files.filter((_, i) => i % Math.max(1, Math.floor(files.length / limit)) === 0).slice(0, limit);
  const models = join(REPO, 'models');
  let ids = (await readManifest(models)).models.filter((m) => m.kind === 'codec').map((m) => m.id);
  const only = process.env.BENCH_STORAGE_CODECS?.split(',').filter(Boolean);
  if (only?.length) {
    const unknown = only.filter((id) => !ids.includes(id));
    if (unknown.length) throw new Error(`BENCH_STORAGE_CODECS: no codec ${unknown.join(', ')} in the manifest (known: ${ids.join(', ')})`);
    ids = only;
  }
  const codecs = await Promise.all(ids.map((id) => loadCodecFromDir(models, id)));
  const totals: Record<string, number> = { source: 0, png: 0, ...Object.fromEntries(ids.map((id) => [id, 0])) };
  let pixels = 0;
  const started = performance.now();
  for (const [i, file] of files.entries()) {
    totals.source += (await stat(file)).size;
    const image = await readImageFile(file);
    pixels += image.width * image.height;
    totals.png += (await sharp(await readFile(file)).png({ compressionLevel: 9 }).toBuffer()).byteLength;
    for (const codec of codecs) totals[codec.id] += (await encodeImage(image, codec, { allowDecodeOnly: true })).byteLength;
    if ((i + 1) % 500 === 0) process.stderr.write(`storage: ${i + 1}/${files.length}\n`);
  }
  for (const c of codecs) await c.release();
  const mb = (b: number) => Math.round(b / 1e4) / 100;
  return {
    bench: 'storage',
    folder: root,
    images: files.length,
    megabytes: Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, mb(v)])),
    bpp: Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, Math.round(((8 * v) / pixels) * 1000) / 1000])),
    ratio_vs_source: Object.fromEntries(ids.map((id) => [id, Math.round((totals.source / totals[id]) * 100) / 100])),
    ratio_vs_png: Object.fromEntries(ids.map((id) => [id, Math.round((totals.png / totals[id]) * 100) / 100])),
    seconds: Math.round((performance.now() - started) / 1000),
  };
}
