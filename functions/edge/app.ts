/**
 * The edge's HTTP routes. Handlers stay thin: parsing, decoding and formatting live in `src/`.
 */
import { Hono } from 'hono';
import { PROBLEM_TYPE_BASE, problemResponse } from './problem.ts';

/** The Hono app that `index.ts` exports as the Worker's `fetch` handler. */
export const app = new Hono<{ Bindings: Env }>();

// Liveness only: it touches no binding, so it answers even while KV, R2 or the origin are down.
app.get('/healthz', (c) => c.json({ status: 'ok' }));

app.notFound((c) => {
  const path = new URL(c.req.url).pathname;
  return problemResponse({
    type: `${PROBLEM_TYPE_BASE}not-found`,
    title: 'Not Found',
    status: 404,
    detail: `No route matches ${c.req.method} ${path}.`,
    instance: path,
  });
});

// The one place where an unexpected error becomes an HTTP status; the detail never leaks internals.
app.onError((error, c) => {
  console.error('unhandled error', error);
  const path = new URL(c.req.url).pathname;
  return problemResponse({
    type: `${PROBLEM_TYPE_BASE}internal-error`,
    title: 'Internal Server Error',
    status: 500,
    detail: 'The edge failed unexpectedly; retry later, and report it if it persists.',
    instance: path,
  });
});
