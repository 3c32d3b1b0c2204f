/**
 * One server per DATA_DIR (single mode). Two servers on one parley.db would each deliver
 * only the events written through them: a client of one silently misses what was sent
 * through the other, and typing, presence and rate limits would split too. The lock is an
 * exclusive SQLite lock on DATA_DIR/parley.lock (an empty database, never written), held
 * by an open transaction for the server's life: the system drops it however the process
 * ends (kill -9 included), so a stale lock file stops nobody. `parley backup` and `migrate`
 * do not take it (a backup is made while the server runs). Cluster nodes may share a
 * DATA_DIR (for its files/), so they do not take it either.
 */
import { Database } from "bun:sqlite";
import { join, resolve } from "node:path";
import { storageFullCode } from "./storage";

export interface DataDirLock {
  release(): void;
}

export function lockDataDir(dataDir: string): DataDirLock {
  const file = join(dataDir, "parley.lock");
  const db = new Database(file, { create: true });
  try {
    db.run("PRAGMA busy_timeout = 0");
    db.run("BEGIN EXCLUSIVE");
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code === "SQLITE_BUSY")
      throw new Error(`DATA_DIR ${resolve(dataDir)} is in use by another Parley server (it holds ${file}); one DATA_DIR serves one server`);
    if (storageFullCode(e)) throw e; // said as every full disk is
    throw new Error(`cannot lock ${file}: ${e instanceof Error ? e.message : e}`);
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      db.run("ROLLBACK");
      db.close();
    },
  };
}
