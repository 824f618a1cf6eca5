/**
 * The demo page in real headless Chromium (Debian's `chromium`, driven by playwright-core) against
 * the real local stack (origin + `wrangler dev` serving the page as static assets): the page
 * encodes a Kodak image in the browser with onnxruntime-web (wasm), and the bitstream it produced
 * must decode, in Node and at the edge, to exactly the latents the browser's analysis transform
 * computed. With task models in models/manifest.json, the page must also show labels and a mask.
 *
 * Set DEMO_SCREENSHOT=/path.png to keep a screenshot of the finished page.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { type Browser, type Page, chromium } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readHeader } from '../../src/bitstream/index.ts';
import { type Codec, decodeBitstreamLatents, loadCodecFromDir } from '../../src/client/node.ts';
import { median } from '../../src/eval/rd.ts';
import { buildDemo } from '../../scripts/build-demo.ts';
import { type Stack, startStack } from '../../scripts/stack.ts';

const CHROMIUM = '/usr/bin/chromium';
const KODAK = fileURLToPath(new URL('../fixtures/kodim23.png', import.meta.url));
const MANIFEST = fileURLToPath(new URL('../../models/manifest.json', import.meta.url));

/** What the page exposes as `window.latentsight`, with bytes as base64 to cross the CDP boundary. */
interface PageRun {
  status: string;
  threads: number;
  image?: { width: number; height: number };
  bitstream?: string;
  latents?: string;
  encodeMs?: number;
  psnr?: number;
  jpeg?: { bytes: number; quality: number; psnr: number } | null;
  result?: {
    bpp: number;
    image: { width: number; height: number };
    results: {
      classify?: { top: { label: string; id: string; score: number }[] };
      segment?: { width: number; height: number; mask: string; classes: unknown[]; fractions: Record<string, number> };
    };
    models: Record<string, { id: string; version: string }>;
  };
  error?: { step: string; code: string; message: string };
}

/** The page's `window.latentsight` (demo/main.ts), as far as this test reads it. */
declare const window: {
  latentsight: {
    status: string;
    runs: number;
    threads: number;
    image?: { width: number; height: number };
    bitstream?: Uint8Array;
    latents?: Int16Array;
    encodeMs?: number;
    psnr?: number;
    jpeg?: PageRun['jpeg'];
    result?: unknown;
    error?: PageRun['error'];
    benchEncode(n: number): Promise<number[]>;
  };
};

/** True when the manifest has both task models for the default codec (they land after the codec). */
async function taskModelsShipped(): Promise<boolean> {
  const m = JSON.parse(await readFile(MANIFEST, 'utf8')) as { models: { kind: string; codec?: string }[] };
  return ['classifier', 'segmenter'].every((k) => m.models.some((e) => e.kind === k));
}

let stack: Stack;
let browser: Browser;
let page: Page;
let codec: Codec;
let run: PageRun;
let served: {
  home: Response;
  html: string;
  models: { status: number; codecs: string[] };
  unknown: { status: number; type: string | null };
  headersFile: { status: number; body: string };
};
const withModels = await taskModelsShipped();

