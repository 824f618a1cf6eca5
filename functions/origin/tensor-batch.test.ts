import { describe, expect, it } from 'vitest';
import type { Tensor } from './datatypes.ts';
import { OriginError } from './errors.ts';
import { batchKey, concatRows, splitRows } from './tensor-batch.ts';

const latents = (rows: number, start: number): Tensor => ({
  name: 'latents',
  datatype: 'INT16',
  shape: [rows, 2, 1, 1],
  data: Int16Array.from({ length: rows * 2 }, (_, i) => start + i),
});

describe('concatRows and splitRows', () => {
  it('concatenates along axis 0 in request order and splits outputs back by rows', () => {
    const requests = [[latents(1, 0)], [latents(2, 10)], [latents(1, 20)]];
    const [batch] = concatRows(requests);
    expect(batch.shape).toEqual([4, 2, 1, 1]);
    expect([...batch.data]).toEqual([0, 1, 10, 11, 12, 13, 20, 21]);

    // A fake model: one output row per input row, holding the row's first value.
    const out: Tensor = { name: 'first', datatype: 'INT64', shape: [4, 1], data: new BigInt64Array([0n, 10n, 12n, 20n]) };
    const split = splitRows([out], [1, 2, 1]);
    expect(split.map((r) => r[0].shape)).toEqual([[1, 1], [2, 1], [1, 1]]);
    expect(split.map((r) => [...r[0].data])).toEqual([[0n], [10n, 12n], [20n]]);
  });

  it('passes a single request through without copying', () => {
    const only = latents(2, 0);
    expect(concatRows([[only]])[0]).toBe(only);
    const out: Tensor = { name: 'y', datatype: 'FP32', shape: [2], data: new Float32Array(2) };
    expect(splitRows([out], [2])[0][0]).toBe(out);
  });

  it('refuses outputs whose first axis is not the batch', () => {
    const out: Tensor = { name: 'y', datatype: 'FP32', shape: [3, 5], data: new Float32Array(15) };
    expect(() => splitRows([out], [1, 1])).toThrow(OriginError);
  });

  it('keys requests by every dimension but the first', () => {
    expect(batchKey([latents(1, 0)])).toBe(batchKey([latents(3, 0)]));
    expect(batchKey([latents(1, 0)])).not.toBe(batchKey([{ ...latents(1, 0), shape: [1, 2, 2, 1] }]));
  });
});
