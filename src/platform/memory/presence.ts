/** Single-node presence: the hub's former maps, unchanged in behaviour and cost. */
import type { Arrival, Presence } from "../presence";

export class MemoryPresence implements Presence {
  /** user id → open sockets. */
  private counts = new Map<string, number>();
  /** Users whose last socket closed, within the grace period of going offline. */
  private leaving = new Map<string, Timer>();
  /** Users whose user.online went out and whose user.offline has not: only they can go offline. */
  private announcedUsers = new Set<string>();
  private listener: (userId: string, announced: boolean) => void = () => {};
  /** After stop(): a socket closed during the shutdown starts no grace timer (as on PostgreSQL and Redis). */
  private stopped = false;

  constructor(private graceMs: number) {}

  connect(userId: string, max: number): Arrival {
    const n = this.counts.get(userId) ?? 0;
    if (n >= max) return "full";
    this.counts.set(userId, n + 1);
    if (n > 0) return "more";
    // A socket within the grace period of the last one (a reload): still the same presence.
    const pending = this.leaving.get(userId);
    if (pending) {
      clearTimeout(pending);
      this.leaving.delete(userId);
    }
    // Unless the last one closed before it was ever announced (cut short in its replay).
    return this.announcedUsers.has(userId) ? "more" : "first";
  }

  connections(userId: string) { return this.counts.get(userId) ?? 0; }

  disconnect(userId: string) {
    const n = this.counts.get(userId);
    if (n === undefined || this.stopped) return;
    if (n > 1) return void this.counts.set(userId, n - 1);
    this.counts.delete(userId);
    if (this.graceMs === 0) this.goOffline(userId);
    else this.leaving.set(userId, setTimeout(() => this.goOffline(userId), this.graceMs));
  }

  private goOffline(userId: string) {
    this.leaving.delete(userId);
    if (this.counts.has(userId)) return;
    this.listener(userId, this.announcedUsers.delete(userId));
  }

  announced(userId: string) { this.announcedUsers.add(userId); }

  online(userIds: string[]) { return userIds.map((id) => this.counts.has(id) || this.leaving.has(id)); }

  onOffline(listener: (userId: string, announced: boolean) => void) { this.listener = listener; }

  /** One node has no heartbeat to lose. */
  onReturned() {}

  localUsers() { return new Set([...this.counts.keys(), ...this.leaving.keys()]); }

  localCount() {
    let n = this.counts.size;
    for (const id of this.leaving.keys()) if (!this.counts.has(id)) n++;
    return n;
  }

  async stop() {
    this.stopped = true;
    for (const timer of this.leaving.values()) clearTimeout(timer);
    this.leaving.clear();
    this.announcedUsers.clear();
  }
}
