/**
 * Builds the `Conversation` objects of PROTOCOL §3.3 for a page of conversation rows,
 * with a fixed number of queries whatever the page size: one for members (with their
 * users), one for last messages, one for unread counts.
 */
import { and, eq, sql } from "drizzle-orm";
import { prepared } from "../db/prepared";
import type { DB } from "../db/client";
import { conversations, members, type ConversationRow, type MemberRow, type UserRow } from "../db/schema";
import type { Tx } from "../events/log";
import { iso, isoOrNull } from "../lib/time";
import { toUser, type User } from "../users/dto";
import { lastMessagesOf, unreadCountsOf, type Message } from "../messages/view";

export interface Member { user: User; role: MemberRow["role"]; joined_at: string; last_read_message_id?: string | null }

export interface Conversation {
  id: string;
  type: ConversationRow["type"];
  title: string | null;
  created_by: string;
  created_at: string;
  updated_at: string;
  last_message_at: string | null;
  last_message: Message | null;
  unread_count?: number;
  is_subscribed: boolean;
  members: Member[];
}

type Reader = DB | Tx;

interface MemberLine {
  conversationId: string;
  role: MemberRow["role"];
  joinedAt: number;
  lastReadMessageId: string | null;
  user: Pick<UserRow, "id" | "username" | "displayName" | "profileImageUrl" | "lastActiveAt" | "createdAt">;
}

/**
 * Member lists recently rendered for conversation lists, by conversation id. Every new socket
 * gets its user's conversation list, and a reconnect storm asks for the same lists
 * thousands of times. Changes to members, roles, read positions and profiles drop the
 * entry at once (`forgetMembers`); a member's last_active_at may lag by up to
 * MEMBER_CACHE_MS (plus the second it takes to be written). Per database (tests run several).
 * Only filled outside write transactions, so it never holds uncommitted rows.
 */
interface MemberEntry {
  at: number;
  members: Member[];
  /** The list serialised, made on first use: most of a conversation.list frame's bytes. */
  json: string | null;
}
interface MemberCache { lists: Map<string, MemberEntry>; size: number }
const memberCaches = new WeakMap<DB, MemberCache>();
const MEMBER_CACHE_MS = 1000;
/** Members held at most, over all cached lists of one database. */
const MEMBER_CACHE_LIMIT = 200_000;

function memberCache(db: Reader): MemberCache {
  let cache = memberCaches.get(db);
  if (!cache) memberCaches.set(db, (cache = { lists: new Map(), size: 0 }));
  return cache;
}

/** Drops cached member lists (call on any change to a conversation's members, their roles, read positions or profiles). */
export function forgetMembers(db: Reader, conversationIds: Iterable<string>) {
  const cache = memberCache(db);
  for (const id of conversationIds) {
    cache.size -= cache.lists.get(id)?.members.length ?? 0;
    cache.lists.delete(id);
  }
}

/** Rendered member lists; with `withReads`, each member carries its read position. */
function membersOf(db: Reader, ids: string[], withReads: boolean, useCache: boolean): Map<string, MemberEntry> {
  const cached = useCache && withReads;
  const cache = memberCache(db);
  const byConv = new Map<string, MemberEntry>();
  const now = performance.now();
  const missing: string[] = [];
  for (const id of ids) {
    const hit = cached ? cache.lists.get(id) : undefined;
    if (hit && now - hit.at < MEMBER_CACHE_MS) byConv.set(id, hit);
    else missing.push(id);
  }
  if (missing.length === 0) return byConv;
  const fresh = readMembers(db, missing);
  for (const id of missing) {
    const rendered = (fresh.get(id) ?? []).map((m) => {
      const member: Member = { user: toUser(m.user), role: m.role, joined_at: iso(m.joinedAt) };
      if (withReads) member.last_read_message_id = m.lastReadMessageId;
      return member;
    });
    const entry: MemberEntry = { at: now, members: rendered, json: null };
    byConv.set(id, entry);
    if (cached) {
      forgetMembers(db, [id]);
      if (cache.size + rendered.length > MEMBER_CACHE_LIMIT) {
        cache.lists.clear();
        cache.size = 0;
      }
      cache.lists.set(id, entry);
      cache.size += rendered.length;
    }
  }
  return byConv;
}

/**
 * Members (with the public fields of their users) of many conversations in one query.
 * Hand-written and mapped by hand: drizzle's row mapping of a two-table select was most of
 * its cost.
 */
