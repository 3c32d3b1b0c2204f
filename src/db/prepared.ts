/**
 * Drizzle builds and prepares a new SQLite statement for every query it runs; on hot
 * paths (every request's auth, every message) that is most of the cost. `prepared` builds
 * a query once per database, with `sql.placeholder`s, and reuses it.
 */
import type { Statement } from "bun:sqlite";
import { getTableColumns, getTableName, sql } from "drizzle-orm";
import type { SQLiteColumn, SQLiteTable } from "drizzle-orm/sqlite-core";
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

/** Column types whose stored value is what drizzle returns (no decoding on read). */
const PLAIN_COLUMNS = new Set(["SQLiteText", "SQLiteInteger", "SQLiteReal"]);

/**
 * `SELECT <every column> FROM <table> WHERE <where>` prepared once per database on bun:sqlite
 * itself, each column aliased to its drizzle key, so rows come back as the table's row
 * type. Drizzle maps every row column by column (`mapResultRow`): on the rows read by every
 * request (the caller's user row, the membership check of a send) that was a visible share of
 * the server's CPU. Only for tables whose columns need no decoding: checked when built.
 * `where` uses bun:sqlite's named parameters ($name), bound from an object without the `$`.
 */
export function rowStatement<Row>(db: DB, key: string, table: SQLiteTable, where: string): Statement<Row, [Record<string, string | number>]> {
  return prepared(db, `rows:${key}`, (d) => {
    const columns = Object.entries(getTableColumns(table)).map(([name, column]) => {
      if (!PLAIN_COLUMNS.has(column.columnType)) throw new Error(`rowStatement: ${getTableName(table)}.${column.name} (${column.columnType}) needs decoding`);
      return `"${column.name}" AS "${name}"`;
    });
    return d.$client.prepare(`SELECT ${columns.join(", ")} FROM "${getTableName(table)}" WHERE ${where}`) as Statement<Row, [Record<string, string | number>]>;
  });
}

/**
 * Runs `read` (synchronous, reads only) in one read transaction, unless one is open already.
 * Outside a transaction every statement on parley.db is a read transaction of its own (a
 * shared lock taken and released: two `fcntl`s and the WAL index, ~1 µs); a view that runs
 * several statements (a conversation list: rows, last messages, unread counts) takes the
 * lock once, and reads one snapshot.
 */
export function readSnapshot<T>(db: DB, read: () => T): T {
  const client = db.$client;
  if (client.inTransaction) return read();
  const [begin, commit] = prepared(db, "snapshot", (d) => [d.$client.prepare("BEGIN"), d.$client.prepare("COMMIT")] as const);
  begin.run();
  try {
    return read();
  } finally {
    commit.run();
  }
}
