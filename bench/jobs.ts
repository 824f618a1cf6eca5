/**
 * `npm run bench -- jobs`: async jobs through an origin outage, on the real local stack.
 *
 * The Worker under `wrangler dev` machinery (unstable_startWorker: workerd, local KV, R2, Queues with
 * their delays and dead letter queue, Durable Objects), the real origin process (functions/origin
 * with the shipped models; the jobs ask for `classify`, 64x48 images) and a Node webhook
 * receiver that verifies every delivery with the `standardwebhooks` reference library.
 *
 * 1. The origin is down (its port reserved, nothing listening). BENCH_JOBS (1000) jobs are
 *    submitted (distinct synthetic ls-f8-q2 streams coded with the bundled tables, so every job
 *    misses the cache), each with the receiver's registered URL as callback_url.
 * 2. After BENCH_OUTAGE_SECONDS (20) of outage, during which the jobs fail against the dead origin
 *    and wait, the origin starts on that port.
 * 3. The receiver answers 500 to the first attempt of every 10th event, so those deliveries are
 *    retried (after ~5 s); every other request gets 200.
 * 4. Done when every job reads `completed` and every job's event has been verified, or after
 *    BENCH_JOBS_TIMEOUT_SECONDS (480).
 *
 * Checked and reported: jobs accepted/completed/failed, events verified by the reference library,
 * distinct webhook-ids, events whose retry kept its webhook-id, duplicate events (one job with two
 * webhook-ids), signatures that failed verification, the time from recovery to the last event.
 * Jobs retry faster here than in production (vars JOB_RETRY_BASE_SECONDS=1, JOB_RETRY_MAX_SECONDS=4)
 * so that the run takes minutes; the backoff logic is the same.
 */
import { createServer } from 'node:http';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { writeBitstream } from '../src/bitstream/index.ts';
import { encodeLatents, parseTables } from '../src/entropy/index.ts';
import { hex, sha256 } from '../functions/edge/digest.ts';
import { syntheticLatents } from '../test/support/synthetic.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));

