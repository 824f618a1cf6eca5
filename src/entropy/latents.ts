import { EntropyError } from './errors.ts';
import {
  CODER_RANS32X16,
  CODER_RANS32X16_CONTEXT,
  ESCAPE_NIBBLE_BITS,
  MAX_ESCAPE_NIBBLES,
  MAX_LANES,
  RANS_L,
  WordSink,
  encodeSymbol,
  escapeNibbles,
} from './rans.ts';
import { BUCKET_BITS, type DecodeLookup, type EntropyTables, type TableContext } from './tables.ts';

/**
 * Body of the bitstream's `LATN` part (coders 1 and 2):
 *
 *   offset  size        field
 *   0       1           coder (1 = rANS, 32-bit state, 16-bit words; 2 = the same, tables by context)
 *   1       1           lanes N (1..8): interleaved rANS states
 *   2       ceil(C/8)   skip map: bit (c & 7) of byte (c >> 3) set = channel c is all zero and not coded
 *   ...     4N          initial decoder states, u32 each
 *   ...     2K          16-bit words, read in order by the decoder
 *
 * Coder 1 (version-1 tables) codes channel c with table c. Coder 2 (version-2 tables) codes each
 * value with the table its context selects: the number of earlier channels non-zero at the same
 * position (binned) and |up| + |left| in its own channel (capped), all decoded before it
 * (`tables.ts`, docs/FORMAT.md section 4). Coded channels follow in order, each in raster order;
 * symbol k of a channel uses lane k mod N. After the last symbol every lane is back at 2^16 and every word is
 * consumed; a decoder checks both.
 */
export interface LatentShape {
  channels: number;
  height: number;
  width: number;
}

export interface EncodeOptions {
  /** Interleaved rANS states: more lanes give the decoder more instruction-level parallelism. */
  lanes?: number;
}

export const DEFAULT_LANES = 4;

function checkShape(shape: LatentShape, tables: EntropyTables): number {
  const { channels, height, width } = shape;
  if (!(channels >= 1 && height >= 1 && width >= 1) || ![channels, height, width].every(Number.isInteger)) {
    throw new EntropyError('SHAPE_MISMATCH', `Latent shape ${channels}x${height}x${width} is not positive integers.`);
  }
  if (tables.channels !== channels) {
    throw new EntropyError('SHAPE_MISMATCH', `The latents have ${channels} channels; the table set codes ${tables.channels}.`);
  }
  return channels * height * width;
}

/**
 * Entropy-codes int16 latents (C x H x W, channel-major) into a `LATN` body. Every int16 value
 * round-trips: values outside a channel's table go through the escape.
 *
 * @example
 * const body = encodeLatents(latents, { channels: 64, height: 64, width: 96 }, tables)
 */
