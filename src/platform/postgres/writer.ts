/**
 * How PostgreSQL store code changes data: `events.write(async (w) => …)` runs one
 * transaction; `w.tx` is the drizzle transaction every query of the change goes through,
 * and `w.emit` appends an event to the log in it (the PostgreSQL twin of events/log.ts's
 * Writer). Committed events reach the onCommit listeners in seq order.
 */
import type { EventData, EventType } from "../../models";
import type { StoredEvent } from "../../events/log";
import type { PgDB } from "./client";

export type PgTx = Parameters<Parameters<PgDB["transaction"]>[0]>[0];
/** A query runner: the database itself (reads outside a change) or a change's transaction. */
export type PgRunner = PgDB | PgTx;

export interface PgWriter {
  tx: PgTx;
  emit<T extends EventType>(topic: string, type: T, data: EventData<T>): Promise<number>;
  /** The same event to many topics, its data stored once; returns the last seq (0 for none). */
  emitMany<T extends EventType>(topics: string[], type: T, data: EventData<T>): Promise<number>;
}

export interface PgEvents {
  readonly epoch: string;
  write<T>(fn: (w: PgWriter) => Promise<T>): Promise<T>;
  onCommit(listener: (events: StoredEvent[]) => void): () => void;
}
