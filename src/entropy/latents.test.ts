import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { idealBits, mulberry32, syntheticLatents } from '../../test/support/synthetic.ts';
import { EntropyError } from './errors.ts';
import { decodeLatents, encodeLatents } from './latents.ts';
import { EntropyTables, type TableSpec } from './tables.ts';

/** A random valid table: 2..min(64, 2^P) symbols, frequencies >= 1 summing to 2^P. */
const tableArb = (precision: number) =>
  fc
    .record({
      offset: fc.integer({ min: -40, max: 10 }),
      weights: fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 2, maxLength: Math.min(64, 1 << precision) }),
    })
    .map(({ offset, weights }): TableSpec => {
      const total = 1 << precision;
      const freqs = weights.map(() => 1);
      let left = total - freqs.length;
      const sum = weights.reduce((a, b) => a + b, 0) || 1;
      weights.forEach((w, i) => {
        const add = Math.min(left, Math.floor((w / sum) * (total - weights.length)));
        freqs[i] += add;
        left -= add;
      });
      freqs[0] += left;
      return { offset, freqs };
    });

const caseArb = fc
  .record({
    precision: fc.integer({ min: 8, max: 16 }),
    channels: fc.integer({ min: 1, max: 6 }),
    height: fc.integer({ min: 1, max: 9 }),
    width: fc.integer({ min: 1, max: 11 }),
    lanes: fc.integer({ min: 1, max: 8 }),
  })
  .chain((c) =>
    fc.record({
      ...Object.fromEntries(Object.entries(c).map(([k, v]) => [k, fc.constant(v)])),
      tables: fc.array(tableArb(c.precision), { minLength: c.channels, maxLength: c.channels }),
      // Mostly small values, some far outside any table, the int16 extremes included, and whole zero channels.
      values: fc.array(
        fc.oneof(
          { weight: 8, arbitrary: fc.integer({ min: -4, max: 4 }) },
          { weight: 1, arbitrary: fc.integer({ min: -32768, max: 32767 }) },
          { weight: 1, arbitrary: fc.constantFrom(-32768, 32767, 0) },
        ),
        { minLength: c.channels * c.height * c.width, maxLength: c.channels * c.height * c.width },
      ),
      zeroChannel: fc.integer({ min: -1, max: c.channels - 1 }),
    }),
  ) as fc.Arbitrary<{
  precision: number; channels: number; height: number; width: number; lanes: number;
  tables: TableSpec[]; values: number[]; zeroChannel: number;
}>;

