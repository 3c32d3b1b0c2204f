import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eventsOf, lastSeq, startServer, type TestServer } from "./helpers";
import { users } from "../src/db/schema";
import { toUser } from "../src/users/dto";
import { NEXT_SEQ_SQL, REPLAY_SQL } from "../src/events/log";
import { Checkpointer } from "../src/db/checkpointer";
import { openDatabase } from "../src/db/client";
import { createLogger } from "../src/log";
import { tempDir } from "./helpers";
import { Writable } from "node:stream";

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(() => s.stop());

describe("the event log", () => {
  test("a change and its events commit together or not at all", () => {
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

  test("group commit: changes queued together commit in one transaction, and one that throws rolls back alone", async () => {
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

  test("an async function cannot be used as a transaction", () => {
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
    expect((await s.api("GET", "/api/events")).status).toBe(401);
  });

  test("a replay finds the user's events across long stretches of other topics' events", async () => {
    const a = await s.register();
    const since = await lastSeq(s, a.token);
    await s.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: "before the gap" } });
    // 12,000 events of nobody's concern: more than two replay windows.
    const insert = s.app.ctx.db.$client.prepare("INSERT INTO events (topic, type, data, created_at) VALUES ('conv:elsewhere', 'message.receive', '{}', ?)");
    s.app.ctx.db.$client.transaction(() => {
      for (let i = 0; i < 12_000; i++) insert.run(Date.now());
    })();
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
      const stints = () => (own.app.ctx.db.$client.query("SELECT count(*) AS n FROM member_stints").get() as { n: number }).n;
      expect(stints()).toBe(1);
      expect(await lastSeq(own, a.token)).toBeGreaterThan(0);
      const seq = own.app.ctx.events.lastSeq();
      expect(own.app.ctx.events.prune(0, Date.now() + 1)).toBeGreaterThan(0);
      expect(stints()).toBe(0);
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
      seqs.slice(0, 5).forEach((seq, i) => own.app.ctx.db.$client.run("UPDATE events SET created_at = ? WHERE seq = ?", [base + i * 60_000, seq]));
      expect(own.app.ctx.events.prune(3600_000 - 150_000)).toBe(3);
      expect(own.app.ctx.events.prunedThrough()).toBe(seqs[2]!);
      expect((await own.api("GET", `/api/events?since=${seqs[2]}`, { token: a.token })).body.items.map((e: any) => e.seq)).toEqual(seqs.slice(3));
      expect((await own.api("GET", `/api/events?since=${seqs[1]}`, { token: a.token })).status).toBe(410);
      expect(own.app.ctx.events.prune(3600_000 - 150_000)).toBe(0);
    } finally {
      await own.stop();
    }
  });

  test("a long backlog is pruned a chunk per event-loop turn; shared payloads go only with their last event", async () => {
    const own = await startServer();
    try {
      const [a, b] = [await own.register(), await own.register()];
      const sqlite = own.app.ctx.db.$client;
      const old = Date.now() - 3600_000;
      // 45,000 hour-old events (three chunks), then a group whose creation stores one shared payload.
      const insert = sqlite.prepare("INSERT INTO events (topic, type, data, created_at) VALUES ('conv:old', 'message.receive', '{}', ?)");
      sqlite.transaction(() => {
        for (let i = 0; i < 45_000; i++) insert.run(old);
      })();
      const lastOld = own.app.ctx.events.lastSeq();
      // An old shared payload, used by events on both sides of a chunk boundary… all old.
      sqlite.run("INSERT INTO event_payloads (data) VALUES ('{\"x\":1}')");
      const payload = (sqlite.query("SELECT max(id) AS id FROM event_payloads").get() as { id: number }).id;
      sqlite.run("UPDATE events SET payload_id = ?, data = '' WHERE seq IN (?, ?)", [payload, lastOld - 25_001, lastOld - 24_999]);
      await own.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "kept", member_ids: [b.user.id] } });

      let turns = 0;
      const ticking = setInterval(() => turns++, 0);
      const removed = await own.app.ctx.events.pruneGradually(1800_000);
      clearInterval(ticking);
      expect(removed).toBe(45_000);
      expect(turns).toBeGreaterThan(0); // other work ran in between
      expect(own.app.ctx.events.prunedThrough()).toBe(lastOld);
      expect((sqlite.query("SELECT count(*) AS n FROM events WHERE topic = 'conv:old'").get() as { n: number }).n).toBe(0);
      expect(sqlite.query("SELECT id FROM event_payloads WHERE id = ?").get(payload)).toBeNull();
      // The group's create (a shared payload) is intact for both members.
      for (const who of [a, b]) {
        const items = (await own.api("GET", `/api/events?since=${lastOld}`, { token: who.token })).body.items;
        expect(items.find((e: { type: string }) => e.type === "conversation.create").data.title).toBe("kept");
      }
    } finally {
      await own.stop();
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

describe("checkpoints", () => {
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

describe("indexes", () => {
  const plan = (sql: string, ...params: string[]) =>
    (s.app.ctx.db.$client.query(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail).join(" | ");

  test("hot queries use indexes, never a full table scan", () => {
    const queries = [
      // membership lookup
      "SELECT * FROM conversation_members WHERE conversation_id = ? AND user_id = ?",
      // list by activity
      "SELECT c.* FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = ? ORDER BY c.activity_at DESC, c.id DESC LIMIT 50",
      // replay of one topic
      "SELECT seq FROM events WHERE topic = ? AND seq > 0 ORDER BY seq",
      // user replay (own topic + conversations since joining): the queries the server runs
      REPLAY_SQL,
      NEXT_SEQ_SQL,
      // history page and unread count
      "SELECT id FROM messages WHERE conversation_id = ? AND id < ? ORDER BY id DESC LIMIT 50",
      "SELECT count(*) FROM messages WHERE conversation_id = ? AND id > ? AND sender_id != ? AND deleted_at IS NULL",
      // pruning's binary search probe
      "SELECT seq, created_at FROM events WHERE seq >= ? ORDER BY seq LIMIT 1",
      "SELECT * FROM friendships WHERE pair_key = ?",
    ];
    for (const q of queries) {
      // Numbered parameters (?1 … ?4) count once each.
      const count = /\?\d/.test(q) ? new Set(q.match(/\?\d+/g)).size : (q.match(/\?/g) ?? []).length;
      const p = plan(q, ...Array.from({ length: count }, () => "x"));
      if (process.env.SHOW_PLANS) console.log(q, "\n   ", p);
      expect(p).not.toMatch(/SCAN (conversation_members|conversations|messages|friendships|users|events|e)\b(?! USING)/);
    }
  });

  test("a message's read count reaches only the members past it, not every member of the group", () => {
    // The subquery of read_count (messages/view.ts), for one message.
    const p = plan("SELECT count(*) FROM conversation_members rm WHERE rm.conversation_id = ? AND rm.user_id != ? AND rm.last_read_message_id >= ?", "c", "u", "m");
    expect(p).toContain("COVERING INDEX members_read_position (conversation_id=? AND last_read_message_id>?)");
  });
});
