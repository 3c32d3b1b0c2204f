/**
 * Builds `Message` objects (PROTOCOL §3.4) for a set of message rows in three queries:
 * the rows with their senders and read counts, then the reactions of all of them.
 */
import { asc, eq, sql, type SQL } from "drizzle-orm";
import type { DB } from "../db/client";
import { messages, users, type ConversationRow } from "../db/schema";
import type { Tx } from "../events/log";
import { iso, isoOrNull } from "../lib/time";
import { attachmentsOf, type Attachment } from "../files/view";
import { mayHoldFiles } from "../files/service";

type Reader = DB | Tx;

import type { Message, Reaction } from "./model";
export type { Message, Reaction };

/**
 * A message shows at most this many different reactions (more are refused), and each names
 * at most REACTION_USER_IDS of its users (the first to react; `count` is exact), so that a
 * Message, and every frame carrying one, stays the same size however large the group.
 */
export const MAX_REACTION_KINDS = 20;
export const REACTION_USER_IDS = 10;

/** Members other than the sender whose read position is at or past the message. */
// Written out in full: drizzle renders columns inside sql`` unqualified, which would bind to the subquery's table.
const READ_COUNT = `(SELECT count(*) FROM conversation_members rm WHERE rm.conversation_id = "messages"."conversation_id"
  AND rm.user_id != "messages"."sender_id" AND rm.last_read_message_id >= "messages"."id")`;
const readCount = sql<number>`${sql.raw(READ_COUNT)}`.as("read_count");

/** Message rows (with sender and read count) matching `where`, in the given order. */
export function selectMessages(db: Reader, where: SQL | undefined, order: "asc" | "desc" = "asc", limit?: number) {
  const q = db
    .select({ m: messages, username: users.username, displayName: users.displayName, avatar: users.profileImageUrl, readCount })
    .from(messages)
    .innerJoin(users, eq(users.id, messages.senderId))
    .where(where)
    .orderBy(order === "asc" ? asc(messages.id) : sql`${messages.id} DESC`);
  return limit === undefined ? q.all() : q.limit(limit).all();
}

export type MessageSelection = ReturnType<typeof selectMessages>[number];

function reactionsOf(db: Reader, ids: string[]): Map<string, Reaction[]> {
  if (ids.length === 0) return new Map();
  // On bun:sqlite itself, columns aliased to the row's keys: every page of messages (and
  // every new socket's conversation list) reads them, and drizzle maps each row column by column.
  const rows = db.$client
    .query(
      `SELECT message_id AS messageId, user_id AS userId, emoji FROM message_reactions
       WHERE message_id IN (SELECT value FROM json_each(?1)) ORDER BY created_at, rowid`, // in the order users reacted
    )
    .all(JSON.stringify(ids)) as { messageId: string; userId: string; emoji: string }[];
  return groupReactions(rows);
}

/** message id → its reactions, from reaction rows in the order users reacted: exact counts, the first REACTION_USER_IDS users. */
export function groupReactions(rows: { messageId: string; userId: string; emoji: string }[]): Map<string, Reaction[]> {
  const out = new Map<string, Reaction[]>();
  for (const r of rows) {
    let list = out.get(r.messageId);
    if (!list) out.set(r.messageId, (list = []));
    let agg = list.find((a) => a.emoji === r.emoji);
    if (!agg) list.push((agg = { emoji: r.emoji, count: 0, user_ids: [] }));
    if (agg.count++ < REACTION_USER_IDS) agg.user_ids.push(r.userId);
  }
  return out;
}

export function toMessages(db: Reader, rows: MessageSelection[]): Message[] {
  const ids = detailIds(rows);
  return withDetails(rows, reactionsOf(db, ids.live), attachmentsOf(db, ids.withFiles));
}

/** The messages among `rows` that show reactions (live ones), and those that may show files. */
export function detailIds(rows: MessageSelection[]) {
  const live = rows.filter((r) => r.m.deletedAt === null);
  // Text messages, most of any page, skip the attachments query.
  return { live: live.map((r) => r.m.id), withFiles: live.filter((r) => mayHoldFiles(r.m.messageType)).map((r) => r.m.id) };
}

