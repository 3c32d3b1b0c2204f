import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eventsOf, lastSeq, sqliteOnly, startServer, TEST_BACKEND, type TestServer } from "./helpers";
import { users } from "../src/db/schema";
import { toUser } from "../src/users/dto";
import { NEXT_SEQ_SQL, REPLAY_SQL } from "../src/events/log";
import { PG_REPLAY } from "../src/platform/postgres/event-log";
import { openPostgres } from "../src/platform/postgres/client";
import { Checkpointer } from "../src/db/checkpointer";
import { openDatabase } from "../src/db/client";
import { createLogger } from "../src/log";
import { tempDir, withSqliteBefore } from "./helpers";
import { migrate } from "../src/db/migrate";

/** Polls an asynchronous condition until it holds (or throws after `ms`). */
async function until(check: () => Promise<boolean>, ms = 5000) {
  for (const deadline = Date.now() + ms; !(await check()); await Bun.sleep(20)) if (Date.now() > deadline) throw new Error("until: condition not met in time");
}

/** `n` events on a topic nobody has, each created at `createdAt`, in one statement (both engines). */
const insertEvents = (s: TestServer, n: number, topic: string, createdAt: number) =>
  s.rows(
    `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
     INSERT INTO events (topic, type, data, created_at) SELECT ?, 'message.receive', '{}', CAST(? AS BIGINT) FROM k`,
    n, topic, createdAt,
  );

/** The SQLite log's own API; PgEventLog's counterparts are tested in test/pg-event-log.test.ts. */
const sqliteLog = sqliteOnly("the SQLite EventLog's synchronous transactions (PgEventLog: test/pg-event-log.test.ts)");
import { Writable } from "node:stream";
import { existsSync, readdirSync, readlinkSync } from "node:fs";

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(() => s.stop());

