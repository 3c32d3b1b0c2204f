/**
 * The WebSocket protocol's own frames (PROTOCOL §4): the connection's life (connect,
 * resume, alerts, errors) and keep-alive. Each feature's frames are in its own model;
 * src/models.ts gathers them into the catalogue.
 */
import { t } from "elysia";
import { Id, Int, named, Nullable, OneOf, Shape, Timestamp, type FeatureModel } from "../lib/model";
import { ErrorCode } from "../http/model";
import { Epoch } from "../events/model";

const Empty = t.Union([t.Object({}), t.Null(), t.Undefined()], { description: "nothing: {} or null, or no data at all" });
const Position = Shape({ last_seq: Int({ minimum: 0, description: "where live delivery goes on from" }), epoch: Epoch });

/** Why the server closes a socket. */
export const AlertKind = OneOf("shutdown", "rate_limited", "slow_consumer", "unauthorized", "unavailable", "too_big");

/** `POST /api/ws/ticket`: a single-use ticket for `/ws/user?ticket=`. */
export const Ticket = named("Ticket", Shape({ ticket: t.String(), expires_at: Timestamp }));

/** The `error` field of an error frame. */
export const FrameError = Shape({
  code: ErrorCode,
  message: t.String(),
  details: t.Optional(t.Unknown()),
  retry_after_ms: t.Optional(Int({ minimum: 0, description: "rate_limited: when to try again" })),
});

export const model = {
  signals: {
    connect: Shape({ message: t.String(), client_id: Id, user_id: Id, last_seq: Int({ minimum: 0, description: "the log position live delivery starts from" }), epoch: Epoch }),
    pong: Shape({}),
    "sync.complete": Position,
    "sync.reset": Shape({ last_seq: Int({ minimum: 0 }), epoch: Epoch }, { description: "`since` (or its epoch) is not in the retained log: reload through REST and go on from last_seq" }),
    /** Sent just before the server closes the socket; `retry` is the close code's class (/docs/ws). */
    alert: Shape({
      kind: AlertKind,
      message: t.String(),
      retry: t.Boolean({ description: "reconnect (with backoff, resuming with since and epoch), or stop and report" }),
      retry_after_ms: t.Optional(Int({ minimum: 0 })),
    }),
    /** The data of an `error` frame (whose envelope also carries `error`; see src/models.ts). */
    error: Shape({ request_type: Nullable(t.String({ description: "the type of the refused frame, when it had one" })) }),
  },
  requests: { ping: Empty, disconnect: Empty },
  replies: { ping: ["pong"] },
} satisfies FeatureModel;
