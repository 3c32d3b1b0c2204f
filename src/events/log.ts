/**
 * The event log: the backbone of realtime and of resume.
 *
 * `write(fn)` runs `fn` in one synchronous SQLite transaction. Events that `fn` emits are
 * appended to the `events` table inside that transaction, so a change and its events
 * commit together or not at all. After the commit, and only then, the committed events go
 * to the after-commit listeners (the hub publishes them to live sockets).
 */
import type { Statement } from "bun:sqlite";
import type { DB } from "../db/client";
import { AppError } from "../errors";
import { iso } from "../lib/time";
import { readEpoch } from "./epoch";
import { claimsReply, currentRequest, type Request } from "./replies";
import type { EventData, EventType } from "../models";

export interface StoredEvent {
  seq: number;
  topic: string;
  type: string;
  data: unknown;
  /** `data` as stored: serialised once, reused for every frame. */
  json: string;
  timestamp: string;
  /** The request this event answers, for the socket that made it (./replies). */
  replyTo?: Request;
}

/**
 * Inside EventLog.write, queries go through the same drizzle instance: bun:sqlite has one
 * connection, so everything it runs between BEGIN and COMMIT is part of the transaction.
 */
export type Tx = DB;

export interface Writer {
  /** The drizzle transaction: every query of the change goes through it. */
  tx: Tx;
  /**
   * Appends an event to the log, in this transaction; returns its seq. Its data is typed by the
   * catalogue (src/models.ts); `json` is that data already serialised, by a caller that needs
   * the text too (a send answers with it).
   */
  emit<T extends EventType>(topic: string, type: T, data: EventData<T>, json?: string): number;
  /** Appends the same event to many topics, its data serialised and stored once; returns the last seq (0 for none). */
  emitMany<T extends EventType>(topics: string[], type: T, data: EventData<T>): number;
}

interface QueuedWrite<T> { fn: (w: Writer) => T; resolve: (v: T) => void; reject: (e: unknown) => void; request: Request | null }

export type CommitListener = (events: StoredEvent[]) => void;

/**
 * A user's stream, as their sockets would have had it live: their own topic, and the topics
 * of the conversations they are in now from the point they joined each (`joined_seq`), plus
 * any earlier stints of theirs in those conversations (`member_stints`).
 * Parameters: 1 since, 2 user id, 3 limit, 4 the window's last seq. Written once for both
 * dialects: `p(n)` spells parameter n, `greatest` the two-argument maximum (SQLite's
 * scalar max, PostgreSQL's greatest), `noSeq` a NULL seq (PostgreSQL types a bare NULL
 * as text); cluster mode's log (src/platform/postgres) uses it too. `byTopicId`: events are
 * found by their topic's number in event_topics (SQLite; see events.topicId), else by the
 * topic's text.
 */
export function replayQueries(p: (n: 1 | 2 | 3 | 4) => string, greatest: string, noSeq: string, byTopicId = false) {
  const mine = `WITH mine(topic, after, before) AS (
    SELECT 'user:' || ${p(2)}, 0, ${noSeq}
    UNION ALL SELECT 'conv:' || conversation_id, joined_seq, ${noSeq} FROM conversation_members WHERE user_id = ${p(2)}
    UNION ALL SELECT 'conv:' || s.conversation_id, s.joined_seq, s.left_seq FROM member_stints s
      WHERE s.user_id = ${p(2)} AND EXISTS (SELECT 1 FROM conversation_members m WHERE m.conversation_id = s.conversation_id AND m.user_id = ${p(2)}))`;
  return {
    replay: `${mine}
  SELECT e.seq, e.type, coalesce(p.data, e.data) AS data, e.created_at
  FROM mine ${byTopicId ? "JOIN event_topics t ON t.topic = mine.topic JOIN events e ON e.topic_id = t.id" : "JOIN events e ON e.topic = mine.topic"} AND e.seq > ${greatest}(${p(1)}, mine.after) AND e.seq <= ${p(4)} AND e.seq < coalesce(mine.before, ${p(4)} + 1)
  LEFT JOIN event_payloads p ON p.id = e.payload_id
  ORDER BY e.seq LIMIT ${p(3)}`,
    /**
     * The user's first seq after parameter 1 (one index seek per topic), so a replay skips
     * the stretches of the log that hold nothing of theirs instead of reading them window
     * by window.
     */
    nextSeq: `${mine}
  SELECT min((SELECT e.seq FROM events e WHERE ${byTopicId ? "e.topic_id = (SELECT id FROM event_topics WHERE topic = mine.topic)" : "e.topic = mine.topic"} AND e.seq > ${greatest}(${p(1)}, mine.after)
                AND e.seq < coalesce(mine.before, 9007199254740991) ORDER BY e.seq LIMIT 1)) AS next
  FROM mine`,
  };
}

