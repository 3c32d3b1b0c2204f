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
    batch: db.prepare("SELECT seq, message_rowid, fresh, conversation_id FROM p.search_pending WHERE seq > ? ORDER BY seq LIMIT ?"),
    text: db.prepare("SELECT content, deleted_at FROM p.messages WHERE rowid = ?"),
    remove: db.prepare("DELETE FROM messages_fts WHERE rowid = ?"),
    add: db.prepare("INSERT INTO messages_fts(rowid, content) VALUES (?, ?)"),
    removeText: db.prepare("DELETE FROM texts WHERE conversation_id = ? AND rowid = ?"),
    addText: db.prepare("INSERT INTO texts(conversation_id, rowid, folded) VALUES (?, ?, ?)"),
    done: db.prepare("UPDATE state SET indexed_seq = ?"),
  };
}

function step(batch) {
  const [[from]] = q.from.values();
  // Short reads of parley.db, one statement each: a read snapshot held through the FTS5
  // work would keep parley.db's WAL from restarting. A text read after its queue entry is
  // that text or a later one (whose own entry comes later), so the index is never behind
  // what it claims.
  const queue = q.batch.values(from, batch);
  if (queue.length === 0) return 0;
  const texts = new Map();
  // A message the index may hold already (an edit, a delete, or a rowid reused after a
  // delete) is removed from it first; a new one is not (half the work of a first build).
  const indexedBefore = new Map();
  // Newest entry first: a message queued twice is read and indexed once.
  for (let k = queue.length - 1; k >= 0; k--) {
    const [, rowid, fresh, conversationId] = queue[k];
    if (!fresh) indexedBefore.set(rowid, (indexedBefore.get(rowid) ?? new Set()).add(conversationId));
    if (!texts.has(rowid)) texts.set(rowid, { conversationId, row: q.text.values(rowid)[0] ?? null });
  }
  db.run("BEGIN");
  try {
    for (const [rowid, { conversationId, row }] of texts) {
      if (indexedBefore.has(rowid)) {
        q.remove.run(rowid);
        for (const conversation of indexedBefore.get(rowid)) q.removeText.run(conversation, rowid);
      }
      if (row && row[0] && row[1] === null) {
        q.add.run(rowid, row[0]);
        q.addText.run(conversationId, rowid, fold(row[0]));
      }
    }
    q.done.run(queue[queue.length - 1][0]);
    db.run("COMMIT");
    return queue.length;
  } catch (error) {
    if (db.inTransaction) db.run("ROLLBACK");
    throw error;
  }
}

function loop(batch, idleMs) {
  if (stopping) return;
  let wait = idleMs;
  try {
    const n = step(batch);
    // Behind: go on at once (the event loop still turns for a stop message).
    if (n === batch) wait = 0;
  } catch (error) {
    postMessage({ error: String(error) });
    wait = 1000;
  }
  timer = setTimeout(() => loop(batch, idleMs), wait);
}

self.onmessage = (event) => {
  if (event.data.stop) {
    stopping = true;
    clearTimeout(timer);
    for (const s of Object.values(q ?? {})) s.finalize();
    db?.close();
    postMessage({ stopped: true });
    return;
  }
  const { searchFile, parleyFile, batch, idleMs } = event.data;
  try {
    open(searchFile, parleyFile);
  } catch (error) {
    postMessage({ error: String(error) });
    return;
  }
  loop(batch, idleMs);
};
