/**
 * Conversations (PROTOCOL §3.3): direct (one per pair) and group, membership and roles.
 * Every change runs in one EventLog.write: rights checked, rows written, events appended.
 */
import type { MembershipView } from "../platform/store";
import { and, asc, eq, inArray, sql } from "drizzle-orm";
import type { AppContext } from "../context";
import type { Config } from "../config";
import { conversations, members, memberStints, users, type ConversationRow, type MemberRow, type Role, type UserRow } from "../db/schema";
import { AppError, forbidden, invalid, notFound } from "../errors";
import { cleanName, sameName } from "../lib/text";
import { convTopic, userTopic, type Tx, type Writer } from "../events/log";
import type { DB } from "../db/client";
import { decodeCursor, pageOf, type Page } from "../http/paging";
import { conversationRow, conversationUpdate, memberRow, membersAfter, membersNamed, viewConversation, viewConversations, type Conversation, type JoinPosition, type Member, type ViewedRow } from "./view";
import { announceAdded, announceRemoved, announceUpdated } from "./deltas";
import { pairKey } from "../friends/service";
import { requireContacts } from "./contact-policy";
import { activityKey } from "../lib/time";

/** The conversation and the caller's membership; 404 for non-members (existence is not leaked). */
/** The caller's membership (prepared lookup), else 404: the conversation is not theirs to see. */
export function requireMembership(db: DB | Tx, conversationId: string, userId: string): MemberRow {
  const me = memberRow(db, conversationId, userId);
  if (!me) throw notFound("conversation");
  return me;
}

/** As requireMembership, with the conversation's row. */
export function requireMember(db: DB | Tx, conversationId: string, userId: string): { conv: ConversationRow; me: MemberRow } {
  const me = requireMembership(db, conversationId, userId);
  const conv = conversationRow(db, conversationId);
  if (!conv) throw notFound("conversation");
  return { conv, me };
}

const isManager = (role: Role) => role === "owner" || role === "admin";

/*
 * The rules below are pure: the SQLite service here and the PostgreSQL store
 * (src/platform/postgres/conversations.ts) read the rows their own way and apply the same
 * checks, in the same order, with the same errors.
 */

/** 422 for a group that would pass MAX_GROUP_MEMBERS. */
export const tooManyMembers = (config: Config, field: string) => invalid(field, `a group has at most ${config.maxGroupMembers} members`);

/** Throws 422 naming the ids among `ids` that are not in `found`. */
export function requireFound(field: string, ids: string[], found: Set<string>) {
  const unknown = ids.filter((id) => !found.has(id));
  if (unknown.length) throw new AppError("validation_failed", `${field}: unknown user ids: ${unknown.join(", ")}`, [{ field, message: "unknown user ids", user_ids: unknown }]);
}

/** A create request, checked before anything is read: the other user, or the group's title and other members. */
export type CreateRequest = { type: "direct"; otherId: string } | { type: "group"; title: string; others: string[] };

export function createRequest(config: Config, me: UserRow, input: CreateConversationInput): CreateRequest {
  if (input.type === "direct") {
    if (input.user_id === undefined) throw invalid("user_id", "required for a direct conversation");
    if (input.user_id === me.id) throw invalid("user_id", "a direct conversation needs another user");
    return { type: "direct", otherId: input.user_id };
  }
  if (input.title === undefined) throw invalid("title", "required for a group");
  const title = cleanTitle(input.title);
  const others = [...new Set(input.member_ids ?? [])].filter((id) => id !== me.id);
  if (others.length + 1 > config.maxGroupMembers) throw tooManyMembers(config, "member_ids");
  return { type: "group", title, others };
}

/** A rename's new title (checked), or undefined when there is none or it is the same. */
export function newTitle(conv: ConversationRow, title: string | undefined): string | undefined {
  // The title it has (a stored one a newer rule refuses too): no change, not an error.
  if (title === undefined || sameName(title, conv.title ?? "")) return undefined;
  return cleanTitle(title);
}

