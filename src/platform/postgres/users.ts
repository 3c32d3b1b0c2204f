/**
 * Users on PostgreSQL: the twin of src/users/service.ts (same validation, errors, events,
 * paging), its queries written for PostgreSQL.
 */
import { and, asc, eq, gt, ne, sql } from "drizzle-orm";
import type { UserStore } from "../store";
import { notFound } from "../../errors";
import { toUser } from "../../users/dto";
import { audienceTopics, directIds, profileChange, userSearch, usersPage } from "../../users/service";
import { conversations, members, users } from "./schema";
import type { PgRunner } from "./writer";
import { anyOf, pgFriendIds } from "./friends";
import { pgTouchLastActive, pgUserRow } from "./accounts";
import { pgChangeAvatar } from "./attachments";
import type { PgDeps } from "./store";
import { pairKey } from "../../friends/service";
import { CURRENT_KEY, KEY_BATCH, nameKey, type UnkeyedUser } from "../../users/name-key";
import type { SQL } from "bun";

/**
 * SQLite compares text byte by byte (code point order); PostgreSQL's text follows the
 * database's collation. So user search orders and matches under "C", as on SQLite: the
 * names are matched through their folded key (users/name-key.ts); a row without one yet
 * by its names, with ILIKE under "C" folding A–Z alone, as SQLite's LIKE does.
 */
const byteOrder = sql`${users.username} COLLATE "C"`;

/**
 * fillNameKeys on PostgreSQL: with the migrations, under their lock. A name changed since
 * the batch was read keeps the key its change wrote.
 */
export async function pgFillNameKeys(client: SQL): Promise<number> {
  let done = 0;
  for (let after = ""; ; ) {
    const rows = (await client`SELECT id, username, display_name FROM users WHERE id > ${after} AND (name_key IS NULL OR name_key NOT LIKE ${CURRENT_KEY}) ORDER BY id LIMIT ${KEY_BATCH}`) as UnkeyedUser[];
    if (rows.length === 0) return done;
    const params = rows.flatMap((r) => [r.id, r.display_name, nameKey(r.username, r.display_name)]);
    const values = rows.map((_, k) => `($${3 * k + 1}, $${3 * k + 2}, $${3 * k + 3})`).join(", ");
    done += (await client.unsafe(`UPDATE users u SET name_key = v.key FROM (VALUES ${values}) AS v(id, display_name, key) WHERE u.id = v.id AND u.display_name = v.display_name`, params)).count;
    after = rows[rows.length - 1]!.id;
  }
}

/** profileAudience on PostgreSQL: the same three reads, the same topics. */
export async function pgProfileAudience(db: PgRunner, userId: string): Promise<string[]> {
  const mine = await db
    .select({ conversationId: members.conversationId, type: conversations.type })
    .from(members)
    .innerJoin(conversations, eq(conversations.id, members.conversationId))
    .where(eq(members.userId, userId));
  const directs = directIds(mine);
  const peers = directs.length === 0 ? [] : (await db
    .select({ id: members.userId })
    .from(members)
    .where(and(anyOf(members.conversationId, directs), ne(members.userId, userId)))).map((r) => r.id);
  return audienceTopics(userId, mine, await pgFriendIds(db, userId), peers);
}

export function pgUsers(deps: PgDeps): UserStore {
  const { db } = deps;
  return {
    row: (id) => pgUserRow(db, id),
    async missing(ids) {
      if (ids.length === 0) return [];
      const rows = await db.execute<{ id: string }>(sql`SELECT x.id FROM unnest(${sql.param(ids)}::text[]) AS x(id) WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = x.id)`);
      return [...rows].map((r) => r.id);
    },
    touchLastActive: (batch) => pgTouchLastActive(db, batch),

    async get(id) {
      const row = await pgUserRow(db, id);
      if (!row) throw notFound("user");
      return toUser(row);
    },

    async search(q, limit, cursor) {
      const { after, needle } = userSearch(q, cursor);
      if (needle === null) return usersPage([], limit);
      const raw = (column: typeof users.username | typeof users.displayName) => sql`${column} COLLATE "C" ILIKE ${needle!.raw} ESCAPE '\\'`;
      const rows = await db
        .select()
        .from(users)
        .where(and(
          needle !== undefined
            ? sql`(${users.nameKey} COLLATE "C" LIKE ${needle.folded} ESCAPE '\\' OR (${users.nameKey} IS NULL AND (${raw(users.username)} OR ${raw(users.displayName)})))`
            : undefined,
          after !== undefined ? gt(byteOrder, after) : undefined,
        ))
        .orderBy(asc(byteOrder))
        .limit(limit + 1);
      return usersPage(rows, limit);
    },

    async updateProfile(userId, patch) {
      // Checked first without a transaction: bad input and no-op patches cost none.
      const current = await pgUserRow(db, userId);
      if (!profileChange(current, patch)) return current!;
      return deps.events.write(async (w) => {
        // Again on the row locked FOR UPDATE: of two patches at once, the second compares with
        // the first's result (two equal ones: one change, one user.update), as on SQLite.
        const [locked] = await w.tx.select().from(users).where(eq(users.id, userId)).for("update");
        const set = profileChange(locked, patch);
        if (!set) return locked!;
        const { nameKey: key, ...changes } = set;
        if (changes.profileImageUrl !== undefined) await pgChangeAvatar(w.tx, userId, patch.avatar_attachment_id ?? null, Date.now());
        let [row] = await w.tx.update(users).set(changes).where(eq(users.id, userId)).returning();
        // Its own statement: the rename's trigger (pg migration 0010) empties a key left as it was.
        if (row && key !== undefined) [row] = await w.tx.update(users).set({ nameKey: key }).where(eq(users.id, userId)).returning();
        if (!row) throw notFound("user");
        // One stored payload however many friends and partners hear of it.
        await w.emitMany(await pgProfileAudience(w.tx, userId), "user.update", toUser(row));
        return row;
      });
    },

    // PROTOCOL §5: themself, friends (by pair key), conversation partners; index lookups per target.
    async visibleAmong(viewer, targets) {
      if (targets.length === 0) return new Set<string>();
      const pairs = JSON.stringify(targets.map((t) => ({ id: t, k: pairKey(viewer, t) })));
      const rows = await db.execute<{ id: string }>(sql`
        SELECT t.id FROM jsonb_to_recordset(${pairs}::text::jsonb) AS t(id text, k text)
        WHERE t.id = ${viewer}
           OR EXISTS (SELECT 1 FROM friendships f WHERE f.pair_key = t.k AND f.status = 'accepted')
           OR EXISTS (SELECT 1 FROM conversation_members b JOIN conversation_members a ON a.conversation_id = b.conversation_id AND a.user_id = ${viewer}
                      WHERE b.user_id = t.id)`);
      return new Set(rows.map((r) => r.id));
    },
  };
}
