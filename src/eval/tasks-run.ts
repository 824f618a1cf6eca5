/**
 * Task evaluation through the product's own path: image -> TypeScript encoder -> bitstream bytes ->
 * TypeScript decoder -> the task model's ONNX graph on onnxruntime-node, exactly what a client, the
 * edge and the origin do in turn. `latent` feeds the decoded latents; `decoded` feeds the synthesis
 * transform's reconstruction (equal bits); `rgb` feeds the original pixels (no codec).
 */
import { readdir } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { type Codec, decodeBitstreamLatents, decodeImage, encodeImage, readImageFile } from '../codec/node.ts';
import type { DecodedImage } from '../codec/index.ts';

export const TASK_INPUTS = ['latent', 'rgb', 'decoded'] as const;
export type TaskInput = (typeof TASK_INPUTS)[number];

/** The manifest fields a task model needs here. */
export interface TaskModelEntry {
  id: string;
  version: string;
  kind: 'classifier' | 'segmenter';
  input: TaskInput;
  codec?: string | null;
  files: { model: { path: string } };
  labels: { id: string | number; name: string }[];
  void_index?: number;
  macs?: number;
  macs_path?: number | null;
}

/** Segmenters' MACs are counted at 480x368 (CamVid padded to a multiple of 8), `macs_at` says so. */
const SEGMENT_MACS_PIXELS = 480 * 368;

/**
 * MACs per image of the whole path after the client's encoder: the model's, plus the codec's
 * synthesis for `decoded` input. A model trained on decoded pixels records that sum
 * (`macs_path`); an RGB model fed decoded pixels gets the synthesis from the codec's `compute`
 * entry (MACs per pixel). Null where either is unknown.
 */
export function pathMacs(entry: TaskModelEntry, input: TaskInput, codec: Codec | undefined, pixels: number): number | null {
  if (input !== 'decoded') return entry.macs ?? null;
  if (entry.input === 'decoded') return entry.macs_path ?? null;
  const perPixel = (codec?.entry.compute as { synthesis_macs_per_pixel?: number } | undefined)?.synthesis_macs_per_pixel;
  return entry.macs === undefined || perPixel === undefined ? null : entry.macs + Math.round(perPixel * pixels);
}

export interface ClassifyReport {
  task: 'classify';
  input: TaskInput;
  n: number;
  /** Mean bits per pixel of the bitstreams (null for `rgb`). */
  bpp: number | null;
  /** Per image for the whole path after the client's encoder (synthesis included for `decoded`). */
  macs: number | null;
  top1: number;
  top5: number;
  model: string;
  codec: string | null;
}

export interface SegmentReport {
  task: 'segment';
  input: TaskInput;
  n: number;
  bpp: number | null;
  macs: number | null;
  miou: number;
  pixel_accuracy: number;
  per_class_iou: Record<string, number | null>;
  model: string;
  codec: string | null;
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.ppm', '.tif', '.tiff', '.bmp', '.JPEG']);

/** Images of a folder, sorted by name. */
async function imagesIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => IMAGE_EXTENSIONS.has(extname(f)) || IMAGE_EXTENSIONS.has(extname(f).toLowerCase())).sort().map((f) => join(dir, f));
}

/** What the model gets for one image, and the bits that carried it. */
async function modelInput(image: DecodedImage, input: TaskInput, codec: Codec | undefined): Promise<{ feed: ort.Tensor; bytes: number | null }> {
  if (input === 'rgb') return { feed: planar(image), bytes: null };
  if (!codec) throw new Error(`--input ${input} needs a codec`);
  const bitstream = await encodeImage(image, codec, { allowDecodeOnly: true });
  if (input === 'decoded') return { feed: planar(await decodeImage(bitstream, codec)), bytes: bitstream.byteLength };
  const { header, latents } = decodeBitstreamLatents(bitstream, codec);
  return { feed: new ort.Tensor('int16', latents, [1, header.channels, header.latentHeight, header.latentWidth]), bytes: bitstream.byteLength };
}

/** RGB bytes -> float32 [1, 3, H, W] in [0, 1]. */
function planar(image: DecodedImage): ort.Tensor {
  const { width, height, data } = image;
  const n = width * height;
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[c * n + i] = data[3 * i + c] / 255;
  return new ort.Tensor('float32', out, [1, 3, height, width]);
}

