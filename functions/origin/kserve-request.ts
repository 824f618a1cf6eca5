/**
 * Server side of a KServe v2 inference request: JSON tensors and the binary tensor data extension,
 * checked against the model's signature. Every name, datatype, shape and byte count is validated
 * before any tensor memory is allocated. No platform API (runs in Node and workerd).
 */
import { DATATYPES, type Tensor, type TensorSpec, type TypedArray, elementCount, formatShape, isDatatype } from './datatypes.ts';
import { OriginError } from './errors.ts';

/** What the server knows about a model when it parses a request for it. */
export interface ModelSignature {
  readonly name: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /** Most rows a request may carry along axis 0; 0 when the model has no batch axis. */
  readonly maxBatch: number;
}

export interface RequestedOutput {
  readonly name: string;
  /** Return it in the binary section (`binary_data`) rather than as JSON `data`. */
  readonly binary: boolean;
}

/** A validated request: inputs in the model's input order, ready to feed, each in a buffer of its own. */
export interface InferRequest {
  readonly id?: string;
  readonly inputs: Tensor[];
  readonly outputs: RequestedOutput[];
  /** Rows along the batch axis (1 for a model without one). */
  readonly rows: number;
}

/** Hard limits against hostile headers, on top of the body size limit. */
const MAX_RANK = 8;
const MAX_DIM = 0x7fffffff;
const MAX_ID_LENGTH = 256;

const bad = (message: string) => new OriginError('BAD_REQUEST', message);

/**
 * Parses and validates an inference request body (already decompressed). `headerLength` is the
 * `Inference-Header-Content-Length` header: the JSON's byte length, with binary tensor data after it.
 * Throws OriginError('BAD_REQUEST') with a message that names the input and what was wrong.
 *
 * @example
 * const req = parseInferRequest(body, 123, { name: 'cls-test', inputs, outputs, maxBatch: 16 });
 * req.inputs[0].data // Int16Array
 */
export function parseInferRequest(body: Uint8Array, headerLength: number | undefined, model: ModelSignature): InferRequest {
  const jsonLength = headerLength ?? body.length;
  if (!Number.isSafeInteger(jsonLength) || jsonLength <= 0 || jsonLength > body.length) {
    throw bad(`Inference-Header-Content-Length is ${headerLength} but the body has ${body.length} bytes; it must be the JSON header's length, at least 1 and at most the body's`);
  }
  const header = parseJsonObject(body.subarray(0, jsonLength));
  const binary = body.subarray(jsonLength);

  const id = header.id;
  if (id !== undefined && (typeof id !== 'string' || id.length > MAX_ID_LENGTH)) throw bad(`'id' must be a string of at most ${MAX_ID_LENGTH} characters`);
  const requestParams = optionalObject(header.parameters, "request 'parameters'");
  const binaryOutputDefault = optionalBoolean(requestParams?.binary_data_output, "parameters.binary_data_output");

  // Pass 1: check every input's metadata and byte count against the model; allocate nothing.
  if (!Array.isArray(header.inputs) || header.inputs.length === 0) throw bad("'inputs' must be a non-empty array of tensors");
  const plans: InputPlan[] = [];
  const seen = new Set<string>();
  let binaryOffset = 0;
  for (const [i, raw] of header.inputs.entries()) {
    const plan = planInput(raw, i, model, binaryOffset);
    if (seen.has(plan.spec.name)) throw bad(`input '${plan.spec.name}' is given twice`);
    seen.add(plan.spec.name);
    if (plan.binaryOffset !== undefined) binaryOffset += plan.bytes;
    plans.push(plan);
  }
  const missing = model.inputs.filter((s) => !seen.has(s.name)).map((s) => `'${s.name}'`);
  if (missing.length) throw bad(`missing input ${missing.join(', ')} for model '${model.name}'`);
  if (binaryOffset !== binary.length) {
    throw bad(`the binary section has ${binary.length} bytes after the ${jsonLength}-byte JSON header, but the inputs' binary_data_size add up to ${binaryOffset}`);
  }
  const rows = model.maxBatch > 0 ? checkBatch(plans, model) : 1;
  const outputs = parseOutputs(header.outputs, model, binaryOutputDefault ?? false);

  // Pass 2: every size is proven consistent; now materialise the tensors.
  const byName = new Map(plans.map((p) => [p.spec.name, p]));
  const inputs = model.inputs.map((spec) => materialise(byName.get(spec.name)!, binary));
  return { ...(id !== undefined && { id: id as string }), inputs, outputs, rows };
}

interface InputPlan {
  spec: TensorSpec;
  shape: number[];
  count: number;
  bytes: number;
  /** Offset in the binary section, or undefined when the data is JSON. */
  binaryOffset?: number;
  json?: unknown[];
}

