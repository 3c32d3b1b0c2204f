/**
 * Cluster-wide presence in PostgreSQL (cluster mode without REDIS_URL), on the store's own
 * connection pool: the same behaviour as src/platform/redis/presence.ts, on the UNLOGGED
 * tables presence_users / presence_sockets / presence_nodes (src/platform/postgres/schema.ts).
 * Each decision is one call of a function of migration 0006_presence_limits (one round trip,
 * one transaction), which locks the user's row first.
 *
 * A node beats every HEARTBEAT_INTERVAL_MS / 3; a node silent for HEARTBEAT_INTERVAL_MS is
 * dead, and the next beat of any node takes it away with its users' sockets (exactly one
 * beat wins each dead node): those left with no socket anywhere go offline, announced by
 * that node. A node killed right after a beat is thus gone within 4/3 × the interval.
 *
 * The tables hold soft state only: after PostgreSQL empties them (a crash), each node's next
 * beat finds its heartbeat gone and writes its users back.
 */
import type { SQL } from "bun";
import type { Logger } from "../../log";
import type { Arrival, Presence } from "../presence";

export interface PgPresenceOptions {
  nodeId: string;
  graceMs: number;
  heartbeatIntervalMs: number;
  log?: Logger;
}

export class PgPresence implements Presence {
  /** user id → sockets counted on this node. */
  private local = new Map<string, number>();
  /** Grace timers started here. */
  private leaving = new Map<string, Timer>();
  /**
   * This node's pending call per user. A pool runs calls on different connections, so a
   * fire-and-forget `announced` could otherwise land after the `disconnect` that follows
   * it (and the user go offline unannounced); one user's calls from one node go in order.
   */
  private turns = new Map<string, Promise<unknown>>();
  private listener: (userId: string, announced: boolean) => void = () => {};
  private beat: Timer;
  private beats = 0;
  private beating: Promise<void> | null = null;
  private stopped = false;

  constructor(private sql: SQL, private o: PgPresenceOptions) {
    this.beat = setInterval(() => void this.heartbeat(), Math.max(10, Math.floor(o.heartbeatIntervalMs / 3)));
    this.beat.unref();
    void this.heartbeat();
  }

  /** Runs `op` after this node's earlier calls about `userId`. */
  private inTurn<T>(userId: string, op: () => Promise<T>): Promise<T> {
    const next = (this.turns.get(userId) ?? Promise.resolve()).then(op);
    const settled = next.catch(() => {});
    this.turns.set(userId, settled);
    void settled.then(() => {
      if (this.turns.get(userId) === settled) this.turns.delete(userId);
    });
    return next;
  }

  /**
   * Beats, and takes offline the users of nodes that stopped beating. One beat at a time: on
   * a pool, a slow beat could otherwise finish after a later one and judge from old news.
   */
  heartbeat(): Promise<void> {
    return (this.beating ??= this.beatOnce().finally(() => (this.beating = null)));
  }

  private async beatOnce() {
    try {
      const [{ fresh, offline }] = await this.sql`SELECT fresh, offline FROM presence_beat(${this.o.nodeId}, ${this.o.heartbeatIntervalMs})`;
      if (this.stopped) return;
      // Our beat was gone (PostgreSQL emptied the tables, or we stalled past the limit): write our users back.
      if (fresh && this.beats > 0 && this.local.size) {
        const users = [...this.local.keys()];
        await this.sql`SELECT presence_reregister(${this.o.nodeId}, ${users}::text[], ${users.map((u) => this.local.get(u)!)}::int[])`;
        this.o.log?.warn({ users: users.length }, "presence: heartbeat was lost; users registered again");
      }
      this.beats++;
      for (const userId of offline as string[]) this.listener(userId, true);
    } catch (err) {
      this.o.log?.warn({ err }, "presence heartbeat failed");
    }
  }

  connect(userId: string, max: number): Promise<Arrival> {
    return this.inTurn(userId, async () => {
      const [{ arrival }] = await this.sql`SELECT presence_connect(${userId}, ${this.o.nodeId}, ${max}::int) AS arrival`;
      if (arrival !== "full") {
        this.local.set(userId, (this.local.get(userId) ?? 0) + 1);
        const pending = this.leaving.get(userId);
        if (pending) {
          clearTimeout(pending);
          this.leaving.delete(userId);
        }
      }
      return arrival as Arrival;
    });
  }

  async connections(userId: string) {
    const [row] = await this.sql`SELECT total FROM presence_users WHERE user_id = ${userId}`;
    return (row?.total as number | undefined) ?? 0;
  }

  disconnect(userId: string) {
    const n = this.local.get(userId);
    if (n === undefined) return;
    if (n > 1) this.local.set(userId, n - 1);
    else this.local.delete(userId);
    // Left the cluster: another node's beat takes all of this node's sockets away at once.
    if (this.stopped) return;
    this.inTurn(userId, async () => {
      const [{ gen }] = await this.sql`SELECT presence_disconnect(${userId}, ${this.o.nodeId})::text AS gen`;
      if (gen === "-1" || this.stopped) return;
      const settle = () => void this.settle(userId, gen as string);
      if (this.o.graceMs === 0) return settle();
      clearTimeout(this.leaving.get(userId));
      this.leaving.set(userId, setTimeout(settle, this.o.graceMs));
    }).catch((err) => this.o.log?.warn({ err, user_id: userId }, "presence: a disconnect was not recorded"));
  }

  /** After the grace period: offline unless a socket came back anywhere (a connect bumped the generation). */
  private settle(userId: string, generation: string) {
    this.leaving.delete(userId);
    return this.inTurn(userId, async () => {
      const [row] = await this.sql`DELETE FROM presence_users WHERE user_id = ${userId} AND total = 0 AND gen = ${generation}::bigint RETURNING announced`;
      if (row && !this.stopped) this.listener(userId, row.announced as boolean);
    }).catch((err) => this.o.log?.warn({ err, user_id: userId }, "presence: going offline failed"));
  }

  /** Resolves once recorded (callers need not wait: this node's later calls about the user come after it). */
  announced(userId: string): Promise<void> {
    return this.inTurn(userId, async () => {
      await this.sql`UPDATE presence_users SET announced = true WHERE user_id = ${userId}`;
    }).catch((err) => this.o.log?.warn({ err, user_id: userId }, "presence: announcing failed"));
  }

  async online(userIds: string[]) {
    if (!userIds.length) return [];
    const rows = await this.sql`SELECT user_id FROM presence_users WHERE user_id = ANY(${userIds}::text[]) AND (total > 0 OR announced)`;
    const on = new Set((rows as { user_id: string }[]).map((r) => r.user_id));
    return userIds.map((id) => on.has(id));
  }

  onOffline(listener: (userId: string, announced: boolean) => void) { this.listener = listener; }

  localUsers() { return new Set([...this.local.keys(), ...this.leaving.keys()]); }

  localCount() { return this.localUsers().size; }

  /** Leaves the cluster: marked dead at once, so the next beat of any node settles its users. */
  async stop() {
    this.stopped = true;
    clearInterval(this.beat);
    for (const timer of this.leaving.values()) clearTimeout(timer);
    this.leaving.clear();
    try {
      await this.beating; // a beat in flight must not set a new deadline after this one
      await this.sql`UPDATE presence_nodes SET deadline = 0 WHERE node_id = ${this.o.nodeId}`;
    } catch (err) {
      this.o.log?.warn({ err }, "presence: leaving the cluster failed; the node is taken as dead after the heartbeat interval");
    }
  }
}
