/**
 * Drizzle tables. Times are stored as integer milliseconds since the epoch and rendered
 * as ISO-8601 strings at the edge; ids are UUIDv7 strings, so they sort by creation time.
 */
import { sql } from "drizzle-orm";
import { sqliteTable, text, integer, index, uniqueIndex, primaryKey } from "drizzle-orm/sqlite-core";

export const users = sqliteTable("users", {
  id: text().primaryKey(),
  /** Lower-case; unique. */
  username: text().notNull().unique(),
  displayName: text("display_name").notNull(),
  /** What user search matches: both names folded as search folds text (users/name-key.ts); null until filled. */
  nameKey: text("name_key"),
  profileImageUrl: text("profile_image_url"),
  passwordHash: text("password_hash").notNull(),
  lastActiveAt: integer("last_active_at").notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

export type UserRow = typeof users.$inferSelect;

/**
 * At most one row per unordered pair (`pair_key` = the two ids sorted, joined by "|"):
 * a rejected request is replaced when either side asks again, a removed one is deleted.
 */
export const friendships = sqliteTable(
  "friendships",
  {
    id: text().primaryKey(),
    /** The requester. */
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    /** The addressee. */
    friendId: text("friend_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    pairKey: text("pair_key").notNull(),
    status: text({ enum: ["pending", "accepted", "rejected"] }).notNull(),
    requestedAt: integer("requested_at").notNull(),
    acceptedAt: integer("accepted_at"),
  },
  (t) => [
    uniqueIndex("friendships_pair_key").on(t.pairKey),
    index("friendships_user").on(t.userId, t.status),
    index("friendships_friend").on(t.friendId, t.status),
  ],
);

export const conversations = sqliteTable(
  "conversations",
  {
    id: text().primaryKey(),
    type: text({ enum: ["direct", "group"] }).notNull(),
    /** Group title; null for direct conversations (their title is the other member's name). */
    title: text(),
    /** For direct conversations: the two member ids sorted and joined by "|"; one conversation per pair. */
    directKey: text("direct_key").unique(),
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    lastMessageAt: integer("last_message_at"),
    lastMessageId: text("last_message_id"),
    /** The list order: when the last message (else the conversation) came, as a strictly increasing microsecond key (lib/time.ts activityKey). */
    activityAt: integer("activity_at").notNull(),
    /**
     * How many members it has, kept by triggers on conversation_members (migration 0009):
     * every conversation in every list shows it, and counting a big group's members on
     * each read cost ~175 µs per 1,000.
     */
    memberCount: integer("member_count").notNull().default(0),
  },
);

export const members = sqliteTable(
  "conversation_members",
  {
    conversationId: text("conversation_id").notNull().references(() => conversations.id, { onDelete: "cascade" }),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    role: text({ enum: ["owner", "admin", "member"] }).notNull(),
    joinedAt: integer("joined_at").notNull(),
    /**
     * The last seq of the change that added the member (their `conversation.create`):
     * their sockets follow the conversation from there on, so a replay gives them its
     * events after it, as live.
     */
    joinedSeq: integer("joined_seq").notNull().default(0),
    lastReadMessageId: text("last_read_message_id"),
  },
  (t) => [
    primaryKey({ columns: [t.conversationId, t.userId] }),
    index("members_user").on(t.userId, t.conversationId),
    // A message's read_count ("members past it") without visiting every member of a big group.
    index("members_read_position").on(t.conversationId, t.lastReadMessageId, t.userId),
  ],
);

/**
 * Earlier memberships of a user in a conversation they left (or were removed from) and
 * later rejoined: a replay also gives them the events of those stints, strictly between
 * the two seqs, as their sockets had them live. Pruned with the events they cover.
 */
export const memberStints = sqliteTable(
  "member_stints",
  {
    conversationId: text("conversation_id").notNull().references(() => conversations.id, { onDelete: "cascade" }),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    joinedSeq: integer("joined_seq").notNull(),
    /** The seq of their `conversation.delete`. */
    leftSeq: integer("left_seq").notNull(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.conversationId, t.joinedSeq] }), index("member_stints_left").on(t.leftSeq)],
);

/**
 * The event log: every persisted event, appended in the transaction of the change it
 * reports. `seq` only grows (AUTOINCREMENT never reuses a pruned number).
 */
export const events = sqliteTable(
  "events",
  {
    seq: integer().primaryKey({ autoIncrement: true }),
    /** `user:<id>` or `conv:<id>`. */
    topic: text().notNull(),
    /**
     * The topic's number in event_topics, by which replay finds a topic's events (migration
     * 0015; an event appended without one gets it from a trigger, 0016). Every active topic
     * appends at its own place in the index; keyed by the topic's text (~48 bytes an entry),
     * those places split and rebalanced a leaf at nearly every commit: 39 of the 115 pages a
     * commit of 100 messages in 10 conversations wrote, against 22 keyed by this number
     * (test/bench/send-writes.ts; issue #17).
     */
    topicId: integer("topic_id"),
    type: text().notNull(),
    /** JSON; "" when the data is in event_payloads (shared by many events). */
    data: text().notNull(),
    payloadId: integer("payload_id"),
    createdAt: integer("created_at").notNull(),
  },
  // No index on created_at: pruning finds its cutoff by binary search over seq.
  (t) => [index("events_topic_id_seq").on(t.topicId, t.seq), index("events_payload_id").on(t.payloadId).where(sql`${t.payloadId} IS NOT NULL`)],
);

/** Every topic that has had an event, numbered once and for good (never deleted, never renumbered). */
export const eventTopics = sqliteTable("event_topics", {
  id: integer().primaryKey(),
  topic: text().notNull().unique(),
});

/**
 * Event data shared by many events of one change (a group's `conversation.create` to each
 * of up to MAX_GROUP_MEMBERS members), stored once instead of once per member.
 */
export const eventPayloads = sqliteTable("event_payloads", {
  id: integer().primaryKey({ autoIncrement: true }),
  data: text().notNull(),
});

/** Small key/value facts about the database itself (e.g. how far the event log was pruned). */
export const meta = sqliteTable("meta", {
  key: text().primaryKey(),
  value: text().notNull(),
});

export type FriendshipRow = typeof friendships.$inferSelect;
export type ConversationRow = typeof conversations.$inferSelect;
export type MemberRow = typeof members.$inferSelect;
export type Role = MemberRow["role"];

export const messages = sqliteTable(
  "messages",
  {
    /** UUIDv7, generated inside the send transaction: id order is send order. */
    id: text().primaryKey(),
    conversationId: text("conversation_id").notNull().references(() => conversations.id, { onDelete: "cascade" }),
    senderId: text("sender_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    messageType: text("message_type", { enum: ["text", "image", "file", "system"] }).notNull(),
    content: text().notNull(),
    clientMsgId: text("client_msg_id"),
    replyToId: text("reply_to_id"),
    createdAt: integer("created_at").notNull(),
    editedAt: integer("edited_at"),
    deletedAt: integer("deleted_at"),
  },
  (t) => [
    // History pages and unread counts: a range of one conversation's ids.
    index("messages_conversation_id").on(t.conversationId, t.id, t.senderId, t.deletedAt),
    // A retried send (same client_msg_id) cannot insert twice, even when two retries race.
    // Partial: messages without a client_msg_id cost this index nothing.
    uniqueIndex("messages_client_msg_id").on(t.conversationId, t.senderId, t.clientMsgId).where(sql`${t.clientMsgId} IS NOT NULL`),
  ],
);

export const reactions = sqliteTable(
  "message_reactions",
  {
    messageId: text("message_id").notNull().references(() => messages.id, { onDelete: "cascade" }),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    emoji: text().notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.messageId, t.userId, t.emoji] })],
);

