import { and, asc, eq, gt, inArray, ne, sql } from "drizzle-orm";
import type { DB } from "../db/client";
import { conversations, members, users, type UserRow } from "../db/schema";
import { notFound, invalid } from "../errors";
import { CONTROL_CHARACTERS, cleanName, sameName } from "../lib/text";
import { decodeCursor, isStringCursor, pageOf, type Page } from "../http/paging";
import { toUser, type User } from "./dto";
import { nameKey, nameKeyPatterns } from "./name-key";
import type { AppContext } from "../context";
import { rowStatement } from "../db/prepared";
import { convTopic, userTopic, type Tx } from "../events/log";
import { friendIds, pairKey } from "../friends/service";
import { changeAvatar } from "../files/rows";
import { avatarPath } from "../files/paths";

/** A display name: trimmed, 1–64 characters (counted as characters, not UTF-16 units). */
export const cleanDisplayName = (raw: string) => cleanName("display_name", raw, 64);

/**
 * Where a user's profile change is told (`user.update`): each friend's and each direct
 * partner's topic, the topic of each group they are in (their own topic where they are in no
 * group, for their other devices) — one
 * event per group rather than one per co-member, so a member of large groups does not write
 * thousands of events per change (§7.1). Someone reachable several ways hears it more than
 * once; the event is idempotent.
 */
export function profileAudience(db: DB | Tx, userId: string): string[] {
  const mine = db
    .select({ conversationId: members.conversationId, type: conversations.type })
    .from(members)
    .innerJoin(conversations, eq(conversations.id, members.conversationId))
    .where(eq(members.userId, userId))
    .all();
  const directs = directIds(mine);
  const peers = directs.length === 0 ? [] : db
    .select({ id: members.userId })
    .from(members)
    .where(and(inArray(members.conversationId, directs), ne(members.userId, userId)))
    .all()
    .map((r) => r.id);
  return audienceTopics(userId, mine, friendIds(db, userId), peers);
}

/** The user's conversations by type, as profileAudience reads them (either backend). */
export type Membership = { conversationId: string; type: "direct" | "group" };

export const directIds = (mine: Membership[]) => mine.filter((c) => c.type === "direct").map((c) => c.conversationId);

/** profileAudience's topics from what it read: friends, then direct partners, then groups. */
export function audienceTopics(userId: string, mine: Membership[], friends: string[], peers: string[]): string[] {
  const groups = mine.filter((c) => c.type === "group").map((c) => convTopic(c.conversationId));
  // The user's own devices follow every group of theirs: their own topic only without one.
  const people = new Set([...friends, ...peers]);
  if (groups.length === 0) people.add(userId);
  return [...people].map(userTopic).concat(groups);
}

/** A user's row; read by every authenticated request and WebSocket frame, so without drizzle's row mapping. */
export function getUserRow(db: DB, id: string): UserRow | undefined {
  return rowStatement<UserRow>(db, "users.byId", users, "id = $id").get({ id }) ?? undefined;
}

/**
 * `getUserRow` for the caller of every authenticated request and WebSocket frame, from
 * memory while the users table is unchanged. Outside a transaction each read of parley.db is
 * a WAL read transaction of its own, whose locks are two fcntl calls: 1.9 µs against 0.85 µs
 * inside one, and up to ~3 µs of a REST send under load (issue #17). Whether the table changed
 * is one read of a TEMP table (0.24 µs, no lock on parley.db), whose counter TEMP triggers raise
 * on every UPDATE and DELETE of a user row made on this connection, the server's only writer.
 * An operator's change made with another connection (the `sqlite3` shell deleting a user: no
 * route does) shows in `PRAGMA data_version`, which takes the read lock (1.1 µs): it is read
 * at most every EXTERNAL_CHANGES_MS, so such a change is seen within that time.
 * Inside a transaction the row is read (a change there may still roll back). Rows are frozen:
 * they are shared by the requests that read them.
 */
