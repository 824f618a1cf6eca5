import { EntropyError } from './errors.ts';

/**
 * Entropy table file ("\x89LST"), computed once at model export and never recomputed from floats,
 * so that every runtime decodes the same latents:
 *
 *   offset  size  field
 *   0       4     magic 89 4C 53 54
 *   4       1     version (1: one table per channel; 2: tables chosen by context)
 *   5       1     precision P: frequencies sum to 2^P (8..16)
 *   6       2     table count T (1..1024)
 *   8       ...   T tables, each: offset (i16, the value of symbol 0), symbol count S (u16, 2..4096,
 *                 escape included), S frequencies (u16, each >= 1, summing to 2^P)
 *
 * Version 2 follows the tables with a context section (docs/FORMAT.md, section 4):
 *
 *   +0      1     context kind (1: earlier channels' non-zero count x |up| + |left|)
 *   +1      2     latent channels C (1..1024)
 *   +3      1     neighbour cap U (0..15)
 *   +4      1     bin count B (1..16)
 *   +5      B-1   bin edges, u8, strictly increasing, each >= 1
 *   ...     2CK   table index (u16, < T) of each (channel c, context k) at c * K + k, K = B (U + 1)
 *
 * In version 1 table c codes channel c. Symbol s < S-1 stands for the value offset + s; symbol
 * S-1 is the escape, followed in the stream by the value's distance beyond the table's range
 * (see `latents.ts`).
 */
export const TABLE_MAGIC = Uint8Array.of(0x89, 0x4c, 0x53, 0x54);
export const TABLE_VERSION = 1;
/** Table files with a context section. */
export const CONTEXT_TABLE_VERSION = 2;
/** The one context kind defined: earlier channels' non-zero count (binned) x (|up| + |left|, capped). */
export const CONTEXT_KIND_NZ_NEIGHBOUR = 1;
export const MAX_CONTEXT_CAP = 15;
export const MAX_CONTEXT_BINS = 16;
export const MIN_PRECISION = 8;
export const MAX_PRECISION = 16;
export const MAX_TABLES = 1024;
export const MAX_SYMBOLS = 4096;
/** Limits of the decoder's one-load fast path (12-bit fields, 7-bit symbol); other tables take the general path. */
export const FAST_MAX_PRECISION = 12;
export const FAST_MAX_SYMBOLS = 129;

/** One table as given by a caller: the value of symbol 0 and every symbol's frequency, escape last. */
export interface TableSpec {
  offset: number;
  freqs: ArrayLike<number>;
}

/** How a version-2 table set picks a table for each latent value (docs/FORMAT.md, section 4). */
export interface ContextSpec {
  kind: typeof CONTEXT_KIND_NZ_NEIGHBOUR;
  /** Latent channels the map covers. */
  channels: number;
  /** |up| + |left| is capped at this. */
  cap: number;
  /** Bin edges of the earlier channels' non-zero count: bin = number of edges <= the count. */
  edges: readonly number[];
  /** Table index of (channel c, context k) at c * contexts + k. */
  map: ArrayLike<number>;
}

/** A validated context spec with the lookups the coders use. */
export interface TableContext extends ContextSpec {
  map: Uint16Array;
  /** Contexts per channel: bins x (cap + 1). */
  contexts: number;
  /** Per non-zero count z (0..channels): bin(z) x (cap + 1), the first term of the context. */
  binBase: Uint16Array;
}

/** Decoder lookups, indexed by (table << precision) | slot. */
export interface DecodeLookup {
  /**
   * One load per symbol for the hot loop, when precision <= 12 and every table has at most 128
   * values besides the escape: bit 31 escape, bits 24-30 symbol, 12-23 freq, 0-11 slot - cum.
   */
  fast: Int32Array | undefined;
  /** freq << 16 | (slot - cum): one load gives both terms of the state update. */
  packed: Int32Array;
  /** The value a slot decodes to, or the table's escape sentinel. */
  values: Int16Array;
  /** Per table: the sentinel in `values` that marks the escape symbol (a value outside the table's range). */
  sentinels: Int32Array;
  /** Per table: the lowest and highest value coded without escape. */
  lows: Int32Array;
  highs: Int32Array;
}

