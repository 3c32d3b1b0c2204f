/**
 * Cluster mode's event log: src/events/log.ts on PostgreSQL, shared by every node.
 *
 * Writers append events in the transaction of their change (`write`), as on SQLite. What
 * differs is delivery: any node may have committed an event, so each node runs a follower
 * that reads the log in seq order and hands every committed event, exactly once and in
 * seq order, to this node's onCommit listeners, its own writes included. It is woken at
 * once by a local commit, by `LISTEN/NOTIFY` (writers notify after commit), by `wake()`
 * (the broker's wake-ups), and polls slowly only as a safety net.
 *
 * The hazard (STACK-NOTES): `seq` comes from a sequence, taken at insert time, so a
 * transaction that took seq 1 can commit after one that took seq 2; a reader that moved
 * past 2 would never see 1. Two orderings make seq safe to follow (README "Cluster mode:
 * the event log" has the measurements):
 * - "lock": appends hold a transaction-scoped advisory lock from the first event to the
 *   commit, so seqs commit in order; whatever a reader sees is final below it.
 * - "horizon": no lock. An appending transaction takes its transaction id before its
 *   first seq (recorded in `events.xid`). The follower delivers the log's visible prefix
 *   without holes. A hole (seq g missing while g+1 is visible in snapshot S) belongs to a
 *   transaction that had its id before S was taken and had not committed in S (or rolled
 *   back), so it is final, a rolled-back seq, once every id assigned before S has ended:
 *   once the horizon `pg_snapshot_xmin(pg_current_snapshot())` reaches the next id as of
 *   S. Until then the follower waits there.
 * Both need the sequence's default CACHE 1 (a session caching seqs hands them out of order).
 *
 * The epoch (PROTOCOL §7.5) is read once, at open. `parley new-epoch` replaces it (after a
 * restore of the database, with every node stopped); a node that was left running would go
 * on naming the old one, so with an `onEpochChange` listener the safety poll re-reads it.
 *
 * The replay/live seam: `deliveredSeq` is the follower's position; every event up to it is
 * final and has been handed to the listeners, every later one will be. `replayRaw` serves
 * up to a given position (by default `deliveredSeq`), so a socket subscribed when the
 * follower stood at N, replayed up to N, then fed live events > N, gets each event once.
 */
import type { SQL } from "bun";
import { sql } from "drizzle-orm";
import { AppError } from "../../errors";
import { iso } from "../../lib/time";
import type { EventData, EventType } from "../../models";
import { PRUNE_CHUNK, REPLAY_WINDOW, replayQueries, type CommitListener, type EventRow, type StoredEvent } from "../../events/log";
import { NoEpochError } from "../../events/epoch";
import { claimsReply, currentRequest, ExpectedReplies } from "../../events/replies";
import type { PgDB } from "./client";
import { pgUnavailable } from "./errors";

/** The drizzle transaction a change runs in. */
export type PgTx = Parameters<Parameters<PgDB["transaction"]>[0]>[0];

export interface PgWriter {
  /** The drizzle transaction: every query of the change goes through it. */
  tx: PgTx;
  /** Appends an event in this transaction; resolves with its seq. Its data is typed by the catalogue (src/models.ts). */
  emit<T extends EventType>(topic: string, type: T, data: EventData<T>): Promise<number>;
  /** Appends the same event to many topics, its data serialised and stored once; resolves with the highest seq (0 for none). */
  emitMany<T extends EventType>(topics: string[], type: T, data: EventData<T>): Promise<number>;
}

export type Ordering = "lock" | "horizon";

export interface PgEventLogOptions {
  /** How seq is kept in commit order (see above); "horizon" unless told. */
  ordering?: Ordering;
  /** The safety poll of the follower, in ms. */
  pollMs?: number;
  /** The LISTEN/NOTIFY channel of the log. */
  channel?: string;
  /** How many seqs one pruning transaction covers. */
  pruneChunk?: number;
  /** Where a failing listener, a failed follower read or NOTIFY are reported. */
  onError?: (err: unknown) => void;
  /**
   * Called after each transaction that appended has ended (committed or rolled back: a
   * rolled-back seq is a hole others can now pass): the broker sends its wake-up there.
   */
  onAppended?: () => void;
}

/** Advisory lock keys (any constants, distinct from the migration lock's). */
const APPEND_LOCK = 0x7061726d; // ordering "lock"
const PRUNE_LOCK = 0x7061726e;

