/**
 * The AsyncAPI 3.0 description of `/ws/user` (PROTOCOL §4), generated from the catalogue
 * (src/models.ts): every client → server frame, every server → client frame with its
 * envelope, `seq` on persisted events, and how a connection ends.
 */
import { t } from "elysia";
import { ACKS, EVENTS, REPLIES, REQUESTS, SERVER_FRAMES, clientFrame, serverFrame, type RequestType } from "../models";
import { components, toJsonSchema, type Json } from "./json-schema";
import { VERSION } from "../version";
import { CLOSE_CODES } from "../realtime/close-codes";
import { REPLY_EVENTS } from "../events/replies";

const SCHEMAS = "#/components/schemas/";

/** How the upgrade authenticates: any one of these. */
const SECURITY_SCHEMES = {
  token: { type: "httpApiKey", name: "token", in: "query", description: "the JWT as ?token= (browsers cannot set headers)" },
  bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "Authorization: Bearer <jwt>" },
  ticket: { type: "httpApiKey", name: "ticket", in: "query", description: "a single-use ticket from POST /api/ws/ticket, valid 30 s" },
};
const SECURITY = Object.keys(SECURITY_SCHEMES).map((name) => ({ $ref: `#/components/securitySchemes/${name}` }));

/** The close-code table (realtime/close-codes.ts), as the documents list it. */
export const CLOSES = Object.entries(CLOSE_CODES).map(([code, c]) => ({ code: Number(code), name: c.name, retry: c.retry, when: c.when }));

/** Where each frame's `data` is described, for the page and the document. */
export const direction = (type: string) => (type in EVENTS ? "event" : "reply");

export function asyncApiDocument() {
  const messages: Record<string, Json> = {};
  const operations: Record<string, Json> = {};
  const channelMessages: Record<string, Json> = {};
  const add = (id: string, title: string, payload: Json, summary: string, action: "send" | "receive") => {
    messages[id] = { name: title, title, summary, contentType: "application/json", payload };
    channelMessages[id] = { $ref: `#/components/messages/${id}` };
    operations[id] = { action, channel: { $ref: "#/channels/user" }, summary, messages: [{ $ref: `#/channels/user/messages/${id}` }], security: SECURITY };
  };
  for (const type of Object.keys(SERVER_FRAMES))
    add(`server.${type}`, type, toJsonSchema(serverFrame(type), SCHEMAS, true), `server → client: ${type}${type in EVENTS ? " (persisted, with seq)" : ""}`, "receive");
  for (const type of Object.keys(REQUESTS) as RequestType[]) {
    add(`client.${type}`, type, toJsonSchema(clientFrame(type), SCHEMAS, true), `client → server: ${type}`, "send");
    // What answers it, matched by request_id: its reply frames, its ack, or an error.
    const answers = [...(REPLY_EVENTS[type] ? [REPLY_EVENTS[type].type] : []), ...(REPLIES[type] ?? []), ...(type in ACKS ? ["ack"] : []), "error"];
    (operations[`client.${type}`] as Record<string, Json>).reply = { channel: { $ref: "#/channels/user" }, messages: answers.map((a) => ({ $ref: `#/channels/user/messages/server.${a}` })) };
  }

  return {
    asyncapi: "3.0.0",
    info: {
      title: "Parley WebSocket",
      version: VERSION,
      description: [
        "The real-time protocol of Parley, on the same host and port as the REST API (/docs).",
        "Every frame is one JSON text frame. Server → client frames are `{type, data, timestamp, success, seq?, request_id?}`:",
        "persisted events carry `seq` (resume with `?since=<seq>`), replies carry the `request_id` of the request they answer,",
        "and so does the event that answers a message.send, edit, delete or read, or a conversation.create, on the socket that sent it (before its `ack`; each operation's reply lists it).",
        "Client → server frames are `{type, data, request_id?}`. A frame that is not JSON, has an unknown type or invalid `data`",
        "gets an `error` frame and the socket stays open.",
        "",
        "Close codes (retry: reconnect with backoff and resume with `since`; no retry: stop and report):",
        ...CLOSES.map((c) => `- ${c.code} ${c.name} (${c.retry ? "retry" : "no retry"}): ${c.when}`),
        "- Refused upgrades: HTTP 401 (no retry), 429 and 5xx (retry).",
      ].join("\n"),
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
                since: t.Optional(t.String({ description: "the highest seq processed: replay what came after, then sync.complete (or sync.reset)", documented: { type: "integer", minimum: 0 } })),
                epoch: t.Optional(t.String({ description: "the epoch that since belongs to (from connect, sync.* or GET /api/events); another one gets sync.reset" })),
              }),
              SCHEMAS,
            ),
          },
        },
      },
    },
    operations,
    components: { messages, schemas: components(SCHEMAS), securitySchemes: SECURITY_SCHEMES },
    "x-close-codes": CLOSES,
  };
}
