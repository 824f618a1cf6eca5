import { describe, expect, it } from 'vitest';
import { EntropyError } from './errors.ts';
import { EntropyTables, parseTables, serializeTables } from './tables.ts';

const specs = [
  { offset: -2, freqs: [96, 3800, 100, 99, 1] },
  { offset: 0, freqs: [4095, 1] },
];

describe('entropy tables', () => {
  it('serialise and parse back to the same tables', () => {
    const tables = new EntropyTables(12, specs);
    const bytes = serializeTables(tables);
    expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x4c, 0x53, 0x54, 1, 12, 2, 0]);
    const back = parseTables(bytes);
    expect(back.precision).toBe(12);
    expect([...back.freqs]).toEqual([...tables.freqs]);
    expect([...back.offsets]).toEqual([-2, 0]);
    expect(serializeTables(back)).toEqual(bytes);
  });

  it('build a decode lookup whose slots map back to their symbols', () => {
    const { packed, values, fast, sentinels } = new EntropyTables(12, specs).decodeLookup();
    expect(values[0]).toBe(-2); // slots 0..95: value -2
    expect(values[96]).toBe(-1);
    expect(packed[96]).toBe((3800 << 16) | 0);
    expect(values[4095]).toBe(sentinels[0]); // the last slot is the escape
    expect(fast?.[4095]).toBeLessThan(0);
    expect(fast?.[97]).toBe((1 << 24) | (3800 << 12) | 1);
  });

  it('reject frequencies that do not sum to 2^precision, zero frequencies and bad precisions', () => {
    expect(() => new EntropyTables(12, [{ offset: 0, freqs: [4000, 1] }])).toThrowError(EntropyError);
    expect(() => new EntropyTables(12, [{ offset: 0, freqs: [4096, 0] }])).toThrowError(/frequency 0/);
    expect(() => new EntropyTables(7, [{ offset: 0, freqs: [127, 1] }])).toThrowError(/Precision/);
    expect(() => new EntropyTables(12, [{ offset: 0, freqs: [4096] }])).toThrowError(/symbols/);
    expect(() => new EntropyTables(12, [{ offset: 32767, freqs: [4094, 1, 1] }])).toThrowError(/int16/);
    expect(() => new EntropyTables(12, [])).toThrowError(/1\.\.1024/);
  });

  it('reject a truncated file, trailing bytes and a wrong magic', () => {
    const bytes = serializeTables(new EntropyTables(12, specs));
    for (let len = 0; len < bytes.length; len++) expect(() => parseTables(bytes.subarray(0, len))).toThrowError(EntropyError);
    expect(() => parseTables(Uint8Array.of(...bytes, 0))).toThrowError(/after the last table/);
    expect(() => parseTables(Uint8Array.of(0, ...bytes.subarray(1)))).toThrowError(/magic/);
  });

  describe('version 2: tables chosen by context', () => {
    const context = { kind: 1 as const, channels: 3, cap: 1, edges: [1, 2], map: [0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0] };

    it('serialise and parse back, with the per-count context base precomputed', () => {
      const tables = new EntropyTables(12, specs, context);
      expect(tables.channels).toBe(3);
      expect(tables.count).toBe(2);
      const bytes = serializeTables(tables);
      expect(bytes[4]).toBe(2);
      expect(bytes.length).toBe(8 + 4 * 2 + 2 * 7 + 5 + 2 + 2 * 18);
      const back = parseTables(bytes);
      expect([...(back.context?.map ?? [])]).toEqual(context.map);
      expect(back.context?.edges).toEqual([1, 2]);
      expect([...(back.context?.binBase ?? [])]).toEqual([0, 2, 4, 4]); // z = 0, 1, 2, 3 -> bins 0, 1, 2, 2, times cap + 1
      expect(serializeTables(back)).toEqual(bytes);
      expect(back.decodeLookup().fast).toBeUndefined(); // the context coder reads `packed` and `values`
    });

    it('reject a map entry past the last table, a bad map length, bad edges, caps and kinds', () => {
      expect(() => new EntropyTables(12, specs, { ...context, map: context.map.map((t, i) => (i === 5 ? 2 : t)) })).toThrowError(/map entry 5/);
      expect(() => new EntropyTables(12, specs, { ...context, map: context.map.slice(1) })).toThrowError(/holds 17/);
      expect(() => new EntropyTables(12, specs, { ...context, edges: [2, 2] })).toThrowError(/strictly increasing/);
      expect(() => new EntropyTables(12, specs, { ...context, edges: [0, 2] })).toThrowError(/strictly increasing/);
      expect(() => new EntropyTables(12, specs, { ...context, cap: 16 })).toThrowError(/cap/);
      expect(() => new EntropyTables(12, specs, { ...context, kind: 2 as 1 })).toThrowError(/kind 2/);
      expect(() => new EntropyTables(12, specs, { ...context, channels: 0, map: [] })).toThrowError(/channels/);
    });

    it('reject every truncation and trailing bytes', () => {
      const bytes = serializeTables(new EntropyTables(12, specs, context));
      for (let len = 0; len < bytes.length; len++) expect(() => parseTables(bytes.subarray(0, len))).toThrowError(EntropyError);
      expect(() => parseTables(Uint8Array.of(...bytes, 0))).toThrowError(/after the last map entry/);
      const noBins = Uint8Array.from(bytes);
      noBins[8 + 4 * 2 + 2 * 7 + 4] = 0;
      expect(() => parseTables(noBins)).toThrowError(/0 context bins/);
    });
  });
});

