/**
 * The demo page: an image is encoded here by the learned codec (onnxruntime-web, wasm), shown
 * beside its reconstruction and compared with a JPEG of equal PSNR; the bitstream alone goes to
 * POST /v1/analyze, whose labels and mask are drawn over the image.
 *
 * `window.latentsight` exposes the last run (bitstream, the latents the analysis transform
 * produced, timings, result) for the browser test; nothing on the page depends on it.
 */
import {
  type AnalyzeResult,
  type Codec,
  LatentsightError,
  type ModelSession,
  type RgbImage,
  type SegmentResult,
  createClient,
  decodeImage,
  encodeImage,
  loadWebCodec,
  psnr,
} from '../src/client/web.ts';

type Step = 'codec' | 'encode' | 'decode' | 'jpeg' | 'analyze';

/** What the page did last; read by test/e2e/browser.test.ts. */
interface DemoState {
  status: 'idle' | 'busy' | 'done' | 'error';
  /** Runs started so far: a test waits for its own run, not the previous one's status. */
  runs: number;
  threads: number;
  image?: { width: number; height: number };
  bitstream?: Uint8Array;
  /** The analysis transform's integer latents for the last encode (C x H x W). */
  latents?: Int16Array;
  encodeMs?: number;
  psnr?: number;
  jpeg?: { bytes: number; quality: number; psnr: number } | null;
  result?: AnalyzeResult;
  error?: { step: Step; code: string; message: string };
  /** Encodes the current image `n` more times; returns each encode's milliseconds. */
  benchEncode(n: number): Promise<number[]>;
}

declare global {
  interface Window {
    latentsight: DemoState;
  }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const MAX_SIDE = 4096;
const threads = globalThis.crossOriginIsolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
const state: DemoState = { status: 'idle', runs: 0, threads, benchEncode };
window.latentsight = state;

let codecPromise: Promise<Codec> | undefined;
let current: RgbImage | undefined;
let runId = 0;

// --- small helpers -------------------------------------------------------------------------

function formatBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

function setStep(step: Step, s: 'busy' | 'done' | 'failed' | '', detail = ''): void {
  const li = document.querySelector<HTMLElement>(`#steps [data-step="${step}"]`)!;
  li.dataset.state = s;
  li.querySelector('.t')?.remove();
  if (detail) li.insertAdjacentHTML('beforeend', `<span class="t">${detail}</span>`);
}

function showError(step: Step, e: unknown): void {
  const box = $('error');
  const code = e instanceof LatentsightError ? e.code : e instanceof Error && 'code' in e ? String(e.code) : 'ERROR';
  let message = e instanceof Error ? e.message : String(e);
  if (e instanceof LatentsightError && e.status === 401) message += ' Paste the dev API key that npm start printed.';
  if (code === 'NO_TASK_MODEL') message += ' The encoding above still worked: only the analysis needs trained task models.';
  state.error = { step, code, message };
  box.replaceChildren();
  const strong = document.createElement('strong');
  strong.textContent = step === 'analyze' ? 'The analysis failed. ' : `The ${step} step failed. `;
  const text = document.createElement('span');
  text.textContent = message;
  const c = document.createElement('code');
  c.textContent = code;
  box.append(strong, text, ' ', c);
  box.hidden = false;
  setStep(step, 'failed');
}

function drawTo(canvas: HTMLCanvasElement, image: RgbImage): void {
  canvas.width = image.width;
  canvas.height = image.height;
  const rgba = new Uint8ClampedArray(image.width * image.height * 4);
  const bpp = image.data.length / (image.width * image.height);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += bpp) {
    rgba[i] = image.data[j];
    rgba[i + 1] = image.data[j + 1];
    rgba[i + 2] = image.data[j + 2];
    rgba[i + 3] = 255;
  }
  canvas.getContext('2d')!.putImageData(new ImageData(rgba, image.width, image.height), 0, 0);
}

async function pixelsOf(source: Blob): Promise<RgbImage> {
  const bitmap = await createImageBitmap(source, { imageOrientation: 'from-image' });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d')!;
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const { data, width, height } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  return { data, width, height };
}

/** The codec, loaded once; its analysis session reports the latents of every encode. */
function codec(): Promise<Codec> {
  codecPromise ??= loadWebCodec('/models/', { wasmPaths: '/ort/', threads }).then(async (c) => {
    await Promise.all([c.analysis(), c.synthesis()]); // load both models before the first timing
    return capturingLatents(c);
  });
  codecPromise.catch(() => (codecPromise = undefined));
  return codecPromise;
}

function capturingLatents(c: Codec): Codec {
  return {
    ...c,
    analysis: async (): Promise<ModelSession> => {
      const session = await c.analysis();
      return {
        async run(feeds) {
          const out = await session.run(feeds);
          const l = out.latents?.data;
          if (l instanceof Int16Array || l instanceof Int32Array) state.latents = Int16Array.from(l);
          return out;
        },
        release: () => session.release(),
      };
    },
  };
}

