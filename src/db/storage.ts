/**
 * A full disk (PROTOCOL §7.4): writes answer 507 storage_full, never 500, and the server
 * starts again once space returns. What a full disk throws, as checked on a tmpfs here:
 * bun:sqlite's SQLITE_FULL on a write or its COMMIT (drizzle wraps it, as the `cause` of a
 * "Failed to run the query" error), SQLITE_IOERR_SHMSIZE when the WAL index cannot grow
 * (opening a database on a full disk), and ENOSPC/EDQUOT from plain file writes. In
 * cluster mode, PostgreSQL's disk_full (SQLSTATE 53100) too.
 */
import { isPgDiskFull, pgRefusedText, pgUnavailable } from "../platform/postgres/errors";
import { AppError } from "../errors";
import { statfsSync } from "node:fs";

const FULL_CODES = new Set(["SQLITE_FULL", "SQLITE_IOERR_SHMSIZE", "ENOSPC", "EDQUOT"]);

/** The code by which `e`, or an error it wraps, says that the disk (or the user's quota) is full; else null. */
export function storageFullCode(e: unknown): string | null {
  for (let x = e, depth = 0; typeof x === "object" && x !== null && depth < 5; x = (x as { cause?: unknown }).cause, depth++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === "string" && FULL_CODES.has(code)) return code;
  }
  return isPgDiskFull(e) ? "53100" : null;
}

export const isStorageFull = (e: unknown) => storageFullCode(e) !== null;

export const storageFull = () => new AppError("storage_full", "the server's disk is full: nothing was written; try again later");

/**
 * What a service threw, as the error its client gets: AppErrors as they are, a full disk as
 * storage_full, PostgreSQL unreachable (cluster mode) as unavailable, text it cannot take
 * (U+0000) as bad_request; anything else null (a bug).
 */
export const asAppError = (e: unknown): AppError | null =>
  e instanceof AppError ? e : isStorageFull(e) ? storageFull() : (pgUnavailable(e) ?? pgRefusedText(e));

/** Below this much free space on DATA_DIR's file system, the server does not start. */
export const MIN_FREE_BYTES = 1024 * 1024;

/**
 * Start-up check: a server on a full disk should say so and stop, not start and refuse
 * every write. Opening the database is not enough of a test: a database left by a killed
 * server still has its WAL and WAL index, opens on a full disk, and can even commit a few
 * times into the WAL's old space.
 */
export function checkFreeSpace(dir: string) {
  const { bavail, bsize } = statfsSync(dir);
  const free = bavail * bsize;
  if (free < MIN_FREE_BYTES)
    throw Object.assign(new Error(`${Math.floor(free / 1024)} KiB free in ${dir}, ${MIN_FREE_BYTES / 1024} KiB needed`), { code: "ENOSPC" });
}
