/**
 * The byte layout shared by requests and responses under the binary tensor data extension: a JSON
 * header, then each binary tensor's bytes in the order the header lists them, little-endian, no
 * padding. No platform API.
 */
import type { TypedArray } from './datatypes.ts';

/** A body ready to send, with the value for `Inference-Header-Content-Length` when it has binary data. */
export interface EncodedBody {
  readonly body: Uint8Array;
  /** The JSON header's byte length; undefined when the body is JSON only. */
  readonly headerLength?: number;
  readonly contentType: 'application/json' | 'application/octet-stream';
}

/** The header to send with an encoded body. */
export const INFERENCE_HEADER_CONTENT_LENGTH = 'Inference-Header-Content-Length';

// Typed arrays are written as their memory: right only on a little-endian host (x86, ARM as run).
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('latentsight origin: big-endian hosts are not supported');

/**
 * Joins a JSON header and binary tensors into one body.
 *
 * @example
 * const { body, headerLength } = joinBody({ outputs: [...] }, [scores]);
 */
export function joinBody(header: unknown, binaries: readonly TypedArray[]): EncodedBody {
  const json = new TextEncoder().encode(JSON.stringify(header));
  if (binaries.length === 0) return { body: json, contentType: 'application/json' };
  let total = json.length;
  for (const b of binaries) total += b.byteLength;
  const body = new Uint8Array(total);
  body.set(json, 0);
  let offset = json.length;
  for (const b of binaries) {
    body.set(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), offset);
    offset += b.byteLength;
  }
  return { body, headerLength: json.length, contentType: 'application/octet-stream' };
}

/**
 * Parses an `Inference-Header-Content-Length` header value: undefined when absent, a non-negative
 * integer, or null when malformed.
 *
 * @example
 * parseHeaderLength('123') // 123
 */
export function parseHeaderLength(value: string | null | undefined): number | undefined | null {
  if (value === null || value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value.trim())) return null;
  return Number(value.trim());
}

/**
 * JSON `data` for a typed array: booleans for BOOL, numbers otherwise (64-bit integers as numbers).
 *
 * @example
 * toJsonData(new BigInt64Array([3n, 1n]), false) // [3, 1]
 */
export function toJsonData(data: TypedArray, bool: boolean): (number | boolean)[] {
  const n = data.length;
  const out = new Array<number | boolean>(n);
  if (bool) for (let i = 0; i < n; i++) out[i] = data[i] !== 0;
  else if (data instanceof BigInt64Array || data instanceof BigUint64Array) for (let i = 0; i < n; i++) out[i] = Number(data[i]);
  else for (let i = 0; i < n; i++) out[i] = (data as Float32Array)[i];
  return out;
}