describe('encodeLatents and decodeLatents', () => {
  it('round-trip random tables, shapes, lane counts and int16 values, escapes included', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const tables = new EntropyTables(c.precision, c.tables);
        const shape = { channels: c.channels, height: c.height, width: c.width };
        const latents = Int16Array.from(c.values);
        const n = c.height * c.width;
        if (c.zeroChannel >= 0) latents.fill(0, c.zeroChannel * n, (c.zeroChannel + 1) * n);
        const body = encodeLatents(latents, shape, tables, { lanes: c.lanes });
        expect([...decodeLatents(body, shape, tables)]).toEqual([...latents]);
      }),
      { numRuns: 400, seed: 20261126 },
    );
  });

  it('round-trip codec-shaped latents on the 4-lane fast path and a reused output buffer', () => {
    const shape = { channels: 24, height: 17, width: 23 };
    const { latents, tables } = syntheticLatents(shape, { seed: 5, minScale: 0.05, maxScale: 6 });
    latents[100] = 30000; // an escape inside a 4-symbol group of the fast loop
    latents[shape.height * shape.width * 3 + 7] = -32768;
    const body = encodeLatents(latents, shape, tables);
    const out = new Int16Array(latents.length).fill(99);
    expect(decodeLatents(body, shape, tables, out)).toBe(out);
    expect(out).toEqual(latents);
  });

  it('skip all-zero channels: they cost no symbols', () => {
    const shape = { channels: 4, height: 8, width: 8 };
    const { tables } = syntheticLatents(shape, { seed: 1 });
    const latents = new Int16Array(4 * 64);
    latents[64 * 2 + 5] = 1;
    const body = encodeLatents(latents, shape, tables);
    expect(body[2]).toBe(0b1011); // channels 0, 1 and 3 flagged
    expect(decodeLatents(body, shape, tables)).toEqual(latents);
  });

  it('code within 0.5% of the ideal size under the quantised tables', () => {
    const shape = { channels: 32, height: 32, width: 48 };
    const { latents, tables } = syntheticLatents(shape, { seed: 11 });
    const bytes = encodeLatents(latents, shape, tables).length;
    const ideal = idealBits(latents, shape, tables) / 8;
    expect(bytes).toBeGreaterThanOrEqual(ideal);
    expect(bytes / ideal - 1).toBeLessThan(0.005);
  });

  it('reject a shape that disagrees with the tables or the values', () => {
    const { tables } = syntheticLatents({ channels: 2, height: 2, width: 2 }, { seed: 1 });
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return e instanceof EntropyError ? e.code : 'untyped';
      }
      return 'accepted';
    };
    expect(code(() => encodeLatents(new Int16Array(8), { channels: 3, height: 2, width: 2 }, tables))).toBe('SHAPE_MISMATCH');
    expect(code(() => encodeLatents(new Int16Array(7), { channels: 2, height: 2, width: 2 }, tables))).toBe('SHAPE_MISMATCH');
    expect(code(() => encodeLatents(new Int16Array(8), { channels: 2, height: 2, width: 2 }, tables, { lanes: 9 }))).toBe('SHAPE_MISMATCH');
    expect(code(() => decodeLatents(new Uint8Array(40), { channels: 2, height: 0, width: 2 }, tables))).toBe('SHAPE_MISMATCH');
  });
});

