/**
 * `parley backup <file>` covers attachments: next to the database copy it writes
 * `<file>.files/`, laid out like `DATA_DIR/files`, holding every blob the copy's
 * attachments name. Blobs never change once written (their name is their hash), so a
 * hard link is a complete copy at no cost; across file systems they are copied. Restoring
 * is copying both back (README). With STORAGE=s3 the blobs stay in the bucket, which is
 * backed up with the store's own tools.
 */
import { Database } from "bun:sqlite";
import { copyFileSync, existsSync, linkSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Config } from "../config";
import { blobPath } from "./local";
import { filesDir } from "./open-store";

export const backupFilesDir = (dbCopy: string) => `${dbCopy}.files`;

/** Copies the blobs the database copy names; returns how many, and how many were already gone. */
export function backupFiles(config: Config, dbCopy: string): { dir: string; copied: number; missing: number } | null {
  if (config.storage.kind !== "local") return null;
  // The source only by its paths: a LocalStore opened on it clears its files/.tmp (a dead
  // process's leftovers), which under a running server are its uploads in progress.
  const source = filesDir(config.dataDir);
  const target = backupFilesDir(dbCopy);
  mkdirSync(target, { recursive: true, mode: 0o700 }); // there, if empty, for the restore's copy (README)
  const db = new Database(dbCopy, { readonly: true });
  const keys = db.query("SELECT storage_key FROM attachments UNION SELECT thumbnail_key FROM attachments WHERE thumbnail_key IS NOT NULL").values() as [string][];
  db.close();
  let copied = 0;
  let missing = 0;
  for (const [key] of keys) {
    const from = blobPath(source, key);
    const to = blobPath(target, key);
    // Swept since the copy was taken (an orphan past its TTL): the restored sweep drops its row.
    if (!existsSync(from)) {
      missing++;
      continue;
    }
    mkdirSync(dirname(to), { recursive: true, mode: 0o700 }); // for the server's user alone, as DATA_DIR
    try {
      linkSync(from, to);
    } catch {
      copyFileSync(from, to);
    }
    copied++;
  }
  return { dir: join(backupFilesDir(dbCopy)), copied, missing };
}
