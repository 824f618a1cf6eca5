// Runs inside one worker thread per model and owns that model's onnxruntime InferenceSession.
// onnxruntime-node's `run` blocks the thread it is called on for the whole inference, so sessions
// live here and the main thread stays free to parse requests, answer health checks and fire deadlines.
//
// Plain JavaScript on purpose: worker threads do not inherit tsx's module hooks, and registering them
// in each worker costs about half a second of startup per model. The message types are declared in
// session-runner.ts (WorkerOptions, WorkerRequest, WorkerReply, WireTensor).
//
//   <- { type: 'ready', inputs, outputs }        the session's I/O metadata, once loaded
//   <- { type: 'load-error', message }
//   -> { type: 'run', id, inputs: WireTensor[] }  <- { type: 'result', id, outputs } | { type: 'error', id, message }
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';

const port = parentPort;
const { path, threads, providers } = workerData;

let session;
try {
  session = await ort.InferenceSession.create(path, {
    // ORIGIN_EXECUTION_PROVIDERS, in order of preference ('cpu' by default). 'cuda' needs
    // onnxruntime-node's CUDA binaries (installed unless ONNXRUNTIME_NODE_INSTALL=skip) and a GPU;
    // nodes it cannot place fall back to the next provider. Past one machine, use Triton (triton-repo.ts).
    executionProviders: providers,
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
} catch (e) {
  port.postMessage({ type: 'load-error', message: e.message });
  process.exit(1);
}
port.postMessage({ type: 'ready', inputs: session.inputMetadata, outputs: session.outputMetadata });

port.on('message', async (msg) => {
  if (msg.type !== 'run') return;
  try {
    const feeds = {};
    for (const t of msg.inputs) feeds[t.name] = new ort.Tensor(t.type, t.data, t.dims);
    const results = await session.run(feeds);
    const outputs = [];
    const buffers = new Set();
    for (const name of session.outputNames) {
      const t = results[name];
      outputs.push({ name, type: t.type, dims: t.dims, data: t.data });
      if (ArrayBuffer.isView(t.data)) buffers.add(t.data.buffer);
    }
    try {
      port.postMessage({ type: 'result', id: msg.id, outputs }, [...buffers]);
    } catch {
      // A buffer onnxruntime keeps cannot be transferred: fall back to a copy.
      port.postMessage({ type: 'result', id: msg.id, outputs });
    }
  } catch (e) {
    port.postMessage({ type: 'error', id: msg.id, message: e.message });
  }
});
