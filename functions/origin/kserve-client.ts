/**
 * Client side of the KServe v2 inference protocol: encodes requests (JSON or binary tensors) and
 * decodes responses, checking every byte count. No platform API, so the edge (workerd), the tests and
 * the bench all speak to the origin, or to a stock Triton server, through the same code.
 */
import { DATATYPES, type Tensor, type TypedArray, elementCount, formatShape, isDatatype } from './datatypes.ts';
import { type EncodedBody, joinBody, toJsonData } from './kserve-body.ts';

/** A response that breaks the protocol (a byte count or shape that does not add up). */
export class KServeProtocolError extends Error {
  override readonly name = 'KServeProtocolError';
}

export interface ClientRequest {
  readonly id?: string;
  readonly inputs: readonly Tensor[];
  /** Send input data as binary tensors (default) or as JSON `data`. */
  readonly binaryInputs?: boolean;
  /** Outputs to return; all of the model's when omitted. */
  readonly outputs?: readonly { readonly name: string; readonly binary?: boolean }[];
  /** `parameters.binary_data_output`: return every output as binary unless it says otherwise. */
  readonly binaryOutputs?: boolean;
}

export interface ClientResponse {
  readonly modelName?: string;
  readonly modelVersion?: string;
  readonly id?: string;
  readonly outputs: Tensor[];
}

/**
 * Encodes an inference request body. Send `headerLength` as `Inference-Header-Content-Length` when it
 * is defined.
 *
 * @example
 * const { body, headerLength, contentType } = encodeInferRequest({
 *   inputs: [{ name: 'latents', datatype: 'INT16', shape: [1, 4, 2, 2], data: new Int16Array(16) }],
 *   binaryOutputs: true,
 * });
 */
export function encodeInferRequest(req: ClientRequest): EncodedBody {
  const binary = req.binaryInputs ?? true;
  const binaries: TypedArray[] = [];
  const inputs = req.inputs.map((t) => {
    const base = { name: t.name, shape: t.shape, datatype: t.datatype };
    if (!binary) return { ...base, data: toJsonData(t.data, t.datatype === 'BOOL') };
    binaries.push(t.data);
    return { ...base, parameters: { binary_data_size: t.data.byteLength } };
  });
  const header = {
    ...(req.id !== undefined && { id: req.id }),
    ...(req.binaryOutputs !== undefined && { parameters: { binary_data_output: req.binaryOutputs } }),
    inputs,
    ...(req.outputs && { outputs: req.outputs.map((o) => ({ name: o.name, ...(o.binary !== undefined && { parameters: { binary_data: o.binary } }) })) }),
  };
  return joinBody(header, binaries);
}

/**
 * Decodes an inference response body (already decompressed) into tensors.
 *
 * @example
 * const res = parseInferResponse(new Uint8Array(await r.arrayBuffer()), Number(r.headers.get('Inference-Header-Content-Length') ?? NaN) || undefined);
 * res.outputs.find((t) => t.name === 'classes')!.data // BigInt64Array
 */
export function parseInferResponse(body: Uint8Array, headerLength?: number): ClientResponse {
  const jsonLength = headerLength ?? body.length;
  if (jsonLength > body.length) throw new KServeProtocolError(`Inference-Header-Content-Length ${jsonLength} is over the body's ${body.length} bytes`);
  const header = JSON.parse(new TextDecoder().decode(body.subarray(0, jsonLength))) as {
    model_name?: string;
    model_version?: string;
    id?: string;
    outputs?: { name: string; datatype: string; shape: number[]; data?: unknown[]; parameters?: { binary_data_size?: number } }[];
  };
  if (!Array.isArray(header.outputs)) throw new KServeProtocolError("the response has no 'outputs' array");
  let offset = jsonLength;
  const outputs = header.outputs.map((o): Tensor => {
    if (!isDatatype(o.datatype)) throw new KServeProtocolError(`output '${o.name}' has datatype ${o.datatype}, which this client does not read`);
    const info = DATATYPES[o.datatype];
    const count = elementCount(o.shape);
    const size = o.parameters?.binary_data_size;
    if (size !== undefined) {
      if (size !== count * info.bytes) throw new KServeProtocolError(`output '${o.name}' has binary_data_size ${size}; ${o.datatype} ${formatShape(o.shape)} takes ${count * info.bytes}`);
      if (offset + size > body.length) throw new KServeProtocolError(`output '${o.name}' runs past the end of the body`);
      // Copy (`new Uint8Array(view)`; `slice` is a view on a Node Buffer): offsets are rarely aligned.
      const data = new info.array(new Uint8Array(body.subarray(offset, offset + size)).buffer, 0, count);
      offset += size;
      return { name: o.name, datatype: o.datatype, shape: o.shape, data };
    }
    const values = (o.data ?? []).flat(8) as (number | boolean)[];
    if (values.length !== count) throw new KServeProtocolError(`output '${o.name}' has ${values.length} elements; ${formatShape(o.shape)} needs ${count}`);
    const data = new info.array(count);
    const big = data instanceof BigInt64Array || data instanceof BigUint64Array;
    for (let i = 0; i < count; i++) {
      const v = values[i];
      const n = typeof v === 'boolean' ? (v ? 1 : 0) : v;
      if (big) (data as BigInt64Array)[i] = BigInt(n);
      else (data as Float64Array)[i] = n;
    }
    return { name: o.name, datatype: o.datatype, shape: o.shape, data };
  });
  if (offset !== body.length) throw new KServeProtocolError(`the response has ${body.length - offset} bytes after its last binary output`);
  return {
    outputs,
    ...(header.model_name !== undefined && { modelName: header.model_name }),
    ...(header.model_version !== undefined && { modelVersion: header.model_version }),
    ...(header.id !== undefined && { id: header.id }),
  };
}