describe("the event log", () => {
  sqliteLog.test("a change and its events commit together or not at all", () => {
    const { events, db } = s.app.ctx;
    const seen: number[] = [];
    const off = events.onCommit((evs) => seen.push(...evs.map((e) => e.seq)));
    const before = events.lastSeq();
    expect(() =>
      events.write((w) => {
        w.tx.insert(users).values({ id: "rollback-user", username: "rollback_user", displayName: "r", passwordHash: "x", profileImageUrl: null, lastActiveAt: 0, createdAt: 0, updatedAt: 0 }).run();
        w.emit("user:rollback-user", "user.update", toUser({ id: "rollback-user", username: "rollback_user", displayName: "r", profileImageUrl: null, lastActiveAt: 0, createdAt: 0 }));
        throw new Error("fails after the write");
      }),
    ).toThrow("fails after the write");
    expect(db.$client.query("SELECT count(*) AS n FROM users WHERE id = 'rollback-user'").get()).toEqual({ n: 0 });
    expect(db.$client.query("SELECT count(*) AS n FROM events WHERE topic = 'user:rollback-user'").get()).toEqual({ n: 0 });
    expect(seen).toEqual([]);

    const result = events.write((w) => {
      const mention = { kind: "mention" as const, conversation_id: "c", message_id: "m", from_user_id: "u" };
      w.emit("user:nobody", "notification", mention);
      w.emit("user:nobody", "notification", { ...mention, message_id: "m2" });
      return 42;
    });
    expect(result).toBe(42);
    // seq only grows, even past the rolled-back attempt.
    expect(seen).toHaveLength(2);
    expect(seen[0]!).toBeGreaterThan(before);
    expect(seen[1]).toBe(seen[0]! + 1);
    off();
  });

  // lastSeq() is kept between writes (events/log.ts); a value read inside a change that then
  // rolls back must not be: the next event takes that seq again.
  sqliteLog.test("the last seq read inside a change that rolls back is not kept", () => {
    const { events } = s.app.ctx;
    const before = events.lastSeq();
    const mention = { kind: "mention" as const, conversation_id: "c", message_id: "m", from_user_id: "u" };
    expect(() =>
      events.write((w) => {
        w.emit("user:nobody", "notification", mention);
        expect(events.lastSeq()).toBe(before + 1);
        throw new Error("rolled back");
      }),
    ).toThrow("rolled back");
    expect(events.lastSeq()).toBe(before);
    const seq = events.write((w) => w.emit("user:nobody", "notification", mention));
    expect(events.lastSeq()).toBe(seq);
  });

  sqliteLog.test("group commit: changes queued together commit in one transaction, and one that throws rolls back alone", async () => {
    const { events, db } = s.app.ctx;
    const batches: number[][] = [];
    const off = events.onCommit((evs) => batches.push(evs.map((e) => e.seq)));
    const user = (id: string) => ({ id, username: id, displayName: id, passwordHash: "x", profileImageUrl: null, lastActiveAt: 0, createdAt: 0, updatedAt: 0 });
    const change = (id: string, fail = false) =>
      events.writeBatched((w) => {
        w.tx.insert(users).values(user(id)).run();
        w.emit(`user:${id}`, "user.update", toUser(user(id)));
        if (fail) throw new Error(`${id} fails`);
        return id;
      });
    const results = await Promise.allSettled([change("batch_a"), change("batch_b", true), change("batch_c")]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    const ids = (db.$client.query("SELECT id FROM users WHERE id LIKE 'batch_%' ORDER BY id").all() as { id: string }[]).map((r) => r.id);
    expect(ids).toEqual(["batch_a", "batch_c"]);
    const topics = (db.$client.query("SELECT topic FROM events WHERE topic LIKE 'user:batch_%' ORDER BY seq").all() as { topic: string }[]).map((r) => r.topic);
    expect(topics).toEqual(["user:batch_a", "user:batch_c"]);
    // Published together, once, after the commit.
    expect(batches).toHaveLength(1);
    expect(batches[0]).toHaveLength(2);
    off();
  });

  // Skipped where there is no /proc (not Linux): the open files are read from /proc/self/fd.
  sqliteLog.test.skipIf(!existsSync("/proc/self/fd"))("a group commit keeps its savepoints' undo records in memory: a change that rewrites many pages opens no temp file [reads /proc/self/fd]", async () => {
    // SQLite's sub-journal moves to a temp file past 16 pages in one savepoint, and every
    // page journalled after that, to the end of the transaction, costs two writes to it.
    const { events, db } = s.app.ctx;
    const data = toUser({ id: "undo", username: "undo", displayName: "undo", profileImageUrl: null, lastActiveAt: 0, createdAt: 0 });
    const padded = JSON.stringify({ ...data, pad: "x".repeat(3000) }); // about a page an event
    events.write((w) => {
      for (let i = 0; i < 40; i++) w.emit("user:undo_pages", "user.update", data, padded);
    });
    const tempFiles = () =>
      readdirSync("/proc/self/fd").flatMap((fd) => {
        try {
          const target = readlinkSync(`/proc/self/fd/${fd}`);
          return target.includes("etilqs_") ? [target] : [];
        } catch {
          return []; // closed meanwhile
        }
      });
    const seen: string[][] = [];
    const rewrite = () =>
      events.writeBatched(() => {
        const changed = db.$client.run("UPDATE events SET data = data || ' ' WHERE topic = 'user:undo_pages'").changes;
        seen.push(tempFiles());
        return changed;
      });
    expect(await Promise.all([rewrite(), rewrite()])).toEqual([40, 40]);
    expect(seen).toEqual([[], []]);
  });

  sqliteLog.test("a topic numbered inside a change that rolled back is numbered again: every event stays under its own topic", async () => {
    const { events, db } = s.app.ctx;
    const data = toUser({ id: "x", username: "x", displayName: "x", profileImageUrl: null, lastActiveAt: 0, createdAt: 0 });
    const change = (topic: string, fail = false) =>
      events.writeBatched((w) => {
        w.emit(topic, "user.update", data);
        if (fail) throw new Error("rolls back");
      });
    // The first change's number goes with its rollback, and the next new topic takes it.
    const results = await Promise.allSettled([change("user:numbered_gone", true), change("user:numbered_next")]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "fulfilled"]);
    await change("user:numbered_gone");
    events.write((w) => void w.emit("user:numbered_gone", "user.update", data));
    const filed = db.$client.query("SELECT e.topic, t.topic AS numbered FROM events e LEFT JOIN event_topics t ON t.id = e.topic_id WHERE e.topic LIKE 'user:numbered_%' ORDER BY e.seq").all();
    expect(filed).toEqual([
      { topic: "user:numbered_next", numbered: "user:numbered_next" },
      { topic: "user:numbered_gone", numbered: "user:numbered_gone" },
      { topic: "user:numbered_gone", numbered: "user:numbered_gone" },
    ]);
  });

  sqliteLog.test("an async function cannot be used as a transaction", () => {
    expect(() => s.app.ctx.events.write((async () => 1) as never)).toThrow("synchronous");
  });

  test("GET /api/events: own user topic plus conversations the user is in now, in seq order, paged", async () => {
    const [a, b, c] = [await s.register(), await s.register(), await s.register()];
    const { body: g } = await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "G", member_ids: [b.user.id] } });
    await s.api("PATCH", `/api/conversations/${g.id}`, { token: a.token, body: { title: "G2" } });
    await s.api("PATCH", `/api/conversations/${g.id}`, { token: a.token, body: { title: "G3" } });
    const bEvents = await eventsOf(s, b.token);
    expect(bEvents.map((e) => e.type)).toEqual(["conversation.create", "conversation.update", "conversation.update"]);
    expect(bEvents.map((e) => e.seq)).toEqual([...bEvents.map((e) => e.seq)].sort((x, y) => x - y));
    expect(bEvents[0]).toEqual({ seq: expect.any(Number), type: "conversation.create", data: expect.any(Object), timestamp: expect.stringMatching(/Z$/) });
    expect(await eventsOf(s, c.token)).toEqual([]);

    const page = await s.api("GET", `/api/events?since=0&limit=2`, { token: b.token });
    expect(page.body.items).toHaveLength(2);
    const rest = await s.api("GET", `/api/events?limit=2&cursor=${page.body.next_cursor}`, { token: b.token });
    expect(rest.body.items.map((e: any) => e.seq)).toEqual([bEvents[2]!.seq]);
    expect(rest.body.next_cursor).toBeNull();

    // After leaving, the conversation's events are no longer in b's replay; the delete is.
    await s.api("DELETE", `/api/conversations/${g.id}/members/${b.user.id}`, { token: b.token });
    expect((await eventsOf(s, b.token)).map((e) => e.type)).toEqual(["conversation.create", "conversation.delete"]);
  });

  test("bad parameters: 400 for a since or cursor that is not a number, 422 for a limit out of range, 401 without token", async () => {
    const a = await s.register();
    expect((await s.api("GET", "/api/events?since=abc", { token: a.token })).status).toBe(400);
    expect((await s.api("GET", "/api/events?since=-1", { token: a.token })).status).toBe(400);
    expect((await s.api("GET", "/api/events?cursor=zz", { token: a.token })).status).toBe(400);
    // A bad since is 400 even beside a good cursor.
    expect((await s.api("GET", "/api/events?cursor=1&since=zzz", { token: a.token })).status).toBe(400);
    expect((await s.api("GET", "/api/events?limit=0", { token: a.token })).status).toBe(422);
    expect((await s.api("GET", "/api/events?limit=101", { token: a.token })).status).toBe(422);
    expect((await s.api("GET", "/api/events")).status).toBe(401);
  });

  test("a page is 50 events by default and 100 at most, as every list (§2)", async () => {
    const a = await s.register();
    const since = await lastSeq(s, a.token);
    // 120 events of a's own: profile updates.
    for (let i = 0; i < 120; i++) expect((await s.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: `A ${i}` } })).status).toBe(200);
    const page = async (query: string) => (await s.api("GET", `/api/events?since=${since}${query}`, { token: a.token })).body as { items: { seq: number }[]; next_cursor: string | null };
    const first = await page("");
    expect(first.items).toHaveLength(50);
    expect(first.next_cursor).toBe(String(first.items[49]!.seq));
    expect((await page("&limit=100")).items).toHaveLength(100);
    const rest = await page(`&limit=100&cursor=${first.next_cursor}`);
    expect(rest.items).toHaveLength(70);
    expect(rest.next_cursor).toBeNull();
  });

  test("a replay finds the user's events across long stretches of other topics' events", async () => {
    const a = await s.register();
    const since = await lastSeq(s, a.token);
    await s.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: "before the gap" } });
    // 12,000 events of nobody's concern: more than two replay windows.
    await insertEvents(s, 12_000, "conv:elsewhere", Date.now());
    await s.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: "after the gap" } });
    const items = (await s.api("GET", `/api/events?since=${since}`, { token: a.token })).body.items;
    expect(items.map((e: { data: { display_name: string } }) => e.data.display_name)).toEqual(["before the gap", "after the gap"]);
    const page = (await s.api("GET", `/api/events?since=${since}&limit=1`, { token: a.token })).body;
    expect(page.items).toHaveLength(1);
    expect((await s.api("GET", `/api/events?since=${since}&cursor=${page.next_cursor}`, { token: a.token })).body.items.map((e: { data: { display_name: string } }) => e.data.display_name)).toEqual(["after the gap"]);
  });

  test("events past EVENT_RETENTION are pruned; an older since answers 410 sync_reset", async () => {
    const own = await startServer();
    try {
      const a = await own.register();
      const b = await own.register();
      await own.api("POST", "/api/conversations", { token: a.token, body: { type: "direct", user_id: b.user.id } });
      // A stint of b's in a group (left, then added again), which pruning makes moot.
      const { body: g } = await own.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "g", member_ids: [b.user.id] } });
      await own.api("DELETE", `/api/conversations/${g.id}/members/${b.user.id}`, { token: b.token });
      await own.api("POST", `/api/conversations/${g.id}/members`, { token: a.token, body: { user_ids: [b.user.id] } });
      const stints = async () => (await own.rows<{ n: number }>("SELECT count(*) AS n FROM member_stints"))[0]!.n;
      expect(await stints()).toBe(1);
      expect(await lastSeq(own, a.token)).toBeGreaterThan(0);
      const { feed } = own.app.ctx;
      const seq = await feed.lastSeq();
      expect(await feed.prune(0, Date.now() + 1)).toBeGreaterThan(0);
      expect(await stints()).toBe(0);
      const res = await own.api("GET", "/api/events?since=0", { token: a.token });
      expect(res.status).toBe(410);
      expect(res.body.error.code).toBe("sync_reset");
      // From the pruned point on, replay works again.
      const ok = await own.api("GET", `/api/events?since=${seq}`, { token: a.token });
      expect(ok.status).toBe(200);
      expect(ok.body.items).toEqual([]);
      await own.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: "later" } });
      const after = (await own.api("GET", `/api/events?since=${seq}`, { token: a.token })).body.items;
      expect(after.map((e: any) => e.type)).toEqual(["user.update"]);
      expect(after[0].seq).toBeGreaterThan(seq);
    } finally {
      await own.stop();
    }
  });

  test("pruning removes exactly the events older than the retention", async () => {
    const own = await startServer();
    try {
      const a = await own.register();
      for (let i = 0; i < 9; i++) await own.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: `n${i}` } });
      const seqs = (await eventsOf(own, a.token)).map((e) => e.seq);
      // Age the first five: one hour old, one minute apart.
      const base = Date.now() - 3600_000;
      for (const [i, seq] of seqs.slice(0, 5).entries()) await own.rows("UPDATE events SET created_at = ? WHERE seq = ?", base + i * 60_000, seq);
      const { feed } = own.app.ctx;
      expect(await feed.prune(3600_000 - 150_000)).toBe(3);
      expect(await feed.prunedThrough()).toBe(seqs[2]!);
      expect((await own.api("GET", `/api/events?since=${seqs[2]}`, { token: a.token })).body.items.map((e: any) => e.seq)).toEqual(seqs.slice(3));
      expect((await own.api("GET", `/api/events?since=${seqs[1]}`, { token: a.token })).status).toBe(410);
      expect(await feed.prune(3600_000 - 150_000)).toBe(0);
    } finally {
      await own.stop();
    }
  });

  test("a long backlog is pruned a chunk per event-loop turn; shared payloads go only with their last event", async () => {
    const own = await startServer();
    try {
      const [a, b] = [await own.register(), await own.register()];
      const { feed } = own.app.ctx;
      // 45,000 hour-old events (three chunks), then a group whose creation stores one shared payload.
      await insertEvents(own, 45_000, "conv:old", Date.now() - 3600_000);
      const lastOld = await feed.lastSeq();
      // An old shared payload, used by events on both sides of a chunk boundary… all old.
      await own.rows("INSERT INTO event_payloads (data) VALUES ('{\"x\":1}')");
      const payload = (await own.rows<{ id: number }>("SELECT max(id) AS id FROM event_payloads"))[0]!.id;
      await own.rows("UPDATE events SET payload_id = ?, data = '' WHERE seq IN (?, ?)", payload, lastOld - 25_001, lastOld - 24_999);
      await own.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "kept", member_ids: [b.user.id] } });

      let turns = 0;
      const ticking = setInterval(() => turns++, 0);
      const removed = await feed.pruneGradually(1800_000);
      clearInterval(ticking);
      expect(removed).toBe(45_000);
      expect(turns).toBeGreaterThan(0); // other work ran in between
      expect(await feed.prunedThrough()).toBe(lastOld);
      expect(await own.rows("SELECT count(*) AS n FROM events WHERE topic = 'conv:old'")).toEqual([{ n: 0 }]);
      expect(await own.rows("SELECT id FROM event_payloads WHERE id = ?", payload)).toEqual([]);
      // The group's create (a shared payload) is intact for both members.
      for (const who of [a, b]) {
        const items = (await own.api("GET", `/api/events?since=${lastOld}`, { token: who.token })).body.items;
        expect(items.find((e: { type: string }) => e.type === "conversation.create").data.title).toBe("kept");
      }
    } finally {
      await own.stop();
    }
  });

  test("a server prunes past EVENT_RETENTION when it starts, and then every retention period (at most hourly)", async () => {
    const dir = tempDir();
    const first = await startServer({}, dir);
    const a = await first.register();
    for (let i = 0; i < 3; i++) await first.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: `old ${i}` } });
    const old = await lastSeq(first, a.token);
    await first.rows("UPDATE events SET created_at = ? WHERE seq <= ?", Date.now() - 7200_000, old);
    await first.stop(false);
    // An hour's retention: the two-hour-old events go as it starts (SQLite before serving, PostgreSQL at once after).
    const second = await startServer({ eventRetentionSeconds: 3600 }, dir);
    await until(async () => (await second.app.ctx.feed.prunedThrough()) === old);
    expect((await second.api("GET", "/api/events?since=0", { token: a.token })).status).toBe(410);
    expect(second.logs.some((l) => l.msg === "event log pruned")).toBe(true);
    await second.stop(false);
    // A second's retention: the periodic run takes what became older meanwhile.
    const third = await startServer({ eventRetentionSeconds: 1 }, dir);
    try {
      await third.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: "soon old" } });
      const recent = await third.app.ctx.feed.lastSeq();
      await until(async () => (await third.app.ctx.feed.prunedThrough()) === recent, 5000);
      expect((await third.api("GET", `/api/events?since=${old}`, { token: a.token })).status).toBe(410);
    } finally {
      await third.stop();
    }
  });

  test("a checkpoint worker that cannot work hands over to SQLite's auto-checkpoint, and is gone", async () => {
    const db = openDatabase(`${tempDir()}/own.db`);
    const lines: string[] = [];
    const log = createLogger("info", new Writable({ write: (c, _e, done) => (lines.push(String(c)), done()) }));
    // The worker cannot open this file: its first attempt fails.
    const cp = new Checkpointer(db, "/nonexistent-dir/parley.db", log, 10);
    await cp.started;
    expect((db.$client.query("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number }).wal_autocheckpoint).toBe(10000);
    expect(lines.join("")).toContain("SQLite's auto-checkpoint takes over");
    const t0 = performance.now();
    await cp.stop();
    expect(performance.now() - t0).toBeLessThan(500); // not the 2 s wait for a worker that is gone
    db.$client.close();
  });

  test("appended events are counted in /metrics", async () => {
    const a = await s.register();
    await s.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: "counted" } });
    const text = await (await fetch(`${s.base}/metrics`)).text();
    expect(text).toMatch(/parley_events_appended_total\{type="user.update"\} [1-9]/);
  });
});