/** The image at `side` x `side` (squashed, as Imagenette's images are), RGB. */
async function readSquare(path: string, side: number): Promise<DecodedImage> {
  const image = await readImageFile(path);
  if (image.width === side && image.height === side) return image;
  const { data, info } = await sharp(path).removeAlpha().resize(side, side, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

/**
 * Top-1 and top-5 over a folder with one subfolder per class, named by the class id of the model's
 * labels (Imagenette's wnids). Classes the model does not know are an error, not skipped.
 *
 * @example
 * await evalClassify('../shared/data/imagenette/val', entry, 'models/cls-latent-ls-f8-q2/classifier.onnx', 'latent', codec)
 */
export async function evalClassify(
  dir: string,
  entry: TaskModelEntry,
  modelPath: string,
  input: TaskInput,
  codec: Codec | undefined,
  options: { limit?: number; progress?: (done: number, total: number) => void } = {},
): Promise<ClassifyReport> {
  const index = new Map(entry.labels.map((l, i) => [String(l.id), i]));
  const classes = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  if (!classes.length) throw new Error(`${dir} has no class folders`);
  const unknown = classes.filter((c) => !index.has(c));
  if (unknown.length) throw new Error(`${entry.id} has no class ${unknown.slice(0, 3).join(', ')}${unknown.length > 3 ? ', ...' : ''} (folder names must be label ids)`);
  let items: { path: string; label: number }[] = [];
  for (const c of classes) for (const path of await imagesIn(join(dir, c))) items.push({ path, label: index.get(c)! });
  if (options.limit !== undefined) items = items.filter((_, i) => i % Math.max(1, Math.floor(items.length / options.limit!)) === 0).slice(0, options.limit);
  const session = await ort.InferenceSession.create(modelPath);
  let top1 = 0;
  let top5 = 0;
  let bits = 0;
  let pixels = 0;
  for (const [i, item] of items.entries()) {
    const image = await readSquare(item.path, 224);
    const { feed, bytes } = await modelInput(image, input, codec);
    const out = await session.run({ [session.inputNames[0]]: feed });
    const predicted = Array.from(out.classes.data as BigInt64Array, Number);
    if (predicted[0] === item.label) top1++;
    if (predicted.slice(0, 5).includes(item.label)) top5++;
    if (bytes !== null) {
      bits += 8 * bytes;
      pixels += image.width * image.height;
    }
    options.progress?.(i + 1, items.length);
  }
  await session.release();
  const n = items.length;
  return {
    task: 'classify',
    input,
    n,
    bpp: pixels ? bits / pixels : null,
    macs: pathMacs(entry, input, codec, 224 * 224),
    top1: top1 / n,
    top5: top5 / n,
    model: `${entry.id}@${entry.version}`,
    codec: input === 'rgb' ? null : (codec?.id ?? null),
  };
}

/**
 * mIoU (over the classes, from the confusion of the whole set), pixel accuracy and per-class IoU,
 * the void class ignored. Masks are matched to images by base name; a missing mask is an error.
 *
 * @example
 * await evalSegment('../shared/data/camvid/val', '../shared/data/camvid/valannot', entry, path, 'latent', codec)
 */
export async function evalSegment(
  imagesDir: string,
  masksDir: string,
  entry: TaskModelEntry,
  modelPath: string,
  input: TaskInput,
  codec: Codec | undefined,
  options: { limit?: number; progress?: (done: number, total: number) => void } = {},
): Promise<SegmentReport> {
  const classes = entry.labels.length;
  const voidIndex = entry.void_index ?? 255;
  const masks = new Map((await imagesIn(masksDir)).map((p) => [stem(p), p]));
  let images = await imagesIn(imagesDir);
  if (options.limit !== undefined) images = images.slice(0, options.limit);
  if (!images.length) throw new Error(`no images in ${imagesDir}`);
  const session = await ort.InferenceSession.create(modelPath);
  const confusion = new Float64Array(classes * classes);
  let bits = 0;
  let pixels = 0;
  for (const [i, path] of images.entries()) {
    const maskPath = masks.get(stem(path));
    if (!maskPath) throw new Error(`no mask named ${stem(path)}.* in ${masksDir}`);
    const image = await readImageFile(path);
    const truth = await sharp(maskPath).raw().toBuffer({ resolveWithObject: true });
    if (truth.info.width !== image.width || truth.info.height !== image.height) throw new Error(`${maskPath} is ${truth.info.width}x${truth.info.height}, its image ${image.width}x${image.height}`);
    let feedImage = image;
    if (input !== 'latent') {
      // Pixel models take sides that are multiples of 8, as the codec pads them: edge replication.
      const pad = (s: number) => Math.ceil(s / 8) * 8 - s;
      const { data, info } = await sharp(Buffer.from(image.data), { raw: { width: image.width, height: image.height, channels: 3 } })
        .extend({ bottom: pad(image.height), right: pad(image.width), extendWith: 'copy' })
        .raw()
        .toBuffer({ resolveWithObject: true });
      feedImage = { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
    }
    const { feed, bytes } = await modelInput(feedImage, input, codec);
    const out = await session.run({ [session.inputNames[0]]: feed });
    const mask = out.mask.data as Uint8Array;
    const maskWidth = out.mask.dims[2];
    const step = truth.info.channels;
    for (let y = 0; y < image.height; y++) {
      for (let x = 0; x < image.width; x++) {
        const t = truth.data[(y * image.width + x) * step];
        if (t === voidIndex || t >= classes) continue;
        const p = mask[y * maskWidth + x];
        if (p < classes) confusion[t * classes + p]++;
      }
    }
    if (bytes !== null) {
      bits += 8 * bytes;
      pixels += image.width * image.height;
    }
    options.progress?.(i + 1, images.length);
  }
  await session.release();
  const perClass: Record<string, number | null> = {};
  const ious: number[] = [];
  let correct = 0;
  let total = 0;
  for (let c = 0; c < classes; c++) {
    let row = 0;
    let column = 0;
    for (let k = 0; k < classes; k++) {
      row += confusion[c * classes + k];
      column += confusion[k * classes + c];
    }
    const tp = confusion[c * classes + c];
    const union = row + column - tp;
    correct += tp;
    total += row;
    perClass[entry.labels[c].name] = union > 0 ? tp / union : null;
    if (union > 0) ious.push(tp / union);
  }
  return {
    task: 'segment',
    input,
    n: images.length,
    bpp: pixels ? bits / pixels : null,
    macs: pathMacs(entry, input, codec, SEGMENT_MACS_PIXELS),
    miou: ious.reduce((s, v) => s + v, 0) / ious.length,
    pixel_accuracy: total ? correct / total : 0,
    per_class_iou: perClass,
    model: `${entry.id}@${entry.version}`,
    codec: input === 'rgb' ? null : (codec?.id ?? null),
  };
}

function stem(path: string): string {
  const name = basename(path);
  return name.slice(0, name.length - extname(name).length);
}