export function encodeLatents(
  latents: Int16Array,
  shape: LatentShape,
  tables: EntropyTables,
  options: EncodeOptions = {},
): Uint8Array {
  const total = checkShape(shape, tables);
  if (latents.length !== total) {
    throw new EntropyError('SHAPE_MISMATCH', `Expected ${total} latent values for the shape, got ${latents.length}.`);
  }
  const lanes = options.lanes ?? DEFAULT_LANES;
  if (!Number.isInteger(lanes) || lanes < 1 || lanes > MAX_LANES) {
    throw new EntropyError('SHAPE_MISMATCH', `Lanes must be 1..${MAX_LANES}, not ${lanes}.`);
  }
  const { channels } = shape;
  const n = shape.height * shape.width;
  const p = tables.precision;
  const { freqs, cums, starts, sizes, offsets } = tables;
  const maskBytes = (channels + 7) >> 3;
  const skip = new Uint8Array(maskBytes);
  // One forward pass: each value's table (its context needs values before it), all-zero channels,
  // and the escapes, which bound the words the coder emits.
  const tableOf = valueTables(latents, shape, tables);
  let escapes = 0;
  for (let c = 0; c < channels; c++) {
    let zero = true;
    for (let i = c * n, end = i + n; i < end; i++) {
      const v = latents[i];
      const t = tableOf[i];
      if (v !== 0) zero = false;
      if (v < offsets[t] || v > offsets[t] + sizes[t] - 2) escapes++;
    }
    if (zero) skip[c >> 3] |= 1 << (c & 7);
  }

  // Each encode step emits at most one word; an escaped value takes up to 2 + MAX_ESCAPE_NIBBLES steps.
  const sink = new WordSink(total + (1 + MAX_ESCAPE_NIBBLES) * escapes);
  let words = sink.words;
  let count = 0;
  const states = new Float64Array(lanes).fill(RANS_L);
  const scale = 2 ** p;
  const xmaxScale = 2 ** (32 - p);
  // rANS is last-in first-out: encode from the last symbol back to the first. States are plain
  // numbers below 2^32 (exact in doubles), so the division needs no 64-bit integers.
  for (let c = channels - 1; c >= 0; c--) {
    if (skip[c >> 3] & (1 << (c & 7))) continue;
    let lane = (n - 1) % lanes;
    for (let i = c * n + n - 1; i >= c * n; i--) {
      const t = tableOf[i];
      const start = starts[t];
      const lo = offsets[t];
      const esc = sizes[t] - 1;
      const hi = lo + esc - 1;
      let x = states[lane];
      const v = latents[i];
      if (v >= lo && v <= hi) {
        const f = freqs[start + v - lo];
        if (x >= f * xmaxScale) {
          words[count++] = x & 0xffff;
          x = Math.floor(x / 65536);
        }
        const q = Math.floor(x / f);
        x = q * scale + (x - q * f) + cums[start + v - lo];
      } else {
        sink.length = count;
        x = encodeEscape(x, sink, v, lo, hi, cums[start + esc], freqs[start + esc], p);
        count = sink.length;
        words = sink.words; // the bound above means it never grows; stay correct if it ever does
      }
      states[lane] = x;
      if (--lane < 0) lane = lanes - 1;
    }
  }
  sink.length = count;

  const out = new Uint8Array(2 + maskBytes + 4 * lanes + 2 * sink.length);
  out[0] = tables.context ? CODER_RANS32X16_CONTEXT : CODER_RANS32X16;
  out[1] = lanes;
  out.set(skip, 2);
  let pos = 2 + maskBytes;
  for (let lane = 0; lane < lanes; lane++, pos += 4) {
    const x = states[lane];
    out[pos] = x & 0xff;
    out[pos + 1] = (x >>> 8) & 0xff;
    out[pos + 2] = (x >>> 16) & 0xff;
    out[pos + 3] = x >>> 24;
  }
  for (let i = sink.length - 1; i >= 0; i--, pos += 2) {
    const w = sink.words[i];
    out[pos] = w & 0xff;
    out[pos + 1] = w >>> 8;
  }
  return out;
}

/**
 * The table that codes each value (C x H x W, channel-major): table c for channel c with
 * version-1 tables, the context's choice with version-2 tables. For size estimates and statistics.
 *
 * @example
 * const t = valueTables(latents, shape, tables)[i] // tables.offsets[t] is the value of its symbol 0
 */
export function valueTables(latents: Int16Array, shape: LatentShape, tables: EntropyTables): Uint16Array {
  checkShape(shape, tables);
  const n = shape.height * shape.width;
  return tables.context ? contextTables(latents, shape, tables.context) : channelTables(shape.channels, n);
}

/** Coder 1: table c for every value of channel c. */
function channelTables(channels: number, n: number): Uint16Array {
  const out = new Uint16Array(channels * n);
  for (let c = 0; c < channels; c++) out.fill(c, c * n, (c + 1) * n);
  return out;
}

/**
 * Coder 2: the table of every value from its context, as the decoder will see it: the count of
 * earlier channels non-zero at its position, and |up| + |left| in its channel (0 off the edge).
 */