sqliteOnly("the WAL of parley.db").describe("checkpoints", () => {
  test("the WAL stays bounded under continuous writes, checkpointed off the event loop", async () => {
    const own = await startServer({ walRestartPages: 128, sendsPerMinute: 10_000_000 });
    try {
      const a = await own.register();
      const { body: g } = await own.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "wal" } });
      const { statSync } = await import("node:fs");
      const wal = () => statSync(`${own.dataDir}/parley.db-wal`).size;
      // The WAL file keeps its high-water size: writes made before the worker thread is up
      // (slow to start on a busy machine) would count against the bound.
      await own.app.checkpointer!.started;
      let largest = 0;
      // About 8 MB of messages, far past the 512 KiB restart point.
      for (let round = 0; round < 40; round++) {
        await Promise.all(Array.from({ length: 50 }, (_, i) => own.api("POST", `/api/conversations/${g.id}/messages`, { token: a.token, body: { content: `${round}-${i} ${"z".repeat(3000)}` } })));
        largest = Math.max(largest, wal());
        await Bun.sleep(5);
      }
      expect(largest).toBeLessThan(6 * 1024 * 1024);
      expect(statSync(`${own.dataDir}/parley.db`).size).toBeGreaterThan(4 * 1024 * 1024);
      const count = own.app.ctx.db.$client.query("SELECT count(*) AS n FROM messages").all()[0] as { n: number };
      expect(count.n).toBe(2000);
    } finally {
      await own.stop();
    }
  }, 60_000);
});

