/**
 * The one place where anything thrown during a request becomes the PROTOCOL §2 error
 * body. Unknown errors are logged with the request id and answered as a bare 500.
 */
import { Elysia, ValidationError } from "elysia";
import { isPageNavigation, notFoundPage } from "../web/routes";
import { nestsDeeperThan, tooDeep } from "../lib/nesting";
import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import type { AppContext } from "../context";
import { AppError } from "../errors";
import { asAppError } from "../db/storage";
import { mayHoldSurrogates, wellFormed } from "../lib/text";
import { UPLOAD_PATH } from "../files/paths";

export const BODY_LIMIT = 64 * 1024;

/** What the parser hands on for a streamed upload: the route reads request.body itself. */
const STREAMED = Object.freeze({});

/** Whether a URL's path is `path` (a trailing slash and a query allowed), without parsing the URL. */
function pathIs(url: string, path: string): boolean {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0 || !url.startsWith(path, start)) return false;
  let end = start + path.length;
  if (url[end] === "/") end++;
  return end === url.length || url[end] === "?";
}

/**
 * The body as text, reading at most `limit` bytes: a bigger body (chunked, with no
 * Content-Length to refuse up front) is refused as soon as it passes the limit.
 */
async function readBounded(request: Request, limit: number): Promise<string> {
  if (!request.body) return "";
  // A declared length (already checked against the limit) bounds the body: Bun's own reader
  // is much cheaper than iterating the stream, which only a chunked body needs.
  if (request.headers.has("content-length")) return utf8(await request.bytes());
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.byteLength;
    if (size > limit) throw new AppError("payload_too_large", `body is over ${limit} bytes`);
    parts.push(chunk);
  }
  return utf8(Buffer.concat(parts, size));
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
/** JSON text is UTF-8 (RFC 8259): bytes that are not are a body that cannot be parsed, not U+FFFDs to store. */
function utf8(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new AppError("bad_request", "request body is not valid UTF-8");
  }
}

/**
 * Whether the query string of an API or WebSocket URL is valid percent-encoding of UTF-8.
 * Elysia hands over the raw text of a parameter it cannot decode, so `?q=%E0%A4%A` searched
 * for those eight characters (200, nothing found) where §2 answers a parameter that cannot
 * be parsed with 400. The web client's pages keep whatever query they are given.
 */
function queryDecodes(url: string): boolean {
  const q = url.indexOf("?");
  if (q === -1 || url.indexOf("%", q) === -1) return true;
  // Bun keeps a fragment in request.url; and a Host holding "/" leaves the URL relative.
  const hash = url.indexOf("#", q);
  const query = url.slice(q + 1, hash === -1 ? url.length : hash);
  if (!query.includes("%")) return true;
  const scheme = url.indexOf("://");
  const start = scheme === -1 || scheme > q ? url.indexOf("/") : url.indexOf("/", scheme + 3);
  if (!url.startsWith("/api/", start) && !url.startsWith("/ws/", start)) return true;
  try {
    decodeURIComponent(query);
    return true;
  } catch {
    return false;
  }
}

/**
 * Own keys that shadow Object.prototype's conversions. An object holding one (`{"toString":1}`)
 * cannot become a string, and Elysia's validation error writes the value it found into its
 * message: a body field of the wrong type holding one was a 500. No field of this API has
 * these names, so they are dropped like any unknown field.
 */
const CONVERSION_KEYS = ["toString", "valueOf"] as const;
/** Whether JSON text may name one of them (an escape can spell any key). */
const mayShadowConversions = (json: string) => /toString|valueOf|\\u/.test(json);

/** Removes CONVERSION_KEYS from every object in `value` (nested at most MAX_NESTING deep, lib/nesting). */
function dropConversionKeys(value: unknown) {
  if (typeof value !== "object" || value === null) return;
  if (Array.isArray(value)) {
    for (const v of value) dropConversionKeys(v);
    return;
  }
  for (const k of CONVERSION_KEYS) if (Object.hasOwn(value, k)) delete (value as Record<string, unknown>)[k];
  for (const v of Object.values(value)) dropConversionKeys(v);
}

