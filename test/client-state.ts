/**
 * A client's state, kept current by the events it receives, in the spirit of Zulip's
 * `verify_action`: load it through REST, apply the frames that follow, and it must equal
 * what REST says afterwards. Used by members.test.ts and state.test.ts.
 */
import type { Conversation, Member, Message, User } from "../src/client/types";
import { membersOf, type TestServer } from "./helpers";
import type { Frame } from "./ws-client";

export interface ClientState {
  me: string;
  conversations: Map<string, Conversation>;
  /** Each conversation's members, once loaded (through REST: a conversation that arrives by event has none yet). */
  members: Map<string, Member[]>;
  /** Every message of each conversation, oldest first. */
  messages: Map<string, Message[]>;
}

/** The whole of a user's state, read through REST (every page). */
export async function loadState(s: TestServer, token: string, me: string, only?: string[]): Promise<ClientState> {
  const state: ClientState = { me, conversations: new Map(), members: new Map(), messages: new Map() };
  for (let cursor: string | null = null, first = true; first || cursor; first = false) {
    const { body }: { body: any } = await s.api("GET", `/api/conversations?limit=100${cursor ? `&cursor=${cursor}` : ""}`, { token });
    for (const c of body.items as Conversation[]) if (!only || only.includes(c.id)) state.conversations.set(c.id, c);
    cursor = body.next_cursor;
  }
  for (const id of state.conversations.keys()) {
    state.members.set(id, await membersOf(s, token, id));
    const messages: Message[] = [];
    for (let cursor: string | null = null, first = true; first || cursor; first = false) {
      const { body }: { body: any } = await s.api("GET", `/api/conversations/${id}/messages?after=&limit=100${cursor ? `&cursor=${cursor}` : ""}`, { token });
      messages.push(...body.items);
      cursor = body.next_cursor;
    }
    state.messages.set(id, messages);
  }
  return state;
}

/** Applies one frame as a client would. Frames of conversations the state does not hold are ignored. */
export function apply(state: ClientState, f: Frame) {
  const d = f.data;
  const conv = state.conversations.get(d?.conversation_id ?? d?.id);
  switch (f.type) {
    case "conversation.create":
      state.conversations.set(d.id, d);
      state.messages.set(d.id, []);
      return;
    case "conversation.delete":
      for (const map of [state.conversations, state.members, state.messages]) map.delete(d.conversation_id);
      return;
    case "user.update":
      return updateUser(state, d);
  }
  if (!conv) return;
  const members = state.members.get(conv.id) ?? [];
  const messages = state.messages.get(conv.id)!;
  const replace = (m: Message) => {
    const i = messages.findIndex((x) => x.id === m.id);
    if (i >= 0) messages[i] = m;
    if (conv.last_message?.id === m.id) conv.last_message = m;
  };
  switch (f.type) {
    case "conversation.update":
      Object.assign(conv, d);
      break;
    case "conversation.member_add":
      members.push(...d.members);
      conv.member_count = d.member_count;
      break;
    case "conversation.member_remove":
      if (state.members.has(conv.id)) state.members.set(conv.id, members.filter((m) => !d.user_ids.includes(m.user.id)));
      conv.member_count = d.member_count;
      break;
    case "conversation.member_update":
      if (state.members.has(conv.id)) state.members.set(conv.id, members.map((m) => (m.user.id === d.member.user.id ? d.member : m)));
      if (d.member.user.id === state.me) conv.my_role = d.member.role;
      break;
    case "message.receive":
      messages.push(d);
      conv.last_message = d;
      conv.last_message_at = d.created_at;
      break;
    case "message.edit":
      replace(d);
      break;
    case "message.delete": {
      const m = messages.find((x) => x.id === d.message_id);
      if (m) replace({ ...m, content: "", reactions: [], deleted_at: d.deleted_at });
      break;
    }
    case "message.reaction": {
      const m = messages.find((x) => x.id === d.message_id);
      if (!m) break;
      let reactions = m.reactions.map((r) => ({ ...r, user_ids: [...r.user_ids] }));
      const r = reactions.find((x) => x.emoji === d.emoji);
      if (d.action === "add") {
        if (r) (r.count++, r.user_ids.push(d.user_id));
        else reactions.push({ emoji: d.emoji, count: 1, user_ids: [d.user_id] });
      } else if (r) {
        r.count--;
        r.user_ids = r.user_ids.filter((id) => id !== d.user_id);
        if (r.count === 0) reactions = reactions.filter((x) => x !== r);
      }
      replace({ ...m, reactions });
      break;
    }
    case "message.read":
      for (const m of members) if (m.user.id === d.user_id) m.last_read_message_id = d.message_id;
      if (d.user_id === state.me) conv.my_last_read_message_id = d.message_id;
      break;
  }
  derive(state, conv.id);
}

/** What a client works out itself from what it holds: read counts and the unread count. */
function derive(state: ClientState, id: string) {
  const conv = state.conversations.get(id)!;
  const messages = state.messages.get(id)!;
  const after = conv.my_last_read_message_id ?? "";
  conv.unread_count = messages.filter((m) => m.id > after && m.sender_id !== state.me && m.deleted_at === null).length;
  // Read counts need the members' read positions.
  const members = state.members.get(id);
  if (!members) return;
  for (const m of messages) {
    const readers = members.filter((x) => x.user.id !== m.sender_id && x.last_read_message_id !== null && x.last_read_message_id >= m.id).length;
    const updated = { ...m, read_count: readers, is_read: readers > 0 };
    messages[messages.indexOf(m)] = updated;
    if (conv.last_message?.id === m.id) conv.last_message = updated;
  }
}

/** A profile changed: wherever the user appears. */
function updateUser(state: ClientState, u: User) {
  const sender = (m: Message): Message =>
    m.sender_id === u.id ? { ...m, sender_name: u.display_name, sender_avatar: u.profile_image_url, sender_info: { id: u.id, username: u.username, display_name: u.display_name, profile_image_url: u.profile_image_url } } : m;
  for (const [id, conv] of state.conversations) {
    if (conv.peer?.id === u.id) Object.assign(conv, { peer: u, title: u.display_name });
    if (conv.last_message) conv.last_message = sender(conv.last_message);
    const members = state.members.get(id);
    if (members) state.members.set(id, members.map((m) => (m.user.id === u.id ? { ...m, user: u } : m)));
    state.messages.set(id, state.messages.get(id)!.map(sender));
  }
}

/** Presence times move on their own (no event): left out of comparisons. */
export const settled = <T>(x: T): T => JSON.parse(JSON.stringify(x).replace(/"last_active_at":"[^"]*"/g, '"last_active_at":"…"'));

/**
 * The state as plain data, conversations by id, for comparing; member lists only of the
 * conversations `loaded` holds them for (the state built from events has not fetched the rest).
 */
export const snapshot = (state: ClientState, loaded: ClientState = state) =>
  settled({
    conversations: [...state.conversations.values()].sort((a, b) => (a.id < b.id ? -1 : 1)),
    members: Object.fromEntries([...state.members].filter(([id]) => loaded.members.has(id)).sort()),
    messages: Object.fromEntries([...state.messages].sort()),
  });