/** The smallest canvas JPEG (quality 1..100, by bisection) whose PSNR reaches `target`. */
async function jpegAtPsnr(canvas: HTMLCanvasElement, original: RgbImage, target: number) {
  let lo = 1, hi = 100;
  let best: { bytes: number; quality: number; psnr: number } | null = null;
  while (lo <= hi) {
    const q = (lo + hi) >> 1;
    const blob = await new Promise<Blob>((ok, fail) => canvas.toBlob((b) => (b ? ok(b) : fail(new Error('the browser cannot encode JPEG'))), 'image/jpeg', q / 100));
    const p = psnr(original, await pixelsOf(blob));
    if (p >= target) {
      best = { bytes: blob.size, quality: q, psnr: p };
      hi = q - 1;
    } else {
      lo = q + 1;
    }
  }
  return best;
}

// --- the run -------------------------------------------------------------------------------

async function run(file: Blob, name: string): Promise<void> {
  const id = ++runId;
  const stale = () => id !== runId;
  Object.assign(state, { status: 'busy', runs: id, bitstream: undefined, latents: undefined, result: undefined, error: undefined, jpeg: undefined, psnr: undefined, encodeMs: undefined });
  $('error').hidden = true;
  for (const s of ['codec', 'encode', 'decode', 'jpeg', 'analyze'] as Step[]) setStep(s, '');
  $('results').hidden = true;
  $('sizes').hidden = true;
  let step: Step = 'codec';
  try {
    const image = await pixelsOf(file).catch((e) => {
      throw new Error(`Cannot read ${name} as an image (${e instanceof Error ? e.message : e}).`);
    });
    if (image.width > MAX_SIDE || image.height > MAX_SIDE) throw new Error(`The image is ${image.width}x${image.height}; the codec takes at most ${MAX_SIDE} px a side.`);
    current = image;
    state.image = { width: image.width, height: image.height };
    drawTo($('original'), image);
    $('orig-meta').textContent = `${image.width}×${image.height} · ${formatBytes(file.size)} ${file.type.replace('image/', '').toUpperCase()}`;
    $('recon-meta').textContent = '';
    $('images').hidden = false;

    setStep('codec', 'busy');
    const c = await codec();
    setStep('codec', 'done', `${threads} thread${threads > 1 ? 's' : ''}`);

    step = 'encode';
    setStep('encode', 'busy');
    const t0 = performance.now();
    const bytes = await encodeImage(image, c);
    const encodeMs = performance.now() - t0;
    if (stale()) return;
    Object.assign(state, { bitstream: bytes, encodeMs });
    setStep('encode', 'done', `${Math.round(encodeMs)} ms`);

    // The analysis goes out now and runs while the page reconstructs and measures JPEG.
    const analysis = analyze(bytes).then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e }),
    );

    step = 'decode';
    setStep('decode', 'busy');
    const t1 = performance.now();
    const decoded = await decodeImage(bytes, c);
    const quality = psnr(image, decoded);
    state.psnr = quality;
    drawTo($('reconstruction'), decoded);
    $('recon-meta').textContent = `PSNR ${quality.toFixed(2)} dB`;
    setStep('decode', 'done', `${Math.round(performance.now() - t1)} ms`);

    step = 'jpeg';
    setStep('jpeg', 'busy');
    const jpeg = await jpegAtPsnr($('original'), image, quality);
    state.jpeg = jpeg;
    showSizes(bytes.length, image, quality, jpeg);
    setStep('jpeg', 'done', jpeg ? `q${jpeg.quality}` : '');

    step = 'analyze';
    setStep('analyze', 'busy');
    const outcome = await analysis;
    if (stale()) return;
    if (!outcome.ok) throw outcome.e;
    state.result = outcome.r;
    await showResults(outcome.r);
    setStep('analyze', 'done', `${Math.round(outcome.r.timings_ms.total ?? 0)} ms at the edge, cache ${outcome.r.cache}`);
    state.status = 'done';
  } catch (e) {
    if (stale()) return;
    showError(step, e);
    state.status = 'error';
  }
}

function analyze(bytes: Uint8Array): Promise<AnalyzeResult> {
  const apiKey = $<HTMLInputElement>('key').value.trim();
  if (!apiKey) return Promise.reject(new LatentsightError('MISSING_API_KEY', 'Enter an API key above to analyse the bitstream.', { status: 401 }));
  return createClient({ endpoint: location.origin, apiKey }).analyze(bytes);
}

