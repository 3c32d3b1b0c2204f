/**
 * Builds the `Conversation` and `Member` objects of PROTOCOL §3.3 and §7.1. Nothing here
 * grows with a group's size: a conversation carries its member count, the viewer's own
 * membership and, when direct, the other member; the members themselves are read a page
 * (or a named few) at a time. A page of conversations costs a fixed number of queries.
 */
import { eq, sql } from "drizzle-orm";
import { prepared, readSnapshot, rowStatement } from "../db/prepared";
import type { DB } from "../db/client";
import { conversations, members, type ConversationRow, type MemberRow, type Role } from "../db/schema";
import type { Tx } from "../events/log";
import { iso, isoOrNull } from "../lib/time";
import { toUser, type User } from "../users/dto";
import { lastMessagesOf, unreadCount, type Message } from "../messages/view";

import type { Conversation, ConversationFields, ConversationUpdate, Member } from "./model";
export type { Conversation, ConversationFields, ConversationUpdate, Member };

type Reader = DB | Tx;

/** A conversation row with the viewer's membership (as the conversation list reads them). */
export type ViewedRow = ConversationRow & Pick<MemberRow, "role" | "lastReadMessageId">;

export const conversationFields = (c: ConversationRow, title = c.title): ConversationFields => ({
  id: c.id,
  type: c.type,
  title,
  created_by: c.createdBy,
  created_at: iso(c.createdAt),
  updated_at: iso(c.updatedAt),
});

/** `conversation.update`'s data: sent to every member alike (members only: is_subscribed). */
export const conversationUpdate = (c: ConversationRow): ConversationUpdate => ({
  ...conversationFields(c),
  last_message_at: isoOrNull(c.lastMessageAt),
  is_subscribed: true,
  member_count: c.memberCount,
});

/** The conversations as the viewer sees them; each row carries the viewer's membership. */
export function viewConversations(db: Reader, rows: ViewedRow[], viewerId: string): Conversation[] {
  if (rows.length === 0) return [];
  const direct = rows.filter((r) => r.type === "direct").map((r) => r.id);
  const view = () => {
    const peers = direct.length ? peersOf(db, direct, viewerId) : new Map<string, User>();
    const last = lastMessagesOf(db, rows);
    return rows.map((c) => toConversation(c, peers.get(c.id) ?? null, last.get(c.id) ?? null, unreadOf(db, c, viewerId)));
  };
  // Three statements or more (the peers, the last messages, a count per conversation that
  // may have unread ones): one read transaction for all of them is cheaper (a list of 5
  // with messages, in-process: 47 → 40 µs) and reads them from one snapshot.
  const hasLast = rows.some((r) => r.lastMessageId !== null);
  const statements = (direct.length ? 1 : 0) + (hasLast ? 1 : 0) + rows.filter(mayHaveUnread).length;
  return statements >= 3 ? readSnapshot(db as DB, view) : view();
}

/**
 * Whether the viewer may have unread messages here, from the row alone. Every message is
 * inserted by a send, which makes it the conversation's last message, and ids grow in send
 * order: with no last message, or a read position at or past it, none is unread. Most
 * conversations of a list are read up: no count is run for them (both stores).
 */
export const mayHaveUnread = (c: ViewedRow) => c.lastMessageId !== null && (c.lastReadMessageId === null || c.lastReadMessageId < c.lastMessageId);

const unreadOf = (db: Reader, c: ViewedRow, viewerId: string) => (mayHaveUnread(c) ? unreadCount(db, c.id, c.lastReadMessageId, viewerId) : 0);

/** One `Conversation` from its row and what was read for it (both stores build it here). */
export function toConversation(c: ViewedRow, peer: User | null, lastMessage: Message | null, unread: number): Conversation {
  return {
    // A direct conversation is titled with the other member's name.
    ...conversationFields(c, c.type === "group" ? c.title : (peer?.display_name ?? null)),
    last_message_at: isoOrNull(c.lastMessageAt),
    last_message: lastMessage,
    unread_count: unread,
    is_subscribed: true,
    member_count: c.memberCount,
    my_role: c.role,
    my_last_read_message_id: c.lastReadMessageId,
    peer,
  };
}

/**
 * One conversation as `viewerId` (a member) sees it, read afresh: a row read earlier in a
 * change may predate its member count.
 */
