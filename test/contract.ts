/**
 * Docs and behaviour cannot drift: every REST response and every WebSocket frame a test
 * receives (through helpers.ts `api` and ws-client.ts) is checked here against what the
 * API documents say: the operation's documented statuses and their models in /docs/json,
 * and the frame's model in the catalogue that /docs/asyncapi.json is built from.
 */
import { Value } from "@sinclair/typebox/value";
import type { TSchema } from "elysia";
import { namedModels } from "../src/lib/model";
import { SERVER_FRAMES, serverFrame } from "../src/models";
import { ERROR_CODES, statusOf, type ErrorCode } from "../src/errors";

type Operation = { responses?: Record<string, { $ref?: string; content?: Record<string, { schema: { $ref?: string; type?: string } }> }> };
type Route = { method: string; pattern: RegExp; params: number; path: string; operation: Operation };

/** The operations of an OpenAPI document, matchable against concrete paths. */
export function routesOf(doc: { paths: Record<string, Record<string, Operation>> }): Route[] {
  const routes: Route[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    const pattern = new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "[^/]+")}/?$`);
    for (const [method, operation] of Object.entries(methods))
      routes.push({ method: method.toUpperCase(), pattern, params: (path.match(/\{/g) ?? []).length, path, operation });
  }
  // A static segment wins over a parameter (/api/users/me before /api/users/{id}).
  return routes.sort((a, b) => a.params - b.params);
}

const model = (ref: string): TSchema => {
  const schema = namedModels().get(ref.replace("#/components/schemas/", ""));
  if (!schema) throw new Error(`contract: no model for ${ref}`);
  return schema;
};

const errorsOf = (schema: TSchema, value: unknown) =>
  [...Value.Errors(schema, value)].slice(0, 5).map((e) => `${e.path || "/"}: ${e.message}`).join("; ");

/** What is wrong with a response, or null when it is what the document says. */
export function checkResponse(routes: Route[], method: string, url: string, status: number, body: unknown): string | null {
  const path = new URL(url, "http://x").pathname;
  const route = routes.find((r) => r.method === method && r.pattern.test(path));
  const where = `${method} ${path} → ${status}`;
  if (!route) {
    // Not an operation (an unknown route, a hidden document): only errors are still ours.
    return status >= 400 ? checkError(where, status, body) : null;
  }
  const documented = route.operation.responses?.[String(status)];
  if (!documented) return `${where}: status not documented for ${route.method} ${route.path} (documented: ${Object.keys(route.operation.responses ?? {}).join(", ")})`;
  if (documented.$ref) return checkError(where, status, body);
  const content = documented.content;
  if (!content) return body === null || body === "" ? null : `${where}: documented without a body, got ${JSON.stringify(body).slice(0, 200)}`;
  const [media, { schema }] = Object.entries(content)[0]!;
  if (media === "text/plain") return typeof body === "string" ? null : `${where}: expected text`;
  if (media !== "application/json") return null; // a file, in its own type
  if (!schema.$ref) return `${where}: the documented schema is not a named model`;
  const typed = model(schema.$ref);
  return Value.Check(typed, body) ? null : `${where}: does not match ${schema.$ref}: ${errorsOf(typed, body)}`;
}

function checkError(where: string, status: number, body: unknown): string | null {
  // Bun itself refuses bodies over 1 MiB, before the app, with a bare 413 (README: API).
  if (status === 413 && (body === null || body === "")) return null;
  const Error = namedModels().get("Error")!;
  if (!Value.Check(Error, body)) return `${where}: not the error body: ${errorsOf(Error, body)} in ${JSON.stringify(body).slice(0, 200)}`;
  const code = (body as { error: { code: ErrorCode } }).error.code;
  return ERROR_CODES.includes(code) && statusOf(code) === status ? null : `${where}: error code ${code} belongs to another status`;
}

const frameSchemas = new Map<string, TSchema>();

/** What is wrong with a server frame, or null when it is what the catalogue says. */
export function checkFrame(frame: unknown): string | null {
  const type = (frame as { type?: unknown })?.type;
  if (typeof type !== "string" || !(type in SERVER_FRAMES)) return `frame of an undocumented type: ${JSON.stringify(frame).slice(0, 200)}`;
  let schema = frameSchemas.get(type);
  if (!schema) frameSchemas.set(type, (schema = serverFrame(type)));
  return Value.Check(schema, frame) ? null : `frame ${type} does not match its model: ${errorsOf(schema, frame)} in ${JSON.stringify(frame).slice(0, 300)}`;
}

/**
 * Frame violations wait here for test/setup.ts, which fails the test they happened in
 * (a WebSocket handler cannot fail a test by throwing).
 */
export const frameViolations: string[] = [];