describe('coder 2: tables chosen by context', () => {
  /** A random context spec over `tables` tables for `channels` channels. */
  const contextArb = (channels: number, tables: number) =>
    fc
      .record({
        cap: fc.integer({ min: 0, max: 4 }),
        edges: fc.uniqueArray(fc.integer({ min: 1, max: 8 }), { maxLength: 4 }).map((e) => e.sort((a, b) => a - b)),
      })
      .chain(({ cap, edges }) =>
        fc.record({
          kind: fc.constant(1 as const),
          channels: fc.constant(channels),
          cap: fc.constant(cap),
          edges: fc.constant(edges),
          map: fc.array(fc.integer({ min: 0, max: tables - 1 }), {
            minLength: channels * (edges.length + 1) * (cap + 1),
            maxLength: channels * (edges.length + 1) * (cap + 1),
          }),
        }),
      );

  it('round-trip random context specs, shapes, lane counts and int16 values, escapes included', () => {
    fc.assert(
      fc.property(
        caseArb.chain((c) => fc.record({ c: fc.constant(c), context: contextArb(c.channels, c.tables.length) })),
        ({ c, context }) => {
          const tables = new EntropyTables(c.precision, c.tables, context);
          const shape = { channels: c.channels, height: c.height, width: c.width };
          const latents = Int16Array.from(c.values);
          const n = c.height * c.width;
          if (c.zeroChannel >= 0) latents.fill(0, c.zeroChannel * n, (c.zeroChannel + 1) * n);
          const body = encodeLatents(latents, shape, tables, { lanes: c.lanes });
          expect(body[0]).toBe(2);
          expect([...decodeLatents(body, shape, tables)]).toEqual([...latents]);
        },
      ),
      { numRuns: 300, seed: 20261127 },
    );
  });

  it('code what coder 1 codes when every context of a channel maps to its table, in the same words', () => {
    const shape = { channels: 6, height: 9, width: 13 };
    const { latents, tables } = syntheticLatents(shape, { seed: 9, minScale: 0.2, maxScale: 4 });
    const specs = [...tables.offsets].map((offset, t) => ({ offset, freqs: tables.freqs.subarray(tables.starts[t], tables.starts[t] + tables.sizes[t]) }));
    const perChannel = new EntropyTables(12, specs, {
      kind: 1, channels: 6, cap: 2, edges: [1, 3], map: Array.from({ length: 6 * 9 }, (_, i) => Math.floor(i / 9)),
    });
    const one = encodeLatents(latents, shape, tables);
    const two = encodeLatents(latents, shape, perChannel);
    expect([...two.subarray(1)]).toEqual([...one.subarray(1)]);
    expect(decodeLatents(two, shape, perChannel)).toEqual(latents);
    expect(() => decodeLatents(one, shape, perChannel)).toThrowError(/does not match/);
  });

  it('round-trip on the 4-lane fast path (precision 12, <= 256 tables), escapes and a dirty output buffer included', () => {
    const shape = { channels: 12, height: 13, width: 17 };
    const { latents, tables } = syntheticLatents(shape, { seed: 21, minScale: 0.05, maxScale: 5 });
    const specs = [...tables.offsets].map((offset, t) => ({ offset, freqs: tables.freqs.subarray(tables.starts[t], tables.starts[t] + tables.sizes[t]) }));
    const map = Array.from({ length: 12 * 3 * 4 }, (_, i) => (i * 5 + (i >> 2)) % 12);
    const ctx = new EntropyTables(12, specs, { kind: 1, channels: 12, cap: 3, edges: [1, 3], map });
    expect(ctx.compactLookup().packedMap).toBeDefined();
    latents[40] = 30000;
    latents[13 * 17 * 5 + 16] = -32768; // the end of a row: the next row's |left| starts at 0 again
    latents[13 * 17 * 6] = 32767; // a channel's first value: its |up| is 0
    const body = encodeLatents(latents, shape, ctx);
    const out = new Int16Array(latents.length).fill(-7);
    expect(decodeLatents(body, shape, ctx, out)).toBe(out);
    expect(out).toEqual(latents);
    // The general loop (3 lanes) decodes the same values.
    expect(decodeLatents(encodeLatents(latents, shape, ctx, { lanes: 3 }), shape, ctx)).toEqual(latents);
  });

  it('round-trip the 4-lane path\'s fallbacks: long scans, escapes at row and channel ends, tables without 0', () => {
    // Table 0: a wide zero, then values whose 1..3 slots are narrower than a bucket (16 slots at
    // precision 12), so a scan often passes several symbols. Table 1 has no 0: every value leaves the
    // zero loop. Table 2 is tiny, so most values escape.
    const narrow = Array.from({ length: 21 }, (_, s) => (s === 10 ? 0 : 1 + (s % 3)));
    narrow[10] = 4096 - narrow.reduce((a, b) => a + b, 0) - 1;
    const specs: TableSpec[] = [
      { offset: -10, freqs: [...narrow, 1] },
      { offset: 1, freqs: [1000, 1000, 1000, 1000, 96] },
      { offset: 0, freqs: [4000, 96] },
    ];
    const rand = mulberry32(31);
    for (const shape of [{ channels: 6, height: 7, width: 1 }, { channels: 5, height: 9, width: 13 }, { channels: 3, height: 4, width: 6 }]) {
      const cap = 2;
      const edges = [1, 3];
      const map = Array.from({ length: shape.channels * 3 * (cap + 1) }, () => Math.floor(rand() * 3));
      const tables = new EntropyTables(12, specs, { kind: 1, channels: shape.channels, cap, edges, map });
      expect(tables.compactLookup().symbolLookup).toBeDefined();
      const n = shape.height * shape.width;
      const latents = Int16Array.from({ length: shape.channels * n }, () => (rand() < 0.6 ? 0 : Math.round((rand() - 0.5) * 26)));
      latents.fill(0, n, 2 * n); // a skipped channel
      for (let c = 0; c < shape.channels; c += 2) {
        latents[c * n + n - 1] = -32768; // a channel's last value
        latents[c * n + shape.width - 1] = 999; // the end of its first row
        if (shape.height > 2) latents[c * n + 2 * shape.width] = 1234; // the start of its third row
      }
      const body = encodeLatents(latents, shape, tables);
      expect(body[1]).toBe(4);
      expect(decodeLatents(body, shape, tables)).toEqual(latents);
      expect(decodeLatents(body, shape, tables, new Int16Array(latents.length).fill(3))).toEqual(latents);
      expect(decodeLatents(encodeLatents(latents, shape, tables, { lanes: 3 }), shape, tables)).toEqual(latents);
    }
  });

  it('reject every truncation and every extension', () => {
    const shape = { channels: 5, height: 10, width: 12 };
    const { latents, tables } = syntheticLatents(shape, { seed: 3, minScale: 0.5, maxScale: 3 });
    const specs = [...tables.offsets].map((offset, t) => ({ offset, freqs: tables.freqs.subarray(tables.starts[t], tables.starts[t] + tables.sizes[t]) }));
    const ctx = new EntropyTables(12, specs, { kind: 1, channels: 5, cap: 1, edges: [1], map: Array.from({ length: 20 }, (_, i) => (i * 7) % 5) });
    const body = encodeLatents(latents, shape, ctx);
    for (let len = 0; len < body.length; len++) {
      expect(() => decodeLatents(body.subarray(0, len), shape, ctx), `cut at ${len}`).toThrowError(EntropyError);
    }
    expect(() => decodeLatents(Uint8Array.of(...body, 0, 0), shape, ctx)).toThrowError(EntropyError);
  });
});

