/**
 * The OpenAPI description of a REST operation, from the models: its summary, its success
 * responses and the error statuses it can answer (each the shared error body). The test
 * suite checks every response it receives against what /docs/json says (test/contract.ts).
 */
import type { TSchema } from "elysia";
import { nameOf } from "../lib/model";
import { toJsonSchema, type Json } from "../docs/json-schema";

/** Status → body schema; `null` for a response without a body (204, 101). */
export type Outcomes = Record<number, TSchema | null>;

/** Every error status, its name in `components.responses`, and when it happens. */
export const ERROR_RESPONSES: Record<number, [name: string, description: string]> = {
  400: ["BadRequest", "bad_request: the body is not JSON, or a parameter cannot be parsed (limit=abc, a foreign cursor)"],
  401: ["Unauthorized", "unauthorized: no token, a bad or expired one, or the user no longer exists"],
  403: ["Forbidden", "forbidden: authenticated but not allowed; not_friends: CONTACT_POLICY=friends and `details` names the users who are not the caller's friends"],
  404: ["NotFound", "not_found: no such resource, or one the caller may not see"],
  409: ["Conflict", "conflict: the resource is not in a state that allows this"],
  410: ["Gone", "sync_reset: `since` is outside the retained event log; reload through REST"],
  413: ["PayloadTooLarge", "payload_too_large: the body is over 64 KiB"],
  422: ["ValidationFailed", "validation_failed: `details` names the fields ([{field, message}])"],
  429: ["RateLimited", "rate_limited: too many requests; see the Retry-After header"],
  500: ["Internal", "internal: a bug; the message never carries a stack trace or SQL"],
  503: ["Unavailable", "unavailable: a backing service is unreachable (cluster mode: PostgreSQL; attachments: S3); see the Retry-After header"],
  507: ["StorageFull", "storage_full: the server's disk is full; nothing was written, reads keep working"],
};

/** What any operation can answer: a bad body is refused whatever the route (see http/errors.ts). */
const ALWAYS = [400, 413, 422, 500];
/** What spends a per-user write or send budget (and writes) can also answer. */
const WRITE = [429, 507];

export interface OperationOptions {
  /** Error statuses beyond those every operation (and every authenticated one) has. */
  errors?: number[];
  /** No bearer token (register, login, health). */
  public?: boolean;
  /** Spends a write or send budget. */
  write?: boolean;
  description?: string;
  /** The success body is plain text (metrics). */
  text?: boolean;
  /** The success body is a file, in its own content type (downloads). */
  binary?: boolean;
  /** Other ways in than the bearer token (any one of them will do). */
  security?: Record<string, string[]>[];
  /** A request body the route reads itself (uploads), as OpenAPI describes it. */
  requestBody?: { description?: string; required: boolean; content: Record<string, { schema: Json }> };
}

const SUCCESS: Record<number, string> = {
  101: "Switching Protocols: the WebSocket is open",
  200: "OK",
  201: "Created",
  204: "No content",
  206: "Partial content: the requested Range",
  304: "Not modified: the If-None-Match ETag still holds",
  416: "Range not satisfiable (no body; Content-Range says the size)",
  503: "Unavailable: this node does not reach a backing service (cluster mode's PostgreSQL or NATS, or the S3 of attachments)",
};

/** An operation's `detail`: summary, responses (success and errors), security. */
export function op(summary: string, ok: Outcomes, options: OperationOptions = {}) {
  const errors = [...new Set([...ALWAYS, ...(options.public ? [] : [401]), ...(options.write ? WRITE : []), ...(options.errors ?? [])])].sort();
  const responses: Record<string, { description: string; content?: Record<string, { schema: Json }> } | { $ref: string }> = {};
  for (const [status, schema] of Object.entries(ok)) {
    // Named, so that the document refers to it (and test/contract.ts finds it by name).
    if (schema && !nameOf(schema) && !options.text && !options.binary) throw new Error(`docs: ${summary}: name the ${status} response's model`);
    // A file comes in its own type (image/png…; octet-stream only for a type a browser could run).
    const media = options.text ? "text/plain" : options.binary ? "*/*" : "application/json";
    responses[status] = schema
      ? { description: SUCCESS[Number(status)] ?? "OK", content: { [media]: { schema: toJsonSchema(schema, "#/components/schemas/") } } }
      : { description: SUCCESS[Number(status)] ?? "No content" };
  }
  for (const status of errors) {
    const known = ERROR_RESPONSES[status];
    if (!known) throw new Error(`docs: no error response for ${status}`);
    responses[String(status)] = { $ref: `#/components/responses/${known[0]}` };
  }
  return {
    summary,
    ...(options.description ? { description: options.description } : {}),
    ...(options.public ? { security: [] } : options.security ? { security: options.security } : {}),
    ...(options.requestBody ? { requestBody: options.requestBody as { required: boolean; content: Record<string, object> } } : {}),
    responses: responses as Record<string, { description: string }>,
  };
}

/** The statuses that always say when to try again. */
const RETRY_AFTER = new Set([429, 503]);

/** `components.responses`: one per error status, each the shared error body (and Retry-After where it comes). */
export const errorComponents = () =>
  Object.fromEntries(
    Object.entries(ERROR_RESPONSES).map(([status, [name, description]]) => [
      name,
      {
        description,
        ...(RETRY_AFTER.has(Number(status)) ? { headers: { "Retry-After": { description: "seconds to wait before trying again", schema: { type: "integer", minimum: 1 } } } } : {}),
        content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
      },
    ]),
  );
