/**
 * The API documents: /docs (the OpenAPI reference page), /docs/json (OpenAPI 3.1),
 * /docs/asyncapi.json (AsyncAPI 3.0 for /ws/user) and /docs/ws (that protocol as HTML).
 * All are built from the models; each is built once.
 */
import { Elysia, type TSchema } from "elysia";
import { openapi } from "@elysiajs/openapi";
import { VERSION } from "../version";
import { errorComponents } from "../http/docs";
import { components, toJsonSchema } from "./json-schema";
import { asyncApiDocument } from "./asyncapi";
import { wsPage } from "./ws-page";
import { restPage, type OpenApiDocument } from "./rest-page";
import "../models"; // every model is named before the documents are built

const TAGS = [
  ["auth", "Accounts and tokens"],
  ["users", "Profiles and user search"],
  ["friends", "Friend requests and friendships"],
  ["conversations", "Direct and group conversations, members and roles"],
  ["messages", "Messages, history, read positions and reactions"],
  ["events", "The event log: resume over HTTP"],
  ["attachments", "Uploads and downloads of files"],
  ["search", "Search messages and conversations"],
  ["realtime", "The WebSocket: tickets and the upgrade (protocol: /docs/ws)"],
  ["ops", "Health and metrics"],
] as const;

type Operation = { requestBody?: { content?: Record<string, unknown> } };
type Document = { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, unknown>; responses?: unknown } };
type Route = { method: string; path: string; hooks: { body?: TSchema } };

/**
 * The plugin writes every request body with empty `content` (it skips routes whose body
 * parser is a function, and the app's JSON parser is one): this fills in each body's
 * model as `application/json`, the only form the app reads.
 */
function completeRequestBodies(doc: Document, routes: Route[]) {
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      if (!operation.requestBody || Object.keys(operation.requestBody.content ?? {}).length) continue;
      const route = routes.find((r) => r.method.toLowerCase() === method && r.path === path.replace(/\{([^}]+)\}/g, ":$1"));
      if (route?.hooks.body) operation.requestBody.content = { "application/json": { schema: toJsonSchema(route.hooks.body, "#/components/schemas/") } };
    }
  }
}

/**
 * A schema's `documented` bounds (lib/model `Characters`; a query's `limit` typed as the
 * number it is) replace its own wherever the plugin wrote it as it is (query parameters),
 * as toJsonSchema does for what it writes.
 */
function applyDocumented(node: unknown) {
  if (Array.isArray(node)) return node.forEach(applyDocumented);
  if (node === null || typeof node !== "object") return;
  const o = node as Record<string, unknown>;
  if (o.documented && typeof o.documented === "object") {
    Object.assign(o, o.documented);
    delete o.documented;
  }
  for (const value of Object.values(o)) applyDocumented(value);
}

/**
 * Keeps only the schemas the REST API refers to (the catalogue also names the WebSocket's
 * models, which /docs/asyncapi.json lists).
 */
function dropUnusedSchemas(doc: Document) {
  const used = new Set<string>();
  const visit = (node: unknown) => {
    const text = JSON.stringify(node);
    for (const [, name] of text.matchAll(/"#\/components\/schemas\/([^"]+)"/g)) {
      if (used.has(name!)) continue;
      used.add(name!);
      visit(doc.components.schemas[name!]);
    }
  };
  visit([doc.paths, doc.components.responses]);
  for (const name of Object.keys(doc.components.schemas)) if (!used.has(name)) delete doc.components.schemas[name];
}

/**
 * `routes`: the whole app's routes, whose request bodies the OpenAPI document describes;
 * `handle`: the app's own request handler (/docs is made from /docs/json as served).
 */
export const docsRoutes = (routes: () => Route[], handle: (request: Request) => Promise<Response>) => {
  let asyncapi: string | undefined;
  let page: string | undefined;
  let rest: Promise<string> | undefined;
  const completed = new WeakSet<object>();
  return new Elysia({ name: "parley.docs" })
    // Local: it applies to the plugin's routes below, not to every request of the app.
    // Its route, not its path: a hook anywhere naming `path` has Elysia give every request's
    // context a getter for it.
    .onAfterHandle(({ route, response }) => {
      // The plugin hands out the same cached document each time: complete it once.
      if (route !== "/docs/json" || completed.has(response as object)) return;
      completeRequestBodies(response as Document, routes());
      applyDocumented(response);
      dropUnusedSchemas(response as Document);
      completed.add(response as object);
    })
    .use(
      openapi({
        // /docs is the plain page below (no CDN); Scalar's reference loads its script from one.
        path: "/docs/scalar",
        specPath: "/docs/json",
        scalar: { url: "/docs/json" },
        // The WebSocket itself is not an HTTP operation: it is described in AsyncAPI.
        exclude: { methods: ["options", "ws"] },
        documentation: {
          info: {
            title: "Parley",
            version: VERSION,
            description:
              "Self-hosted real-time chat server. The WebSocket protocol (`/ws/user`) is described in [/docs/ws](/docs/ws) " +
              "and, machine-readable, in [/docs/asyncapi.json](/docs/asyncapi.json) (AsyncAPI 3.0).",
          },
          servers: [{ url: "/", description: "this server" }],
          tags: TAGS.map(([name, description]) => ({ name, description })),
          components: {
            securitySchemes: {
              bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
              signedLink: { type: "apiKey", in: "query", name: "s", description: "with `v` and `e`: the signed link of an Attachment's url or thumbnail_url, for the viewer it was made for" },
            },
            schemas: components("#/components/schemas/") as never,
            responses: errorComponents() as never,
          },
          security: [{ bearer: [] }],
        },
      }),
    )
    .get("/docs/asyncapi.json", ({ set }) => {
      set.headers["content-type"] = "application/json; charset=utf-8";
      return (asyncapi ??= JSON.stringify(asyncApiDocument()));
    }, { detail: { hide: true } })
    .get("/docs", async ({ set }) => {
      set.headers["content-type"] = "text/html; charset=utf-8";
      rest ??= handle(new Request("http://parley.invalid/docs/json"))
        .then((res) => (res.ok ? res.json() : Promise.reject(new Error(`/docs/json answered ${res.status}`))))
        .then((doc) => restPage(doc as OpenApiDocument));
      return await rest.catch((e) => {
        rest = undefined;
        throw e;
      });
    }, { detail: { hide: true } })
    .get("/docs/ws", ({ set }) => {
      set.headers["content-type"] = "text/html; charset=utf-8";
      return (page ??= wsPage());
    }, { detail: { hide: true } });
};