export async function benchJobs(): Promise<Record<string, unknown>> {
  const jobs = Number(process.env.BENCH_JOBS ?? 1000);
  const outageSeconds = Number(process.env.BENCH_OUTAGE_SECONDS ?? 20);
  const timeoutSeconds = Number(process.env.BENCH_JOBS_TIMEOUT_SECONDS ?? 480);
  const { freePort, startOrigin } = await import('../functions/origin/process.ts');
  process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= 'false';
  const { unstable_startWorker } = await import('wrangler');
  const secret = `bench-${crypto.randomUUID()}`;
  const originPort = await freePort();
  const streams = await makeStreams(jobs);

  // The webhook receiver.
  const receiver = { secret: '', verified: new Map<string, string>(), attempts: new Map<string, number>(), invalid: 0, failedOnPurpose: 0, requests: 0, lastAt: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      receiver.requests++;
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = { 'webhook-id': String(req.headers['webhook-id']), 'webhook-timestamp': String(req.headers['webhook-timestamp']), 'webhook-signature': String(req.headers['webhook-signature']) };
      let event: { type: string; data: { job_id: string } };
      try {
        event = new Webhook(receiver.secret).verify(body, headers) as typeof event;
      } catch {
        receiver.invalid++;
        res.writeHead(400).end();
        return;
      }
      const id = headers['webhook-id'];
      const n = (receiver.attempts.get(id) ?? 0) + 1;
      receiver.attempts.set(id, n);
      // Every 10th event (by id) fails its first attempt: its retry must come under the same id.
      if (n === 1 && parseInt(id.slice(-2), 16) % 10 === 0) {
        receiver.failedOnPurpose++;
        res.writeHead(500).end();
        return;
      }
      if (!receiver.verified.has(id)) receiver.verified.set(id, event.data.job_id);
      receiver.lastAt = performance.now();
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const receiverUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;

  const dir = join(REPO, 'node_modules/.cache/latentsight-bench-jobs');
  await mkdir(dir, { recursive: true });
  const entry = join(dir, 'entry.ts');
  await writeFile(entry, benchEntry());
  const state = join(dir, `state-${process.pid}`);
  const worker = await unstable_startWorker({
    config: join(REPO, 'wrangler.toml'),
    entrypoint: entry,
    bindings: {
      ORIGIN_URL: { type: 'plain_text', value: `http://127.0.0.1:${originPort}` },
      ORIGIN_HMAC_SECRET: { type: 'secret_text', value: secret },
      ENVIRONMENT: { type: 'plain_text', value: 'development' },
      JOB_RETRY_BASE_SECONDS: { type: 'plain_text', value: '1' },
      JOB_RETRY_MAX_SECONDS: { type: 'plain_text', value: '4' },
      ORIGIN_TIMEOUT_MS: { type: 'plain_text', value: '5000' },
    },
    dev: { server: { hostname: '127.0.0.1', port: 0 }, inspector: false, remote: false, watch: false, persist: state, logLevel: 'error' },
  });
  let origin: Awaited<ReturnType<typeof startOrigin>> | undefined;
  try {
    const url = await worker.url;
    const key = `ls_bench_${crypto.randomUUID().replaceAll('-', '')}`;
    const seeded = await fetch(new URL('/__bench/key', url), { method: 'POST', body: hex(await sha256(key)) });
    if (!seeded.ok) throw new Error(`could not seed the bench key: ${seeded.status}`);
    const auth = { authorization: `Bearer ${key}` };
    const registered = await fetch(new URL('/v1/webhooks', url), { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ url: receiverUrl }) });
    if (registered.status !== 201) throw new Error(`could not register the receiver: ${registered.status} ${await registered.text()}`);
    receiver.secret = ((await registered.json()) as { secret: string }).secret;

    // 1. Submit while the origin is down.
    const ids: string[] = [];
    let refused = 0;
    const t0 = performance.now();
    await pool(streams, 16, async (bytes) => {
      const r = await fetch(`${url.origin}/v1/jobs?tasks=classify&callback_url=${encodeURIComponent(receiverUrl)}`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/vnd.latentsight+bitstream' },
        body: bytes,
      });
      if (r.status === 202) ids.push(((await r.json()) as { id: string }).id);
      else refused++;
    });
    const submitSeconds = (performance.now() - t0) / 1000;
    // 2. The outage, then the origin comes back on its port.
    await sleep(outageSeconds * 1000);
    const during = await jobStates(url, auth, ids.slice(0, 50));
    origin = await startOrigin({ ORIGIN_PORT: String(originPort), ORIGIN_HMAC_SECRET: secret, ORIGIN_LOG_LEVEL: 'info' });
    const recovered = performance.now();
    // 4. Wait for every event.
    const deadline = recovered + timeoutSeconds * 1000;
    while (performance.now() < deadline && receiver.verified.size < ids.length) await sleep(1000);
    const states = await jobStates(url, auth, ids);
    const unfinished = ids.length ? ((await (await fetch(new URL(`/v1/jobs/${ids[ids.length - 1]}`, url), { headers: auth })).json()) as { status: string; last_error?: unknown; error?: unknown }) : undefined;
    const jobsWithEvents = new Map<string, Set<string>>();
    for (const [webhookId, jobId] of receiver.verified) jobsWithEvents.set(jobId, (jobsWithEvents.get(jobId) ?? new Set()).add(webhookId));
    const retriedKeptId = [...receiver.attempts.values()].filter((n) => n >= 2).length;
    return {
      bench: 'jobs',
      jobs_submitted: streams.length,
      jobs_accepted: ids.length,
      jobs_refused: refused,
      submit_seconds: round(submitSeconds),
      outage_seconds: outageSeconds,
      sample_during_outage: during,
      jobs_completed: states.completed ?? 0,
      jobs_failed: states.failed ?? 0,
      jobs_other: ids.length - (states.completed ?? 0) - (states.failed ?? 0),
      last_job: unfinished && { status: unfinished.status, last_error: unfinished.last_error ?? unfinished.error ?? null },
      webhooks_verified: receiver.verified.size,
      jobs_with_verified_event: jobsWithEvents.size,
      duplicate_events: [...jobsWithEvents.values()].filter((s) => s.size > 1).length,
      deliveries_failed_on_purpose: receiver.failedOnPurpose,
      retried_deliveries_same_webhook_id: retriedKeptId,
      signature_failures: receiver.invalid,
      receiver_requests: receiver.requests,
      seconds_from_recovery_to_last_event: round((receiver.lastAt - recovered) / 1000),
      target: { jobs_completed: jobs, webhooks_verified: jobs, duplicate_events: 0 },
      stack: 'wrangler unstable_startWorker (workerd, local Queues/KV/R2/DO) + functions/origin (shipped models) + Node receiver (standardwebhooks)',
    };
  } finally {
    await worker.dispose();
    await origin?.stop();
    server.close();
    await rm(entry, { force: true });
    await rm(state, { recursive: true, force: true });
  }
}

