/**
 * The PostgreSQL tables of cluster mode: the same tables, columns and row types as the
 * SQLite schema (src/db/schema.ts), in pg-core. Times are bigint milliseconds read as JS
 * numbers, ids UUIDv7 text, as on SQLite, so views and events are built from rows alike.
 * Triggers (member counts, releasing a removed message's files) are in the custom
 * migrations of drizzle/pg.
 */
import { sql } from "drizzle-orm";
import { pgTable, text, bigint, bigserial, integer, boolean, doublePrecision, index, uniqueIndex, primaryKey, customType } from "drizzle-orm/pg-core";

const millis = (name: string) => bigint(name, { mode: "number" });

/** A full transaction id (pg_current_xact_id()), read as its decimal text. */
const xid8 = customType<{ data: string; driverData: string }>({ dataType: () => "xid8" });

export const users = pgTable(
  "users",
  {
    id: text().primaryKey(),
    username: text().notNull().unique(),
    displayName: text("display_name").notNull(),
    nameKey: text("name_key"),
    profileImageUrl: text("profile_image_url"),
    passwordHash: text("password_hash").notNull(),
    lastActiveAt: millis("last_active_at").notNull(),
    createdAt: millis("created_at").notNull(),
    updatedAt: millis("updated_at").notNull(),
  },
  // User search pages by username in byte order, as SQLite does (COLLATE "C" whatever the
  // database's collation): this index walks that order and stops at a full page.
  (t) => [index("users_username_bytes").on(sql`${t.username} COLLATE "C"`)],
);

export const friendships = pgTable(
  "friendships",
  {
    id: text().primaryKey(),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    friendId: text("friend_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    pairKey: text("pair_key").notNull(),
    status: text({ enum: ["pending", "accepted", "rejected"] }).notNull(),
    requestedAt: millis("requested_at").notNull(),
    acceptedAt: millis("accepted_at"),
  },
  (t) => [
    uniqueIndex("friendships_pair_key").on(t.pairKey),
    index("friendships_user").on(t.userId, t.status),
    index("friendships_friend").on(t.friendId, t.status),
  ],
);

export const conversations = pgTable("conversations", {
  id: text().primaryKey(),
  type: text({ enum: ["direct", "group"] }).notNull(),
  title: text(),
  directKey: text("direct_key").unique(),
  createdBy: text("created_by").notNull(),
  createdAt: millis("created_at").notNull(),
  updatedAt: millis("updated_at").notNull(),
  lastMessageAt: millis("last_message_at"),
  lastMessageId: text("last_message_id"),
  activityAt: millis("activity_at").notNull(),
  memberCount: integer("member_count").notNull().default(0),
});

export const members = pgTable(
  "conversation_members",
  {
    conversationId: text("conversation_id").notNull().references(() => conversations.id, { onDelete: "cascade" }),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    role: text({ enum: ["owner", "admin", "member"] }).notNull(),
    joinedAt: millis("joined_at").notNull(),
    joinedSeq: millis("joined_seq").notNull().default(0),
    lastReadMessageId: text("last_read_message_id"),
  },
  (t) => [
    primaryKey({ columns: [t.conversationId, t.userId] }),
    index("members_user").on(t.userId, t.conversationId),
    index("members_read_position").on(t.conversationId, t.lastReadMessageId, t.userId),
  ],
);

export const memberStints = pgTable(
  "member_stints",
  {
    conversationId: text("conversation_id").notNull().references(() => conversations.id, { onDelete: "cascade" }),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    joinedSeq: millis("joined_seq").notNull(),
    leftSeq: millis("left_seq").notNull(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.conversationId, t.joinedSeq] }), index("member_stints_left").on(t.leftSeq)],
);

/**
 * The event log. How `seq` is made to follow commit order (the hazard of a plain
 * sequence: a transaction that took seq 1 may commit after one that took 2) is the event
 * log's business (src/platform/postgres/event-log.ts); `xid` serves it.
 */
export const events = pgTable(
  "events",
  {
    seq: bigserial({ mode: "number" }).primaryKey(),
    topic: text().notNull(),
    type: text().notNull(),
    data: text().notNull(),
    payloadId: bigint("payload_id", { mode: "number" }),
    createdAt: millis("created_at").notNull(),
    /** The appending transaction (ordering "horizon"; NULL under "lock"). */
    xid: xid8(),
  },
  (t) => [index("events_topic_seq").on(t.topic, t.seq), index("events_payload_id").on(t.payloadId).where(sql`${t.payloadId} IS NOT NULL`)],
);

export const eventPayloads = pgTable("event_payloads", {
  id: bigserial({ mode: "number" }).primaryKey(),
  data: text().notNull(),
});

export const meta = pgTable("meta", {
  key: text().primaryKey(),
  value: text().notNull(),
});