/** The rights to rename a group or manage its members. */
export function checkGroupManager(conv: ConversationRow, me: MemberRow) {
  if (conv.type !== "group") throw forbidden("direct conversations have no title or managed membership");
  if (!isManager(me.role)) throw forbidden("only the group's owner or an admin can do this");
}

/** Who may delete: either side of a direct conversation, a group's owner. */
export function checkDelete(conv: ConversationRow, me: MemberRow) {
  if (conv.type === "group" && me.role !== "owner") throw forbidden("only the group's owner can delete it");
}

/** The rights to remove `target` (undefined: not a member) from the group, or to leave it (`mine` itself). */
export function checkRemoval(conv: ConversationRow, mine: MemberRow, target: MemberRow | undefined): MemberRow {
  if (conv.type !== "group") throw forbidden("leave a direct conversation by deleting it");
  if (!target) throw notFound("member");
  if (target.userId !== mine.userId) {
    if (!isManager(mine.role)) throw forbidden("only the group's owner or an admin can remove members");
    if (target.role === "owner" || (target.role === "admin" && mine.role !== "owner")) throw forbidden("admins can remove members only");
  }
  return target;
}

/**
 * The rights to set `target`'s role, and what changes: nothing, the target's role, or (a
 * hand-over) the old owner's too. The caller (`mine`) must be the group's owner.
 */
export function roleChange(conv: ConversationRow, mine: MemberRow, target: MemberRow | undefined, role: Role): "none" | "target" | "handover" {
  if (conv.type !== "group") throw forbidden("direct conversations have no roles");
  if (mine.role !== "owner") throw forbidden("only the group's owner can change roles");
  if (!target) throw notFound("member");
  if (target.userId === mine.userId) {
    if (role !== "owner") throw invalid("role", "hand ownership to another member first");
    return "none";
  }
  if (role === target.role) return "none";
  return role === "owner" ? "handover" : "target";
}

/**
 * A group's conversation.create views, one per (role, unread count): new members have no
 * read position, so everything not their own and not deleted is unread. `sent` counts the
 * live messages by sender. Members with the same view share one stored payload.
 */
export function groupCreateViews(base: Conversation, joined: Joined[], sent: { id: string; n: number }[]): { view: Conversation; topics: string[] }[] {
  const total = sent.reduce((sum, r) => sum + r.n, 0);
  const own = new Map(sent.map((r) => [r.id, r.n]));
  const views = new Map<string, { view: Conversation; topics: string[] }>();
  for (const { userId, role } of joined) {
    const unread = total - (own.get(userId) ?? 0);
    const key = `${role} ${unread}`;
    let same = views.get(key);
    if (!same) views.set(key, (same = { view: { ...base, unread_count: unread, my_role: role }, topics: [] }));
    same.topics.push(userTopic(userId));
  }
  return [...views.values()];
}

/** A member just inserted. */
export type Joined = Pick<MemberRow, "userId" | "role">;

/**
 * Announces the conversation to each new member, on their own topic, as they see it. The
 * view is built once: only a direct conversation's peer and title, the role and the unread
 * count differ per member, and members with the same view share one stored payload.
 */
function announceCreate(w: Writer, conv: ConversationRow, joined: Joined[]) {
  // Each one's sockets follow the conversation from their conversation.create on; nothing
  // on its topic follows within this change, so the last create's seq marks that point.
  const joinedSeq = emitCreate(w, conv, joined);
  w.tx.$client
    .query("UPDATE conversation_members SET joined_seq = ? WHERE conversation_id = ? AND user_id IN (SELECT value FROM json_each(?))")
    .run(joinedSeq, conv.id, JSON.stringify(joined.map((j) => j.userId)));
}

