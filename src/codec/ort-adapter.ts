import { CodecError } from './errors.ts';
import type { ModelRuntime, ModelSession, Tensor } from './runtime.ts';

/** The parts of an onnxruntime flavour (node or web; both re-export onnxruntime-common) used here. */
interface OrtTensor {
  readonly data: unknown;
  readonly dims: readonly number[];
  readonly type: string;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
export interface OrtBindings {
  createSession(model: Uint8Array): Promise<OrtSession>;
  createTensor(type: 'float32' | 'int16' | 'int32', data: Tensor['data'], dims: readonly number[]): OrtTensor;
}

function typeOf(data: Tensor['data']): 'float32' | 'int16' | 'int32' {
  return data instanceof Float32Array ? 'float32' : data instanceof Int16Array ? 'int16' : 'int32';
}

function fromOrt(name: string, t: OrtTensor): Tensor {
  const { data } = t;
  if (data instanceof Float32Array || data instanceof Int16Array || data instanceof Int32Array) {
    return { data, dims: t.dims };
  }
  throw new CodecError('MODEL_RUNTIME', `Output '${name}' has element type ${t.type}; expected float32, int16 or int32.`);
}

/**
 * Wraps an onnxruntime flavour as a `ModelRuntime`, turning its failures into `CodecError('MODEL_RUNTIME')`.
 *
 * @example
 * const runtime = ortRuntime('onnxruntime-node', { createSession: (b) => ort.InferenceSession.create(b),
 *   createTensor: (type, data, dims) => new ort.Tensor(type, data, dims) })
 */
export function ortRuntime(name: string, ort: OrtBindings): ModelRuntime {
  const fail = (what: string, e: unknown) =>
    new CodecError('MODEL_RUNTIME', `${name} could not ${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  return {
    name,
    async load(model: Uint8Array): Promise<ModelSession> {
      let session: OrtSession;
      try {
        session = await ort.createSession(model);
      } catch (e) {
        throw fail('load the model', e);
      }
      return {
        async run(feeds) {
          const inputs: Record<string, OrtTensor> = {};
          for (const [key, t] of Object.entries(feeds)) inputs[key] = ort.createTensor(typeOf(t.data), t.data, t.dims);
          let outputs: Record<string, OrtTensor>;
          try {
            outputs = await session.run(inputs);
          } catch (e) {
            throw fail('run the model', e);
          }
          const out: Record<string, Tensor> = {};
          for (const [key, t] of Object.entries(outputs)) out[key] = fromOrt(key, t);
          return out;
        },
        release: () => session.release(),
      };
    },
  };
}
