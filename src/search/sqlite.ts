/**
 * SearchIndex on SQLite. The FTS5 trigram index lives in its own file, DATA_DIR/search.db
 * (attached as `search`), written only by a worker thread (indexer-worker.js) in large
 * batches. It holds every message up to a rowid (`search.state.indexed_rowid`: new
 * messages take rowids above every one before them) as changed by parley.db's queue
 * `search_pending` up to a sequence number (`indexed_seq`); triggers queue edits, deletes
 * and inserts that may reuse a rowid inside the transaction of the write (migrations
 * 0012_search, 0014_search_new_messages). A search reads the index for what it holds and
 * the current text of the messages above the rowid and of the queued ones. So search is
 * exact at every moment, while the main thread never pays for FTS5's writes.
 *
 * Order: newest first is rowid order, descending. Message ids are UUIDv7 made inside the
 * send transaction, so rowid order, id order and send order are one order; FTS5 walks its
 * index in rowid order and can stop after a page.
 */
import type { Database } from "bun:sqlite";
import { renameSync, rmSync } from "node:fs";
// @ts-expect-error: imported as text (Bun's `type: "text"`), which TypeScript does not model.
import workerText from "./indexer-worker.js" with { type: "text" };
import { foldSource } from "./fold-source" with { type: "macro" };
import type { Logger } from "../log";
import type { ConversationHit, ConversationQuery, MessageHits, MessageQuery, SearchIndex } from "./index";
import { FOLD_VERSION } from "./fold.js";
import { fold, matchConversations, matchesAll, type NamedConversation, type Term } from "./text";

/**
 * New messages (and queue entries) the worker indexes per transaction, at most, and waits
 * for, at least, unless the oldest has waited `maxLagMs` (Config.searchIndexLagMs). FTS5
 * writes a segment per commit and merges segments, so large commits cost less a message
 * (test/bench/index-cost.ts). Searches read what waits from parley.db: at most about a
 * batch (5,000 rows: ~1.5 ms on a quiet machine).
 */
const WORKER_BATCH = 5000;

/** A term as an FTS5 string: quoted, so operators typed by users (NEAR, OR, *, -, :, ^) are text. */
const ftsString = (t: Term) => `"${t.folded.replaceAll('"', '""')}"`;

export const SCHEMA = [
  // fold_version: the fold() its texts were folded with (fold.js FOLD_VERSION).
  "CREATE TABLE IF NOT EXISTS search.state (index_id TEXT NOT NULL, indexed_seq INTEGER NOT NULL, indexed_rowid INTEGER NOT NULL, fold_version INTEGER NOT NULL DEFAULT 1)",
  // fold(content) by conversation: a caller's messages are a few contiguous ranges, read
  // without touching messages' pages, for terms too short for trigrams.
  "CREATE TABLE IF NOT EXISTS search.texts (conversation_id TEXT NOT NULL, rowid INTEGER NOT NULL, folded TEXT NOT NULL, PRIMARY KEY (conversation_id, rowid)) WITHOUT ROWID",
  // contentless: the text stays in parley.db; contentless_delete: rows can be replaced.
  "CREATE VIRTUAL TABLE IF NOT EXISTS search.messages_fts USING fts5(content, content='', contentless_delete=1, tokenize='trigram remove_diacritics 1')",
];

/**
 * Attaches search.db. The index is derived from parley.db (README): one that is not a
 * database, or corrupt, is set aside (renamed, for a look) and a new one made, which
 * `adopt` then fills in the background, rather than keeping the server from starting.
 */
function attachIndex(db: Database, searchFile: string, log: Logger) {
  const attach = () => {
    db.run("ATTACH DATABASE ? AS search", [searchFile]);
    db.run("PRAGMA search.journal_mode = WAL");
    db.query("SELECT count(*) FROM search.sqlite_master").get();
  };
  try {
    attach();
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== "SQLITE_NOTADB" && code !== "SQLITE_CORRUPT") throw e;
    try {
      db.run("DETACH DATABASE search");
    } catch {} // not attached
    const aside = `${searchFile}.unreadable-${Date.now()}`;
    renameSync(searchFile, aside);
    for (const side of ["-wal", "-shm"]) rmSync(searchFile + side, { force: true });
    log.warn({ file: searchFile, set_aside_as: aside, reason: e instanceof Error ? e.message : String(e) }, "search.db could not be read: set aside; the index is made again from parley.db in the background (searches stay exact meanwhile)");
    attach();
  }
}

