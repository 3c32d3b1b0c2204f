/**
 * Imported as a Bun macro: inlines drizzle/pg (the PostgreSQL migrations) into the bundle
 * at build time, as src/db/migrations.ts does for SQLite's.
 */
import { readMigrationFiles } from "drizzle-orm/migrator";
import { join } from "node:path";

export function bundledPgMigrations() {
  return readMigrationFiles({ migrationsFolder: join(import.meta.dir, "../../../drizzle/pg") });
}
