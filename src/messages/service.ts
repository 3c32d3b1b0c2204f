/**
 * Messages (PROTOCOL §3.4): send, history, edit, delete, read positions, reactions,
 * mentions. Each change is one EventLog.write; REST and WebSocket both call these.
 */
import { and, eq, gt, inArray, lt, sql, type Column } from "drizzle-orm";
import { prepared } from "../db/prepared";
import type { AppContext } from "../context";
import { conversations, members, messages, reactions, users, type AttachmentRow, type ConversationRow, type MemberRow, type MessageRow, type UserRow } from "../db/schema";
import { AppError, conflict, forbidden, invalid, notFound } from "../errors";
import { CONTROL_CHARACTERS, DIRECTION_CONTROLS, isBlank } from "../lib/text";
import { convTopic, userTopic, type Tx } from "../events/log";
import { decodeCursor, encodeCursor, type Page } from "../http/paging";
import { requireMembership } from "../conversations/service";
import { conversationRow, memberRow } from "../conversations/view";
import { activityKey, iso } from "../lib/time";
import type { Static } from "../lib/model";
import type { ReadReceipt, SendBody } from "./model";
import { MAX_REACTION_KINDS, messageById, selectMessages, toMessage, toMessages, unreadCount, type Message } from "./view";
import { mayHoldFiles, messageTypeOf } from "../files/service";
import { attach, release } from "../files/rows";
import { toAttachment } from "../files/view";

export const MAX_CONTENT = 4000;

export type SendInput = Static<typeof SendBody>;

/** Trims and checks content: 1–4000 characters (code points); may be empty on a message with files. */
export function cleanContent(raw: string, mayBeEmpty = false): string {
  const content = raw.trim();
  if (content.length === 0 && !mayBeEmpty) throw invalid("content", "must not be empty");
  if (content.length > MAX_CONTENT && [...content].length > MAX_CONTENT) throw invalid("content", `at most ${MAX_CONTENT} characters`);
  // PostgreSQL cannot store it in text (a cluster answered 400, a single node stored it): refused alike.
  if (content.includes("\u0000")) throw invalid("content", "must not contain U+0000 (NUL)");
  return content;
}

// Bounded on both sides: a run of 33+ name characters mentions nobody, not its prefix
// (dots may end a sentence after the name).
const MENTION = /(?:^|[^A-Za-z0-9_.@])@([A-Za-z0-9_.]{3,32})\.*(?![A-Za-z0-9_.])/g;

/** Usernames mentioned as `@name` in a text, lower-cased, without duplicates. */
export function mentionedUsernames(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(MENTION)) names.add(m[1]!.toLowerCase().replace(/\.+$/, ""));
  return [...names];
}

/** The send path's statements, prepared once per database: it runs for every message. */
const sendStatements = (db: Tx) =>
  prepared(db, "messages.send", (d) => ({
    byClientId: d
      .select({ id: messages.id })
      .from(messages)
      .where(and(eq(messages.conversationId, sql.placeholder("c")), eq(messages.senderId, sql.placeholder("s")), eq(messages.clientMsgId, sql.placeholder("k"))))
      .prepare(),
    conversationOf: d.select({ c: messages.conversationId, sender: messages.senderId }).from(messages).where(eq(messages.id, sql.placeholder("id"))).prepare(),
    insert: d
      .insert(messages)
      .values({
        id: sql.placeholder("id"), conversationId: sql.placeholder("conversationId"), senderId: sql.placeholder("senderId"),
        messageType: sql.placeholder("messageType"), content: sql.placeholder("content"), clientMsgId: sql.placeholder("clientMsgId"),
        replyToId: sql.placeholder("replyToId"), createdAt: sql.placeholder("createdAt"), editedAt: null, deletedAt: null,
      })
      .prepare(),
    touch: d
      .update(conversations)
      .set({ lastMessageAt: sql`${sql.placeholder("at")}`, lastMessageId: sql`${sql.placeholder("id")}`, activityAt: sql`${sql.placeholder("activity")}` })
      .where(eq(conversations.id, sql.placeholder("c")))
      .prepare(),
  }));