function contextTables(latents: Int16Array, shape: LatentShape, ctx: TableContext): Uint16Array {
  const { channels, height, width } = shape;
  const n = height * width;
  const { map, binBase, cap, contexts } = ctx;
  const out = new Uint16Array(channels * n);
  const nonZero = new Uint16Array(n);
  for (let c = 0; c < channels; c++) {
    const first = c * n;
    const base = c * contexts;
    for (let i = 0; i < n; i++) {
      const o = first + i;
      let a = (i >= width ? Math.abs(latents[o - width]) : 0) + (i % width ? Math.abs(latents[o - 1]) : 0);
      if (a > cap) a = cap;
      out[o] = map[base + binBase[nonZero[i]] + a];
    }
    for (let i = 0; i < n; i++) if (latents[first + i] !== 0) nonZero[i]++;
  }
  return out;
}

/** Codes an escaped value: in reverse, the nibbles, their count, then the escape symbol. */
function encodeEscape(
  x: number, sink: WordSink, v: number, lo: number, hi: number, escCum: number, escFreq: number, p: number,
): number {
  const nibbleFreq = 1 << (p - ESCAPE_NIBBLE_BITS);
  const nibbles = escapeNibbles(v > hi ? (v - hi - 1) * 2 : (lo - 1 - v) * 2 + 1);
  for (let i = nibbles.length - 1; i >= 0; i--) x = encodeSymbol(x, sink, nibbles[i] * nibbleFreq, nibbleFreq, p);
  x = encodeSymbol(x, sink, (nibbles.length - 1) * nibbleFreq, nibbleFreq, p);
  return encodeSymbol(x, sink, escCum, escFreq, p);
}

/**
 * Decoder state shared by the channel loops: the lanes, the word stream (copied once into an
 * aligned, zero-padded array so the hot loop does one 16-bit load and never reads out of bounds),
 * and the read position. Kept in one object so the loops can be small functions V8 optimises well.
 */
interface DecodeState {
  states: Int32Array;
  words: Uint16Array;
  /** Words actually present; `pos` past it means the payload was too short. */
  wordCount: number;
  pos: number;
  /** The value the last escape carried (`decodeEscape`). */
  escaped: number;
}

/**
 * The fast loop checks the read position once per block of this many symbols, reading at most one
 * word per symbol, so the word array is padded with this many zeros (plus the slow path's per-symbol
 * worst case, 2 + MAX_ESCAPE_NIBBLES): a payload that runs short is read as zeros and rejected,
 * never read out of bounds (which would also deoptimise the hot loop for good).
 */
const BLOCK_SYMBOLS = 4096;
const WORD_PADDING = BLOCK_SYMBOLS + 16;

function corrupt(why: string): EntropyError {
  return new EntropyError('CORRUPT_PAYLOAD', `The latent payload is corrupt: ${why}.`);
}

/**
 * Decodes a `LATN` body to int16 latents (C x H x W, channel-major). Integer arithmetic only, so
 * Node, browsers and workerd produce identical latents. Throws `EntropyError('CORRUPT_PAYLOAD')`
 * unless the payload decodes exactly: every lane back at its start state, every word consumed.
 * Work is bounded by the shape, which the container's limits bound before this is called.
 *
 * @example
 * const latents = decodeLatents(stream.latents, { channels: 64, height: 64, width: 96 }, tables)
 */
