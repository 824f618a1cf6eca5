/**
 * `npm run bench -- load`: the whole local stack under load from concurrent clients.
 *
 * The stack is the one the e2e tests start (scripts/stack.ts): `wrangler dev` (workerd, local
 * KV/R2/Durable Objects) in front of the real origin process with the shipped models of
 * models/manifest.json, real HTTP on this machine; client and servers share its cores.
 *
 * Two phases of BENCH_LOAD_SECONDS (default 60) each, BENCH_LOAD_CLIENTS (default 50) closed-loop
 * clients with keep-alive, asking for BENCH_LOAD_TASKS (default `classify,segment`) of the task models
 * the stack's edge names in TASK_MODELS: the int8 variants unless BENCH_LOAD_TASK_MODELS says otherwise
 * (`BENCH_LOAD_TASK_MODELS=none`: the float models, the manifest's defaults):
 * - first, one client sends the cached bitstream 520 times in a row (the first 20 untimed): the latency
 *   of a hit with no queueing (`hit_one_client`).
 * - hits: every client re-sends one Kodak bitstream (kodim23, 768x512) that is already cached.
 * - misses: every request carries a bitstream never sent before, so each one is decoded at the edge and
 *   inferred at the origin: kodim23's latents with one value changed (a different element per request),
 *   entropy-coded again by src/entropy (the same path a client's encoder takes after its analysis
 *   transform).
 * Every answer is checked: status 200, our request id echoed, the bpp of the stream we sent, the cache
 * state of the phase (bpp as the API rounds it, to 4 decimals), and for hits the same top-5 as the first answer. Anything else, a transport error
 * or a 4xx/5xx counts in `errors` (with the statuses in `statuses`, and the first five transport errors with
 * their causes in `error_samples`). Latencies are client-side wall time.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseBitstream, writeBitstream } from '../src/bitstream/index.ts';
import { decodeLatents, encodeLatents, parseTables } from '../src/entropy/index.ts';
import { startStack } from '../scripts/stack.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const BITSTREAM = 'application/vnd.latentsight+bitstream';

interface PhaseResult {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  requests: number;
  errors: number;
  statuses: Record<string, number>;
  /** The first few transport errors, with their causes (a reset socket, a timeout...), when they came and whether the services saw the request. */
  error_samples: ErrorSample[];
}