/**
 * A query's plan as text: SQLite's EXPLAIN QUERY PLAN, or PostgreSQL's EXPLAIN with
 * sequential scans priced out (tables this small would be read whole anyway: a Seq Scan
 * left in the plan means no index can serve the query).
 */
async function plan(server: TestServer, sqlite: string, postgres: string, params: unknown[]): Promise<string> {
  if (TEST_BACKEND === "sqlite") return (server.app.ctx.db.$client.query(`EXPLAIN QUERY PLAN ${sqlite}`).all(...(params as string[])) as { detail: string }[]).map((r) => r.detail).join(" | ");
  const db = openPostgres(server.app.ctx.config.databaseUrl!, 1);
  try {
    return await db.$client.begin(async (tx) => {
      await tx`SET LOCAL enable_seqscan = off`;
      return ((await tx.unsafe(`EXPLAIN ${postgres}`, params as never[])) as Record<string, string>[]).map((r) => r["QUERY PLAN"]).join("\n");
    });
  } finally {
    await db.$client.close();
  }
}

/** The same query in both spellings: `?` (SQLite) becomes `$1`, `$2`, … */
const both = (q: string): [string, string] => {
  let n = 0;
  return [q, q.replace(/\?/g, () => `$${++n}`)];
};

// SQLite's migration 0015 on a database file of its own.
describe.skipIf(TEST_BACKEND === "postgres")("event topic numbers", () => {
  test("migration 0015 numbers the topics of the events already logged, a trigger those appended without a number, and replay finds them", () => {
    withSqliteBefore("CREATE TABLE `event_topics`", (db, pending) => {
      const sql = db.$client;
      sql.run("INSERT INTO users VALUES ('u1', 'u1', 'u1', NULL, '!', 0, 0, 0)");
      sql.run("INSERT INTO conversations (id, type, title, created_by, created_at, updated_at, activity_at) VALUES ('c1', 'group', 't', 'u1', 0, 0, 0)");
      sql.run("INSERT INTO conversation_members (conversation_id, user_id, role, joined_at, joined_seq) VALUES ('c1', 'u1', 'owner', 0, 0)");
      for (const topic of ["conv:c1", "user:u1", "conv:other", "conv:c1", "user:u2"]) sql.run("INSERT INTO events (topic, type, data, created_at) VALUES (?, 'user.update', '{}', 0)", [topic]);
      expect(migrate(db)).toBe(pending); // 0015 and any later one
      expect(sql.query("SELECT count(*) AS n FROM events e JOIN event_topics t ON t.id = e.topic_id AND t.topic = e.topic").get()).toEqual({ n: 5 });
      expect(sql.query("SELECT count(*) AS n FROM event_topics").get()).toEqual({ n: 4 });
      expect((sql.query(REPLAY_SQL).all(0, "u1", 50, 5) as { seq: number }[]).map((r) => r.seq)).toEqual([1, 2, 4]);
      expect(sql.query(NEXT_SEQ_SQL).all(2, "u1")).toEqual([{ next: 4 }]);
      // An event appended as a build from before 0015 appends it (no topic number; say, after
      // a rollback of the server's version) is numbered too, and replayed.
      sql.run("INSERT INTO events (topic, type, data, created_at) VALUES ('conv:c1', 'user.update', '{}', 0), ('conv:new', 'user.update', '{}', 0)");
      expect((sql.query(REPLAY_SQL).all(0, "u1", 50, 7) as { seq: number }[]).map((r) => r.seq)).toEqual([1, 2, 4, 6]);
      expect(sql.query("SELECT count(*) AS n FROM events e JOIN event_topics t ON t.id = e.topic_id AND t.topic = e.topic").get()).toEqual({ n: 7 });
    });
  });
});

