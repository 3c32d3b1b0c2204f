/**
 * A first PostgreSQL event log, for one node: each change is one transaction that takes a
 * transaction-scoped advisory lock before its first append, so seqs are taken in commit
 * order, and its events go to the listeners after the commit. The cluster's log (a
 * follower per node reading in seq order) replaces it.
 */
import { sql } from "drizzle-orm";
import type { EventFeed, EventRow, ReplayedEvent, StoredEvent } from "../../events/log";
import { iso } from "../../lib/time";
import type { PgDB } from "./client";
import type { PgEvents, PgWriter } from "./writer";

const APPEND_LOCK = 0x7365716e; // "seqn"

export class InterimPgEventLog implements PgEvents, EventFeed {
  private listeners: ((events: StoredEvent[]) => void)[] = [];
  deliveredSeq = 0;

  async waitFor(seq: number) {
    return seq <= this.deliveredSeq;
  }

  async lastSeq() {
    return Number((await this.db.execute<{ last: string }>(sql`SELECT coalesce(max(seq), 0) AS last FROM events`))[0]!.last);
  }

  replay(): Promise<ReplayedEvent[]> {
    throw new Error("replay is not available in cluster mode yet");
  }

  replayRaw(): Promise<EventRow[]> {
    throw new Error("replay is not available in cluster mode yet");
  }

  private constructor(private db: PgDB, readonly epoch: string) {}

  static async open(db: PgDB): Promise<InterimPgEventLog> {
    const rows = await db.execute<{ value: string }>(sql`SELECT value FROM meta WHERE key = 'epoch'`);
    return new InterimPgEventLog(db, rows[0]!.value);
  }

  onCommit(listener: (events: StoredEvent[]) => void) {
    this.listeners.push(listener);
    return () => void (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  async write<T>(fn: (w: PgWriter) => Promise<T>): Promise<T> {
    const pending: StoredEvent[] = [];
    const result = await this.db.transaction(async (tx) => {
      let locked = false;
      const append = async (topics: string[], type: string, data: unknown) => {
        if (!locked) await tx.execute(sql`SELECT pg_advisory_xact_lock(${APPEND_LOCK})`), (locked = true);
        const now = Date.now();
        const json = JSON.stringify(data);
        let payload: number | null = null;
        if (topics.length > 1) payload = Number((await tx.execute<{ id: string }>(sql`INSERT INTO event_payloads (data) VALUES (${json}) RETURNING id`))[0]!.id);
        let seq = 0;
        for (const topic of topics) {
          const [row] = await tx.execute<{ seq: string }>(
            sql`INSERT INTO events (topic, type, data, payload_id, created_at) VALUES (${topic}, ${type}, ${payload === null ? json : ""}, ${payload}, ${now}) RETURNING seq`,
          );
          seq = Number(row!.seq);
          pending.push({ seq, topic, type, data, json, timestamp: iso(now) });
        }
        return seq;
      };
      return fn({ tx, emit: (topic, type, data) => append([topic], type, data), emitMany: (topics, type, data) => append(topics, type, data) });
    });
    if (pending.length) this.deliveredSeq = Math.max(this.deliveredSeq, pending[pending.length - 1]!.seq);
    for (const listener of this.listeners) listener(pending);
    return result;
  }
}