export interface SqliteSearchOptions {
  log: Logger;
  /** How often the worker looks for queued changes when it has caught up. */
  idleMs?: number;
  /** How long a queued change may wait for a full batch before it is indexed anyway. */
  maxLagMs?: number;
}

export class SqliteSearchIndex implements SearchIndex {
  private worker: Worker;
  private url: string;
  private pruner: Timer;

  constructor(private readonly db: Database, parleyFile: string, searchFile: string, opts: SqliteSearchOptions) {
    attachIndex(db, searchFile, opts.log);
    db.run("PRAGMA search.synchronous = NORMAL");
    db.transaction(() => {
      for (const s of SCHEMA) db.run(s);
      this.upgrade();
      this.adopt();
    })();
    // The worker folds texts with the same function as searches (one module's text appended).
    this.url = URL.createObjectURL(new Blob([`${workerText as string}\n${foldSource()}`], { type: "application/javascript" }));
    this.worker = new Worker(this.url);
    this.worker.onmessage = (event: MessageEvent<{ error?: string }>) => {
      if (event.data.error) opts.log.warn({ err: event.data.error }, "search indexing failed; retrying");
    };
    this.worker.onerror = (event) => opts.log.error({ reason: event.message }, "search indexer stopped; new messages are found by scanning");
    this.worker.postMessage({ searchFile, parleyFile, batch: WORKER_BATCH, minBatch: WORKER_BATCH, maxLagMs: opts.maxLagMs ?? 5000, idleMs: opts.idleMs ?? 100 });
    this.worker.unref();
    // What the index holds leaves the queue.
    this.pruner = setInterval(() => {
      try {
        db.run("DELETE FROM search_pending WHERE seq <= (SELECT indexed_seq FROM search.state)");
      } catch (err) {
        opts.log.warn({ err }, "search queue pruning failed");
      }
    }, 1000);
    this.pruner.unref();
  }

  /**
   * An index from before 0014_search_new_messages, when every new message was queued, has
   * seen no rowid above what that migration recorded: it goes on from there. One from before
   * fold versions holds the first fold() (1), and is made again by adopt().
   */
  private upgrade() {
    const columns = (this.db.query("SELECT name FROM pragma_table_info('state', 'search')").values() as [string][]).map(([name]) => name);
    if (!columns.includes("indexed_rowid")) {
      this.db.run("ALTER TABLE search.state ADD COLUMN indexed_rowid INTEGER NOT NULL DEFAULT 0");
      this.db.run("UPDATE search.state SET indexed_rowid = (SELECT queued_through FROM search_rowids)");
    }
    if (!columns.includes("fold_version")) this.db.run("ALTER TABLE search.state ADD COLUMN fold_version INTEGER NOT NULL DEFAULT 1");
  }