function showSizes(bytes: number, image: RgbImage, quality: number, jpeg: { bytes: number; quality: number; psnr: number } | null): void {
  const pixels = image.width * image.height;
  $('ours-bytes').textContent = formatBytes(bytes);
  $('ours-detail').textContent = `${((8 * bytes) / pixels).toFixed(3)} bpp · PSNR ${quality.toFixed(2)} dB`;
  const ratio = $('ratio');
  if (jpeg) {
    $('jpeg-bytes').textContent = formatBytes(jpeg.bytes);
    $('jpeg-detail').textContent = `${((8 * jpeg.bytes) / pixels).toFixed(3)} bpp · quality ${jpeg.quality} · PSNR ${jpeg.psnr.toFixed(2)} dB`;
    const r = bytes / jpeg.bytes;
    ratio.textContent = r <= 1 ? `${((1 - r) * 100).toFixed(0)}% smaller` : `${((r - 1) * 100).toFixed(0)}% larger`;
    ratio.className = `big ${r <= 1 ? 'good' : 'bad'}`;
    $('ratio-detail').textContent = `than this browser's JPEG at equal PSNR`;
  } else {
    $('jpeg-bytes').textContent = 'n/a';
    $('jpeg-detail').textContent = 'Even quality 100 stays below this PSNR.';
    ratio.textContent = 'smaller';
    ratio.className = 'big good';
    $('ratio-detail').textContent = 'than any JPEG of equal PSNR';
  }
  $('sizes').hidden = false;
}

let maskImage: HTMLImageElement | undefined;

async function showResults(r: AnalyzeResult): Promise<void> {
  const list = $('labels');
  list.replaceChildren();
  const top = r.results.classify?.top ?? [];
  for (const t of top.slice(0, 5)) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.textContent = t.label;
    const score = document.createElement('span');
    score.className = 'score';
    score.textContent = `${(t.score * 100).toFixed(1)}%`;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.innerHTML = `<span style="width:${Math.max(1, t.score * 100).toFixed(1)}%"></span>`;
    li.append(name, score, bar);
    list.append(li);
  }
  if (!top.length) list.innerHTML = '<li>Not requested.</li>';
  $('labels-meta').textContent = r.models.classify ? `${r.models.classify.id} ${r.models.classify.version}, on latents` : '';

  const seg = r.results.segment;
  maskImage = undefined;
  if (seg) {
    maskImage = new Image();
    maskImage.src = `data:image/png;base64,${seg.mask}`;
    await maskImage.decode();
    showLegend(seg);
    $('segment-meta').textContent = `${r.models.segment?.id ?? ''} ${r.models.segment?.version ?? ''}, ${seg.width}×${seg.height} mask`;
  }
  drawOverlay();
  $('results').hidden = false;
}

function showLegend(seg: SegmentResult): void {
  const legend = $('legend');
  legend.replaceChildren();
  const classes = [...seg.classes].sort((a, b) => (seg.fractions[b.id] ?? 0) - (seg.fractions[a.id] ?? 0));
  for (const c of classes) {
    const share = seg.fractions[c.id] ?? 0;
    if (share === 0) continue;
    const li = document.createElement('li');
    li.innerHTML = `<span class="swatch" style="background:${c.color}"></span>`;
    const name = document.createElement('span');
    name.textContent = c.name;
    const s = document.createElement('span');
    s.className = 'share';
    s.textContent = `${(share * 100).toFixed(1)}%`;
    li.append(name, s);
    legend.append(li);
  }
}

function drawOverlay(): void {
  const canvas = $<HTMLCanvasElement>('overlay');
  const original = $<HTMLCanvasElement>('original');
  canvas.width = original.width;
  canvas.height = original.height;
  const ctx = canvas.getContext('2d')!;
  ctx.drawImage(original, 0, 0);
  if (maskImage) {
    ctx.globalAlpha = Number($<HTMLInputElement>('opacity').value) / 100;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(maskImage, 0, 0, canvas.width, canvas.height);
    ctx.globalAlpha = 1;
  }
}

async function benchEncode(n: number): Promise<number[]> {
  if (!current) throw new Error('no image yet');
  const c = await codec();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await encodeImage(current, c);
    times.push(performance.now() - t);
  }
  return times;
}

// --- wiring --------------------------------------------------------------------------------

const keyInput = $<HTMLInputElement>('key');
const fromFragment = new URLSearchParams(location.hash.slice(1)).get('key');
if (fromFragment) keyInput.value = fromFragment;

$<HTMLInputElement>('file').addEventListener('change', (e) => {
  const input = e.target as HTMLInputElement;
  const file = input.files?.[0];
  // Cleared so that choosing the same file again (say, after fixing the key) runs again.
  input.value = '';
  if (file) void run(file, file.name);
});
const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const file = e.dataTransfer?.files[0];
  if (file) void run(file, file.name);
});
drop.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' || e.key === ' ') $('file').click();
});
$('sample').addEventListener('click', async () => {
  const res = await fetch('/samples/kodim23.png');
  void run(await res.blob(), 'kodim23.png');
});
$('opacity').addEventListener('input', drawOverlay);
// Start loading the models while the user picks an image.
void codec().then(
  () => setStep('codec', 'done', `${threads} thread${threads > 1 ? 's' : ''}`),
  (e) => showError('codec', e),
);
