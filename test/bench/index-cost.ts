/**
 * What indexing costs, part by part (issue #17), without a server: `bun test/bench/index-cost.ts`.
 *
 * A migrated parley.db gets the search scenario's chat-like text (test/bench/search.ts:
 * 70 % English, 30 % Thai, 4–15 words), a search.db beside it, and the real indexer worker
 * (src/search/indexer-worker.js, started from a Blob as the server starts it) with a few
 * lines appended that time its step in the worker thread's own CPU
 * (`process.threadCpuUsage`, so waiting for a core does not count):
 *   read    new messages and queued changes with their texts from parley.db, into the
 *           batch's map
 *   fold    fold() of every text
 *   fts     FTS5's inserts (and removals): its in-memory hash of trigrams
 *   flush   FTS5 writing that hash as a segment, and its automerge (an explicit 'flush'
 *           just before the commit, which would otherwise do it)
 *   texts   the folded texts' inserts (and removals)
 *   commit  the state row and COMMIT (pages to the WAL, and the checkpoints it starts)
 *   checkpoint  a checkpoint of search.db's WAL after the last batch, so that what the
 *           commits left in the WAL is paid for too
 * and, on the main thread, what a send pays for search: the messages' inserts with and
 * without the search triggers (`send_insert_us_*`, alternating, each insert in a savepoint
 * inside transactions of --commit rows, as a group commit makes them) and the pruning of
 * what the index holds from the queue (`prune`, per message sent).
 *
 * Each repetition starts from an empty data directory, indexes --messages messages
 * unmeasured (`build_us_per_message` is reported), then --batches batches of --batch new
 * messages each, measured. Reported: the worker's CPU over the measured batches per message,
 * and the main thread's per batch, µs, medians over the repetitions (worker) or batches.
 * Options: --messages=100000 --conversations=1000 --batch=5000 --batches=10 --commit=100
 * --repeat=3 --automerge=N (FTS5's, instead of the schema's) --json. The machine's load
 * average is printed with the results: on a shared machine compare builds alternately, in
 * one sitting (e.g. this file from an older checkout, `git archive <commit>`).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { keepTempInMemory, openDatabase } from "../../src/db/client";
import { migrate } from "../../src/db/migrate";
import { SCHEMA } from "../../src/search/sqlite";
// @ts-expect-error: imported as text (Bun's `type: "text"`), which TypeScript does not model.
import workerText from "../../src/search/indexer-worker.js" with { type: "text" };
import { corpus } from "./search";
import { round } from "./lib/stats";

const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback);
const o = {
  messages: arg("messages", 100_000),
  conversations: arg("conversations", 1000),
  batch: arg("batch", 5000),
  batches: arg("batches", 10),
  commit: arg("commit", 100),
  repeat: arg("repeat", 3),
  /** FTS5's automerge for the run (-1: the schema's), to compare merge policies. */
  automerge: arg("automerge", -1),
};
const PARTS = ["read", "fold", "fts", "flush", "texts", "commit", "checkpoint"] as const;

/** Appended to the worker's text: `mark` times step's parts; a `bench` message runs one step. */
const HARNESS = `
{
  const cpu = () => { const u = process.threadCpuUsage(); return u.user + u.system; };
  let parts = {};
  let last = 0;
  const add = (part, now) => { parts[part] = (parts[part] ?? 0) + now - last; last = now; };
  mark = (part) => {
    const now = cpu();
    if (part === "start") return void (last = now);
    add(part, now);
    if (part === "texts") (db.run("INSERT INTO messages_fts(messages_fts) VALUES ('flush')"), add("flush", cpu()));
  };
  const init = self.onmessage;
  self.onmessage = (event) => {
    if (!event.data.bench) return init(event);
    parts = {};
    const t0 = cpu();
    if (event.data.checkpoint) {
      db.run("PRAGMA wal_checkpoint(PASSIVE)");
      return postMessage({ bench: true, rows: 0, parts: { checkpoint: cpu() - t0 }, total: cpu() - t0 });
    }
    const [[fromSeq, fromRowid]] = q.from.values();
    step(fromSeq, fromRowid, event.data.batch);
    const [[toSeq, toRowid]] = q.from.values();
    // Entries and new messages taken (the bench's rowids have no gaps).
    postMessage({ bench: true, rows: toSeq - fromSeq + toRowid - fromRowid, parts, total: cpu() - t0 });
  };
}
`;

