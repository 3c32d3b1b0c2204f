/**
 * Friendships (PROTOCOL §3.2). One row per unordered pair; see the schema.
 */
import { and, desc, eq, inArray, lt, or } from "drizzle-orm";
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

export const pairKey = (a: string, b: string) => (a < b ? `${a}|${b}` : `${b}|${a}`);

export type { Friendship } from "./model";

const toFriendship = (f: FriendshipRow, requester: UserRow, addressee: UserRow): Friendship => ({
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
  const data = { friendship_id: row.id, user_id: row.userId, friend_id: row.friendId, status: "accepted" as const, accepted_at: iso(row.acceptedAt!), acceptor: toUser(acceptor) };
  for (const id of notify) w.emit(userTopic(id), "friend.accept", data);
  const requester = row.userId === acceptor.id ? acceptor : userById(w, row.userId)!;
  const addressee = row.friendId === acceptor.id ? acceptor : userById(w, row.friendId)!;
  return toFriendship(row, requester, addressee);
}

/** Sends a request; a crossing request (the other side already asked) is accepted instead. */
export function requestFriend(ctx: AppContext, me: UserRow, friendId: string): { created: boolean; friendship: Friendship } {
  if (friendId === me.id) throw invalid("friend_id", "you cannot befriend yourself");
  return ctx.events.write((w) => {
    const other = userById(w, friendId);
    if (!other) throw notFound("user");
    const existing = w.tx.select().from(friendships).where(eq(friendships.pairKey, pairKey(me.id, friendId))).get();
    if (existing?.status === "accepted") throw conflict("already friends");
    if (existing?.status === "pending") {
      if (existing.userId === me.id) throw conflict("friend request already sent");
      // They asked first: this request accepts theirs, and both sides hear of it.
      return { created: false, friendship: accept(w, existing, me, [existing.userId, me.id]) };
    }
    if (existing) w.tx.delete(friendships).where(eq(friendships.id, existing.id)).run(); // a rejected request may be re-sent
    const row = w.tx
      .insert(friendships)
      .values({ id: Bun.randomUUIDv7(), userId: me.id, friendId, pairKey: pairKey(me.id, friendId), status: "pending", requestedAt: Date.now(), acceptedAt: null })
      .returning()
      .get();
    w.emit(userTopic(friendId), "friend.request", {
      request_id: row.id, user_id: row.userId, friend_id: row.friendId, status: "pending", requested_at: iso(row.requestedAt), sender: toUser(me),
    });
    return { created: true, friendship: toFriendship(row, me, other) };
  });
}

/** A friendship the caller is part of, else 404. */
function ownFriendship(w: Writer, me: UserRow, id: string): FriendshipRow {
  const f = w.tx.select().from(friendships).where(eq(friendships.id, id)).get();
  if (!f || (f.userId !== me.id && f.friendId !== me.id)) throw notFound("friendship");
  return f;
}

function pendingForAddressee(w: Writer, me: UserRow, id: string): FriendshipRow {
  const f = ownFriendship(w, me, id);
  if (f.friendId !== me.id) throw forbidden("only the addressee can answer a friend request");
  if (f.status !== "pending") throw conflict(`the request is already ${f.status}`);
  return f;
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
    // A rejected request was already answered; removing it tells nobody anything new.
    if (f.status !== "rejected") {
      const other = f.userId === me.id ? f.friendId : f.userId;
      w.emit(userTopic(other), "friend.remove", { friendship_id: f.id, user_id: f.userId, friend_id: f.friendId });
    }
  });
}

export interface FriendshipFilter { status?: FriendshipRow["status"]; direction?: "incoming" | "outgoing" }

export function listFriendships(ctx: AppContext, me: UserRow, filter: FriendshipFilter, limit: number, cursor?: string): Page<Friendship> {
  const before = decodeCursor(cursor, "friendships", isStringCursor);
  const requester = alias(users, "requester");
  const addressee = alias(users, "addressee");
  const side =
    filter.direction === "incoming" ? eq(friendships.friendId, me.id)
    : filter.direction === "outgoing" ? eq(friendships.userId, me.id)
    : or(eq(friendships.userId, me.id), eq(friendships.friendId, me.id));
  const rows = ctx.db
    .select({ f: friendships, requester, addressee })
    .from(friendships)
    .innerJoin(requester, eq(requester.id, friendships.userId))
    .innerJoin(addressee, eq(addressee.id, friendships.friendId))
    .where(and(side, filter.status ? eq(friendships.status, filter.status) : inArray(friendships.status, ["pending", "accepted"]), before ? lt(friendships.id, before) : undefined))
    .orderBy(desc(friendships.id))
    .limit(limit + 1)
    .all();
  return pageOf("friendships", rows, limit, (r) => toFriendship(r.f, r.requester, r.addressee), (r) => r.f.id);
}

/** Ids of the caller's accepted friends. */
export function friendIds(db: DB | Writer["tx"], userId: string): string[] {
  return db
    .select({ userId: friendships.userId, friendId: friendships.friendId })
    .from(friendships)
    .where(and(eq(friendships.status, "accepted"), or(eq(friendships.userId, userId), eq(friendships.friendId, userId))))
    .all()
    .map((r) => (r.userId === userId ? r.friendId : r.userId));
}
