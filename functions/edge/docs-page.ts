/**
 * Renders the OpenAPI document as one static, self-contained HTML page (no script, no CDN): the
 * routes with their parameters and responses, the problem types, and the schemas.
 */

type Schema = {
  $ref?: string;
  type?: string;
  enum?: readonly unknown[];
  const?: unknown;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: readonly string[];
  additionalProperties?: Schema;
  description?: string;
  contentMediaType?: string;
  contentEncoding?: string;
  pattern?: string;
};

interface Operation {
  summary?: string;
  description?: string;
  security?: readonly Record<string, readonly string[]>[];
  parameters?: readonly { name: string; in: string; required?: boolean; description?: string; schema: Schema }[];
  requestBody?: { description?: string; content: Record<string, unknown> };
  responses: Record<string, { description: string; content?: Record<string, { schema: Schema }> }>;
}

interface Document {
  info: { title: string; version: string; summary?: string; description?: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; securitySchemes: Record<string, { description?: string }> };
  'x-problem-types': readonly { type: string; status: number; title: string; codes: readonly string[]; about: string }[];
}

/**
 * The HTML page for an OpenAPI document of this API.
 *
 * @example
 * c.html(renderDocsPage(OPENAPI))
 */
export function renderDocsPage(doc: Document): string {
  const ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })));
  const schemas = Object.entries(doc.components.schemas);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(doc.info.title)}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:1rem 1.5rem;color:#1b1f24}
code{font:13px ui-monospace,monospace;background:#f2f4f7;padding:0 .25em;border-radius:3px}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}th,td{text-align:left;vertical-align:top;border-bottom:1px solid #dde1e6;padding:.3rem .5rem}
th{font-weight:600;background:#f7f8fa}h2{border-bottom:2px solid #1b1f24;padding-bottom:.2rem;margin-top:2.5rem}
article{margin:1.5rem 0 2rem}.method{display:inline-block;min-width:3.5rem;font:600 13px ui-monospace,monospace;color:#fff;background:#3358d4;border-radius:3px;padding:.1rem .4rem;text-align:center}
.post{background:#218358}nav a{margin-right:1rem}.muted{color:#5c6670}
</style>
</head>
<body>
<header>
<h1>${esc(doc.info.title)} <span class="muted">${esc(doc.info.version)}</span></h1>
<p><strong>${esc(doc.info.summary ?? '')}</strong></p>
<p>${md(doc.info.description ?? '')}</p>
<nav><a href="#routes">Routes</a><a href="#auth">Authentication</a><a href="#problems">Problem types</a><a href="#schemas">Schemas</a><a href="/openapi.json">openapi.json</a></nav>
</header>
<h2 id="auth">Authentication</h2>
${Object.entries(doc.components.securitySchemes).map(([name, s]) => `<p><code>${esc(name)}</code>: ${md(s.description ?? '')}</p>`).join('\n')}
<h2 id="routes">Routes</h2>
${ops.map(({ path, method, op }) => operation(path, method, op)).join('\n')}
<h2 id="problems">Problem types</h2>
<p>Errors are <code>application/problem+json</code> (RFC 9457) with <code>type</code>, <code>title</code>, <code>status</code>, <code>detail</code>, <code>instance</code>, <code>code</code> and <code>request_id</code>.</p>
<table><tr><th>type</th><th>status</th><th>codes</th><th>when</th></tr>
${doc['x-problem-types'].map((p) => `<tr id="problem-${esc(p.type.split('/').pop()!)}"><td><code>${esc(p.type)}</code><br>${esc(p.title)}</td><td>${p.status}</td><td>${p.codes.map((c) => `<code>${esc(c)}</code>`).join(' ')}</td><td>${md(p.about)}</td></tr>`).join('\n')}
</table>
<h2 id="schemas">Schemas</h2>
${schemas.map(([name, s]) => schema(name, s)).join('\n')}
</body>
</html>
`;
}

function operation(path: string, method: string, op: Operation): string {
  const params = op.parameters ?? [];
  const auth = op.security?.length ? `<p>Needs an API key with scope ${Object.values(op.security[0]).flat().map((s) => `<code>${esc(s)}</code>`).join(', ')}.</p>` : '<p class="muted">No API key needed.</p>';
  return `<article id="${esc(method)}-${esc(path)}">
<h3><span class="method ${esc(method)}">${esc(method.toUpperCase())}</span> <code>${esc(path)}</code> ${esc(op.summary ?? '')}</h3>
<p>${md(op.description ?? '')}</p>
${auth}
${params.length ? `<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>${params.map((p) => `<tr><td><code>${esc(p.name)}</code>${p.required ? ' (required)' : ''}</td><td>${esc(p.in)}</td><td>${type(p.schema)}</td><td>${md(p.description ?? '')}</td></tr>`).join('')}</table>` : ''}
${op.requestBody ? `<p><strong>Body</strong> (${Object.keys(op.requestBody.content).map((t) => `<code>${esc(t)}</code>`).join(' or ')}): ${md(op.requestBody.description ?? '')}</p>` : ''}
<table><tr><th>status</th><th>body</th><th>meaning</th></tr>
${Object.entries(op.responses).map(([status, r]) => `<tr><td>${esc(status)}</td><td>${Object.entries(r.content ?? {}).map(([t, c]) => `<code>${esc(t)}</code> ${type(c.schema)}`).join('<br>')}</td><td>${md(r.description)}</td></tr>`).join('\n')}
</table>
</article>`;
}

function schema(name: string, s: Schema): string {
  const props = Object.entries(s.properties ?? {});
  return `<h3 id="schema-${esc(name)}">${esc(name)}</h3>
${s.description ? `<p>${md(s.description)}</p>` : ''}
${props.length ? `<table><tr><th>member</th><th>type</th><th>description</th></tr>${props.map(([p, ps]) => `<tr><td><code>${esc(p)}</code>${s.required?.includes(p) ? '' : ' <span class="muted">(optional)</span>'}</td><td>${type(ps)}</td><td>${md(ps.description ?? '')}</td></tr>`).join('')}</table>` : `<p>${type(s)}</p>`}`;
}

/** A schema's type in a few words, with links to named schemas. */
function type(s: Schema | undefined): string {
  if (!s) return '';
  if (s.$ref) {
    const name = s.$ref.split('/').pop()!;
    return `<a href="#schema-${esc(name)}">${esc(name)}</a>`;
  }
  if (s.enum) return s.enum.map((v) => `<code>${esc(JSON.stringify(v))}</code>`).join(' | ');
  if (s.const !== undefined) return `<code>${esc(JSON.stringify(s.const))}</code>`;
  if (s.type === 'array') return `array of ${type(s.items)}`;
  if (s.type === 'object' && s.additionalProperties) return `map of ${type(s.additionalProperties)}`;
  if (s.type === 'object' && s.properties) return `object {${Object.keys(s.properties).map((k) => ` <code>${esc(k)}</code>: ${type(s.properties![k])}`).join(',')} }`;
  const extra = s.contentMediaType ? ` (${s.contentEncoding ? `${esc(s.contentEncoding)} ` : ''}${esc(s.contentMediaType)})` : s.pattern ? ` <code>${esc(s.pattern)}</code>` : '';
  return `${esc(s.type ?? 'any')}${extra}`;
}

/** HTML-escapes text, then turns `code spans` into <code>. */
function md(text: string): string {
  return esc(text).replace(/`([^`]+)`/g, '<code>$1</code>');
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
