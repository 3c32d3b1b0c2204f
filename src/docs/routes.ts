/**
 * The API documents: /docs (the OpenAPI reference page), /docs/json (OpenAPI 3.1),
 * /docs/asyncapi.json (AsyncAPI 3.0 for /ws/user) and /docs/ws (that protocol as HTML).
 * All are built from the models; each is built once.
 */
import { Elysia } from "elysia";
import { openapi } from "@elysiajs/openapi";
import { VERSION } from "../version";
import { errorComponents } from "../http/docs";
import { components } from "./json-schema";
import { asyncApiDocument } from "./asyncapi";
import { wsPage } from "./ws-page";
import "../models"; // every model is named before the documents are built

const TAGS = [
  ["auth", "Accounts and tokens"],
  ["users", "Profiles and user search"],
  ["friends", "Friend requests and friendships"],
  ["conversations", "Direct and group conversations, members and roles"],
  ["messages", "Messages, history, read positions and reactions"],
  ["events", "The event log: resume over HTTP"],
  ["realtime", "The WebSocket: tickets and the upgrade (protocol: /docs/ws)"],
  ["ops", "Health and metrics"],
] as const;

export const docsRoutes = () => {
  let asyncapi: string | undefined;
  let page: string | undefined;
  return new Elysia({ name: "parley.docs" })
    .use(
      openapi({
        path: "/docs",
        // The WebSocket itself is not an HTTP operation: it is described in AsyncAPI.
        exclude: { methods: ["options", "ws"] },
        documentation: {
          info: {
            title: "Parley",
            version: VERSION,
            description:
              "Self-hosted real-time chat server. The WebSocket protocol (`/ws/user`) is described in [/docs/ws](/docs/ws) " +
              "and, machine-readable, in [/docs/asyncapi.json](/docs/asyncapi.json) (AsyncAPI 3.0).",
            license: { name: "UNLICENSED" },
          },
          servers: [{ url: "/", description: "this server" }],
          tags: TAGS.map(([name, description]) => ({ name, description })),
          components: {
            securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
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
    .get("/docs/ws", ({ set }) => {
      set.headers["content-type"] = "text/html; charset=utf-8";
      return (page ??= wsPage());
    }, { detail: { hide: true } });
};
