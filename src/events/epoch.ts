/**
 * The event log's epoch (PROTOCOL §7.5): a random name for one timeline of seqs, kept in
 * the `meta` table (migration 0010 gives every database one). A seq means something only
 * together with its epoch: a server restored from a backup numbers new events from the
 * backup's position again, so `parley backup` stamps a new epoch into the copy, and a
 * client that resumes with the old one is told to start over (`sync.reset`, `410`)
 * instead of silently mixing two timelines.
 */
import type { Database } from "bun:sqlite";
import { AppError } from "../errors";

/** What an epoch looks like on the wire: this server makes 32 hex digits; clients treat it as opaque. */
const EPOCH_SHAPE = /^[\w-]{1,64}$/;

export function readEpoch(sqlite: Database): string {
  const row = sqlite.query("SELECT value FROM meta WHERE key = 'epoch'").all()[0] as { value: string } | undefined;
  if (!row) throw new Error("the database has no event-log epoch: migrations were not applied");
  return row.value;
}

/** A database without the event log's `meta` table: not Parley's, or its migrations were not applied. */
export class NoEpochError extends Error {
  constructor(where: string) {
    super(`${where} has no event-log epoch (no meta table): not a Parley database, or its migrations were not applied (parley migrate)`);
  }
}

/** Gives a database (a fresh backup copy, or one restored: `parley new-epoch`) a new epoch; returns it. */
export function stampNewEpoch(sqlite: Database, where = "the database"): string {
  if (!sqlite.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get()) throw new NoEpochError(where);
  sqlite.run("INSERT INTO meta (key, value) VALUES ('epoch', lower(hex(randomblob(16)))) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  return readEpoch(sqlite);
}

/** An `epoch` query parameter: undefined when absent or empty, 400 when it cannot be an epoch. */
export function parseEpoch(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === "") return undefined;
  if (!EPOCH_SHAPE.test(raw)) throw new AppError("bad_request", "epoch: not an epoch (as received in connect, sync.* or GET /api/events)");
  return raw;
}