const threadCpu = () => {
  const u = process.threadCpuUsage();
  return u.user + u.system;
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface StepResult { rows: number; parts: Record<string, number>; total: number }

async function repetition() {
  const dir = mkdtempSync(join(tmpdir(), "bench-index-cost-"));
  const parleyFile = join(dir, "parley.db");
  const searchFile = join(dir, "search.db");
  const orm = openDatabase(parleyFile);
  migrate(orm);
  keepTempInMemory(orm); // as the server's connection
  const db = orm.$client;
  const c = corpus({ messages: o.messages + 3 * o.batch * o.batches + o.batch, conversations: o.conversations, memberOf: Math.min(50, o.conversations) });
  db.transaction(() => {
    const user = db.prepare("INSERT INTO users (id, username, display_name, password_hash, last_active_at, created_at, updated_at) VALUES (?, ?, ?, 'x', ?, ?, ?)");
    for (const u of c.users) user.run(u.id, u.username, u.displayName, c.start, c.start, c.start);
    const conv = db.prepare("INSERT INTO conversations (id, type, title, created_by, created_at, updated_at, activity_at) VALUES (?, 'group', ?, ?, ?, ?, ?)");
    const member = db.prepare("INSERT INTO conversation_members (conversation_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)");
    for (const g of c.convs) {
      conv.run(g.id, g.title, g.members[0]!, c.start, c.start, g.activityAt);
      g.members.forEach((u, k) => member.run(g.id, u, k === 0 ? "owner" : "member", c.start));
    }
  })();
  db.run("ATTACH DATABASE ? AS search", [searchFile]);
  db.run("PRAGMA search.journal_mode = WAL");
  for (const s of SCHEMA) db.run(s);
  if (o.automerge >= 0) db.run(`INSERT INTO search.messages_fts(messages_fts, rank) VALUES ('automerge', ${o.automerge})`);
  db.run("INSERT INTO search.state(index_id, indexed_seq, indexed_rowid) VALUES ('bench', 0, 0)");

  const all = c.messages();
  const insert = db.prepare("INSERT INTO messages (id, conversation_id, sender_id, message_type, content, created_at) VALUES (?, ?, ?, 'text', ?, ?)");
  /** n messages in transactions of `per`, each in a savepoint as a group commit has it; the main thread's CPU µs. */
  const send = (n: number, per: number) => {
    const t0 = threadCpu();
    for (let i = 0; i < n; i += per) {
      db.run("BEGIN");
      for (let k = i; k < Math.min(n, i + per); k++) {
        const m = all.next().value!;
        db.run("SAVEPOINT send");
        insert.run(m.id, m.conversationId, m.senderId, m.content, m.createdAt);
        db.run("RELEASE send");
      }
      db.run("COMMIT");
    }
    return threadCpu() - t0;
  };
  const prune = () => {
    const t0 = threadCpu();
    const { changes } = db.run("DELETE FROM search_pending WHERE seq <= (SELECT indexed_seq FROM search.state)");
    return { us: threadCpu() - t0, rows: changes };
  };

  const url = URL.createObjectURL(new Blob([`${workerText as string}\n${readFileSync(join(import.meta.dir, "../../src/search/fold.js"), "utf8")}\n${HARNESS}`], { type: "application/javascript" }));
  const worker = new Worker(url);
  let reply: ((r: StepResult) => void) | null = null;
  worker.onmessage = (event: MessageEvent) => {
    if (event.data.error) throw new Error(`indexer: ${event.data.error}`);
    if (event.data.bench) reply?.(event.data);
  };
  // It never indexes by itself here: only when asked, one step at a time.
  worker.postMessage({ searchFile, parleyFile, batch: o.batch, minBatch: Number.MAX_SAFE_INTEGER, maxLagMs: Number.MAX_SAFE_INTEGER, idleMs: 2 ** 31 - 1 });
  const step = () => new Promise<StepResult>((resolve) => ((reply = resolve), worker.postMessage({ bench: true, batch: o.batch })));
  const checkpoint = () => new Promise<StepResult>((resolve) => ((reply = resolve), worker.postMessage({ bench: true, checkpoint: true })));

  // The existing index, unmeasured but for its total.
  for (let left = o.messages; left > 0; left -= 10_000) send(Math.min(left, 10_000), 10_000);
  let build = 0;
  for (let r = await step(); r.rows > 0; r = await step()) build += r.total;
  prune();

  // Worker CPU summed over the measured batches, then per message: a checkpoint of
  // search.db's WAL comes every few batches, and the last is forced, so it is shared out.
  const parts: Record<string, number> = Object.fromEntries([...PARTS, "total"].map((p) => [p, 0]));
  const sendOn: number[] = [];
  const pruneUs: number[] = [];
  const count = (r: StepResult) => {
    for (const [p, us] of Object.entries(r.parts)) parts[p] = (parts[p] ?? 0) + us;
    parts.total! += r.total;
  };
  for (let b = 0; b < o.batches; b++) {
    send(o.batch, o.commit);
    const r = await step();
    if (r.rows !== o.batch) throw new Error(`a step took ${r.rows} rows, not ${o.batch}`);
    count(r);
    pruneUs.push(prune().us / o.batch);
  }
  count(await checkpoint());
  for (const p of Object.keys(parts)) parts[p]! /= o.batch * o.batches;
  // The send path with and without the search triggers, alternating (the order too).
  const triggers = (db.query("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages' AND name LIKE 'search%'").values() as [string][]).map((r) => r[0]);
  const sendOff: number[] = [];
  for (let b = 0; b < 2 * o.batches; b++) {
    const on = b % 4 === 0 || b % 4 === 3;
    for (const t of db.query("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages' AND name LIKE 'search%'").values() as [string][]) db.run(`DROP TRIGGER ${t[0]}`);
    if (on) for (const sql of triggers) db.run(sql);
    (on ? sendOn : sendOff).push(send(o.batch, o.commit) / o.batch);
  }

  worker.postMessage({ stop: true });
  await Bun.sleep(100);
  worker.terminate();
  URL.revokeObjectURL(url);
  insert.finalize();
  db.close();
  const sizes = { search_db_mb: round(Bun.file(searchFile).size / 1e6, 1) };
  rmSync(dir, { recursive: true, force: true });
  return { build: build / o.messages, parts, sendOn, sendOff, pruneUs, sizes };
}

const load = [loadavg()[0]!];
const runs: Awaited<ReturnType<typeof repetition>>[] = [];
for (let r = 0; r < o.repeat; r++) {
  runs.push(await repetition());
  load.push(loadavg()[0]!);
}
const all = (f: (r: (typeof runs)[number]) => number[]) => runs.flatMap(f);
const summary = {
  scenario: "index_cost",
  ...o,
  load_average: { start: round(load[0]!), end: round(load[load.length - 1]!) },
  worker_us_per_message: Object.fromEntries([...PARTS, "total"].map((p) => [p, round(median(runs.map((r) => r.parts[p]!)), 1)])),
  worker_total_each_repetition: runs.map((r) => round(r.parts.total!, 1)),
  build_us_per_message: round(median(runs.map((r) => r.build)), 1),
  send_insert_us_with_triggers: round(median(all((r) => r.sendOn)), 2),
  send_insert_us_without: round(median(all((r) => r.sendOff)), 2),
  prune_us_per_message: round(median(all((r) => r.pruneUs)), 2),
  search_db_mb: runs[runs.length - 1]!.sizes.search_db_mb,
};
if (process.argv.includes("--json")) console.log(JSON.stringify(summary));
else {
  const w = summary.worker_us_per_message;
  console.log(`index cost, ${o.messages} messages indexed, then ${o.batches} × ${o.batch} measured; ${o.repeat} repetitions; load average ${summary.load_average.start} → ${summary.load_average.end}`);
  console.log(`worker µs/message (median): ${PARTS.map((p) => `${p} ${w[p]}`).join(", ")}; total ${w.total} (each repetition: ${summary.worker_total_each_repetition.join(", ")})`);
  console.log(`first build ${summary.build_us_per_message} µs/message; search.db ${summary.search_db_mb} MB`);
  console.log(`main thread µs/message: insert with triggers ${summary.send_insert_us_with_triggers}, without ${summary.send_insert_us_without} (transactions of ${o.commit}); prune ${summary.prune_us_per_message}`);
}