/** Emits each member's conversation.create; returns the last seq. */
function emitCreate(w: Writer, conv: ConversationRow, joined: Joined[]): number {
  let last = 0;
  if (conv.type === "direct") {
    for (const { userId } of joined) last = w.emit(userTopic(userId), "conversation.create", viewConversation(w.tx, conv.id, userId));
    return last;
  }
  const base = viewConversation(w.tx, conv.id, joined[0]!.userId);
  const sent = w.tx.$client
    .query("SELECT sender_id AS id, count(*) AS n FROM messages WHERE conversation_id = ? AND deleted_at IS NULL GROUP BY sender_id")
    .all(conv.id) as { id: string; n: number }[];
  for (const { view, topics } of groupCreateViews(base, joined, sent)) last = Math.max(last, w.emitMany(topics, "conversation.create", view));
  return last;
}

/** `conversation.update`: the same for every member, nothing that grows with the group. */
function announceUpdate(w: Writer, conv: ConversationRow) {
  w.emit(convTopic(conv.id), "conversation.update", conversationUpdate(conv));
}

/** Checks that every id names a user; 422 naming the unknown ones. */
function requireUsers(w: Writer, field: string, ids: string[]) {
  if (ids.length === 0) return;
  requireFound(field, ids, new Set(w.tx.select({ id: users.id }).from(users).where(inArray(users.id, ids)).all().map((r) => r.id)));
}

function createDirect(ctx: AppContext, me: UserRow, otherId: string): { created: boolean; conversation: Conversation } {
  return ctx.events.write((w) => {
    requireUsers(w, "user_id", [otherId]);
    const key = pairKey(me.id, otherId);
    const existing = w.tx.select().from(conversations).where(eq(conversations.directKey, key)).get();
    if (existing) return { created: false, conversation: viewConversation(w.tx, existing.id, me.id) };
    requireContacts(ctx, w.tx, me.id, [otherId]);
    const conv = insertConversation(w, { type: "direct", title: null, directKey: key, createdBy: me.id });
    const rows = [me.id, otherId].map((userId) => ({ conversationId: conv.id, userId, role: "member" as const, joinedAt: conv.createdAt }));
    insertMembers(w, rows);
    announceCreate(w, conv, rows);
    return { created: true, conversation: viewConversation(w.tx, conv.id, me.id) };
  });
}

/** A group title: trimmed, 1–100 characters (counted as characters, not UTF-16 units). */
const cleanTitle = (raw: string) => cleanName("title", raw, 100);

function createGroup(ctx: AppContext, me: UserRow, name: string, others: string[]): Conversation {
  return ctx.events.write((w) => {
    requireUsers(w, "member_ids", others);
    requireContacts(ctx, w.tx, me.id, others);
    const conv = insertConversation(w, { type: "group", title: name, directKey: null, createdBy: me.id });
    const now = conv.createdAt;
    const rows = [
      { conversationId: conv.id, userId: me.id, role: "owner" as const, joinedAt: now },
      ...others.map((userId) => ({ conversationId: conv.id, userId, role: "member" as const, joinedAt: now })),
    ];
    insertMembers(w, rows);
    announceCreate(w, conv, rows);
    return viewConversation(w.tx, conv.id, me.id);
  });
}

function insertConversation(w: Writer, fields: Pick<ConversationRow, "type" | "title" | "directKey" | "createdBy">): ConversationRow {
  const now = Date.now();
  return w.tx
    .insert(conversations)
    .values({ id: Bun.randomUUIDv7(), ...fields, createdAt: now, updatedAt: now, activityAt: activityKey(now) })
    .returning()
    .get();
}

/** Inserts in chunks: SQLite limits the number of bound parameters per statement. */
function insertMembers(w: Writer, rows: (typeof members.$inferInsert)[]) {
  for (let i = 0; i < rows.length; i += 500) w.tx.insert(members).values(rows.slice(i, i + 500)).run();
}

export interface CreateConversationInput { type: "direct" | "group"; user_id?: string; title?: string; member_ids?: string[] }

