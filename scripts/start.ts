/**
 * `npm start`: the whole stack on this machine. Starts the origin (`tsx functions/origin/main.ts`,
 * models from `models/manifest.json`) and the edge (`wrangler dev`, with KV, R2, Queues and Durable
 * Objects simulated by miniflare and persisted under `.wrangler/state`), shares an HMAC secret between
 * them through `.dev.vars`, seeds a dev API key into the local `API_KEYS` namespace, waits until both
 * answer their health checks and prints the URLs and the key. Ctrl-C (or SIGTERM) stops both and exits 0;
 * if either dies, the other is stopped and the exit code is 1.
 *
 * Environment:
 * - `EDGE_PORT` (8787), `ORIGIN_PORT` (8788): the ports, on 127.0.0.1.
 * - `ORIGIN_HMAC_SECRET`: the shared secret (32+ characters); else the one already in `.dev.vars`,
 *   else a new random one. Written to `.dev.vars`, where `wrangler dev` reads it.
 * - `LATENTSIGHT_DEV_KEY`: the dev API key to seed; else the one kept in the state folder from an
 *   earlier run, else a new one (kept there for the next run).
 * - `LATENTSIGHT_STATE_DIR` (`.wrangler/state`): wrangler's `--persist-to` folder.
 * - `LATENTSIGHT_START_TIMEOUT_MS` (60000): how long both may take to become healthy.
 * - `TASK_MODELS`: the edge's var of that name; by default the manifest's int8 variants of the task
 *   models, unless `ORIGIN_EXECUTION_PROVIDERS` names cuda (then the float models).
 * - Anything else the origin reads (`ORIGIN_MANIFEST`, `ORIGIN_THREADS`, ...) passes through to it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { healthy, taskModelsFor } from '../functions/origin/process.ts';
import { buildDemo } from './build-demo.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const WRANGLER = join(dirname(createRequire(import.meta.url).resolve('wrangler/package.json')), 'bin', 'wrangler.js');
const ORIGIN_MAIN = join(REPO, 'functions', 'origin', 'main.ts');
const DEV_VARS = join(REPO, '.dev.vars');
/** Where a generated dev key is kept between runs (beside the KV it is seeded into; git-ignored). */
const DEV_KEY_FILE = 'latentsight-dev-key';
/** Same syntax as the edge's Bearer token (functions/edge/auth.ts). */
const KEY_SYNTAX = /^[A-Za-z0-9\-._~+/]{8,256}=*$/;
/** The record the edge expects in API_KEYS (functions/edge/auth.ts `ApiKeyRecord`). */
const DEV_KEY_RECORD = { tenant: 'dev', scopes: ['analyze', 'admin'], rate_limit_per_minute: 6000, store_bitstreams: true };
const STOP_GRACE_MS = 10_000;
const LOG_TAIL = 25;

/** A configuration error: printed without a stack, exit code 2. */
class UsageError extends Error {}

interface Config {
  edgePort: number;
  originPort: number;
  stateDir: string;
  timeoutMs: number;
}

function port(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`${name}=${raw} is not a port (1-65535)`);
  return n;
}

function readConfig(): Config {
  const edgePort = port('EDGE_PORT', 8787);
  const originPort = port('ORIGIN_PORT', 8788);
  if (edgePort === originPort) throw new UsageError(`EDGE_PORT and ORIGIN_PORT are both ${edgePort}`);
  const timeoutRaw = process.env.LATENTSIGHT_START_TIMEOUT_MS;
  const timeoutMs = timeoutRaw ? Number(timeoutRaw) : 60_000;
  if (!(timeoutMs > 0)) throw new UsageError(`LATENTSIGHT_START_TIMEOUT_MS=${timeoutRaw} is not a positive number`);
  const stateDir = resolve(REPO, process.env.LATENTSIGHT_STATE_DIR || join('.wrangler', 'state'));
  return { edgePort, originPort, stateDir, timeoutMs };
}