/**
 * The context decoder's lookups (version-2 tables), small enough to stay in cache however many
 * tables there are: a zero test first (most latents are zero), else a bucket guess and a short scan.
 */
export interface CompactLookup {
  /** Per table: the first slot of the value 0, and its frequency (0 when 0 is outside the table). */
  zeroCum: Int32Array;
  zeroFreq: Int32Array;
  /** Per table, per slot >> (precision - BUCKET_BITS): the symbol holding the bucket's first slot. */
  buckets: Uint16Array;
  /** cum + freq of every symbol, laid out as `freqs`: a scan stops at the first end > slot. */
  ends: Int32Array;
  /**
   * When precision <= 12 and there are at most 256 tables: per (channel, context), as in the
   * context map, table << 24 | zero's cum << 12 | zero's freq, so that a zero costs one load.
   */
  packedMap: Int32Array | undefined;
  /**
   * With `packedMap`: each table's bucket guesses and symbols in one array, so that the 4-lane
   * decoder finds a non-zero symbol with a few loads from it. At t, the index R of table t's
   * part; from R, the index of the record of the symbol holding each bucket's first slot
   * (2^BUCKET_BITS of them); then a record per symbol: value << 16 | (cum + freq), and
   * freq << 12 | cum, with bit 31 set for the escape (whose value field is 0).
   */
  symbolLookup: Int32Array | undefined;
}

/** Buckets per table in the compact lookup. */
export const BUCKET_BITS = 8;

/**
 * A validated set of quantised frequency tables.
 *
 * @example
 * const tables = parseTables(await readFile('models/ls-f8-q2/tables.lst'))
 * tables.count // latent channels
 */
export class EntropyTables {
  readonly precision: number;
  readonly count: number;
  /** Per table: the value of symbol 0. */
  readonly offsets: Int32Array;
  /** Per table: number of symbols, escape included. */
  readonly sizes: Int32Array;
  /** Per table: index of its first frequency in `freqs`. */
  readonly starts: Int32Array;
  readonly freqs: Uint16Array;
  /** Cumulative frequencies, same layout as `freqs`. */
  readonly cums: Uint32Array;
  /** Version 2: how each value's table is chosen; undefined for version 1 (table c codes channel c). */
  readonly context: TableContext | undefined;
  #decode: DecodeLookup | undefined;
  #compact: CompactLookup | undefined;

  constructor(precision: number, specs: readonly TableSpec[], context?: ContextSpec) {
    if (!Number.isInteger(precision) || precision < MIN_PRECISION || precision > MAX_PRECISION) {
      throw new EntropyError('INVALID_TABLE', `Precision ${precision} is outside ${MIN_PRECISION}..${MAX_PRECISION} bits.`);
    }
    if (specs.length < 1 || specs.length > MAX_TABLES) {
      throw new EntropyError('INVALID_TABLE', `A table set holds 1..${MAX_TABLES} tables, not ${specs.length}.`);
    }
    this.precision = precision;
    this.count = specs.length;
    this.offsets = new Int32Array(specs.length);
    this.sizes = new Int32Array(specs.length);
    this.starts = new Int32Array(specs.length);
    let total = 0;
    specs.forEach((spec, t) => {
      const size = spec.freqs.length;
      const maxValue = spec.offset + size - 2;
      if (size < 2 || size > MAX_SYMBOLS || size > 1 << precision) {
        throw new EntropyError('INVALID_TABLE', `Table ${t} has ${size} symbols; allowed 2..${Math.min(MAX_SYMBOLS, 1 << precision)}.`);
      }
      if (!Number.isInteger(spec.offset) || spec.offset < -32768 || maxValue > 32767) {
        throw new EntropyError('INVALID_TABLE', `Table ${t} covers values outside the int16 range.`);
      }
      this.offsets[t] = spec.offset;
      this.sizes[t] = size;
      this.starts[t] = total;
      total += size;
    });
    this.freqs = new Uint16Array(total);
    this.cums = new Uint32Array(total);
    specs.forEach((spec, t) => {
      let cum = 0;
      for (let s = 0; s < spec.freqs.length; s++) {
        const f = spec.freqs[s];
        if (!Number.isInteger(f) || f < 1 || f > 0xffff) {
          throw new EntropyError('INVALID_TABLE', `Table ${t} symbol ${s} has frequency ${f}; each must be 1..65535.`);
        }
        this.freqs[this.starts[t] + s] = f;
        this.cums[this.starts[t] + s] = cum;
        cum += f;
      }
      if (cum !== 1 << precision) {
        throw new EntropyError('INVALID_TABLE', `Table ${t} frequencies sum to ${cum}, not 2^${precision}.`);
      }
    });
    this.context = context && checkContext(context, specs.length);
  }

