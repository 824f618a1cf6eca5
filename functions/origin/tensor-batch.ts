/**
 * Joining requests into one batch along axis 0 and splitting a batch's outputs back, row-exact.
 */
import { DATATYPES, type Tensor } from './datatypes.ts';
import { OriginError } from './errors.ts';

/**
 * The key under which requests may share a batch: every input's dimensions after the first.
 *
 * @example
 * batchKey([{ name: 'latents', datatype: 'INT16', shape: [1, 4, 32, 48], data }]) // 'latents:4x32x48'
 */
export function batchKey(inputs: readonly Tensor[]): string {
  return inputs.map((t) => `${t.name}:${t.shape.slice(1).join('x')}`).join(';');
}

/**
 * Concatenates each input of several requests along axis 0. All requests must have the same batch
 * key and list inputs in the same order (the parser puts them in the model's order). One request is
 * returned as is, without a copy.
 *
 * @example
 * concatRows([[a], [b]])[0].shape // [a.shape[0] + b.shape[0], ...a.shape.slice(1)]
 */
export function concatRows(requests: readonly (readonly Tensor[])[]): Tensor[] {
  if (requests.length === 1) return [...requests[0]];
  return requests[0].map((first, j) => {
    let rows = 0;
    let length = 0;
    for (const r of requests) {
      rows += r[j].shape[0];
      length += r[j].data.length;
    }
    const data = new DATATYPES[first.datatype].array(length);
    let offset = 0;
    for (const r of requests) {
      (data as Int16Array).set(r[j].data as Int16Array, offset);
      offset += r[j].data.length;
    }
    return { name: first.name, datatype: first.datatype, shape: [rows, ...first.shape.slice(1)], data };
  });
}

/**
 * Splits a batch's outputs into one list per request, by the rows each contributed. The pieces are
 * views on the batch's memory, not copies.
 *
 * @example
 * const [mine, yours] = splitRows(outputs, [1, 2]); // mine[0].shape[0] === 1
 */
export function splitRows(outputs: readonly Tensor[], rows: readonly number[]): Tensor[][] {
  if (rows.length === 1) return [[...outputs]];
  const total = rows.reduce((a, b) => a + b, 0);
  const perRequest: Tensor[][] = rows.map(() => []);
  for (const out of outputs) {
    if (out.shape[0] !== total) {
      throw new OriginError('INTERNAL', `output '${out.name}' has ${out.shape[0]} rows for a batch of ${total}; the model's first axis is not a batch axis`);
    }
    const rowLength = total === 0 ? 0 : out.data.length / total;
    let start = 0;
    rows.forEach((n, i) => {
      const data = out.data.subarray(start * rowLength, (start + n) * rowLength);
      perRequest[i].push({ name: out.name, datatype: out.datatype, shape: [n, ...out.shape.slice(1)], data });
      start += n;
    });
  }
  return perRequest;
}