export const withDetails = (rows: MessageSelection[], reacts: Map<string, Reaction[]>, files: Map<string, Attachment[]>): Message[] =>
  rows.map((r) => toMessage(r, reacts.get(r.m.id) ?? [], files.get(r.m.id) ?? []));

/** One message; `reactions` and `attachments` are this message's (ignored for a deleted one). */
export function toMessage({ m, username, displayName, avatar, readCount }: MessageSelection, reactions: Reaction[], attachments: Attachment[] = []): Message {
  return {
    id: m.id,
    conversation_id: m.conversationId,
    sender_id: m.senderId,
    sender_name: displayName,
    sender_avatar: avatar,
    sender_info: { id: m.senderId, username, display_name: displayName, profile_image_url: avatar },
    message_type: m.messageType,
    content: m.deletedAt === null ? m.content : "",
    client_msg_id: m.clientMsgId,
    reply_to_id: m.replyToId,
    created_at: iso(m.createdAt),
    edited_at: isoOrNull(m.editedAt),
    deleted_at: isoOrNull(m.deletedAt),
    reactions: m.deletedAt === null ? reactions : [],
    attachments: m.deletedAt === null ? attachments : [],
    is_read: readCount > 0,
    read_count: readCount,
  };
}

export function messageById(db: Reader, id: string): Message | undefined {
  const rows = selectMessages(db, eq(messages.id, id));
  return rows.length ? toMessages(db, rows)[0] : undefined;
}

/** The last message of each conversation that has one. */
export function lastMessagesOf(db: Reader, convs: ConversationRow[]): Map<string, Message> {
  const ids = convs.map((c) => c.lastMessageId).filter((id): id is string => id !== null);
  const out = new Map<string, Message>();
  if (ids.length === 0) return out;
  // Every new socket's conversation list reads these: straight from bun:sqlite, without
  // drizzle's per-column row mapping (half the cost of a list of 5, measured).
  const lines = db.$client.query(LAST_MESSAGES).values(JSON.stringify(ids)) as MessageLine[];
  for (const m of toMessages(db, lines.map(lineSelection))) out.set(m.conversation_id, m);
  return out;
}

/** selectMessages' columns, in order, for a statement written out in SQL. */
const LAST_MESSAGES = `SELECT messages.id, messages.conversation_id, messages.sender_id, messages.message_type, messages.content,
    messages.client_msg_id, messages.reply_to_id, messages.created_at, messages.edited_at, messages.deleted_at,
    u.username, u.display_name, u.profile_image_url, ${READ_COUNT}
  FROM messages JOIN users u ON u.id = messages.sender_id WHERE messages.id IN (SELECT value FROM json_each(?1))`;
type MessageLine = [
  id: string, conversationId: string, senderId: string, messageType: MessageSelection["m"]["messageType"], content: string,
  clientMsgId: string | null, replyToId: string | null, createdAt: number, editedAt: number | null, deletedAt: number | null,
  username: string, displayName: string, avatar: string | null, readCount: number,
];
const lineSelection = ([id, conversationId, senderId, messageType, content, clientMsgId, replyToId, createdAt, editedAt, deletedAt, username, displayName, avatar, readCount]: MessageLine): MessageSelection => ({
  m: { id, conversationId, senderId, messageType, content, clientMsgId, replyToId, createdAt, editedAt, deletedAt },
  username, displayName, avatar, readCount,
});

/** Messages after a read position (`afterId`; null: none yet), not the viewer's own and not deleted. */
export function unreadCount(db: Reader, conversationId: string, afterId: string | null, viewerId: string): number {
  const [[n]] = db.$client
    .query("SELECT count(*) FROM messages WHERE conversation_id = ?1 AND id > ?2 AND sender_id != ?3 AND deleted_at IS NULL")
    .values(conversationId, afterId ?? "", viewerId) as [[number]];
  return n;
}