export const messages = pgTable(
  "messages",
  {
    id: text().primaryKey(),
    conversationId: text("conversation_id").notNull().references(() => conversations.id, { onDelete: "cascade" }),
    senderId: text("sender_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    messageType: text("message_type", { enum: ["text", "image", "file", "system"] }).notNull(),
    content: text().notNull(),
    clientMsgId: text("client_msg_id"),
    replyToId: text("reply_to_id"),
    createdAt: millis("created_at").notNull(),
    editedAt: millis("edited_at"),
    deletedAt: millis("deleted_at"),
    /**
     * fold(content) (src/search/text.ts), written by the app with every insert and edit,
     * NULL once deleted: PostgreSQL cannot fold text exactly as search does (JS lower-casing,
     * only Latin letters' accents removed), so search matches this column.
     */
    searchText: text("search_text"),
  },
  (t) => [
    index("messages_conversation_id").on(t.conversationId, t.id, t.senderId, t.deletedAt),
    uniqueIndex("messages_client_msg_id").on(t.conversationId, t.senderId, t.clientMsgId).where(sql`${t.clientMsgId} IS NOT NULL`),
    // pg_trgm: LIKE '%term%' for terms of 3 or more characters (migration search_trgm).
    index("messages_search_text").using("gin", t.searchText.op("gin_trgm_ops")),
  ],
);

export const reactions = pgTable(
  "message_reactions",
  {
    messageId: text("message_id").notNull().references(() => messages.id, { onDelete: "cascade" }),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    emoji: text().notNull(),
    createdAt: millis("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.messageId, t.userId, t.emoji] })],
);

export const attachments = pgTable(
  "attachments",
  {
    id: text().primaryKey(),
    uploaderId: text("uploader_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    state: text({ enum: ["new", "attached", "released", "avatar"] }).notNull(),
    messageId: text("message_id"),
    position: integer().notNull().default(0),
    filename: text().notNull(),
    contentType: text("content_type").notNull(),
    size: bigint({ mode: "number" }).notNull(),
    sha256: text().notNull(),
    storageKey: text("storage_key").notNull(),
    thumbnailKey: text("thumbnail_key"),
    width: integer(),
    height: integer(),
    createdAt: millis("created_at").notNull(),
    unheldAt: millis("unheld_at"),
  },
  (t) => [
    index("attachments_message").on(t.messageId, t.position).where(sql`${t.messageId} IS NOT NULL`),
    index("attachments_uploader").on(t.uploaderId, t.size),
    index("attachments_storage_key").on(t.storageKey),
    index("attachments_unheld").on(t.unheldAt).where(sql`${t.unheldAt} IS NOT NULL`),
  ],
);

/** Bytes per uploader, kept by triggers on attachments (drizzle/pg/0005), as on SQLite. */
export const attachmentUsage = pgTable("attachment_usage", {
  userId: text("user_id").primaryKey().references(() => users.id, { onDelete: "cascade" }),
  bytes: bigint({ mode: "number" }).notNull(),
});

/*
 * Presence and limits of cluster mode without Redis (src/platform/postgres/presence.ts,
 * limits.ts). UNLOGGED in the migration (drizzle-kit cannot say it): soft state that the
 * nodes rebuild, so it skips the WAL (a connect or a send waits for no disk flush, and
 * nothing is copied to replicas) and PostgreSQL empties it after a crash, which the nodes
 * treat as a Redis restart (each node's next heartbeat writes its users back; budgets
 * start full).
 * Times are milliseconds by PostgreSQL's clock, so the nodes' clocks may differ. The
 * decisions are functions of the migration (presence) or single statements (limits).
 */

/** A node's heartbeat: past its deadline it is dead, and the first beat of another takes it away. */
export const presenceNodes = pgTable("presence_nodes", {
  nodeId: text("node_id").primaryKey(),
  deadline: millis("deadline").notNull(),
});

/**
 * A user online somewhere, or within a grace period. `total`: their sockets on every node
 * (the sum of presence_sockets, kept with it under this row's lock, so the cap is one
 * conditional update); `gen` bumped by every connect and every last disconnect (a grace
 * timer settles only the generation it started with); `settler`: the node whose grace
 * timer runs (it died: the user goes offline with it).
 */
export const presenceUsers = pgTable("presence_users", {
  userId: text("user_id").primaryKey(),
  total: integer().notNull().default(0),
  announced: boolean().notNull().default(false),
  gen: bigint({ mode: "number" }).notNull().default(0),
  settler: text(),
});

/** A user's socket count on one node. */
export const presenceSockets = pgTable(
  "presence_sockets",
  {
    userId: text("user_id").notNull(),
    nodeId: text("node_id").notNull(),
    n: integer().notNull(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.nodeId] })],
);

/**
 * A token bucket (`kind`: sends, writes, …): `tokens` at `at`; `granted`, the outcome of the
 * last take (its statement's RETURNING cannot see the row before it); swept once `full_at`
 * (full again, indistinguishable from no row) has passed.
 */
export const limitBuckets = pgTable(
  "limit_buckets",
  {
    kind: text().notNull(),
    key: text().notNull(),
    tokens: doublePrecision().notNull(),
    at: doublePrecision().notNull(),
    granted: boolean().notNull(),
    fullAt: doublePrecision("full_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.kind, t.key] })],
);

/** Failures in a fixed window that ends at `reset_at`; `refused`, the outcome of the last attempt. */
export const limitFailures = pgTable(
  "limit_failures",
  {
    kind: text().notNull(),
    key: text().notNull(),
    count: integer().notNull(),
    resetAt: millis("reset_at").notNull(),
    refused: boolean().notNull(),
  },
  (t) => [primaryKey({ columns: [t.kind, t.key] })],
);

/**
 * WebSocket tickets waiting to be redeemed, on any node (src/platform/postgres/tickets.ts;
 * one node keeps them in memory). Keyed by the ticket's SHA-256, never the ticket: reading
 * the table yields no usable ticket. UNLOGGED (migration ws_tickets): a ticket lives 30 s,
 * and a crash that empties the table costs each client one more ticket request.
 */
export const wsTickets = pgTable("ws_tickets", {
  ticketHash: text("ticket_hash").primaryKey(),
  userId: text("user_id").notNull(),
  expiresAt: millis("expires_at").notNull(),
  tokenExpiresAt: millis("token_expires_at").notNull(),
});