export type MessageRow = typeof messages.$inferSelect;

/**
 * Uploaded files (PROTOCOL §9). A row is `new` from upload until a message takes it
 * (`attached`, `message_id` set) or, never attached, until the orphan sweep; deleting the
 * message `released` it. An image upload may instead become its uploader's profile picture
 * (`avatar`, held while it is; replaced or removed, `released`). `unheld_at` is when it last
 * stopped being held (upload or release): the sweep removes rows unheld for longer than UPLOAD_ORPHAN_TTL, and the
 * blob once no row names its key (a local key is the content's hash, shared by
 * identical uploads).
 */
export const attachments = sqliteTable(
  "attachments",
  {
    id: text().primaryKey(),
    uploaderId: text("uploader_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    state: text({ enum: ["new", "attached", "released", "avatar"] }).notNull(),
    /** No foreign key: a trigger releases the attachments of a message removed with its conversation. */
    messageId: text("message_id"),
    /** Order among the message's attachments. */
    position: integer().notNull().default(0),
    filename: text().notNull(),
    /** As served: sniffed from the content, never the client's word for anything a browser would run. */
    contentType: text("content_type").notNull(),
    size: integer().notNull(),
    sha256: text().notNull(),
    storageKey: text("storage_key").notNull(),
    thumbnailKey: text("thumbnail_key"),
    width: integer(),
    height: integer(),
    createdAt: integer("created_at").notNull(),
    unheldAt: integer("unheld_at"),
  },
  (t) => [
    index("attachments_message").on(t.messageId, t.position).where(sql`${t.messageId} IS NOT NULL`),
    // Quota: the sum of one uploader's sizes from the index alone.
    index("attachments_uploader").on(t.uploaderId, t.size),
    index("attachments_storage_key").on(t.storageKey),
    index("attachments_unheld").on(t.unheldAt).where(sql`${t.unheldAt} IS NOT NULL`),
  ],
);

export type AttachmentRow = typeof attachments.$inferSelect;

/**
 * The bytes each user's attachments take (the quota: attached, new, or released and not yet
 * swept), kept by triggers on attachments (drizzle/0013): the upload path reads one row,
 * where summing the user's attachments cost time in proportion to their number.
 */
export const attachmentUsage = sqliteTable("attachment_usage", {
  userId: text("user_id").primaryKey().references(() => users.id, { onDelete: "cascade" }),
  bytes: integer().notNull(),
});
