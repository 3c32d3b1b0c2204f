/**
 * Users' last activity (`last_active_at`), recorded in memory and written in batches: one
 * transaction a second, and at shutdown. A reconnect storm brings thousands of users
 * online at once, and one write transaction each would cost more than their sockets.
 */
import type { AppContext } from "../context";
import { iso } from "../lib/time";

export class LastActive {
  private pending = new Map<string, number>();
  private timer: Timer | null = null;
  /** Set by close() after the last write: the database is about to close. */
  private closed = false;

  constructor(private ctx: AppContext) {}

  /** The user was active now; returns the time as ISO. */
  touch(userId: string): string {
    const now = Date.now();
    if (this.closed) return iso(now);
    this.pending.set(userId, now);
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), 1000);
      this.timer.unref();
    }
    return iso(now);
  }

  /** A user's last activity: the pending value if not yet written (answered at once on SQLite). */
  of(userId: string): string | null | Promise<string | null> {
    const pending = this.pending.get(userId);
    if (pending !== undefined) return iso(pending);
    const row = this.ctx.store.users.row(userId);
    return row instanceof Promise ? row.then((r) => (r ? iso(r.lastActiveAt) : null)) : row ? iso(row.lastActiveAt) : null;
  }

  flush() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    // Presence is best effort: losing a last_active_at is not losing data.
    const failed = (err: unknown) => this.ctx.log.warn({ err, users: batch.size }, "could not update last_active_at");
    try {
      const done = this.ctx.store.users.touchLastActive(batch);
      if (done instanceof Promise) done.catch(failed);
      // Cached member lists are not dropped for this: they expire within a second anyway,
      // and dropping them on every presence change empties the cache during a reconnect storm.
    } catch (err) {
      failed(err);
    }
  }

  /** Writes what is pending, then records nothing more (the database closes next). */
  close() {
    this.flush();
    this.closed = true;
  }
}