const SQLITE_REPLAY = replayQueries((n) => `?${n}`, "max", "NULL", true);
export const REPLAY_SQL = SQLITE_REPLAY.replay;
export const NEXT_SEQ_SQL = SQLITE_REPLAY.nextSeq;

/** How many seqs one pruning transaction covers. */
export const PRUNE_CHUNK = 20_000;

/** How many seqs one replay query looks at. */
export const REPLAY_WINDOW = 5000;

export const userTopic = (userId: string) => `user:${userId}`;
export const convTopic = (conversationId: string) => `conv:${conversationId}`;

export interface EventRow { seq: number; type: string; data: string; created_at: number }

/**
 * What live delivery and resume read of the log, whichever engine holds it: committed
 * events in seq order (onCommit), how far they have been delivered on this node, and replay.
 */
export interface EventFeed {
  readonly epoch: string;
  onCommit(listener: CommitListener): () => void;
  /** Every event up to it has been handed to the onCommit listeners. */
  readonly deliveredSeq: number;
  /** Resolves true once `seq` has been delivered, false after `timeoutMs`. */
  waitFor(seq: number, timeoutMs?: number): Promise<boolean>;
  lastSeq(): number | Promise<number>;
  replay(userId: string, since: number, limit: number, epoch?: string): ReplayedEvent[] | Promise<ReplayedEvent[]>;
  /** Events after `since` up to `upTo` that `userId` would have received live, `data` as stored JSON. */
  replayRaw(userId: string, since: number, limit: number, epoch?: string, upTo?: number): EventRow[] | Promise<EventRow[]>;
  /** The highest seq that pruning removed; a `since` below it cannot be served. */
  prunedThrough(): number | Promise<number>;
  /** Deletes the events older than `maxAgeMs` as of `now`, all at once; how many it deleted. */
  prune(maxAgeMs: number, now?: number): number | Promise<number>;
  /** As prune, a chunk at a time with other work in between (the hourly run); stops between chunks once `signal` aborts. */
  pruneGradually(maxAgeMs: number, signal?: AbortSignal): Promise<number>;
}

/** Topic numbers read or made by one change, not yet known to have committed. */
type Fresh = [topic: string, id: number][];

export interface ReplayedEvent { seq: number; type: string; data: unknown; timestamp: string }

export class EventLog implements EventFeed {
  /** This log's timeline (see ./epoch): fixed for the life of the database file. */
  readonly epoch: string;
  private listeners: CommitListener[] = [];
  private insert: Statement;
  private insertShared: Statement;
  private insertPayload: Statement;
  private insertTopic: Statement;
  private topicIdQuery: Statement;
  /**
   * Topic numbers known to be committed: a number read or made inside a change that then
   * rolled back may be gone, and given to another topic next (see `fresh` in run).
   */
  private topicIds = new Map<string, number>();
  private replayQuery: Statement<EventRow>;
  private nextSeqQuery: Statement<{ next: number | null }>;
  private inWrite = false;
  /** bun:sqlite's transaction wrapper, made once: BEGIN, the callback, COMMIT (ROLLBACK on throw). */
  private transaction: <T>(fn: () => T) => T;
  private savepoint: Statement;
  private totalChanges: Statement;
  private lastSeqQuery: Statement;
  private release: Statement;
  private rollbackTo: Statement;

  constructor(
    private db: DB,
    private onListenerError: (err: unknown) => void = (err) => console.error(err),
  ) {
    const sqlite = db.$client;
    this.epoch = readEpoch(sqlite);
    this.transaction = sqlite.transaction((fn: () => unknown) => fn()) as <T>(fn: () => T) => T;
    this.savepoint = sqlite.prepare("SAVEPOINT change");
    this.release = sqlite.prepare("RELEASE change");
    this.rollbackTo = sqlite.prepare("ROLLBACK TO change");
    this.insert = sqlite.prepare("INSERT INTO events (topic, topic_id, type, data, created_at) VALUES (?, ?, ?, ?, ?)");
    this.insertShared = sqlite.prepare("INSERT INTO events (topic, topic_id, type, data, payload_id, created_at) VALUES (?, ?, ?, '', ?, ?)");
    this.insertTopic = sqlite.prepare("INSERT INTO event_topics (topic) VALUES (?) ON CONFLICT (topic) DO NOTHING");
    this.topicIdQuery = sqlite.prepare("SELECT id FROM event_topics WHERE topic = ?");
    this.insertPayload = sqlite.prepare("INSERT INTO event_payloads (data) VALUES (?)");
    this.replayQuery = sqlite.prepare(REPLAY_SQL);
    this.nextSeqQuery = sqlite.prepare(NEXT_SEQ_SQL);
    this.totalChanges = sqlite.prepare("SELECT total_changes()");
    this.lastSeqQuery = sqlite.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'");
  }

