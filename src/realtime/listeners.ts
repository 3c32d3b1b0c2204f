/**
 * Which users with sockets on this node hear each conversation, kept beside Bun's topic
 * subscriptions (which cannot be listed). A frame with attachment links goes to each
 * listening socket by itself, its links signed for that socket's user (PROTOCOL §9). Finding
 * those sockets by a look at every socket of the node made a send with an attachment cost
 * 2.5 × a plain one with 1,000 idle sockets open, and grow with every socket more (issue #17).
 *
 * Kept per user, not per socket: a user's sockets join and leave conversations together
 * (the hub subscribes and unsubscribes all of them on membership events), and a user record
 * costs far less memory than one per idle socket. It may hold more than Bun's subscriptions
 * (a socket still catching up, one unsubscribed alone): callers still check each socket's
 * own subscription; it never holds less, which is what the hub's calls keep true.
 */
interface Room {
  id: string;
  users: Set<string>;
}

const NOBODY: ReadonlySet<string> = new Set();

export class Listeners {
  private rooms = new Map<string, Room>();
  private ofUser = new Map<string, Set<Room>>();

  /** Before a socket of `userId` subscribes to the conversation's topic. */
  join(userId: string, conversationId: string) {
    let room = this.rooms.get(conversationId);
    if (!room) this.rooms.set(conversationId, (room = { id: conversationId, users: new Set() }));
    if (room.users.has(userId)) return;
    room.users.add(userId);
    let mine = this.ofUser.get(userId);
    if (!mine) this.ofUser.set(userId, (mine = new Set()));
    mine.add(room);
  }

  /** The user's sockets here stopped hearing the conversation. */
  leave(userId: string, conversationId: string) {
    const room = this.rooms.get(conversationId);
    if (!room) return;
    this.ofUser.get(userId)?.delete(room);
    this.drop(room, userId);
  }

  /** The user's last socket on this node closed. */
  forget(userId: string) {
    for (const room of this.ofUser.get(userId) ?? []) this.drop(room, userId);
    this.ofUser.delete(userId);
  }

  /** Users who may have a socket here on the conversation's topic. */
  usersOf(conversationId: string): ReadonlySet<string> {
    return this.rooms.get(conversationId)?.users ?? NOBODY;
  }

  private drop(room: Room, userId: string) {
    room.users.delete(userId);
    if (room.users.size === 0 && this.rooms.get(room.id) === room) this.rooms.delete(room.id);
  }
}