export function cachedUserRows(db: DB): (id: string) => UserRow | undefined {
  const client = db.$client;
  client.run("CREATE TEMP TABLE IF NOT EXISTS users_changes (n INTEGER NOT NULL)");
  if (!client.query("SELECT 1 FROM temp.users_changes").get()) client.run("INSERT INTO temp.users_changes VALUES (0)");
  for (const change of ["UPDATE", "DELETE"])
    client.run(`CREATE TEMP TRIGGER IF NOT EXISTS users_${change.toLowerCase()} AFTER ${change} ON main.users BEGIN UPDATE temp.users_changes SET n = n + 1; END`);
  const changes = client.prepare<{ n: number }, []>("SELECT n FROM temp.users_changes");
  // Changes other connections committed (checkpoints that restart the WAL count too: a cleared cache, nothing worse).
  const version = client.prepare<{ data_version: number }, []>("PRAGMA main.data_version");
  const rows = new Map<string, UserRow>();
  let seen = -1;
  let seenVersion = -1;
  let versionReadAt = -Infinity;
  return (id) => {
    if (client.inTransaction) return getUserRow(db, id);
    const n = changes.get()!.n;
    const now = performance.now();
    if (now - versionReadAt >= EXTERNAL_CHANGES_MS) {
      versionReadAt = now;
      const v = version.get()!.data_version;
      if (v !== seenVersion) rows.clear();
      seenVersion = v;
    }
    if (n !== seen) {
      rows.clear();
      seen = n;
    }
    let row = rows.get(id);
    if (!row) {
      row = getUserRow(db, id);
      if (!row) return undefined;
      if (rows.size >= 10_000) rows.clear();
      rows.set(id, Object.freeze(row));
    }
    return row;
  };
}

/** How stale a cached user row may be after another connection changed the users table. */
export const EXTERNAL_CHANGES_MS = 100;

/** Which of `ids` name no user (any more): the hub's heartbeat closes their sockets. */
export function missingUsers(db: DB, ids: string[]): string[] {
  if (ids.length === 0) return [];
  const rows = db.$client.query("SELECT value FROM json_each(?1) WHERE value NOT IN (SELECT id FROM users)").values(JSON.stringify(ids)) as [string][];
  return rows.map((r) => r[0]);
}

export function getUser(db: DB, id: string): User {
  const row = getUserRow(db, id);
  if (!row) throw notFound("user");
  return toUser(row);
}

/**
 * Users whose username or display name contains `q`, by username, case- and
 * accent-insensitively: both sides folded as search folds text (name-key.ts).
 */
export function searchUsers(db: DB, q: string | undefined, limit: number, cursor: string | undefined): Page<User> {
  const { after, needle } = userSearch(q, cursor);
  if (needle === null) return usersPage([], limit);
  const rows = db
    .select()
    .from(users)
    .where(
      and(
        needle
          ? sql`(${users.nameKey} LIKE ${needle.folded} ESCAPE '\\' OR (${users.nameKey} IS NULL AND (${users.username} LIKE ${needle.raw} ESCAPE '\\' OR ${users.displayName} LIKE ${needle.raw} ESCAPE '\\')))`
          : undefined,
        after !== undefined ? gt(users.username, after) : undefined,
      ),
    )
    .orderBy(asc(users.username))
    .limit(limit + 1)
    .all();
  return usersPage(rows, limit);
}

/** A user search's parameters, checked: where the page starts, and the LIKE patterns (undefined: everyone; null: no one). */
export function userSearch(q: string | undefined, cursor: string | undefined): { after: string | undefined; needle: ReturnType<typeof nameKeyPatterns> | undefined } {
  const after = decodeCursor(cursor, "users", isStringCursor);
  // SQLite would end the pattern at a NUL and match everyone (PostgreSQL refuses a NUL).
  const text = q?.trim();
  if (text && CONTROL_CHARACTERS.test(text)) throw invalid("q", "must not contain control characters");
  return { after, needle: text ? nameKeyPatterns(text) : undefined };
}

