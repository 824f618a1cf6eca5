/**
 * The KServe v2 / Triton HTTP inference protocol with the binary tensor extension: request bodies
 * the edge sends and the response bodies it accepts (binary outputs or plain JSON `data`).
 *
 *   body = JSON header (UTF-8, Inference-Header-Content-Length bytes) ++ tensor bytes, back to back,
 *          each input's and output's size in its `parameters.binary_data_size`
 *
 * Pure functions over bytes: no I/O, no platform API beyond TextEncoder.
 */

export const HEADER_LENGTH_HEADER = 'inference-header-content-length';

/** Element size in bytes of the datatypes the edge reads or writes. */
const DATATYPE_BYTES = { BOOL: 1, UINT8: 1, INT8: 1, INT16: 2, UINT16: 2, INT32: 4, UINT32: 4, INT64: 8, FP32: 4, FP64: 8 } as const;
export type Datatype = keyof typeof DATATYPE_BYTES;

/** An output tensor, its values widened to numbers (INT64 within 2^53, as class indices are). */
export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  values: ArrayLike<number>;
}

/** The protocol's violations, all the origin's fault (502 at the edge). */
export class KserveError extends Error {
  override readonly name = 'KserveError';
}

/**
 * An infer request carrying one INT16 input as binary data and asking for `outputs` as binary data.
 *
 * @example
 * const { body, headerLength } = encodeInferRequest('req-1', 'latents', [1, 64, 64, 96], latentBytes, ['scores', 'classes'])
 */
export function encodeInferRequest(
  id: string,
  inputName: string,
  shape: number[],
  data: Uint8Array,
  outputs: string[],
): { body: Uint8Array; headerLength: number } {
  const header = new TextEncoder().encode(
    JSON.stringify({
      id,
      inputs: [{ name: inputName, datatype: 'INT16', shape, parameters: { binary_data_size: data.length } }],
      outputs: outputs.map((name) => ({ name, parameters: { binary_data: true } })),
    }),
  );
  const body = new Uint8Array(header.length + data.length);
  body.set(header, 0);
  body.set(data, header.length);
  return { body, headerLength: header.length };
}

/**
 * Int16 latents as little-endian bytes, the byte order of the binary tensor extension. A view, not
 * a copy, on little-endian hosts (every host workerd runs on).
 *
 * @example
 * int16Bytes(Int16Array.of(1, -1)) // 01 00 ff ff
 */
export function int16Bytes(values: Int16Array): Uint8Array {
  const view = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (LITTLE_ENDIAN) return view;
  const out = new Uint8Array(view.length);
  for (let i = 0; i < view.length; i += 2) {
    out[i] = view[i + 1];
    out[i + 1] = view[i];
  }
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

interface OutputHeader {
  name?: unknown;
  datatype?: unknown;
  shape?: unknown;
  data?: unknown;
  parameters?: { binary_data_size?: unknown };
}

/**
 * Reads an infer response: a JSON header followed by binary outputs when `headerLength` is given
 * (the Inference-Header-Content-Length response header), else plain JSON with `data` arrays. Throws
 * `KserveError` for anything malformed, so that a bad origin never yields a wrong answer.
 *
 * @example
 * const outputs = decodeInferResponse(bytes, Number(response.headers.get(HEADER_LENGTH_HEADER)))
 * outputs.get('scores')?.values
 */
export function decodeInferResponse(bytes: Uint8Array, headerLength: number | undefined): Map<string, Tensor> {
  const jsonLength = headerLength ?? bytes.length;
  if (!Number.isSafeInteger(jsonLength) || jsonLength < 2 || jsonLength > bytes.length) {
    throw new KserveError(`the inference header length ${headerLength} does not fit a ${bytes.length}-byte body`);
  }
  let header: { outputs?: unknown };
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, jsonLength)));
  } catch {
    throw new KserveError('the inference header is not JSON');
  }
  if (!Array.isArray(header?.outputs)) throw new KserveError('the response has no outputs array');
  const tensors = new Map<string, Tensor>();
  let at = jsonLength;
  for (const o of header.outputs as OutputHeader[]) {
    const name = o?.name;
    const datatype = o?.datatype;
    if (typeof name !== 'string') throw new KserveError('an output has no name');
    if (typeof datatype !== 'string' || !(datatype in DATATYPE_BYTES)) throw new KserveError(`output ${name} has datatype ${String(datatype)}`);
    const shape = o.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new KserveError(`output ${name} has no valid shape`);
    const count = shape.reduce((a: number, d: number) => a * d, 1);
    const dtype = datatype as Datatype;
    const size = o.parameters?.binary_data_size;
    let values: ArrayLike<number>;
    if (size !== undefined) {
      if (size !== count * DATATYPE_BYTES[dtype] || at + size > bytes.length) {
        throw new KserveError(`output ${name}: binary_data_size ${String(size)} does not match shape [${shape.join(', ')}] of ${dtype}`);
      }
      values = readBinary(bytes.subarray(at, at + size), dtype, count);
      at += size;
    } else {
      const data = Array.isArray(o.data) ? (o.data as unknown[]).flat(Infinity) : undefined;
      if (!data || data.length !== count || !data.every((v) => typeof v === 'number' || typeof v === 'boolean')) {
        throw new KserveError(`output ${name} has neither binary data nor ${count} JSON values`);
      }
      values = data.map(Number);
    }
    tensors.set(name, { name, datatype: dtype, shape: shape as number[], values });
  }
  if (at !== bytes.length) throw new KserveError(`${bytes.length - at} bytes follow the last output`);
  return tensors;
}

function readBinary(bytes: Uint8Array, datatype: Datatype, count: number): ArrayLike<number> {
  if (datatype === 'UINT8' || datatype === 'BOOL') return bytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = datatype === 'FP32' || datatype === 'FP64' ? new Float64Array(count) : new Array<number>(count);
  for (let i = 0; i < count; i++) {
    switch (datatype) {
      case 'INT8': out[i] = view.getInt8(i); break;
      case 'INT16': out[i] = view.getInt16(2 * i, true); break;
      case 'UINT16': out[i] = view.getUint16(2 * i, true); break;
      case 'INT32': out[i] = view.getInt32(4 * i, true); break;
      case 'UINT32': out[i] = view.getUint32(4 * i, true); break;
      // Low word unsigned plus the signed high word times 2^32: exact within 2^53, no BigInt.
      case 'INT64': out[i] = view.getUint32(8 * i, true) + view.getInt32(8 * i + 4, true) * 4294967296; break;
      case 'FP32': out[i] = view.getFloat32(4 * i, true); break;
      case 'FP64': out[i] = view.getFloat64(8 * i, true); break;
    }
  }
  return out;
}
