import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseBitstream } from '../src/bitstream/index.ts';
import { encodeImage, loadCodecFromDir, readImageFile, readManifest } from '../src/codec/node.ts';
import { decodeLatents, encodeLatents } from '../src/entropy/index.ts';
import { listImages } from '../src/eval/rd-run.ts';
import { idealBits, syntheticLatents } from '../test/support/synthetic.ts';
import { median, timeRuns } from './lib/timing.ts';

/**
 * `npm run bench -- entropy`: rANS decode and encode speed, and coded size against the ideal.
 * Input: latents shaped like a real codec's at 1/8 of a 768x512 image (128 x 64 x 96), per-channel
 * Laplacian scales log-uniform in [0.1, 1.5] (most mass at zero), 12-bit tables, 4 lanes; plus a
 * "dense" variant (scales 1..4) where nearly every symbol costs bits and renormalisation is frequent.
 * Symbol rates count coded symbols only (all-zero channels are skipped by the format and not counted).
 * Also, when the data folder is there, the decode of real latents of the 24 Kodak images per shipped codec.
 * Baseline in the same run: the one-lane decoder on the same input, timed interleaved with the
 * measurement (31 decodes each; medians).
 */
export async function benchEntropy(): Promise<Record<string, unknown>> {
  const shape = { channels: 128, height: 64, width: 96 };
  const sparse = syntheticLatents(shape, { seed: 7, minScale: 0.1, maxScale: 1.5 });
  const dense = syntheticLatents(shape, { seed: 8, minScale: 1, maxScale: 4 });

  const prepare = (data: typeof sparse, lanes: number) => {
    const body = encodeLatents(data.latents, shape, data.tables, { lanes });
    const out = decodeLatents(body, shape, data.tables);
    for (let i = 0; i < out.length; i++) if (out[i] !== data.latents[i]) throw new Error(`decode mismatch at ${i}`);
    return { data, lanes, body, out, coded: codedSymbols(data.latents, shape.height * shape.width, shape.channels) };
  };
  const runs = [prepare(sparse, 4), prepare(sparse, 1), prepare(dense, 4)];
  // Interleave the runs so that the machine's noise hits the measurement and its baseline alike.
  const decodeTimes = runs.map(() => [] as number[]);
  const encodeTimes = runs.map(() => [] as number[]);
  for (let rep = 0; rep < 31; rep++) {
    runs.forEach((r, i) => {
      decodeTimes[i].push(...timeRuns(() => decodeLatents(r.body, shape, r.data.tables, r.out), 1, rep === 0 ? 3 : 0));
      if (rep % 3 === 0) encodeTimes[i].push(...timeRuns(() => encodeLatents(r.data.latents, shape, r.data.tables, { lanes: r.lanes }), 1, rep === 0 ? 1 : 0));
    });
  }
  const report = (i: number) => {
    const { data, body, coded } = runs[i];
    const decodeMs = median(decodeTimes[i]);
    const ideal = idealBits(data.latents, shape, data.tables) / 8;
    return {
      bytes: body.length,
      ideal_bytes: Math.round(ideal),
      overhead_pct: round(((body.length - ideal) / ideal) * 100, 3),
      bits_per_symbol: round((body.length * 8) / coded, 3),
      zero_fraction: round(data.latents.filter((v) => v === 0).length / data.latents.length, 3),
      coded_symbols: coded,
      decode_ms: round(decodeMs, 3),
      decode_msym_s: round(coded / decodeMs / 1000, 1),
      encode_msym_s: round(coded / median(encodeTimes[i]) / 1000, 1),
    };
  };
  const main = report(0);
  const baseline = report(1);
  const denseRun = report(2);
  return {
    bench: 'entropy',
    decode_msym_s: main.decode_msym_s,
    encode_msym_s: main.encode_msym_s,
    overhead_pct: main.overhead_pct,
    input: { shape: [shape.channels, shape.height, shape.width], precision: 12, lanes: 4, ...main },
    baseline_one_lane: { decode_msym_s: baseline.decode_msym_s, speedup: round(main.decode_msym_s / baseline.decode_msym_s, 2) },
    dense: denseRun,
    kodak: await benchKodak(),
  };
}

/**
 * The same measurement on real latents: every Kodak image encoded by each shipped codec (the real
 * analysis transform and tables), then the validate-free entropy decode timed alone (median of 5
 * per image; the figure is the median over images). Where a codec keeps earlier tables
 * (`legacy_tables`), the same latents are also coded with the newest of them and timed interleaved:
 * the baseline for the current coder, with its size. Data folder: $LATENTSIGHT_DATA, else ../shared/data.
 */
async function benchKodak(): Promise<Record<string, unknown>> {
  const dir = join(process.env.LATENTSIGHT_DATA ?? '../shared/data', 'kodak');
  if (!existsSync(dir)) return { skipped: `no Kodak images at ${dir}` };
  const paths = await listImages(dir);
  const out: Record<string, unknown> = {};
  for (const entry of (await readManifest()).models.filter((m) => m.kind === 'codec')) {
    const codec = await loadCodecFromDir(undefined, entry.id);
    const legacyHash = codec.legacyTableHashes[0];
    const legacy = legacyHash === undefined ? undefined : codec.tablesFor(legacyHash);
    const perImage: number[] = [];
    const legacyPerImage: number[] = [];
    let bytes = 0;
    let legacyBytes = 0;
    let ideal = 0;
    let symbols = 0;
    for (const path of paths) {
      const stream = parseBitstream(await encodeImage(await readImageFile(path), codec, { allowDecodeOnly: true }));
      const { channels, latentHeight: height, latentWidth: width } = stream.header;
      const shape = { channels, height, width };
      const latents = decodeLatents(stream.latents, shape, codec.tables);
      const old = legacy && encodeLatents(latents, shape, legacy);
      const times: number[] = [];
      const legacyTimes: number[] = [];
      for (let rep = 0; rep < 5; rep++) {
        times.push(...timeRuns(() => decodeLatents(stream.latents, shape, codec.tables, latents), 1, rep === 0 ? 1 : 0));
        if (legacy && old) legacyTimes.push(...timeRuns(() => decodeLatents(old, shape, legacy, latents), 1, rep === 0 ? 1 : 0));
      }
      perImage.push(median(times));
      if (legacyTimes.length) legacyPerImage.push(median(legacyTimes));
      bytes += stream.latents.length;
      legacyBytes += old?.length ?? 0;
      ideal += idealBits(latents, shape, codec.tables) / 8;
      symbols += latents.length;
    }
    await codec.release();
    const ms = median(perImage);
    out[entry.id] = {
      version: entry.version,
      images: paths.length,
      decode_ms_per_image: round(ms, 3),
      decode_msym_s: round(symbols / paths.length / ms / 1000, 1),
      bits_per_symbol: round((bytes * 8) / symbols, 3),
      overhead_pct: round(((bytes - ideal) / ideal) * 100, 3),
      ...(legacy && {
        legacy_tables: {
          table_hash: legacyHash,
          decode_ms_per_image: round(median(legacyPerImage), 3),
          bits_per_symbol: round((legacyBytes * 8) / symbols, 3),
          decode_time_ratio: round(ms / median(legacyPerImage), 2),
          size_ratio: round(bytes / legacyBytes, 3),
        },
      }),
    };
  }
  return out;
}

function codedSymbols(latents: Int16Array, n: number, channels: number): number {
  let coded = 0;
  for (let c = 0; c < channels; c++) {
    for (let i = c * n; i < (c + 1) * n; i++) {
      if (latents[i] !== 0) {
        coded += n;
        break;
      }
    }
  }
  return coded;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
