/**
 * List conventions of PROTOCOL §2: `?limit=` 1–100 (default 50), opaque `?cursor=`
 * and `{items, next_cursor}` responses.
 */
import { t } from "elysia";
import { AppError, invalid } from "../errors";

/** `?limit=`: a string to the server (it answers `limit=abc` itself: 400); a number to a client. */
export const LIMIT = t.Optional(t.String({ description: "1–100, default 50", documented: { type: "integer", minimum: 1, maximum: 100, default: 50 } }));

export const PageQuery = t.Object({
  limit: LIMIT,
  cursor: t.Optional(t.String({ description: "next_cursor of the previous page" })),
});

export interface Page<T> { items: T[]; next_cursor: string | null }

/** Parses a `limit` string: 400 when it is not a number, 422 when out of range. */
export function parseLimit(raw: string | undefined, fallback = 50, max = 100): number {
  if (raw === undefined || raw === "") return fallback;
  const n = /^-?\d+$/.test(raw) ? Number(raw) : NaN;
  if (Number.isNaN(n)) throw new AppError("bad_request", "limit: not a whole number");
  if (n < 1 || n > max) throw invalid("limit", `must be between 1 and ${max}`);
  return n;
}

/** Which list a cursor belongs to: one list's cursor is refused by another (400). */
export type CursorKind = "users" | "friendships" | "conversations" | "members" | "messages" | "search" | "search_conversations";

export function encodeCursor(kind: CursorKind, value: unknown): string {
  return Buffer.from(JSON.stringify([kind, value])).toString("base64url");
}

/** For cursors that are a single string (an id, a username). */
export const isStringCursor = (v: unknown): v is string => typeof v === "string";

/** Decodes a cursor made by encodeCursor for this list; `check` narrows its shape. 400 if it is not one of ours. */
export function decodeCursor<T>(raw: string | undefined, kind: CursorKind, check: (v: unknown) => v is T): T | undefined {
  if (raw === undefined || raw === "") return undefined;
  try {
    const v = JSON.parse(Buffer.from(raw, "base64url").toString());
    if (Array.isArray(v) && v.length === 2 && v[0] === kind && check(v[1])) return v[1];
  } catch {}
  throw new AppError("bad_request", "cursor: not a valid cursor");
}

/** Takes one more row than the page size to know whether there is a next page. */
export function pageOf<R, T>(kind: CursorKind, rows: R[], limit: number, map: (r: R) => T, cursorOf: (r: R) => unknown): Page<T> {
  const more = rows.length > limit;
  const slice = more ? rows.slice(0, limit) : rows;
  return { items: slice.map(map), next_cursor: more ? encodeCursor(kind, cursorOf(slice[slice.length - 1]!)) : null };
}
