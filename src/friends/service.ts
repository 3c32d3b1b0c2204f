/**
 * Friendships (PROTOCOL §3.2). One row per unordered pair; see the schema.
 */
import { and, desc, eq, inArray, lt, or, type Column, type SQL } from "drizzle-orm";
import { alias } from "drizzle-orm/sqlite-core";
import type { AppContext } from "../context";
import type { DB } from "../db/client";
import { friendships, users, type FriendshipRow, type UserRow } from "../db/schema";
import { conflict, forbidden, notFound, invalid } from "../errors";
import { userTopic, type Writer } from "../events/log";
import { decodeCursor, isStringCursor, pageOf, type Page } from "../http/paging";
import { isoOrNull, iso } from "../lib/time";
import { toUser } from "../users/dto";
import type { Friendship } from "./model";
import type { EventData } from "../models";

export const pairKey = (a: string, b: string) => (a < b ? `${a}|${b}` : `${b}|${a}`);

export type { Friendship } from "./model";

export const toFriendship = (f: FriendshipRow, requester: UserRow, addressee: UserRow): Friendship => ({
  id: f.id,
  user_id: f.userId,
  friend_id: f.friendId,
  status: f.status,
  requested_at: iso(f.requestedAt),
  accepted_at: isoOrNull(f.acceptedAt),
  user: toUser(requester),
  friend: toUser(addressee),
});

const userById = (w: Writer | { tx: DB }, id: string) => w.tx.select().from(users).where(eq(users.id, id)).get();

function accept(w: Writer, f: FriendshipRow, acceptor: UserRow, notify: string[]): Friendship {
  const row = w.tx.update(friendships).set({ status: "accepted", acceptedAt: Date.now() }).where(eq(friendships.id, f.id)).returning().get()!;
  const data = acceptedEvent(row, acceptor);
  for (const id of notify) w.emit(userTopic(id), "friend.accept", data);
  const requester = row.userId === acceptor.id ? acceptor : userById(w, row.userId)!;
  const addressee = row.friendId === acceptor.id ? acceptor : userById(w, row.friendId)!;
  return toFriendship(row, requester, addressee);
}

export const acceptedEvent = (row: FriendshipRow, acceptor: UserRow): EventData<"friend.accept"> => ({
  friendship_id: row.id, user_id: row.userId, friend_id: row.friendId, status: "accepted", accepted_at: iso(row.acceptedAt!), acceptor: toUser(acceptor),
});

export const requestEvent = (row: FriendshipRow, sender: UserRow): EventData<"friend.request"> => ({
  request_id: row.id, user_id: row.userId, friend_id: row.friendId, status: "pending", requested_at: iso(row.requestedAt), sender: toUser(sender),
});

/** A new request's row: pending, from `me`. */
export const newRequest = (me: UserRow, friendId: string): FriendshipRow => ({
  id: Bun.randomUUIDv7(), userId: me.id, friendId, pairKey: pairKey(me.id, friendId), status: "pending", requestedAt: Date.now(), acceptedAt: null,
});

export function refuseSelf(me: UserRow, friendId: string) {
  if (friendId === me.id) throw invalid("friend_id", "you cannot befriend yourself");
}

/**
 * What a request meets in the pair's row: 409 when already friends or already asked;
 * "accept" when the other side asked first (this request accepts theirs, and both sides
 * hear of it); "replace" a rejected request (it may be re-sent); "new" with no row.
 */
export function requestMeets(existing: FriendshipRow | undefined, me: UserRow): "accept" | "replace" | "new" {
  if (existing?.status === "accepted") throw conflict("already friends");
  if (existing?.status === "pending") {
    if (existing.userId === me.id) throw conflict("friend request already sent");
    return "accept";
  }
  return existing ? "replace" : "new";
}

/** Sends a request; a crossing request (the other side already asked) is accepted instead. */
export function requestFriend(ctx: AppContext, me: UserRow, friendId: string): { created: boolean; friendship: Friendship } {
  refuseSelf(me, friendId);
  return ctx.events.write((w) => {
    const other = userById(w, friendId);
    if (!other) throw notFound("user");
    const existing = w.tx.select().from(friendships).where(eq(friendships.pairKey, pairKey(me.id, friendId))).get();
    const meets = requestMeets(existing, me);
    if (meets === "accept") return { created: false, friendship: accept(w, existing!, me, [existing!.userId, me.id]) };
    if (meets === "replace") w.tx.delete(friendships).where(eq(friendships.id, existing!.id)).run();
    const row = w.tx.insert(friendships).values(newRequest(me, friendId)).returning().get();
    w.emit(userTopic(friendId), "friend.request", requestEvent(row, me));
    return { created: true, friendship: toFriendship(row, me, other) };
  });
}

/** A friendship the caller is part of, else 404. */
function ownFriendship(w: Writer, me: UserRow, id: string): FriendshipRow {
  return requireOwn(w.tx.select().from(friendships).where(eq(friendships.id, id)).get(), me);
}

