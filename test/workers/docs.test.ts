// The API reference: /openapi.json covers every route, schema reference and problem type the edge
// can send, and /docs renders it as a static page. Requests go through the Worker's own fetch.
import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { app } from '../../functions/edge/app.ts';
import { PROBLEM_TYPES, type ProblemKind } from '../../functions/edge/problem.ts';
import { STREAM_PROBLEMS } from '../../functions/edge/stream-problems.ts';

const EDGE = 'http://edge.test';

async function openapi() {
  const response = await exports.default.fetch(`${EDGE}/openapi.json`);
  expect(response.status).toBe(200);
  return response.json<any>();
}

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3.1 document with an operation for every route of the app', async () => {
    const doc = await openapi();
    // Hono writes path parameters as `:id`, OpenAPI as `{id}`.
    const routes = app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, '{$1}')}`);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops as object).map((m) => `${m} ${path}`));

    expect(doc.openapi).toBe('3.1.0');
    expect(documented.sort()).toEqual(routes.sort());
  });

  it('resolves every $ref it contains', async () => {
    const doc = await openapi();
    const refs = JSON.stringify(doc).match(/"\$ref":"#\/[^"]+"/g)!.map((r) => r.slice(8, -1));
    for (const ref of new Set(refs)) {
      const target = ref.split('/').slice(1).reduce((node: any, part) => node?.[part], doc);
      expect(target, ref).toBeDefined();
    }
  });

  it('lists every problem type and code, and answers each error status of POST /v1/analyze', async () => {
    const doc = await openapi();
    const kinds = Object.keys(PROBLEM_TYPES) as ProblemKind[];
    expect(doc.components.schemas.Problem.properties.type.enum).toEqual(kinds.map((k) => `https://latentsight.dev/problems/${k}`));
    const statuses = new Set(kinds.map((k) => String(PROBLEM_TYPES[k].status)));
    statuses.delete('404');
    expect(Object.keys(doc.paths['/v1/analyze'].post.responses)).toEqual(expect.arrayContaining([...statuses]));
  });
});

describe('the problem catalogue', () => {
  it('names, under the right type, every code the bitstream and entropy layers can raise', () => {
    for (const [code, kind] of Object.entries(STREAM_PROBLEMS)) expect(PROBLEM_TYPES[kind].codes as readonly string[], code).toContain(code);
  });
});

describe('GET /docs', () => {
  it('renders the reference as a static HTML page with no script and nothing loaded from elsewhere', async () => {
    const response = await exports.default.fetch(`${EDGE}/docs`);
    const html = await response.text();

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
    for (const text of ['/v1/analyze', '/v1/models', '/healthz', 'AnalyzeResult', 'SegmentResult', 'CHECKSUM_MISMATCH', 'https://latentsight.dev/problems/table-mismatch']) {
      expect(html).toContain(text);
    }
    expect(html).not.toMatch(/<script|src="http|href="http/);
  });
});

describe('the Worker itself', () => {
  it('asks for an API key on POST /v1/analyze', async () => {
    const response = await exports.default.fetch(`${EDGE}/v1/analyze`, { method: 'POST', body: 'x' });
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: 'MISSING_API_KEY' });
  });
});
