/**
 * Messages on PostgreSQL (PROTOCOL §3.4): the twin of src/messages/service.ts, same
 * checks, errors, events and pages; the pure parts are the SQLite service's own
 * (checkSend, historyPlan, readMove, …). Where SQLite relied on its single writer, row
 * locks say who waits for whom (each noted where it is taken).
 */
import { inOrder } from "../../lib/in-order";
import { and, asc, eq, getTableColumns, inArray, sql, type SQL } from "drizzle-orm";
import type { ConversationRow, MemberRow } from "../../db/schema";
import { conflict, notFound } from "../../errors";
import { convTopic, userTopic } from "../../events/log";
import { messageTypeOf } from "../../files/service";
import { activityKey, iso } from "../../lib/time";
import { fold } from "../../search/text";
import {
  checkHistoryBounds, checkNewKind, checkReplyTarget, checkSend, cleanContent, cleanEmoji, editedContent, historyPage, historyPlan, historyRows,
  historyWhere, mayDelete, mentionOf, mentionTargets, newMessageRow, reactionEvent, readMove, sentMessage,
} from "../../messages/service";
import { detailIds, groupReactions, withDetails, type Message, type MessageSelection, type Reaction } from "../../messages/view";
import type { MessageStore } from "../store";
import { pgAttach, pgAttachmentsOf, pgRelease } from "./attachments";
import { conversations, members, messages, reactions, users } from "./schema";
import type { PgDeps } from "./store";
import type { PgRunner, PgTx } from "./writer";

/** A message's columns but `search_text` (written here, read by search only). */
const { searchText: _, ...messageColumns } = getTableColumns(messages);

// ---- membership (until pg-conversations' requireMembership is on main) ----

/**
 * The caller's membership, 404 `conversation` when there is none. `lock`: KEY SHARE keeps
 * the row from being deleted until this change commits (a member removed meanwhile on
 * another node cannot react after the removal); NO KEY UPDATE also serialises read
 * position moves of this member.
 */
async function requireMembership(r: PgRunner, conversationId: string, userId: string, lock?: "key share" | "no key update"): Promise<MemberRow> {
  const me = await memberRow(r, conversationId, userId, lock);
  if (!me) throw notFound("conversation");
  return me;
}

async function memberRow(r: PgRunner, conversationId: string, userId: string, lock?: "key share" | "no key update"): Promise<MemberRow | undefined> {
  const q = r.select().from(members).where(and(eq(members.conversationId, conversationId), eq(members.userId, userId)));
  const [row] = lock ? await q.for(lock) : await q;
  return row;
}

// ---- views (twins of src/messages/view.ts's queries) ----

/** Members other than the sender whose read position is at or past the message. */
const readCount = sql<number>`(SELECT count(*) FROM conversation_members rm WHERE rm.conversation_id = "messages"."conversation_id"
  AND rm.user_id <> "messages"."sender_id" AND rm.last_read_message_id >= "messages"."id")`.mapWith(Number).as("read_count");

function selectMessages(r: PgRunner, where: SQL | undefined, order: "asc" | "desc" = "asc", limit?: number): Promise<MessageSelection[]> {
  const q = r
    .select({ m: messageColumns, username: users.username, displayName: users.displayName, avatar: users.profileImageUrl, readCount })
    .from(messages)
    .innerJoin(users, eq(users.id, messages.senderId))
    .where(where)
    .orderBy(order === "asc" ? asc(messages.id) : sql`${messages.id} DESC`);
  return limit === undefined ? q : q.limit(limit);
}

/** Reaction rows are created in order per message (see `react`), so created_at alone orders them. */
async function reactionsOf(r: PgRunner, ids: string[]): Promise<Map<string, Reaction[]>> {
  if (ids.length === 0) return new Map();
  return groupReactions(await r.select().from(reactions).where(inArray(reactions.messageId, ids)).orderBy(asc(reactions.createdAt)));
}

export async function pgToMessages(r: PgRunner, rows: MessageSelection[]): Promise<Message[]> {
  const ids = detailIds(rows);
  // One after the other: in a transaction both go through its one connection.
  const reacts = await reactionsOf(r, ids.live);
  return withDetails(rows, reacts, await pgAttachmentsOf(r, ids.withFiles));
}

export async function pgMessageById(r: PgRunner, id: string): Promise<Message | undefined> {
  const rows = await selectMessages(r, eq(messages.id, id));
  return rows.length ? (await pgToMessages(r, rows))[0] : undefined;
}

/** The last message of each conversation that has one (for the conversations list). */
export async function pgLastMessagesOf(r: PgRunner, convs: ConversationRow[]): Promise<Map<string, Message>> {
  const ids = convs.map((c) => c.lastMessageId).filter((id): id is string => id !== null);
  const out = new Map<string, Message>();
  if (ids.length === 0) return out;
  for (const m of await pgToMessages(r, await selectMessages(r, inArray(messages.id, ids)))) out.set(m.conversation_id, m);
  return out;
}

