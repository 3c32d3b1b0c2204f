/**
 * Wire types of the Parley WebSocket protocol, for the reference client. Standalone on
 * purpose: the client has no dependencies and can be copied into a browser app.
 */
export interface User { id: string; username: string; display_name: string; profile_image_url: string | null; last_active_at: string; created_at: string }

/** A file in a message (PROTOCOL §9). `url` and `thumbnail_url` are signed for the viewer that received them. */
export interface Attachment {
  id: string; filename: string; content_type: string; size: number; sha256: string;
  width: number | null; height: number | null; url: string; thumbnail_url: string | null; created_at: string;
}

export interface Message {
  id: string; conversation_id: string; sender_id: string; sender_name: string; sender_avatar: string | null;
  sender_info: { id: string; username: string; display_name: string; profile_image_url: string | null };
  message_type: "text" | "image" | "file" | "system"; content: string; client_msg_id: string | null; reply_to_id: string | null;
  created_at: string; edited_at: string | null; deleted_at: string | null;
  reactions: { emoji: string; count: number; user_ids: string[] }[]; attachments: Attachment[]; is_read: boolean; read_count: number;
}

export type Role = "owner" | "admin" | "member";

/** A member, from `GET /api/conversations/:id/members` (paged, join order) and the `conversation.member_*` events. */
export interface Member { user: User; role: Role; joined_at: string; last_read_message_id: string | null }

/** The conversation's own fields. */
export interface ConversationFields { id: string; type: "direct" | "group"; title: string | null; created_by: string; created_at: string; updated_at: string }

/** The data of `conversation.update`, the same for every member (merge it into the stored `Conversation`). */
export interface ConversationUpdate extends ConversationFields { last_message_at: string | null; is_subscribed: boolean; member_count: number }

/**
 * A conversation as the caller sees it. No member list (contract v2): `member_count`, the
 * caller's own `my_role` and `my_last_read_message_id`, and for a direct conversation the
 * other member as `peer` (null for groups).
 */
export interface Conversation extends ConversationUpdate {
  last_message: Message | null; unread_count: number;
  my_role: Role; my_last_read_message_id: string | null; peer: User | null;
}

/** An item of `GET /api/search/messages`: `snippet` is HTML-escaped text with `<mark>…</mark>` around matches. */
export interface SearchHit { message: Message; snippet: string }

export interface Presence { user_id: string; online: boolean; timestamp: string; last_active_at: string | null }

/** Server → client frame types and their `data`. */
export interface ServerEvents {
  /** `epoch` names the event log's timeline (v2): resume with `since` and this epoch. */
  connect: { message: string; client_id: string; user_id: string; last_seq: number; epoch: string };
  pong: Record<string, never>;
  ack: { request_type: string; result: unknown };
  "sync.complete": { last_seq: number; epoch: string };
  /** Start over: reload through REST, then go on from last_seq of this epoch. */
  "sync.reset": { last_seq: number; epoch: string };
  "conversation.list": { items: Conversation[]; next_cursor: string | null };
  "conversation.joined": { conversation_id: string; success: true };
  "conversation.left": { conversation_id: string; success: true };
  "conversation.create": Conversation;
  "conversation.update": ConversationUpdate;
  /** Members who joined (at most 100 a frame; a large add comes in several); `member_count` as of this frame. */
  "conversation.member_add": { conversation_id: string; members: Member[]; member_count: number };
  "conversation.member_remove": { conversation_id: string; user_ids: string[]; member_count: number };
  /** A member's role changed (a hand-over: the old owner first, then the new one). */
  "conversation.member_update": { conversation_id: string; member: Member };
  "conversation.delete": { conversation_id: string };
  "conversation.user_active": { conversation_id: string; user_id: string };
  "conversation.user_inactive": { conversation_id: string; user_id: string };
  "message.receive": Message;
  "message.edit": Message;
  "message.delete": { conversation_id: string; message_id: string; deleted_at: string };
  "message.read": { conversation_id: string; user_id: string; message_id: string; read_at: string };
  "message.reaction": { conversation_id: string; message_id: string; user_id: string; emoji: string; action: "add" | "remove" };
  "message.typing": { conversation_id: string; user_id: string; is_typing: boolean };
  "user.online": Presence;
  "user.offline": Presence;
  "user.status": { statuses: { user_id: string; online: boolean; last_active_at: string }[] };
  "user.update": User;
  "friend.request": { request_id: string; user_id: string; friend_id: string; status: string; requested_at: string; sender: User };
  "friend.accept": { friendship_id: string; user_id: string; friend_id: string; status: string; accepted_at: string; acceptor: User };
  "friend.remove": { friendship_id: string; user_id: string; friend_id: string };
  notification: { kind: string; [key: string]: unknown };
  /**
   * Sent before the server closes a socket. `retry` (v2) says whether to come back: false
   * (`unauthorized`: the token expired or the user is gone) means stop and log in again.
   */
  alert: { kind: "shutdown" | "rate_limited" | "slow_consumer" | "unauthorized"; message: string; retry: boolean; retry_after_ms?: number };
  error: { request_type: string | null };
}

export type ServerEventType = keyof ServerEvents;

export interface ServerFrame<T extends ServerEventType = ServerEventType> {
  type: T;
  data: ServerEvents[T];
  timestamp: string;
  success: boolean;
  seq?: number;
  request_id?: string;
  error?: { code: string; message: string; details?: unknown; retry_after_ms?: number };
}

/** Client → server frame types and their `data`. */
export interface ClientRequests {
  ping: undefined;
  disconnect: undefined;
  "message.send": { conversation_id: string; content?: string; message_type?: "text" | "image" | "file"; client_msg_id?: string; reply_to_id?: string; attachment_ids?: string[] };
  "message.edit": { message_id: string; content: string };
  "message.delete": { message_id: string };
  "message.read": { conversation_id: string; message_id: string };
  "message.typing": { conversation_id: string; is_typing: boolean };
  "conversation.join": { conversation_id: string };
  "conversation.leave": { conversation_id: string };
  "conversation.active": { conversation_id: string | null };
  "conversation.create": { type: "direct"; user_id: string } | { type: "group"; title: string; member_ids?: string[] };
  "conversation.load": { cursor?: string; limit?: number };
  "user.status.subscribe": { user_id: string } | { user_ids: string[] };
  "user.status.unsubscribe": { user_id: string } | { user_ids: string[] };
}
