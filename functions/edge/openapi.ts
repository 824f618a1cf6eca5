/**
 * The OpenAPI 3.1 document of the public API, written by hand. Problem types come from the one
 * catalogue in `problem.ts`, so the document cannot drift from what the error handler sends; the
 * workers test `docs.test.ts` checks that every route of the app is documented.
 */
import { BITSTREAM_MEDIA_TYPES } from './body.ts';
import { PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, PROBLEM_TYPE_BASE, type ProblemKind } from './problem.ts';
import { TASKS } from './registry.ts';

const kinds = Object.keys(PROBLEM_TYPES) as ProblemKind[];

/** A response of problem+json for every problem type with this status. */
function problems(status: number, ...only: ProblemKind[]) {
  const matching = kinds.filter((k) => PROBLEM_TYPES[k].status === status && (only.length === 0 || only.includes(k)));
  return {
    description: matching.map((k) => `\`${k}\`: ${PROBLEM_TYPES[k].about}`).join(' '),
    content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: '#/components/schemas/Problem' } } },
    ...(status === 429 || status === 503 ? { headers: { 'Retry-After': { $ref: '#/components/headers/Retry-After' } } } : {}),
    ...(status === 401 || status === 403 ? { headers: { 'WWW-Authenticate': { $ref: '#/components/headers/WWW-Authenticate' } } } : {}),
  };
}

