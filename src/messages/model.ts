/** Messages, read positions, reactions and mentions (PROTOCOL §3.4). */
import { t, type TSchema } from "elysia";
import { Attachment } from "../files/model";
import { PICTURE } from "../users/model";
import { Characters, Id, Int, named, Nullable, OneOf, PageOf, Shape, Timestamp, type FeatureModel, type Static } from "../lib/model";
import { LIMIT } from "../http/paging";

const Ref = t.String({ minLength: 1, maxLength: 64 });

export const MessageType = OneOf("text", "image", "file", "system");

export const Reaction = named("Reaction", Shape({ emoji: t.String(), count: Int({ minimum: 1 }), user_ids: t.Array(Id) }));
export type Reaction = Static<typeof Reaction>;

export const Message = named(
  "Message",
  Shape({
    id: Id,
    conversation_id: Id,
    sender_id: Id,
    sender_name: t.String(),
    sender_avatar: PICTURE,
    sender_info: Shape({ id: Id, username: t.String(), display_name: t.String(), profile_image_url: PICTURE }),
    message_type: MessageType,
    content: t.String({ description: "\"\" once deleted" }),
    client_msg_id: Nullable(t.String()),
    reply_to_id: Nullable(Id),
    created_at: Timestamp,
    edited_at: Nullable(Timestamp),
    deleted_at: Nullable(Timestamp),
    reactions: t.Array(Reaction, { description: "[] once deleted" }),
    attachments: t.Array(Attachment, { maxItems: 10 }),
    is_read: t.Boolean({ description: "read_count > 0" }),
    read_count: Int({ minimum: 0, description: "members other than the sender whose read position is at or past this message" }),
  }),
);
export type Message = Static<typeof Message>;

export const MessagePage = named("MessagePage", PageOf(Message));

/** The answer of POST /api/conversations/:id/read (and the ack of `message.read`). */
export const ReadReceipt = named(
  "ReadReceipt",
  Shape({ conversation_id: Id, user_id: Id, message_id: Nullable(Id), read_at: Timestamp, unread_count: Int({ minimum: 0 }) }),
);
export type ReadReceipt = Static<typeof ReadReceipt>;

/** Optional, and null means the same as absent (clients mirror the Message shape, which has nulls). */
const OrNull = <T extends TSchema>(schema: T) => t.Optional(t.Union([schema, t.Null()]));

/** Shared by the REST routes and the WebSocket frames. */
export const SendBody = t.Object({
  content: t.Optional(Characters(4000, 20_000, { description: "1–4000 characters after trimming; may be empty (or absent) with attachment_ids" })),
  message_type: OrNull(t.Union([t.Literal("text"), t.Literal("image"), t.Literal("file"), t.Literal("system")], { description: "default text; system is refused" })),
  client_msg_id: OrNull(t.String({ minLength: 1, maxLength: 64, description: "idempotency key: a retried send returns the stored message" })),
  reply_to_id: OrNull(t.String({ minLength: 1, maxLength: 64 })),
  // "At most 10" is the service's check: inside the null union, a schema maxItems reads "should be one of: 'array', 'null'".
  attachment_ids: OrNull(t.Array(t.String({ minLength: 1, maxLength: 64 }), { description: "≤ 10 of the sender's uploads (POST /api/uploads) not attached yet", documented: { maxItems: 10 } })),
});
export const EditBody = t.Object({ content: Characters(4000, 20_000, { description: "1–4000 characters after trimming" }) });
export const ReadBody = t.Object({ message_id: Ref });
export const ReactionBody = t.Object({ emoji: Characters(32, 64, { minLength: 1, description: "1–32 characters" }) });
export const HistoryQuery = t.Object({
  before: t.Optional(t.String({ description: "newest first, older than this message id" })),
  after: t.Optional(t.String({ description: "oldest first, newer than this message id" })),
  cursor: t.Optional(t.String()),
  limit: LIMIT,
});

export const MessageDeleted = Shape({ conversation_id: Id, message_id: Id, deleted_at: Timestamp });
const ReadMoved = Shape({ conversation_id: Id, user_id: Id, message_id: Id, read_at: Timestamp });

export const model = {
  events: {
    "message.receive": Message,
    "message.edit": Message,
    "message.delete": MessageDeleted,
    "message.read": ReadMoved,
    "message.reaction": Shape({ conversation_id: Id, message_id: Id, user_id: Id, emoji: t.String(), action: OneOf("add", "remove") }),
    notification: named("Notification", Shape({ kind: t.Literal("mention"), conversation_id: Id, message_id: Id, from_user_id: Id })),
  },
  signals: {
    "message.typing": Shape({ conversation_id: Id, user_id: Id, is_typing: t.Boolean() }),
  },
  requests: {
    "message.send": t.Composite([t.Object({ conversation_id: Ref }), SendBody]),
    "message.edit": t.Composite([t.Object({ message_id: Ref }), EditBody]),
    "message.delete": t.Object({ message_id: Ref }),
    "message.read": t.Object({ conversation_id: Ref, message_id: Ref }),
    "message.typing": t.Object({ conversation_id: Ref, is_typing: t.Boolean() }),
  },
  acks: {
    "message.send": Message,
    "message.edit": Message,
    "message.delete": Shape({ message_id: Id }),
    "message.read": ReadReceipt,
  },
} satisfies FeatureModel;