/** POST /api/conversations and the `conversation.create` frame. */
export function createConversation(ctx: AppContext, me: UserRow, input: CreateConversationInput): { created: boolean; conversation: Conversation } {
  const req = createRequest(ctx.config, me, input);
  if (req.type === "direct") return createDirect(ctx, me, req.otherId);
  return { created: true, conversation: createGroup(ctx, me, req.title, req.others) };
}

export type ListCursor = [number, string];
export const isListCursor = (v: unknown): v is ListCursor => Array.isArray(v) && v.length === 2 && typeof v[0] === "number" && typeof v[1] === "string";

/**
 * The caller's conversations, most recent activity first: a `Page<Conversation>` already
 * serialised (every new socket gets the first page as its conversation.list). The list
 * query also reads the caller's membership of each (role, read position).
 */
export function listConversationsJson(ctx: AppContext, userId: string, limit: number, cursor?: string): string {
  const after = decodeCursor(cursor, "conversations", isListCursor);
  return pageJson(ctx.db, userId, conversationRows(ctx.db, userId, limit + 1, after), limit);
}

/** A page of the list from its rows, newest first (`limit` + 1 of them, if there are more). */
function pageJson(db: DB, userId: string, rows: ViewedRow[], limit: number): string {
  const page = pageOf("conversations", rows, limit, (r) => r, (r) => [r.activityAt, r.id]);
  return JSON.stringify({ items: viewConversations(db, page.items, userId), next_cursor: page.next_cursor });
}

/**
 * Where a new socket starts (the store's `membership`): the user's conversation ids and the
 * log's last seq; for a user in at most SORT_IN_JS conversations the list's rows are the
 * same read, and its first page is built from them (MembershipView.firstPage).
 */
export function openingView(ctx: AppContext, userId: string): MembershipView {
  const rows = allConversationRows(ctx.db, userId);
  if (rows === null) return { ids: conversationIdsOf(ctx.db, userId), last: ctx.events.lastSeq() };
  return { ids: rows.map((r) => r.id), last: ctx.events.lastSeq(), firstPage: () => pageJson(ctx.db, userId, rows.slice(0, OPENING_PAGE + 1), OPENING_PAGE) };
}

/** The size of the conversation list every new socket gets (PROTOCOL §4). */
export const OPENING_PAGE = 50;

/** Up to this many of a user's conversations are sorted here rather than by SQLite. */
export const SORT_IN_JS = 100;
const ROW = `SELECT c.id, c.type, c.title, c.direct_key AS directKey, c.created_by AS createdBy, c.created_at AS createdAt,
    c.updated_at AS updatedAt, c.last_message_at AS lastMessageAt, c.last_message_id AS lastMessageId, c.activity_at AS activityAt,
    c.member_count AS memberCount, m.role AS role, m.last_read_message_id AS lastReadMessageId
  FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
  WHERE m.user_id = ?1 AND (c.activity_at < ?2 OR (c.activity_at = ?2 AND c.id < ?3))`;
// Activity keys are unique (activityKey); the id only makes the order total, as in SQL.
const newestFirst = (a: ConversationRow, b: ConversationRow) => b.activityAt - a.activityAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

/**
 * Up to `take` of the user's conversations after the cursor, newest activity first (columns
 * aliased straight to the row type). SQLite's sorter costs more than reading a few rows
 * (11 of 20 µs for a user in 5 conversations), so a user in at most SORT_IN_JS of them gets
 * the rows unsorted and sorted here; beyond that SQLite sorts and stops at `take`.
 */
function conversationRows(db: DB, userId: string, take: number, after: ListCursor | undefined): ViewedRow[] {
  const args = [userId, after ? after[0] : Number.MAX_SAFE_INTEGER, after ? after[1] : ""] as const;
  return fewRows(db, args)?.slice(0, take) ?? (db.$client.query(`${ROW} ORDER BY c.activity_at DESC, c.id DESC LIMIT ?4`).all(...args, take) as ViewedRow[]);
}

