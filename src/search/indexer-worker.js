// Runs in a Worker thread: moves new and changed messages from parley.db into search.db
// in large batches, which FTS5 writes far more cheaply than one small batch per group
// commit: the trigram index, and each text folded (fold.js), filed by conversation for
// terms too short for trigrams. New messages are read from messages by rowid, above how
// far the index got (state.indexed_rowid); edits, deletes and inserts that may reuse a
// rowid are queued in search_pending by triggers (state.indexed_seq: how far it got
// there; migrations 0012_search, 0014_search_new_messages). Only this thread writes
// search.db; it only reads parley.db. Both marks and what they cover commit together.
// Loaded as text (with fold.js appended) and started from a Blob URL, so it travels
// inside the executable.
import { Database } from "bun:sqlite";

let db = null;
let q = null;
let timer = null;
let stopping = false;

function open(searchFile, parleyFile) {
  db = new Database(searchFile);
  db.run("PRAGMA busy_timeout = 5000");
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA synchronous = NORMAL");
  db.run("ATTACH DATABASE ? AS p", [parleyFile]);
  // Prepared (not cached) so that stop can finalize them: a connection with live
  // statements would stay open, and locked, after close().
  q = {
    from: db.prepare("SELECT indexed_seq, indexed_rowid FROM state"),
    lastSeq: db.prepare("SELECT coalesce(max(seq), 0) FROM p.search_pending"),
    lastRowid: db.prepare("SELECT coalesce(max(rowid), 0) FROM p.messages"),
    // Each entry with its message's text (none: deleted since) in one statement: a lookup
    // per entry cost more than the trigram index's own work.
    entries: db.prepare(
      "SELECT q.seq, q.message_rowid, q.fresh, q.conversation_id, m.conversation_id, m.content, m.deleted_at FROM p.search_pending q LEFT JOIN p.messages m ON m.rowid = q.message_rowid WHERE q.seq > ? ORDER BY q.seq LIMIT ?",
    ),
    news: db.prepare("SELECT rowid, conversation_id, content, deleted_at FROM p.messages WHERE rowid > ? ORDER BY rowid LIMIT ?"),
    remove: db.prepare("DELETE FROM messages_fts WHERE rowid = ?"),
    add: db.prepare("INSERT INTO messages_fts(rowid, content) VALUES (?, ?)"),
    removeText: db.prepare("DELETE FROM texts WHERE conversation_id = ? AND rowid = ?"),
    addText: db.prepare("INSERT INTO texts(conversation_id, rowid, folded) VALUES (?, ?, ?)"),
    done: db.prepare("UPDATE state SET indexed_seq = ?, indexed_rowid = ?"),
  };
}

/**
 * Where step's CPU goes, part by part (read, fold, fts, texts, commit): a no-op here;
 * test/bench/index-cost.ts appends code that replaces it.
 */
let mark = (part) => {};

/**
 * Indexes up to `batch` queue entries after `fromSeq` and up to `batch` messages after
 * `fromRowid`; whether either filled its batch (more are waiting).
 *
 * What the index holds: every message up to indexed_rowid (none above it), as changed by
 * the queue up to indexed_seq. A search reads the rest from parley.db directly.
 */
