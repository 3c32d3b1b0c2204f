/**
 * Cluster-wide presence in PostgreSQL (cluster mode without REDIS_URL), on the store's own
 * connection pool: the store's half of ClusterPresence (../cluster-presence.ts, which keeps
 * this node's bookkeeping and the heartbeat), as src/platform/redis/presence.ts is Redis's,
 * on the UNLOGGED tables presence_users / presence_sockets / presence_nodes
 * (src/platform/postgres/schema.ts). Each decision is one call of a function of migration
 * 0006_presence_limits (one round trip, one transaction), which locks the user's row first.
 */
import type { SQL } from "bun";
import type { Arrival } from "../presence";
import { ClusterPresence, type ClusterPresenceOptions } from "../cluster-presence";

export type PgPresenceOptions = ClusterPresenceOptions;

export class PgPresence extends ClusterPresence {
  constructor(private sql: SQL, o: PgPresenceOptions) {
    super(o);
    this.start();
  }

  async liveNodes() {
    return ((await this.sql`SELECT node_id FROM presence_nodes`) as { node_id: string }[]).map((r) => r.node_id);
  }

  protected async storeBeat() {
    const [{ fresh, offline }] = await this.sql`SELECT fresh, offline FROM presence_beat(${this.o.nodeId}, ${this.o.heartbeatIntervalMs})`;
    return { fresh: fresh as boolean, offline: offline as string[] };
  }

  protected async storeReregister(users: [string, number][]) {
    await this.sql`SELECT presence_reregister(${this.o.nodeId}, ${users.map((u) => u[0])}::text[], ${users.map((u) => u[1])}::int[])`;
  }

  /**
   * One transaction, each user's row locked first in user_id order as the functions of 0006
   * do: this node's sockets set to `users`' counts, removed for the other users of this node
   * but the skipped, and the users left with none anywhere removed (the announced returned).
   */
  protected async storeResync(users: [string, number][], skip: string[]) {
    const node = this.o.nodeId;
    return await this.sql.begin(async (tx) => {
      const want = new Map(users);
      const here = (await tx`SELECT user_id, n FROM presence_sockets WHERE node_id = ${node}`) as { user_id: string; n: number }[];
      const had = new Map(here.map((r) => [r.user_id, r.n]));
      const skipped = new Set(skip);
      const offline: string[] = [];
      for (const userId of [...new Set([...had.keys(), ...want.keys()])].filter((u) => !skipped.has(u)).sort()) {
        const n = want.get(userId) ?? 0;
        const before = had.get(userId) ?? 0;
        if (n === before) continue;
        await tx`INSERT INTO presence_users AS u (user_id, announced) VALUES (${userId}, true) ON CONFLICT (user_id) DO UPDATE SET announced = u.announced`;
        if (n > 0) await tx`INSERT INTO presence_sockets (user_id, node_id, n) VALUES (${userId}, ${node}, ${n}) ON CONFLICT (user_id, node_id) DO UPDATE SET n = excluded.n`;
        else await tx`DELETE FROM presence_sockets WHERE user_id = ${userId} AND node_id = ${node}`;
        const [row] = (await tx`UPDATE presence_users SET total = total + ${n - before}::int WHERE user_id = ${userId} RETURNING total, announced`) as { total: number; announced: boolean }[];
        if (row!.total > 0) continue;
        await tx`DELETE FROM presence_users WHERE user_id = ${userId}`;
        if (row!.announced) offline.push(userId);
      }
      return offline;
    });
  }

  protected async storeConnect(userId: string, max: number) {
    const [{ arrival }] = await this.sql`SELECT presence_connect(${userId}, ${this.o.nodeId}, ${max}::int) AS arrival`;
    return arrival as Arrival;
  }

  protected async storeDisconnect(userId: string) {
    const [{ gen }] = await this.sql`SELECT presence_disconnect(${userId}, ${this.o.nodeId})::text AS gen`;
    return gen === "-1" ? null : (gen as string);
  }

  protected async storeSettle(userId: string, generation: string) {
    const [row] = await this.sql`DELETE FROM presence_users WHERE user_id = ${userId} AND total = 0 AND gen = ${generation}::bigint RETURNING announced`;
    return row ? (row.announced as boolean) : null;
  }

  protected async storeAnnounced(userId: string) {
    await this.sql`UPDATE presence_users SET announced = true WHERE user_id = ${userId}`;
  }

  protected async storeLeave(graceMs: number) {
    // By the database's clock, as every deadline (presence_beat).
    await this.sql`UPDATE presence_nodes SET deadline = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + ${graceMs}::bigint WHERE node_id = ${this.o.nodeId}`;
  }

  async connections(userId: string) {
    const [row] = await this.sql`SELECT total FROM presence_users WHERE user_id = ${userId}`;
    return (row?.total as number | undefined) ?? 0;
  }

  async online(userIds: string[]) {
    if (!userIds.length) return [];
    const rows = await this.sql`SELECT user_id FROM presence_users WHERE user_id = ANY(${userIds}::text[]) AND (total > 0 OR announced)`;
    const on = new Set((rows as { user_id: string }[]).map((r) => r.user_id));
    return userIds.map((id) => on.has(id));
  }
}
