/**
 * SearchIndex on SQLite. The FTS5 trigram index lives in its own file, DATA_DIR/search.db
 * (attached as `search`), written only by a worker thread (indexer-worker.js) in large
 * batches. Every change to a message's text is queued in parley.db's `search_pending`
 * by triggers inside the transaction of the write (migration 0009_search); a search reads
 * the index for what the worker has indexed (`search.state.indexed_seq`) and the queued
 * rows' current text for the rest. So search is exact at every moment, while the main
 * thread never pays for FTS5's writes.
 *
 * Order: newest first is rowid order, descending. Message ids are UUIDv7 made inside the
 * send transaction, so rowid order, id order and send order are one order; FTS5 walks its
 * index in rowid order and can stop after a page.
 */
import type { Database } from "bun:sqlite";
// @ts-expect-error: imported as text (Bun's `type: "text"`), which TypeScript does not model.
import workerText from "./indexer-worker.js" with { type: "text" };
import type { Logger } from "../log";
import type { ConversationQuery, MessageHits, MessageQuery, SearchIndex } from "./index";
import { fold, matchesAll, type Term } from "./text";

/**
 * Rows one request may examine in JS (terms under 3 characters, which no trigram index
 * holds): bounds how long one search can hold the event loop. Past it the page ends early,
 * with a cursor to continue from.
 */
export const MAX_SCANNED = 50_000;
/**
 * Rows read first when text must also be checked here: enough for a page of a common
 * term. A rarer one reads the rest in one go (each read sorts the candidates again).
 */
const FIRST_CHUNK = 512;
/** Queue entries the worker indexes per transaction. */
const WORKER_BATCH = 5000;

type Row = [rowid: number, id: string, content: string];

/** A term as an FTS5 string: quoted, so operators typed by users (NEAR, OR, *, -, :, ^) are text. */
const ftsString = (t: Term) => `"${t.text.replaceAll('"', '""')}"`;

const SCHEMA = [
  "CREATE TABLE IF NOT EXISTS search.state (index_id TEXT NOT NULL, indexed_seq INTEGER NOT NULL)",
  // contentless: the text stays in parley.db; contentless_delete: rows can be replaced.
  "CREATE VIRTUAL TABLE IF NOT EXISTS search.messages_fts USING fts5(content, content='', contentless_delete=1, tokenize='trigram remove_diacritics 1')",
];

export interface SqliteSearchOptions {
  log: Logger;
  /** How often the worker looks for queued changes when it has caught up. */
  idleMs?: number;
  maxScanned?: number;
}

export class SqliteSearchIndex implements SearchIndex {
  private worker: Worker;
  private url: string;
  private pruner: Timer;
  private readonly maxScanned: number;