  /** Latent channels the set codes: the context's channel count, or one table per channel. */
  get channels(): number {
    return this.context ? this.context.channels : this.count;
  }

  /** The decoder's lookups, built on first use (count x 2^precision x 6 bytes) and kept. */
  decodeLookup(): DecodeLookup {
    return (this.#decode ??= this.#buildDecodeLookup());
  }

  /**
   * The context decoder's lookups, built on first use (count x 520 bytes + 4 per symbol, and with
   * `packedMap` 4 per map entry, count x 1028 bytes and 8 per symbol more) and kept.
   */
  compactLookup(): CompactLookup {
    return (this.#compact ??= this.#buildCompactLookup());
  }

  #buildCompactLookup(): CompactLookup {
    const shift = this.precision - BUCKET_BITS;
    const zeroCum = new Int32Array(this.count);
    const zeroFreq = new Int32Array(this.count);
    const buckets = new Uint16Array(this.count << BUCKET_BITS);
    const ends = new Int32Array(this.freqs.length);
    for (let i = 0; i < ends.length; i++) ends[i] = this.cums[i] + this.freqs[i];
    for (let t = 0; t < this.count; t++) {
      const start = this.starts[t];
      const zero = -this.offsets[t];
      if (zero >= 0 && zero < this.sizes[t] - 1) {
        zeroCum[t] = this.cums[start + zero];
        zeroFreq[t] = this.freqs[start + zero];
      }
      for (let b = 0, s = 0; b < 1 << BUCKET_BITS; b++) {
        while (ends[start + s] <= b << shift) s++;
        buckets[(t << BUCKET_BITS) | b] = s;
      }
    }
    const ctx = this.context;
    let packedMap: Int32Array | undefined;
    let symbolLookup: Int32Array | undefined;
    if (ctx && this.precision <= 12 && this.count <= 256) {
      packedMap = new Int32Array(ctx.map.length);
      for (let i = 0; i < ctx.map.length; i++) {
        const t = ctx.map[i];
        packedMap[i] = (t << 24) | (zeroCum[t] << 12) | zeroFreq[t];
      }
      symbolLookup = new Int32Array(this.count * (1 + (1 << BUCKET_BITS)) + 2 * this.freqs.length);
      for (let t = 0, at = this.count; t < this.count; t++) {
        const start = this.starts[t];
        const records = at + (1 << BUCKET_BITS);
        symbolLookup[t] = at;
        for (let b = 0; b < 1 << BUCKET_BITS; b++) symbolLookup[at + b] = records + 2 * buckets[(t << BUCKET_BITS) | b];
        at = records;
        for (let s = 0; s < this.sizes[t]; s++, at += 2) {
          const escape = s === this.sizes[t] - 1;
          symbolLookup[at] = ((escape ? 0 : this.offsets[t] + s) << 16) | ends[start + s];
          symbolLookup[at + 1] = (escape ? 1 << 31 : 0) | (this.freqs[start + s] << 12) | this.cums[start + s];
        }
      }
    }
    return { zeroCum, zeroFreq, buckets, ends, packedMap, symbolLookup };
  }

  #buildDecodeLookup(): DecodeLookup {
    const p = this.precision;
    const packed = new Int32Array(this.count << p);
    const values = new Int16Array(this.count << p);
    const sentinels = new Int32Array(this.count);
    const lows = new Int32Array(this.count);
    const highs = new Int32Array(this.count);
    // The one-load lookup serves coder 1's unrolled loop; coder 2 decodes with `compactLookup()`.
    const fastFits = !this.context && p <= FAST_MAX_PRECISION && Math.max(...this.sizes) <= FAST_MAX_SYMBOLS;
    const fast = fastFits ? new Int32Array(this.count << p) : undefined;
    for (let t = 0; t < this.count; t++) {
      const size = this.sizes[t];
      const lo = this.offsets[t];
      const sentinel = lo > -32768 ? lo - 1 : lo + size - 1;
      sentinels[t] = sentinel;
      lows[t] = lo;
      highs[t] = lo + size - 2;
      for (let s = 0; s < size; s++) {
        const f = this.freqs[this.starts[t] + s];
        const cum = this.cums[this.starts[t] + s];
        const v = s === size - 1 ? sentinel : lo + s;
        for (let slot = cum; slot < cum + f; slot++) {
          packed[(t << p) | slot] = (f << 16) | (slot - cum);
          values[(t << p) | slot] = v;
          if (fast) fast[(t << p) | slot] = (s === size - 1 ? 1 << 31 : s << 24) | (f << 12) | (slot - cum);
        }
      }
    }
    return { fast, packed, values, sentinels, lows, highs };
  }
}

