/**
 * The main thread's handle on one model's worker thread (`session-worker.mjs`): starts it, waits for
 * the session, runs batches on it and reports if it dies.
 */
import { Worker } from 'node:worker_threads';
import { DATATYPES, type Tensor, type TensorSpec, type TypedArray, datatypeOfOrt } from './datatypes.ts';
import { OriginError } from './errors.ts';

const WORKER = new URL('./session-worker.mjs', import.meta.url);

/** `workerData` of a session worker. */
interface WorkerOptions {
  readonly path: string;
  /** Intra-op threads of this session's pool. */
  readonly threads: number;
  /** onnxruntime execution providers in order of preference, e.g. ['cuda', 'cpu']. */
  readonly providers: readonly ExecutionProvider[];
}

/** The execution providers the origin can ask onnxruntime-node for (ORIGIN_EXECUTION_PROVIDERS). */
export const EXECUTION_PROVIDERS = ['cpu', 'cuda'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

/** A tensor as it crosses the thread boundary: onnxruntime's type name and dims. */
interface WireTensor {
  readonly name: string;
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: TypedArray;
}

interface ValueMetadata {
  readonly name: string;
  readonly isTensor: boolean;
  readonly type?: string;
  readonly shape?: readonly (number | string)[];
}

type WorkerRequest = { type: 'run'; id: number; inputs: WireTensor[] };
type WorkerReply =
  | { type: 'ready'; inputs: ValueMetadata[]; outputs: ValueMetadata[] }
  | { type: 'load-error'; message: string }
  | { type: 'result'; id: number; outputs: WireTensor[] }
  | { type: 'error'; id: number; message: string };

/** I/O of a loaded ONNX graph, in KServe terms (-1 for symbolic dimensions). */
export interface GraphSignature {
  readonly inputs: TensorSpec[];
  readonly outputs: TensorSpec[];
}

/**
 * One onnxruntime session in its own worker thread.
 *
 * @example
 * const runner = await SessionRunner.start('models/ls-f8-q2/synthesis.onnx', { threads: 2 });
 * const [image] = await runner.run([{ name: 'latents', datatype: 'FP32', shape: [1, 64, 28, 28], data }]);
 */
export class SessionRunner {
  private readonly pending = new Map<number, { resolve: (t: Tensor[]) => void; reject: (e: unknown) => void }>();
  private nextId = 1;
  private exitListeners: ((reason: string) => void)[] = [];
  private closing = false;
  alive = true;

  private constructor(
    private readonly worker: Worker,
    readonly signature: GraphSignature,
    private readonly path: string,
  ) {
    worker.on('message', (reply: WorkerReply) => this.onReply(reply));
    worker.on('error', (e) => this.onExit(`worker error: ${e.message}`));
    worker.on('exit', (code) => this.onExit(`worker exited with code ${code}`));
  }

  /** Starts the worker and resolves once the session is loaded; MODEL_LOAD_FAILED otherwise. */
  static start(path: string, options: Omit<WorkerOptions, 'path'>): Promise<SessionRunner> {
    const worker = new Worker(WORKER, { workerData: { path, ...options } satisfies WorkerOptions });
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        void worker.terminate();
        reject(new OriginError('MODEL_LOAD_FAILED', `onnxruntime could not load ${path}: ${why}`));
      };
      const onMessage = (reply: WorkerReply) => {
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (reply.type === 'load-error') return fail(reply.message);
        if (reply.type !== 'ready') return fail(`unexpected first message '${reply.type}'`);
        try {
          resolve(new SessionRunner(worker, { inputs: reply.inputs.map((m) => toSpec(m, path)), outputs: reply.outputs.map((m) => toSpec(m, path)) }, path));
        } catch (e) {
          void worker.terminate();
          reject(e);
        }
      };
      const onError = (e: Error) => fail(e.message);
      const onExit = (code: number) => fail(`the worker exited with code ${code} before loading`);
      worker.once('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
    });
  }

  /**
   * Runs the graph on `inputs` (in any order; matched by name) and returns every output. With
   * `transfer`, the inputs' buffers move to the worker instead of being copied (they become unusable
   * here): pass it only for buffers made for this call.
   */
  run(inputs: readonly Tensor[], transfer = false): Promise<Tensor[]> {
    if (!this.alive) return Promise.reject(new OriginError('UNAVAILABLE', `the worker for ${this.path} is gone; the origin needs a restart`));
    const id = this.nextId++;
    const wire: WireTensor[] = inputs.map((t) => ({ name: t.name, type: ortTypeOf(t), dims: t.shape, data: t.data }));
    const buffers = transfer ? [...new Set(inputs.map((t) => t.data.buffer as ArrayBuffer))] : [];
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'run', id, inputs: wire } satisfies WorkerRequest, buffers);
    });
  }

  /** Calls `listener` once if the worker dies (not on close()). */
  onUnexpectedExit(listener: (reason: string) => void): void {
    this.exitListeners.push(listener);
  }

  /** Stops the worker; pending runs reject with UNAVAILABLE. */
  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }

  private onReply(reply: WorkerReply): void {
    if (reply.type !== 'result' && reply.type !== 'error') return;
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (reply.type === 'error') {
      p.reject(new OriginError('INTERNAL', `onnxruntime failed on ${this.path}: ${reply.message}`));
      return;
    }
    try {
      p.resolve(reply.outputs.map((o) => fromWire(o, this.path)));
    } catch (e) {
      p.reject(e);
    }
  }

  private onExit(reason: string): void {
    if (!this.alive) return;
    this.alive = false;
    for (const p of this.pending.values()) p.reject(new OriginError('UNAVAILABLE', `the model worker stopped (${reason})`, 1));
    this.pending.clear();
    if (!this.closing) for (const l of this.exitListeners) l(reason);
  }
}

function toSpec(m: ValueMetadata, path: string): TensorSpec {
  const datatype = m.isTensor && m.type ? datatypeOfOrt(m.type) : undefined;
  if (!datatype) throw new OriginError('MODEL_LOAD_FAILED', `${path}: '${m.name}' is ${m.isTensor ? `a ${m.type} tensor` : 'not a tensor'}, which this origin cannot serve`);
  return { name: m.name, datatype, shape: (m.shape ?? []).map((d) => (typeof d === 'number' && d >= 0 ? d : -1)) };
}

function ortTypeOf(t: Tensor): string {
  return DATATYPES[t.datatype].ort;
}

function fromWire(o: WireTensor, path: string): Tensor {
  const datatype = datatypeOfOrt(o.type);
  if (!datatype || !ArrayBuffer.isView(o.data)) throw new OriginError('INTERNAL', `${path}: output '${o.name}' came back as ${o.type}, which this origin cannot serve`);
  return { name: o.name, datatype, shape: [...o.dims], data: o.data };
}