  /** Registers a listener for committed events; returns a function that removes it. */
  onCommit(listener: CommitListener): () => void {
    this.listeners.push(listener);
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  /**
   * Runs `fn` in one transaction (it must be synchronous), then hands its events to the
   * listeners. `request`: the socket's request that one of its events may answer
   * (./replies); the caller's by default, null for none.
   */
  write<T>(fn: (w: Writer) => T, request: Request | null = currentRequest() ?? null): T {
    if (this.inWrite) throw new Error("EventLog.write is not re-entrant");
    const pending: StoredEvent[] = [];
    const fresh: Fresh = [];
    this.inWrite = true;
    let result: T;
    try {
      // bun:sqlite's own transaction is much cheaper per call than drizzle's.
      result = this.transaction(() => this.run(fn, pending, fresh, request));
    } finally {
      this.inWrite = false;
    }
    this.keepTopics(fresh);
    this.publish(pending);
    return result;
  }

  /**
   * Group commit: like `write`, but changes queued in the same turn of the event loop share
   * one transaction, each inside its own savepoint, so one that throws rolls back alone.
   * A commit writes every page it touched to the WAL; a batch of messages touches mostly
   * the same pages, so under load this costs a fraction of one commit per change. Nothing
   * is published before the batch commits, and everything is published before the next
   * turn, so what has committed has always been published when other code runs.
   */
  writeBatched<T>(fn: (w: Writer) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // The request is read here: the batch runs later, outside the handler's context.
      this.queue.push({ fn, resolve, reject, request: currentRequest() ?? null } as QueuedWrite<unknown>);
      if (this.queue.length === 1) setImmediate(this.flush);
    });
  }

  private queue: QueuedWrite<unknown>[] = [];

  private flush = () => {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 1) {
      // Alone (light load): its own transaction rolls back alone, no savepoint needed.
      const item = batch[0]!;
      let value: unknown;
      try {
        value = this.write(item.fn, item.request);
      } catch (e) {
        return item.reject(e);
      }
      return item.resolve(value);
    }
    const outcomes: { ok: boolean; value: unknown; events: StoredEvent[]; fresh: Fresh }[] = [];
    this.inWrite = true;
    try {
      this.transaction(() => {
        for (const item of batch) {
          const events: StoredEvent[] = [];
          const fresh: Fresh = [];
          this.savepoint.run();
          try {
            outcomes.push({ ok: true, value: this.run(item.fn, events, fresh, item.request), events, fresh });
            this.release.run();
          } catch (e) {
            // SQLite may have ended the whole transaction itself (it can on a full disk):
            // nothing of the batch is left to commit, so every change in it fails with
            // this error rather than with ROLLBACK TO's "no such savepoint".
            if (!this.db.$client.inTransaction) throw e;
            this.rollbackTo.run();
            this.release.run();
            outcomes.push({ ok: false, value: e, events: [], fresh: [] });
          }
        }
      });
    } catch (e) {
      for (const item of batch) item.reject(e);
      return;
    } finally {
      this.inWrite = false;
    }
    for (const o of outcomes) this.keepTopics(o.fresh);
    this.publish(outcomes.flatMap((o) => o.events));
    batch.forEach((item, i) => (outcomes[i]!.ok ? item.resolve(outcomes[i]!.value) : item.reject(outcomes[i]!.value)));
  };

  /**
   * Runs a change inside an open transaction, appending its events to `pending`, and the
   * topic numbers it read or made to `fresh` (kept once the change has committed).
   */
  private run<T>(fn: (w: Writer) => T, pending: StoredEvent[], fresh: Fresh, request: Request | null): T {
    const r = fn({
      tx: this.db,
      emit: (topic, type, data, json = JSON.stringify(data)) => {
        const now = Date.now();
        const seq = Number(this.insert.run(topic, this.topicId(topic, fresh), type, json, now).lastInsertRowid);
        const event: StoredEvent = { seq, topic, type, data, json, timestamp: iso(now) };
        if (claimsReply(request, type, topic)) event.replyTo = request;
        pending.push(event);
        return seq;
      },
      emitMany: (topics, type, data) => {
        const now = Date.now();
        const json = JSON.stringify(data);
        const payload = Number(this.insertPayload.run(json).lastInsertRowid);
        const timestamp = iso(now);
        let seq = 0;
        for (const topic of topics) {
          seq = Number(this.insertShared.run(topic, this.topicId(topic, fresh), type, payload, now).lastInsertRowid);
          const event: StoredEvent = { seq, topic, type, data, json, timestamp };
          if (claimsReply(request, type, topic)) event.replyTo = request;
          pending.push(event);
        }
        return seq;
      },
    });
    if (r instanceof Promise) throw new Error("EventLog.write needs a synchronous function");
    return r;
  }

  /** A topic's number, made when it has none yet (inside the change's transaction). */
  private topicId(topic: string, fresh: Fresh): number {
    const known = this.topicIds.get(topic);
    if (known !== undefined) return known;
    this.insertTopic.run(topic);
    const id = (this.topicIdQuery.values(topic) as [[number]])[0][0];
    fresh.push([topic, id]);
    return id;
  }

  /** The topic numbers of a change that committed. Bounded: cleared when full (they are read again). */
  private keepTopics(fresh: Fresh) {
    for (const [topic, id] of fresh) {
      if (this.topicIds.size >= 100_000) this.topicIds.clear();
      this.topicIds.set(topic, id);
    }
  }

  /** Hands committed events to the listeners; a failing listener is logged, never rethrown (the change has committed). */
  private publish(events: StoredEvent[]) {
    if (!events.length) return;
    for (const listener of this.listeners) {
      try {
        listener(events);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  /**
   * The highest seq ever appended (0 for an empty log). Every new socket asks for it (twice);
   * a read of parley.db outside a transaction takes and releases its WAL read lock, a
   * visible share of a connect (issue #17). The value is kept with this connection's
   * `total_changes()` when read (a function of the connection: no lock, no page read), and
   * read again only once anything was written through this connection since, which is the
   * only one that appends events (the log, or a statement run directly on it).
   */
  lastSeq(): number {
    const read = () => (this.lastSeqQuery.values() as [number][])[0]?.[0] ?? 0;
    // Inside a transaction the value may still be rolled back (total_changes() is not): read, never kept.
    if (this.db.$client.inTransaction) return read();
    const changes = (this.totalChanges.values() as [[number]])[0][0];
    if (changes !== this.lastSeqAt) [this.lastSeqKnown, this.lastSeqAt] = [read(), changes];
    return this.lastSeqKnown;
  }

  private lastSeqKnown = 0;
  /** `total_changes()` when lastSeqKnown was read (-1: never). */
  private lastSeqAt = -1;

  /**
   * Live delivery's position. Committed events are published before any other code runs,
   * so on one node it is always the log's end (cluster mode's follower may lag behind it).
   */
  get deliveredSeq(): number {
    return this.lastSeq();
  }

  /** Resolves once `seq` has been delivered: at once, here (see deliveredSeq). */
  waitFor(_seq: number, _timeoutMs?: number): Promise<boolean> {
    return Promise.resolve(true);
  }

  /** The highest seq that pruning removed; a `since` below it cannot be served. */
  prunedThrough(): number {
    const row = this.db.$client.query("SELECT value FROM meta WHERE key = 'events_pruned_through'").all()[0] as { value: string } | undefined;
    return row ? Number(row.value) : 0;
  }

  /**
   * Events after `since` that `userId` would have received live, in seq order.
   * Throws sync_reset when `since` is older than the retained log, or `epoch` (when given)
   * is not this log's.
   */
  replay(userId: string, since: number, limit: number, epoch?: string): ReplayedEvent[] {
    return this.replayRaw(userId, since, limit, epoch).map((r) => ({ seq: r.seq, type: r.type, data: JSON.parse(r.data), timestamp: iso(r.created_at) }));
  }

  /**
   * As replay, with `data` left as the stored JSON text (for frames). Reads the log in
   * windows of seq, so each query sorts at most one window, however long the backlog.
   * `since` past the end of the log (a restored backup, a client from another server) is
   * a sync_reset too: the client's position means nothing here. So is a position in
   * another timeline (`epoch`); without an epoch (a v1 client) only the seq is checked.
   */
  replayRaw(userId: string, since: number, limit: number, epoch?: string, upTo = Number.MAX_SAFE_INTEGER): EventRow[] {
    const last = this.lastSeq();
    if (epoch !== undefined && epoch !== this.epoch) throw this.reset(last, "this position belongs to another timeline of the event log (the server was restored from a backup); reload through REST");
    if (since < this.prunedThrough() || since > last) throw this.reset(last, "since is outside the retained event log; reload through REST");
    const rows: EventRow[] = [];
    const end = Math.min(last, upTo);
    for (let from = since; from < end && rows.length < limit; ) {
      const page = this.replayQuery.all(from, userId, limit - rows.length, Math.min(from + REPLAY_WINDOW, end));
      rows.push(...page);
      if (page.length) {
        from += REPLAY_WINDOW;
        continue;
      }
      // An empty window: go straight to the user's next event, if any.
      const next = this.nextSeqQuery.all(from + REPLAY_WINDOW, userId)[0]?.next;
      if (next == null) break;
      from = next - 1;
    }
    return rows;
  }

  /** sync_reset, with where to go on from: the log's position and epoch now. */
  private reset(last: number, message: string) {
    return new AppError("sync_reset", message, { last_seq: last, epoch: this.epoch });
  }

  /**
   * Deletes events older than `maxAgeMs`, PRUNE_CHUNK seqs per transaction, and remembers
   * how far it went after each, yielding to the event loop between chunks (an hour of
   * events at capacity is millions of rows: one transaction would stall every request for
   * seconds). Resolves with how many events were deleted.
   */
  async pruneGradually(maxAgeMs: number, signal?: AbortSignal): Promise<number> {
    let removed = 0;
    for (const n of this.pruneChunks(maxAgeMs, Date.now())) {
      removed += n;
      await new Promise((r) => setImmediate(r));
      if (signal?.aborted) break; // the app is stopping: the database is about to close
    }
    return removed;
  }

  /** As pruneGradually, all at once (at start, and in tests). */
  prune(maxAgeMs: number, now = Date.now()): number {
    let removed = 0;
    for (const n of this.pruneChunks(maxAgeMs, now)) removed += n;
    return removed;
  }

  /** Prunes one chunk per step; yields how many events each removed. */
  private *pruneChunks(maxAgeMs: number, now: number): Generator<number> {
    const top = this.lastSeqBefore(now - maxAgeMs);
    for (let upTo = this.prunedThrough(); top !== null && upTo < top; ) {
      upTo = Math.min(top, upTo + PRUNE_CHUNK);
      yield this.pruneThrough(upTo);
    }
  }

  /** One chunk: events up to `top`, the shared payloads only they used, and stints that ended before. */
  private pruneThrough(top: number): number {
    const sqlite = this.db.$client;
    return sqlite.transaction(() => {
      sqlite.run(
        `DELETE FROM event_payloads WHERE id IN (SELECT payload_id FROM events WHERE seq <= ?1 AND payload_id IS NOT NULL)
           AND NOT EXISTS (SELECT 1 FROM events e WHERE e.payload_id = event_payloads.id AND e.seq > ?1)`,
        [top],
      );
      const { changes } = sqlite.run("DELETE FROM events WHERE seq <= ?", [top]);
      sqlite.run("DELETE FROM member_stints WHERE left_seq <= ?", [top]);
      sqlite.run("INSERT INTO meta (key, value) VALUES ('events_pruned_through', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [String(top)]);
      return changes;
    })();
  }

  /**
   * The highest seq of an event created before `cutoff`, by binary search over seq: times
   * grow with seq, so this needs no index on created_at (one less index to update on every
   * appended event).
   */
  private lastSeqBefore(cutoff: number): number | null {
    const sqlite = this.db.$client;
    const bounds = sqlite.query("SELECT min(seq) AS lo, max(seq) AS hi FROM events").all()[0] as { lo: number | null; hi: number | null };
    if (bounds.lo === null || bounds.hi === null) return null;
    const at = sqlite.query("SELECT seq, created_at FROM events WHERE seq >= ? ORDER BY seq LIMIT 1");
    let [lo, hi, found] = [bounds.lo, bounds.hi, null as number | null];
    while (lo <= hi) {
      const mid = Math.floor((lo + hi) / 2);
      const row = at.all(mid)[0] as { seq: number; created_at: number } | undefined;
      if (row && row.created_at < cutoff) {
        found = row.seq;
        lo = row.seq + 1;
      } else hi = mid - 1;
    }
    return found;
  }
}
