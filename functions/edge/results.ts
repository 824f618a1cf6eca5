/**
 * Turns the origin's output tensors into the public result shapes: top-k labels for `classify`, a
 * palette PNG mask with per-class pixel fractions for `segment`. Anything that does not fit the
 * task model's outputs is the origin's fault (`ORIGIN_BAD_RESPONSE`, 502), never a wrong answer.
 */
import { type ClassifyResult, type SegmentResult, base64, encodePalettePng } from '../../src/tasks/index.ts';
import type { Tensor } from './kserve.ts';
import { OriginError } from './origin.ts';
import type { Label, Task, TaskModel } from './registry.ts';

/** Output tensors each task asks the origin for. */
export const TASK_OUTPUTS: Record<Task, string[]> = { classify: ['scores', 'classes'], segment: ['mask'] };

/**
 * The top-k labels from `scores` (FP32 [1, k], descending) and `classes` (INT64 [1, k]).
 *
 * @example
 * formatClassify(outputs, model) // { top: [{ label: 'tench', id: 'n01440764', score: 0.91 }, ...] }
 */
export function formatClassify(outputs: Map<string, Tensor>, model: TaskModel): ClassifyResult {
  const scores = output(outputs, 'scores', model);
  const classes = output(outputs, 'classes', model);
  const k = scores.values.length;
  if (k === 0 || classes.values.length !== k) bad(model, `scores has ${k} values and classes ${classes.values.length}`);
  const byIndex = labelIndex(model.labels);
  const top: ClassifyResult['top'] = [];
  for (let i = 0; i < k; i++) {
    const label = byIndex.get(classes.values[i]);
    const score = scores.values[i];
    if (!label) bad(model, `class ${classes.values[i]} is not one of its ${model.labels.length} labels`);
    if (!Number.isFinite(score)) bad(model, `score ${score} is not finite`);
    // FP32 carries ~7 significant digits; more would only print noise.
    top.push({ label: label.name, id: label.id, score: Number(score.toPrecision(6)) });
  }
  return { top };
}

/**
 * The mask (UINT8 [1, H, W]) as a palette PNG cropped to the image (the encoder padded it to a
 * multiple of the stride, bottom and right), with the share of each class.
 *
 * @example
 * await formatSegment(outputs, model, { width: 768, height: 512 })
 */
export async function formatSegment(outputs: Map<string, Tensor>, model: TaskModel, image: { width: number; height: number }): Promise<SegmentResult> {
  const mask = output(outputs, 'mask', model);
  if (mask.shape.length !== 3 || mask.shape[0] !== 1) bad(model, `mask has shape [${mask.shape.join(', ')}], not [1, H, W]`);
  const [, maskHeight, maskWidth] = mask.shape;
  if (maskHeight === 0 || maskWidth === 0) bad(model, 'mask is empty');
  const crop = maskHeight >= image.height && maskWidth >= image.width;
  const width = crop ? image.width : maskWidth;
  const height = crop ? image.height : maskHeight;
  const indices = new Uint8Array(width * height);
  const counts = new Float64Array(256);
  const values = mask.values;
  for (let y = 0; y < height; y++) {
    const row = y * maskWidth;
    for (let x = 0; x < width; x++) {
      const v = values[row + x] & 0xff;
      indices[y * width + x] = v;
      counts[v]++;
    }
  }
  let entries = model.labels.reduce((n, l) => Math.max(n, l.index + 1), 0);
  for (let v = 255; v >= entries; v--) if (counts[v]) entries = v + 1;
  const palette = new Uint8Array(3 * entries);
  const alpha = new Uint8Array(entries); // transparent unless a class claims the index
  const classes: SegmentResult['classes'] = [];
  const fractions: Record<string, number> = {};
  for (const label of model.labels) {
    if (label.index > 255) continue;
    const rgb = classColor(label.index);
    palette.set(rgb, 3 * label.index);
    alpha[label.index] = 255;
    classes.push({ index: label.index, id: label.id, name: label.name, color: `#${rgb.map((c) => c.toString(16).padStart(2, '0')).join('')}` });
    fractions[label.id] = Number((counts[label.index] / (width * height)).toFixed(6));
  }
  const png = await encodePalettePng({ width, height, indices, palette, alpha });
  return { width, height, classes, mask: base64(png), fractions };
}

/**
 * A distinct colour per class index: hues a golden angle apart, so neighbouring indices differ most.
 *
 * @example
 * classColor(0) // [230, 25, 77]
 */
export function classColor(index: number): [number, number, number] {
  const hue = (index * 137.508 + 345) % 360;
  const lightness = index % 2 ? 0.42 : 0.5;
  return hslToRgb(hue, 0.8, lightness);
}

function hslToRgb(h: number, s: number, l: number): [number, number, number] {
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

function labelIndex(labels: Label[]): Map<number, Label> {
  return new Map(labels.map((l) => [l.index, l]));
}

function output(outputs: Map<string, Tensor>, name: string, model: TaskModel): Tensor {
  const tensor = outputs.get(name);
  if (!tensor) bad(model, `output ${name} is missing`);
  return tensor;
}

function bad(model: TaskModel, why: string): never {
  throw new OriginError('ORIGIN_BAD_RESPONSE', `${model.kind} ${model.id}@${model.version}: ${why}`);
}
