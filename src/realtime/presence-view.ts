/**
 * What this node's sockets were last told of the presence of each user they follow: one
 * entry per followed user, however many followers it has here, holding the last `online`
 * its status topic carried here (or that a follower's reply said first) and when that was
 * (a counter). The hub passes every presence frame for this node's sockets through `tell`
 * (its own, another node's, a correction), so they hear of a user only when what they are
 * told changes; and a read of the shared presence store corrects them (`correct`) where it
 * says otherwise — cluster mode loses presence frames between nodes now and then (core
 * NATS is at most once, platform/broker.ts), and the store outlives them.
 *
 * A read takes time: a frame about the user that reached this node while it ran may be
 * newer than what it read, so a read never overrides one (`mark` before it, `correct`
 * after). Such a frame may also be older (sent before the read began, delivered after it):
 * then the next read corrects it.
 */
export class PresenceView {
  private told = new Map<string, { online: boolean | null; at: number }>();
  private clock = 0;

  /** A user got their first follower here (nothing told yet). */
  follow(userId: string) {
    if (!this.told.has(userId)) this.told.set(userId, { online: null, at: ++this.clock });
  }

  /** A user's last follower here left. */
  unfollow(userId: string) {
    this.told.delete(userId);
  }

  /** Taken before a read of the store, for `correct`. */
  mark() {
    return this.clock;
  }

  /**
   * A frame saying whether the user is online is about to reach their followers here: false
   * when it would tell them nothing new (it is kept from them). A user with no follower here
   * passes (the frame reaches nobody here anyway).
   */
  tell(userId: string, online: boolean): boolean {
    const e = this.told.get(userId);
    if (!e) return true;
    if (e.online === online) return false;
    e.online = online;
    e.at = ++this.clock;
    return true;
  }

  /**
   * A read of the store begun at `mark` says whether the user is online. Null when the
   * user's followers here know it already, have none, or heard of the user since the read
   * began; else it is recorded as told, and the answer says what they were told before
   * (null: nothing yet) and `at`, for `current`.
   */
  correct(userId: string, online: boolean, mark: number): { was: boolean | null; at: number } | null {
    const e = this.told.get(userId);
    if (!e || e.at > mark || e.online === online) return null;
    const was = e.online;
    e.online = online;
    e.at = ++this.clock;
    return { was, at: e.at };
  }

  /** What the user's followers here were last told: null, nothing yet; undefined, no follower here. */
  says(userId: string): boolean | null | undefined {
    return this.told.get(userId)?.online;
  }

  /** Whether the correction `at` is still the last thing told of the user here (no frame came after it). */
  current(userId: string, at: number): boolean {
    return this.told.get(userId)?.at === at;
  }

  /** Users followed here. */
  followed(): string[] {
    return [...this.told.keys()];
  }
}
