// The edge against the real origin process (functions/origin with the fixture models), over real
// HTTP from workerd: signed, gzip-compressed KServe v2 requests, and answers that match an
// independent computation of the fixture models (test/fixtures/models/reference.ts).
// Runs when the project's global setup (origin.global-setup.ts) provides an origin; skipped otherwise.
import { env } from 'cloudflare:workers';
import { describe, expect, inject, it, vi } from 'vitest';
import { defaultOriginDeps } from '../../functions/edge/origin.ts';
import { loadRegistry } from '../../functions/edge/registry.ts';
import fixtureManifest from '../fixtures/models/manifest.json';
import { checkTopK, classifierProbabilities, segmenterMask } from '../fixtures/models/reference.ts';
import { analyzeInit, seedKey, testEdge } from './support/edge.ts';
import { readPalettePng } from './support/png.ts';
import { testManifest, testStream } from './support/models.ts';

const origin = inject('origin' as never) as { url: string; secret: string } | undefined;

describe.skipIf(!origin)('the edge with the real origin', () => {
  async function edge(secret = origin!.secret) {
    const { manifest, files } = await testManifest();
    const codec = manifest.models.filter((m) => m.kind === 'codec');
    const { registry, problems } = await loadRegistry({ schema: 1, models: [...codec, ...fixtureManifest.models] }, files);
    // cls-c64-test runs on ls-f8-q2, which this registry does not serve; cls-rgb-test takes pixels.
    expect(problems).toEqual(['classifier cls-c64-test: its codec "ls-f8-q2" is not served']);
    const app = testEdge({ registry: async () => registry, origin: defaultOriginDeps });
    const bindings = { ...env, ORIGIN_URL: origin!.url, ORIGIN_HMAC_SECRET: secret } as Env;
    return { fetch: (path: string, init: RequestInit) => app.fetch(path, init, bindings) };
  }

  it('classifies and segments a stream as the fixture models compute it', async () => {
    const { bytes, latents, shape } = await testStream({ width: 37, height: 21, seed: 401 });

    const response = await (await edge()).fetch('/v1/analyze?tasks=classify,segment', analyzeInit(await seedKey(), bytes));

    expect(response.status).toBe(200);
    const body = await response.json<any>();
    const nchw = [1, shape.channels, shape.height, shape.width];
    const top = body.results.classify.top as { id: string; score: number }[];
    expect(top).toHaveLength(5);
    expect(checkTopK(classifierProbabilities(latents, nchw, 0), top.map((t) => t.score), top.map((t) => Number(t.id)), 1e-4)).toBeUndefined();

    // The fixture segmenter answers the argmax channel (0-3) at the padded size; the edge crops it.
    const mask = segmenterMask(latents, nchw);
    const counts = [0, 0, 0, 0];
    for (let y = 0; y < 21; y++) for (let x = 0; x < 37; x++) counts[mask[y * 8 * shape.width + x]]++;
    const segment = body.results.segment;
    expect(segment).toMatchObject({ width: 37, height: 21 });
    expect(Object.keys(segment.fractions)).toEqual(['0', '1', '2', '3']);
    for (const id of [0, 1, 2, 3]) expect(segment.fractions[String(id)]).toBeCloseTo(counts[id] / (37 * 21), 5);
    const png = await readPalettePng(Uint8Array.from(atob(segment.mask), (ch) => ch.charCodeAt(0)));
    const cropped = new Uint8Array(37 * 21);
    for (let y = 0; y < 21; y++) cropped.set(mask.subarray(y * 8 * shape.width, y * 8 * shape.width + 37), y * 37);
    expect([png.width, png.height]).toEqual([37, 21]);
    expect(png.pixels).toEqual(cropped);
  });

  it('answers 502 without retrying when the origin refuses the signature (a misconfigured secret)', async () => {
    const { bytes } = await testStream({ seed: 402 });
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});

    const response = await (await edge('not-the-origin-secret-0123456789abcdef')).fetch('/v1/analyze?tasks=classify', analyzeInit(await seedKey(), bytes));

    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({ code: 'ORIGIN_REJECTED' });
    logged.mockRestore();
  });
});