beforeAll(async () => {
  await buildDemo();
  [stack, browser, codec] = await Promise.all([
    startStack(),
    chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] }),
    loadCodecFromDir(),
  ]);
  // Before the page runs: wrangler dev drops the next request after an analysis that the edge
  // refused on the stream's header without reading the body (422 NO_TASK_MODEL until task models ship).
  const home = await fetch(`${stack.edgeUrl}/`);
  const modelsRes = await fetch(`${stack.edgeUrl}/v1/models`);
  const unknownRes = await fetch(`${stack.edgeUrl}/v1/nope`);
  const headersRes = await fetch(`${stack.edgeUrl}/_headers`);
  served = {
    home,
    html: await home.text(),
    models: { status: modelsRes.status, codecs: ((await modelsRes.json()) as { codecs: { id: string }[] }).codecs.map((c) => c.id) },
    unknown: { status: unknownRes.status, type: unknownRes.headers.get('content-type') },
    headersFile: { status: headersRes.status, body: await headersRes.text() },
  };
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors: string[] = [];
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  await page.goto(`${stack.edgeUrl}/#key=${stack.apiKey}`);
  await page.setInputFiles('#file', KODAK);
  await page.waitForFunction(() => ['done', 'error'].includes(window.latentsight.status), undefined, { timeout: 170_000, polling: 250 });
  run = await page.evaluate(() => {
    const s = window.latentsight;
    const b64 = (u: Uint8Array) => {
      let bin = '';
      for (let i = 0; i < u.length; i += 0x8000) bin += String.fromCharCode(...u.subarray(i, i + 0x8000));
      return btoa(bin);
    };
    return {
      status: s.status,
      threads: s.threads,
      image: s.image,
      bitstream: s.bitstream && b64(s.bitstream),
      latents: s.latents && b64(new Uint8Array(s.latents.buffer, s.latents.byteOffset, s.latents.byteLength)),
      encodeMs: s.encodeMs,
      psnr: s.psnr,
      jpeg: s.jpeg,
      result: s.result as PageRun['result'],
      error: s.error,
    };
  });
  if (process.env.DEMO_SCREENSHOT) await page.screenshot({ path: process.env.DEMO_SCREENSHOT, fullPage: true });
  expect(consoleErrors).toEqual([]);
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await codec?.release();
});

