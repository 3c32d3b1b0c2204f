/**
 * Imported as a Bun macro (`with { type: "macro" }`): runs at build time and inlines the
 * SQL migrations from drizzle/ into the bundle, so the compiled executable carries them.
 */
import { readMigrationFiles } from "drizzle-orm/migrator";
import { join } from "node:path";

export function bundledMigrations() {
  return readMigrationFiles({ migrationsFolder: join(import.meta.dir, "../../drizzle") });
}
