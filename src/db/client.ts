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
  // Checkpoints are the only fsyncs with synchronous=NORMAL in WAL mode. Short-lived users
  // (migrate, backup) checkpoint every ~40 MB of WAL instead of every 4 MB; the server moves
  // them off the event loop altogether (Checkpointer). The WAL is truncated back after one.
  sqlite.run("PRAGMA wal_autocheckpoint = 10000");
  sqlite.run("PRAGMA journal_size_limit = 67108864");
  sqlite.run("PRAGMA cache_size = -32768");
  return drizzle({ client: sqlite, schema });
}