/** How many events the follower reads per query. */
const FOLLOW_BATCH = 1000;
/** While the follower waits at a hole, how often it looks again. */
const HOLE_RETRY_MS = 10;

/**
 * Per ordering, a one-row CTE `g(xid)` that runs before the insert takes its seqs: the
 * transaction's id (taken now if it has none yet), or the append lock.
 */
export const GATE: Record<Ordering, string> = {
  horizon: "SELECT pg_current_xact_id() AS xid",
  lock: `SELECT NULL::xid8 AS xid FROM pg_advisory_xact_lock(${APPEND_LOCK})`,
};

/** Replay queries in PostgreSQL's spelling: the same text as SQLite's. */
export const PG_REPLAY = replayQueries((n) => (n === 2 ? "$2::text" : `$${n}::bigint`), "greatest", "NULL::bigint");

/**
 * The statement snapshot's horizon `xmin` (every transaction id below it has ended) and
 * `next`, the next transaction id to be assigned as read after the snapshot was taken:
 * every transaction that had an id when the snapshot was taken has one below it. (The
 * snapshot's own xmax is not that bound: it is the latest *completed* id + 1, and a
 * transaction still running may hold a higher one.) `age(xid)`, in a transaction without
 * an id, is the next id minus `xid`, read once per transaction, here during the statement
 * (so the query must run as a transaction of its own: Bun.sql ends each query with a Sync,
 * pipelined or not); it counts in 32 bits, from a base that is a normal id (not 0–2) near
 * the snapshot.
 */
const HORIZON_CTE = `h AS MATERIALIZED (
    SELECT xmin, base + age((base % 4294967296)::text::xid) AS next FROM (
      SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin,
        CASE WHEN pg_snapshot_xmax(pg_current_snapshot())::text::bigint % 4294967296 < 3
          THEN pg_snapshot_xmax(pg_current_snapshot())::text::bigint - 5
          ELSE pg_snapshot_xmax(pg_current_snapshot())::text::bigint END AS base) s)`;

/** Events after $1, oldest first, each with the snapshot's horizon. */
const FOLLOW_SQL = `WITH ${HORIZON_CTE}
  SELECT e.seq, e.topic, e.type, coalesce(p.data, e.data) AS data, e.created_at, h.xmin, h.next
  FROM h, events e LEFT JOIN event_payloads p ON p.id = e.payload_id
  WHERE e.seq > $1::bigint ORDER BY e.seq LIMIT $2::int`;

const SNAPSHOT_SQL = `WITH ${HORIZON_CTE} SELECT (SELECT coalesce(max(seq), 0) FROM events) AS last, h.xmin, h.next FROM h`;

/** The highest seq ever taken (rolled-back ones included), and how far pruning went. */
const POSITIONS_SQL = `SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_seq_seq) AS last,
    coalesce((SELECT value::bigint FROM meta WHERE key = 'events_pruned_through'), 0) AS pruned`;

interface FollowRow { seq: string; topic: string; type: string; data: string; created_at: string; xmin: string; next: string }

/** A row of a replay query (int8 arrives as text) as the SQLite log's EventRow. */
const toEventRow = (r: { seq: string; type: string; data: string; created_at: string }): EventRow => ({
  seq: Number(r.seq),
  type: r.type,
  data: r.data,
  created_at: Number(r.created_at),
});

export class PgEventLog {
  private listeners: CommitListener[] = [];
  private readonly ordering: Ordering;
  private readonly channel: string;
  private readonly pollMs: number;
  private readonly pruneChunk: number;
  private readonly onError: (err: unknown) => void;
  private readonly onAppended: () => void;
  /** Tells this node's NOTIFYs from the others' (its own commits wake it directly). */
  private readonly nodeTag = Bun.randomUUIDv7();
  private readonly gate: string;

  // The follower.
  private position = 0;
  private running = false;
  private pumping = false;
  private wanted = false;
  /** The first hole the follower waits at, and `next` of the snapshot that first showed it. */
  private hole: { seq: number; threshold: bigint } | null = null;
  private holeTimer: ReturnType<typeof setTimeout> | null = null;
  private pollTimer: ReturnType<typeof setInterval> | null = null;
  private subscription: { unlisten(): Promise<void> } | null = null;
  private waiters: { seq: number; resolve: (reached: boolean) => void }[] = [];
  /** Whether the last read failed (the failure has been reported). */
  private failing = false;
  /** Told once when the database's epoch is no longer this log's. */
  private epochListeners: ((epoch: string) => void)[] = [];
  /** Events of this node's changes that answer a socket's request, until the follower delivers them. */
  private replies = new ExpectedReplies();
  private epochCheck: Promise<void> | null = null;
  private epochChanged = false;

