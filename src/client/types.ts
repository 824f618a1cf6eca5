/**
 * The API's JSON shapes as the SDK returns them. The task results are the very types the edge
 * produces (`src/tasks`); the rest mirrors the OpenAPI document (functions/edge/openapi.ts).
 */
import type { ClassifyResult, SegmentResult } from '../tasks/index.ts';
import type { ProblemDetails } from './errors.ts';

export type { ClassifyResult, SegmentResult } from '../tasks/index.ts';

/** The analysis tasks the API knows. */
export const TASKS = ['classify', 'segment'] as const;
export type Task = (typeof TASKS)[number];

/** A model and its version, as the API reports what produced a result. */
export interface ModelVersion {
  id: string;
  version: string;
}

/** The answer of `POST /v1/analyze` (OpenAPI `AnalyzeResult`). */
export interface AnalyzeResult {
  request_id: string;
  codec: string;
  /** Bits per pixel of the whole stream, header included. */
  bpp: number;
  image: { width: number; height: number };
  results: { classify?: ClassifyResult; segment?: SegmentResult };
  models: { codec: ModelVersion; classify?: ModelVersion; segment?: ModelVersion };
  cache: 'hit' | 'miss';
  timings_ms: Record<string, number>;
}

/** `GET /v1/models`: the codecs a client may encode with and the task models on their latents. */
export interface ModelList {
  codecs: { id: string; version: string; stride: number; channels: number; table_hash: string; table_precision: number }[];
  task_models: { id: string; version: string; kind: string; task: Task; codec: string; serves: boolean; labels: { index: number; id: string; name: string }[] }[];
}

/** The answer of `POST /v1/jobs` (202): the job's id, and whatever else the API adds. */
export interface JobAccepted {
  id: string;
  [field: string]: unknown;
}

/** `GET /v1/jobs/{id}` (functions/edge/routes/jobs.ts): `results` and `models` once completed, `error` once failed. */
export interface Job {
  id: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  tasks: Task[];
  bitstream_sha256: string;
  image: { width: number; height: number };
  callback_url: string | null;
  metadata: unknown;
  attempts: number;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  results?: AnalyzeResult['results'];
  models?: unknown;
  error?: ProblemDetails;
  /** While queued again after a failed attempt (the origin was unavailable): why. */
  last_error?: ProblemDetails;
}