function planInput(raw: unknown, index: number, model: ModelSignature, binaryOffset: number): InputPlan {
  if (!isObject(raw)) throw bad(`inputs[${index}] must be an object with name, shape, datatype and data`);
  const name = raw.name;
  if (typeof name !== 'string') throw bad(`inputs[${index}].name must be a string`);
  const spec = model.inputs.find((s) => s.name === name);
  if (!spec) throw bad(`model '${model.name}' has no input '${name}'; its inputs: ${model.inputs.map((s) => `'${s.name}'`).join(', ')}`);

  const datatype = raw.datatype;
  if (typeof datatype !== 'string') throw bad(`input '${name}': 'datatype' must be a string such as ${spec.datatype}`);
  if (datatype !== spec.datatype) {
    const known = isDatatype(datatype) || datatype === 'BYTES' ? '' : ' (not a KServe datatype)';
    throw bad(`input '${name}' has datatype ${datatype}${known}; model '${model.name}' expects ${spec.datatype}`);
  }
  const shape = parseShape(raw.shape, name);
  checkShape(shape, spec, model.name);
  let count: number;
  try {
    count = elementCount(shape);
  } catch {
    throw bad(`input '${name}' shape ${formatShape(shape)} is too large`);
  }
  const bytes = count * DATATYPES[spec.datatype].bytes;

  const params = optionalObject(raw.parameters, `input '${name}' parameters`);
  const binarySize = params?.binary_data_size;
  const hasData = raw.data !== undefined;
  if (binarySize !== undefined) {
    if (hasData) throw bad(`input '${name}' has both 'data' and parameters.binary_data_size; give one`);
    if (typeof binarySize !== 'number' || !Number.isSafeInteger(binarySize) || binarySize < 0) throw bad(`input '${name}': binary_data_size must be a non-negative integer`);
    if (binarySize !== bytes) {
      throw bad(`input '${name}' declares binary_data_size ${binarySize}, but ${spec.datatype} ${formatShape(shape)} takes ${count} x ${DATATYPES[spec.datatype].bytes} = ${bytes} bytes`);
    }
    return { spec, shape, count, bytes, binaryOffset };
  }
  if (!hasData) throw bad(`input '${name}' has no data: give 'data' (JSON) or parameters.binary_data_size (binary extension)`);
  if (DATATYPES[spec.datatype].json === 'binary-only') throw bad(`input '${name}' is ${spec.datatype}, which has no JSON form; send it with the binary extension`);
  const json = flatten(raw.data, count, name);
  if (json.length !== count) {
    const given = json.length > count ? `more than ${count}` : `${json.length}`;
    throw bad(`input '${name}' has ${given} elements in 'data'; shape ${formatShape(shape)} needs ${count}`);
  }
  return { spec, shape, count, bytes, json };
}

function parseShape(raw: unknown, name: string): number[] {
  if (!Array.isArray(raw) || raw.length > MAX_RANK) throw bad(`input '${name}': 'shape' must be an array of at most ${MAX_RANK} integers`);
  for (const d of raw) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > MAX_DIM) {
      throw bad(`input '${name}' has shape ${JSON.stringify(raw)}; every dimension must be an integer from 1 to ${MAX_DIM}`);
    }
  }
  return raw as number[];
}

function checkShape(shape: number[], spec: TensorSpec, modelName: string): void {
  const expected = `model '${modelName}' expects ${formatShape(spec.shape)}`;
  if (shape.length !== spec.shape.length) {
    throw bad(`input '${spec.name}' has shape ${formatShape(shape)} (rank ${shape.length}); ${expected} (rank ${spec.shape.length})`);
  }
  for (let i = 0; i < shape.length; i++) {
    if (spec.shape[i] !== -1 && shape[i] !== spec.shape[i]) {
      throw bad(`input '${spec.name}' has shape ${formatShape(shape)}; ${expected}: dimension ${i} is ${shape[i]}, must be ${spec.shape[i]}`);
    }
  }
}

function checkBatch(plans: InputPlan[], model: ModelSignature): number {
  const rows = plans[0].shape[0];
  for (const p of plans) {
    if (p.shape[0] !== rows) throw bad(`inputs disagree on the batch size (dimension 0): '${plans[0].spec.name}' has ${rows}, '${p.spec.name}' has ${p.shape[0]}`);
  }
  if (rows > model.maxBatch) throw bad(`batch size ${rows} is over the max batch size ${model.maxBatch} of model '${model.name}'; split the request`);
  return rows;
}