/**
 * Sends a message: membership, insert, conversation activity, `message.receive` and any
 * mention notifications, all in one transaction. A repeated client_msg_id returns the
 * stored message with `created: false` and appends nothing.
 */
/**
 * `json`: a new message's JSON as its `message.receive` event stores it, so that a REST
 * send answers with that text instead of serialising the message again (issue #17).
 */
export async function sendMessage(ctx: AppContext, me: UserRow, conversationId: string, input: SendInput): Promise<{ created: boolean; message: Message; json?: string }> {
  const { type, attachmentIds, content } = checkSend(input);
  const started = performance.now();
  const q = sendStatements(ctx.db);
  // Sends are the hot path: they share group commits (EventLog.writeBatched).
  const result = await ctx.events.writeBatched((w) => {
    requireMembership(w.tx, conversationId, me.id);
    if (input.client_msg_id != null) {
      const prior = q.byClientId.get({ c: conversationId, s: me.id, k: input.client_msg_id });
      if (prior) return { created: false, message: messageById(w.tx, prior.id)! };
    }
    if (input.reply_to_id != null) checkReplyTarget(q.conversationOf.get({ id: input.reply_to_id }), conversationId);
    const now = Date.now();
    const id = Bun.randomUUIDv7();
    const files = attach(w.tx, me.id, id, attachmentIds);
    const row = newMessageRow(id, conversationId, me, input, content, files.length ? messageTypeOf(files) : type, now);
    q.insert.run(row);
    q.touch.run({ at: now, activity: activityKey(now), id: row.id, c: conversationId });
    const message = sentMessage(me, row, files);
    const json = JSON.stringify(message);
    w.emit(convTopic(conversationId), "message.receive", message, json);
    const names = mentionTargets(message, me);
    if (names.length) for (const { id } of mentionedMembers(w.tx, message.conversation_id, names)) w.emit(userTopic(id), "notification", mentionOf(message, me));
    return { created: true, message, json };
  });
  if (result.created) ctx.metrics.sendLatency.observe((performance.now() - started) / 1000);
  return result;
}

/** The send's own checks, before any query: type, attachment ids given, content. */
export function checkSend(input: SendInput) {
  const type = input.message_type ?? "text";
  if (type === "system") throw invalid("message_type", "system messages are sent by the server only");
  const attachmentIds = input.attachment_ids ?? [];
  const content = cleanContent(input.content ?? "", attachmentIds.length > 0);
  // U+0000: PostgreSQL refuses it in text (a cluster answered 400, a single node stored it or found nothing).
  if (input.client_msg_id?.includes("\u0000")) throw invalid("client_msg_id", "must not contain U+0000 (NUL)");
  if (input.reply_to_id?.includes("\u0000")) checkReplyTarget(undefined, "");
  return { type, attachmentIds, content };
}

/** `reply_to_id` must name a message of this conversation (`target`: its conversation, if it exists). */
export function checkReplyTarget(target: { c: string } | undefined, conversationId: string) {
  if (!target || target.c !== conversationId) throw invalid("reply_to_id", "not a message of this conversation");
}

export function newMessageRow(id: string, conversationId: string, me: UserRow, input: SendInput, content: string, messageType: MessageRow["messageType"], now: number): MessageRow {
  return {
    id,
    conversationId,
    senderId: me.id,
    messageType,
    content,
    clientMsgId: input.client_msg_id ?? null,
    replyToId: input.reply_to_id ?? null,
    createdAt: now,
    editedAt: null,
    deletedAt: null,
  };
}

/** The Message of a send, as `message.receive` carries it: read by nobody yet, no reactions. */
export const sentMessage = (me: UserRow, row: MessageRow, files: AttachmentRow[]): Message =>
  toMessage({ m: row, username: me.username, displayName: me.displayName, avatar: me.profileImageUrl, readCount: 0 }, [], files.map(toAttachment));

/** Usernames a sent message mentions, other than the sender's (none for a system message). */
export function mentionTargets(message: Message, sender: UserRow): string[] {
  if (message.message_type === "system" || !message.content.includes("@")) return [];
  return mentionedUsernames(message.content).filter((n) => n !== sender.username);
}

