import { Database } from "bun:sqlite";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import * as schema from "./schema";

export type DB = BunSQLiteDatabase<typeof schema> & { $client: Database };

/** Opens (creating if missing) the SQLite file with the pragmas a busy chat server wants. */
export function openDatabase(file: string): DB {
  const sqlite = new Database(file, { create: true, strict: true });
  sqlite.run("PRAGMA journal_mode = WAL");
  sqlite.run("PRAGMA synchronous = NORMAL");
  sqlite.run("PRAGMA foreign_keys = ON");
  sqlite.run("PRAGMA busy_timeout = 5000");
  return drizzle({ client: sqlite, schema });
}