/** A page of users by username (rows: one more than `limit` when there is a next page). */
export const usersPage = (rows: UserRow[], limit: number): Page<User> => pageOf("users", rows, limit, toUser, (r) => r.username);

export interface ProfilePatch { display_name?: string; profile_image_url?: string | null; avatar_attachment_id?: string }

/** Updates the caller's profile; `user.update` goes to its `profileAudience`. */
export function updateProfile(ctx: AppContext, userId: string, patch: ProfilePatch): UserRow {
  const current = getUserRow(ctx.db, userId);
  const set = profileChange(current, patch);
  if (!set) return current!;
  const { nameKey: key, ...changes } = set;
  return ctx.events.write((w) => {
    // The picture changed: an upload made it is taken (422 unless usable), the one it replaces let go.
    if (changes.profileImageUrl !== undefined) changeAvatar(w.tx, userId, patch.avatar_attachment_id ?? null, Date.now());
    let row = w.tx.update(users).set(changes).where(eq(users.id, userId)).returning().get();
    // Its own statement: the rename's trigger (migration 0019) empties a key left as it was.
    if (row && key !== undefined) row = w.tx.update(users).set({ nameKey: key }).where(eq(users.id, userId)).returning().get();
    if (!row) throw notFound("user");
    // One stored payload however many friends and partners hear of it.
    w.emitMany(profileAudience(w.tx, userId), "user.update", toUser(row));
    return row;
  });
}

/** What a patch changes in the current row (404 without one); undefined when nothing changes, and then nothing is written and nobody told. */
export function profileChange(current: UserRow | undefined, patch: ProfilePatch): Partial<UserRow> | undefined {
  if (!current) throw notFound("user");
  const set: Partial<UserRow> = { updatedAt: Date.now() };
  // The name it has already (a whole profile sent again for a new picture) is not checked again:
  // one stored before a rule that now refuses it would have stopped every save of the profile.
  if (patch.display_name !== undefined && !sameName(patch.display_name, current.displayName)) {
    set.displayName = cleanDisplayName(patch.display_name);
    set.nameKey = nameKey(current.username, set.displayName);
  }
  if (patch.avatar_attachment_id !== undefined && patch.profile_image_url !== undefined) throw invalid("avatar_attachment_id", "not with profile_image_url: one picture at a time");
  if (patch.profile_image_url !== undefined) set.profileImageUrl = patch.profile_image_url;
  if (patch.avatar_attachment_id !== undefined) set.profileImageUrl = avatarPath(patch.avatar_attachment_id);
  // The picture it has already (a whole profile sent again with a new name): not a change of picture.
  if (set.profileImageUrl === current.profileImageUrl) delete set.profileImageUrl;
  if ((set.displayName ?? current.displayName) === current.displayName && set.profileImageUrl === undefined) return undefined;
  return set;
}

/**
 * Which of `targets` `viewer` may see the presence of (PROTOCOL §5: themself, friends,
 * conversation partners), with index lookups per target: never the viewer's whole circle.
 */
export function visibleAmong(db: DB, viewer: string, targets: string[]): Set<string> {
  const rows = db.$client
    .query(
      `SELECT json_extract(j.value, '$[0]') AS id FROM json_each(?2) j
       WHERE json_extract(j.value, '$[0]') = ?1
          OR EXISTS (SELECT 1 FROM friendships f WHERE f.pair_key = json_extract(j.value, '$[1]') AND f.status = 'accepted')
          OR EXISTS (SELECT 1 FROM conversation_members b JOIN conversation_members a ON a.conversation_id = b.conversation_id AND a.user_id = ?1
                     WHERE b.user_id = json_extract(j.value, '$[0]'))`,
    )
    .all(viewer, JSON.stringify(targets.map((t) => [t, pairKey(viewer, t)]))) as { id: string }[];
  return new Set(rows.map((r) => r.id));
}

/** Whether `viewer` may see `target`'s presence. */
export const canSeePresence = (db: DB, viewer: string, target: string) => visibleAmong(db, viewer, [target]).has(target);
