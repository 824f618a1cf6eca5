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

const idempotencyKey = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    'draft-ietf-httpapi-idempotency-key-header: a string (sf-string, e.g. `"8e03978e-..."`) of 1-255 printable characters. The same key with the same ' +
    'request replays the first response (`Idempotent-Replayed: true`) for 24 h; with another method, path, query or body: 422; while the first is ' +
    'still running: 409. 5xx and 429 responses are not kept.',
  schema: { type: 'string', minLength: 1, maxLength: 257 },
};
const bearer = (scope: string) => [{ apiKey: [scope] }];
const idParam = (what: string) => ({ name: 'id', in: 'path', required: true, description: `The ${what}'s id.`, schema: { type: 'string' } });
const anyObject = { type: 'object' };
const Job = {
  type: 'object',
  required: ['id', 'status', 'tasks', 'bitstream_sha256', 'created_at'],
  properties: {
    id: { type: 'string', example: 'job_3f2a...' },
    status: { enum: ['queued', 'running', 'completed', 'failed'] },
    tasks: { type: 'array', items: { type: 'string', enum: Object.keys(TASKS) } },
    bitstream_sha256: { type: 'string' },
    image: anyObject,
    callback_url: { type: 'string', description: 'Null when none was given.' },
    metadata: { type: 'object', description: 'Null when none was given.' },
    attempts: { type: 'integer', description: 'Runs so far (the origin being down counts).' },
    created_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
    finished_at: { type: 'string', format: 'date-time', description: 'Null until then.' },
    results: { ...anyObject, description: 'When completed: as `results` of POST /v1/analyze.' },
    models: anyObject,
    error: { type: 'object', properties: { code: { type: 'string' }, detail: { type: 'string' } }, description: 'When failed.' },
    last_error: { type: 'object', description: 'While queued: why the last run did not finish (e.g. `ORIGIN_UNAVAILABLE`).' },
  },
};
const Endpoint = {
  type: 'object',
  required: ['id', 'url', 'events', 'created_at'],
  properties: {
    id: { type: 'string' },
    url: { type: 'string', format: 'uri' },
    events: { type: 'array', items: { enum: ['analysis.completed', 'analysis.failed', 'analysis.updated'] } },
    created_at: { type: 'string', format: 'date-time' },
    previous_secret_expires_at: { type: 'string', format: 'date-time', description: 'Until then deliveries are also signed with the previous secret (null without a rotation).' },
    secret: { type: 'string', pattern: '^whsec_', description: 'Only in the answers of creation and rotation.' },
  },
};

