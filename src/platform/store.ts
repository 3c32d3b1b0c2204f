/**
 * The store: what the doors (REST routes, WebSocket frames) ask of the data, one operation
 * a call, each in its own transaction with its events. Two implementations: SQLite
 * (src/platform/sqlite/store.ts: the feature services themselves, synchronous transactions
 * on the one embedded connection) and PostgreSQL for cluster mode. Each operation's type
 * is the SQLite service function's own, made awaitable: one definition of each signature,
 * and the PostgreSQL store must match it. `app.ts` alone picks the implementation.
 */
import type { getUser, getUserRow, missingUsers, searchUsers, updateProfile, visibleAmong } from "../users/service";
import type { acceptFriend, listFriendships, rejectFriend, removeFriend, requestFriend } from "../friends/service";
import type {
  addMembers, conversationIdsOf, createConversation, deleteConversation, getConversation, listConversationsJson, listMembers, removeMember,
  renameConversation, requireMembership, setRole,
} from "../conversations/service";
import type { deleteMessage, editMessage, listMessages, markRead, react, sendMessage } from "../messages/service";
import type { Conversation } from "../conversations/view";
import type { Message } from "../messages/view";

/** The same function, answering now or later; its first parameter (a database or the app) left to the implementation. */
type Op<F> = F extends (first: never, ...args: infer A) => infer R ? (...args: A) => R | Promise<Awaited<R>> : never;

export interface UserStore {
  /** The row of a user (every request's caller): undefined when deleted. */
  row: Op<typeof getUserRow>;
  /** Which of the ids name no user any more (read afresh, not from a cache). */
  missing: Op<typeof missingUsers>;
  get: Op<typeof getUser>;
  search: Op<typeof searchUsers>;
  updateProfile: Op<typeof updateProfile>;
  /** Which of the targets the viewer may see the presence of. */
  visibleAmong: Op<typeof visibleAmong>;
  /** Records users' last activity (user id → ms), a batch in one transaction (realtime/last-active.ts). */
  touchLastActive(batch: Map<string, number>): void | Promise<void>;
}

export interface FriendStore {
  request: Op<typeof requestFriend>;
  accept: Op<typeof acceptFriend>;
  reject: Op<typeof rejectFriend>;
  remove: Op<typeof removeFriend>;
  list: Op<typeof listFriendships>;
}

export interface ConversationStore {
  create: Op<typeof createConversation>;
  /** A page of the caller's conversations, serialised (every new socket gets the first). */
  listJson: Op<typeof listConversationsJson>;
  get: Op<typeof getConversation>;
  members: Op<typeof listMembers>;
  rename: Op<typeof renameConversation>;
  remove: Op<typeof deleteConversation>;
  addMembers: Op<typeof addMembers>;
  removeMember: Op<typeof removeMember>;
  setRole: Op<typeof setRole>;
  /** 404 unless the user is a member now. */
  requireMembership: Op<typeof requireMembership>;
  idsOf: Op<typeof conversationIdsOf>;
  /**
   * The user's conversations and the event log's last seq, read in one snapshot: where a
   * new socket starts from (realtime/ws.ts onOpen).
   */
  membership(userId: string): MembershipView | Promise<MembershipView>;
  /** The user's conversations among `ids`, as they see them, in that order (search results). */
  viewed(userId: string, ids: string[]): Conversation[] | Promise<Conversation[]>;
}

export interface MembershipView {
  ids: string[];
  last: number;
  /**
   * The first page of the user's conversation list (`listJson(userId, 50)`) built from the
   * rows this read already has, when the store can (SQLite, where nothing commits between
   * the read and the page, the socket's opening being synchronous): one read instead of two
   * for every new socket. Absent: call `listJson`.
   */
  firstPage?: () => string;
}

export interface MessageStore {
  send: Op<typeof sendMessage>;
  list: Op<typeof listMessages>;
  edit: Op<typeof editMessage>;
  remove: Op<typeof deleteMessage>;
  markRead: Op<typeof markRead>;
  react: Op<typeof react>;
  /** Messages by id, in the order given, missing ones left out (search results: membership is the search's). */
  byIds(ids: string[]): Message[] | Promise<Message[]>;
}

export interface Store {
  users: UserStore;
  friends: FriendStore;
  conversations: ConversationStore;
  messages: MessageStore;
}