export function decodeLatents(body: Uint8Array, shape: LatentShape, tables: EntropyTables, out?: Int16Array): Int16Array {
  const total = checkShape(shape, tables);
  const { channels } = shape;
  const n = shape.height * shape.width;
  if (body.length < 2) throw corrupt('it is shorter than its header');
  if (body[0] !== CODER_RANS32X16 && body[0] !== CODER_RANS32X16_CONTEXT) {
    throw new EntropyError('UNSUPPORTED_CODER', `Entropy coder ${body[0]} is not supported (1 = rANS 32x16, 2 = the same with context tables).`);
  }
  const ctx = tables.context;
  if (body[0] !== (ctx ? CODER_RANS32X16_CONTEXT : CODER_RANS32X16)) {
    throw corrupt(`coder ${body[0]} does not match the codec's tables (version ${ctx ? 2 : 1}, coder ${ctx ? 2 : 1})`);
  }
  const lanes = body[1];
  if (lanes < 1 || lanes > MAX_LANES) throw corrupt(`lane count ${lanes} is outside 1..${MAX_LANES}`);
  const maskBytes = (channels + 7) >> 3;
  const statesAt = 2 + maskBytes;
  const wordsAt = statesAt + 4 * lanes;
  if (body.length < wordsAt) throw corrupt('it ends inside its header');
  if ((body.length - wordsAt) & 1) throw corrupt('its word stream has an odd number of bytes');
  // A canonical stream leaves the skip bits past the last channel clear.
  if (channels & 7 && body[1 + maskBytes] >>> (channels & 7)) throw corrupt('the skip map flags channels past the last');
  if (out && out.length !== total) throw new EntropyError('SHAPE_MISMATCH', `The output holds ${out.length} values, not ${total}.`);

  const states = new Int32Array(lanes);
  for (let lane = 0; lane < lanes; lane++) {
    const at = statesAt + 4 * lane;
    states[lane] = body[at] | (body[at + 1] << 8) | (body[at + 2] << 16) | (body[at + 3] << 24);
    if (states[lane] >>> 16 === 0) throw corrupt('an initial state is below 2^16');
  }
  const wordCount = (body.length - wordsAt) >> 1;
  const words = new Uint16Array(wordCount + WORD_PADDING);
  for (let i = 0, at = wordsAt; i < wordCount; i++, at += 2) words[i] = body[at] | (body[at + 1] << 8);
  const st: DecodeState = { states, words, wordCount, pos: 0, escaped: 0 };

  const values = out ?? new Int16Array(total);
  // Coder 1's lookups; coder 2 builds its own compact ones.
  const lookup = ctx ? undefined : tables.decodeLookup();
  // Coder 2: per position, how many earlier channels were non-zero there; the 4-lane path also
  // keeps that count's context term (`zBase`) and the whole context (`pre`).
  const nonZero = ctx ? new Uint16Array(n) : undefined;
  const fast4 = ctx !== undefined && lanes === 4 && tables.compactLookup().packedMap !== undefined;
  const zBase = fast4 ? new Uint16Array(n) : undefined;
  const pre = fast4 ? new Uint16Array(n) : undefined;
  const { height, width } = shape;
  for (let c = 0; c < channels; c++) {
    const first = c * n;
    if (body[2 + (c >> 3)] & (1 << (c & 7))) {
      if (out) values.fill(0, first, first + n);
      continue;
    }
    if (ctx && nonZero) {
      if (zBase && pre) decodeContextChannel4(st, values, c, height, width, tables, ctx, nonZero, zBase, pre);
      else decodeContextChannel(st, values, c, height, width, tables, ctx, nonZero);
    } else if (lookup) {
      const done = lanes === 4 && lookup.fast ? decodeChannel4(st, values, first, n, c, tables.precision, lookup) : first;
      decodeChannelAnyLanes(st, values, done, first + n, first, c, tables.precision, lookup);
    }
    if (st.pos > wordCount) throw corrupt('it ends before the last symbol');
  }
  for (let lane = 0; lane < lanes; lane++) {
    if (states[lane] !== RANS_L) throw corrupt('a lane did not return to its start state');
  }
  if (st.pos !== wordCount) throw corrupt('words remain after the last symbol');
  return values;
}

/**
 * Hot path: one channel, four lanes, states in locals, unrolled by four, one table load per symbol
 * (the `fast` lookup: escape flag in bit 31, symbol in bits 24-30, freq in 12-23, slot - cum in 0-11).
 * Returns the index after the last value written; the caller finishes the channel's tail.
 *
 * Per symbol: e = fast[x & (M - 1)]; x = freq * (x >>> P) + (slot - cum); if x < 2^16, shift in a word.
 * No bounds check per group: the word array is padded (see BLOCK_SYMBOLS) and the position is
 * checked once per block.
 */
