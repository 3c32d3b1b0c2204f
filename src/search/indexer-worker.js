// Runs in a Worker thread: moves queued message changes (parley.db's search_pending) into
// search.db in large batches, which FTS5 writes far more cheaply than one small batch per
// group commit: the trigram index, and each text folded (fold.js), filed by conversation
// for terms too short for trigrams. Only this thread writes search.db; it only reads
// parley.db. Both and how far they got (state.indexed_seq) commit together.
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
    from: db.prepare("SELECT indexed_seq FROM state"),
    last: db.prepare("SELECT coalesce(max(seq), 0) FROM p.search_pending"),
    // Each entry with its message's text (none: deleted since) in one statement, one
    // snapshot: a lookup per entry cost more than the trigram index's own work.
    batch: db.prepare(
      "SELECT q.seq, q.message_rowid, q.fresh, q.conversation_id, m.content, m.deleted_at FROM p.search_pending q LEFT JOIN p.messages m ON m.rowid = q.message_rowid WHERE q.seq > ? ORDER BY q.seq LIMIT ?",
    ),
    remove: db.prepare("DELETE FROM messages_fts WHERE rowid = ?"),
    add: db.prepare("INSERT INTO messages_fts(rowid, content) VALUES (?, ?)"),
    removeText: db.prepare("DELETE FROM texts WHERE conversation_id = ? AND rowid = ?"),
    addText: db.prepare("INSERT INTO texts(conversation_id, rowid, folded) VALUES (?, ?, ?)"),
    done: db.prepare("UPDATE state SET indexed_seq = ?"),
  };
}

/**
 * Where step's CPU goes, part by part (read, fold, fts, texts, commit): a no-op here;
 * test/bench/index-cost.ts appends code that replaces it.
 */
let mark = (part) => {};

function step(from, batch) {
  mark("start");
  // A short read of parley.db, finished before the FTS5 work: a read snapshot held through
  // it would keep parley.db's WAL from restarting. A text read with (or after) its queue
  // entry is that text or a later one (whose own entry comes later), so the index is never
  // behind what it claims.
  const queue = q.batch.values(from, batch);
  if (queue.length === 0) return 0;
  const texts = new Map();
  // A message the index may hold already (an edit, a delete, or a rowid reused after a
  // delete) is removed from it first; a new one is not (half the work of a first build).
  const indexedBefore = new Map();
  // Newest entry first: a message queued twice is indexed once, with its latest text.
  for (let k = queue.length - 1; k >= 0; k--) {
    const [, rowid, fresh, conversationId, content, deletedAt] = queue[k];
    if (!fresh) indexedBefore.set(rowid, (indexedBefore.get(rowid) ?? new Set()).add(conversationId));
    if (!texts.has(rowid)) texts.set(rowid, { conversationId, content: content && deletedAt === null ? content : null, folded: null });
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
      const content = texts.get(rowid).content;
      if (content !== null) q.add.run(rowid, content);
    }
    mark("fts");
    // In key order: each conversation's rows go into its pages one after another.
    const byKey = [...texts].sort(([ra, a], [rb, b]) => (a.conversationId < b.conversationId ? -1 : a.conversationId > b.conversationId ? 1 : ra - rb));
    for (const [rowid, { conversationId, folded }] of byKey) {
      if (indexedBefore.has(rowid)) for (const conversation of indexedBefore.get(rowid)) q.removeText.run(conversation, rowid);
      if (folded !== null) q.addText.run(conversationId, rowid, folded);
    }
    mark("texts");
    q.done.run(queue[queue.length - 1][0]);
    db.run("COMMIT");
    mark("commit");
    return queue.length;
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
 * Every idleMs: index once `minBatch` changes are queued or the oldest has waited
 * `maxLagMs`. FTS5 writes a segment (and merges segments) at every commit, so a few rows a
 * commit cost several times what thousands do; meanwhile searches read the queued rows
 * directly, so waiting changes what search costs, never what it finds.
 */
function loop(o) {
  if (stopping) return;
  let wait = o.idleMs;
  try {
    const [[from]] = q.from.values();
    const [[last]] = q.last.values();
    if (last <= from) {
      waitingSince = null;
      urgent = false;
    } else {
      waitingSince ??= performance.now();
      if (urgent || last - from >= o.minBatch || performance.now() - waitingSince >= o.maxLagMs) {
        // Behind by a batch or more: go on at once (the event loop still turns for a stop
        // message). Otherwise what arrives meanwhile waits for a batch of its own.
        if (step(from, o.batch) === o.batch) wait = 0;
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
