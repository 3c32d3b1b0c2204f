/**
 * Conversations on PostgreSQL (cluster mode): the twin of src/conversations/service.ts.
 * The rules (validation, rights, errors, the events' data) are that module's pure
 * functions; only the reads and writes are PostgreSQL's. Each change is one
 * `events.write` transaction with its events, in the SQLite service's order.
 *
 * Locks where SQLite relied on its single writer: every change to a conversation (rename,
 * delete, add, remove, role) first locks the conversation row, then reads the caller's
 * membership. Changes to one conversation thus take turns, each seeing the last one's
 * members and count: two adds cannot both pass MAX_GROUP_MEMBERS, an owner leaving and
 * their heir leaving cannot leave a group without owner. Sends lock the same row first
 * (src/platform/postgres/messages.ts), so a member removed meanwhile cannot send after the
 * removal. The lock order is the conversation row, then member rows: a change that held a
 * member row and then waited for the conversation row could deadlock with a removal. FOR
 * NO KEY UPDATE, not FOR UPDATE: it excludes the other changes and sends all the same,
 * without blocking the foreign-key checks of rows that only reference the conversation.
 * Rows are changed before the first event is appended (the log may lock appends; see
 * destroy).
 */
import { inOrder } from "../../lib/in-order";
import { and, asc, desc, eq, getTableColumns, lt, ne, or, sql, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import type { ConversationRow, MemberRow, Role, UserRow } from "../../db/schema";
import type { ConversationStore } from "../store";
import { convTopic, userTopic } from "../../events/log";
import { notFound } from "../../errors";
import { activityKey } from "../../lib/time";
import { decodeCursor, pageOf } from "../../http/paging";
import { pairKey } from "../../friends/service";
import { toUser, type User } from "../../users/dto";
import {
  checkDelete, checkGroupManager, checkRemoval, createRequest, groupCreateViews, isListCursor, membersCursor, newTitle, requireFound, roleChange,
  tooManyMembers, type CreateConversationInput, type Joined, type ListCursor,
} from "../../conversations/service";
import { conversationUpdate, mayHaveUnread, memberOf, toConversation, type Conversation, type JoinPosition, type Member, type ViewedRow } from "../../conversations/view";
import { memberAdds, memberUpdates } from "../../conversations/deltas";
import { detailIds, groupReactions, withDetails, type Message } from "../../messages/view";
import { groupAttachments } from "../../files/view";
import { attachments, conversations, memberStints, members, messages, reactions, users } from "./schema";
import { requireContactsPg } from "./friends";
import type { PgRunner, PgWriter } from "./writer";
import type { PgDeps } from "./store";

/** `column = ANY(ids)`: one parameter however many ids (PostgreSQL binds at most 65,535). */
const anyOf = (column: PgColumn, ids: readonly string[]) => sql`${column} = ANY(${sql.param(ids)}::text[])`;

// ---- Reads: the PostgreSQL twins of the queries of src/conversations/view.ts --------------

async function conversationRow(r: PgRunner, id: string): Promise<ConversationRow | undefined> {
  const [row] = await r.select().from(conversations).where(eq(conversations.id, id));
  return row;
}

async function memberRow(r: PgRunner, conversationId: string, userId: string): Promise<MemberRow | undefined> {
  const [row] = await r.select().from(members).where(and(eq(members.conversationId, conversationId), eq(members.userId, userId)));
  return row;
}

/** The caller's membership, else 404: the conversation is not theirs to see. */
async function requireMembership(r: PgRunner, conversationId: string, userId: string): Promise<MemberRow> {
  const me = await memberRow(r, conversationId, userId);
  if (!me) throw notFound("conversation");
  return me;
}

/** In a change: the conversation row, locked (see the top), then the caller's membership; 404 for non-members. */
async function lockMember(w: PgWriter, conversationId: string, userId: string): Promise<{ conv: ConversationRow; me: MemberRow }> {
  const [conv] = await w.tx.select().from(conversations).where(eq(conversations.id, conversationId)).for("no key update");
  const me = conv && (await memberRow(w.tx, conversationId, userId));
  if (!conv || !me) throw notFound("conversation");
  return { conv, me };
}

const userColumns = {
  id: users.id, username: users.username, displayName: users.displayName, profileImageUrl: users.profileImageUrl, lastActiveAt: users.lastActiveAt, createdAt: users.createdAt,
};

/** The other member of each direct conversation. */
async function peersOf(r: PgRunner, ids: string[], viewerId: string): Promise<Map<string, User>> {
  if (ids.length === 0) return new Map();
  const rows = await r
    .select({ conversationId: members.conversationId, user: userColumns })
    .from(members)
    .innerJoin(users, eq(users.id, members.userId))
    .where(and(anyOf(members.conversationId, ids), ne(members.userId, viewerId)));
  return new Map(rows.map((row) => [row.conversationId, toUser(row.user)]));
}

/** Unread counts (messages after the read position, not the viewer's own, not deleted), one query for all the rows that may have any. */
async function unreadCounts(r: PgRunner, all: ViewedRow[], viewerId: string): Promise<Map<string, number>> {
  const rows = all.filter(mayHaveUnread); // the others have none
  if (rows.length === 0) return new Map();
  const counted = (await r.execute(sql`SELECT v.id, (SELECT count(*)::int FROM messages m WHERE m.conversation_id = v.id AND m.id > v.after
      AND m.sender_id <> ${viewerId} AND m.deleted_at IS NULL) AS n
    FROM unnest(${sql.param(rows.map((c) => c.id))}::text[], ${sql.param(rows.map((c) => c.lastReadMessageId ?? ""))}::text[]) AS v(id, after)`)) as unknown as { id: string; n: number }[];
  return new Map(counted.map((c) => [c.id, c.n]));
}

/**
 * The conversations as the viewer sees them (each row carries the viewer's membership): a
 * fixed number of queries for a page, as on SQLite. Exported for search's conversation hits.
 */
export async function viewConversations(r: PgRunner, rows: ViewedRow[], viewerId: string): Promise<Conversation[]> {
  if (rows.length === 0) return [];
  const direct = rows.filter((c) => c.type === "direct").map((c) => c.id);
  const [peers, last, unread] = await Promise.all([peersOf(r, direct, viewerId), lastMessagesOf(r, rows), unreadCounts(r, rows, viewerId)]);
  return rows.map((c) => toConversation(c, peers.get(c.id) ?? null, last.get(c.id) ?? null, unread.get(c.id) ?? 0));
}

/** One conversation as `viewerId` (a member) sees it, read afresh. */
async function viewConversation(r: PgRunner, conversationId: string, viewerId: string): Promise<Conversation> {
  const [row, me] = await Promise.all([conversationRow(r, conversationId), memberRow(r, conversationId, viewerId)]);
  if (!row || !me) throw new Error(`viewConversation: ${viewerId} is not a member of ${conversationId}`);
  return (await viewConversations(r, [{ ...row, role: me.role, lastReadMessageId: me.lastReadMessageId }], viewerId))[0]!;
}

const memberColumns = { role: members.role, joinedAt: members.joinedAt, joinedSeq: members.joinedSeq, lastReadMessageId: members.lastReadMessageId, user: userColumns };
const JOIN_ORDER = [asc(members.joinedAt), asc(members.joinedSeq), asc(members.userId)];

/** Members of a conversation matching `where`, in join order (joined_seq breaks ties within a millisecond). */
function selectMembers(r: PgRunner, conversationId: string, where: SQL) {
  return r
    .select(memberColumns)
    .from(members)
    .innerJoin(users, eq(users.id, members.userId))
    .where(and(eq(members.conversationId, conversationId), where))
    .orderBy(...JOIN_ORDER);
}

/** Up to `take` members after `after`, in join order, each with its position. */
async function membersAfter(r: PgRunner, conversationId: string, after: JoinPosition | undefined, take: number): Promise<{ member: Member; position: JoinPosition }[]> {
  const [at, seq, id] = after ?? [-1, -1, ""];
  const rows = await selectMembers(r, conversationId, sql`(${members.joinedAt}, ${members.joinedSeq}, ${members.userId}) > (${at}::bigint, ${seq}::bigint, ${id}::text)`).limit(take);
  return rows.map((m) => ({ member: memberOf(m, toUser(m.user)), position: [m.joinedAt, m.joinedSeq, m.user.id] }));
}

/** The named members (those that are members), in join order. */
async function membersNamed(r: PgRunner, conversationId: string, userIds: string[]): Promise<Member[]> {
  return (await selectMembers(r, conversationId, anyOf(members.userId, userIds))).map((m) => memberOf(m, toUser(m.user)));
}

/**
 * The caller's conversations after the cursor, newest activity first. activityKey is
 * strictly increasing only within one process: two nodes of a cluster may write equal
 * keys, so the id makes the order (and the cursor) total, as on SQLite.
 */
async function conversationRows(r: PgRunner, userId: string, take: number, after: ListCursor | undefined): Promise<ViewedRow[]> {
  const page = after && or(lt(conversations.activityAt, after[0]), and(eq(conversations.activityAt, after[0]), lt(conversations.id, after[1])));
  return r
    .select({ ...getTableColumns(conversations), role: members.role, lastReadMessageId: members.lastReadMessageId })
    .from(members)
    .innerJoin(conversations, eq(conversations.id, members.conversationId))
    .where(and(eq(members.userId, userId), page))
    .orderBy(desc(conversations.activityAt), desc(conversations.id))
    .limit(take);
}

// ---- The last message of each conversation ----------------------------------------------
// A local twin of src/messages/view.ts's lastMessagesOf until the PostgreSQL messages store
// (branch pg-messages) provides the Message reads; the coordinator reconciles the two.

/** Members other than the sender whose read position is at or past the message (written out: see messages/view.ts). */
const readCount = sql<number>`(SELECT count(*)::int FROM conversation_members rm WHERE rm.conversation_id = "messages"."conversation_id"
  AND rm.user_id <> "messages"."sender_id" AND rm.last_read_message_id >= "messages"."id")`.as("read_count");

async function messagesByIds(r: PgRunner, ids: string[]): Promise<Message[]> {
  const rows = await r
    .select({ m: messages, username: users.username, displayName: users.displayName, avatar: users.profileImageUrl, readCount })
    .from(messages)
    .innerJoin(users, eq(users.id, messages.senderId))
    .where(anyOf(messages.id, ids));
  const { live, withFiles } = detailIds(rows);
  const [reacted, files] = await Promise.all([
    // In the order users reacted (SQLite breaks ties in a millisecond by rowid; here by user and emoji).
    live.length ? r.select().from(reactions).where(anyOf(reactions.messageId, live)).orderBy(asc(reactions.createdAt), asc(reactions.userId), asc(reactions.emoji)) : [],
    withFiles.length ? r.select().from(attachments).where(anyOf(attachments.messageId, withFiles)).orderBy(asc(attachments.position)) : [],
  ]);
  return withDetails(rows, groupReactions(reacted), groupAttachments(files));
}

async function lastMessagesOf(r: PgRunner, convs: ConversationRow[]): Promise<Map<string, Message>> {
  const ids = convs.map((c) => c.lastMessageId).filter((id): id is string => id !== null);
  if (ids.length === 0) return new Map();
  return new Map((await messagesByIds(r, ids)).map((m) => [m.conversation_id, m]));
}

// ---- Changes ----------------------------------------------------------------------------

/** Checks that every id names a user; 422 naming the unknown ones. */
async function requireUsers(r: PgRunner, field: string, ids: string[]) {
  if (ids.length === 0) return;
  const found = await r.select({ id: users.id }).from(users).where(anyOf(users.id, ids));
  requireFound(field, ids, new Set(found.map((row) => row.id)));
}

/**
 * Inserts the new members of one conversation, all joining at `joinedAt`: one statement with
 * two array parameters (ids, roles), however many (a VALUES list binds 4 parameters a row,
 * and PostgreSQL at most 65,535 a statement).
 */
async function insertMembers(w: PgWriter, conversationId: string, joinedAt: number, rows: Joined[]) {
  await w.tx.execute(sql`INSERT INTO conversation_members (conversation_id, user_id, role, joined_at)
    SELECT ${conversationId}, j.user_id, j.role, ${joinedAt}::bigint FROM unnest(${sql.param(rows.map((r) => r.userId))}::text[], ${sql.param(rows.map((r) => r.role))}::text[]) AS j(user_id, role)`);
}

/**
 * Announces the conversation to each new member on their own topic; their joined_seq is the
 * last create's seq (see the SQLite service). `created`: the conversation is new in this
 * change (it has no messages). Returns what `viewerId` (one of them) was sent: a creator's
 * answer, without reading it all again.
 */
async function announceCreate(w: PgWriter, conv: ConversationRow, joined: Joined[], created: boolean, viewerId: string): Promise<Conversation> {
  const { last, view } = await emitCreate(w, conv, joined, created, viewerId);
  await w.tx
    .update(members)
    .set({ joinedSeq: last })
    .where(and(eq(members.conversationId, conv.id), anyOf(members.userId, joined.map((j) => j.userId))));
  return view!;
}

async function emitCreate(w: PgWriter, conv: ConversationRow, joined: Joined[], created: boolean, viewerId: string): Promise<{ last: number; view?: Conversation }> {
  let last = 0;
  let mine: Conversation | undefined;
  if (conv.type === "direct") {
    for (const { userId } of joined) {
      const view = await viewConversation(w.tx, conv.id, userId);
      if (userId === viewerId) mine = view;
      last = await w.emit(userTopic(userId), "conversation.create", view);
    }
    return { last, view: mine };
  }
  const base = await viewConversation(w.tx, conv.id, joined[0]!.userId);
  const sent = created ? [] : await sentBy(w, conv.id);
  for (const { view, topics } of groupCreateViews(base, joined, sent)) {
    if (topics.includes(userTopic(viewerId))) mine = view;
    last = Math.max(last, await w.emitMany(topics, "conversation.create", view));
  }
  return { last, view: mine };
}

/** The conversation's live messages by sender. */
const sentBy = (w: PgWriter, conversationId: string) =>
  w.tx
    .select({ id: messages.senderId, n: sql<number>`count(*)::int` })
    .from(messages)
    .where(and(eq(messages.conversationId, conversationId), sql`${messages.deletedAt} IS NULL`))
    .groupBy(messages.senderId);

async function insertConversation(w: PgWriter, fields: Pick<ConversationRow, "type" | "title" | "directKey" | "createdBy">): Promise<ConversationRow | undefined> {
  const now = Date.now();
  const [row] = await w.tx
    .insert(conversations)
    .values({ id: Bun.randomUUIDv7(), ...fields, createdAt: now, updatedAt: now, activityAt: activityKey(now) })
    .onConflictDoNothing({ target: conversations.directKey })
    .returning();
  return row;
}

/**
 * Deletes the conversation: `conversation.delete` to every member's own topic. The rows go
 * before the event is appended (the same events as on SQLite, which appends first): the
 * delete may wait for an edit or reaction holding a message or membership of it, which may
 * in turn wait for the log's append lock.
 */
async function destroy(w: PgWriter, conv: ConversationRow) {
  const ids = await w.tx.select({ id: members.userId }).from(members).where(eq(members.conversationId, conv.id));
  await w.tx.delete(conversations).where(eq(conversations.id, conv.id));
  await w.emitMany(ids.map((row) => userTopic(row.id)), "conversation.delete", { conversation_id: conv.id });
}

/** The member who inherits ownership: the longest-standing admin, else member. */
async function successor(w: PgWriter, conversationId: string): Promise<MemberRow | undefined> {
  const [heir] = await w.tx
    .select()
    .from(members)
    .where(and(eq(members.conversationId, conversationId), ne(members.role, "owner")))
    .orderBy(sql`${members.role} = 'admin' DESC`, ...JOIN_ORDER)
    .limit(1);
  return heir;
}

const setMemberRole = (w: PgWriter, conversationId: string, userId: string, role: Role) =>
  w.tx.update(members).set({ role }).where(and(eq(members.conversationId, conversationId), eq(members.userId, userId)));

async function memberCount(r: PgRunner, id: string): Promise<number> {
  return (await conversationRow(r, id))?.memberCount ?? 0;
}

async function announceUpdated(w: PgWriter, conversationId: string, userIds: string[]) {
  for (const data of memberUpdates(conversationId, userIds, await membersNamed(w.tx, conversationId, userIds))) {
    await w.emit(convTopic(conversationId), "conversation.member_update", data);
  }
}

export function pgConversations(deps: PgDeps): ConversationStore {
  const { db, events, config } = deps;

  async function createDirect(me: UserRow, otherId: string): Promise<{ created: boolean; conversation: Conversation }> {
    return events.write(async (w) => {
      await requireUsers(w.tx, "user_id", [otherId]);
      const directKey = pairKey(me.id, otherId);
      for (let checked = false; ; checked = true) {
        const [existing] = await w.tx.select().from(conversations).where(eq(conversations.directKey, directKey));
        if (existing) return { created: false, conversation: await viewConversation(w.tx, existing.id, me.id) };
        if (!checked) await requireContactsPg(deps, w.tx, me.id, [otherId]);
        const conv = await insertConversation(w, { type: "direct", title: null, directKey, createdBy: me.id });
        // None: another transaction created the pair's conversation first. ON CONFLICT waited
        // for it to commit, so the next read (a new snapshot: READ COMMITTED) finds it.
        if (!conv) continue;
        const rows = [me.id, otherId].map((userId) => ({ userId, role: "member" as const }));
        await insertMembers(w, conv.id, conv.createdAt, rows);
        return { created: true, conversation: await announceCreate(w, conv, rows, true, me.id) };
      }
    });
  }

  async function createGroup(me: UserRow, title: string, others: string[]): Promise<Conversation> {
    return events.write(async (w) => {
      await requireUsers(w.tx, "member_ids", others);
      await requireContactsPg(deps, w.tx, me.id, others);
      const conv = (await insertConversation(w, { type: "group", title, directKey: null, createdBy: me.id }))!;
      const rows = [{ userId: me.id, role: "owner" as const }, ...others.map((userId) => ({ userId, role: "member" as const }))];
      await insertMembers(w, conv.id, conv.createdAt, rows);
      return announceCreate(w, conv, rows, true, me.id);
    });
  }

  async function lockGroupManager(w: PgWriter, id: string, userId: string) {
    const found = await lockMember(w, id, userId);
    checkGroupManager(found.conv, found.me);
    return found;
  }

  return {
    async viewed(userId, ids) {
      if (!ids.length) return [];
      const rows = await db
        .select({ c: conversations, role: members.role, lastReadMessageId: members.lastReadMessageId })
        .from(conversations)
        .innerJoin(members, and(eq(members.conversationId, conversations.id), eq(members.userId, userId)))
        .where(anyOf(conversations.id, ids));
      return inOrder(ids, await viewConversations(db, rows.map((r) => ({ ...r.c, role: r.role, lastReadMessageId: r.lastReadMessageId })), userId));
    },
    async create(me, input: CreateConversationInput) {
      const req = createRequest(config, me, input);
      if (req.type === "direct") return createDirect(me, req.otherId);
      return { created: true, conversation: await createGroup(me, req.title, req.others) };
    },

    async listJson(userId, limit, cursor) {
      const after = decodeCursor(cursor, "conversations", isListCursor);
      const page = pageOf("conversations", await conversationRows(db, userId, limit + 1, after), limit, (r) => r, (r) => [r.activityAt, r.id]);
      return JSON.stringify({ items: await viewConversations(db, page.items, userId), next_cursor: page.next_cursor });
    },

    async get(userId, id) {
      await requireMembership(db, id, userId);
      return viewConversation(db, id, userId);
    },

    async members(userId, id, limit, cursor) {
      await requireMembership(db, id, userId);
      const after = membersCursor(id, cursor);
      const rows = await membersAfter(db, id, after && [after[1], after[2], after[3]], limit + 1);
      return pageOf("members", rows, limit, (r) => r.member, (r) => [id, ...r.position]);
    },

    rename: (me, id, title) =>
      events.write(async (w) => {
        const { conv } = await lockGroupManager(w, id, me.id);
        const name = newTitle(conv, title);
        if (name === undefined) return viewConversation(w.tx, conv.id, me.id);
        const [updated] = await w.tx.update(conversations).set({ title: name, updatedAt: Date.now() }).where(eq(conversations.id, id)).returning();
        await w.emit(convTopic(id), "conversation.update", conversationUpdate(updated!));
        return viewConversation(w.tx, id, me.id);
      }),

    remove: (me, id) =>
      events.write(async (w) => {
        const { conv, me: membership } = await lockMember(w, id, me.id);
        checkDelete(conv, membership);
        await destroy(w, conv);
      }),

    addMembers: (me, id, userIds) =>
      events.write(async (w) => {
        // The conversation row stays locked to the end: no other change reads the count meanwhile.
        const { conv } = await lockGroupManager(w, id, me.id);
        const wanted = [...new Set(userIds)];
        await requireUsers(w.tx, "user_ids", wanted);
        const present = await w.tx.select({ id: members.userId }).from(members).where(and(eq(members.conversationId, id), anyOf(members.userId, wanted)));
        const existing = new Set(present.map((row) => row.id));
        const added = wanted.filter((u) => !existing.has(u));
        await requireContactsPg(deps, w.tx, me.id, added);
        if (added.length === 0) return viewConversation(w.tx, conv.id, me.id);
        if (conv.memberCount + added.length > config.maxGroupMembers) throw tooManyMembers(config, "user_ids");
        const rows = added.map((userId) => ({ userId, role: "member" as const }));
        await insertMembers(w, id, Date.now(), rows);
        // The deltas first, while only the existing members' sockets follow the conversation.
        const [named, count] = [await membersNamed(w.tx, id, added), await memberCount(w.tx, id)];
        for (const data of memberAdds(id, named, count)) await w.emit(convTopic(id), "conversation.member_add", data);
        // The caller is not among the added: their view is read afresh.
        await announceCreate(w, conv, rows, false, rows[0]!.userId);
        return viewConversation(w.tx, conv.id, me.id);
      }),

    removeMember: (me, id, userId) =>
      events.write(async (w) => {
        const { conv, me: mine } = await lockMember(w, id, me.id);
        const target = checkRemoval(conv, mine, userId === me.id ? mine : await memberRow(w.tx, id, userId));
        const heir = target.role === "owner" ? await successor(w, id) : undefined;
        if (target.role === "owner") {
          if (!heir) return destroy(w, conv); // the last member left
          await setMemberRole(w, id, heir.userId, "owner");
        }
        // The removed user hears first, on their own topic (see the SQLite service).
        await w.tx.delete(members).where(and(eq(members.conversationId, id), eq(members.userId, userId)));
        const left = await w.emit(userTopic(userId), "conversation.delete", { conversation_id: id });
        // Should they rejoin, a replay still owes them what this stint gave them live.
        await w.tx.insert(memberStints).values({ conversationId: id, userId, joinedSeq: target.joinedSeq, leftSeq: left });
        await w.emit(convTopic(id), "conversation.member_remove", { conversation_id: id, user_ids: [userId], member_count: await memberCount(w.tx, id) });
        if (heir) await announceUpdated(w, id, [heir.userId]);
      }),

    setRole: (me, id, userId, role) =>
      events.write(async (w) => {
        const { conv, me: mine } = await lockMember(w, id, me.id);
        const change = roleChange(conv, mine, await memberRow(w.tx, id, userId), role);
        if (change !== "none") {
          // A hand-over demotes the old owner first: a client never sees two owners.
          if (change === "handover") await setMemberRole(w, id, me.id, "admin");
          await setMemberRole(w, id, userId, role);
          await announceUpdated(w, id, change === "handover" ? [me.id, userId] : [userId]);
        }
        return (await membersNamed(w.tx, id, [userId]))[0]!;
      }),

    requireMembership: (conversationId, userId) => requireMembership(db, conversationId, userId),

    async idsOf(userId) {
      return (await db.select({ id: members.conversationId }).from(members).where(eq(members.userId, userId))).map((row) => row.id);
    },

    /**
     * One statement, so one snapshot: the memberships and the log's last seq as of the same
     * moment. (The last seq committed in that snapshot is the log's end when appends take
     * seqs in commit order; a log that orders by transaction horizon has its own bound.)
     */
    async membership(userId) {
      const [row] = await db.execute<{ last: string; ids: string[] }>(
        sql`SELECT (SELECT coalesce(max(seq), 0) FROM events) AS last, ARRAY(SELECT conversation_id FROM conversation_members WHERE user_id = ${userId}) AS ids`,
      );
      return { ids: row!.ids, last: Number(row!.last) };
    },
  };
}
