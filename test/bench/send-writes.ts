/**
 * A send's writes on SQLite, statement by statement and page by page (issue #17), without a
 * server: `bun test/bench/send-writes.ts [--batch=40] [--n=40000] [--variant=…]`.
 *
 * A migrated parley.db (the real migrations) with 10 users in each of `--groups` (10) groups gets `n` messages,
 * as group commits of `batch` (each message in a savepoint, as EventLog.writeBatched runs
 * them): the membership check, the message's insert, the conversation's update and the
 * `message.receive` event's insert, then the commit, each step timed by the clock
 * (`Bun.nanoseconds`: this thread's CPU time is counted in ticks too coarse for a step, and
 * on a quiet machine a single-threaded loop's time is its CPU time; the timing itself adds
 * ~0.1 µs a step). Printed: µs per message per step (second of two rounds), and, for one
 * commit of 100 messages after a checkpoint, the pages it wrote to the WAL by the table or
 * index they belong to (`dbstat`). `--variant`: `nofk` (foreign keys off), `notrigger` (the
 * search trigger dropped), `noindex=<name>` (an index dropped), `topic-text` (the event
 * log's index by topic text, as before migration 0015), `tempfile` (temp files on disk, as
 * before `keepTempInMemory`: savepoints' undo records spill to one), to see what each costs;
 * `--page-size=N` makes the database with pages of N bytes.
 */
import { Database } from "bun:sqlite";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keepTempInMemory, openDatabase } from "../../src/db/client";
import { migrate } from "../../src/db/migrate";

const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const batch = Number(arg("batch", "40"));
const n = Number(arg("n", "40000"));
const variant = arg("variant", "");
const pageSize = Number(arg("page-size", "4096"));
const groupCount = Number(arg("groups", "10"));
if (!(batch >= 1 && n >= batch)) throw new Error("--batch and --n: numbers, n at least batch");
if (!(Number.isInteger(groupCount) && groupCount >= 1)) throw new Error("--groups: a whole number, at least 1");
if (![512, 1024, 2048, 4096, 8192, 16384, 32768, 65536].includes(pageSize)) throw new Error("--page-size: a power of two from 512 to 65536");

const dir = mkdtempSync(join(tmpdir(), "send-writes-"));
const file = join(dir, "parley.db");
// The page size holds from the first table on.
const blank = new Database(file);
blank.run(`PRAGMA page_size = ${pageSize}`);
blank.run("VACUUM");
blank.close();
const db = openDatabase(file);
migrate(db);
// As the server's connection (`tempfile`: SQLite's default, the sub-journal spilling to a file).
if (variant !== "tempfile") keepTempInMemory(db);
const sql = db.$client;
sql.run("PRAGMA wal_autocheckpoint = 0"); // checkpointed here, between rounds (the server's worker does it)
if (variant === "nofk") sql.run("PRAGMA foreign_keys = OFF");
if (variant === "notrigger") sql.run("DROP TRIGGER search_pending_insert");
if (variant.startsWith("noindex=")) sql.run(`DROP INDEX ${variant.slice(8)}`);
const byText = variant === "topic-text";
if (byText) sql.run("DROP INDEX events_topic_id_seq; CREATE INDEX events_topic_seq ON events (topic, seq)");

const users: string[] = [];
const groups: string[] = [];
sql.transaction(() => {
  for (let i = 0; i < groupCount * 10; i++) {
    users.push(Bun.randomUUIDv7());
    sql.run("INSERT INTO users (id, username, password_hash, display_name, last_active_at, created_at, updated_at) VALUES (?, ?, 'x', ?, 0, 0, 0)", [users[i]!, `u${i}`, `U${i}`]);
  }
  for (let g = 0; g < groupCount; g++) {
    groups.push(Bun.randomUUIDv7());
    sql.run("INSERT INTO conversations (id, type, title, created_by, created_at, updated_at, activity_at) VALUES (?, 'group', 'g', ?, 0, 0, 0)", [groups[g]!, users[g * 10]!]);
    for (let m = 0; m < 10; m++) sql.run("INSERT INTO conversation_members (conversation_id, user_id, role, joined_at, joined_seq) VALUES (?, ?, 'member', 0, 0)", [groups[g]!, users[g * 10 + m]!]);
  }
})();
const topics = new Map(groups.map((g) => [g, Number(sql.query("INSERT INTO event_topics (topic) VALUES (?) RETURNING id").values(`conv:${g}`)[0]![0])]));

