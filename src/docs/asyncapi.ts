/**
 * The AsyncAPI 3.0 description of `/ws/user` (PROTOCOL §4), generated from the catalogue
 * (src/models.ts): every client → server frame, every server → client frame with its
 * envelope, `seq` on persisted events, and how a connection ends.
 */
import { t } from "elysia";
import { EVENTS, REQUESTS, SERVER_FRAMES, clientFrame, serverFrame, type RequestType } from "../models";
import { components, toJsonSchema, type Json } from "./json-schema";
import { VERSION } from "../version";

const SCHEMAS = "#/components/schemas/";

/** Close codes the server uses and whether a client should reconnect after each. */
export const CLOSES: { code: number; retry: boolean; when: string }[] = [
  { code: 1000, retry: false, when: "the client sent `disconnect`" },
  { code: 1001, retry: true, when: "the server is shutting down (alert shutdown)" },
  { code: 1006, retry: true, when: "no close frame: the network dropped, or a dead peer was cut off" },
  { code: 1008, retry: true, when: "kept sending frames past the rate limit (alert rate_limited, or the user was deleted)" },
  { code: 1009, retry: true, when: "a frame over 64 KiB" },
  { code: 1013, retry: true, when: "a slow consumer (alert slow_consumer), or one connection too many" },
];

/** Where each frame's `data` is described, for the page and the document. */
export const direction = (type: string) => (type in EVENTS ? "event" : "reply");

export function asyncApiDocument() {
  const messages: Record<string, Json> = {};
  const operations: Record<string, Json> = {};
  const channelMessages: Record<string, Json> = {};
  const add = (id: string, title: string, payload: Json, summary: string, action: "send" | "receive") => {
    messages[id] = { name: title, title, summary, contentType: "application/json", payload };
    channelMessages[id] = { $ref: `#/components/messages/${id}` };
    operations[id] = { action, channel: { $ref: "#/channels/user" }, summary, messages: [{ $ref: `#/channels/user/messages/${id}` }] };
  };
  for (const type of Object.keys(REQUESTS) as RequestType[])
    add(`client.${type}`, type, toJsonSchema(clientFrame(type), SCHEMAS, true), `client → server: ${type}`, "send");
  for (const type of Object.keys(SERVER_FRAMES))
    add(`server.${type}`, type, toJsonSchema(serverFrame(type), SCHEMAS, true), `server → client: ${type}${type in EVENTS ? " (persisted, with seq)" : ""}`, "receive");

  return {
    asyncapi: "3.0.0",
    info: {
      title: "Parley WebSocket",
      version: VERSION,
      description: [
        "The real-time protocol of Parley, on the same host and port as the REST API (/docs).",
        "Every frame is one JSON text frame. Server → client frames are `{type, data, timestamp, success, seq?, request_id?}`:",
        "persisted events carry `seq` (resume with `?since=<seq>`), replies carry the `request_id` of the request they answer.",
        "Client → server frames are `{type, data, request_id?}`. A frame that is not JSON, has an unknown type or invalid `data`",
        "gets an `error` frame and the socket stays open.",
        "",
        "Close codes (retry: reconnect with backoff and resume with `since`; no retry: stop and report):",
        ...CLOSES.map((c) => `- ${c.code} (${c.retry ? "retry" : "no retry"}): ${c.when}`),
        "- Refused upgrades: HTTP 401 (no retry), 429 and 5xx (retry).",
      ].join("\n"),
      license: { name: "UNLICENSED" },
    },
    defaultContentType: "application/json",
    channels: {
      user: {
        address: "/ws/user",
        title: "The user's socket",
        description: "Everything for the authenticated user: their own events, every conversation they are a member of, and the presence they subscribe to.",
        messages: channelMessages,
        bindings: {
          ws: {
            method: "GET",
            query: toJsonSchema(
              t.Object({
                token: t.Optional(t.String({ description: "the JWT (or send Authorization: Bearer)" })),
                ticket: t.Optional(t.String({ description: "a single-use ticket from POST /api/ws/ticket, instead of the token" })),
                since: t.Optional(t.String({ description: "the highest seq processed: replay what came after, then sync.complete (or sync.reset)" })),
              }),
              SCHEMAS,
            ),
          },
        },
      },
    },
    operations,
    components: { messages, schemas: components(SCHEMAS) },
    "x-close-codes": CLOSES,
  };
}
