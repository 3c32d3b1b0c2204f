/**
 * PostgreSQL for cluster mode: Bun's built-in client (Bun.sql) under drizzle's bun-sql
 * driver, and the embedded migrations.
 */
import { SQL } from "bun";
import { drizzle, type BunSQLDatabase } from "drizzle-orm/bun-sql";
import type { MigrationMeta } from "drizzle-orm/migrator";
import { bundledPgMigrations } from "./migrations" with { type: "macro" };
import * as schema from "./schema";
import { refoldSearchTexts } from "./search";
import { pgFillNameKeys } from "./users";

export type PgDB = BunSQLDatabase<typeof schema> & { $client: SQL };

const MIGRATIONS: MigrationMeta[] = bundledPgMigrations() as MigrationMeta[];

/** Any constant: the key of the advisory lock that lets one node at a time migrate. */
const MIGRATION_LOCK = 0x7061726c; // "parl"

export function openPostgres(url: string, max = 20): PgDB {
  const client = new SQL({ url, max, idleTimeout: 30, connectionTimeout: 10 });
  return drizzle({ client, schema }) as PgDB;
}

/**
 * Applies pending migrations with drizzle's PostgreSQL migrator (its bookkeeping is what
 * `drizzle-kit migrate` writes, in schema `drizzle`). Nodes of a cluster start together:
 * a session advisory lock on one reserved connection lets one migrate while the others
 * wait, then find nothing left to do; so are search texts folded by an earlier fold()
 * brought up to date. Returns how many migrations were applied.
 */
export async function migratePostgres(db: PgDB): Promise<number> {
  const conn = await db.$client.reserve();
  try {
    await conn`SELECT pg_advisory_lock(${MIGRATION_LOCK})`;
    const before = await appliedCount(conn);
    const local = drizzle({ client: conn as unknown as SQL, schema }) as unknown as {
      dialect: { migrate(m: MigrationMeta[], s: unknown, c: object): Promise<void> };
      session: unknown;
    };
    await local.dialect.migrate(MIGRATIONS, local.session, { migrationsFolder: "" });
    await refoldSearchTexts(conn);
    await pgFillNameKeys(conn);
    return (await appliedCount(conn)) - before;
  } finally {
    await conn`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`.catch(() => {});
    conn.release();
  }
}

async function appliedCount(conn: SQL): Promise<number> {
  const [row] = await conn`SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS present`;
  if (!row.present) return 0;
  const [count] = await conn`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`;
  return count.n;
}
