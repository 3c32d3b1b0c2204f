/**
 * Friendships on PostgreSQL: the twin of src/friends/service.ts (one row per unordered
 * pair, keyed by pair_key; same errors, events and paging), and the contact policy's
 * check (src/conversations/contact-policy.ts) for the conversations store.
 *
 * SQLite runs one writer at a time, so its service reads, decides and writes without
 * locks. Here concurrent transactions could both see no row for a pair and both insert
 * (a unique violation, a 500), or answer a request twice; so every change first locks
 * what it decides on (see each).
 */
import { and, desc, eq, or, sql } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import { alias } from "drizzle-orm/pg-core";
import type { FriendshipRow, UserRow } from "../../db/schema";
import { notFound } from "../../errors";
import { userTopic } from "../../events/log";
import {
  acceptedEvent, friendshipsPage, friendshipsWhere, newRequest, pairKey, refuseSelf, removalNotice, requestEvent, requestMeets, requireAnswerable, requireOwn,
  toFriendship, type Friendship,
} from "../../friends/service";
import { contactKeys, refuseStrangers } from "../../conversations/contact-policy";
import type { FriendStore } from "../store";
import { friendships, users } from "./schema";
import type { PgRunner, PgWriter } from "./writer";
import type { PgDeps } from "./store";

/**
 * The key space (first half of a two-key advisory lock) of friend-pair locks: a request
 * takes the lock of its pair before reading the pair's row, so two requests of one pair
 * (crossing, or the same twice) run one after the other as on SQLite.
 */
const FRIEND_PAIR_LOCK = 0x66726e64; // "frnd"

/** `column = ANY(values)`: one parameter however many values (PostgreSQL binds at most 65,535). */
export const anyOf = (column: PgColumn, values: readonly string[]) => sql`${column} = ANY(${sql.param(values)}::text[])`;

/** A user's row, locked against deletion (FOR KEY SHARE) until the change commits: a row about to reference it stays valid. */
async function userById(w: PgWriter, id: string): Promise<UserRow | undefined> {
  const [row] = await w.tx.select().from(users).where(eq(users.id, id)).for("key share");
  return row;
}

/** A friendship by id, locked FOR UPDATE: two answers to one request (accept and remove, say) run one after the other. */
async function lockedById(w: PgWriter, id: string): Promise<FriendshipRow | undefined> {
  const [row] = await w.tx.select().from(friendships).where(eq(friendships.id, id)).for("update");
  return row;
}

async function accept(w: PgWriter, f: FriendshipRow, acceptor: UserRow, notify: string[]): Promise<Friendship> {
  const [row] = await w.tx.update(friendships).set({ status: "accepted", acceptedAt: Date.now() }).where(eq(friendships.id, f.id)).returning();
  const data = acceptedEvent(row!, acceptor);
  for (const id of notify) await w.emit(userTopic(id), "friend.accept", data);
  const requester = row!.userId === acceptor.id ? acceptor : (await userById(w, row!.userId))!;
  const addressee = row!.friendId === acceptor.id ? acceptor : (await userById(w, row!.friendId))!;
  return toFriendship(row!, requester, addressee);
}

export function pgFriends(deps: PgDeps): FriendStore {
  const { db, events } = deps;
  return {
    request(me, friendId) {
      refuseSelf(me, friendId);
      return events.write(async (w) => {
        const key = pairKey(me.id, friendId);
        await w.tx.execute(sql`SELECT pg_advisory_xact_lock(${FRIEND_PAIR_LOCK}, hashtext(${key}))`);
        const other = await userById(w, friendId);
        if (!other) throw notFound("user");
        const [existing] = await w.tx.select().from(friendships).where(eq(friendships.pairKey, key)).for("update");
        const meets = requestMeets(existing, me);
        if (meets === "accept") return { created: false, friendship: await accept(w, existing!, me, [existing!.userId, me.id]) };
        if (meets === "replace") await w.tx.delete(friendships).where(eq(friendships.id, existing!.id));
        const [row] = await w.tx.insert(friendships).values(newRequest(me, friendId)).returning();
        await w.emit(userTopic(friendId), "friend.request", requestEvent(row!, me));
        return { created: true, friendship: toFriendship(row!, me, other) };
      });
    },

    accept: (me, id) =>
      events.write(async (w) => {
        const f = requireAnswerable(await lockedById(w, id), me);
        return accept(w, f, me, [f.userId]);
      }),

    reject: (me, id) =>
      events.write(async (w) => {
        const f = requireAnswerable(await lockedById(w, id), me);
        const [row] = await w.tx.update(friendships).set({ status: "rejected" }).where(eq(friendships.id, f.id)).returning();
        return toFriendship(row!, (await userById(w, row!.userId))!, me);
      }),

    remove: (me, id) =>
      events.write(async (w) => {
        const f = requireOwn(await lockedById(w, id), me);
        await w.tx.delete(friendships).where(eq(friendships.id, f.id));
        const notice = removalNotice(f, me);
        if (notice) await w.emit(notice.topic, "friend.remove", notice.data);
      }),

    async list(me, filter, limit, cursor) {
      const requester = alias(users, "requester");
      const addressee = alias(users, "addressee");
      const rows = await db
        .select({ f: friendships, requester, addressee })
        .from(friendships)
        .innerJoin(requester, eq(requester.id, friendships.userId))
        .innerJoin(addressee, eq(addressee.id, friendships.friendId))
        .where(friendshipsWhere(friendships, me, filter, cursor))
        .orderBy(desc(friendships.id)) // UUIDv7s: lowercase hex at fixed places sort alike under any collation
        .limit(limit + 1);
      return friendshipsPage(rows, limit);
    },
  };
}

/** Ids of the user's accepted friends. */
export async function pgFriendIds(db: PgRunner, userId: string): Promise<string[]> {
  const rows = await db
    .select({ userId: friendships.userId, friendId: friendships.friendId })
    .from(friendships)
    .where(and(eq(friendships.status, "accepted"), or(eq(friendships.userId, userId), eq(friendships.friendId, userId))));
  return rows.map((r) => (r.userId === userId ? r.friendId : r.userId));
}

/**
 * The contact policy (requireContacts) on PostgreSQL: 403 not_friends naming every one of
 * `userIds` the actor may not add; checks nothing under `open`. Run it in the change that
 * adds them (`runner` its transaction): the friendships found are locked FOR KEY SHARE
 * until it commits, so an unfriending cannot slip between this check and the membership
 * it allows (on SQLite the single writer orders them).
 */
export async function requireContactsPg(deps: Pick<PgDeps, "config">, runner: PgRunner, actorId: string, userIds: readonly string[]): Promise<void> {
  const keys = contactKeys(deps.config, actorId, userIds);
  if (!keys) return;
  const rows = await runner
    .select({ key: friendships.pairKey })
    .from(friendships)
    .where(and(eq(friendships.status, "accepted"), anyOf(friendships.pairKey, keys)))
    .for("key share");
  refuseStrangers(userIds, keys, new Set(rows.map((r) => r.key)));
}
