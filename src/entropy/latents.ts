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
  const { height, width } = shape;
  // Coder 2: the 4-lane path keeps its per-position state in a `ContextPlane`; the general loop
  // counts, per position, how many earlier channels were non-zero there.
  const plane = ctx && lanes === 4 ? contextPlane(tables, ctx, values, out !== undefined, height, width) : undefined;
  const nonZero = ctx && !plane ? new Uint16Array(n) : undefined;
  for (let c = 0; c < channels; c++) {
    const first = c * n;
    if (body[2 + (c >> 3)] & (1 << (c & 7))) {
      if (out) values.fill(0, first, first + n);
      continue;
    }
    if (plane) {
      decodeContextChannel4(st, plane, c);
    } else if (ctx && nonZero) {
      decodeContextChannel(st, values, c, height, width, tables, ctx, nonZero);
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
 * Coder 2's 4-lane path (precision <= 12, at most 256 tables): the state its channel loop
 * (`decodeContextRun4`) and its one-symbol fallback (`decodeContextSymbol4`) share.
 *
 * Every value finds its context in one load: `pre` holds, per position, the binned count of
 * earlier non-zero channels plus min(|up| + |left|, cap). It is set from `zBase` (that count's term
 * alone) at the start of each channel, and only a non-zero value changes it (`noteNonZero`). The
 * per-position parts have a sentinel column after each row (row stride width + 1) whose context
 * is `contexts`, the index of the entry 0 in `map` after the channel's real ones: a table with no
 * slot for zero, so the zero loop stops at the end of a row without a test of its own.
 */
interface ContextPlane {
  values: Int16Array;
  width: number;
  height: number;
  /** Values per channel. */
  n: number;
  contexts: number;
  cap: number;
  precision: number;
  /**
   * One array, so that V8 checks it once where several parts are used (length 3L + C + 1, L =
   * height x (width + 1)). Per position, sentinel columns included: at k, its context (`pre`); at
   * zAt + k, its earlier non-zero channels' context term (`zBase`); at nzAt + k, their count. At
   * binAt + z, the context term of z non-zero channels (`TableContext.binBase`).
   */
  plane: Uint16Array;
  zAt: number;
  nzAt: number;
  binAt: number;
  packedMap: Int32Array;
  /** The channel's `packedMap` entries, then the sentinel's (0). */
  map: Int32Array;
  /** The channel's first value in `values`. */
  first: number;
  /** `values` came from the caller and may hold anything: each channel is zero-filled first. */
  dirty: boolean;
  /** `CompactLookup.symbolLookup`: bucket guesses and symbol records. */
  symbolLookup: Int32Array;
  /** Per table: the value of symbol 0, and the symbol count (escapes need the table's range). */
  offsets: Int32Array;
  sizes: Int32Array;
}

/** The 4-lane path's state, or undefined when the tables are outside its limits. */
function contextPlane(
  tables: EntropyTables, ctx: TableContext, values: Int16Array, dirty: boolean, height: number, width: number,
): ContextPlane | undefined {
  const { packedMap, symbolLookup } = tables.compactLookup();
  if (!packedMap || !symbolLookup) return undefined;
  const length = height * (width + 1);
  const plane = new Uint16Array(3 * length + ctx.binBase.length);
  for (let k = length + width; k < 2 * length; k += width + 1) plane[k] = ctx.contexts;
  plane.set(ctx.binBase, 3 * length);
  return {
    values, width, height, n: width * height, contexts: ctx.contexts, cap: ctx.cap, precision: tables.precision,
    plane, zAt: length, nzAt: 2 * length, binAt: 3 * length,
    packedMap, map: new Int32Array(ctx.contexts + 1), first: 0, dirty,
    symbolLookup, offsets: tables.offsets, sizes: tables.sizes,
  };
}

/**
 * Coder 2's hot path, one channel with four lanes: `decodeContextRun4` takes the symbols it can
 * (nearly all), and each one it leaves, a long scan or an escape, is decoded by
 * `decodeContextSymbol4` before the run goes on. Keeping the rare work out of the run's loops keeps
 * them free of calls, which V8 would otherwise have to assume change everything.
 */
function decodeContextChannel4(st: DecodeState, cp: ContextPlane, c: number): void {
  const { n, contexts } = cp;
  const first = c * n;
  cp.first = first;
  cp.map.set(cp.packedMap.subarray(c * contexts, (c + 1) * contexts));
  if (cp.dirty) cp.values.fill(0, first, first + n);
  cp.plane.copyWithin(0, cp.zAt, cp.nzAt); // every context from its zBase
  for (let i = 0; i < n; i++) {
    // The position of the symbol the run left, n at the end, or -1 when the words ran out.
    i = decodeContextRun4(st, cp, i);
    if (i < 0 || i === n || !decodeContextSymbol4(st, cp, i)) return;
  }
}

/**
 * Decodes the channel from position `from` until its end, or until a symbol that needs more than
 * the bucket's symbol and the one after it, or an escape: it leaves that symbol undecoded and
 * returns its position (or -1 when the words ran out). Symbol i of the channel uses lane i mod 4;
 * the lane states are locals, x0 the next symbol's. Position i is at k = i + row in `plane`.
 *
 * The inner loop decodes zeros, nearly all values: e = map[pre[k]] gives the table and its zero's
 * slot range together, so a zero costs two loads and no store (the channel starts all zero, and
 * a zero changes no context). It stops at any other symbol and at a row's sentinel, where the
 * outer loop checks the read position (once per row: at most `width` <= 2048 words, inside the
 * padding). Any other symbol the bucket guess finds is never 0 (0's slots are the zero range, and
 * a table without 0 codes it only as an escape): it is stored, and updates the contexts.
 */
function decodeContextRun4(st: DecodeState, cp: ContextPlane, from: number): number {
  const { values, map, plane, symbolLookup: lut } = cp;
  const { states, words } = st;
  // `| 0`: V8 then keeps these, and the loops' variables, as untagged int32.
  const width = cp.width | 0;
  const stride = (width + 1) | 0;
  const n = cp.n | 0;
  const first = cp.first | 0;
  const cap = cp.cap | 0;
  const wordCount = st.wordCount | 0;
  const p = cp.precision | 0;
  const mask = (1 << p) - 1;
  const shift = p - BUCKET_BITS;
  const lastSentinel = ((cp.height | 0) * stride - 1) | 0;
  const zAt = cp.zAt | 0;
  const nzAt = cp.nzAt | 0;
  const binAt = cp.binAt | 0;
  let i = from | 0;
  let x0 = states[i & 3] | 0, x1 = states[(i + 1) & 3] | 0, x2 = states[(i + 2) & 3] | 0, x3 = states[(i + 3) & 3] | 0;
  let pos = st.pos | 0;
  let row = (i / width) | 0;
  // k indexes the per-position arrays. Resuming at the start of a row starts at the sentinel
  // before it, which checks the position as the end of every row does.
  let k = (i + row) | 0;
  if (k > 0 && i === row * width) {
    k--;
    row--;
  }
  let sentinel = (row * stride + width) | 0;
  for (;;) {
    // The zero loop, unrolled by four: step j decodes with lane xj, so the states stay put, and
    // V8 checks the arrays once per four symbols. Leaving at step j rotates them by j.
    let e = 0;
    let slot = 0;
    for (;;) {
      e = map[plane[k]];
      slot = x0 & mask;
      let fromZero = (slot - ((e >>> 12) & 0xfff)) | 0;
      if (fromZero >>> 0 >= (e & 0xfff)) break;
      x0 = (Math.imul(e & 0xfff, x0 >>> p) + fromZero) | 0;
      if (x0 >>> 16 === 0) x0 = (x0 << 16) | words[pos++];

      e = map[plane[k + 1]];
      slot = x1 & mask;
      fromZero = (slot - ((e >>> 12) & 0xfff)) | 0;
      if (fromZero >>> 0 >= (e & 0xfff)) {
        const x = x0; x0 = x1; x1 = x2; x2 = x3; x3 = x;
        k += 1;
        break;
      }
      x1 = (Math.imul(e & 0xfff, x1 >>> p) + fromZero) | 0;
      if (x1 >>> 16 === 0) x1 = (x1 << 16) | words[pos++];

      e = map[plane[k + 2]];
      slot = x2 & mask;
      fromZero = (slot - ((e >>> 12) & 0xfff)) | 0;
      if (fromZero >>> 0 >= (e & 0xfff)) {
        let x = x0; x0 = x2; x2 = x;
        x = x1; x1 = x3; x3 = x;
        k += 2;
        break;
      }
      x2 = (Math.imul(e & 0xfff, x2 >>> p) + fromZero) | 0;
      if (x2 >>> 16 === 0) x2 = (x2 << 16) | words[pos++];

      e = map[plane[k + 3]];
      slot = x3 & mask;
      fromZero = (slot - ((e >>> 12) & 0xfff)) | 0;
      if (fromZero >>> 0 >= (e & 0xfff)) {
        const x = x3; x3 = x2; x2 = x1; x1 = x0; x0 = x;
        k += 3;
        break;
      }
      x3 = (Math.imul(e & 0xfff, x3 >>> p) + fromZero) | 0;
      if (x3 >>> 16 === 0) x3 = (x3 << 16) | words[pos++];
      k += 4;
    }
    if (k === sentinel) {
      if (k === lastSentinel) {
        i = n; // decodeLatents checks the position after the channel
        break;
      }
      if (pos > wordCount) {
        i = -1;
        break;
      }
      k++;
      row++;
      sentinel = (sentinel + stride) | 0;
      continue;
    }
    i = (k - row) | 0;
    // The bucket guess, or the symbol after it; anything further is left to decodeContextSymbol4.
    let rec = lut[lut[e >>> 24] + (slot >>> shift)];
    let valueEnd = lut[rec];
    if ((valueEnd & 0xffff) <= slot) {
      rec += 2;
      valueEnd = lut[rec];
      if ((valueEnd & 0xffff) <= slot) break;
    }
    const freqCum = lut[rec + 1];
    if (freqCum < 0) break; // the escape
    let x = (Math.imul(freqCum >>> 12, x0 >>> p) + slot - (freqCum & 0xfff)) | 0;
    if (x >>> 16 === 0) x = (x << 16) | words[pos++];
    x0 = x1; x1 = x2; x2 = x3; x3 = x;
    const v = valueEnd >> 16;
    values[first + i] = v;
    // `noteNonZero`, inline.
    const sign = v >> 31;
    const abs = (v ^ sign) - sign;
    const count = (plane[nzAt + k] + 1) | 0;
    plane[nzAt + k] = count;
    plane[zAt + k] = plane[binAt + count];
    if (k + stride < lastSentinel) plane[k + stride] += abs < cap ? abs : cap;
    if (k + 1 < sentinel) {
      let up = (i + 1 - width) | 0;
      if (up < 0) up = (up + n) | 0; // the first row's up is the channel's own last row, zero until decoded
      const u = values[first + up];
      const uSign = u >> 31;
      const a = (abs + ((u ^ uSign) - uSign)) | 0;
      plane[k + 1] = plane[zAt + k + 1] + (a < cap ? a : cap);
    }
    k++;
  }
  // x0 holds the lane of position i.
  states[i & 3] = x0; states[(i + 1) & 3] = x1; states[(i + 2) & 3] = x2; states[(i + 3) & 3] = x3;
  st.pos = pos;
  return i;
}

/**
 * One symbol the run left, at position i of the channel, in lane i mod 4: a bucket guess and a
 * full scan of its table's symbol ends, then an escape's payload if it is the escape. Returns false
 * when an escape ran past the words.
 */
function decodeContextSymbol4(st: DecodeState, cp: ContextPlane, i: number): boolean {
  const lut = cp.symbolLookup;
  const p = cp.precision;
  const e = cp.map[cp.plane[i + Math.floor(i / cp.width)]];
  let x = st.states[i & 3];
  const slot = x & ((1 << p) - 1);
  let rec = lut[lut[e >>> 24] + (slot >>> (p - BUCKET_BITS))];
  while ((lut[rec] & 0xffff) <= slot) rec += 2;
  const freqCum = lut[rec + 1];
  x = (Math.imul((freqCum >>> 12) & 0xfff, x >>> p) + slot - (freqCum & 0xfff)) | 0;
  if (x >>> 16 === 0) x = (x << 16) | st.words[st.pos++];
  let v = lut[rec] >> 16;
  if (freqCum < 0) {
    const t = e >>> 24;
    x = decodeEscape(st, x, p, cp.offsets[t], cp.offsets[t] + cp.sizes[t] - 2);
    if (st.pos > st.wordCount) return false;
    v = st.escaped;
  }
  st.states[i & 3] = x;
  // A table without 0 escapes it: this can decode a zero too.
  if (v !== 0) noteNonZero(cp, i, v);
  return true;
}

/**
 * A non-zero value v at position i: stored; the next channel's count there grows; the position
 * below gains |v| as its |up|; the next one's context is rebuilt with |v| as its |left| (its |up| is
 * in the row above, or on the first row in the channel's own last row, zero until it is decoded).
 */
function noteNonZero(cp: ContextPlane, i: number, v: number): void {
  const { values, width, height, n, first, plane, zAt, nzAt, cap } = cp;
  const row = Math.floor(i / width);
  const k = i + row; // in `plane`
  values[first + i] = v;
  const abs = v < 0 ? -v : v;
  plane[zAt + k] = plane[cp.binAt + ++plane[nzAt + k]];
  if (row + 1 < height) plane[k + width + 1] += abs < cap ? abs : cap;
  if (i - row * width + 1 < width) {
    const u = values[first + (row > 0 ? i + 1 - width : i + 1 - width + n)];
    const a = abs + (u < 0 ? -u : u);
    plane[k + 1] = plane[zAt + k + 1] + (a < cap ? a : cap);
  }
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