/** Messages after a read position (`afterId`; null: none yet), not the viewer's own and not deleted. */
export async function pgUnreadCount(r: PgRunner, conversationId: string, afterId: string | null, viewerId: string): Promise<number> {
  const [row] = await r
    .select({ n: sql<number>`count(*)`.mapWith(Number) })
    .from(messages)
    .where(sql`${messages.conversationId} = ${conversationId} AND ${messages.id} > ${afterId ?? ""} AND ${messages.senderId} <> ${viewerId} AND ${messages.deletedAt} IS NULL`);
  return row!.n;
}

// ---- the store ----

/** A message's conversation and sender, if it exists. */
async function conversationOf(r: PgRunner, id: string): Promise<{ c: string; sender: string } | undefined> {
  const [row] = await r.select({ c: messages.conversationId, sender: messages.senderId }).from(messages).where(eq(messages.id, id));
  return row;
}

/**
 * The message, its conversation and the caller's membership; 404 for non-members. Locked
 * in the order every change takes them (conversation, member, message), so that none
 * waits for another in a circle: the conversation and the membership KEY SHARE (neither
 * deleted, with what cascades, until this commits; a removed member cannot react after
 * the removal), the message NO KEY UPDATE (edits, deletes and reactions of one message
 * take turns, as on SQLite: the reaction caps hold, a delete cannot pass an edit).
 */
async function requireMessage(tx: PgTx, messageId: string, userId: string) {
  const [found] = await tx
    .select({ conv: conversations })
    .from(messages)
    .innerJoin(conversations, eq(conversations.id, messages.conversationId))
    .where(eq(messages.id, messageId))
    .for("key share", { of: conversations });
  const me = found && (await memberRow(tx, found.conv.id, userId, "key share"));
  const [row] = me ? await tx.select(messageColumns).from(messages).where(eq(messages.id, messageId)).for("no key update") : [];
  if (!found || !me || !row) throw notFound("message");
  return { row, conv: found.conv, me };
}

/**
 * A new message id past the conversation's last: UUIDv7 ids order the history, and
 * another node's clock may be behind the one that sent the last message.
 */
export function nextMessageId(last: string | null): string {
  const id = Bun.randomUUIDv7();
  if (last === null || id > last) return id;
  return Bun.randomUUIDv7("hex", parseInt(last.slice(0, 8) + last.slice(9, 13), 16) + 1);
}

