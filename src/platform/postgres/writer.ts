/**
 * How PostgreSQL store code changes data: `events.write(async (w) => …)` runs one
 * transaction; `w.tx` is the drizzle transaction every query of the change goes through,
 * and `w.emit` appends an event to the log in it (the PostgreSQL twin of events/log.ts's
 * Writer). Committed events reach the onCommit listeners in seq order.
 */
import type { StoredEvent } from "../../events/log";
import type { PgDB } from "./client";
import type { PgTx, PgWriter } from "./event-log";

export type { PgTx, PgWriter };
/** A query runner: the database itself (reads outside a change) or a change's transaction. */
export type PgRunner = PgDB | PgTx;

export interface PgEvents {
  readonly epoch: string;
  write<T>(fn: (w: PgWriter) => Promise<T>): Promise<T>;
  onCommit(listener: (events: StoredEvent[]) => void): () => void;
}