export async function benchLoad(): Promise<Record<string, unknown>> {
  const seconds = positive('BENCH_LOAD_SECONDS', 60);
  const clients = positive('BENCH_LOAD_CLIENTS', 50);
  const tasks = process.env.BENCH_LOAD_TASKS || 'classify,segment';
  const dir = await mkdtemp(join(tmpdir(), 'latentsight-load-'));
  const streamPath = join(dir, 'kodim23.lsb');
  await promisify(execFile)(process.execPath, [join(REPO, 'bin', 'latentsight.js'), 'encode', join(REPO, 'test/fixtures/kodim23.png'), '-o', streamPath], { cwd: REPO });
  const stream = new Uint8Array(await readFile(streamPath));
  await rm(dir, { recursive: true, force: true });
  const variants = latentVariants(stream, await tablesFor(stream));

  const taskModels = process.env.BENCH_LOAD_TASK_MODELS;
  const stack = await startStack(taskModels ? { edgeVars: { TASK_MODELS: taskModels === 'none' ? '' : taskModels } } : {});
  try {
    const send = async (bytes: Uint8Array, requestId: string) => {
      const res = await fetch(`${stack.edgeUrl}/v1/analyze?tasks=${encodeURIComponent(tasks)}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': BITSTREAM, 'x-request-id': requestId },
        body: bytes,
        signal: AbortSignal.timeout(120_000),
      });
      return { status: res.status, body: res.status === 200 ? ((await res.json()) as Answer) : (await res.body?.cancel(), undefined) };
    };

    const first = await send(stream, 'load-warmup-0000000');
    if (first.status !== 200 || !first.body) throw new Error(`the first analysis answered ${first.status}: are the task models in models/manifest.json?`);
    const expectedTop = JSON.stringify(first.body.results.classify?.top);
    const bppOf = (bytes: Uint8Array) => (bytes.byteLength * 8) / (768 * 512);

    // One client, one request at a time: the latency of a hit without queueing behind other clients.
    const sequential: number[] = [];
    let sequentialErrors = 0;
    for (let n = 0; n < 520; n++) {
      const id = `load-seq-${n.toString().padStart(8, '0')}`;
      const t0 = performance.now();
      const r = await send(stream, id);
      if (n >= 20) sequential.push(performance.now() - t0);
      if (!(r.status === 200 && r.body?.request_id === id && r.body.cache === 'hit')) sequentialErrors++;
    }
    sequential.sort((a, b) => a - b);
    const sq = (p: number) => round(sequential[Math.min(sequential.length - 1, Math.floor(p * sequential.length))]);

    const hits = await phase(clients, seconds, async (n) => {
      const id = `load-hit-${n.toString().padStart(8, '0')}`;
      const r = await send(stream, id);
      return r.status === 200 && r.body?.request_id === id && r.body.cache === 'hit' && JSON.stringify(r.body.results.classify?.top) === expectedTop ? 'ok' : String(r.status);
    });
    const misses = await phase(clients, seconds, async (n) => {
      const bytes = variants(n);
      const id = `load-miss-${n.toString().padStart(8, '0')}`;
      const r = await send(bytes, id);
      return r.status === 200 && r.body?.request_id === id && r.body.cache === 'miss' && Math.abs(r.body.bpp - bppOf(bytes)) < 5e-5 ? 'ok' : String(r.status);
    });
    // A transport error's request: did it reach the edge (its log lines carry the request id) and the origin?
    for (const [name, result] of [['hit', hits], ['miss', misses]] as const) {
      for (const sample of result.error_samples) {
        const id = `load-${name}-${sample.n.toString().padStart(8, '0')}`;
        sample.reached_edge = stack.edgeLines.some((l) => l.includes(id));
        sample.reached_origin = stack.originLogs().some((l) => l.request_id === id);
      }
    }
    if (hits.errors + misses.errors + sequentialErrors > 0) {
      // Where the errors came from: the services' last words (JSON lines, no secrets or image data).
      const notable = stack.edgeLines.filter((l) => !/^\[wrangler:info\] \w+ \S+ \d{3} /.test(l));
      process.stderr.write(`load: errors; the edge's lines other than request logs (last 40):\n${notable.slice(-40).join('\n')}\n`);
      process.stderr.write(`load: the origin's last lines:\n${stack.originLogs().slice(-20).map((l) => JSON.stringify(l)).join('\n')}\n`);
      // BENCH_LOAD_EDGE_LOG=FILE keeps every line the edge wrote (with WRANGLER_LOG=debug, wrangler's own too).
      if (process.env.BENCH_LOAD_EDGE_LOG) await writeFile(process.env.BENCH_LOAD_EDGE_LOG, `${stack.edgeLines.join('\n')}\n`);
    }
    return {
      bench: 'load',
      clients,
      seconds,
      tasks,
      models: Object.fromEntries(Object.entries(first.body.models).map(([task, m]) => [task, `${m.id}@${m.version}`])),
      rps: hits.rps,
      p50_ms: hits.p50_ms,
      p99_ms: hits.p99_ms,
      errors: hits.errors + misses.errors + sequentialErrors,
      hit_one_client: { requests: sequential.length, p50_ms: sq(0.5), p99_ms: sq(0.99), errors: sequentialErrors },
      hits,
      misses,
      image: 'kodim23 768x512',
      stream_bytes: stream.byteLength,
    };
  } finally {
    await stack.stop();
  }
}

interface Answer {
  request_id: string;
  cache: 'hit' | 'miss';
  bpp: number;
  results: { classify?: { top: unknown[] } };
  models: Record<string, { id: string; version: string }>;
}

/** `clients` closed loops for `seconds`; `request(n)` gets a run-wide sequence number and says 'ok' or what went wrong. */
interface ErrorSample {
  /** The request's sequence number in its phase (its id is `load-<phase>-<n, 8 digits>`). */
  n: number;
  error: string;
  /** When it was sent, from the phase's start, and how long it took to fail. */
  at_s: number;
  after_ms: number;
  /** Whether the edge's and the origin's logs name its request id (filled in after the phase). */
  reached_edge?: boolean;
  reached_origin?: boolean;
}

async function phase(clients: number, seconds: number, request: (n: number) => Promise<string>): Promise<PhaseResult> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const samples: ErrorSample[] = [];
  let next = 0;
  const end = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const n = next++;
        const t0 = performance.now();
        let outcome: string;
        try {
          outcome = await request(n);
        } catch (error) {
          outcome = error instanceof Error ? error.name : 'error';
          if (samples.length < 5) samples.push({ n, error: describe(error), at_s: round((t0 - started) / 1000), after_ms: round(performance.now() - t0) });
        }
        latencies.push(performance.now() - t0);
        statuses[outcome] = (statuses[outcome] ?? 0) + 1;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const sorted = latencies.sort((a, b) => a - b);
  const q = (p: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]);
  const ok = statuses.ok ?? 0;
  return { rps: round(ok / elapsed), p50_ms: q(0.5), p99_ms: q(0.99), requests: sorted.length, errors: sorted.length - ok, statuses, error_samples: samples };
}

/** `name: message (cause)` of a failed fetch: undici puts the socket's own error in `cause`. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` (${(error.cause as Error & { code?: string }).code ?? error.cause.name}: ${error.cause.message})` : '';
  return `${error.name}: ${error.message}${cause}`;
}

async function tablesFor(stream: Uint8Array) {
  const { header } = parseBitstream(stream);
  const manifest = JSON.parse(await readFile(join(REPO, 'models/manifest.json'), 'utf8')) as { models: { id: string; kind: string; files: { tables?: { path: string } } }[] };
  const codec = manifest.models.find((m) => m.kind === 'codec' && m.id === header.modelId);
  if (!codec?.files.tables) throw new Error(`no codec ${header.modelId} in models/manifest.json`);
  return parseTables(new Uint8Array(await readFile(join(REPO, 'models', codec.files.tables.path))));
}

/** The n-th variant of `stream`: its latents with element (n * a large prime) mod size incremented, re-coded. */
function latentVariants(stream: Uint8Array, tables: ReturnType<typeof parseTables>): (n: number) => Uint8Array {
  const { header, latents } = parseBitstream(stream);
  const shape = { channels: header.channels, height: header.latentHeight, width: header.latentWidth };
  const base = decodeLatents(latents, shape, tables);
  return (n) => {
    const values = base.slice();
    const at = (n * 104_729 + 1) % values.length;
    values[at] = values[at] + 1 + Math.floor(n / values.length);
    return writeBitstream({ ...header, latents: encodeLatents(values, shape, tables) });
  };
}

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}=${raw} is not a positive integer`);
  return n;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
