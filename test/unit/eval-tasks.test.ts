/**
 * `latentsight eval classify|segment` on fixture images with the shipped models: the product's path
 * (TypeScript encoder, bitstream, TypeScript decoder, the task model's ONNX graph) and the metrics.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/index.ts';

const fixtures = new URL('../fixtures/', import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(new URL('../../models/manifest.json', import.meta.url), 'utf8')) as {
  models: { id: string; kind: string; input?: string; macs?: number; labels: { id: string | number; name: string }[] }[];
};
const classifier = manifest.models.find((m) => m.kind === 'classifier' && m.input === 'latent')!;
const segmenter = manifest.models.find((m) => m.kind === 'segmenter' && m.input === 'latent')!;
const out = mkdtempSync(join(tmpdir(), 'eval-tasks-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function io() {
  const captured = { out: '', err: '' };
  return { captured, stdout: { write: (s: string) => (captured.out += s) }, stderr: { write: (s: string) => (captured.err += s) } };
}

describe('latentsight eval classify', () => {
  const data = join(out, 'classify');
  beforeAll(() => {
    // Two images filed under the model's first class.
    const dir = join(data, String(classifier.labels[0].id));
    mkdirSync(dir, { recursive: true });
    for (const name of ['kodim15-37x21.png', 'kodim23-64x48.png']) copyFileSync(join(fixtures, name), join(dir, name));
  });

  it('reports top-1, top-5, bits and MACs over the folder as one JSON object', async () => {
    const cli = io();
    expect(await runCli(['eval', 'classify', '--data', data, '--json'], cli)).toBe(0);
    const report = JSON.parse(cli.captured.out);
    expect(report).toMatchObject({ task: 'classify', input: 'latent', n: 2, macs: classifier.macs, codec: 'ls-f8-q2' });
    expect([0, 0.5, 1]).toContain(report.top1);
    expect(report.top5).toBeGreaterThanOrEqual(report.top1);
    // Images are squashed to 224 x 224, as Imagenette's: 28 x 28 latents, real bitstreams.
    expect(report.bpp).toBeGreaterThan(0.05);
    expect(report.bpp).toBeLessThan(16);
  }, 60_000);

  it('refuses class folders the model has no label for', async () => {
    const bad = join(out, 'unknown-classes', 'n99999999');
    mkdirSync(bad, { recursive: true });
    copyFileSync(join(fixtures, 'kodim15-37x21.png'), join(bad, 'a.png'));
    const cli = io();
    expect(await runCli(['eval', 'classify', '--data', join(out, 'unknown-classes')], cli)).not.toBe(0);
    expect(cli.captured.err).toContain('has no class n99999999');
  });

  it('runs the RGB baseline on the original pixels (no bitstream) and on decoded ones (synthesis counted)', async () => {
    const rgb = manifest.models.find((m) => m.kind === 'classifier' && m.input === 'rgb')!;
    const codec = manifest.models.find((m) => m.id === 'ls-f8-q2')! as unknown as { compute: { synthesis_macs_per_pixel: number } };
    let cli = io();
    expect(await runCli(['eval', 'classify', '--data', data, '--input', 'rgb', '--json'], cli)).toBe(0);
    expect(JSON.parse(cli.captured.out)).toMatchObject({ input: 'rgb', n: 2, bpp: null, codec: null, macs: rgb.macs });
    cli = io();
    expect(await runCli(['eval', 'classify', '--data', data, '--input', 'decoded', '--model', 'cls-rgb', '--codec', 'ls-f8-q2', '--json'], cli)).toBe(0);
    const decoded = JSON.parse(cli.captured.out);
    expect(decoded).toMatchObject({ input: 'decoded', n: 2, codec: 'ls-f8-q2', macs: rgb.macs! + Math.round(codec.compute.synthesis_macs_per_pixel * 224 * 224) });
    expect(decoded.bpp).toBeGreaterThan(0.05);
  }, 60_000);

  it('needs a model for the input asked for, and says so', async () => {
    const cli = io();
    expect(await runCli(['eval', 'classify', '--data', data, '--input', 'decoded'], cli)).toBe(6);
    expect(cli.captured.err).toContain('No classifier on decoded input');
  });
});

describe('latentsight eval segment', () => {
  const images = join(out, 'seg-images');
  const masks = join(out, 'seg-masks');
  const road = 3;
  beforeAll(async () => {
    mkdirSync(images, { recursive: true });
    mkdirSync(masks, { recursive: true });
    copyFileSync(join(fixtures, 'kodim23-64x48.png'), join(images, 'a.png'));
    // Ground truth: every pixel is one class.
    await sharp(Buffer.alloc(64 * 48, road), { raw: { width: 64, height: 48, channels: 1 } }).png().toFile(join(masks, 'a.png'));
  });

  it('computes IoU per class, mIoU and pixel accuracy against the masks', async () => {
    const cli = io();
    expect(await runCli(['eval', 'segment', '--images', images, '--masks', masks, '--json'], cli)).toBe(0);
    const report = JSON.parse(cli.captured.out);
    expect(report).toMatchObject({ task: 'segment', input: 'latent', n: 1, codec: 'ls-f8-q2' });
    // With one true class, that class's IoU is its recall (no false positives possible), which is the
    // pixel accuracy; every other class present in the prediction has IoU 0.
    expect(report.per_class_iou[segmenter.labels[road].name]).toBeCloseTo(report.pixel_accuracy, 12);
    const present = Object.values(report.per_class_iou).filter((v) => v !== null) as number[];
    expect(report.miou).toBeCloseTo(present.reduce((s, v) => s + v, 0) / present.length, 12);
    for (const [name, iou] of Object.entries(report.per_class_iou)) if (name !== segmenter.labels[road].name && iou !== null) expect(iou).toBe(0);
  }, 60_000);

  it('refuses an image without a mask', async () => {
    copyFileSync(join(fixtures, 'kodim15-37x21.png'), join(images, 'b.png'));
    const cli = io();
    expect(await runCli(['eval', 'segment', '--images', images, '--masks', masks], cli)).not.toBe(0);
    expect(cli.captured.err).toContain('no mask named b');
    rmSync(join(images, 'b.png'));
  }, 60_000);
});
