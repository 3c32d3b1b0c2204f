import { Database } from "bun:sqlite";
import { existsSync, statSync } from "node:fs";
import { storageFullCode } from "./storage";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import * as schema from "./schema";

export type DB = BunSQLiteDatabase<typeof schema> & { $client: Database };

/**
 * Opens (creating if missing) the SQLite file with the pragmas a busy chat server wants,
 * once it is known to be Parley's or new (refuseForeign).
 */
export function openDatabase(file: string): DB {
  refuseForeign(file);
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

/**
 * Before anything writes to it (WAL mode, migrations): a file that is no SQLite database is
 * refused naming the file (SQLite's own "file is not a database" names none), and so is
 * another program's database, with tables but none of Parley's migrations, which the
 * migrations would otherwise change. A new or empty file is Parley's to make.
 */
function refuseForeign(file: string) {
  if (!existsSync(file) || statSync(file).size === 0) return;
  let tables: string[];
  try {
    const probe = new Database(file, { strict: true });
    try {
      probe.run("PRAGMA busy_timeout = 5000"); // a server's recovery of the WAL may hold it a moment
      tables = (probe.query("SELECT name FROM sqlite_master WHERE type = 'table'").values() as [string][]).map((r) => r[0]);
    } finally {
      probe.close();
    }
  } catch (e) {
    if (storageFullCode(e)) throw e;
    throw new Error(`cannot use ${file}: ${e instanceof Error ? e.message : e}`);
  }
  if (tables.length > 0 && !tables.includes("__drizzle_migrations"))
    throw new Error(`${file} is not a Parley database (it holds another program's tables: ${tables.slice(0, 3).join(", ")}${tables.length > 3 ? ", …" : ""}); move it away or choose another DATA_DIR`);
}

/**
 * For the server's connection, once migrations have run: temporary files in memory, for
 * the savepoints' undo records (the sub-journal) above all. SQLite moves a sub-journal to a
 * temp file once one savepoint has journalled 64 KiB (16 pages), and from then on, until
 * the commit, every page a savepoint changes costs two writes to that file. A group commit
 * of thousands of sends (a server at capacity, when frames queue up) almost surely spills:
 * its writes then cost ~36 µs a send instead of ~12, making the overload worse
 * (`test/bench/send-writes.ts --batch=10000`). Not set at open: sorts would then never
 * spill to disk either, and a migration's index over a large table is sorted whole.
 * Changing temp_store drops TEMP tables and triggers, so this comes before any are made.
 */
export function keepTempInMemory(db: DB) {
  db.$client.run("PRAGMA temp_store = MEMORY");
}
