import type { MigrationMeta } from "drizzle-orm/migrator";
import { bundledMigrations } from "./migrations" with { type: "macro" };
import type { DB } from "./client";
import { fillNameKeys } from "../users/name-key";

type Session = { run(query: unknown): unknown };

/** The migrations this build carries (inlined at build time). */
const MIGRATIONS: MigrationMeta[] = bundledMigrations() as MigrationMeta[];

/**
 * Applies pending migrations with drizzle's own SQLite migrator, so the
 * `__drizzle_migrations` bookkeeping is exactly what `drizzle-kit migrate` writes.
 * Returns how many were applied.
 */
export function migrate(db: DB): number {
  const before = appliedCount(db);
  const internal = db as unknown as { dialect: { migrate(m: MigrationMeta[], s: unknown, c: object): void }; session: Session };
  // drizzle answers a failed migration with ROLLBACK, which fails in turn when SQLite has
  // already rolled the transaction back itself (it does on a full disk); its "Failed to run
  // the query 'ROLLBACK'" would hide the cause. The first failure is what gets thrown.
  let first: unknown;
  const base = internal.session;
  const session: Session = Object.create(base, {
    run: {
      value(this: Session, query: unknown) {
        try {
          return base.run.call(this, query);
        } catch (e) {
          first ??= e;
          throw e;
        }
      },
    },
  });
  try {
    internal.dialect.migrate(MIGRATIONS, session, { migrationsFolder: "" });
  } catch (e) {
    throw first ?? e;
  }
  fillNameKeys(db);
  return appliedCount(db) - before;
}

function appliedCount(db: DB): number {
  const exists = db.$client.query("SELECT 1 FROM sqlite_master WHERE name = '__drizzle_migrations'").get();
  if (!exists) return 0;
  return (db.$client.query("SELECT count(*) AS n FROM __drizzle_migrations").get() as { n: number }).n;
}
