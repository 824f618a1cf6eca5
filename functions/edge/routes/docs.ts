/**
 * GET /openapi.json and GET /docs: the API reference, as data and as a page. Both are static for a
 * build, so the page is rendered once per isolate.
 */
import type { Context } from 'hono';
import type { AppEnv } from '../context.ts';
import { renderDocsPage } from '../docs-page.ts';
import { OPENAPI } from '../openapi.ts';

let page: string | undefined;

/** Handles GET /openapi.json. */
export function openApiDocument(c: Context<AppEnv>): Response {
  return c.json(OPENAPI, 200, { 'cache-control': 'public, max-age=300', 'access-control-allow-origin': '*' });
}

/** Handles GET /docs. */
export function docsPage(c: Context<AppEnv>): Response {
  page ??= renderDocsPage(OPENAPI);
  return c.html(page, 200, {
    'cache-control': 'public, max-age=300',
    // Static page: no script may run, nothing may load from elsewhere.
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
  });
}
