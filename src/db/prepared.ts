/**
 * Drizzle builds and prepares a new SQLite statement for every query it runs; on hot
 * paths (every request's auth, every message) that is most of the cost. `prepared` builds
 * a query once per database, with `sql.placeholder`s, and reuses it.
 */
import { sql } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import type { DB } from "./client";

const cache = new WeakMap<DB, Map<string, unknown>>();

export function prepared<T>(db: DB, key: string, build: (db: DB) => T): T {
  let mine = cache.get(db);
  if (!mine) cache.set(db, (mine = new Map()));
  let stmt = mine.get(key) as T | undefined;
  if (stmt === undefined) mine.set(key, (stmt = build(db)));
  return stmt;
}

/** `column IN (the ids of a JSON array parameter)`: one prepared statement for any number of ids. */
export const inJsonArray = (column: SQLiteColumn, name: string) => sql`${column} IN (SELECT value FROM json_each(${sql.placeholder(name)}))`;