export function viewConversation(db: Reader, conversationId: string, viewerId: string): Conversation {
  const row = conversationRow(db, conversationId);
  const me = memberRow(db, conversationId, viewerId);
  if (!row || !me) throw new Error(`viewConversation: ${viewerId} is not a member of ${conversationId}`);
  return viewConversations(db, [{ ...row, role: me.role, lastReadMessageId: me.lastReadMessageId }], viewerId)[0]!;
}

/** The member count as it is now (triggers keep it; see the schema). */
export const memberCount = (db: Reader, id: string) => conversationRow(db, id)?.memberCount ?? 0;

const USER_COLUMNS = "u.id, u.username, u.display_name, u.profile_image_url, u.last_active_at, u.created_at";
type UserLine = [string, string, string, string | null, number, number];
const lineUser = ([id, username, displayName, profileImageUrl, lastActiveAt, createdAt]: UserLine): User =>
  toUser({ id, username, displayName, profileImageUrl, lastActiveAt, createdAt });

/** The other member of each direct conversation. */
function peersOf(db: Reader, ids: string[], viewerId: string): Map<string, User> {
  const rows = db.$client
    .query(
      `SELECT m.conversation_id, ${USER_COLUMNS} FROM conversation_members m JOIN users u ON u.id = m.user_id
       WHERE m.conversation_id IN (SELECT value FROM json_each(?1)) AND m.user_id != ?2`,
    )
    .values(JSON.stringify(ids), viewerId) as [string, ...UserLine][];
  return new Map(rows.map(([conversationId, ...user]) => [conversationId, lineUser(user)]));
}

/** Where a member stands in join order: joined_seq breaks ties between joins in the same millisecond. */
export type JoinPosition = [joinedAt: number, joinedSeq: number, userId: string];

type MemberLine = [Role, number, number, string | null, ...UserLine];
const MEMBERS = `SELECT m.role, m.joined_at, m.joined_seq, m.last_read_message_id, ${USER_COLUMNS}
  FROM conversation_members m JOIN users u ON u.id = m.user_id WHERE m.conversation_id = ?1`;
const JOIN_ORDER = "ORDER BY m.joined_at, m.joined_seq, m.user_id";

const toMember = ([role, joinedAt, , lastRead, ...user]: MemberLine): Member => memberOf({ role, joinedAt, lastReadMessageId: lastRead }, lineUser(user));

/** A `Member` from a membership and its user. */
export const memberOf = (m: Pick<MemberRow, "role" | "joinedAt" | "lastReadMessageId">, user: User): Member => ({
  user, role: m.role, joined_at: iso(m.joinedAt), last_read_message_id: m.lastReadMessageId,
});

/** Up to `take` members after `after`, in join order, each with its position. */
export function membersAfter(db: Reader, conversationId: string, after: JoinPosition | undefined, take: number): { member: Member; position: JoinPosition }[] {
  const [at, seq, id] = after ?? [-1, -1, ""];
  const rows = db.$client
    .query(`${MEMBERS} AND (m.joined_at, m.joined_seq, m.user_id) > (?2, ?3, ?4) ${JOIN_ORDER} LIMIT ?5`)
    .values(conversationId, at, seq, id, take) as MemberLine[];
  return rows.map((r) => ({ member: toMember(r), position: [r[1], r[2], r[4]] }));
}

/** The named members (those that are members), in join order. */
export function membersNamed(db: Reader, conversationId: string, userIds: string[]): Member[] {
  const rows = db.$client
    .query(`${MEMBERS} AND m.user_id IN (SELECT value FROM json_each(?2)) ${JOIN_ORDER}`)
    .values(conversationId, JSON.stringify(userIds)) as MemberLine[];
  return rows.map(toMember);
}

export function conversationRow(db: Reader, id: string): ConversationRow | undefined {
  return prepared(db, "conversations.byId", (d) => d.select().from(conversations).where(eq(conversations.id, sql.placeholder("id"))).prepare()).get({ id });
}

/** A membership; every send and frame checks one, so without drizzle's row mapping. */
export function memberRow(db: Reader, conversationId: string, userId: string): MemberRow | undefined {
  return rowStatement<MemberRow>(db, "members.byKey", members, "conversation_id = $c AND user_id = $u").get({ c: conversationId, u: userId }) ?? undefined;
}