/** The secret from the environment, else the one `.dev.vars` holds, else a new one; `.dev.vars` then holds it. */
function sharedSecret(): string {
  const existing = existsSync(DEV_VARS) ? readFileSync(DEV_VARS, 'utf8') : '';
  const lines = existing.split('\n').filter((l, i, all) => l !== '' || i < all.length - 1);
  const at = lines.findIndex((l) => /^\s*ORIGIN_HMAC_SECRET\s*=/.test(l));
  const fromFile = at >= 0 ? unquote(lines[at].slice(lines[at].indexOf('=') + 1).trim()) : undefined;
  const fromEnv = process.env.ORIGIN_HMAC_SECRET;
  if (fromEnv !== undefined && fromEnv.length < 32) throw new UsageError('ORIGIN_HMAC_SECRET must be at least 32 characters');
  if (fromEnv !== undefined && /[\s"'\\#]/.test(fromEnv)) throw new UsageError('ORIGIN_HMAC_SECRET must not contain spaces, quotes, "#" or "\\"');
  const secret = fromEnv ?? (fromFile && fromFile.length >= 32 ? fromFile : randomBytes(32).toString('hex'));
  if (secret !== fromFile) {
    const line = `ORIGIN_HMAC_SECRET=${secret}`;
    if (at >= 0) lines[at] = line;
    else lines.push(line);
    writeFileSync(DEV_VARS, `${lines.join('\n')}\n`, { mode: 0o600 });
  }
  return secret;
}

function unquote(v: string): string {
  return v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.at(-1) === v[0] ? v.slice(1, -1) : v;
}

/** The dev key from the environment, else the one kept in the state folder, else a new one (then kept). */
function devKey(stateDir: string): { key: string; source: string } {
  const fromEnv = process.env.LATENTSIGHT_DEV_KEY;
  if (fromEnv) {
    if (!KEY_SYNTAX.test(fromEnv)) throw new UsageError('LATENTSIGHT_DEV_KEY must be 8-256 characters of A-Za-z0-9-._~+/');
    return { key: fromEnv, source: 'LATENTSIGHT_DEV_KEY' };
  }
  const file = join(stateDir, DEV_KEY_FILE);
  const kept = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
  if (KEY_SYNTAX.test(kept)) return { key: kept, source: `kept in ${shown(file)}` };
  const key = `ls_dev_${randomBytes(16).toString('hex')}`;
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return { key, source: `new, kept in ${shown(file)}` };
}

/** A path relative to the repository when it is inside it. */
function shown(path: string): string {
  const rel = relative(REPO, path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/** Rejects when something already listens on 127.0.0.1:`p` (the health checks would talk to it). */
function checkPortFree(p: number, name: string): Promise<void> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', (e: NodeJS.ErrnoException) =>
      fail(new UsageError(e.code === 'EADDRINUSE' ? `port ${p} (${name}) is already in use: stop what listens there or set ${name}` : `port ${p} (${name}): ${e.message}`)),
    );
    server.listen(p, '127.0.0.1', () => server.close(() => ok()));
  });
}