function decodeChannel4(
  st: DecodeState, values: Int16Array, first: number, n: number, c: number, p: number, lookup: DecodeLookup,
): number {
  const fast = lookup.fast as Int32Array;
  const { states, words } = st;
  const base = c << p;
  const mask = (1 << p) - 1;
  const lo = lookup.lows[c];
  const end = first + (n & ~3);
  let o = first;
  while (o < end) {
    let x0 = states[0], x1 = states[1], x2 = states[2], x3 = states[3];
    let pos = st.pos;
    const blockEnd = Math.min(end, o + BLOCK_SYMBOLS);
    for (; o < blockEnd; o += 4) {
      const e0 = fast[(x0 & mask) | base], e1 = fast[(x1 & mask) | base];
      const e2 = fast[(x2 & mask) | base], e3 = fast[(x3 & mask) | base];
      // Rare: an escape reads its nibbles between its lane's renormalisation and the next lane's
      // decode. Leave with the states from before this group; the general loop redoes it.
      if ((e0 | e1 | e2 | e3) < 0) break;
      x0 = (Math.imul((e0 >>> 12) & 0xfff, x0 >>> p) + (e0 & 0xfff)) | 0;
      x1 = (Math.imul((e1 >>> 12) & 0xfff, x1 >>> p) + (e1 & 0xfff)) | 0;
      x2 = (Math.imul((e2 >>> 12) & 0xfff, x2 >>> p) + (e2 & 0xfff)) | 0;
      x3 = (Math.imul((e3 >>> 12) & 0xfff, x3 >>> p) + (e3 & 0xfff)) | 0;
      // Renormalise in lane order: the encoder emitted these words in exactly the reverse order.
      if (x0 >>> 16 === 0) x0 = (x0 << 16) | words[pos++];
      if (x1 >>> 16 === 0) x1 = (x1 << 16) | words[pos++];
      if (x2 >>> 16 === 0) x2 = (x2 << 16) | words[pos++];
      if (x3 >>> 16 === 0) x3 = (x3 << 16) | words[pos++];
      values[o] = (e0 >>> 24) + lo;
      values[o + 1] = (e1 >>> 24) + lo;
      values[o + 2] = (e2 >>> 24) + lo;
      values[o + 3] = (e3 >>> 24) + lo;
    }
    states[0] = x0; states[1] = x1; states[2] = x2; states[3] = x3;
    st.pos = pos;
    if (o < blockEnd) {
      decodeChannelAnyLanes(st, values, o, o + 4, first, c, p, lookup);
      o += 4;
    }
    // A payload that ran out is rejected within a block, not after decoding zeros to the end.
    if (st.pos > st.wordCount) break;
  }
  return o;
}

/**
 * Coder 2's hot path: four lanes, precision <= 12, at most 256 tables. The lane states rotate
 * through locals (symbol k of a channel uses lane k mod 4). Every value finds its context in one
 * load: `pre` holds, per position, the binned count of earlier non-zero channels plus
 * min(|up| + |left|, cap). It is set from `zBase` at the start of the channel, and only a non-zero
 * value changes it: the position below gains its |value|, and the position to its right is rebuilt
 * with it as |left|. `packedMap` then gives the table and its zero's slot range together, so a zero
 * (nearly all values) costs two loads and no store (values are zero-filled up front). A non-zero
 * value also updates `zBase` for the next channel. Escapes as in the general loop; the position is
 * checked after each row and escape.
 */
