/**
 * /docs: the REST API as a plain HTML page (no script, no CDN: it reads on a LAN without
 * the internet), made from the OpenAPI document served at /docs/json. The interactive
 * reference (Scalar, whose script comes from a CDN) is /docs/scalar.
 */
import type { TSchema } from "elysia";
import { tsType } from "./typescript";
import { esc, linked, modelSections, page, prose } from "./html";

interface Parameter { name: string; in: string; required?: boolean; description?: string; schema?: { description?: string } & Record<string, unknown> }
interface Response { $ref?: string; description?: string; content?: Record<string, { schema?: unknown }> }
interface Operation {
  operationId?: string; summary?: string; description?: string; tags?: string[]; security?: unknown[];
  parameters?: Parameter[]; requestBody?: { content?: Record<string, { schema?: unknown }> }; responses?: Record<string, Response>;
}
export interface OpenApiDocument {
  info: { title: string; version: string };
  tags?: { name: string; description?: string }[];
  paths: Record<string, Record<string, Operation>>;
  components?: { responses?: Record<string, Response> };
}

const METHODS = ["get", "head", "post", "put", "patch", "delete"];
const typeOf = (schema: unknown) => tsType(schema as TSchema);
const refName = (ref: string) => ref.slice(ref.lastIndexOf("/") + 1);

function operation(method: string, path: string, op: Operation): string {
  const id = esc(op.operationId ?? `${method}${path}`);
  const params = (op.parameters ?? []).map(
    // Its type says what it takes (an enum's values showed nowhere but in /docs/json).
    (p) => `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}${p.required ? ", required" : ""}</td><td><code>${p.schema ? esc(typeOf(p.schema)) : ""}</code></td><td>${prose(p.description ?? p.schema?.description ?? "")}</td></tr>`,
  );
  const bodies = Object.entries(op.requestBody?.content ?? {});
  const responses = Object.entries(op.responses ?? {});
  const ok = responses.filter(([status]) => status < "400").map(([status, r]) => {
    const schema = r.content ? Object.values(r.content)[0]?.schema : undefined;
    return `<tr><td>${esc(status)}</td><td>${prose(r.description ?? "")}</td><td>${schema ? linked(typeOf(schema)) : ""}</td></tr>`;
  });
  const errors = responses.filter(([status]) => status >= "400").map(([status, r]) => (r.$ref ? `<a href="#error-${esc(refName(r.$ref))}">${esc(status)}</a>` : esc(status)));
  return `<section class="op" id="${id}">
<h3><span class="method">${esc(method)}</span> <code>${esc(path)}</code></h3>
<p>${prose(op.summary ?? "")}${op.security?.length === 0 ? " <em>(no token)</em>" : ""}</p>
${op.description ? `<p>${prose(op.description)}</p>` : ""}
${params.length ? `<table><tr><th>parameter</th><th>in</th><th>type</th><th>meaning</th></tr>${params.join("")}</table>` : ""}
${bodies.map(([type, b]) => `<p>Body (<code>${esc(type)}</code>):</p>${b.schema ? linked(typeOf(b.schema)) : ""}`).join("\n")}
${ok.length ? `<table><tr><th>status</th><th>meaning</th><th>body</th></tr>${ok.join("")}</table>` : ""}
${errors.length ? `<p>Errors: ${errors.join(", ")}</p>` : ""}
</section>`;
}

export function restPage(doc: OpenApiDocument): string {
  const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((method) => ({ method, path, op: item[method]! })),
  );
  // Each tag with its operations (by their first tag; untagged ones last, as "other").
  const groups = [...(doc.tags ?? []), { name: "other", description: "" }]
    .map((tag) => ({ tag, mine: operations.filter(({ op }) => (op.tags?.[0] ?? "other") === tag.name) }))
    .filter(({ mine }) => mine.length > 0);
  const sections = groups.map(({ tag, mine }) =>
    `<h2 id="tag-${esc(tag.name)}">${esc(tag.name)}</h2>${tag.description ? `<p>${esc(tag.description)}</p>` : ""}\n${mine.map(({ method, path, op }) => operation(method, path, op)).join("\n")}`);
  const errors = Object.entries(doc.components?.responses ?? {}).map(([name, r]) => `<tr id="error-${esc(name)}"><td>${esc(name)}</td><td>${esc(r.description ?? "")}</td></tr>`);
  const contents = groups.map(({ tag }) => `<a href="#tag-${esc(tag.name)}">${esc(tag.name)}</a>`);
  return page(`${doc.info.title} REST API`, `<h1>${esc(doc.info.title)} REST API <small>${esc(doc.info.version)}</small></h1>
<p>Machine-readable: <a href="/docs/json">/docs/json</a> (OpenAPI). Interactive: <a href="/docs/scalar">/docs/scalar</a> (its script comes from a CDN).
WebSocket: <a href="/docs/ws">/docs/ws</a>.</p>
<p>Every <code>/api/*</code> route takes <code>Authorization: Bearer &lt;token&gt;</code> (from register or login) unless marked "no token".
Lists are <code>{items, next_cursor}</code>: pass <code>?cursor=</code> back for the next page, <code>?limit=</code> 1–100.
Errors are <code>${esc('{"error": {"code": "…", "message": "…", "details": …}}')}</code>.</p>
<p>${contents.join(" · ")} · <a href="#errors">errors</a> · <a href="#models">models</a></p>
${sections.join("\n")}
<h2 id="errors">Errors</h2>
<table><tr><th>response</th><th>when</th></tr>${errors.join("")}</table>
<h2 id="models">Models</h2>
${modelSections()}`);
}
