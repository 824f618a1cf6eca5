import { describe, expect, it } from 'vitest';
import { DEFAULT_MANIFEST, describeConfig, loadConfig } from './config.ts';
import { OriginError } from './errors.ts';

const SECRET = 'x'.repeat(32);

function problems(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (e) {
    expect((e as OriginError).code).toBe('INVALID_CONFIG');
    return (e as Error).message;
  }
  throw new Error('expected INVALID_CONFIG');
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({ ORIGIN_HMAC_SECRET: SECRET });
    expect(c).toMatchObject({ port: 8788, host: '127.0.0.1', manifestPath: DEFAULT_MANIFEST, maxBatch: 16, maxQueueDelayMs: 2, maxQueue: 256, deadlineMs: 10_000, maxBodyBytes: 64 * 1024 * 1024, logLevel: 'info', insecureDev: false });
    expect(c.threads).toBeGreaterThanOrEqual(1);
    expect(DEFAULT_MANIFEST).toMatch(/models[/\\]manifest\.json$/);
  });

  it('reads every variable', () => {
    const c = loadConfig({
      ORIGIN_HMAC_SECRET: SECRET,
      ORIGIN_PORT: '0',
      ORIGIN_HOST: '0.0.0.0',
      ORIGIN_MANIFEST: '/srv/models/manifest.json',
      ORIGIN_MAX_BATCH: '1',
      ORIGIN_MAX_QUEUE_DELAY_MS: '0',
      ORIGIN_MAX_QUEUE: '3',
      ORIGIN_DEADLINE_MS: '250',
      ORIGIN_MAX_BODY_BYTES: '4096',
      ORIGIN_THREADS: '1',
      ORIGIN_EXECUTION_PROVIDERS: 'cuda, cpu',
      ORIGIN_LOG_LEVEL: 'debug',
      ORIGIN_SHUTDOWN_TIMEOUT_MS: '0',
    });
    expect(c).toMatchObject({ port: 0, host: '0.0.0.0', manifestPath: '/srv/models/manifest.json', maxBatch: 1, maxQueueDelayMs: 0, maxQueue: 3, deadlineMs: 250, maxBodyBytes: 4096, threads: 1, providers: ['cuda', 'cpu'], logLevel: 'debug', shutdownTimeoutMs: 0 });
    expect(loadConfig({ ORIGIN_HMAC_SECRET: SECRET }).providers).toEqual(['cpu']);
  });

  it('refuses to start without a secret unless ORIGIN_INSECURE_DEV=1', () => {
    expect(problems({})).toContain('ORIGIN_HMAC_SECRET is not set');
    expect(loadConfig({ ORIGIN_INSECURE_DEV: '1' }).hmacSecret).toBeUndefined();
  });

  it('refuses insecure mode on an address other hosts can reach', () => {
    expect(problems({ ORIGIN_INSECURE_DEV: '1', ORIGIN_HOST: '0.0.0.0' })).toContain('ORIGIN_INSECURE_DEV=1 serves without auth, so only on a loopback address; ORIGIN_HOST is 0.0.0.0');
    expect(loadConfig({ ORIGIN_INSECURE_DEV: '1', ORIGIN_HOST: 'localhost' }).host).toBe('localhost');
  });

  it('serves every model unless ORIGIN_MODELS names some, and refuses what cannot be an id', () => {
    expect(loadConfig({ ORIGIN_HMAC_SECRET: SECRET }).models).toBeUndefined();
    expect(loadConfig({ ORIGIN_HMAC_SECRET: SECRET, ORIGIN_MODELS: 'ls-f8-q2, cls-latent-ls-f8-q2' }).models).toEqual(['ls-f8-q2', 'cls-latent-ls-f8-q2']);
    expect(problems({ ORIGIN_HMAC_SECRET: SECRET, ORIGIN_MODELS: 'ls-f8-q2,,Bad/Id' })).toContain('ORIGIN_MODELS must be manifest ids, comma-separated');
  });

  it('refuses a short secret', () => {
    expect(problems({ ORIGIN_HMAC_SECRET: 'hunter2' })).toContain('ORIGIN_HMAC_SECRET must be at least 32 characters');
  });

  it('lists every bad value at once', () => {
    const message = problems({ ORIGIN_HMAC_SECRET: SECRET, ORIGIN_PORT: '70000', ORIGIN_MAX_BATCH: '0', ORIGIN_THREADS: 'two', ORIGIN_LOG_LEVEL: 'loud', ORIGIN_EXECUTION_PROVIDERS: 'tensorrt,cpu' });
    expect(message).toContain('ORIGIN_PORT="70000" must be an integer from 0 to 65535');
    expect(message).toContain('ORIGIN_MAX_BATCH="0" must be an integer from 1 to 1024');
    expect(message).toContain('ORIGIN_THREADS="two" must be an integer from 1 to 1024');
    expect(message).toContain('ORIGIN_LOG_LEVEL must be one of debug, info, warn, error');
    expect(message).toContain('ORIGIN_EXECUTION_PROVIDERS must be distinct names from cpu, cuda, comma-separated (got "tensorrt,cpu")');
    expect(problems({ ORIGIN_HMAC_SECRET: SECRET, ORIGIN_EXECUTION_PROVIDERS: 'cpu,cpu' })).toContain('ORIGIN_EXECUTION_PROVIDERS must be distinct');
  });
});

describe('describeConfig', () => {
  it('never contains the secret', () => {
    const described = JSON.stringify(describeConfig(loadConfig({ ORIGIN_HMAC_SECRET: SECRET })));
    expect(described).not.toContain(SECRET);
    expect(described).toContain('"auth":"hmac-sha256"');
  });
});
