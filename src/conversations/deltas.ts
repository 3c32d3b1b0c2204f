/**
 * Membership changes as deltas on the conversation's topic (PROTOCOL §7.1): who joined,
 * who left, whose role changed, never the whole member list. Each is a persisted event,
 * replayed on resume like any other.
 */
import { convTopic, type Writer } from "../events/log";
import type { EventData } from "../models";
import { memberCount, membersNamed, type Member } from "./view";

/** At most this many members per `conversation.member_add` (the contract's bound). */
export const MEMBERS_PER_FRAME = 100;
/**
 * And at most this many bytes of members per frame, so that a frame stays under 16 KiB
 * whatever the members' names and avatar URLs (about 280 bytes a member usually, up to
 * ~6.5 KiB with a 2,048-character URL; one member alone always fits).
 */
export const MEMBER_BYTES_PER_FRAME = 12 * 1024;

/** Splits members into frames of at most MEMBERS_PER_FRAME and MEMBER_BYTES_PER_FRAME. */
export function memberFrames(list: Member[]): Member[][] {
  const frames: Member[][] = [];
  let current: Member[] = [];
  let bytes = 0;
  for (const m of list) {
    const size = Buffer.byteLength(JSON.stringify(m)) + 1;
    if (current.length && (current.length === MEMBERS_PER_FRAME || bytes + size > MEMBER_BYTES_PER_FRAME)) {
      frames.push(current);
      [current, bytes] = [[], 0];
    }
    current.push(m);
    bytes += size;
  }
  if (current.length) frames.push(current);
  return frames;
}

/**
 * `conversation.member_add` for members just inserted, in as many frames as it takes;
 * each frame's `member_count` is the count once that frame is applied.
 */
export function announceAdded(w: Writer, conversationId: string, userIds: string[]) {
  for (const data of memberAdds(conversationId, membersNamed(w.tx, conversationId, userIds), memberCount(w.tx, conversationId))) {
    w.emit(convTopic(conversationId), "conversation.member_add", data);
  }
}

/** The member_add events for members just added (`count`: the member count with them). */
export function memberAdds(conversationId: string, added: Member[], count: number): EventData<"conversation.member_add">[] {
  let running = count - added.length;
  return memberFrames(added).map((frame) => ({ conversation_id: conversationId, members: frame, member_count: (running += frame.length) }));
}

/** `conversation.member_remove` for members just deleted. */
export function announceRemoved(w: Writer, conversationId: string, userIds: string[]) {
  w.emit(convTopic(conversationId), "conversation.member_remove", { conversation_id: conversationId, user_ids: userIds, member_count: memberCount(w.tx, conversationId) });
}

/** `conversation.member_update` for each named member (after a role change), in the order given. */
export function announceUpdated(w: Writer, conversationId: string, userIds: string[]) {
  for (const data of memberUpdates(conversationId, userIds, membersNamed(w.tx, conversationId, userIds))) {
    w.emit(convTopic(conversationId), "conversation.member_update", data);
  }
}

/** The member_update events of `userIds`, in that order, from those of them that are members (`named`). */
export function memberUpdates(conversationId: string, userIds: string[], named: Member[]): EventData<"conversation.member_update">[] {
  const byId = new Map(named.map((m) => [m.user.id, m]));
  return userIds.flatMap((id) => {
    const member = byId.get(id);
    return member ? [{ conversation_id: conversationId, member }] : [];
  });
}