function checkContext(spec: ContextSpec, tableCount: number): TableContext {
  const fail = (why: string) => new EntropyError('INVALID_TABLE', `Context section: ${why}.`);
  const { kind, channels, cap, edges } = spec;
  if (kind !== CONTEXT_KIND_NZ_NEIGHBOUR) throw fail(`context kind ${kind} is not defined (1 = non-zero count x neighbours)`);
  if (!Number.isInteger(channels) || channels < 1 || channels > MAX_TABLES) throw fail(`${channels} channels; allowed 1..${MAX_TABLES}`);
  if (!Number.isInteger(cap) || cap < 0 || cap > MAX_CONTEXT_CAP) throw fail(`neighbour cap ${cap} is outside 0..${MAX_CONTEXT_CAP}`);
  if (edges.length > MAX_CONTEXT_BINS - 1) throw fail(`${edges.length + 1} bins; at most ${MAX_CONTEXT_BINS}`);
  edges.forEach((e, i) => {
    if (!Number.isInteger(e) || e < 1 || e > 255 || (i > 0 && e <= edges[i - 1])) {
      throw fail('bin edges must be 1..255 and strictly increasing');
    }
  });
  const contexts = (edges.length + 1) * (cap + 1);
  if (spec.map.length !== channels * contexts) throw fail(`the map holds ${spec.map.length} entries, not ${channels} x ${contexts}`);
  const map = Uint16Array.from(spec.map);
  for (let i = 0; i < map.length; i++) {
    if (map[i] !== spec.map[i] || map[i] >= tableCount) throw fail(`map entry ${i} names table ${spec.map[i]} of ${tableCount}`);
  }
  // z counts earlier channels: at most channels - 1 where it is used, channels after the last value.
  const binBase = new Uint16Array(channels + 1);
  for (let z = 0, bin = 0; z <= channels; z++) {
    while (bin < edges.length && edges[bin] <= z) bin++;
    binBase[z] = bin * (cap + 1);
  }
  return { kind, channels, cap, edges: [...edges], map, contexts, binBase };
}

/**
 * Parses a table file strictly (exact length, every frequency checked).
 *
 * @example
 * const tables = parseTables(bytes)
 */