  constructor(private readonly db: Database, parleyFile: string, searchFile: string, opts: SqliteSearchOptions) {
    this.maxScanned = opts.maxScanned ?? MAX_SCANNED;
    db.run("ATTACH DATABASE ? AS search", [searchFile]);
    db.run("PRAGMA search.journal_mode = WAL");
    db.run("PRAGMA search.synchronous = NORMAL");
    db.transaction(() => {
      for (const s of SCHEMA) db.run(s);
      this.adopt();
    })();
    this.url = URL.createObjectURL(new Blob([workerText as string], { type: "application/javascript" }));
    this.worker = new Worker(this.url);
    this.worker.onmessage = (event: MessageEvent<{ error?: string }>) => {
      if (event.data.error) opts.log.warn({ err: event.data.error }, "search indexing failed; retrying");
    };
    this.worker.onerror = (event) => opts.log.error({ reason: event.message }, "search indexer stopped; new messages are found by scanning");
    this.worker.postMessage({ searchFile, parleyFile, batch: WORKER_BATCH, idleMs: opts.idleMs ?? 100 });
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
   * search.db belongs to this parley.db when both carry the same index id. A new, lost or
   * foreign one (a restored backup, a copied data directory) starts over: every message is
   * queued again and indexed in the background; meanwhile the queue is searched directly.
   */
  private adopt() {
    const [mine] = this.db.query("SELECT value FROM meta WHERE key = 'search_index_id'").values() as [string][];
    const [state] = this.db.query("SELECT index_id, indexed_seq FROM search.state").values() as [string, number][];
    const queued = () => (this.db.query("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'search_pending'), 0)").values() as [[number]])[0][0];
    // An index past the queue's end belongs to a later copy of this database (an older one restored in place).
    if (mine && state && mine[0] === state[0] && state[1] <= queued()) return;
    const id = Bun.randomUUIDv7();
    this.db.run("INSERT INTO meta(key, value) VALUES ('search_index_id', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [id]);
    this.db.run("INSERT INTO search.messages_fts(messages_fts) VALUES ('delete-all')");
    this.db.run("DELETE FROM search_pending");
    const last = queued();
    this.db.run("INSERT INTO search_pending(message_rowid, fresh) SELECT rowid, 1 FROM messages ORDER BY rowid");
    this.db.run("DELETE FROM search.state");
    this.db.run("INSERT INTO search.state(index_id, indexed_seq) VALUES (?, ?)", [id, last]);
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

  /** Queued changes the index does not hold yet (for tests and the benchmark). */
  backlog(): number {
    const [[n]] = this.db.query("SELECT count(*) FROM search_pending WHERE seq > (SELECT indexed_seq FROM search.state)").values() as [[number]];
    return n;
  }

  findMessages(q: MessageQuery): MessageHits {
    // search.db is read first: the queue read after it holds everything the index lacks
    // (the worker commits the index before anything leaves the queue).
    return this.db.transaction(() => {
      const [[indexedSeq]] = this.db.query("SELECT indexed_seq FROM search.state").values() as [[number]];
      const below = this.rowidBelow(q.olderThan);
      if (below === null) return { ids: [] };
      const indexed = q.terms.filter((t) => t.indexable);
      if (indexed.length === 0) return this.collect(this.statement(q, "scan"), below, q.terms, q.limit);

      // Queued rows: their current text, checked here; their index entries may be stale.
      const pending = this.statement(q, "pending");
      const queued = new Set<number>();
      const fromQueue: Row[] = [];
      for (const row of pending.stmt.values(indexedSeq, ...pending.params, below, -1) as Row[]) {
        if (queued.has(row[0])) continue;
        queued.add(row[0]);
        if (matchesAll(fold(row[2]), q.terms)) fromQueue.push(row);
      }
      for (const [r] of this.db.query("SELECT message_rowid FROM search_pending WHERE seq > ?").values(indexedSeq) as [number][]) queued.add(r);

      const rest = q.terms.filter((t) => !t.indexable);
      const fts = this.statement(q, "fts", ftsQuery(indexed));
      const fromIndex = rest.length === 0 && queued.size === 0
        ? { ids: (fts.stmt.values(...fts.params, below, q.limit) as Row[]).map((r) => [r[0], r[1]] as const), stoppedAt: undefined }
        : this.collectRows(fts, below, rest, q.limit, queued);
      const merged = [...fromIndex.ids, ...fromQueue.map((r) => [r[0], r[1]] as const)].sort((a, b) => b[0] - a[0]).slice(0, q.limit);
      // Stopped early in the index: nothing past that point is certain yet.
      const stop = fromIndex.stoppedAt;
      const ids = stop ? merged.filter((m) => m[0] > stop[0]) : merged;
      return { ids: ids.map((m) => m[1]), ...(stop ? { stoppedAt: stop[1] } : {}) };
    })();
  }

  private collect(s: Statement, below: number, check: Term[], limit: number): MessageHits {
    const { ids, stoppedAt } = this.collectRows(s, below, check, limit, new Set());
    return { ids: ids.map((r) => r[1]), ...(stoppedAt ? { stoppedAt: stoppedAt[1] } : {}) };
  }

  /** Reads `s` in growing chunks, keeping rows not in `skip` whose text holds every `check` term, until `limit` or maxScanned rows. */
  private collectRows(s: Statement, below: number, check: Term[], limit: number, skip: Set<number>) {
    const ids: (readonly [number, string])[] = [];
    let scanned = 0;
    for (let chunk = FIRST_CHUNK; ; chunk = this.maxScanned) {
      const take = Math.min(chunk, this.maxScanned - scanned);
      const rows = s.stmt.values(...s.params, below, take) as Row[];
      for (const [rowid, id, content] of rows) {
        if (skip.has(rowid) || (check.length > 0 && !matchesAll(fold(content), check))) continue;
        if (ids.push([rowid, id]) === limit) return { ids };
      }
      scanned += rows.length;
      if (rows.length < take) return { ids };
      const last = rows[rows.length - 1]!;
      below = last[0];
      if (scanned >= this.maxScanned) return { ids, stoppedAt: [last[0], last[1]] as const };
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
   * Candidates, newest first, as `rowid, id, content`; the last two parameters are the
   * exclusive rowid bound and the limit (-1: none). `fts`: FTS5 drives, in rowid order,
   * stopping at the limit, and each hit is checked against the caller's memberships.
   * `scan`: the caller's conversations' messages, one index range each, then one sort.
   * `pending`: queued rows past the index (first parameter: indexed_seq).
   */
  private statement(q: MessageQuery, source: "fts" | "scan" | "pending", match?: string): Statement {
    const params: (string | number)[] = [];
    const where: string[] = [];
    const member = "m.conversation_id IN (SELECT conversation_id FROM conversation_members WHERE user_id = ?)";
    let from: string;
    let order = "m.rowid";
    if (source === "fts") {
      from = "search.messages_fts f CROSS JOIN messages m ON m.rowid = f.rowid";
      where.push("f.messages_fts MATCH ?", member);
      params.push(match!, q.userId);
      order = "f.rowid";
    } else if (source === "scan") {
      from = "conversation_members cm CROSS JOIN messages m ON m.conversation_id = cm.conversation_id";
      where.push("cm.user_id = ?");
      params.push(q.userId);
      for (const t of q.terms) {
        const pre = prefilter(t);
        if (pre) (where.push(pre.sql), params.push(...pre.params));
      }
    } else {
      from = "search_pending p CROSS JOIN messages m ON m.rowid = p.message_rowid";
      where.push("p.seq > ?", member);
      params.push(q.userId);
    }
    where.push("m.deleted_at IS NULL");
    if (q.conversationId !== undefined) (where.push("m.conversation_id = ?"), params.push(q.conversationId));
    if (q.senderId !== undefined) (where.push("m.sender_id = ?"), params.push(q.senderId));
    if (q.createdBefore !== undefined) (where.push("m.created_at < ?"), params.push(q.createdBefore));
    if (q.createdAfter !== undefined) (where.push("m.created_at > ?"), params.push(q.createdAfter));
    where.push(`${order} < ?`);
    const sql = `SELECT m.rowid, m.id, m.content FROM ${from} WHERE ${where.join(" AND ")} ORDER BY ${order} DESC LIMIT ?`;
    return { stmt: this.db.query(sql), params };
  }

  findConversations(q: ConversationQuery): { id: string; activityAt: number }[] {
    // A user's conversations are few enough to match here, like any name list.
    const rows = this.db
      .query(
        `SELECT c.id, c.activity_at, c.title, u.display_name, u.username
         FROM conversation_members me JOIN conversations c ON c.id = me.conversation_id
         LEFT JOIN conversation_members p ON c.type = 'direct' AND p.conversation_id = c.id AND p.user_id != me.user_id
         LEFT JOIN users u ON u.id = p.user_id
         WHERE me.user_id = ?`,
      )
      .values(q.userId) as [string, number, string | null, string | null, string | null][];
    const after = q.after;
    return rows
      .filter(([id, at]) => !after || at < after.activityAt || (at === after.activityAt && id < after.id))
      .filter(([, , title, name, username]) => matchesAll(fold(`${title ?? ""}\n${name ?? ""}\n${username ?? ""}`), q.terms))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? 1 : -1))
      .slice(0, q.limit)
      .map(([id, activityAt]) => ({ id, activityAt }));
  }
}

interface Statement { stmt: ReturnType<Database["query"]>; params: (string | number)[] }

/** Text with a character outside ASCII (GLOB has no escapes: the class is written with the raw bounds). */
const NON_ASCII = "*[^\u0001-\u007f]*";

/**
 * A condition SQLite can test before a row reaches the sorter and fold(), which rows
 * failing it could never pass. A term without case (Thai, CJK, digits, emoji): fold()
 * leaves it and its neighbours alone, so the text itself must hold it. An ASCII term:
 * an ASCII text must hold it (LIKE folds ASCII case); any other text is checked in JS.
 */
function prefilter(t: Term): { sql: string; params: string[] } | undefined {
  if (t.folded.toUpperCase() === t.folded) return { sql: "instr(m.content, ?) > 0", params: [t.folded] };
  if (/^[\x00-\x7f]*$/.test(t.folded)) return { sql: "(m.content LIKE ? ESCAPE '\\' OR m.content GLOB ?)", params: [`%${t.folded.replace(/[\\%_]/g, "\\$&")}%`, NON_ASCII] };
  return undefined;
}

const ftsQuery = (terms: Term[]) => terms.map(ftsString).join(" AND ");