function decodeContextChannel4(
  st: DecodeState, values: Int16Array, c: number, height: number, width: number,
  tables: EntropyTables, ctx: TableContext, nonZero: Uint16Array, zBase: Uint16Array, pre: Uint16Array,
): void {
  const { buckets, ends } = tables.compactLookup();
  const packedMap = tables.compactLookup().packedMap as Int32Array;
  const { cums, freqs, starts, offsets, sizes } = tables;
  const { states, words } = st;
  const { binBase, cap } = ctx;
  const p = tables.precision;
  const shift = p - BUCKET_BITS;
  const mask = (1 << p) - 1;
  const n = height * width;
  const first = c * n;
  const mapBase = c * ctx.contexts;
  let x0 = states[0], x1 = states[1], x2 = states[2], x3 = states[3];
  let pos = st.pos;
  values.fill(0, first, first + n);
  pre.set(zBase);
  for (let row = 0, i = 0; row < height; row++) {
    // On the first row `up` reads a zero row: the channel's own last row, zero until it is decoded.
    const up = row > 0 ? -width : n - width;
    for (let col = 0; col < width; col++, i++) {
      const e = packedMap[mapBase + pre[i]];
      let x = x0;
      const slot = x & mask;
      const zc = (e >>> 12) & 0xfff;
      if ((slot - zc) >>> 0 < (e & 0xfff)) {
        x = (Math.imul(e & 0xfff, x >>> p) + slot - zc) | 0;
        if (x >>> 16 === 0) x = (x << 16) | words[pos++];
      } else {
        const t = e >>> 24;
        const base = starts[t];
        let s = buckets[(t << BUCKET_BITS) | (slot >>> shift)];
        while (ends[base + s] <= slot) s++;
        x = (Math.imul(freqs[base + s], x >>> p) + slot - cums[base + s]) | 0;
        if (x >>> 16 === 0) x = (x << 16) | words[pos++];
        let v = offsets[t] + s;
        if (s === sizes[t] - 1) {
          st.pos = pos;
          x = decodeEscape(st, x, p, offsets[t], offsets[t] + sizes[t] - 2);
          pos = st.pos;
          if (pos > st.wordCount) break;
          v = st.escaped;
        }
        // A table without 0 escapes it: this branch can decode a zero too.
        if (v !== 0) {
          values[first + i] = v;
          const left = v < 0 ? -v : v;
          zBase[i] = binBase[++nonZero[i]];
          // The next row's context gains |up|; the next value's is rebuilt with this |left|.
          if (row + 1 < height) pre[i + width] += left > cap ? cap : left;
          if (col + 1 < width) {
            const u = values[first + i + 1 + up];
            const a = left + (u < 0 ? -u : u);
            pre[i + 1] = zBase[i + 1] + (a > cap ? cap : a);
          }
        }
      }
      x0 = x1; x1 = x2; x2 = x3; x3 = x;
    }
    if (pos > st.wordCount) break;
  }
  // After n symbols the local x0 holds lane n mod 4.
  const r = n & 3;
  states[r] = x0; states[(r + 1) & 3] = x1; states[(r + 2) & 3] = x2; states[(r + 3) & 3] = x3;
  st.pos = pos;
}

/**
 * Coder 2: one channel, any lane count, each value's table chosen by its context (the non-zero
 * count of earlier channels at its position, and |up| + |left|, capped), then counted in `nonZero`.
 * Lookups stay small whatever the table count (`CompactLookup`): a zero test first, since most
 * values are zero, else a bucket guess and a short scan of the table's symbol ends. Escapes as in
 * coder 1. The position is checked after each row (at most `width` <= 2048 words, inside the
 * padding) and after each escape.
 */