/** The `notification {kind:"mention"}` each mentioned member other than the sender gets, once. */
export const mentionOf = (message: Message, sender: UserRow) =>
  ({ kind: "mention", conversation_id: message.conversation_id, message_id: message.id, from_user_id: sender.id }) as const;

/** The members of the conversation among these usernames. */
function mentionedMembers(tx: Tx, conversationId: string, names: string[]) {
  return tx
    .select({ id: users.id })
    .from(users)
    .innerJoin(members, and(eq(members.userId, users.id), eq(members.conversationId, conversationId)))
    .where(inArray(users.username, names))
    .all();
}

type HistoryCursor = ["before" | "after", string];
const isHistoryCursor = (v: unknown): v is HistoryCursor =>
  Array.isArray(v) && v.length === 2 && (v[0] === "before" || v[0] === "after") && typeof v[1] === "string";

export interface HistoryQuery { before?: string; after?: string; cursor?: string; limit: number }

/**
 * History: newest first (optionally before a message id), or with `after` oldest first.
 * Paging by id keeps pages complete and gap-free while new messages arrive.
 */
export function listMessages(ctx: AppContext, me: UserRow, conversationId: string, q: HistoryQuery): Page<Message> {
  requireMembership(ctx.db, conversationId, me.id);
  const plan = historyPlan(q);
  const conversationOf = (id: string) => sendStatements(ctx.db).conversationOf.get({ id })?.c;
  checkHistoryBounds(plan, conversationId, plan.ids.map(conversationOf));
  const { rows, more } = historyRows(selectMessages(ctx.db, historyWhere(plan, messages, conversationId), plan.direction === "after" ? "asc" : "desc", q.limit + 1), q.limit);
  return historyPage(plan, toMessages(ctx.db, rows), more);
}

/** What a history query asks for, checked as far as it can be without the database. */
export function historyPlan(q: HistoryQuery) {
  if (q.before !== undefined && q.after !== undefined) throw invalid("after", "use either before or after");
  const fromCursor = decodeCursor(q.cursor, "messages", isHistoryCursor);
  // A cursor goes on in its own direction: with `after` (oldest first) or `before` (newest
  // first) given, one of the other direction belongs to another query.
  const asked = q.after !== undefined ? "after" : q.before !== undefined ? "before" : undefined;
  if (fromCursor && asked && fromCursor[0] !== asked) throw new AppError("bad_request", `cursor: not a cursor of this query (it pages ${fromCursor[0] === "after" ? "oldest" : "newest"} first)`);
  const [direction, bound] = fromCursor ?? (q.after !== undefined ? ["after", q.after || undefined] : ["before", q.before || undefined]);
  // An empty `after` means "from the first message"; any other bound must be a message here.
  const fields = [...(fromCursor ? (["cursor"] as const) : []), ...(q.before ? (["before"] as const) : []), ...(q.after ? (["after"] as const) : [])];
  const ids = fields.map((f) => (f === "cursor" ? fromCursor![1] : q[f]!));
  return { direction, bound, fields, ids };
}
export type HistoryPlan = ReturnType<typeof historyPlan>;

/** `conversations`: the conversation of each of the plan's ids (undefined: no such message). */
export function checkHistoryBounds(plan: HistoryPlan, conversationId: string, conversations: (string | undefined)[]) {
  plan.fields.forEach((field, i) => {
    if (conversations[i] === conversationId) return;
    // Messages are never removed (deletes leave tombstones), so a cursor's message is always there.
    if (field === "cursor") throw new AppError("bad_request", "cursor: not a cursor of this conversation");
    throw invalid(field, "not a message of this conversation");
  });
}

/** The plan's rows (either dialect's messages table): this conversation, past the bound. */
export function historyWhere(plan: HistoryPlan, table: { conversationId: Column; id: Column }, conversationId: string) {
  const { direction, bound } = plan;
  return and(eq(table.conversationId, conversationId), bound === undefined ? undefined : direction === "after" ? gt(table.id, bound) : lt(table.id, bound));
}