/** Distinct small ls-f8-q2 streams (64x48 images), coded with the bundled tables. */
async function makeStreams(n: number): Promise<Uint8Array[]> {
  const manifest = JSON.parse(await readFile(join(REPO, 'models/manifest.json'), 'utf8')) as { models: { id: string; kind: string; channels: number; stride: number; table_hash: string; files: { tables: { path: string } } }[] };
  const codec = manifest.models.find((m) => m.id === 'ls-f8-q2')!;
  const tables = parseTables(new Uint8Array(await readFile(join(REPO, 'models', codec.files.tables.path))));
  const shape = { channels: codec.channels, height: 6, width: 8 };
  return Array.from({ length: n }, (_, i) => {
    const { latents } = syntheticLatents(shape, { seed: 5000 + i, minScale: 0.3, maxScale: 2 });
    return writeBitstream({ width: 64, height: 48, stride: codec.stride, channels: codec.channels, modelId: codec.id, tableHash: codec.table_hash, latents: encodeLatents(latents, shape, tables) });
  });
}

async function jobStates(url: URL | string, auth: Record<string, string>, ids: string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  await pool(ids, 16, async (id) => {
    const r = await fetch(new URL(`/v1/jobs/${id}`, url).href, { headers: auth });
    const status = r.ok ? ((await r.json()) as { status: string }).status : `http_${r.status}`;
    counts[status] = (counts[status] ?? 0) + 1;
  });
  return counts;
}

async function pool<T>(items: T[], width: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await run(items[next++]);
  }));
}

function sleep(ms: number): Promise<void> {
  return new Promise((ok) => setTimeout(ok, ms));
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** A bench-only Worker entry: the production handlers, plus a route that stores the bench's key. */
function benchEntry(): string {
  const at = (path: string) => JSON.stringify(join(REPO, path));
  return `// Written by bench/jobs.ts; not part of the Worker.
import { defaultDeps } from ${at('functions/edge/app.ts')};
import { createWorker } from ${at('functions/edge/index.ts')};
export { RateLimiter, IdempotencyKeys, TenantStore, Reevaluator } from ${at('functions/edge/index.ts')};
const worker = createWorker({ ...defaultDeps, webhookFetch: (u, i) => fetch(u, i), now: Date.now, random: Math.random });
export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext) {
    if (new URL(request.url).pathname === '/__bench/key') {
      await env.API_KEYS.put(await request.text(), JSON.stringify({ tenant: 'bench', scopes: ['analyze'], rate_limit_per_minute: 1000000000 }));
      return new Response('ok');
    }
    return worker.fetch(request, env, ctx);
  },
  queue: worker.queue,
  scheduled: worker.scheduled,
};
`;
}