function step(fromSeq, fromRowid, batch) {
  mark("start");
  // Both in one snapshot of parley.db, read before the FTS5 work: a read snapshot held
  // through it would keep parley.db's WAL from restarting. A text read with (or after) its
  // queue entry is that text or a later one (whose own entry comes later), so the index is
  // never behind what it claims.
  db.run("BEGIN");
  let entries, news;
  try {
    entries = q.entries.values(fromSeq, batch);
    news = q.news.values(fromRowid, batch);
  } finally {
    db.run("COMMIT");
  }
  if (entries.length === 0 && news.length === 0) return false;
  // How far the index gets: rowids above it stay out, queued or not (their messages are
  // read again from a later batch, as they are then; the index never held them).
  const toRowid = news.length ? news[news.length - 1][0] : fromRowid;
  const texts = new Map();
  for (const [rowid, conversationId, content, deletedAt] of news) texts.set(rowid, { conversationId, content: content && deletedAt === null ? content : null, folded: null });
  // What the index may hold already (an edit, a delete, a reused rowid: only rowids it got
  // to) is removed from it first, under each conversation the entries name. A new message
  // is not (half the work of a first build).
  const indexedBefore = new Map();
  for (const [, rowid, fresh, conversationId, current, content, deletedAt] of entries) {
    if (rowid > toRowid) continue;
    if (!fresh && rowid <= fromRowid) indexedBefore.set(rowid, (indexedBefore.get(rowid) ?? new Set()).add(conversationId));
    // A message queued twice is indexed once, with its text now.
    if (!texts.has(rowid)) texts.set(rowid, { conversationId: current, content: content && deletedAt === null ? content : null, folded: null });
  }
  mark("read");
  for (const t of texts.values()) if (t.content !== null) t.folded = fold(t.content);
  mark("fold");
  // FTS5 takes rows in ascending rowid order: a rowid below the previous one makes it
  // write what it holds in memory as a segment first, and merge segments (a segment per
  // message and 33 µs a message, against 5 µs, when these ran newest first).
  const rowids = [...texts.keys()].sort((a, b) => a - b);
  db.run("BEGIN");
  try {
    for (const rowid of rowids) {
      if (indexedBefore.has(rowid)) q.remove.run(rowid);
      // Folded, as queries are: the tokenizer's own folding does not spell out ł or æ.
      const { folded } = texts.get(rowid);
      if (folded !== null) q.add.run(rowid, folded);
    }
    mark("fts");
    // In key order: each conversation's rows go into its pages one after another.
    const byKey = [...texts].sort(([ra, a], [rb, b]) => (a.conversationId < b.conversationId ? -1 : a.conversationId > b.conversationId ? 1 : ra - rb));
    for (const [rowid, { conversationId, folded }] of byKey) {
      if (indexedBefore.has(rowid)) for (const conversation of indexedBefore.get(rowid)) q.removeText.run(conversation, rowid);
      if (folded !== null) q.addText.run(conversationId, rowid, folded);
    }
    mark("texts");
    q.done.run(entries.length ? entries[entries.length - 1][0] : fromSeq, toRowid);
    db.run("COMMIT");
    mark("commit");
    return entries.length === batch || news.length === batch;
  } catch (error) {
    if (db.inTransaction) db.run("ROLLBACK");
    throw error;
  }
}

/** Since when changes have been waiting (performance.now()), or null while none are. */
let waitingSince = null;
/** Index what is queued without waiting for a batch (asked for by `indexNow`). */
let urgent = false;
let options = null;

/**
 * Every idleMs: index once `minBatch` messages are new or changed, or the oldest has
 * waited `maxLagMs`. FTS5 writes a segment (and merges segments) at every commit, so a few
 * rows a commit cost several times what thousands do; meanwhile searches read those
 * messages directly, so waiting changes what search costs, never what it finds.
 */
function loop(o) {
  if (stopping) return;
  let wait = o.idleMs;
  try {
    const [[fromSeq, fromRowid]] = q.from.values();
    const [[lastSeq]] = q.lastSeq.values();
    const [[lastRowid]] = q.lastRowid.values();
    // About as many as wait (rowids have gaps; the newest messages may have gone).
    const waiting = Math.max(0, lastSeq - fromSeq) + Math.max(0, lastRowid - fromRowid);
    if (waiting === 0) {
      waitingSince = null;
      urgent = false;
    } else {
      waitingSince ??= performance.now();
      if (urgent || waiting >= o.minBatch || performance.now() - waitingSince >= o.maxLagMs) {
        // Behind by a batch or more: go on at once (the event loop still turns for a stop
        // message). Otherwise what arrives meanwhile waits for a batch of its own.
        if (step(fromSeq, fromRowid, o.batch)) wait = 0;
        else {
          waitingSince = null;
          urgent = false;
        }
      }
    }
  } catch (error) {
    postMessage({ error: String(error) });
    wait = 1000;
  }
  timer = setTimeout(() => loop(o), wait);
}

self.onmessage = (event) => {
  if (event.data.now) {
    urgent = true;
    if (options && !stopping) (clearTimeout(timer), loop(options));
    return;
  }
  if (event.data.stop) {
    stopping = true;
    clearTimeout(timer);
    for (const s of Object.values(q ?? {})) s.finalize();
    db?.close();
    postMessage({ stopped: true });
    return;
  }
  const { searchFile, parleyFile, ...o } = event.data;
  try {
    open(searchFile, parleyFile);
  } catch (error) {
    postMessage({ error: String(error) });
    return;
  }
  options = o;
  loop(options);
};