describe('decodeLatents on a corrupt payload', () => {
  const shape = { channels: 8, height: 12, width: 16 };
  const { latents, tables } = syntheticLatents(shape, { seed: 2, minScale: 0.5, maxScale: 3 });
  const body = encodeLatents(latents, shape, tables);
  const code = (bytes: Uint8Array) => {
    try {
      decodeLatents(bytes, shape, tables);
    } catch (e) {
      if (e instanceof EntropyError) return e.code;
      throw e;
    }
    return 'accepted';
  };

  it('rejects every truncation and every extension', () => {
    for (let len = 0; len < body.length; len++) expect(code(body.subarray(0, len)), `cut at ${len}`).not.toBe('accepted');
    const longer = new Uint8Array(body.length + 2);
    longer.set(body);
    expect(code(longer)).toBe('CORRUPT_PAYLOAD');
  });

  it('rejects an unknown coder, a bad lane count and skip bits past the last channel', () => {
    expect(code(Uint8Array.of(3, ...body.subarray(1)))).toBe('UNSUPPORTED_CODER');
    // Coder 2 needs version-2 tables: with these (version 1) it is a corrupt stream, not a new coder.
    expect(code(Uint8Array.of(2, ...body.subarray(1)))).toBe('CORRUPT_PAYLOAD');
    expect(code(Uint8Array.of(1, 0, ...body.subarray(2)))).toBe('CORRUPT_PAYLOAD');
    expect(code(Uint8Array.of(1, 9, ...body.subarray(2)))).toBe('CORRUPT_PAYLOAD');
    const odd = syntheticLatents({ channels: 3, height: 2, width: 2 }, { seed: 4 });
    const small = encodeLatents(odd.latents, odd.shape, odd.tables);
    small[2] |= 0x80;
    expect(() => decodeLatents(small, odd.shape, odd.tables)).toThrowError(/past the last/);
  });

  it('rejects most single-byte corruptions of the word stream and never throws anything untyped', () => {
    let accepted = 0;
    for (let i = 2; i < body.length; i++) {
      for (const mask of [0x01, 0x10, 0xff]) {
        const bad = body.slice();
        bad[i] ^= mask;
        if (code(bad) === 'accepted') accepted++;
      }
    }
    // Without the container's checksum a corruption can decode to other valid latents, but the
    // final-state and length checks catch nearly all of them.
    expect(accepted / (3 * (body.length - 2))).toBeLessThan(0.01);
  });
});