/** Up to `limit` of the rows, and whether there is a next page (the query takes one row more). */
export const historyRows = <R>(rows: R[], limit: number) => ({ rows: rows.length > limit ? rows.slice(0, limit) : rows, more: rows.length > limit });

export const historyPage = (plan: HistoryPlan, items: Message[], more: boolean): Page<Message> => ({
  items,
  next_cursor: more ? encodeCursor("messages", [plan.direction, items[items.length - 1]!.id]) : null,
});

/** The message and the caller's membership of its conversation; 404 for non-members. */
function requireMessage(tx: Tx, messageId: string, userId: string) {
  const row = tx.select().from(messages).where(eq(messages.id, messageId)).get();
  const me = row && memberRow(tx, row.conversationId, userId);
  if (!row || !me) throw notFound("message");
  return { row, conv: conversationRow(tx, row.conversationId)!, me };
}

/** The new content of an edit, once the caller may edit this message. */
export function editedContent(row: MessageRow, me: UserRow, rawContent: string): string {
  if (row.senderId !== me.id) throw forbidden("only the sender can edit a message");
  if (row.deletedAt !== null) throw conflict("the message was deleted");
  // The files stay; the text may go only where there are files.
  return cleanContent(rawContent, mayHoldFiles(row.messageType));
}

export function editMessage(ctx: AppContext, me: UserRow, messageId: string, rawContent: string): Message {
  cleanContent(rawContent, true);
  return ctx.events.write((w) => {
    const { row } = requireMessage(w.tx, messageId, me.id);
    const content = editedContent(row, me, rawContent);
    w.tx.update(messages).set({ content, editedAt: Date.now() }).where(eq(messages.id, messageId)).run();
    const message = messageById(w.tx, messageId)!;
    w.emit(convTopic(row.conversationId), "message.edit", message);
    return message;
  });
}

/** 403 unless the caller is the sender or a group owner/admin; false when it is deleted already. */
export function mayDelete(row: MessageRow, conv: ConversationRow, membership: MemberRow, me: UserRow): boolean {
  const moderator = conv.type === "group" && (membership.role === "owner" || membership.role === "admin");
  if (row.senderId !== me.id && !moderator) throw forbidden("only the sender or a group owner/admin can delete a message");
  return row.deletedAt === null;
}

/** Deletes (sender, or a group owner/admin), keeping a tombstone. Deleting twice is a no-op. */
export function deleteMessage(ctx: AppContext, me: UserRow, messageId: string): void {
  ctx.events.write((w) => {
    const { row, conv, me: membership } = requireMessage(w.tx, messageId, me.id);
    if (!mayDelete(row, conv, membership, me)) return;
    const now = Date.now();
    w.tx.update(messages).set({ content: "", deletedAt: now }).where(eq(messages.id, messageId)).run();
    w.tx.delete(reactions).where(eq(reactions.messageId, messageId)).run();
    release(w.tx, messageId, now);
    w.emit(convTopic(row.conversationId), "message.delete", { conversation_id: row.conversationId, message_id: messageId, deleted_at: iso(now) });
  });
}


/**
 * Moves the caller's read position forward to `messageId`. Reading an older message or
 * your own changes nothing (and emits nothing); the answer is the current position.
 */
/**
 * Whether reading `messageId` (`target`: its conversation and sender, if it exists) moves
 * the caller's position, its event, and the receipt but for its unread count.
 */
export function readMove(target: { c: string; sender: string } | undefined, conversationId: string, membership: MemberRow, me: UserRow, messageId: string) {
  if (!target || target.c !== conversationId) throw invalid("message_id", "not a message of this conversation");
  const readAt = iso(Date.now());
  const current = membership.lastReadMessageId;
  const moves = target.sender !== me.id && (current === null || messageId > current);
  return {
    moves,
    event: { conversation_id: conversationId, user_id: me.id, message_id: messageId, read_at: readAt },
    receipt: { conversation_id: conversationId, user_id: me.id, message_id: moves ? messageId : current, read_at: readAt },
  };
}