function decodeContextChannel(
  st: DecodeState, values: Int16Array, c: number, height: number, width: number,
  tables: EntropyTables, ctx: TableContext, nonZero: Uint16Array,
): void {
  const { zeroCum, zeroFreq, buckets, ends } = tables.compactLookup();
  const { cums, freqs, starts, offsets, sizes } = tables;
  const { states, words } = st;
  const { map, binBase, cap } = ctx;
  const p = tables.precision;
  const shift = p - BUCKET_BITS;
  const lanes = states.length;
  const mask = (1 << p) - 1;
  const first = c * height * width;
  const mapBase = c * ctx.contexts;
  let pos = st.pos;
  let lane = 0;
  for (let row = 0, i = 0; row < height; row++) {
    for (let col = 0; col < width; col++, i++) {
      const o = first + i;
      let a = 0;
      if (row > 0) { const u = values[o - width]; a = u < 0 ? -u : u; }
      if (col > 0) { const l = values[o - 1]; a += l < 0 ? -l : l; }
      if (a > cap) a = cap;
      const t = map[mapBase + binBase[nonZero[i]] + a];
      let x = states[lane];
      const slot = x & mask;
      const zc = zeroCum[t];
      let v = 0;
      let escaped = false;
      if ((slot - zc) >>> 0 < zeroFreq[t]) {
        x = (Math.imul(zeroFreq[t], x >>> p) + slot - zc) | 0;
      } else {
        const base = starts[t];
        let s = buckets[(t << BUCKET_BITS) | (slot >>> shift)];
        while (ends[base + s] <= slot) s++;
        x = (Math.imul(freqs[base + s], x >>> p) + slot - cums[base + s]) | 0;
        v = offsets[t] + s;
        escaped = s === sizes[t] - 1;
      }
      if (x >>> 16 === 0) x = (x << 16) | words[pos++];
      if (escaped) {
        st.pos = pos;
        x = decodeEscape(st, x, p, offsets[t], offsets[t] + sizes[t] - 2);
        pos = st.pos;
        if (pos > st.wordCount) return;
        v = st.escaped;
      }
      values[o] = v;
      if (v !== 0) nonZero[i]++;
      states[lane] = x;
      if (++lane === lanes) lane = 0;
    }
    if (pos > st.wordCount) break;
  }
  st.pos = pos;
}

/** Any lane count, one symbol at a time, escapes included: other lane counts, tails and escape groups. */
function decodeChannelAnyLanes(
  st: DecodeState, values: Int16Array, from: number, to: number, first: number, c: number, p: number, lookup: DecodeLookup,
): void {
  const { packed, values: table } = lookup;
  const { states, words } = st;
  const lanes = states.length;
  const base = c << p;
  const mask = (1 << p) - 1;
  const esc = lookup.sentinels[c];
  let pos = st.pos;
  let lane = (from - first) % lanes;
  for (let o = from; o < to; o++) {
    let x = states[lane];
    const slot = (x & mask) | base;
    const e = packed[slot];
    let v = table[slot];
    x = (Math.imul(e >>> 16, x >>> p) + (e & 0xffff)) | 0;
    if (x >>> 16 === 0) x = (x << 16) | words[pos++];
    if (v === esc) {
      st.pos = pos;
      x = decodeEscape(st, x, p, lookup.lows[c], lookup.highs[c]);
      pos = st.pos;
      v = st.escaped;
    }
    if (pos > st.wordCount) break;
    values[o] = v;
    states[lane] = x;
    if (++lane === lanes) lane = 0;
  }
  st.pos = pos;
}

/**
 * The payload of an escape, after its symbol: (nibbles - 1), then the nibbles, least significant
 * first, each uniform over 2^(P-4) slots, in the symbol's lane; the distance d lands beyond the
 * table's range lo..hi (even d above hi, odd below lo). Returns the lane's state and leaves the
 * value in `st.escaped`.
 */
function decodeEscape(st: DecodeState, x: number, p: number, lo: number, hi: number): number {
  const { words } = st;
  const mask = (1 << p) - 1;
  const shift = p - ESCAPE_NIBBLE_BITS;
  let pos = st.pos;
  let distance = 0;
  let count = 0;
  for (let i = -1; i < count; i++) {
    const s = x & mask;
    const nibble = s >>> shift;
    x = (((x >>> p) << shift) + (s & ((1 << shift) - 1))) | 0;
    if (x >>> 16 === 0) x = (x << 16) | words[pos++];
    if (i < 0) {
      count = nibble + 1;
      if (count > MAX_ESCAPE_NIBBLES) throw corrupt(`an escape declares ${count} nibbles`);
    } else {
      distance |= nibble << (4 * i);
      if (i > 0 && i === count - 1 && nibble === 0) throw corrupt('an escape is not minimally coded');
    }
  }
  const v = distance & 1 ? lo - 1 - (distance >>> 1) : hi + 1 + (distance >>> 1);
  if (v < -32768 || v > 32767) throw corrupt('an escaped value is outside int16');
  st.pos = pos;
  st.escaped = v;
  return x;
}
