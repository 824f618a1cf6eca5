/**
 * Starts the origin as a real child process (`tsx functions/origin/main.ts`) on a free port and waits
 * until it is ready: for integration tests, benchmarks and local orchestration.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

export interface OriginProcess {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Every JSON line it has written to stdout so far (at ORIGIN_LOG_LEVEL). */
  readonly logs: Record<string, unknown>[];
  /** Sends SIGTERM (or `signal`) and resolves with the exit code once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The origin exited before it was ready; `stderr` says why. */
export class OriginExitError extends Error {
  override readonly name = 'OriginExitError';
  constructor(
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`the origin exited with code ${exitCode} before it was ready: ${stderr.trim()}`);
  }
}

/**
 * Spawns the origin with `env` on top of this process's environment (ORIGIN_HOST 127.0.0.1 and a free
 * ORIGIN_PORT unless given) and resolves once `GET /v2/health/ready` answers 200.
 *
 * @example
 * const origin = await startOrigin({ ORIGIN_MANIFEST: 'test/fixtures/models/manifest.json', ORIGIN_HMAC_SECRET: secret });
 * await fetch(`${origin.url}/v2/models/cls-test/infer`, { ... });
 * await origin.stop();
 */
export async function startOrigin(env: Record<string, string>, options: { timeoutMs?: number } = {}): Promise<OriginProcess> {
  if (env.ORIGIN_PORT) return startOriginOn(Number(env.ORIGIN_PORT), env, options);
  // freePort's port is free when it answers, not when the child binds it: another process may take
  // it in between (seen in CI with the test files' servers starting in parallel). Only that
  // failure is retried, on a new port; a given ORIGIN_PORT is never replaced.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOriginOn(await freePort(), env, options);
    } catch (e) {
      if (attempt >= 3 || !(e instanceof OriginExitError && e.stderr.includes('EADDRINUSE'))) throw e;
    }
  }
}

async function startOriginOn(port: number, env: Record<string, string>, options: { timeoutMs?: number }): Promise<OriginProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    cwd: REPO,
    env: { ...process.env, ORIGIN_HOST: '127.0.0.1', ...env, ORIGIN_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  let pending = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.on('data', (d: Buffer) => {
    pending += d.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // Not a log line (a dependency printing): ignore.
      }
    }
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    }),
  );

  const url = `http://127.0.0.1:${port}`;
  const deadline = performance.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    if (exitCode !== undefined) throw new OriginExitError(exitCode, stderr);
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the origin was not ready within ${options.timeoutMs ?? 60_000} ms; stderr: ${stderr}`);
    }
    if (await healthy(`${url}/v2/health/ready`)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    child,
    logs,
    stop: (signal = 'SIGTERM') => {
      if (exitCode === undefined) child.kill(signal);
      return exited;
    },
  };
}

/** A port nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * True when GET `url` answers 200 within 2 s (the body is discarded); false on any other answer or error.
 *
 * @example
 * while (!(await healthy(`${edgeUrl}/healthz`))) await sleep(200);
 */
export async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

/**
 * The edge's TASK_MODELS for an origin started with `originEnv`: on CPUs (ORIGIN_EXECUTION_PROVIDERS
 * unset or without cuda), the int8 variants in the manifest (entries with `quantized_from`, made by
 * training/tasks/quantize.py), comma-separated, '' when it has none; on a GPU, '' (the float models).
 * onnxruntime runs the int8 graphs 2.2-3.5x faster than the float ones on this project's CPU (VNNI).
 * `npm start` and the e2e stack both ask this, so they serve the same models for the same origin.
 *
 * @example
 * taskModelsFor({}) // 'seg-latent-ls-f8-q2-int8,cls-latent-ls-f8-q2-int8,...'
 * taskModelsFor({ ORIGIN_EXECUTION_PROVIDERS: 'cuda,cpu' }) // ''
 */
export function taskModelsFor(
  originEnv: Record<string, string | undefined>,
  manifestPath = fileURLToPath(new URL('../../models/manifest.json', import.meta.url)),
): string {
  if (/cuda/i.test(originEnv.ORIGIN_EXECUTION_PROVIDERS ?? '')) return '';
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { models: { id: string; quantized_from?: unknown }[] };
  return manifest.models.filter((m) => m.quantized_from !== undefined).map((m) => m.id).join(',');
}
