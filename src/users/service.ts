import { and, asc, eq, gt, or, sql } from "drizzle-orm";
import type { DB } from "../db/client";
import { users, type UserRow } from "../db/schema";
import { notFound, invalid } from "../errors";
import { decodeCursor, pageOf, type Page } from "../http/paging";
import { toUser, type User } from "./dto";

export function getUserRow(db: DB, id: string): UserRow | undefined {
  return db.select().from(users).where(eq(users.id, id)).get();
}

export function getUser(db: DB, id: string): User {
  const row = getUserRow(db, id);
  if (!row) throw notFound("user");
  return toUser(row);
}

const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);
const isUsernameCursor = (v: unknown): v is string => typeof v === "string";

/** Users whose username or display name contains `q` (case-insensitive), by username. */
export function searchUsers(db: DB, q: string | undefined, limit: number, cursor: string | undefined): Page<User> {
  const after = decodeCursor(cursor, isUsernameCursor);
  const needle = q?.trim() ? `%${escapeLike(q.trim().toLowerCase())}%` : undefined;
  const rows = db
    .select()
    .from(users)
    .where(
      and(
        needle
          ? or(sql`${users.username} LIKE ${needle} ESCAPE '\\'`, sql`lower(${users.displayName}) LIKE ${needle} ESCAPE '\\'`)
          : undefined,
        after !== undefined ? gt(users.username, after) : undefined,
      ),
    )
    .orderBy(asc(users.username))
    .limit(limit + 1)
    .all();
  return pageOf(rows, limit, toUser, (r) => r.username);
}

export interface ProfilePatch { display_name?: string; profile_image_url?: string | null }

/** Updates the caller's profile. Returns the new row. */
export function updateProfile(db: DB, userId: string, patch: ProfilePatch): UserRow {
  const set: Partial<UserRow> = { updatedAt: Date.now() };
  if (patch.display_name !== undefined) {
    const name = patch.display_name.trim();
    if (!name) throw invalid("display_name", "must not be blank");
    set.displayName = name;
  }
  if (patch.profile_image_url !== undefined) set.profileImageUrl = patch.profile_image_url;
  const row = db.update(users).set(set).where(eq(users.id, userId)).returning().get();
  if (!row) throw notFound("user");
  return row;
}
