/**
 * A fake KServe v2 origin for tests: it records every request (inflated and split into its JSON
 * header and tensor bytes) and answers with what the test says, as binary outputs or plain JSON.
 */
import type { OriginDeps } from '../../../functions/edge/origin.ts';

export const ORIGIN_URL = 'http://origin.test';
export const ORIGIN_SECRET = 'test-origin-secret';

export interface OriginRequest {
  url: URL;
  headers: Headers;
  /** The body exactly as sent (gzip). */
  sent: Uint8Array;
  header: {
    id: string;
    inputs: { name: string; datatype: string; shape: number[]; parameters: { binary_data_size: number } }[];
    outputs: { name: string; parameters: { binary_data: boolean } }[];
  };
  tensor: Uint8Array;
}

export interface OutputTensor {
  name: string;
  datatype: 'FP32' | 'INT64' | 'UINT8';
  shape: number[];
  values: number[] | Uint8Array;
}

/** What the fake does with a request: answer, or never answer (until aborted), or fail the connection. */
export type Behaviour = (request: OriginRequest, attempt: number) => Response | 'hang' | 'network-error' | Promise<Response>;

/**
 * A fake origin and the `OriginDeps` that reach it (no real sleeping: backoff delays are recorded).
 *
 * @example
 * const origin = fakeOrigin((req) => binaryResponse(classifierOutputs()))
 * const app = createApp({ origin: origin.deps, ... })
 */
export function fakeOrigin(behaviour: Behaviour) {
  const requests: OriginRequest[] = [];
  const sleeps: number[] = [];
  // The clock the edge's breaker and deadlines read: real time plus what the test skips ahead.
  const clock = { skipped: 0, advance: (ms: number) => (clock.skipped += ms) };
  const deps: OriginDeps = {
    fetch: async (input, init) => {
      const sent = new Uint8Array(init.body as Uint8Array);
      const headers = new Headers(init.headers);
      const raw = await inflate(sent);
      const length = Number(headers.get('inference-header-content-length'));
      const request: OriginRequest = {
        url: new URL(input),
        headers,
        sent,
        header: JSON.parse(new TextDecoder().decode(raw.subarray(0, length))),
        tensor: raw.subarray(length),
      };
      requests.push(request);
      const outcome = await behaviour(request, requests.length);
      if (outcome === 'network-error') throw new TypeError('Network connection lost.');
      if (outcome === 'hang') {
        return new Promise<Response>((_, reject) => init.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))));
      }
      return outcome;
    },
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    now: () => Date.now() + clock.skipped,
  };
  return { deps, requests, sleeps, clock };
}

/** A KServe binary-extension response carrying `outputs`. */
export function binaryResponse(outputs: OutputTensor[], init: { gzip?: boolean } = {}): Promise<Response> | Response {
  const blobs = outputs.map(encodeValues);
  const header = new TextEncoder().encode(
    JSON.stringify({
      model_name: 'fake',
      outputs: outputs.map((o, i) => ({ name: o.name, datatype: o.datatype, shape: o.shape, parameters: { binary_data_size: blobs[i].length } })),
    }),
  );
  const body = concat([header, ...blobs]);
  const headers = { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) };
  if (!init.gzip) return new Response(body, { headers });
  return deflate(body).then((gz) => new Response(gz, { headers: { ...headers, 'content-encoding': 'gzip' } }));
}

/** A plain-JSON response (`data` arrays, no binary extension). */
export function jsonResponse(outputs: OutputTensor[]): Response {
  return Response.json({ model_name: 'fake', outputs: outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape, data: [...o.values] })) });
}

/** Classifier outputs: top-5 scores and classes. */
export function classifierOutputs(classes = [2, 0, 5, 1, 3], scores = [0.6, 0.2, 0.1, 0.05, 0.03]): OutputTensor[] {
  return [
    { name: 'scores', datatype: 'FP32', shape: [1, scores.length], values: scores },
    { name: 'classes', datatype: 'INT64', shape: [1, classes.length], values: classes },
  ];
}

/** Segmenter output: a mask at the padded image resolution, class = (x >> 3 + y >> 3) mod 3. */
export function segmenterOutputs(height: number, width: number): OutputTensor[] {
  const mask = new Uint8Array(height * width);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) mask[y * width + x] = ((x >> 3) + (y >> 3)) % 3;
  return [{ name: 'mask', datatype: 'UINT8', shape: [1, height, width], values: mask }];
}

/** Answers each model as a well-behaved origin would, from the request's latent shape. */
export function wellBehaved(request: OriginRequest): Response | Promise<Response> {
  const model = request.url.pathname.split('/')[3];
  const [, , h, w] = request.header.inputs[0].shape;
  return model === 'seg-test' ? binaryResponse(segmenterOutputs(8 * h, 8 * w), { gzip: true }) : binaryResponse(classifierOutputs());
}

function encodeValues(o: OutputTensor): Uint8Array {
  if (o.datatype === 'UINT8') return Uint8Array.from(o.values);
  const size = o.datatype === 'FP32' ? 4 : 8;
  const out = new Uint8Array(o.values.length * size);
  const view = new DataView(out.buffer);
  for (let i = 0; i < o.values.length; i++) {
    if (o.datatype === 'FP32') view.setFloat32(4 * i, o.values[i], true);
    else {
      view.setUint32(8 * i, o.values[i] >>> 0, true);
      view.setInt32(8 * i + 4, Math.floor(o.values[i] / 4294967296), true);
    }
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function inflate(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function deflate(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