describe('the demo page', () => {
  it('is served at / as static assets, cross-origin isolated, while the API routes still reach the Worker', () => {
    const { home, html, models, unknown, headersFile } = served;
    expect(home.status, `${html.slice(0, 400)}\n${stack.edgeLines.slice(-20).join('\n')}`).toBe(200);
    expect(home.headers.get('content-type')).toMatch(/text\/html/);
    expect(home.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    expect(home.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(html).toContain('<title>latentsight demo');
    expect(models.status).toBe(200);
    expect(models.codecs).toContain(codec.id);
    expect(unknown.status).toBe(404);
    expect(unknown.type).toBe('application/problem+json');
    // The headers file configures the assets; it is not one of them.
    expect(headersFile.body).not.toContain('Cross-Origin-Opener-Policy');
  });

  it("encodes the image in the browser into a stream that decodes in Node to exactly the browser's latents", async () => {
    expect(run.bitstream, `page error: ${JSON.stringify(run.error)}`).toBeTruthy();
    const bytes = new Uint8Array(Buffer.from(run.bitstream!, 'base64'));
    const header = readHeader(bytes);
    expect([header.width, header.height, header.modelId]).toEqual([768, 512, codec.id]);
    const { latents } = decodeBitstreamLatents(bytes, codec);
    const browserLatents = new Int16Array(new Uint8Array(Buffer.from(run.latents!, 'base64')).buffer);
    expect(browserLatents.length).toBe(header.channels * header.latentHeight * header.latentWidth);
    expect(Buffer.from(latents.buffer, latents.byteOffset, latents.byteLength).equals(Buffer.from(browserLatents.buffer))).toBe(true);
    // The reconstruction and the JPEG comparison ran too.
    expect(run.psnr).toBeGreaterThan(20);
    expect(run.jpeg?.psnr ?? Infinity).toBeGreaterThanOrEqual(run.psnr!);
  });

  it.skipIf(!withModels)('gets the top-5 labels and a mask for the browser-encoded stream, which the edge decoded (needs task models)', async () => {
    expect(run.error).toBeUndefined();
    expect(run.status).toBe('done');
    const bytes = Buffer.from(run.bitstream!, 'base64');
    const result = run.result!;
    // The edge parsed and entropy-decoded the browser's bytes: same size, same image.
    expect(result.bpp).toBeCloseTo((8 * bytes.length) / (768 * 512), 4);
    expect(result.image).toEqual({ width: 768, height: 512 });
    expect(result.results.classify?.top).toHaveLength(5);
    const mask = await sharp(Buffer.from(result.results.segment!.mask, 'base64')).metadata();
    expect([mask.width, mask.height]).toEqual([768, 512]);
    expect(await page.locator('#labels li').count()).toBe(5);
    expect(await page.locator('#legend li').count()).toBeGreaterThan(0);

    // The edge sent the origin the latents it decoded; the same models run here, in Node, on the
    // latents the browser's analysis transform produced must give the same answers (both are
    // deterministic ONNX graphs on the same CPU): the edge decoded exactly the browser's latents.
    // The models are the ones the answer names (the stack's edge asks for the int8 variants).
    const latents = new Int16Array(new Uint8Array(Buffer.from(run.latents!, 'base64')).buffer);
    const header = readHeader(new Uint8Array(bytes));
    const input = new ort.Tensor('int16', latents, [1, header.channels, header.latentHeight, header.latentWidth]);
    const manifest = JSON.parse(await readFile(MANIFEST, 'utf8')) as { models: { id: string; kind: string; codec?: string; files: { model?: { path: string } }; labels: { id: string | number }[] }[] };
    const task = { classifier: 'classify', segmenter: 'segment' } as Record<string, string>;
    const served = (kind: string) => manifest.models.find((m) => m.kind === kind && m.codec === codec.id && m.id === result.models[task[kind]].id)!;
    const run1 = async (kind: string) => {
      const entry = served(kind);
      const session = await ort.InferenceSession.create(fileURLToPath(new URL(`../../models/${entry.files.model!.path}`, import.meta.url)));
      return { entry, outputs: await session.run({ latents: input }) };
    };
    const cls = await run1('classifier');
    const classes = Array.from(cls.outputs.classes.data as BigInt64Array, Number);
    const scores = Array.from(cls.outputs.scores.data as Float32Array);
    expect(result.results.classify!.top.map((t) => t.id)).toEqual(classes.map((c) => String(cls.entry.labels[c].id)));
    result.results.classify!.top.forEach((t, i) => expect(t.score).toBeCloseTo(scores[i], 4));
    const seg = await run1('segmenter');
    const nodeMask = seg.outputs.mask.data as Uint8Array;
    const [maskH, maskW] = seg.outputs.mask.dims.slice(1);
    const counts = new Map<number, number>();
    for (let y = 0; y < 512; y++) for (let x = 0; x < 768; x++) counts.set(nodeMask[y * maskW + x], (counts.get(nodeMask[y * maskW + x]) ?? 0) + 1);
    expect(maskH).toBeGreaterThanOrEqual(512);
    seg.entry.labels.forEach((label, index) => expect(result.results.segment!.fractions[String(label.id)]).toBeCloseTo((counts.get(index) ?? 0) / (768 * 512), 6));
  });

  it('reports an API refusal on the page instead of failing silently', async () => {
    if (withModels) {
      // With models, a wrong key is the refusal to show.
      await page.fill('#key', 'ls_wrong_key_0000');
      const before = await page.evaluate(() => window.latentsight.runs);
      await page.setInputFiles('#file', KODAK);
      await page.waitForFunction((n) => window.latentsight.runs > n && ['done', 'error'].includes(window.latentsight.status), before, { timeout: 170_000, polling: 250 });
    }
    const shown = await page.evaluate(() => window.latentsight.error);
    expect(shown?.step).toBe('analyze');
    expect(shown?.code).toBe(withModels ? 'INVALID_API_KEY' : 'NO_TASK_MODEL');
    expect(await page.locator('#error').isVisible()).toBe(true);
  });

  it('measures in-browser encoding of a 768x512 image (median of 5, reported, not asserted)', async () => {
    const times = await page.evaluate(() => window.latentsight.benchEncode(5));
    expect(times).toHaveLength(5);
    console.log(`[browser] encode 768x512 on onnxruntime-web wasm, ${run.threads} thread(s): median ${Math.round(median(times))} ms of ${times.map(Math.round).join(', ')} ms; first encode in the page ${Math.round(run.encodeMs!)} ms`);
  });
});