  /**
   * search.db belongs to this parley.db when both carry the same index id. A new, lost or
   * foreign one (a restored backup, a copied data directory) starts over, empty: the worker
   * indexes every message in the background; meanwhile they are searched directly. So does
   * one whose texts were folded by another fold() (FOLD_VERSION).
   */
  private adopt() {
    const [mine] = this.db.query("SELECT value FROM meta WHERE key = 'search_index_id'").values() as [string][];
    const [state] = this.db.query("SELECT index_id, indexed_seq, indexed_rowid, fold_version FROM search.state").values() as [string, number, number, number][];
    const queued = () => (this.db.query("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'search_pending'), 0)").values() as [[number]])[0][0];
    // An index past the queue's end, or past every rowid this database has had, belongs to
    // a later copy of this database (an older one restored in place).
    const [[rowids]] = this.db.query("SELECT max(coalesce((SELECT max(rowid) FROM messages), 0), (SELECT reused_through FROM search_rowids))").values() as [[number]];
    if (mine && state && mine[0] === state[0] && state[1] <= queued() && state[2] <= rowids && state[3] === FOLD_VERSION) return;
    const id = Bun.randomUUIDv7();
    this.db.run("INSERT INTO meta(key, value) VALUES ('search_index_id', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [id]);
    this.db.run("INSERT INTO search.messages_fts(messages_fts) VALUES ('delete-all')");
    this.db.run("DELETE FROM search.texts");
    this.db.run("DELETE FROM search_pending");
    this.db.run("DELETE FROM search.state");
    this.db.run("INSERT INTO search.state(index_id, indexed_seq, indexed_rowid, fold_version) VALUES (?, ?, 0, ?)", [id, queued(), FOLD_VERSION]);
  }

  /** Stops the worker and waits for it to close its connection. */
  async stop() {
    clearInterval(this.pruner);
    URL.revokeObjectURL(this.url);
    const stopped = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      this.worker.onmessage = (event: MessageEvent<{ stopped?: boolean }>) => {
        if (event.data.stopped) (clearTimeout(timer), resolve());
      };
    });
    this.worker.postMessage({ stop: true });
    await stopped;
    this.worker.terminate();
  }

  /** Has the worker index what is queued now, without waiting for a full batch (for tests). */
  indexNow() {
    this.worker.postMessage({ now: true });
  }

  /** New messages and queued changes the index does not hold yet (for tests and the benchmark). */
  backlog(): number {
    const [[n]] = this.db
      .query("SELECT (SELECT count(*) FROM search_pending WHERE seq > (SELECT indexed_seq FROM search.state)) + (SELECT count(*) FROM messages WHERE rowid > (SELECT indexed_rowid FROM search.state))")
      .values() as [[number]];
    return n;
  }

  async findMessages(q: MessageQuery): Promise<MessageHits> {
    // search.db is read first: parley.db read after it holds everything the index lacks
    // (the worker commits the index before anything leaves the queue).
    return this.db.transaction(() => {
      const [[indexedSeq, indexedRowid]] = this.db.query("SELECT indexed_seq, indexed_rowid FROM search.state").values() as [[number, number]];
      const below = this.rowidBelow(q.olderThan);
      if (below === null) return { ids: [] };
      // Messages past the index's rowid, and queued ones: their current text, checked here.
      // The index may hold stale entries for queued ones, so its answers skip them: any such
      // answer passes the same conditions, and so is among these rows. (It holds nothing
      // past its rowid.)
      const checked = new Set<number>();
      const queued = new Set<number>();
      const fromQueue: Hit[] = [];
      for (const [source, from] of [["new", indexedRowid], ["pending", indexedSeq]] as const) {
        const s = this.statement(q, source);
        for (const [rowid, id, content] of s.stmt.values(from, ...s.params, below, -1) as [number, string, string][]) {
          if (source === "pending" && rowid <= indexedRowid) queued.add(rowid);
          if (checked.has(rowid)) continue;
          checked.add(rowid);
          if (matchesAll(fold(content), q.terms)) fromQueue.push([rowid, id]);
        }
      }
      // One word or phrase: FTS5 walks its matches newest first and stops at a page. Several,
      // or one under 3 characters (no trigrams): every term is looked for in the caller's
      // folded texts. FTS5 would intersect the terms over everyone's messages, following a
      // combination that is rare in the caller's conversations through all of its matches
      // elsewhere (measured on 200,000 messages: three words p50 8.8 → 2.5 ms, p99 157 → 31 ms).
      const source = q.terms.length === 1 && q.terms[0]!.indexable ? this.statement(q, "fts") : this.statement(q, "texts");
      const fromIndex = this.collect(source, below, q.limit, queued);
      const hits = [...fromIndex, ...fromQueue].sort((a, b) => b[0] - a[0]).slice(0, q.limit);
      return { ids: hits.map((h) => h[1]) };
    })();
  }

  /** Up to `limit` rows of `s` below the bound that are not in `skip`, reading on while skipped rows leave the page short. */
  private collect(s: Statement, below: number, limit: number, skip: Set<number>): Hit[] {
    const hits: Hit[] = [];
    for (let take = limit + skip.size; ; take *= 2) {
      const rows = s.stmt.values(...s.params, below, take) as Hit[];
      for (const row of rows) if (!skip.has(row[0]) && hits.push(row) === limit) return hits;
      if (rows.length < take) return hits;
      below = rows[rows.length - 1]![0];
    }
  }

  /** The exclusive rowid bound of a cursor: that message's rowid, or (if it is gone) just above the one before it; null if nothing is older. */
  private rowidBelow(olderThan: string | undefined): number | null {
    if (olderThan === undefined) return Number.MAX_SAFE_INTEGER;
    const [exact] = this.db.query("SELECT rowid FROM messages WHERE id = ?").values(olderThan) as [number][];
    if (exact) return exact[0];
    // Its conversation was deleted since (messages themselves leave tombstones).
    const [before] = this.db.query("SELECT rowid FROM messages WHERE id < ? ORDER BY id DESC LIMIT 1").values(olderThan) as [number][];
    return before ? before[0] + 1 : null;
  }

  /**
   * Matches, newest first, as `rowid, id` (pending: `rowid, id, content`, to be checked
   * here); the last two parameters are the exclusive rowid bound and the limit (-1: none).
   * `fts`: FTS5 walks its matches in rowid order, each checked against the caller's
   * memberships, stopping at the limit. `texts`: the caller's conversations' folded texts,
   * one contiguous range each, every term looked for with instr, then one sort of the
   * matches. `pending`: queued rows past the index (first parameter: indexed_seq). `new`:
   * messages past the index's rowid (first parameter: indexed_rowid), a range of rowids
   * read as such (`+` keeps SQLite from reading the caller's conversations by index instead).
   */
  private statement(q: MessageQuery, source: "fts" | "texts" | "pending" | "new"): Statement {
    const params: (string | number)[] = [];
    const where: string[] = [];
    const member = (c: string) => `${c}.conversation_id IN (SELECT conversation_id FROM conversation_members WHERE user_id = ?)`;
    let select = "m.rowid, m.id";
    let from: string;
    let order = "m.rowid";
    let conversation = "m.conversation_id";
    if (source === "fts") {
      from = "search.messages_fts f CROSS JOIN messages m ON m.rowid = f.rowid";
      where.push("f.messages_fts MATCH ?", member("m"));
      params.push(q.terms.map(ftsString).join(" AND "), q.userId);
      order = "f.rowid";
    } else if (source === "texts") {
      // Filed under the message's own conversation only (as for the queue: a reused rowid).
      from = "search.texts t CROSS JOIN messages m ON m.rowid = t.rowid AND m.conversation_id = t.conversation_id";
      where.push(member("t"));
      params.push(q.userId);
      for (const t of q.terms) (where.push("instr(t.folded, ?) > 0"), params.push(t.folded));
      order = "t.rowid";
      conversation = "t.conversation_id";
    } else if (source === "new") {
      from = "messages m";
      where.push("m.rowid > ?", "+m.conversation_id IN (SELECT conversation_id FROM conversation_members WHERE user_id = ?)");
      params.push(q.userId);
      select = "m.rowid, m.id, m.content";
      conversation = "+m.conversation_id";
    } else {
      // The queue's own conversation column: other conversations' entries never reach
      // messages. (A reused rowid's old entry names another conversation than its row.)
      from = "search_pending p CROSS JOIN messages m ON m.rowid = p.message_rowid AND m.conversation_id = p.conversation_id";
      where.push("p.seq > ?", member("p"));
      params.push(q.userId);
      select = "m.rowid, m.id, m.content";
    }
    where.push("m.deleted_at IS NULL");
    if (q.conversationId !== undefined) (where.push(`${conversation} = ?`), params.push(q.conversationId));
    if (q.senderId !== undefined) (where.push("m.sender_id = ?"), params.push(q.senderId));
    if (q.createdBefore !== undefined) (where.push("m.created_at < ?"), params.push(q.createdBefore));
    if (q.createdAfter !== undefined) (where.push("m.created_at > ?"), params.push(q.createdAfter));
    where.push(`${order} < ?`);
    const sql = `SELECT ${select} FROM ${from} WHERE ${where.join(" AND ")} ORDER BY ${order} DESC LIMIT ?`;
    return { stmt: this.db.query(sql), params, sql };
  }

  async findConversations(q: ConversationQuery): Promise<ConversationHit[]> {
    const rows = this.db
      .query(
        `SELECT c.id, c.activity_at AS activityAt, c.title, u.display_name AS peerName, u.username AS peerUsername
         FROM conversation_members me JOIN conversations c ON c.id = me.conversation_id
         LEFT JOIN conversation_members p ON c.type = 'direct' AND p.conversation_id = c.id AND p.user_id != me.user_id
         LEFT JOIN users u ON u.id = p.user_id
         WHERE me.user_id = ?`,
      )
      .all(q.userId) as NamedConversation[];
    return matchConversations(rows, q.terms, q.after, q.limit);
  }
}

interface Statement { stmt: ReturnType<Database["query"]>; params: (string | number)[]; sql: string }
type Hit = [rowid: number, id: string];