function readMembers(db: Reader, ids: string[]): Map<string, MemberLine[]> {
  type Line = [string, MemberRow["role"], number, string | null, string, string, string, string | null, number, number];
  const rows = db.$client
    .query(
      `SELECT m.conversation_id, m.role, m.joined_at, m.last_read_message_id,
              u.id, u.username, u.display_name, u.profile_image_url, u.last_active_at, u.created_at
       FROM conversation_members m JOIN users u ON u.id = m.user_id
       WHERE m.conversation_id IN (SELECT value FROM json_each(?))
       ORDER BY m.joined_at, m.user_id`,
    )
    .values(JSON.stringify(ids)) as unknown as Line[];
  const byConv = new Map<string, MemberLine[]>();
  for (const [conversationId, role, joinedAt, lastReadMessageId, id, username, displayName, profileImageUrl, lastActiveAt, createdAt] of rows) {
    let list = byConv.get(conversationId);
    if (!list) byConv.set(conversationId, (list = []));
    list.push({ conversationId, role, joinedAt, lastReadMessageId, user: { id, username, displayName, profileImageUrl, lastActiveAt, createdAt } });
  }
  return byConv;
}

/**
 * The conversations as `viewerId` sees them. With `viewerId` null: the viewer-neutral form
 * used by `conversation.update` (no unread_count, no read positions).
 */
function viewConversations(db: Reader, rows: ConversationRow[], viewerId: string | null): Conversation[] {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  // Also used inside write transactions: never through the cache (it must not hold uncommitted rows).
  const memberMap = membersOf(db, ids, viewerId !== null, false);
  const last = lastMessagesOf(db, rows);
  const unread = viewerId ? unreadCountsOf(db, ids, viewerId) : null;
  return rows.map((c) => {
    const list = memberMap.get(c.id)?.members ?? [];
    const view: Conversation = { ...head(c, list, viewerId, last.get(c.id) ?? null), members: list };
    if (unread) view.unread_count = unread.get(c.id) ?? 0;
    return view;
  });
}

/** A conversation's fields up to `members`, in the order of the `Conversation` object. */
function head(c: ConversationRow, list: Member[], viewerId: string | null, lastMessage: Message | null): Omit<Conversation, "members"> {
  return {
    id: c.id,
    type: c.type,
    // A direct conversation is titled with the other member's name.
    title: c.type === "group" ? c.title : (list.find((m) => m.user.id !== viewerId)?.user.display_name ?? null),
    created_by: c.createdBy,
    created_at: iso(c.createdAt),
    updated_at: iso(c.updatedAt),
    last_message_at: isoOrNull(c.lastMessageAt),
    last_message: lastMessage,
    is_subscribed: true,
  };
}

/**
 * Exactly `JSON.stringify(viewConversations(db, rows, viewerId))` with the given unread
 * counts, but each member list (most of the bytes) is serialised once per cache entry rather
 * than once per socket: the conversation list sent to every new socket.
 */
export function conversationsJson(db: DB, rows: ConversationRow[], viewerId: string, unreadOf: (row: ConversationRow) => number): string {
  if (rows.length === 0) return "[]";
  // The cache must never hold uncommitted rows: inside a transaction it is bypassed.
  const entries = membersOf(db, rows.map((r) => r.id), true, !db.$client.inTransaction);
  const last = lastMessagesOf(db, rows);
  const parts = rows.map((c) => {
    const entry = entries.get(c.id);
    const fields = JSON.stringify(head(c, entry?.members ?? [], viewerId, last.get(c.id) ?? null));
    const members = entry ? (entry.json ??= JSON.stringify(entry.members)) : "[]";
    return `${fields.slice(0, -1)},"members":${members},"unread_count":${unreadOf(c)}}`;
  });
  return `[${parts.join(",")}]`;
}

export function viewConversation(db: Reader, row: ConversationRow, viewerId: string | null): Conversation {
  return viewConversations(db, [row], viewerId)[0]!;
}

export function conversationRow(db: Reader, id: string): ConversationRow | undefined {
  return prepared(db, "conversations.byId", (d) => d.select().from(conversations).where(eq(conversations.id, sql.placeholder("id"))).prepare()).get({ id });
}

export function memberRow(db: Reader, conversationId: string, userId: string): MemberRow | undefined {
  return prepared(db, "members.byKey", (d) =>
    d.select().from(members).where(and(eq(members.conversationId, sql.placeholder("c")), eq(members.userId, sql.placeholder("u")))).prepare(),
  ).get({ c: conversationId, u: userId });
}
