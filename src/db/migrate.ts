import type { MigrationMeta } from "drizzle-orm/migrator";
import { bundledMigrations } from "./migrations" with { type: "macro" };
import type { DB } from "./client";

/** The migrations this build carries (inlined at build time). */
const MIGRATIONS: MigrationMeta[] = bundledMigrations() as MigrationMeta[];

/**
 * Applies pending migrations with drizzle's own SQLite migrator, so the
 * `__drizzle_migrations` bookkeeping is exactly what `drizzle-kit migrate` writes.
 * Returns how many were applied.
 */
export function migrate(db: DB): number {
  const before = appliedCount(db);
  const internal = db as unknown as { dialect: { migrate(m: MigrationMeta[], s: unknown, c: object): void }; session: unknown };
  internal.dialect.migrate(MIGRATIONS, internal.session, { migrationsFolder: "" });
  return appliedCount(db) - before;
}

function appliedCount(db: DB): number {
  const exists = db.$client.query("SELECT 1 FROM sqlite_master WHERE name = '__drizzle_migrations'").get();
  if (!exists) return 0;
  return (db.$client.query("SELECT count(*) AS n FROM __drizzle_migrations").get() as { n: number }).n;
}