describe("indexes", () => {
  test("hot queries use indexes, never a full table scan", async () => {
    const queries: [string, string, unknown[]][] = [
      // membership lookup
      [...both("SELECT * FROM conversation_members WHERE conversation_id = ? AND user_id = ?"), ["c", "u"]],
      // list by activity
      [...both("SELECT c.* FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = ? ORDER BY c.activity_at DESC, c.id DESC LIMIT 50"), ["u"]],
      // replay of one topic (SQLite files events under the topic's number: events.topicId)
      ["SELECT seq FROM events WHERE topic_id = ? AND seq > 0 ORDER BY seq", "SELECT seq FROM events WHERE topic = $1 AND seq > 0 ORDER BY seq", [TEST_BACKEND === "sqlite" ? 1 : "t"]],
      // user replay (own topic + conversations since joining): the queries the server runs
      [REPLAY_SQL, PG_REPLAY.replay, [0, "u", 50, 5000]],
      [NEXT_SEQ_SQL, PG_REPLAY.nextSeq, [0, "u"]],
      // history page and unread count
      [...both("SELECT id FROM messages WHERE conversation_id = ? AND id < ? ORDER BY id DESC LIMIT 50"), ["c", "m"]],
      [...both("SELECT count(*) FROM messages WHERE conversation_id = ? AND id > ? AND sender_id != ? AND deleted_at IS NULL"), ["c", "m", "u"]],
      // pruning's binary search probe
      [...both("SELECT seq, created_at FROM events WHERE seq >= ? ORDER BY seq LIMIT 1"), [1]],
      [...both("SELECT * FROM friendships WHERE pair_key = ?"), ["k"]],
    ];
    for (const [sqlite, postgres, params] of queries) {
      const p = await plan(s, sqlite, postgres, params);
      if (process.env.SHOW_PLANS) console.log(sqlite, "\n   ", p);
      expect(p).not.toMatch(/SCAN (conversation_members|conversations|messages|friendships|users|events|e)\b(?! USING)|Seq Scan on/);
      // A lookup by topic that walked the whole log by seq would pass the line above.
      if (/topic/.test(sqlite) && TEST_BACKEND === "sqlite") expect(p).toContain("INDEX events_topic_id_seq");
    }
  });

  test("a message's read count reaches only the members past it, not every member of the group", async () => {
    // The subquery of read_count (messages/view.ts), for one message.
    const p = await plan(s, ...both("SELECT count(*) FROM conversation_members rm WHERE rm.conversation_id = ? AND rm.user_id != ? AND rm.last_read_message_id >= ?"), ["c", "u", "m"]);
    if (TEST_BACKEND === "sqlite") expect(p).toContain("COVERING INDEX members_read_position (conversation_id=? AND last_read_message_id>?)");
    else expect(p).toMatch(/Index Only Scan using members_read_position[^\n]*\n\s*Index Cond: \(\(conversation_id = [^)]+\) AND \(last_read_message_id >= [^)]+\)\)/);
  });
});
