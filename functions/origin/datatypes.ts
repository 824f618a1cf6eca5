/**
 * KServe v2 tensor datatypes, their sizes, typed arrays and onnxruntime names. No platform API, so
 * that the request/response codecs built on it run in workerd (the edge) as well as in Node.
 */

/** The KServe v2 datatypes this server can carry (BYTES, variable-length strings, is not one). */
export type Datatype = 'BOOL' | 'UINT8' | 'UINT16' | 'UINT32' | 'UINT64' | 'INT8' | 'INT16' | 'INT32' | 'INT64' | 'FP16' | 'FP32' | 'FP64';

export type TypedArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | BigUint64Array
  | BigInt64Array
  | Float32Array
  | Float64Array;

interface TypedArrayConstructor {
  new (length: number): TypedArray;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray;
}

export interface DatatypeInfo {
  /** Bytes per element in the binary extension (little-endian, no padding). */
  readonly bytes: number;
  /** onnxruntime's name for it (`Tensor.Type`). */
  readonly ort: string;
  /** Triton's `config.pbtxt` name. */
  readonly triton: string;
  readonly array: TypedArrayConstructor;
  /** How an element looks in JSON `data`: booleans, integers in [min, max], any number, or not allowed. */
  readonly json: 'bool' | 'int' | 'float' | 'binary-only';
  readonly min?: number;
  readonly max?: number;
}

export const DATATYPES: Readonly<Record<Datatype, DatatypeInfo>> = {
  // BOOL travels as one byte, 0 or 1; onnxruntime-node takes it as a Uint8Array.
  BOOL: { bytes: 1, ort: 'bool', triton: 'TYPE_BOOL', array: Uint8Array, json: 'bool' },
  UINT8: { bytes: 1, ort: 'uint8', triton: 'TYPE_UINT8', array: Uint8Array, json: 'int', min: 0, max: 0xff },
  UINT16: { bytes: 2, ort: 'uint16', triton: 'TYPE_UINT16', array: Uint16Array, json: 'int', min: 0, max: 0xffff },
  UINT32: { bytes: 4, ort: 'uint32', triton: 'TYPE_UINT32', array: Uint32Array, json: 'int', min: 0, max: 0xffffffff },
  // 64-bit integers: JSON numbers are exact only up to 2^53, so JSON values must be safe integers.
  UINT64: { bytes: 8, ort: 'uint64', triton: 'TYPE_UINT64', array: BigUint64Array, json: 'int', min: 0, max: Number.MAX_SAFE_INTEGER },
  INT8: { bytes: 1, ort: 'int8', triton: 'TYPE_INT8', array: Int8Array, json: 'int', min: -0x80, max: 0x7f },
  INT16: { bytes: 2, ort: 'int16', triton: 'TYPE_INT16', array: Int16Array, json: 'int', min: -0x8000, max: 0x7fff },
  INT32: { bytes: 4, ort: 'int32', triton: 'TYPE_INT32', array: Int32Array, json: 'int', min: -0x80000000, max: 0x7fffffff },
  INT64: { bytes: 8, ort: 'int64', triton: 'TYPE_INT64', array: BigInt64Array, json: 'int', min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER },
  // FP16 has no JSON representation (the protocol says so): binary extension only.
  FP16: { bytes: 2, ort: 'float16', triton: 'TYPE_FP16', array: Uint16Array, json: 'binary-only' },
  FP32: { bytes: 4, ort: 'float32', triton: 'TYPE_FP32', array: Float32Array, json: 'float' },
  FP64: { bytes: 8, ort: 'float64', triton: 'TYPE_FP64', array: Float64Array, json: 'float' },
};

/** A tensor on the host: row-major data, shape with every dimension known. */
export interface Tensor {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly data: TypedArray;
}

/** A tensor as a model declares it: -1 marks a dynamic dimension. */
export interface TensorSpec {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
}

/**
 * Whether `name` is a datatype this server carries.
 *
 * @example
 * isDatatype('INT16') // true;  isDatatype('BYTES') // false
 */
export function isDatatype(name: unknown): name is Datatype {
  return typeof name === 'string' && Object.hasOwn(DATATYPES, name);
}

/**
 * The KServe datatype for an onnxruntime tensor type, or undefined if it has none here.
 *
 * @example
 * datatypeOfOrt('int16') // 'INT16'
 */
export function datatypeOfOrt(ortType: string): Datatype | undefined {
  for (const [name, info] of Object.entries(DATATYPES) as [Datatype, DatatypeInfo][]) if (info.ort === ortType) return name;
  return undefined;
}

/**
 * The element count of a shape; throws RangeError past 2^53 (no real tensor gets there, a hostile
 * header can).
 *
 * @example
 * elementCount([2, 3, 4]) // 24
 */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) throw new RangeError(`shape [${shape.join(', ')}] has more than 2^53 elements`);
  }
  return n;
}

/**
 * A shape as error messages write it.
 *
 * @example
 * formatShape([1, 4, -1, -1]) // '[1, 4, -1, -1]'
 */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
