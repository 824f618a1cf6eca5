/**
 * The origin's configuration, from environment variables only (documented in README.md). Every
 * problem is reported at once, and the secret never leaves this object except as a key.
 */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OriginError } from './errors.ts';
import { EXECUTION_PROVIDERS, type ExecutionProvider } from './session-runner.ts';
import { LOG_LEVELS, type LogLevel } from '../../src/protocol/log.ts';

export interface OriginConfig {
  readonly port: number;
  readonly host: string;
  readonly manifestPath: string;
  /** Undefined only with insecureDev. */
  readonly hmacSecret?: string;
  readonly insecureDev: boolean;
  readonly maxBatch: number;
  readonly maxQueueDelayMs: number;
  readonly maxQueue: number;
  readonly deadlineMs: number;
  readonly maxBodyBytes: number;
  readonly threads: number;
  /** onnxruntime execution providers in order of preference. */
  readonly providers: readonly ExecutionProvider[];
  readonly logLevel: LogLevel;
  readonly shutdownTimeoutMs: number;
  /** Manifest ids to serve (ORIGIN_MODELS); undefined: every model of the manifest. */
  readonly models?: readonly string[];
}

/** The repository's `models/manifest.json`, wherever the process was started from. */
export const DEFAULT_MANIFEST = fileURLToPath(new URL('../../models/manifest.json', import.meta.url));
/** 256 bits: the HMAC-SHA256 key size. */
export const MIN_SECRET_LENGTH = 32;

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads and checks the configuration; throws OriginError('INVALID_CONFIG') listing every problem.
 *
 * @example
 * const config = loadConfig(process.env); // ORIGIN_PORT=8788 ORIGIN_HMAC_SECRET=... by default
 */
export function loadConfig(env: Env): OriginConfig {
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const v = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || v < min || v > max) {
      problems.push(`${name}=${JSON.stringify(raw)} must be an integer from ${min} to ${max}`);
      return fallback;
    }
    return v;
  };

  const host = env.ORIGIN_HOST || '127.0.0.1';
  const insecureDev = env.ORIGIN_INSECURE_DEV === '1';
  const secret = env.ORIGIN_HMAC_SECRET || undefined;
  if (secret !== undefined && secret.length < MIN_SECRET_LENGTH) problems.push(`ORIGIN_HMAC_SECRET must be at least ${MIN_SECRET_LENGTH} characters (e.g. \`openssl rand -hex 32\`)`);
  if (secret === undefined && !insecureDev) problems.push('ORIGIN_HMAC_SECRET is not set; set it to the secret the edge signs with, or ORIGIN_INSECURE_DEV=1 to run without auth on a loopback address');
  if (secret === undefined && insecureDev && !isLoopback(host)) problems.push(`ORIGIN_INSECURE_DEV=1 serves without auth, so only on a loopback address; ORIGIN_HOST is ${host}`);
  const providers = (env.ORIGIN_EXECUTION_PROVIDERS || 'cpu').split(',').map((p) => p.trim().toLowerCase()) as ExecutionProvider[];
  const unknownProviders = providers.filter((p) => !EXECUTION_PROVIDERS.includes(p));
  if (unknownProviders.length || new Set(providers).size !== providers.length) {
    problems.push(`ORIGIN_EXECUTION_PROVIDERS must be distinct names from ${EXECUTION_PROVIDERS.join(', ')}, comma-separated (got ${JSON.stringify(env.ORIGIN_EXECUTION_PROVIDERS)})`);
  }
  const models = env.ORIGIN_MODELS ? env.ORIGIN_MODELS.split(',').map((m) => m.trim()) : undefined;
  if (models && !models.every((m) => /^[a-z0-9._-]{1,32}$/.test(m))) problems.push(`ORIGIN_MODELS must be manifest ids, comma-separated (got ${JSON.stringify(env.ORIGIN_MODELS)})`);
  const logLevel = (env.ORIGIN_LOG_LEVEL || 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`ORIGIN_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);

  const config: OriginConfig = {
    port: int('ORIGIN_PORT', 8788, 0, 65535),
    host,
    manifestPath: env.ORIGIN_MANIFEST ? resolve(env.ORIGIN_MANIFEST) : DEFAULT_MANIFEST,
    ...(secret !== undefined && { hmacSecret: secret }),
    insecureDev,
    maxBatch: int('ORIGIN_MAX_BATCH', 16, 1, 1024),
    maxQueueDelayMs: int('ORIGIN_MAX_QUEUE_DELAY_MS', 2, 0, 10_000),
    maxQueue: int('ORIGIN_MAX_QUEUE', 256, 1, 1_000_000),
    deadlineMs: int('ORIGIN_DEADLINE_MS', 10_000, 1, 600_000),
    maxBodyBytes: int('ORIGIN_MAX_BODY_BYTES', 64 * 1024 * 1024, 1024, 2 ** 31 - 1),
    threads: int('ORIGIN_THREADS', availableParallelism(), 1, 1024),
    providers,
    logLevel,
    shutdownTimeoutMs: int('ORIGIN_SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    ...(models && { models }),
  };
  if (problems.length) throw new OriginError('INVALID_CONFIG', `invalid configuration:\n  ${problems.join('\n  ')}`);
  return config;
}

/**
 * The configuration as logged at startup: the secret is reduced to whether it is set.
 *
 * @example
 * logger.info('starting', describeConfig(config));
 */
export function describeConfig(config: OriginConfig): Record<string, unknown> {
  const { hmacSecret, ...rest } = config;
  return { ...rest, auth: hmacSecret ? 'hmac-sha256' : 'DISABLED (ORIGIN_INSECURE_DEV=1)' };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
