// Runs in a Worker thread with its own connection: copies WAL frames back into the
// database file (and fsyncs) off the main thread's event loop. PASSIVE never blocks the
// writer. Loaded as text and started from a Blob URL, so it travels inside the executable.
import { Database } from "bun:sqlite";

let db = null;
let timer = null;

self.onmessage = (event) => {
  if (event.data.stop) {
    clearInterval(timer);
    db?.close();
    postMessage({ stopped: true });
    return;
  }
  db = new Database(event.data.file);
  db.run("PRAGMA busy_timeout = 1000");
  timer = setInterval(() => {
    try {
      // .all(), never .get(): a statement left mid-step would pin a read snapshot.
      postMessage(db.query("PRAGMA wal_checkpoint(PASSIVE)").all()[0]);
    } catch (error) {
      postMessage({ error: String(error), code: error?.code });
    }
  }, event.data.intervalMs);
};