  // NOTIFY, coalesced: at most one in flight, and one more if commits came meanwhile.
  private notifying: Promise<void> | null = null;
  private notifyAgain = false;

  private constructor(
    private readonly db: PgDB,
    /** This log's timeline (PROTOCOL §7.5), from `meta`. */
    readonly epoch: string,
    options: PgEventLogOptions,
  ) {
    this.ordering = options.ordering ?? "horizon";
    this.channel = options.channel ?? "parley_events";
    this.pollMs = options.pollMs ?? 1000;
    this.pruneChunk = options.pruneChunk ?? PRUNE_CHUNK;
    this.onError = options.onError ?? ((err) => console.error(err));
    this.onAppended = options.onAppended ?? (() => {});
    this.gate = GATE[this.ordering];
  }

  /** The database's epoch, if it has one (none: not migrated, or mid-restore). */
  private static async epochOf(db: PgDB): Promise<string | undefined> {
    const [row] = await db.$client`SELECT value FROM meta WHERE key = 'epoch'`;
    return row?.value as string | undefined;
  }

  /** Opens the log of a migrated database (its follower not started: see `start`). */
  static async open(db: PgDB, options: PgEventLogOptions = {}): Promise<PgEventLog> {
    const epoch = await PgEventLog.guard(() => PgEventLog.epochOf(db));
    if (epoch === undefined) throw new Error("the database has no event-log epoch: migrations were not applied");
    return new PgEventLog(db, epoch, options);
  }

