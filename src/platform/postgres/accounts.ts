/** Accounts and the caller's row on PostgreSQL (src/auth/service.ts, users/service.ts getUserRow). */
import { eq, sql } from "drizzle-orm";
import type { AccountRows } from "../../auth/service";
import type { UserRow } from "../../db/schema";
import { conflict } from "../../errors";
import type { PgRunner } from "./writer";
import { users } from "./schema";
import { isUniqueViolation } from "./errors";

export const pgAccountRows = (db: PgRunner): AccountRows => ({
  byUsername: async (username) => (await db.select().from(users).where(eq(users.username, username)).limit(1))[0],
  async insert(row) {
    try {
      return (await db.insert(users).values(row).returning())[0]!;
    } catch (e) {
      // Two registrations of one name racing past the check: the unique index decides.
      if (isUniqueViolation(e)) throw conflict("username is taken");
      throw e;
    }
  },
});

/** The row of a user (every request's caller); undefined when deleted. */
export async function pgUserRow(db: PgRunner, id: string): Promise<UserRow | undefined> {
  return (await db.select().from(users).where(eq(users.id, id)).limit(1))[0];
}

/** Users' last activity, a batch in one statement (realtime/last-active.ts). */
export async function pgTouchLastActive(db: PgRunner, batch: Map<string, number>): Promise<void> {
  const ids = [...batch.keys()];
  const times = ids.map((id) => batch.get(id)!);
  // sql.param: an array as one parameter (drizzle spreads a bare one into a list of them).
  await db.execute(sql`UPDATE users SET last_active_at = b.at FROM unnest(${sql.param(ids)}::text[], ${sql.param(times)}::bigint[]) AS b(id, at) WHERE users.id = b.id`);
}