// The statements of messages/service.ts sendMessage and events/log.ts emit, as SQL.
const savepoint = sql.prepare("SAVEPOINT change");
const release = sql.prepare("RELEASE change");
const member = sql.prepare("SELECT role FROM conversation_members WHERE conversation_id = ? AND user_id = ?");
const insertMessage = sql.prepare(
  "INSERT INTO messages (id, conversation_id, sender_id, message_type, content, client_msg_id, reply_to_id, created_at, edited_at, deleted_at) VALUES (?, ?, ?, 'text', ?, NULL, NULL, ?, NULL, NULL)",
);
const touch = sql.prepare("UPDATE conversations SET last_message_at = ?, last_message_id = ?, activity_at = ? WHERE id = ?");
const insertEvent = sql.prepare("INSERT INTO events (topic, topic_id, type, data, created_at) VALUES (?, ?, 'message.receive', ?, ?)");
const topicOf = (g: string) => (byText ? null : topics.get(g)!);

let sent = 0;
const clock = () => Bun.nanoseconds() / 1000;
/** One group commit of `size` messages; adds each step's µs to `t` when given. */
function commit(size: number, t?: Record<string, number>) {
  const step = (name: string, f: () => unknown) => {
    if (!t) return f();
    const a = clock();
    f();
    t[name] = (t[name] ?? 0) + clock() - a;
  };
  step("begin", () => sql.run("BEGIN"));
  for (let j = 0; j < size; j++, sent++) {
    const g = groups[sent % groupCount]!;
    const sender = users[(sent % groupCount) * 10 + (sent % 7)]!;
    const id = Bun.randomUUIDv7();
    const now = Date.now();
    const content = `message ${sent} ${"x".repeat(40)}`;
    const json = JSON.stringify({ id, conversation_id: g, sender_id: sender, sender_username: "u", sender_display_name: "U", sender_avatar: null, message_type: "text", content, client_msg_id: null, reply_to_id: null, created_at: new Date(now).toISOString(), edited_at: null, deleted_at: null, read_count: 0, reactions: [], attachments: [], mentions: [] });
    step("savepoint", () => savepoint.run());
    step("membership", () => member.get(g, sender));
    step("message", () => insertMessage.run(id, g, sender, content, now));
    step("conversation", () => touch.run(now, id, now * 1000 + (sent % 1000), g));
    step("event", () => insertEvent.run(`conv:${g}`, topicOf(g), json, now));
    step("release", () => release.run());
  }
  step("commit", () => sql.run("COMMIT"));
}

let t: Record<string, number> = {};
for (let round = 0; round < 2; round++) {
  t = {};
  for (let done = 0; done < n; done += batch) {
    commit(batch, t);
    if (done % 10_000 < batch) sql.run("PRAGMA wal_checkpoint(TRUNCATE)");
  }
}
const total = Object.values(t).reduce((a, b) => a + b, 0);
console.log(`${n} messages in commits of ${batch}${variant ? ` (${variant})` : ""}, µs per message:`, Object.fromEntries(Object.entries(t).map(([k, v]) => [k, +(v / n).toFixed(2)])), `total ${(total / n).toFixed(2)}`);

// The pages one commit of 100 writes, by owner.
sql.run("PRAGMA wal_checkpoint(TRUNCATE)");
commit(100);
const owner = new Map((sql.query("SELECT pageno, name FROM dbstat").values() as [number, string][]).map(([p, name]) => [p, name]));
const wal = readFileSync(`${file}-wal`);
const pages: Record<string, number> = {};
let frames = 0;
for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize, frames++) {
  const name = owner.get(wal.readUInt32BE(at)) ?? "(free)";
  pages[name] = (pages[name] ?? 0) + 1;
}
console.log(`one commit of 100 messages wrote ${frames} pages:`, Object.fromEntries(Object.entries(pages).sort((a, b) => b[1] - a[1])));
sql.close();
rmSync(dir, { recursive: true, force: true });