/** The user's conversations after the cursor (ROW's parameters), newest first; null for more than SORT_IN_JS. */
function fewRows(db: DB, args: readonly [string, number, string]): ViewedRow[] | null {
  const all = db.$client.query(`${ROW} LIMIT ${SORT_IN_JS + 1}`).all(...args) as ViewedRow[];
  return all.length <= SORT_IN_JS ? all.sort(newestFirst) : null;
}

/** Every conversation of the user, newest first; null for a user in more than SORT_IN_JS. */
const allConversationRows = (db: DB, userId: string) => fewRows(db, [userId, Number.MAX_SAFE_INTEGER, ""]);

export function getConversation(ctx: AppContext, userId: string, id: string): Conversation {
  requireMembership(ctx.db, id, userId);
  return viewConversation(ctx.db, id, userId);
}

/** A members-list cursor: the conversation and the last member's join position. */
export type MembersCursor = [string, ...JoinPosition];
export const isMembersCursor = (v: unknown): v is MembersCursor =>
  Array.isArray(v) && v.length === 4 && typeof v[0] === "string" && Number.isSafeInteger(v[1]) && Number.isSafeInteger(v[2]) && typeof v[3] === "string";

/** A members-list cursor of conversation `id` (400 if it is another's). */
export function membersCursor(id: string, cursor: string | undefined): MembersCursor | undefined {
  const after = decodeCursor(cursor, "members", isMembersCursor);
  if (after && after[0] !== id) throw new AppError("bad_request", "cursor: not a cursor of this conversation");
  return after;
}

/** GET /api/conversations/:id/members: a page of members in join order (members only). */
export function listMembers(ctx: AppContext, userId: string, id: string, limit: number, cursor?: string): Page<Member> {
  requireMembership(ctx.db, id, userId);
  const after = membersCursor(id, cursor);
  const rows = membersAfter(ctx.db, id, after && [after[1], after[2], after[3]], limit + 1);
  return pageOf("members", rows, limit, (r) => r.member, (r) => [id, ...r.position]);
}

/** Ids of the conversations a user is a member of (every new socket subscribes to them). */
export function conversationIdsOf(db: DB | Tx, userId: string): string[] {
  return (db.$client.query("SELECT conversation_id FROM conversation_members WHERE user_id = ?").values(userId) as [string][]).map((r) => r[0]);
}

function requireGroupManager(w: Writer, id: string, userId: string) {
  const found = requireMember(w.tx, id, userId);
  checkGroupManager(found.conv, found.me);
  return found;
}

export function renameConversation(ctx: AppContext, me: UserRow, id: string, title: string | undefined): Conversation {
  return ctx.events.write((w) => {
    const { conv } = requireGroupManager(w, id, me.id);
    const name = newTitle(conv, title);
    if (name === undefined) return viewConversation(w.tx, conv.id, me.id);
    const updated = w.tx.update(conversations).set({ title: name, updatedAt: Date.now() }).where(eq(conversations.id, id)).returning().get()!;
    announceUpdate(w, updated);
    return viewConversation(w.tx, id, me.id);
  });
}

/** Deletes the conversation: `conversation.delete` to every member's own topic first. */
function destroy(w: Writer, conv: ConversationRow) {
  const ids = w.tx.select({ id: members.userId }).from(members).where(eq(members.conversationId, conv.id)).all();
  w.emitMany(ids.map((r) => userTopic(r.id)), "conversation.delete", { conversation_id: conv.id });
  w.tx.delete(conversations).where(eq(conversations.id, conv.id)).run();
}

export function deleteConversation(ctx: AppContext, me: UserRow, id: string): void {
  ctx.events.write((w) => {
    const { conv, me: membership } = requireMember(w.tx, id, me.id);
    checkDelete(conv, membership);
    destroy(w, conv);
  });
}

