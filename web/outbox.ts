/**
 * Messages written but not yet acknowledged by the server, kept in localStorage per user so
 * that a reload, a closed tab or a phone's browser dropping the page while offline loses
 * none of them ("It goes when you are back online" must stay true). The server makes sending
 * the same `client_msg_id` again harmless, so an entry may be sent again after a reload even
 * if its first send had landed.
 *
 * Tabs of one browser share the key: every change reads the stored list, changes the one
 * entry and writes it back, so one tab never writes over another's entries.
 */
import type { Attachment } from "./api";

export interface Unsent {
  conversation_id: string;
  client_msg_id: string;
  content: string;
  reply_to_id: string | null;
  attachments: Attachment[];
  created_at: string;
  /** Why the server refused it (a 422…): shown so on the next page, not sent again unasked. */
  refused?: string;
  /** The conversation's name when it was written: said if it can never go (the conversation gone). */
  title?: string;
}

export const outboxKey = (userId: string) => `parley.outbox.${userId}`;
const key = outboxKey;

/** What is kept for `userId`, in the order written; anything malformed is left out. */
export function unsentOf(userId: string): Unsent[] {
  let raw: unknown;
  try {
    raw = JSON.parse(localStorage.getItem(key(userId)) ?? "[]");
  } catch {
    return [];
  }
  return Array.isArray(raw) ? raw.filter(isUnsent) : [];
}

/** The entries one change of the stored list (a storage event's old and new values) took away. */
export function removedBetween(oldValue: string | null, newValue: string | null): Set<string> {
  const ids = (v: string | null) => {
    try {
      const list: unknown = JSON.parse(v ?? "[]");
      return Array.isArray(list) ? list.filter(isUnsent).map((u) => u.client_msg_id) : [];
    } catch {
      return [];
    }
  };
  const left = new Set(ids(newValue));
  return new Set(ids(oldValue).filter((id) => !left.has(id)));
}

/** Keeps `u`: over what is kept of it already, in its place (its order is the order it was written), else last. */
export function keepUnsent(userId: string, u: Unsent) {
  const all = unsentOf(userId);
  const at = all.findIndex((x) => x.client_msg_id === u.client_msg_id);
  write(userId, at < 0 ? [...all, u] : all.map((x, i) => (i === at ? { ...x, ...u } : x)));
}

export function dropUnsent(userId: string, clientMsgId: string) {
  const all = unsentOf(userId);
  const left = all.filter((x) => x.client_msg_id !== clientMsgId);
  if (left.length !== all.length) write(userId, left);
}

/** Signing out on purpose leaves nothing behind. */
export const forgetUnsent = (userId: string) => localStorage.removeItem(key(userId));

function write(userId: string, list: Unsent[]) {
  try {
    if (list.length) localStorage.setItem(key(userId), JSON.stringify(list));
    else localStorage.removeItem(key(userId));
  } catch {} // storage full or refused: kept for this page's life only, as before
}

const str = (v: unknown): v is string => typeof v === "string";

function isUnsent(v: unknown): v is Unsent {
  const u = v as Unsent;
  return (
    !!u && typeof u === "object" && str(u.conversation_id) && str(u.client_msg_id) && str(u.content) && str(u.created_at) &&
    (u.reply_to_id === null || str(u.reply_to_id)) && (u.refused === undefined || str(u.refused)) && (u.title === undefined || str(u.title)) &&
    Array.isArray(u.attachments) && u.attachments.every((a) => !!a && typeof a === "object" && str(a.id) && str(a.filename))
  );
}
