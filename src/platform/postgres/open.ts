/**
 * Cluster mode's engine, opened before the app is built (it is asynchronous): PostgreSQL
 * migrated, and its event log.
 */
import type { Config } from "../../config";
import type { Logger } from "../../log";
import { migratePostgres, openPostgres, type PgDB } from "./client";
import { PgEventLog } from "./event-log";

export interface PostgresParts {
  db: PgDB;
  /** Started: its follower delivers every node's committed events to this one's listeners. */
  events: PgEventLog;
  /** What to call after each transaction that appended events: tells the other nodes (the broker's wake-up). */
  onAppended(tell: () => void): void;
  /** Stops the follower and closes the connections. */
  close(): Promise<void>;
}

export async function openPostgresParts(config: Config, log: Logger): Promise<PostgresParts> {
  const db = openPostgres(config.databaseUrl!, config.databasePoolSize);
  const applied = await migratePostgres(db);
  if (applied) log.info({ applied }, "PostgreSQL migrations applied");
  let tell = () => {};
  const events = await PgEventLog.open(db, { onError: (err) => log.error({ err }, "event log follower failed"), onAppended: () => tell() });
  await events.start();
  return {
    db,
    events,
    onAppended: (fn) => void (tell = fn),
    async close() {
      await events.stop();
      await db.$client.close();
    },
  };
}

/**
 * What cluster mode has not yet moved off SQLite answers 500 with this name, rather than
 * quietly reading or writing a database file of one node.
 */
export function notInClusterMode<T extends object>(what: string, ported: Partial<T> = {}): T {
  return new Proxy(ported as T, {
    get(target, key) {
      if (key in target || key === "then") return Reflect.get(target, key);
      throw new Error(`${what} is not available in cluster mode yet (${String(key)})`);
    },
  });
}
