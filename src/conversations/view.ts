/**
 * Builds the `Conversation` objects of PROTOCOL §3.3 for a page of conversation rows,
 * with a fixed number of queries whatever the page size: one for members (with their
 * users), one for last messages, one for unread counts.
 */
import { and, asc, eq, sql } from "drizzle-orm";
import { inJsonArray, prepared } from "../db/prepared";
import type { DB } from "../db/client";
import { conversations, members, users, type ConversationRow, type MemberRow, type UserRow } from "../db/schema";
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

function membersOf(db: Reader, ids: string[]) {
  const rows = prepared(db, "members.ofConversations", (d) =>
    d
      .select({ m: members, u: users })
      .from(members)
      .innerJoin(users, eq(users.id, members.userId))
      .where(inJsonArray(members.conversationId, "ids"))
      .orderBy(asc(members.joinedAt), asc(members.userId))
      .prepare(),
  ).all({ ids: JSON.stringify(ids) });
  const byConv = new Map<string, { m: MemberRow; u: UserRow }[]>();
  for (const r of rows) {
    let list = byConv.get(r.m.conversationId);
    if (!list) byConv.set(r.m.conversationId, (list = []));
    list.push(r);
  }
  return byConv;
}

/**
 * The conversations as `viewerId` sees them. With `viewerId` null: the viewer-neutral form
 * used by `conversation.update` (no unread_count, no read positions).
 */
export function viewConversations(db: Reader, rows: ConversationRow[], viewerId: string | null): Conversation[] {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const memberMap = membersOf(db, ids);
  const last = lastMessagesOf(db, rows);
  const unread = viewerId ? unreadCountsOf(db, ids, viewerId) : null;
  return rows.map((c) => {
    const list = memberMap.get(c.id) ?? [];
    const title = c.type === "group" ? c.title : (list.find((x) => x.u.id !== viewerId)?.u.displayName ?? null);
    const view: Conversation = {
      id: c.id,
      type: c.type,
      title,
      created_by: c.createdBy,
      created_at: iso(c.createdAt),
      updated_at: iso(c.updatedAt),
      last_message_at: isoOrNull(c.lastMessageAt),
      last_message: last.get(c.id) ?? null,
      is_subscribed: true,
      members: list.map(({ m, u }) => {
        const member: Member = { user: toUser(u), role: m.role, joined_at: iso(m.joinedAt) };
        if (viewerId) member.last_read_message_id = m.lastReadMessageId;
        return member;
      }),
    };
    if (unread) view.unread_count = unread.get(c.id) ?? 0;
    return view;
  });
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
