import { t, type TSchema } from "elysia";

/** Optional, and null means the same as absent (clients mirror the Message shape, which has nulls). */
const OrNull = <T extends TSchema>(schema: T) => t.Optional(t.Union([schema, t.Null()]));

/** Shared by the REST routes and the WebSocket frames. */
export const SendBody = t.Object({
  content: t.Optional(t.String({ maxLength: 20_000, description: "1–4000 characters after trimming; may be empty (or absent) with attachment_ids" })),
  message_type: OrNull(t.Union([t.Literal("text"), t.Literal("image"), t.Literal("file"), t.Literal("system")], { description: "default text; system is refused" })),
  client_msg_id: OrNull(t.String({ minLength: 1, maxLength: 64, description: "idempotency key: a retried send returns the stored message" })),
  reply_to_id: OrNull(t.String({ minLength: 1, maxLength: 64 })),
  // "At most 10" is the service's check: inside the null union, a schema maxItems reads "should be one of: 'array', 'null'".
  attachment_ids: OrNull(t.Array(t.String({ minLength: 1, maxLength: 64 }), { description: "≤ 10 of the sender's uploads (POST /api/uploads) not attached yet" })),
});
export const EditBody = t.Object({ content: t.String({ maxLength: 20_000 }) });
export const ReadBody = t.Object({ message_id: t.String({ minLength: 1, maxLength: 64 }) });
export const ReactionBody = t.Object({ emoji: t.String({ minLength: 1, maxLength: 64, description: "1–32 characters" }) });
