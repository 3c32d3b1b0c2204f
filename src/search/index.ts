/**
 * What search needs from storage (PROTOCOL §8), so that another engine (PostgreSQL with
 * pg_trgm, for cluster mode) can stand in for SQLite's FTS5 behind the same service.
 * Implementations apply membership themselves, inside the query: a page is never short
 * because of rows the caller may not see, and nothing of them leaks.
 */
import type { Term } from "./text";

export interface MessageQuery {
  /** Only messages of conversations this user is a member of now. */
  userId: string;
  /** All must occur in the message's current text (fold()ed, as substrings). */
  terms: Term[];
  conversationId?: string;
  senderId?: string;
  /** created_at bounds in ms, both exclusive. */
  createdBefore?: number;
  createdAfter?: number;
  /** A cursor: only messages sent before this message id (send order). */
  olderThan?: string;
  limit: number;
}

export interface MessageHits {
  /** Matching message ids, newest first (send order), at most `limit`. */
  ids: string[];
}

export interface ConversationQuery {
  userId: string;
  terms: Term[];
  /** A cursor: only conversations after this one in the list order (activity, newest first). */
  after?: { activityAt: number; id: string };
  limit: number;
}

export interface ConversationHit {
  id: string;
  activityAt: number;
}

/** Asynchronous, so that an engine across the network fits; SQLite answers at once. */
export interface SearchIndex {
  /** Deleted messages never match; an edited one matches its current text only. */
  findMessages(q: MessageQuery): Promise<MessageHits>;
  /** The user's conversations whose title (groups) or peer's name (direct) holds every term, most recent activity first. */
  findConversations(q: ConversationQuery): Promise<ConversationHit[]>;
  /** Stops background work (before the database closes). */
  stop(): Promise<void>;
}
