/**
 * The latentsight SDK for browsers, workers and Node: encode and decode images with the learned
 * codec, analyse bitstreams or images at the edge, submit asynchronous jobs. Nothing here imports
 * a Node module; Node helpers (disk, sharp, onnxruntime-node) are in `node.ts`, the browser's
 * wasm runtime in `web.ts`.
 */
export { BITSTREAM_MEDIA_TYPE, type AnalyzeInput, type ClientOptions, type JobOptions, type LatentsightClient, type RequestOptions, checkTasks, createClient } from './client.ts';
export { type UrlCodecOptions, loadCodecFromUrl } from './codec-url.ts';
export { type ClientErrorCode, LatentsightError, type ProblemDetails } from './errors.ts';
export { RETRYABLE_STATUSES, type RetryOptions, backoffDelay, fetchWithRetry, parseRetryAfter } from './retry.ts';
export { type AnalyzeResult, type ClassifyResult, type Job, type JobAccepted, type ModelList, type ModelVersion, type SegmentResult, TASKS, type Task } from './types.ts';
// The codec layer, so that one import serves both encoding and analysis.
export {
  type Codec,
  CodecError,
  type DecodedImage,
  type ModelRuntime,
  type ModelSession,
  type RgbImage,
  decodeBitstreamLatents,
  decodeImage,
  encodeImage,
  loadCodec,
  psnr,
} from '../codec/index.ts';
