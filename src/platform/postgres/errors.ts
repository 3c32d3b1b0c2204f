/**
 * PostgreSQL errors as the store needs them. Drizzle wraps the driver's error as `cause`.
 * PostgreSQL being unreachable is not a bug of ours: a request that needed it answers 503
 * `unavailable` with Retry-After (PROTOCOL §12), and the client tries again.
 */
import { AppError } from "../../errors";

/** The driver's error inside `e`, however deep drizzle wrapped it. */
function* causes(e: unknown): Generator<{ code?: unknown; errno?: unknown; constraint?: unknown }> {
  for (let err = e, depth = 0; err && typeof err === "object" && depth < 5; err = (err as { cause?: unknown }).cause, depth++) yield err as never;
}

/** A unique index refused the row (SQLSTATE 23505); `constraint` narrows it to one index. */
export function isUniqueViolation(e: unknown, constraint?: string): boolean {
  for (const err of causes(e)) if (err.errno === "23505" && (constraint === undefined || err.constraint === constraint)) return true;
  return false;
}

/** How long a client should wait before retrying. */
const RETRY_AFTER_MS = 1000;

/** Bun.sql's codes for a connection that could not be made or was lost. */
const CONNECTION_CODES = new Set([
  "ERR_POSTGRES_CONNECTION_CLOSED",
  "ERR_POSTGRES_CONNECTION_FAILED",
  "ERR_POSTGRES_CONNECTION_REFUSED",
  "ERR_POSTGRES_CONNECTION_TIMEOUT",
  "ERR_POSTGRES_IDLE_TIMEOUT",
  "ERR_POSTGRES_LIFETIME_TIMEOUT",
]);

/**
 * SQLSTATEs of a server that is going away or not taking connections: class 08
 * (connection exception), 57P01–57P03 (shutdown, crash, starting up), 53300 (too many
 * connections).
 */
const unavailableState = (state: string) => state.startsWith("08") || /^57P0[123]$/.test(state) || state === "53300";

/** Whether `e` (or what it wraps) says PostgreSQL is unreachable. */
export function isPgUnavailable(e: unknown): boolean {
  for (const { code, errno } of causes(e)) {
    if (typeof code === "string" && CONNECTION_CODES.has(code)) return true;
    if (code === "ERR_POSTGRES_SERVER_ERROR" && typeof errno === "string" && unavailableState(errno)) return true;
  }
  return false;
}

/**
 * Whether `e` (or what it wraps) is PostgreSQL's disk_full (SQLSTATE 53100): a table or
 * index could not grow. Nothing was written; the client gets 507 storage_full, as on SQLite.
 */
export function isPgDiskFull(e: unknown): boolean {
  for (const { code, errno } of causes(e)) if (code === "ERR_POSTGRES_SERVER_ERROR" && errno === "53100") return true;
  return false;
}

/**
 * Text PostgreSQL refuses: U+0000 in a text parameter (22021, "invalid byte sequence for
 * encoding UTF8: 0x00") or in JSON cast to text (22P05). SQLite stores and compares it; here
 * such a request (an id, a cursor, a message) is the client's mistake, 400 bad_request, not a 500.
 */
export function pgRefusedText(e: unknown): AppError | null {
  for (const { code, errno } of causes(e))
    if (code === "ERR_POSTGRES_SERVER_ERROR" && (errno === "22021" || errno === "22P05"))
      return new AppError("bad_request", "the request holds U+0000 (NUL), which cannot be stored or looked up");
  return null;
}

/** `e` as the client's error when it means PostgreSQL is unreachable; null otherwise. */
export const pgUnavailable = (e: unknown): AppError | null =>
  // The driver's error stays as `cause`: the operator's log (and a node refusing to start) names it; the client's answer does not.
  isPgUnavailable(e) ? Object.assign(new AppError("unavailable", "the database is unreachable; try again shortly", undefined, RETRY_AFTER_MS), { cause: e }) : null;

/** What went wrong, innermost cause included (for a node that cannot start). */
export function describeFailure(e: unknown): string {
  const messages: string[] = [];
  for (const err of causes(e)) {
    const m = (err as { message?: unknown }).message;
    if (typeof m === "string" && m && !messages.includes(m)) messages.push(m);
  }
  return messages.join(": ") || String(e);
}