export function requireOwn(f: FriendshipRow | undefined, me: UserRow): FriendshipRow {
  if (!f || (f.userId !== me.id && f.friendId !== me.id)) throw notFound("friendship");
  return f;
}

/** A friendship the caller may answer (accept or reject): 404, 403 or 409 otherwise. */
export function requireAnswerable(f: FriendshipRow | undefined, me: UserRow): FriendshipRow {
  requireOwn(f, me);
  if (f!.friendId !== me.id) throw forbidden("only the addressee can answer a friend request");
  if (f!.status !== "pending") throw conflict(`the request is already ${f!.status}`);
  return f!;
}

function pendingForAddressee(w: Writer, me: UserRow, id: string): FriendshipRow {
  return requireAnswerable(w.tx.select().from(friendships).where(eq(friendships.id, id)).get(), me);
}

export function acceptFriend(ctx: AppContext, me: UserRow, id: string): Friendship {
  return ctx.events.write((w) => {
    const f = pendingForAddressee(w, me, id);
    return accept(w, f, me, [f.userId]);
  });
}

export function rejectFriend(ctx: AppContext, me: UserRow, id: string): Friendship {
  return ctx.events.write((w) => {
    const f = pendingForAddressee(w, me, id);
    const row = w.tx.update(friendships).set({ status: "rejected" }).where(eq(friendships.id, f.id)).returning().get()!;
    return toFriendship(row, userById(w, row.userId)!, me);
  });
}

/** Cancels a pending request or unfriends; the other side gets friend.remove. */
export function removeFriend(ctx: AppContext, me: UserRow, id: string): void {
  return ctx.events.write((w) => {
    const f = ownFriendship(w, me, id);
    w.tx.delete(friendships).where(eq(friendships.id, f.id)).run();
    const notice = removalNotice(f, me);
    if (notice) w.emit(notice.topic, "friend.remove", notice.data);
  });
}

/** Who hears of a removal, and what: the other side, unless the request had been rejected (answered already: nothing new). */
export function removalNotice(f: FriendshipRow, me: UserRow): { topic: string; data: EventData<"friend.remove"> } | undefined {
  if (f.status === "rejected") return undefined;
  return { topic: userTopic(f.userId === me.id ? f.friendId : f.userId), data: { friendship_id: f.id, user_id: f.userId, friend_id: f.friendId } };
}

export interface FriendshipFilter { status?: FriendshipRow["status"]; direction?: "incoming" | "outgoing" }

export function listFriendships(ctx: AppContext, me: UserRow, filter: FriendshipFilter, limit: number, cursor?: string): Page<Friendship> {
  const requester = alias(users, "requester");
  const addressee = alias(users, "addressee");
  const rows = ctx.db
    .select({ f: friendships, requester, addressee })
    .from(friendships)
    .innerJoin(requester, eq(requester.id, friendships.userId))
    .innerJoin(addressee, eq(addressee.id, friendships.friendId))
    .where(friendshipsWhere(friendships, me, filter, cursor))
    .orderBy(desc(friendships.id))
    .limit(limit + 1)
    .all();
  return friendshipsPage(rows, limit);
}

/** The friendships table's columns a listing filters on, in either dialect's schema. */
interface FriendshipColumns { id: Column; userId: Column; friendId: Column; status: Column }

/** A listing's condition: the caller's side, the status (rejected ones only when asked for), before the cursor (newest first). */
export function friendshipsWhere(t: FriendshipColumns, me: UserRow, filter: FriendshipFilter, cursor: string | undefined): SQL | undefined {
  const before = decodeCursor(cursor, "friendships", isStringCursor);
  const side =
    filter.direction === "incoming" ? eq(t.friendId, me.id)
    : filter.direction === "outgoing" ? eq(t.userId, me.id)
    : or(eq(t.userId, me.id), eq(t.friendId, me.id));
  return and(side, filter.status ? eq(t.status, filter.status) : inArray(t.status, ["pending", "accepted"]), before ? lt(t.id, before) : undefined);
}

type ListedRow = { f: FriendshipRow; requester: UserRow; addressee: UserRow };
export const friendshipsPage = (rows: ListedRow[], limit: number): Page<Friendship> =>
  pageOf("friendships", rows, limit, (r) => toFriendship(r.f, r.requester, r.addressee), (r) => r.f.id);

/** Ids of the caller's accepted friends. */
export function friendIds(db: DB | Writer["tx"], userId: string): string[] {
  return db
    .select({ userId: friendships.userId, friendId: friendships.friendId })
    .from(friendships)
    .where(and(eq(friendships.status, "accepted"), or(eq(friendships.userId, userId), eq(friendships.friendId, userId))))
    .all()
    .map((r) => (r.userId === userId ? r.friendId : r.userId));
}