/** Async jobs, webhook endpoints and the admin re-evaluation routes. */
const ASYNC_PATHS = {
  '/v1/jobs': {
    post: {
      tags: ['jobs'],
      operationId: 'createJob',
      summary: 'Submit an async analysis',
      description:
        'The bitstream as the body (with `tasks` and `callback_url` in the query) or JSON `{bitstream (base64), tasks, callback_url, metadata}`. The ' +
        "stream is checked in full before the job is accepted. The job runs from a queue; while the origin is down it waits and retries. Its event " +
        '(`analysis.completed` or `analysis.failed`) goes to every endpoint of the tenant subscribed to it, and to `callback_url`, which must be a ' +
        'registered endpoint. Metadata: a JSON object of at most 4096 bytes, echoed in events. Needs the `analyze` scope.',
      security: bearer('analyze'),
      parameters: [
        { name: 'tasks', in: 'query', required: false, style: 'form', explode: false, schema: { type: 'array', items: { type: 'string', enum: Object.keys(TASKS) } } },
        { name: 'callback_url', in: 'query', required: false, schema: { type: 'string', format: 'uri' } },
        idempotencyKey,
      ],
      requestBody: {
        required: true,
        content: {
          ...Object.fromEntries(BITSTREAM_MEDIA_TYPES.map((t) => [t, { schema: { type: 'string', contentMediaType: t } }])),
          'application/json': {
            schema: {
              type: 'object',
              required: ['bitstream'],
              additionalProperties: false,
              properties: {
                bitstream: { type: 'string', contentEncoding: 'base64' },
                tasks: { type: 'array', items: { type: 'string', enum: Object.keys(TASKS) } },
                callback_url: { type: 'string', format: 'uri' },
                metadata: { type: 'object' },
              },
            },
          },
        },
      },
      responses: {
        '202': { description: 'Accepted and queued.', headers: { ...requestIdHeader, Location: { schema: { type: 'string' } } }, content: json(ref('Job')) },
        '400': problems(400),
        '401': problems(401),
        '403': problems(403),
        '409': problems(409, 'idempotency-key-in-use'),
        '413': problems(413),
        '415': problems(415),
        '422': problems(422),
        '429': problems(429),
      },
    },
  },
  '/v1/jobs/{id}': {
    get: {
      tags: ['jobs'],
      operationId: 'getJob',
      summary: 'A job: status and result',
      security: bearer('analyze'),
      parameters: [idParam('job')],
      responses: { '200': { description: 'The job.', content: json(ref('Job')) }, '401': problems(401), '404': problems(404) },
    },
  },
  '/v1/jobs/{id}/deliveries': {
    get: {
      tags: ['jobs'],
      operationId: 'getJobDeliveries',
      summary: "The delivery log of a job's events",
      description: 'Every delivery (one per endpoint) with its `webhook_id`, status (`pending`, `delivered`, `dead`), next attempt and every attempt made (time, HTTP status or error, duration).',
      security: bearer('analyze'),
      parameters: [idParam('job')],
      responses: { '200': { description: 'The log.', content: json(anyObject) }, '401': problems(401), '404': problems(404) },
    },
  },
  '/v1/webhooks': {
    post: {
      tags: ['webhooks'],
      operationId: 'createWebhook',
      summary: 'Register a webhook endpoint',
      description:
        'Standard Webhooks deliveries: headers `webhook-id` (the same on every retry), `webhook-timestamp`, `webhook-signature` (`v1,<base64 HMAC-SHA256 ' +
        'of "id.timestamp.body">`, keyed by the base64-decoded secret after `whsec_`). Retries: exponential backoff with jitter (5 s, 20 s, 80 s, ... ' +
        'up to 10 h) over more than 24 h, then the delivery is dead. The URL must be https to a public host (no private, loopback or link-local ' +
        'address). At most 10 endpoints per tenant. `events` defaults to all three.',
      security: bearer('analyze'),
      requestBody: { required: true, content: json({ type: 'object', required: ['url'], additionalProperties: false, properties: { url: { type: 'string', format: 'uri' }, events: Endpoint.properties.events } }) },
      responses: {
        '201': { description: 'Registered; the only time the secret is shown.', content: json(ref('WebhookEndpoint')) },
        '400': problems(400),
        '401': problems(401),
        '409': problems(409, 'webhook-limit-reached'),
        '415': problems(415),
        '422': problems(422, 'invalid-callback-url'),
      },
    },
    get: {
      tags: ['webhooks'],
      operationId: 'listWebhooks',
      summary: "The tenant's webhook endpoints (without secrets)",
      security: bearer('analyze'),
      responses: { '200': { description: 'The endpoints.', content: json({ type: 'object', properties: { data: { type: 'array', items: ref('WebhookEndpoint') } } }) }, '401': problems(401) },
    },
  },
  '/v1/webhooks/{id}': {
    delete: {
      tags: ['webhooks'],
      operationId: 'deleteWebhook',
      summary: 'Remove a webhook endpoint',
      security: bearer('analyze'),
      parameters: [idParam('endpoint')],
      responses: { '204': { description: 'Removed; its pending deliveries are dropped.' }, '401': problems(401), '404': problems(404) },
    },
  },
  '/v1/webhooks/{id}/rotate': {
    post: {
      tags: ['webhooks'],
      operationId: 'rotateWebhookSecret',
      summary: "Rotate an endpoint's secret",
      description: 'Answers the new secret; for 24 h (var `WEBHOOK_SECRET_OVERLAP_SECONDS`) deliveries carry a signature with each of the two secrets.',
      security: bearer('analyze'),
      parameters: [idParam('endpoint')],
      responses: { '200': { description: 'The endpoint with its new secret.', content: json(ref('WebhookEndpoint')) }, '401': problems(401), '404': problems(404) },
    },
  },
  '/v1/admin/reevaluations': {
    post: {
      tags: ['admin'],
      operationId: 'createReevaluation',
      summary: 'Re-evaluate stored bitstreams',
      description:
        'Re-analyses with the served models the stored bitstreams of a tenant (or all) uploaded between `from` and `to` (ISO 8601, inclusive), ' +
        'one page of R2 at a time through the queue; results whose models are current are skipped; `analysis.updated` goes out where a result changed. ' +
        'The hourly cron does the same for every tenant when the manifest has a newer classifier or segmenter. Needs the `admin` scope.',
      security: bearer('admin'),
      requestBody: { required: false, content: json({ type: 'object', additionalProperties: false, properties: { tenant: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' } } }) },
      responses: { '202': { description: 'Started.', content: json(ref('Reevaluation')) }, '400': problems(400), '401': problems(401), '403': problems(403), '415': problems(415) },
    },
    get: {
      tags: ['admin'],
      operationId: 'listReevaluations',
      summary: 'The 20 latest re-evaluations',
      security: bearer('admin'),
      responses: { '200': { description: 'Runs, newest first.', content: json({ type: 'object', properties: { data: { type: 'array', items: ref('Reevaluation') } } }) }, '401': problems(401), '403': problems(403) },
    },
  },
  '/v1/admin/reevaluations/{id}': {
    get: {
      tags: ['admin'],
      operationId: 'getReevaluation',
      summary: "A re-evaluation's progress",
      security: bearer('admin'),
      parameters: [idParam('re-evaluation')],
      responses: { '200': { description: 'The run.', content: json(ref('Reevaluation')) }, '401': problems(401), '403': problems(403), '404': problems(404) },
    },
  },
};

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
    { name: 'jobs', description: 'Async analyses, with events to webhooks.' },
    { name: 'webhooks', description: 'Webhook endpoints (Standard Webhooks signatures).' },
    { name: 'admin', description: 'Operator routes (scope `admin`).' },
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
          '409': problems(409, 'idempotency-key-in-use'),
          '415': problems(415),
          '422': problems(422),
          '429': problems(429),
          '500': problems(500),
          '502': problems(502),
          '503': problems(503),
        },
      },
    },
    ...ASYNC_PATHS,
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
      Job,
      WebhookEndpoint: Endpoint,
      Reevaluation: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          status: { enum: ['running', 'completed'] },
          reason: { type: 'string' },
          scope: anyObject,
          models: { type: 'object', description: '`previous` and `target`: `<codec>/<task>` -> `<id>@<version>`.' },
          progress: { type: 'object', description: 'pages, listing_done, listed, queued, done, and done by outcome: changed, unchanged, skipped, failed.' },
          created_at: { type: 'string', format: 'date-time' },
          finished_at: { type: 'string', format: 'date-time', description: 'Null until then.' },
        },
      },
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
                legacy_table_hashes: {
                  type: 'array',
                  items: { type: 'string', pattern: '^[0-9a-f]{16}$' },
                  description: "Earlier versions' table hashes that are still decoded (streams archived or coded by clients not yet updated); new streams use table_hash.",
                },
                decode_only: {
                  type: 'object',
                  required: ['since', 'successor'],
                  properties: { since: { type: 'string', format: 'date' }, successor: { type: 'string' } },
                  description: "Present when the codec is kept for stored streams only: they decode and are analysed, but the SDK refuses new encodes with it; encode with `successor`.",
                },
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
                serves: { type: 'boolean', description: 'Whether this model answers its task for its codec: the one the TASK_MODELS var names, else the first listed.' },
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