export function parseTables(bytes: Uint8Array): EntropyTables {
  const fail = (why: string) => new EntropyError('INVALID_TABLE', `Entropy table file: ${why}.`);
  if (bytes.length < 8) throw fail('shorter than its header');
  for (let i = 0; i < 4; i++) if (bytes[i] !== TABLE_MAGIC[i]) throw fail('bad magic (expected 89 4C 53 54)');
  const version = bytes[4];
  if (version !== TABLE_VERSION && version !== CONTEXT_TABLE_VERSION) throw fail(`version ${version} is not supported`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const precision = bytes[5];
  const count = view.getUint16(6, true);
  if (count < 1 || count > MAX_TABLES) throw fail(`${count} tables; allowed 1..${MAX_TABLES}`);
  const specs: TableSpec[] = [];
  let pos = 8;
  for (let t = 0; t < count; t++) {
    if (bytes.length - pos < 4) throw fail(`cut short in table ${t}`);
    const offset = view.getInt16(pos, true);
    const size = view.getUint16(pos + 2, true);
    pos += 4;
    if (size > MAX_SYMBOLS) throw fail(`table ${t} has ${size} symbols; at most ${MAX_SYMBOLS}`);
    if (bytes.length - pos < 2 * size) throw fail(`cut short in table ${t}`);
    const freqs = new Uint16Array(size);
    for (let s = 0; s < size; s++) freqs[s] = view.getUint16(pos + 2 * s, true);
    pos += 2 * size;
    specs.push({ offset, freqs });
  }
  let context: ContextSpec | undefined;
  if (version === CONTEXT_TABLE_VERSION) {
    if (bytes.length - pos < 5) throw fail('cut short in its context section');
    const kind = bytes[pos];
    const channels = view.getUint16(pos + 1, true);
    const cap = bytes[pos + 3];
    const bins = bytes[pos + 4];
    if (bins < 1 || bins > MAX_CONTEXT_BINS) throw fail(`${bins} context bins; allowed 1..${MAX_CONTEXT_BINS}`);
    if (cap > MAX_CONTEXT_CAP) throw fail(`neighbour cap ${cap} is outside 0..${MAX_CONTEXT_CAP}`);
    pos += 5;
    const entries = channels * bins * (cap + 1);
    if (bytes.length - pos < bins - 1 + 2 * entries) throw fail('cut short in its context section');
    const edges = [...bytes.subarray(pos, pos + bins - 1)];
    pos += bins - 1;
    const map = new Uint16Array(entries);
    for (let i = 0; i < entries; i++, pos += 2) map[i] = view.getUint16(pos, true);
    context = { kind: kind as ContextSpec['kind'], channels, cap, edges, map };
  }
  if (pos !== bytes.length) throw fail(`${bytes.length - pos} bytes after the last ${context ? 'map entry' : 'table'}`);
  return new EntropyTables(precision, specs, context);
}

/**
 * Serialises tables to the file format above: the inverse of `parseTables`.
 *
 * @example
 * serializeTables(new EntropyTables(12, [{ offset: -2, freqs: [96, 3800, 100, 99, 1] }]))
 */
export function serializeTables(tables: EntropyTables): Uint8Array {
  const ctx = tables.context;
  const contextBytes = ctx ? 5 + ctx.edges.length + 2 * ctx.map.length : 0;
  const out = new Uint8Array(8 + 4 * tables.count + 2 * tables.freqs.length + contextBytes);
  const view = new DataView(out.buffer);
  out.set(TABLE_MAGIC, 0);
  out[4] = ctx ? CONTEXT_TABLE_VERSION : TABLE_VERSION;
  out[5] = tables.precision;
  view.setUint16(6, tables.count, true);
  let pos = 8;
  for (let t = 0; t < tables.count; t++) {
    view.setInt16(pos, tables.offsets[t], true);
    view.setUint16(pos + 2, tables.sizes[t], true);
    pos += 4;
    for (let s = 0; s < tables.sizes[t]; s++, pos += 2) view.setUint16(pos, tables.freqs[tables.starts[t] + s], true);
  }
  if (ctx) {
    out[pos] = ctx.kind;
    view.setUint16(pos + 1, ctx.channels, true);
    out[pos + 3] = ctx.cap;
    out[pos + 4] = ctx.edges.length + 1;
    out.set(ctx.edges, pos + 5);
    pos += 5 + ctx.edges.length;
    for (let i = 0; i < ctx.map.length; i++, pos += 2) view.setUint16(pos, ctx.map[i], true);
  }
  return out;
}