  /**
   * Gives the database of `client` a new epoch (`parley new-epoch`); resolves with it.
   * Throws NoEpochError when the database has no `meta` table (not Parley's, or not migrated).
   */
  static async stampNewEpoch(client: SQL, where = "the database"): Promise<string> {
    const [table] = await client`SELECT to_regclass('meta') IS NOT NULL AS present`;
    if (!table.present) throw new NoEpochError(where);
    const epoch = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex");
    await client`INSERT INTO meta (key, value) VALUES ('epoch', ${epoch}) ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
    return epoch;
  }

  /** Runs a query, turning PostgreSQL being unreachable into 503 `unavailable`. */
  private static async guard<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      throw pgUnavailable(e) ?? e;
    }
  }

  /** Registers a listener for committed events, delivered by the follower; returns a function that removes it. */
  onCommit(listener: CommitListener): () => void {
    this.listeners.push(listener);
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  /**
   * Runs `fn` in one transaction; its events commit with its change. They reach the
   * listeners through the follower (woken at once), not from here: one path, in seq order,
   * for this node's events and every other node's. `waitFor(seq)` waits for that.
   */
  async write<T>(fn: (w: PgWriter) => Promise<T>): Promise<T> {
    let emitted = false;
    let last = 0;
    let result: T;
    const replies: number[] = [];
    try {
      result = await PgEventLog.guard(() => this.db.transaction((tx) => fn(this.writer(tx, (seq) => ((emitted = true), (last = Math.max(last, seq))), replies))));
    } catch (e) {
      this.replies.forget(replies);
      throw e;
    } finally {
      // Rolled back too: its seqs are holes the followers can now pass.
      if (emitted) this.committed();
    }
    // Read your writes, as on SQLite: when the change answers, this node has delivered its
    // events (its own sockets have them, a replay here includes them). The follower was
    // woken by the commit: one read of the log, unless an earlier transaction holds a hole.
    if (last) await this.waitFor(last, 5000);
    return result;
  }

  /**
   * The same as `write`: PostgreSQL commits concurrent transactions together itself, and
   * a transaction per change keeps one failing change from failing others. Kept so that
   * services call one API whatever the engine.
   */
  writeBatched<T>(fn: (w: PgWriter) => Promise<T>): Promise<T> {
    return this.write(fn);
  }

  private writer(tx: PgTx, emitted: (seq: number) => void, replies: number[]): PgWriter {
    const gate = sql.raw(this.gate);
    const request = currentRequest();
    return {
      tx,
      emit: async (topic, type, data) => {
        emitted(0);
        const rows = (await tx.execute(sql`WITH g AS MATERIALIZED (${gate})
          INSERT INTO events (topic, type, data, created_at, xid)
          SELECT ${topic}::text, ${type}::text, ${JSON.stringify(data)}::text, ${Date.now()}::bigint, g.xid FROM g RETURNING seq`)) as unknown as { seq: string }[];
        const seq = Number(rows[0]!.seq);
        emitted(seq);
        if (claimsReply(request, type, topic)) (this.replies.expect(seq, request), replies.push(seq));
        return seq;
      },
      emitMany: async (topics, type, data) => {
        if (topics.length === 0) return 0;
        emitted(0);
        const rows = (await tx.execute(sql`WITH g AS MATERIALIZED (${gate}),
          p AS (INSERT INTO event_payloads (data) VALUES (${JSON.stringify(data)}::text) RETURNING id)
          INSERT INTO events (topic, type, data, payload_id, created_at, xid)
          SELECT t.topic, ${type}::text, '', p.id, ${Date.now()}::bigint, g.xid
            FROM g, p, json_array_elements_text(${JSON.stringify(topics)}::text::json) AS t(topic) RETURNING seq, topic`)) as unknown as { seq: string; topic: string }[];
        const seq = rows.reduce((max, r) => Math.max(max, Number(r.seq)), 0);
        emitted(seq);
        for (const r of rows) if (claimsReply(request, type, r.topic)) (this.replies.expect(Number(r.seq), request), replies.push(Number(r.seq)));
        return seq;
      },
    };
  }

  /** After a transaction that appended: wake this node's follower, and the others. */
  private committed() {
    this.wake();
    try {
      this.onAppended();
    } catch (err) {
      this.onError(err);
    }
    this.notifyOthers();
  }

  private notifyOthers() {
    if (this.notifying) {
      this.notifyAgain = true;
      return;
    }
    this.notifying = this.db.$client
      .notify(this.channel, this.nodeTag)
      .catch((err) => this.onError(err))
      .finally(() => {
        this.notifying = null;
        if (this.notifyAgain) {
          this.notifyAgain = false;
          this.notifyOthers();
        }
      });
  }

  // ---- The follower ----

  /** The follower's position: every event up to it is final and has been handed to the listeners. */
  get deliveredSeq(): number {
    return this.position;
  }

  /**
   * Starts the follower at the log's end (what came before is for replay): LISTEN, the
   * safety poll. Under "horizon" it first waits until no transaction still running can
   * own a seq below that end.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.position = await PgEventLog.guard(() => this.safeEnd());
    this.hole = null;
    this.running = true;
    this.subscription = await PgEventLog.guard(() =>
      this.db.$client.listen(
        this.channel,
        (payload) => payload !== this.nodeTag && this.wake(),
        () => this.wake(), // (re)subscribed: commits may have been missed meanwhile
      ),
    );
    this.pollTimer = setInterval(() => {
      this.wake();
      if (this.epochListeners.length && !this.epochCheck && !this.epochChanged) this.epochCheck = this.checkEpoch().finally(() => (this.epochCheck = null));
    }, this.pollMs);
  }

  /** Stops the follower (after the NOTIFY in flight, if any); pending `waitFor`s resolve false. */
  async stop(): Promise<void> {
    this.running = false;
    while (this.notifying) await this.notifying;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.holeTimer) clearTimeout(this.holeTimer);
    this.pollTimer = this.holeTimer = null;
    await this.subscription?.unlisten().catch(() => {});
    this.subscription = null;
    for (const w of this.waiters.splice(0)) w.resolve(false);
  }

  /**
   * Calls `listener` (once) when the database's epoch is found to be another than this
   * log's, read at open: `parley new-epoch` ran while this node was running. Checked with
   * the safety poll (one primary-key read per poll, only once a listener is registered).
   */
  onEpochChange(listener: (epoch: string) => void) {
    this.epochListeners.push(listener);
  }

  private async checkEpoch() {
    // Unreachable, or mid-restore (no table, no row): the follower reports outages; look again at the next poll.
    const now = await PgEventLog.epochOf(this.db).catch(() => undefined);
    if (!this.running || now === undefined || now === this.epoch || this.epochChanged) return;
    this.epochChanged = true;
    for (const listener of this.epochListeners) {
      try {
        listener(now);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  private async safeEnd(): Promise<number> {
    const [first] = await this.db.$client.unsafe(SNAPSHOT_SQL);
    if (this.ordering === "lock") return Number(first.last);
    // Seqs up to `last` that are not visible yet belong to transactions that had their id then.
    const threshold = BigInt(first.next);
    for (let { xmin } = first; BigInt(xmin) < threshold; ) {
      await Bun.sleep(HOLE_RETRY_MS);
      [{ xmin }] = await this.db.$client`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`;
    }
    return Number(first.last);
  }

  /** Makes the follower read the log now (a commit elsewhere: NOTIFY, the broker's wake-up). */
  wake = () => {
    if (!this.running) return;
    this.wanted = true;
    if (!this.pumping) void this.pump();
  };

  /** Resolves true once the follower has delivered `seq`, false after `timeoutMs` (or on stop). */
  waitFor(seq: number, timeoutMs = 5000): Promise<boolean> {
    if (this.position >= seq) return Promise.resolve(true);
    if (!this.running) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = {
        seq,
        resolve: (reached: boolean) => {
          clearTimeout(timer);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      this.waiters.push(waiter);
      this.wake();
    });
  }

  private async pump() {
    this.pumping = true;
    try {
      while (this.wanted && this.running) {
        this.wanted = false;
        if (await this.readNext()) this.wanted = true; // a full batch: there is more
        this.failing = false;
      }
    } catch (err) {
      // PostgreSQL unreachable, most likely: the safety poll tries again. Reported once per outage.
      if (!this.failing) this.onError(err);
      this.failing = true;
    } finally {
      this.pumping = false;
    }
  }

  /** Reads and delivers the next batch; true when it was full (more to read at once). */
  private async readNext(): Promise<boolean> {
    const rows = (await this.db.$client.unsafe(FOLLOW_SQL, [this.position, FOLLOW_BATCH])) as FollowRow[];
    if (!this.running) return false;
    const batch: StoredEvent[] = [];
    let expected = this.position + 1;
    let waiting = false;
    for (const r of rows) {
      const seq = Number(r.seq);
      if (seq !== expected && this.ordering === "horizon") {
        if (this.hole?.seq !== expected) this.hole = { seq: expected, threshold: BigInt(r.next) };
        if (BigInt(r.xmin) < this.hole.threshold) {
          waiting = true;
          break;
        }
        // Every transaction that could hold the missing seqs has ended: rolled back, never to come.
      }
      this.hole = null;
      const data = JSON.parse(r.data);
      batch.push({ seq, topic: r.topic, type: r.type, data, json: r.data, timestamp: iso(Number(r.created_at)), replyTo: this.replies.take(seq) });
      expected = seq + 1;
    }
    this.deliver(batch);
    if (waiting && !this.holeTimer)
      this.holeTimer = setTimeout(() => {
        this.holeTimer = null;
        this.wake();
      }, HOLE_RETRY_MS);
    return !waiting && rows.length === FOLLOW_BATCH;
  }

  /** Moves the position and hands the batch to the listeners in one synchronous step. */
  private deliver(batch: StoredEvent[]) {
    if (!batch.length) return;
    this.position = batch[batch.length - 1]!.seq;
    for (const listener of this.listeners) {
      try {
        listener(batch);
      } catch (err) {
        this.onError(err); // the events have committed: a listener's failure is only logged
      }
    }
    if (this.waiters.length) {
      const reached = this.waiters.filter((w) => w.seq <= this.position);
      this.waiters = this.waiters.filter((w) => w.seq > this.position);
      for (const w of reached) w.resolve(true);
    }
  }

  // ---- Positions, replay, pruning ----

  /** The highest seq ever taken (0 for an empty log); live delivery stands at `deliveredSeq`. */
  async lastSeq(): Promise<number> {
    return (await this.positions()).last;
  }

  /** The highest seq that pruning removed; a `since` below it cannot be served. */
  async prunedThrough(): Promise<number> {
    return (await this.positions()).pruned;
  }

  private async positions(): Promise<{ last: number; pruned: number }> {
    const [row] = await PgEventLog.guard(() => this.db.$client.unsafe(POSITIONS_SQL));
    return { last: Number(row.last), pruned: Number(row.pruned) };
  }

  /** As replayRaw, with `data` parsed. */
  async replay(userId: string, since: number, limit: number, epoch?: string, upTo?: number) {
    const rows = await this.replayRaw(userId, since, limit, epoch, upTo);
    return rows.map((r) => ({ seq: r.seq, type: r.type, data: JSON.parse(r.data) as unknown, timestamp: iso(r.created_at) }));
  }

  /**
   * Events after `since` and up to `upTo` that `userId` would have received live, in seq
   * order (the SQLite log's replayRaw, same query). `upTo` defaults to `deliveredSeq`; a
   * caller without a running follower passes a position it knows to be final. sync_reset
   * as on SQLite: `since` below the pruned part or past every seq taken, or another epoch.
   * A `since` between `upTo` and the log's end is valid and returns nothing: that node's
   * follower has not got there yet (`waitFor`).
   */
  async replayRaw(userId: string, since: number, limit: number, epoch?: string, upTo = this.position): Promise<EventRow[]> {
    const { last, pruned } = await this.positions();
    if (epoch !== undefined && epoch !== this.epoch) throw this.reset(last, "this position belongs to another timeline of the event log (the server was restored from a backup); reload through REST");
    if (since < pruned || since > last) throw this.reset(last, "since is outside the retained event log; reload through REST");
    const rows: EventRow[] = [];
    const end = Math.min(upTo, last);
    for (let from = since; from < end && rows.length < limit; ) {
      const to = Math.min(from + REPLAY_WINDOW, end);
      const page = await PgEventLog.guard(() => this.db.$client.unsafe(PG_REPLAY.replay, [from, userId, limit - rows.length, to]));
      rows.push(...page.map(toEventRow));
      if (page.length) {
        from = to;
        continue;
      }
      // An empty window: go straight to the user's next event, if any.
      const [next] = await PgEventLog.guard(() => this.db.$client.unsafe(PG_REPLAY.nextSeq, [to, userId]));
      if (next?.next == null) break;
      from = Number(next.next) - 1;
    }
    return rows;
  }

  /** sync_reset, with where to go on from: this node's live position (or the log's end) and epoch. */
  private reset(last: number, message: string) {
    return new AppError("sync_reset", message, { last_seq: this.running ? this.position : last, epoch: this.epoch });
  }

  /**
   * Deletes events older than `maxAgeMs`, `pruneChunk` seqs per transaction, remembering
   * how far it went after each (so nodes pruning at once take turns, and one stopped
   * half-way leaves a consistent log). Resolves with how many events were deleted.
   */
  async prune(maxAgeMs: number, now = Date.now(), signal?: AbortSignal): Promise<number> {
    const top = await PgEventLog.guard(() => this.lastSeqBefore(now - maxAgeMs));
    let removed = 0;
    for (let upTo = await this.prunedThrough(); top !== null && upTo < top && !signal?.aborted; ) {
      upTo = Math.min(top, upTo + this.pruneChunk);
      removed += await PgEventLog.guard(() => this.pruneThrough(upTo));
    }
    return removed;
  }

  /** As prune, now: each chunk is its own transaction, awaited, so other work runs in between. */
  pruneGradually(maxAgeMs: number, signal?: AbortSignal): Promise<number> {
    return this.prune(maxAgeMs, Date.now(), signal);
  }

  /** One chunk: events up to `top`, the shared payloads only they used, and stints that ended before. */
  private pruneThrough(top: number): Promise<number> {
    return this.db.$client.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${PRUNE_LOCK})`;
      const [done] = await tx`SELECT coalesce((SELECT value::bigint FROM meta WHERE key = 'events_pruned_through'), 0) AS n`;
      if (Number(done.n) >= top) return 0; // another node did it meanwhile
      await tx`DELETE FROM event_payloads WHERE id IN (SELECT payload_id FROM events WHERE seq <= ${top} AND payload_id IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM events e WHERE e.payload_id = event_payloads.id AND e.seq > ${top})`;
      const deleted = await tx`DELETE FROM events WHERE seq <= ${top}`;
      await tx`DELETE FROM member_stints WHERE left_seq <= ${top}`;
      await tx`INSERT INTO meta (key, value) VALUES ('events_pruned_through', ${String(top)}) ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
      return deleted.count;
    });
  }

  /** The highest seq of an event created before `cutoff`, by binary search over seq (times grow with seq: no index on created_at). */
  private async lastSeqBefore(cutoff: number): Promise<number | null> {
    const sqlc = this.db.$client;
    const [bounds] = await sqlc`SELECT min(seq) AS lo, max(seq) AS hi FROM events`;
    if (bounds.lo === null || bounds.hi === null) return null;
    let [lo, hi, found] = [Number(bounds.lo), Number(bounds.hi), null as number | null];
    while (lo <= hi) {
      const mid = Math.floor((lo + hi) / 2);
      const [row] = await sqlc`SELECT seq, created_at FROM events WHERE seq >= ${mid} ORDER BY seq LIMIT 1`;
      if (row && Number(row.created_at) < cutoff) {
        found = Number(row.seq);
        lo = found + 1;
      } else hi = mid - 1;
    }
    return found;
  }
}
