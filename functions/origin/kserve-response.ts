/**
 * Server side of a KServe v2 inference response: outputs as JSON `data` or, when asked for, as binary
 * tensor data after the JSON. No platform API.
 */
import type { Tensor } from './datatypes.ts';
import { type EncodedBody, joinBody, toJsonData } from './kserve-body.ts';

export interface InferResponse {
  readonly modelName: string;
  readonly modelVersion?: string;
  /** The request's `id`, echoed when it had one. */
  readonly id?: string;
  readonly outputs: readonly { readonly tensor: Tensor; readonly binary: boolean }[];
}

/**
 * Encodes an inference response body; binary outputs follow the JSON in the order they are listed.
 *
 * @example
 * const { body, headerLength, contentType } = encodeInferResponse({ modelName: 'cls-test', outputs: [{ tensor, binary: true }] });
 */
export function encodeInferResponse(res: InferResponse): EncodedBody {
  const binaries = [];
  const outputs = [];
  for (const { tensor, binary } of res.outputs) {
    const base = { name: tensor.name, datatype: tensor.datatype, shape: tensor.shape };
    if (binary) {
      outputs.push({ ...base, parameters: { binary_data_size: tensor.data.byteLength } });
      binaries.push(tensor.data);
    } else {
      outputs.push({ ...base, data: toJsonData(tensor.data, tensor.datatype === 'BOOL') });
    }
  }
  const header = {
    model_name: res.modelName,
    ...(res.modelVersion !== undefined && { model_version: res.modelVersion }),
    ...(res.id !== undefined && { id: res.id }),
    outputs,
  };
  return joinBody(header, binaries);
}