function parseOutputs(raw: unknown, model: ModelSignature, binaryDefault: boolean): RequestedOutput[] {
  if (raw === undefined) return model.outputs.map((s) => checkOutput(s, binaryDefault));
  if (!Array.isArray(raw)) throw bad("'outputs' must be an array of {name, parameters}");
  const seen = new Set<string>();
  return raw.map((o, i) => {
    if (!isObject(o) || typeof o.name !== 'string') throw bad(`outputs[${i}] must be an object with a string 'name'`);
    const spec = model.outputs.find((s) => s.name === o.name);
    if (!spec) throw bad(`model '${model.name}' has no output '${o.name}'; its outputs: ${model.outputs.map((s) => `'${s.name}'`).join(', ')}`);
    if (seen.has(o.name)) throw bad(`output '${o.name}' is requested twice`);
    seen.add(o.name);
    const params = optionalObject(o.parameters, `output '${o.name}' parameters`);
    if (params?.classification !== undefined) throw bad(`output '${o.name}': the classification extension is not supported; the model returns top-k itself`);
    return checkOutput(spec, optionalBoolean(params?.binary_data, `output '${o.name}' binary_data`) ?? binaryDefault);
  });
}

function checkOutput(spec: TensorSpec, binary: boolean): RequestedOutput {
  if (!binary && DATATYPES[spec.datatype].json === 'binary-only') throw bad(`output '${spec.name}' is ${spec.datatype}, which has no JSON form; request it with binary_data: true`);
  return { name: spec.name, binary };
}

function materialise(plan: InputPlan, binary: Uint8Array): Tensor {
  const { spec, shape, count } = plan;
  const info = DATATYPES[spec.datatype];
  let data: TypedArray;
  if (plan.binaryOffset !== undefined) {
    // Always a copy into a buffer of its own: a view could not be aligned to the element size (the
    // JSON header before it has any length), and the buffer moves to the model's worker thread, which
    // must not take the request body's memory (or a pooled Node Buffer) with it.
    data = new info.array(count);
    new Uint8Array(data.buffer).set(binary.subarray(plan.binaryOffset, plan.binaryOffset + plan.bytes));
    if (spec.datatype === 'BOOL') {
      const bytes = data as Uint8Array;
      for (let i = 0; i < count; i++) if (bytes[i] > 1) throw bad(`input '${spec.name}': BOOL element ${i} is byte ${bytes[i]}; must be 0 or 1`);
    }
  } else {
    data = new info.array(count);
    fillFromJson(data, plan.json!, spec);
  }
  return { name: spec.name, datatype: spec.datatype, shape, data };
}

function fillFromJson(out: TypedArray, values: unknown[], spec: TensorSpec): void {
  const info = DATATYPES[spec.datatype];
  const n = values.length;
  const fail = (i: number, want: string) => bad(`input '${spec.name}': data[${i}] is ${JSON.stringify(values[i])}; ${spec.datatype} needs ${want}`);
  if (info.json === 'bool') {
    const u8 = out as Uint8Array;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (typeof v !== 'boolean') throw fail(i, 'true or false');
      u8[i] = v ? 1 : 0;
    }
  } else if (info.json === 'float') {
    const f = out as Float32Array | Float64Array;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (typeof v !== 'number') throw fail(i, 'a number');
      f[i] = v;
    }
  } else {
    const min = info.min!;
    const max = info.max!;
    const big = out instanceof BigInt64Array || out instanceof BigUint64Array;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw fail(i, `an integer in [${min}, ${max}]`);
      if (big) (out as BigInt64Array)[i] = BigInt(v);
      else (out as Int32Array)[i] = v;
    }
  }
}

/** Row-major flattening of nested `data`; stops as soon as it holds more than `limit` elements. */
function flatten(data: unknown, limit: number, name: string): unknown[] {
  if (!Array.isArray(data)) throw bad(`input '${name}': 'data' must be an array`);
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  const walk = (a: unknown[], depth: number) => {
    if (depth > MAX_RANK) throw bad(`input '${name}': 'data' is nested deeper than ${MAX_RANK} levels`);
    for (const v of a) {
      if (Array.isArray(v)) walk(v, depth + 1);
      else if (out.push(v) > limit) return;
    }
  };
  walk(data, 1);
  return out;
}

function parseJsonObject(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw bad(`the inference header is not valid UTF-8 JSON (${(e as Error).message}); with binary tensors, Inference-Header-Content-Length must give the JSON's exact byte length`);
  }
  if (!isObject(value)) throw bad('the inference header must be a JSON object with an inputs array');
  return value;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optionalObject(v: unknown, what: string): Record<string, unknown> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw bad(`${what} must be an object`);
  return v;
}

function optionalBoolean(v: unknown, what: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw bad(`${what} must be true or false`);
  return v;
}

