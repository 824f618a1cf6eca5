/**
 * `tsx functions/origin/main.ts`: the origin inference service. Reads the configuration from the
 * environment (README.md), verifies and loads every model in the manifest, serves the KServe v2
 * protocol, and drains on SIGTERM / SIGINT: readiness fails, queued requests finish, then it exits.
 */
import { readFileSync } from 'node:fs';
import { serve } from '@hono/node-server';
import { createApp } from './app.ts';
import { type OriginConfig, describeConfig, loadConfig } from './config.ts';
import { OriginError } from './errors.ts';
import { type Logger, createLogger } from '../../src/protocol/log.ts';
import { loadManifest, selectServed, servedModels } from './manifest.ts';
import { createOriginMetrics } from './metrics.ts';
import { ModelRegistry } from './registry.ts';
import { importSigningKey } from '../../src/protocol/signature.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function main(): Promise<void> {
  let config: OriginConfig;
  try {
    config = loadConfig(process.env);
  } catch (e) {
    fail(e, createLogger({ level: 'info' }), 2);
  }
  const logger = createLogger({ level: config.logLevel });
  try {
    await start(config, logger);
  } catch (e) {
    fail(e, logger, 1);
  }
}

async function start(config: OriginConfig, logger: Logger): Promise<void> {
  logger.info('starting', { version: VERSION, ...describeConfig(config) });
  const manifest = await loadManifest(config.manifestPath);
  for (const s of manifest.skipped) logger.warn('manifest entry of an unknown kind: not served', s);
  if (manifest.models.length === 0) logger.warn('the manifest lists no model: every inference request will get 404', { manifest: manifest.path });
  const key = config.hmacSecret ? await importSigningKey(config.hmacSecret) : undefined;
  if (!key) logger.warn('ORIGIN_INSECURE_DEV=1: requests are NOT authenticated; never run this way outside a development machine');

  const metrics = createOriginMetrics();
  const specs = selectServed(servedModels(manifest), config.models);
  const loadStart = performance.now();
  const registry = await ModelRegistry.load(specs, { ...config, metrics, logger });
  logger.info('models loaded', {
    manifest: manifest.path,
    ms: Math.round(performance.now() - loadStart),
    models: registry.list().map((m) => ({ name: m.name, version: m.version, batchable: m.batchable, inputs: m.inputs, outputs: m.outputs })),
  });

  const state = { draining: false };
  const app = createApp({ registry, metrics, logger, auth: { key }, maxBodyBytes: config.maxBodyBytes, deadlineMs: config.deadlineMs, state, serverVersion: VERSION });
  // While draining, ask clients to close keep-alive connections so that server.close() can finish.
  const fetch: typeof app.fetch = async (req, ...rest) => {
    const res = await app.fetch(req, ...rest);
    if (state.draining) {
      try {
        res.headers.set('Connection', 'close');
      } catch {
        // Immutable headers (none of ours): the connection then closes when the server does.
      }
    }
    return res;
  };
  const server = serve({ fetch, port: config.port, hostname: config.host }, (info) => {
    logger.info('listening', { host: config.host, port: info.port, url: `http://${config.host}:${info.port}` });
  });
  server.on('error', (e) => fail(e, logger, 1));

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      logger.warn('second signal: exiting without draining', { signal });
      process.exit(1);
    }
    stopping = true;
    state.draining = true;
    logger.info('draining', { signal, queued: registry.list().reduce((n, m) => n + m.depth(), 0) });
    setTimeout(() => {
      logger.error('shutdown timed out; exiting with requests in flight', { timeout_ms: config.shutdownTimeoutMs });
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    await registry.drain();
    await closed;
    await registry.close();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

function fail(e: unknown, logger: Logger, exitCode: number): never {
  const code = e instanceof OriginError ? e.code : 'STARTUP_FAILED';
  logger.error('cannot start', { code, error: e instanceof OriginError ? e.message : e });
  process.stderr.write(`latentsight origin: cannot start (${code}): ${(e as Error).message}\n`);
  process.exit(exitCode);
}

await main();