export function addMembers(ctx: AppContext, me: UserRow, id: string, userIds: string[]): Conversation {
  return ctx.events.write((w) => {
    const { conv } = requireGroupManager(w, id, me.id);
    const wanted = [...new Set(userIds)];
    requireUsers(w, "user_ids", wanted);
    const existing = new Set(
      w.tx.select({ id: members.userId }).from(members).where(and(eq(members.conversationId, id), inArray(members.userId, wanted))).all().map((r) => r.id),
    );
    const added = wanted.filter((u) => !existing.has(u));
    requireContacts(ctx, w.tx, me.id, added);
    if (added.length === 0) return viewConversation(w.tx, conv.id, me.id);
    if (conv.memberCount + added.length > ctx.config.maxGroupMembers) throw tooManyMembers(ctx.config, "user_ids");
    const now = Date.now();
    const rows = added.map((userId) => ({ conversationId: id, userId, role: "member" as const, joinedAt: now }));
    insertMembers(w, rows);
    // The deltas first, while only the existing members' sockets follow the conversation;
    // the added members learn of it through their conversation.create.
    announceAdded(w, id, added);
    announceCreate(w, conv, rows);
    return viewConversation(w.tx, conv.id, me.id);
  });
}

/** The member who inherits ownership: the longest-standing admin, else member. */
function successor(w: Writer, conversationId: string): MemberRow | undefined {
  return w.tx
    .select()
    .from(members)
    .where(and(eq(members.conversationId, conversationId), sql`${members.role} != 'owner'`))
    // Join order: joined_seq breaks ties between joins in the same millisecond.
    .orderBy(sql`${members.role} = 'admin' DESC`, asc(members.joinedAt), asc(members.joinedSeq), asc(members.userId))
    .get();
}

/** Removes `userId` (an owner/admin removing someone) or leaves (the user themself). */
export function removeMember(ctx: AppContext, me: UserRow, id: string, userId: string): void {
  ctx.events.write((w) => {
    const { conv, me: mine } = requireMember(w.tx, id, me.id);
    const target = checkRemoval(conv, mine, userId === me.id ? mine : memberRow(w.tx, id, userId));
    const heir = target.role === "owner" ? successor(w, id) : undefined;
    if (target.role === "owner") {
      if (!heir) return destroy(w, conv); // the last member left
      w.tx.update(members).set({ role: "owner" }).where(and(eq(members.conversationId, id), eq(members.userId, heir.userId))).run();
    }
    // The removed user hears first, on their own topic, so their sockets leave the
    // conversation's topic before the deltas the remaining members get.
    w.tx.delete(members).where(and(eq(members.conversationId, id), eq(members.userId, userId))).run();
    const left = w.emit(userTopic(userId), "conversation.delete", { conversation_id: id });
    // Should they rejoin, a replay still owes them what this stint gave them live.
    w.tx.insert(memberStints).values({ conversationId: id, userId, joinedSeq: target.joinedSeq, leftSeq: left }).run();
    announceRemoved(w, id, [userId]);
    if (heir) announceUpdated(w, id, [heir.userId]);
  });
}

/** The owner sets a member's role; `owner` hands ownership over (the old owner becomes admin). */
export function setRole(ctx: AppContext, me: UserRow, id: string, userId: string, role: Role): Member {
  return ctx.events.write((w) => {
    const { conv, me: mine } = requireMember(w.tx, id, me.id);
    const change = roleChange(conv, mine, memberRow(w.tx, id, userId), role);
    if (change !== "none") {
      if (change === "handover") w.tx.update(members).set({ role: "admin" }).where(and(eq(members.conversationId, id), eq(members.userId, me.id))).run();
      w.tx.update(members).set({ role }).where(and(eq(members.conversationId, id), eq(members.userId, userId))).run();
      // A hand-over demotes the old owner first: a client never sees two owners.
      announceUpdated(w, id, role === "owner" ? [me.id, userId] : [userId]);
    }
    return membersNamed(w.tx, id, [userId])[0]!;
  });
}