export function pgMessages(deps: PgDeps): MessageStore {
  const { db, events } = deps;

  async function mentionedMembers(tx: PgTx, conversationId: string, names: string[]) {
    return tx
      .select({ id: users.id })
      .from(users)
      .innerJoin(members, and(eq(members.userId, users.id), eq(members.conversationId, conversationId)))
      .where(inArray(users.username, names));
  }

  /** A retried send's stored message, if this sender used the client_msg_id here already. */
  async function priorSend(r: PgRunner, conversationId: string, senderId: string, clientMsgId: string) {
    const [prior] = await r
      .select({ id: messages.id })
      .from(messages)
      .where(and(eq(messages.conversationId, conversationId), eq(messages.senderId, senderId), eq(messages.clientMsgId, clientMsgId)));
    return prior && { created: false, message: (await pgMessageById(r, prior.id))! };
  }

  return {
    byIds: async (ids) => (ids.length ? inOrder(ids, await pgToMessages(db, await selectMessages(db, inArray(messages.id, ids)))) : []),
    async send(me, conversationId, input) {
      const { type, attachmentIds, content } = checkSend(input);
      const started = performance.now();
      const clientMsgId = input.client_msg_id ?? null;
      const result = await events.write(async (w) => {
        // Sends of one conversation take turns from here to their commit (SQLite's single
        // writer did this): so their ids, which order the history, follow the order of
        // their events' seqs. Membership changes lock the same row first, so the
        // membership read below holds until the commit.
        const [conv] = await w.tx.select({ last: conversations.lastMessageId }).from(conversations).where(eq(conversations.id, conversationId)).for("no key update");
        await requireMembership(w.tx, conversationId, me.id);
        if (clientMsgId !== null) {
          const prior = await priorSend(w.tx, conversationId, me.id, clientMsgId);
          if (prior) return prior;
        }
        if (input.reply_to_id != null) checkReplyTarget(await conversationOf(w.tx, input.reply_to_id), conversationId);
        const now = Date.now();
        const id = nextMessageId(conv!.last);
        const row = newMessageRow(id, conversationId, me, input, content, type, now);
        // Retries already take turns on the conversation row; the unique index on
        // (conversation, sender, client_msg_id) decides all the same should two ever race
        // (the second waits for the first, inserts nothing and answers with the stored
        // message: READ COMMITTED, its next statement sees the first's commit). The message
        // goes in before its files are taken, so that answer comes before any file check.
        const inserted = await w.tx
          .insert(messages)
          .values({ ...row, searchText: fold(content) })
          .onConflictDoNothing({ target: [messages.conversationId, messages.senderId, messages.clientMsgId], where: sql`${messages.clientMsgId} IS NOT NULL` })
          .returning({ id: messages.id });
        if (inserted.length === 0) return (await priorSend(w.tx, conversationId, me.id, clientMsgId!))!;
        const files = await pgAttach(w.tx, me.id, id, attachmentIds);
        if (files.length) {
          row.messageType = messageTypeOf(files);
          await w.tx.update(messages).set({ messageType: row.messageType }).where(eq(messages.id, id));
        }
        // activityKey is monotonic per node only: another node's may be ahead.
        await w.tx
          .update(conversations)
          .set({ lastMessageAt: now, lastMessageId: id, activityAt: sql`GREATEST(${conversations.activityAt}, ${activityKey(now)}::bigint)` })
          .where(eq(conversations.id, conversationId));
        const message = sentMessage(me, row, files);
        await w.emit(convTopic(conversationId), "message.receive", message);
        const names = mentionTargets(message, me);
        if (names.length) for (const { id: to } of await mentionedMembers(w.tx, conversationId, names)) await w.emit(userTopic(to), "notification", mentionOf(message, me));
        return { created: true, message };
      });
      if (result.created) deps.metrics.sendLatency.observe((performance.now() - started) / 1000);
      return result;
    },

    async list(me, conversationId, q) {
      await requireMembership(db, conversationId, me.id);
      const plan = historyPlan(q);
      checkHistoryBounds(plan, conversationId, await Promise.all(plan.ids.map(async (id) => (await conversationOf(db, id))?.c)));
      const found = await selectMessages(db, historyWhere(plan, messages, conversationId), plan.direction === "after" ? "asc" : "desc", q.limit + 1);
      const { rows, more } = historyRows(found, q.limit);
      return historyPage(plan, await pgToMessages(db, rows), more);
    },

    async edit(me, messageId, rawContent) {
      cleanContent(rawContent, true);
      return events.write(async (w) => {
        const { row } = await requireMessage(w.tx, messageId, me.id);
        const content = editedContent(row, me, rawContent);
        await w.tx.update(messages).set({ content, editedAt: Date.now(), searchText: fold(content) }).where(eq(messages.id, messageId));
        const message = (await pgMessageById(w.tx, messageId))!;
        await w.emit(convTopic(row.conversationId), "message.edit", message);
        return message;
      });
    },

    async remove(me, messageId) {
      await events.write(async (w) => {
        const { row, conv, me: membership } = await requireMessage(w.tx, messageId, me.id);
        if (!mayDelete(row, conv, membership, me)) return;
        const now = Date.now();
        await w.tx.update(messages).set({ content: "", deletedAt: now, searchText: null }).where(eq(messages.id, messageId));
        await w.tx.delete(reactions).where(eq(reactions.messageId, messageId));
        await pgRelease(w.tx, messageId, now);
        await w.emit(convTopic(row.conversationId), "message.delete", { conversation_id: row.conversationId, message_id: messageId, deleted_at: iso(now) });
      });
    },

    async markRead(me, conversationId, messageId) {
      return events.write(async (w) => {
        // Locked: two moves of this member's position (two devices, two nodes) take turns, so it only goes forward.
        const membership = await requireMembership(w.tx, conversationId, me.id, "no key update");
        const move = readMove(await conversationOf(w.tx, messageId), conversationId, membership, me, messageId);
        if (move.moves) {
          await w.tx.update(members).set({ lastReadMessageId: messageId }).where(and(eq(members.conversationId, conversationId), eq(members.userId, me.id)));
          await w.emit(convTopic(conversationId), "message.read", move.event);
        }
        return { ...move.receipt, unread_count: await pgUnreadCount(w.tx, conversationId, move.receipt.message_id, me.id) };
      });
    },

    async react(me, messageId, rawEmoji, action) {
      const emoji = cleanEmoji(rawEmoji, action);
      return events.write(async (w) => {
        const { row } = await requireMessage(w.tx, messageId, me.id);
        if (row.deletedAt !== null) throw conflict("the message was deleted");
        const key = and(eq(reactions.messageId, messageId), eq(reactions.userId, me.id), eq(reactions.emoji, emoji));
        const exists = (await w.tx.select({ emoji: reactions.emoji }).from(reactions).where(key)).length > 0;
        const changed = action === "add" ? !exists : exists;
        if (changed && action === "add") {
          checkNewKind(await w.tx.selectDistinct({ emoji: reactions.emoji }).from(reactions).where(eq(reactions.messageId, messageId)), emoji);
          // Past the message's last reaction by at least 1 ms (the message row is locked, so
          // they take turns): created_at alone orders them as users reacted, as rowid does on SQLite.
          const createdAt = sql`GREATEST(${Date.now()}::bigint, (SELECT coalesce(max(created_at) + 1, 0) FROM message_reactions WHERE message_id = ${messageId}))`;
          await w.tx.insert(reactions).values({ messageId, userId: me.id, emoji, createdAt });
        }
        if (changed && action === "remove") await w.tx.delete(reactions).where(key);
        if (changed) await w.emit(convTopic(row.conversationId), "message.reaction", reactionEvent(row, me, emoji, action));
        return (await pgMessageById(w.tx, messageId))!;
      });
    },
  };
}
