/**
 * Which users with sockets on this node hear each conversation, kept beside Bun's topic
 * subscriptions (which cannot be listed). A frame with attachment links goes to each
 * listening user with its links signed for them (PROTOCOL §9). Finding them by a look at
 * every socket of the node made a send with an attachment cost 2.3–4 × a plain one with
 * 1,000–10,000 idle sockets open, and grow with every socket more (issue #17).
 *
 * Kept per user, not per socket: a user's sockets join and leave conversations together (the
 * hub subscribes and unsubscribes all of them on membership events; where one socket differs,
 * the hub sends to each socket that hears the topic). It may hold more than Bun's
 * subscriptions, never less: callers check each socket's own subscription, and skip users
 * without sockets here. A user whose last socket closed is dropped by `sweep` (the
 * hub's heartbeat), not at the close: nothing is kept per user to find their conversations
 * (that record tripled this map's memory, ~1.2 KB a user in 5 conversations; now ~0.35).
 */
const NOBODY: ReadonlySet<string> = new Set();

export class Listeners {
  private rooms = new Map<string, Set<string>>();

  /** Before a socket of `userId` subscribes to the conversation's topic. */
  join(userId: string, conversationId: string) {
    let room = this.rooms.get(conversationId);
    if (!room) this.rooms.set(conversationId, (room = new Set()));
    room.add(userId);
  }

  /** The user's sockets here stopped hearing the conversation. */
  leave(userId: string, conversationId: string) {
    const room = this.rooms.get(conversationId);
    if (!room) return;
    room.delete(userId);
    if (room.size === 0) this.rooms.delete(conversationId);
  }

  /** Users who may have a socket here on the conversation's topic. */
  usersOf(conversationId: string): ReadonlySet<string> {
    return this.rooms.get(conversationId) ?? NOBODY;
  }

  /** Drops the users who have no socket here any more (`here`: whether one has). */
  sweep(here: (userId: string) => boolean) {
    for (const [id, room] of this.rooms) {
      for (const userId of room) if (!here(userId)) room.delete(userId);
      if (room.size === 0) this.rooms.delete(id);
    }
  }
}