/** A child in its own process group (wrangler's workerd included), its output prefixed and tailed. */
class Proc {
  readonly child: ChildProcess;
  readonly tail: string[] = [];
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    echo: boolean,
  ) {
    this.child = spawn(command, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    for (const [stream, out] of [
      [this.child.stdout!, process.stdout],
      [this.child.stderr!, process.stderr],
    ] as const) {
      let pending = '';
      stream.on('data', (d: Buffer) => {
        pending += d.toString();
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const line of lines) this.line(line, echo ? out : undefined);
      });
      stream.on('end', () => pending && this.line(pending, echo ? out : undefined));
    }
    this.exited = new Promise((done) => {
      this.child.once('error', (e) => {
        this.line(`cannot start: ${e.message}`, process.stderr);
        this.exit ??= { code: null, signal: null };
        done();
      });
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        done();
      });
    });
  }

  private line(text: string, out: NodeJS.WriteStream | undefined): void {
    this.tail.push(text);
    if (this.tail.length > LOG_TAIL) this.tail.shift();
    out?.write(`[${this.name}] ${text}\n`);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  describeExit(): string {
    if (!this.exit) return 'is running';
    return this.exit.signal ? `was killed by ${this.exit.signal}` : `exited with code ${this.exit.code}`;
  }

  /** True while any process of its group is alive (wrangler's workerd may outlive wrangler). */
  groupAlive(): boolean {
    if (this.pid === undefined) return false;
    try {
      process.kill(-this.pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  signalGroup(signal: NodeJS.Signals): void {
    if (this.pid === undefined) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // The group is gone already.
    }
  }

  /** Signals the group, waits for all of it to go, SIGKILLs it after the grace period. True if it needed SIGKILL. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<boolean> {
    this.signalGroup(signal);
    const deadline = Date.now() + STOP_GRACE_MS;
    while (this.groupAlive() || !this.exit) {
      if (Date.now() > deadline) {
        this.signalGroup('SIGKILL');
        await Promise.race([this.exited, sleep(2000)]);
        return true;
      }
      await sleep(50);
    }
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function printTail(proc: Proc): void {
  process.stderr.write(`--- last lines of the ${proc.name} ---\n${proc.tail.map((l) => `  ${l}`).join('\n') || '  (no output)'}\n---\n`);
}

async function main(): Promise<number> {
  const started = performance.now();
  const config = readConfig();
  await Promise.all([checkPortFree(config.edgePort, 'EDGE_PORT'), checkPortFree(config.originPort, 'ORIGIN_PORT')]);
  await buildDemo(); // the demo page's assets, which wrangler dev serves at /
  const secret = sharedSecret();
  const { key, source: keySource } = devKey(config.stateDir);
  const keyHash = createHash('sha256').update(key, 'utf8').digest('hex');

  const originUrl = `http://127.0.0.1:${config.originPort}`;
  const edgeUrl = `http://127.0.0.1:${config.edgePort}`;
  const wranglerEnv: NodeJS.ProcessEnv = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' };
  const procs: Proc[] = [];
  let stopping: Promise<number> | undefined;

  const stopAll = async (reason: 'signal' | 'failure'): Promise<number> => {
    const killed = await Promise.all(procs.map((p) => p.stop()));
    if (killed.some(Boolean)) process.stderr.write(`[start] ${procs.filter((_, i) => killed[i]).map((p) => p.name).join(', ')} did not stop within ${STOP_GRACE_MS / 1000} s: killed\n`);
    return reason === 'signal' ? 0 : 1;
  };
  let firstSignalAt: number | undefined;
  let onSignalled!: () => void;
  const signalled = new Promise<void>((r) => (onSignalled = r));
  const onSignal = (signal: NodeJS.Signals) => {
    // Ctrl-C reaches this process twice: from the terminal (whole foreground group) and relayed by tsx.
    // Only a second press, a moment later, forces the stop.
    if (firstSignalAt !== undefined && performance.now() - firstSignalAt < 1000) return;
    if (firstSignalAt !== undefined) {
      process.stderr.write(`[start] ${signal} again: killing everything\n`);
      for (const p of procs) p.signalGroup('SIGKILL');
      process.exit(1);
    }
    firstSignalAt = performance.now();
    process.stdout.write(`\n[start] ${signal}: stopping the edge and the origin (again to kill them)...\n`);
    stopping ??= stopAll('signal');
    onSignalled();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  const origin = new Proc(
    'origin',
    process.execPath,
    ['--import', 'tsx', ORIGIN_MAIN],
    { ...process.env, ORIGIN_HOST: '127.0.0.1', ORIGIN_PORT: String(config.originPort), ORIGIN_HMAC_SECRET: secret },
    true,
  );
  procs.push(origin);
  process.stdout.write(`[start] origin pid ${origin.pid}\n`);

  // The key goes into the same persistence folder wrangler dev uses, before it opens it.
  const seed = new Proc(
    'kv',
    process.execPath,
    [WRANGLER, 'kv', 'key', 'put', '--binding', 'API_KEYS', '--local', '--persist-to', config.stateDir, keyHash, JSON.stringify(DEV_KEY_RECORD)],
    wranglerEnv,
    false,
  );
  procs.push(seed);
  await seed.exited;
  if (stopping) return stopping;
  procs.splice(procs.indexOf(seed), 1);
  if (seed.exit?.code !== 0) {
    process.stderr.write(`[start] seeding the dev API key into local KV failed (wrangler kv key put ${seed.describeExit()})\n`);
    printTail(seed);
    return stopAll('failure');
  }

  const edge = new Proc(
    'edge',
    process.execPath,
    [
      WRANGLER,
      'dev',
      '--port',
      String(config.edgePort),
      '--ip',
      '127.0.0.1',
      '--persist-to',
      config.stateDir,
      '--var',
      `ORIGIN_URL:${originUrl}`,
      // Development rules for webhook callback URLs: http://localhost receivers may register.
      '--var',
      'ENVIRONMENT:development',
      // The task models the edge asks for: TASK_MODELS if set; else the int8 variants while the
      // origin runs on CPUs (ORIGIN_EXECUTION_PROVIDERS unset or cpu), the float models on a GPU.
      '--var',
      `TASK_MODELS:${process.env.TASK_MODELS ?? taskModelsFor(process.env)}`,
      '--show-interactive-dev-session=false',
    ],
    wranglerEnv,
    true,
  );
  procs.push(edge);
  process.stdout.write(`[start] edge pid ${edge.pid}\n`);

  // Both healthy, or a clear failure naming which one.
  const checks = [
    { proc: origin, url: `${originUrl}/v2/health/ready`, ok: false },
    { proc: edge, url: `${edgeUrl}/healthz`, ok: false },
  ];
  const deadline = started + config.timeoutMs;
  for (;;) {
    await Promise.all(checks.filter((c) => !c.ok).map(async (c) => (c.ok = await healthy(c.url))));
    if (stopping) return stopping;
    if (checks.every((c) => c.ok)) break;
    const dead = checks.find((c) => c.proc.exit);
    if (dead) {
      process.stderr.write(`[start] the ${dead.proc.name} ${dead.proc.describeExit()} before it was healthy\n`);
      printTail(dead.proc);
      return stopAll('failure');
    }
    if (performance.now() > deadline) {
      for (const c of checks.filter((x) => !x.ok)) {
        process.stderr.write(`[start] the ${c.proc.name} was not healthy within ${config.timeoutMs / 1000} s (GET ${c.url})\n`);
        printTail(c.proc);
      }
      return stopAll('failure');
    }
    await sleep(200);
  }
  const readyS = ((performance.now() - started) / 1000).toFixed(1);

  const demo = await fetch(`${edgeUrl}/`, { signal: AbortSignal.timeout(2000) }).then(
    async (r) => (await r.body?.cancel(), r.status),
    () => 0,
  );
  const sample = join('test', 'fixtures', 'kodim23.png');
  const out = [
    '',
    `latentsight is up (healthy after ${readyS} s)`,
    `  API          ${edgeUrl}/v1   (GET /v1/models, POST /v1/analyze)`,
    `  docs         ${edgeUrl}/docs`,
    `  OpenAPI      ${edgeUrl}/openapi.json`,
    `  demo page    ${demo === 200 ? `${edgeUrl}/#key=${key}` : `${edgeUrl}/ (answered ${demo})`}`,
    `  origin       ${originUrl}   (KServe v2, signed with ORIGIN_HMAC_SECRET from .dev.vars)`,
    `  local state  ${shown(config.stateDir)}`,
    `  dev API key  ${key}`,
    `               (${keySource}; tenant "dev", scopes ${DEV_KEY_RECORD.scopes.join(', ')}, ${DEV_KEY_RECORD.rate_limit_per_minute}/min)`,
    '',
    'Try it:',
    `  npx latentsight encode ${sample} -o /tmp/kodim23.lsb`,
    `  curl -s ${edgeUrl}/v1/analyze -H "Authorization: Bearer ${key}" \\`,
    `    -H 'Content-Type: application/vnd.latentsight+bitstream' --data-binary @/tmp/kodim23.lsb`,
    '',
    'Ctrl-C stops both.',
    '',
  ];
  process.stdout.write(out.join('\n'));

  // Either child dying takes the other down.
  const died = await Promise.race<Proc | undefined>([origin.exited.then(() => origin), edge.exited.then(() => edge), signalled.then(() => undefined)]);
  if (stopping || !died) return stopping!;
  process.stderr.write(`[start] the ${died.name} ${died.describeExit()}: stopping the ${died === origin ? 'edge' : 'origin'}\n`);
  printTail(died);
  stopping = stopAll('failure');
  return stopping;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`npm start: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`npm start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