const json = (schema: object) => ({ 'application/json': { schema } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const requestIdHeader = { 'X-Request-Id': { $ref: '#/components/headers/X-Request-Id' } };

export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'latentsight edge API',
    version: '1.0.0',
    summary: 'Vision on images that are never decoded.',
    description:
      'Send the bitstream of a learned image codec; the edge checks and entropy-decodes it to integer latents, and classifiers and segmenters ' +
      'run on those latents, never on pixels. Results are cached by content and model version. The bitstream format is specified in ' +
      '`docs/FORMAT.md`. Every error is RFC 9457 problem+json with a stable `type` and `code`. Routes under `/v1` allow ' +
      'cross-origin calls from any page (CORS; keys travel in `Authorization`, never in cookies).',
    license: { name: 'See the repository', identifier: 'NOASSERTION' },
  },
  servers: [{ url: '/', description: 'This edge' }],
  tags: [
    { name: 'analysis', description: 'Analysing bitstreams.' },
    { name: 'models', description: 'What the edge serves.' },
    { name: 'meta', description: 'Health and documentation.' },
  ],
  paths: {
    '/v1/analyze': {
      post: {
        tags: ['analysis'],
        operationId: 'analyze',
        summary: 'Analyse a bitstream',
        description:
          'Checks the stream (size limits while reading, header, checksum, codec and entropy-table hash), then answers from the result cache ' +
          'or entropy-decodes the latents and runs the requested task models on them at the origin. A key with `store_bitstreams` also ' +
          'has the bitstream kept in storage, so that new model versions can re-evaluate it. Needs the `analyze` scope; counts against ' +
          "the key's per-minute limit whatever the outcome.",
        security: [{ apiKey: ['analyze'] }],
        parameters: [
          {
            name: 'tasks',
            in: 'query',
            required: false,
            description: "Comma-separated tasks to run. Absent: every task that has a model for the stream's codec.",
            style: 'form',
            explode: false,
            schema: { type: 'array', items: { type: 'string', enum: Object.keys(TASKS) }, minItems: 1, uniqueItems: true },
            example: 'classify,segment',
          },
          {
            name: 'X-Request-Id',
            in: 'header',
            required: false,
            description: 'Your id for the request (8-128 of `A-Za-z0-9._:-`); the edge makes one otherwise. Echoed in the response and sent to the origin.',
            schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{8,128}$' },
          },
        ],
        requestBody: {
          required: true,
          description: 'The bitstream, as is (no Content-Encoding). At most 4 MiB by default; images up to 4096 px a side.',
          content: Object.fromEntries(BITSTREAM_MEDIA_TYPES.map((t) => [t, { schema: { type: 'string', contentMediaType: t } }])),
        },
        responses: {
          '200': {
            description: 'The analysis.',
            headers: {
              ...requestIdHeader,
              'Server-Timing': { description: 'Phase durations (`auth`, `ratelimit`, `read`, `parse`, `cache`, `decode`, `origin`, `total`) and `cache;desc="hit"|"miss"`.', schema: { type: 'string' } },
              'RateLimit-Limit': { description: "The key's requests per minute.", schema: { type: 'integer' } },
              'RateLimit-Remaining': { description: 'Requests left before the limit.', schema: { type: 'integer' } },
              'RateLimit-Reset': { description: 'Seconds until the allowance is full again.', schema: { type: 'integer' } },
            },
            content: json(ref('AnalyzeResult')),
          },
          '400': problems(400),
          '401': problems(401),
          '403': problems(403),
          '413': problems(413),
          '415': problems(415),
          '422': problems(422),
          '429': problems(429),
          '500': problems(500),
          '502': problems(502),
          '503': problems(503),
        },
      },
    },
    '/v1/models': {
      get: {
        tags: ['models'],
        operationId: 'listModels',
        summary: 'List the served models',
        description: 'Codecs a client may encode with (their table hashes go in the stream header) and the task models that run on their latents.',
        security: [],
        responses: { '200': { description: 'The served models.', headers: requestIdHeader, content: json(ref('ModelList')) } },
      },
    },
    '/healthz': {
      get: {
        tags: ['meta'],
        operationId: 'health',
        summary: 'Liveness',
        description: 'Answers while the Worker runs; touches no storage and not the origin.',
        security: [],
        responses: { '200': { description: 'Alive.', content: json({ type: 'object', required: ['status'], properties: { status: { const: 'ok' } } }) } },
      },
    },
    '/openapi.json': {
      get: {
        tags: ['meta'],
        operationId: 'openapi',
        summary: 'This document',
        security: [],
        responses: { '200': { description: 'The OpenAPI 3.1 document.', content: json({ type: 'object' }) } },
      },
    },
    '/docs': {
      get: {
        tags: ['meta'],
        operationId: 'docs',
        summary: 'API reference page',
        description: 'This document rendered as one static HTML page.',
        security: [],
        responses: { '200': { description: 'The reference.', content: { 'text/html': { schema: { type: 'string' } } } } },
      },
    },
  },
  components: {
    securitySchemes: {
      apiKey: { type: 'http', scheme: 'bearer', description: '`Authorization: Bearer <API key>`. Keys are stored hashed (SHA-256); scopes: `analyze`.' },
    },
    headers: {
      'X-Request-Id': { description: "The request's id, also in problem bodies as `request_id`.", schema: { type: 'string' } },
      'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 1 } },
      'WWW-Authenticate': { description: 'The Bearer challenge (RFC 6750), with `error` and `scope` where they apply.', schema: { type: 'string' } },
    },
    schemas: {
      AnalyzeResult: {
        type: 'object',
        required: ['request_id', 'codec', 'bpp', 'image', 'results', 'models', 'cache', 'timings_ms'],
        properties: {
          request_id: { type: 'string' },
          codec: { type: 'string', description: "The stream's codec id." },
          bpp: { type: 'number', description: 'Bits per pixel of the whole stream, header included.' },
          image: { type: 'object', required: ['width', 'height'], properties: { width: { type: 'integer' }, height: { type: 'integer' } } },
          results: {
            type: 'object',
            description: 'One member per requested task.',
            properties: { classify: ref('ClassifyResult'), segment: ref('SegmentResult') },
          },
          models: {
            type: 'object',
            description: 'The codec and each task model that produced the results, with versions.',
            required: ['codec'],
            properties: { codec: ref('ModelVersion'), classify: ref('ModelVersion'), segment: ref('ModelVersion') },
          },
          cache: { enum: ['hit', 'miss'] },
          timings_ms: { type: 'object', additionalProperties: { type: 'number' }, description: 'Phase durations in ms, as in Server-Timing.' },
        },
      },
      ModelVersion: { type: 'object', required: ['id', 'version'], properties: { id: { type: 'string' }, version: { type: 'string' } } },
      ClassifyResult: {
        type: 'object',
        required: ['top'],
        properties: {
          top: {
            type: 'array',
            description: 'The top classes, most probable first.',
            items: {
              type: 'object',
              required: ['label', 'id', 'score'],
              properties: { label: { type: 'string' }, id: { type: 'string' }, score: { type: 'number', minimum: 0, maximum: 1 } },
            },
          },
        },
      },
      SegmentResult: {
        type: 'object',
        required: ['width', 'height', 'classes', 'mask', 'fractions'],
        properties: {
          width: { type: 'integer' },
          height: { type: 'integer' },
          classes: {
            type: 'array',
            items: {
              type: 'object',
              required: ['index', 'id', 'name', 'color'],
              properties: {
                index: { type: 'integer', description: 'Palette index of the class in the mask.' },
                id: { type: 'string' },
                name: { type: 'string' },
                color: { type: 'string', pattern: '^#[0-9a-f]{6}$' },
              },
            },
          },
          mask: { type: 'string', contentEncoding: 'base64', contentMediaType: 'image/png', description: 'Indexed-colour PNG, one pixel per image pixel; indices of no class are transparent.' },
          fractions: { type: 'object', additionalProperties: { type: 'number', minimum: 0, maximum: 1 }, description: "Share of the mask's pixels per class id." },
        },
      },
      ModelList: {
        type: 'object',
        required: ['codecs', 'task_models'],
        properties: {
          codecs: {
            type: 'array',
            items: {
              type: 'object',
              required: ['id', 'version', 'stride', 'channels', 'table_hash', 'table_precision'],
              properties: {
                id: { type: 'string' },
                version: { type: 'string' },
                stride: { type: 'integer' },
                channels: { type: 'integer' },
                table_hash: { type: 'string', pattern: '^[0-9a-f]{16}$', description: 'First 8 bytes of the SHA-256 of the entropy table file, as in the stream header.' },
                table_precision: { type: 'integer' },
              },
            },
          },
          task_models: {
            type: 'array',
            items: {
              type: 'object',
              required: ['id', 'version', 'kind', 'task', 'codec', 'serves', 'labels'],
              properties: {
                id: { type: 'string' },
                version: { type: 'string' },
                kind: { enum: Object.values(TASKS) },
                task: { enum: Object.keys(TASKS) },
                codec: { type: 'string' },
                serves: { type: 'boolean', description: 'Whether this model answers its task for its codec (the first listed does).' },
                labels: { type: 'array', items: ref('Label') },
              },
            },
          },
        },
      },
      Label: {
        type: 'object',
        required: ['index', 'id', 'name'],
        properties: { index: { type: 'integer' }, id: { type: 'string' }, name: { type: 'string' } },
      },
      Problem: {
        type: 'object',
        description: 'RFC 9457 problem details. Branch on `type` or `code`, never on `title` or `detail`.',
        required: ['type', 'title', 'status', 'detail', 'instance', 'code', 'request_id'],
        properties: {
          type: { enum: kinds.map((k) => `${PROBLEM_TYPE_BASE}${k}`) },
          title: { type: 'string' },
          status: { type: 'integer' },
          detail: { type: 'string', description: 'What was wrong with this request and what to do about it.' },
          instance: { type: 'string', description: 'The request path.' },
          code: { enum: [...new Set(kinds.flatMap((k) => PROBLEM_TYPES[k].codes))] },
          request_id: { type: 'string' },
          retry_after: { type: 'integer', description: 'With 429 and 503: seconds, as in Retry-After.' },
          max_bytes: { type: 'integer', description: 'With BODY_TOO_LARGE: the limit.' },
        },
      },
    },
  },
  'x-problem-types': kinds.map((k) => ({ type: `${PROBLEM_TYPE_BASE}${k}`, ...PROBLEM_TYPES[k] })),
} as const;