export function markRead(ctx: AppContext, me: UserRow, conversationId: string, messageId: string): ReadReceipt {
  return ctx.events.write((w) => {
    // Read positions move as fast as messages arrive: prepared lookups, no conversation row.
    const membership = requireMembership(w.tx, conversationId, me.id);
    const move = readMove(sendStatements(w.tx).conversationOf.get({ id: messageId }), conversationId, membership, me, messageId);
    if (move.moves) {
      w.tx.update(members).set({ lastReadMessageId: messageId }).where(and(eq(members.conversationId, conversationId), eq(members.userId, me.id))).run();
      w.emit(convTopic(conversationId), "message.read", move.event);
    }
    return { ...move.receipt, unread_count: unreadCount(w.tx, conversationId, move.receipt.message_id, me.id) };
  });
}

export function cleanEmoji(raw: string, action: "add" | "remove"): string {
  const emoji = raw.trim();
  if (emoji.length === 0 || [...emoji].length > 32) throw invalid("emoji", "1–32 characters");
  if (CONTROL_CHARACTERS.test(emoji)) throw invalid("emoji", "must not contain control characters");
  // Removing names the reaction in the URL's last segment, where "." and ".." (even as %2E)
  // are resolved away by every URL parser: such a reaction could never be removed.
  if (action === "add" && (emoji === "." || emoji === "..")) throw invalid("emoji", '"." and ".." cannot be reactions: a URL cannot name them to remove them');
  // A reaction that shows as nothing, or turns the text around it backwards (U+202E), is none
  // (both were taken). Only when adding: one made before stays removable.
  if (action === "add" && DIRECTION_CONTROLS.test(emoji)) throw invalid("emoji", "must not contain direction controls (U+200E, U+200F, U+202A–U+202E, U+2066–U+2069, U+061C)");
  if (action === "add" && isBlank(emoji)) throw invalid("emoji", "must not be blank (it shows as nothing)");
  return emoji;
}

/** Refuses `emoji` when it would be a new kind of reaction on a message (with these kinds) that has all it may. */
export function checkNewKind(kinds: { emoji: string }[], emoji: string) {
  if (kinds.length >= MAX_REACTION_KINDS && !kinds.some((k) => k.emoji === emoji))
    throw invalid("emoji", `a message has at most ${MAX_REACTION_KINDS} different reactions: add one of those it has`);
}

/** The emoji of each kind of reaction a message has. */
const kindsOf = (tx: Tx, messageId: string) => tx.selectDistinct({ emoji: reactions.emoji }).from(reactions).where(eq(reactions.messageId, messageId)).all();

export const reactionEvent = (row: MessageRow, me: UserRow, emoji: string, action: "add" | "remove") =>
  ({ conversation_id: row.conversationId, message_id: row.id, user_id: me.id, emoji, action }) as const;

/** Adds or removes the caller's reaction; an add that exists or a remove that does not changes nothing. */
export function react(ctx: AppContext, me: UserRow, messageId: string, rawEmoji: string, action: "add" | "remove"): Message {
  const emoji = cleanEmoji(rawEmoji, action);
  return ctx.events.write((w) => {
    const { row } = requireMessage(w.tx, messageId, me.id);
    if (row.deletedAt !== null) throw conflict("the message was deleted");
    const key = and(eq(reactions.messageId, messageId), eq(reactions.userId, me.id), eq(reactions.emoji, emoji));
    const exists = w.tx.select({ emoji: reactions.emoji }).from(reactions).where(key).get() !== undefined;
    const changed = action === "add" ? !exists : exists;
    if (changed && action === "add") checkNewKind(kindsOf(w.tx, messageId), emoji);
    if (changed && action === "add") w.tx.insert(reactions).values({ messageId, userId: me.id, emoji, createdAt: Date.now() }).run();
    if (changed && action === "remove") w.tx.delete(reactions).where(key).run();
    if (changed) w.emit(convTopic(row.conversationId), "message.reaction", reactionEvent(row, me, emoji, action));
    return messageById(w.tx, messageId)!;
  });
}
