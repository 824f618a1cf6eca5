/**
 * The whole local stack as real processes, for the end-to-end tests and the load benchmark: the origin (`functions/origin/main.ts`
 * through `startOrigin`, the product's `models/manifest.json`) and the edge (`wrangler dev`, workerd with
 * miniflare's local KV, R2, Queues and Durable Objects in a temporary folder), on free ports, sharing a
 * random HMAC secret, with an API key seeded into the local `API_KEYS` namespace.
 *
 * Unlike `npm start`, the two lives are separate: a test can kill the origin and start it again on the
 * same port while the edge keeps running.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type OriginProcess, freePort, healthy, startOrigin, taskModelsFor } from '../functions/origin/process.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const WRANGLER = join(dirname(createRequire(import.meta.url).resolve('wrangler/package.json')), 'bin', 'wrangler.js');
const WRANGLER_ENV = { CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' };

/** What the edge stores per API key (functions/edge/auth.ts `ApiKeyRecord`). */
export interface KeyRecord {
  tenant: string;
  scopes: string[];
  rate_limit_per_minute: number;
  store_bitstreams: boolean;
}

export interface StackOptions {
  /** Overrides of the seeded key's record (default: tenant "e2e", scope analyze, 100000/min, bitstreams stored). */
  key?: Partial<KeyRecord>;
  /** Extra `--var NAME:value` for the edge (e.g. `ORIGIN_TIMEOUT_MS`). */
  edgeVars?: Record<string, string>;
  /** Extra environment for the origin (e.g. `ORIGIN_THREADS`). */
  originEnv?: Record<string, string>;
  /** Limit on each service becoming healthy (default 90 s: a loaded 2-core machine). */
  timeoutMs?: number;
}

export interface Stack {
  readonly edgeUrl: string;
  readonly originUrl: string;
  readonly apiKey: string;
  /** The HMAC secret edge and origin share (tests check that it never reaches a log). */
  readonly secret: string;
  /** Every line the edge (wrangler dev and workerd) has written so far. */
  readonly edgeLines: string[];
  /** The running origin, or undefined after `killOrigin` until `restartOrigin`. */
  origin(): OriginProcess | undefined;
  /** Every JSON log line of every origin process so far (the killed ones included). */
  originLogs(): Record<string, unknown>[];
  /** SIGKILLs the origin (no graceful drain): the edge sees connections refused. */
  killOrigin(): Promise<void>;
  /** Starts the origin again on the same port and waits until it is ready. */
  restartOrigin(): Promise<void>;
  /** Stops both and removes the temporary state folder. */
  stop(): Promise<void>;
}

/**
 * Starts origin and edge and resolves once both answer their health checks.
 *
 * @example
 * const stack = await startStack();
 * const res = await fetch(`${stack.edgeUrl}/v1/models`, { headers: { authorization: `Bearer ${stack.apiKey}` } });
 * await stack.stop();
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const timeoutMs = options.timeoutMs ?? 90_000;
  const [edgePort, originPort] = [await freePort(), await freePort()];
  const stateDir = await mkdtemp(join(tmpdir(), 'latentsight-e2e-'));
  const secret = randomBytes(32).toString('hex');
  const apiKey = `ls_e2e_${randomBytes(16).toString('hex')}`;
  const record: KeyRecord = { tenant: 'e2e', scopes: ['analyze'], rate_limit_per_minute: 100_000, store_bitstreams: true, ...options.key };
  const originEnv = { ORIGIN_PORT: String(originPort), ORIGIN_HMAC_SECRET: secret, ORIGIN_THREADS: '1', ...options.originEnv };
  const originUrl = `http://127.0.0.1:${originPort}`;
  const edgeUrl = `http://127.0.0.1:${edgePort}`;

  const keyHash = createHash('sha256').update(apiKey, 'utf8').digest('hex');
  await run(process.execPath, [WRANGLER, 'kv', 'key', 'put', '--binding', 'API_KEYS', '--local', '--persist-to', stateDir, keyHash, JSON.stringify(record)]);

  const originLogs: Record<string, unknown>[][] = [];
  let origin: OriginProcess | undefined;
  const launchOrigin = async () => {
    origin = await startOrigin(originEnv, { timeoutMs });
    originLogs.push(origin.logs as Record<string, unknown>[]);
  };

  // The models for the origin as started (startOrigin passes process.env through): on CPUs, the
  // int8 variants of the task models, as `npm start` chooses them.
  const taskModels = taskModelsFor({ ...process.env, ...originEnv });
  const vars = { ORIGIN_URL: originUrl, ORIGIN_HMAC_SECRET: secret, TASK_MODELS: taskModels, ...options.edgeVars };
  const edgeArgs = [WRANGLER, 'dev', '--port', String(edgePort), '--ip', '127.0.0.1', '--persist-to', stateDir, '--show-interactive-dev-session=false'];
  for (const [name, value] of Object.entries(vars)) edgeArgs.push('--var', `${name}:${value}`);
  const edgeLines: string[] = [];
  const edge = spawn(process.execPath, edgeArgs, { cwd: REPO, env: { ...process.env, ...WRANGLER_ENV }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  collectLines(edge, edgeLines);
  const edgeExit = new Promise<string>((resolve) => edge.once('exit', (code, signal) => resolve(`exited (${signal ?? code})`)));

  const stopEdge = async () => {
    signalGroup(edge, 'SIGTERM');
    await Promise.race([edgeExit, sleep(10_000)]);
    signalGroup(edge, 'SIGKILL');
  };
  try {
    await launchOrigin();
    const deadline = Date.now() + timeoutMs;
    while (!(await healthy(`${edgeUrl}/healthz`))) {
      const exited = await Promise.race([edgeExit, sleep(250).then(() => undefined)]);
      if (exited) throw new Error(`wrangler dev ${exited} before it was healthy:\n${edgeLines.slice(-30).join('\n')}`);
      if (Date.now() > deadline) throw new Error(`the edge was not healthy within ${timeoutMs / 1000} s:\n${edgeLines.slice(-30).join('\n')}`);
    }
  } catch (error) {
    await Promise.all([stopEdge(), origin?.stop('SIGKILL')]);
    await rm(stateDir, { recursive: true, force: true });
    throw error;
  }

  return {
    edgeUrl,
    originUrl,
    apiKey,
    secret,
    edgeLines,
    origin: () => origin,
    originLogs: () => originLogs.flat(),
    async killOrigin() {
      const running = origin;
      origin = undefined;
      await running?.stop('SIGKILL');
    },
    async restartOrigin() {
      if (origin) throw new Error('the origin is running');
      await launchOrigin();
    },
    async stop() {
      await Promise.all([stopEdge(), origin?.stop()]);
      origin = undefined;
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

function collectLines(child: ChildProcess, into: string[]): void {
  for (const stream of [child.stdout!, child.stderr!]) {
    let pending = '';
    stream.on('data', (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      into.push(...lines);
    });
  }
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}

/** Runs a command to completion; rejects with its output if it fails. */
function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO, env: { ...process.env, ...WRANGLER_ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    collectLines(child, lines);
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${args.slice(1, 4).join(' ')} exited with ${code}:\n${lines.join('\n')}`))));
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
