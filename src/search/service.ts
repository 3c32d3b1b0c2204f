/**
 * Search (PROTOCOL §8): parameters and cursors here, matching in a SearchIndex.
 */
import type { AppContext } from "../context";
import type { UserRow } from "../db/schema";
import { AppError, invalid } from "../errors";
import type { Conversation } from "../conversations/view";
import { decodeCursor, encodeCursor, type Page } from "../http/paging";
import { parseQuery, snippet, type Term } from "./text";
import type { SearchHit } from "./model";

/** An item of GET /api/search/messages (the model: search/model.ts). */
export type MessageHit = SearchHit;

export interface MessageSearchParams {
  q?: string;
  conversation_id?: string;
  sender_id?: string;
  before?: string;
  after?: string;
  cursor?: string;
  limit: number;
}

/** A date (`2026-11-29`, midnight UTC) or a date-time with its offset (`…T10:00:00Z`, `…+07:00`). */
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2}))?$/i;

/** Whether the text's date is on the calendar: Date.parse rolls 2021-02-30 over to March 2nd. */
function onCalendar(raw: string): boolean {
  const [y, m, d] = [Number(raw.slice(0, 4)), Number(raw.slice(5, 7)), Number(raw.slice(8, 10))];
  const last = new Date(0);
  last.setUTCFullYear(y, m, 0); // the month's last day (Date.UTC would read years 0–99 as 1900–1999)
  return m >= 1 && m <= 12 && d >= 1 && d <= last.getUTCDate();
}

/** 400 when it is not an ISO timestamp (a parameter that cannot be parsed, §2). */
function parseTime(field: string, raw: string | undefined): number | undefined {
  if (raw === undefined || raw === "") return undefined;
  const ms = ISO.test(raw) && onCalendar(raw) ? Date.parse(raw.replace(" ", "T")) : NaN;
  if (!Number.isFinite(ms)) throw new AppError("bad_request", `${field}: not an ISO timestamp with a time zone (e.g. 2026-11-29T10:00:00Z)`);
  return ms;
}

/**
 * What a cursor is bound to: the query and its filters. A cursor of another search is 400,
 * so a client cannot page one search with another's position.
 */
const fingerprint = (...parts: (string | number | undefined)[]) => Bun.hash(JSON.stringify(parts)).toString(36);

type SearchCursor = [position: string, fingerprint: string];
const isSearchCursor = (v: unknown): v is SearchCursor => Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && typeof v[1] === "string";

export async function searchMessages(ctx: AppContext, me: UserRow, p: MessageSearchParams): Promise<Page<MessageHit>> {
  const terms = parseQuery(p.q);
  const createdBefore = parseTime("before", p.before);
  const createdAfter = parseTime("after", p.after);
  if (createdBefore !== undefined && createdAfter !== undefined && createdAfter >= createdBefore) throw invalid("after", "must be earlier than before");
  // Filtering by someone else's conversation is 404, as reading it is.
  if (p.conversation_id) await ctx.store.conversations.requireMembership(p.conversation_id, me.id);
  const bound = fingerprint(p.q?.normalize("NFC"), p.conversation_id || undefined, p.sender_id || undefined, createdBefore, createdAfter);
  const cursor = decodeCursor(p.cursor, "search", isSearchCursor);
  if (cursor && cursor[1] !== bound) throw new AppError("bad_request", "cursor: not a cursor of this search");

  const hits = await ctx.search.findMessages({
    userId: me.id,
    terms,
    conversationId: p.conversation_id || undefined,
    senderId: p.sender_id || undefined,
    createdBefore,
    createdAfter,
    olderThan: cursor?.[0],
    limit: p.limit + 1,
  });
  const more = hits.ids.length > p.limit;
  const ids = more ? hits.ids.slice(0, p.limit) : hits.ids;
  const items = (await ctx.store.messages.byIds(ids)).map((message) => ({ message, snippet: snippet(message.content, terms) }));
  return { items, next_cursor: more ? encodeCursor("search", [ids[ids.length - 1]!, bound] satisfies SearchCursor) : null };
}

type ConversationCursor = [activityAt: number, id: string, fingerprint: string];
const isConversationCursor = (v: unknown): v is ConversationCursor =>
  Array.isArray(v) && v.length === 3 && Number.isSafeInteger(v[0]) && typeof v[1] === "string" && typeof v[2] === "string";

/** The caller's conversations whose title or peer's name holds every term (the quick switcher). */
export async function searchConversations(ctx: AppContext, me: UserRow, p: { q?: string; cursor?: string; limit: number }): Promise<Page<Conversation>> {
  const terms: Term[] = parseQuery(p.q);
  const bound = fingerprint(p.q?.normalize("NFC"));
  const cursor = decodeCursor(p.cursor, "search_conversations", isConversationCursor);
  if (cursor && cursor[2] !== bound) throw new AppError("bad_request", "cursor: not a cursor of this search");
  const found = await ctx.search.findConversations({ userId: me.id, terms, after: cursor && { activityAt: cursor[0], id: cursor[1] }, limit: p.limit + 1 });
  const more = found.length > p.limit;
  const page = more ? found.slice(0, p.limit) : found;
  const ids = page.map((c) => c.id);
  const last = page[page.length - 1];
  return { items: await ctx.store.conversations.viewed(me.id, ids), next_cursor: more && last ? encodeCursor("search_conversations", [last.activityAt, last.id, bound] satisfies ConversationCursor) : null };
}