/** `/a/b/0` → `a.b[0]`, the field name clients see in `details`. */
const fieldOf = (path: string) => path.replace(/^\//, "").replace(/\/(\d+)(?=\/|$)/g, "[$1]").replace(/\//g, ".") || "(body)";

type Schema = { anyOf?: Schema[]; const?: unknown; type?: unknown } | undefined;

/** The literals a union of literals (and null) allows; undefined for any other schema. */
function literals(schema: Schema): string[] | undefined {
  if (typeof schema?.const === "string") return [schema.const];
  if (schema?.type === "null") return ["null"];
  if (!schema?.anyOf?.length) return undefined;
  const all = schema.anyOf.map(literals);
  return all.every((l) => l !== undefined) ? all.flat() as string[] : undefined;
}

/** TypeBox says "should be one of: 'string', 'string'" for a union of literals; name them. */
function oneOfMessage(schema: unknown): string | undefined {
  const values = literals(schema as Schema);
  return values ? `must be one of: ${values.join(", ")}` : undefined;
}

/**
 * For a field that may also be null (`OrNull`), given something else than null: what is wrong
 * with it as the other kind ("Expected string length less or equal to 64"), not TypeBox's
 * "should be one of: 'string', 'null'" for a string that was too long.
 */
function nullableMessage(schema: unknown, value: unknown): string | undefined {
  const branches = (schema as Schema)?.anyOf;
  if (value === null || value === undefined || branches?.length !== 2) return undefined;
  const other = branches.filter((b) => b?.type !== "null");
  if (other.length !== 1) return undefined;
  try {
    return Value.Errors(other[0] as TSchema, value).First()?.message;
  } catch {
    return undefined; // a kind only Elysia knows: its own message stands
  }
}

/**
 * What a pattern means, in words (`"x-pattern-message"` beside the pattern): TypeBox's
 * "Expected string to match '^[Hh][Tt]…'" told a person nothing. In a nullable field too.
 */
function patternMessage(schema: unknown): string | undefined {
  type Described = { "x-pattern-message"?: string; anyOf?: Described[] };
  const s = schema as Described | undefined;
  return s?.["x-pattern-message"] ?? s?.anyOf?.find((b) => b?.["x-pattern-message"])?.["x-pattern-message"];
}

type SchemaError = { path?: string; summary?: string; message?: string; schema?: unknown; value?: unknown };

/**
 * `details` of a 422 / `validation_failed`: one entry per field, named as clients see it.
 * WebSocket frames name theirs under `root` ("data").
 */
export function validationDetails(errors: Iterable<SchemaError>, root?: string, max = 20) {
  const seen = new Set<string>();
  const details: { field: string; message: string }[] = [];
  for (const e of errors) {
    if (details.length >= max) break;
    const field = root === undefined ? fieldOf(e.path ?? "") : e.path ? `${root}.${fieldOf(e.path)}` : root;
    if (seen.has(field)) continue;
    seen.add(field);
    const message = oneOfMessage(e.schema) ?? nullableMessage(e.schema, e.value) ?? e.summary ?? e.message ?? "invalid";
    details.push({ field, message: message.startsWith("Expected string to match") ? (patternMessage(e.schema) ?? message) : message });
  }
  return details;
}

export function toAppError(code: string | number, error: unknown): AppError | null {
  const known = asAppError(error);
  if (known) return known;
  // A response that fails its own schema is our bug (500), not the client's input.
  if (code === "VALIDATION" && error instanceof ValidationError && error.type !== "response") {
    const details = validationDetails(error.all as SchemaError[]);
    return new AppError("validation_failed", `invalid ${error.type}: ${details.map((d) => d.field).join(", ")}`, details);
  }
  if (code === "PARSE") {
    // Elysia wraps what our parser threw (413, 400) in a ParseError.
    const cause = (error as Error).cause;
    return cause instanceof AppError ? cause : new AppError("bad_request", "request body is not valid JSON");
  }
  if (code === "NOT_FOUND") return new AppError("not_found", "no such route");
  return null;
}

export const errorHandling = (ctx: AppContext) =>
  new Elysia({ name: "parley.errors", seed: ctx.instance })
    .onRequest(({ request }) => {
      if (!queryDecodes(request.url)) throw new AppError("bad_request", "the query string is not valid percent-encoded UTF-8");
    })
    // Every body is read as JSON whatever its content type, within the size limit.
    .onParse({ as: "global" }, async ({ request }) => {
      if (pathIs(request.url, UPLOAD_PATH)) return STREAMED;
      const length = Number(request.headers.get("content-length") ?? 0);
      if (length > BODY_LIMIT) throw new AppError("payload_too_large", `body is over ${BODY_LIMIT} bytes`);
      const text = await readBounded(request, BODY_LIMIT);
      // No body at all (PATCH …/accept, DELETE): routes that need one answer 422.
      if (text.trim() === "") return null;
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new AppError("bad_request", "request body is not valid JSON");
      }
      // Elysia maps validation errors recursively: thousands of levels overflowed the stack (500).
      if (nestsDeeperThan(text)) throw tooDeep("body");
      // Every body of this API is an object. Elysia's check lets anything through for an object
      // schema whose fields are all optional (PATCH /api/users/me answered "x" with 200).
      // A literal `null` is taken as no body, as an empty one is.
      if (body === null) return null;
      if (typeof body !== "object" || Array.isArray(body))
        throw new AppError("validation_failed", "the body must be a JSON object", [{ field: "(body)", message: "must be a JSON object" }]);
      if (mayShadowConversions(text)) dropConversionKeys(body);
      return mayHoldSurrogates(text) ? wellFormed(body) : body;
    })
    .onError({ as: "global" }, ({ code, error, set, request }) => {
      if (code === "NOT_FOUND" && isPageNavigation(request)) return notFoundPage({ request, set: set as Parameters<typeof notFoundPage>[0]["set"] });
      const known = toAppError(code, error);
      if (known) {
        set.status = known.status;
        if (known.retryAfterMs !== undefined) set.headers["retry-after"] = String(Math.max(1, Math.ceil(known.retryAfterMs / 1000)));
        return known.toBody();
      }
      ctx.log.error({ err: error, request_id: set.headers["x-request-id"] }, "unhandled error");
      set.status = 500;
      return new AppError("internal", "internal error").toBody();
    });
