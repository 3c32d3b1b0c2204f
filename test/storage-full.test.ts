/**
 * A full disk (PROTOCOL §7.4): writes answer 507 storage_full (REST) or an `error` frame
 * storage_full (WebSocket), never 500; reads keep working; writes work again once space
 * returns, with nothing half-written; starting on a full disk is one line and exit 1.
 *
 * The real thing runs on a small tmpfs, which needs the right to mount one (root); where
 * that is impossible those tests are skipped with the reason printed. The seams below
 * (SQLite's max_page_count gives the same SQLITE_FULL) run everywhere. On PostgreSQL
 * (cluster mode) DATA_DIR holds no data: its disk_full (SQLSTATE 53100, a table that
 * cannot grow) is raised by a trigger on every insert, as PostgreSQL raises it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { openDatabase } from "../src/db/client";
import { asAppError, storageFullCode } from "../src/db/storage";
import { sqliteOnly, startServer, tempDir, TEST_BACKEND, waitFor, type Account, type TestServer } from "./helpers";
import { TestSocket } from "./ws-client";
import { smallTmpfs } from "./tmpfs";
import { registerAndLogin, spawnServer } from "./process";

/** Runs `fn` and returns what it threw (fails the test if it threw nothing). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

/**
 * Caps the database at its current size: the next write that needs a page fails with
 * SQLITE_FULL. On PostgreSQL every insert fails with disk_full, as when a table cannot grow.
 */
async function capDatabase(s: TestServer) {
  if (TEST_BACKEND === "postgres") {
    await s.rows(`CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$`);
    await s.rows(`DO $$ DECLARE t text; BEGIN
      FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
        EXECUTE format('CREATE TRIGGER test_disk_full BEFORE INSERT ON %I FOR EACH ROW EXECUTE FUNCTION test_disk_full()', t);
      END LOOP; END $$`);
    return;
  }
  const sqlite = s.app.ctx.db.$client;
  const { page_count } = sqlite.query("PRAGMA page_count").get() as { page_count: number };
  sqlite.run(`PRAGMA max_page_count = ${page_count}`);
}
async function uncapDatabase(s: TestServer) {
  if (TEST_BACKEND === "postgres") await s.rows("DROP FUNCTION test_disk_full CASCADE");
  else s.app.ctx.db.$client.run("PRAGMA max_page_count = 4294967294");
}

const send = (s: TestServer, a: Account, conversationId: string, content: string) =>
  s.api("POST", `/api/conversations/${conversationId}/messages`, { token: a.token, body: { content } });

/** Sends until the server refuses; returns that answer and how many were accepted before it. */
async function sendUntilRefused(s: TestServer, a: Account, conversationId: string, max = 3000) {
  for (let i = 0; i < max; i++) {
    const res = await send(s, a, conversationId, `${i} ${"f".repeat(3000)}`);
    if (res.status !== 201) return { res, accepted: i };
  }
  throw new Error(`still writing after ${max} sends`);
}

const noInternalErrors = (s: TestServer) => expect(s.logs.filter((l) => l.msg === "unhandled error" || l.msg === "frame handler failed")).toEqual([]);

/**
 * `refused` is a send's answer once full. Every write after it is at least as large: on a
 * full disk a smaller one may still fit into WAL space that a failed commit had reached
 * (under max_page_count, into free space in the database's pages), and rightly succeed.
 */
async function expectRefusedEverywhere(s: TestServer, a: Account, conversationId: string, refused: { status: number; body: any }) {
  expect(refused.status).toBe(507);
  expect(refused.body.error.code).toBe("storage_full");
  const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
  try {
    const reply = await ws.request("message.send", { conversation_id: conversationId, content: `over the socket ${"w".repeat(3000)}` });
    expect(reply.type).toBe("error");
    expect(reply.error.code).toBe("storage_full");
    expect(reply.data.request_type).toBe("message.send");
  } finally {
    ws.close();
  }
  // Group commit: sends queued in one turn share a transaction; each still gets 507.
  const batch = await Promise.all(Array.from({ length: 20 }, (_, i) => send(s, a, conversationId, `batch ${i} ${"b".repeat(3000)}`)));
  expect(batch.map((r) => r.status)).toEqual(Array(20).fill(507));
  // Reads keep working.
  expect((await s.api("GET", `/api/conversations/${conversationId}/messages?limit=5`, { token: a.token })).status).toBe(200);
  expect((await s.api("GET", "/api/conversations", { token: a.token })).status).toBe(200);
  expect((await s.api("GET", "/api/users/me", { token: a.token })).status).toBe(200);
}

/** Every message has its message.receive event and the other way round: nothing half-written. */
async function expectWhole(s: TestServer, messagesAccepted: number) {
  if (TEST_BACKEND === "sqlite") expect(await s.rows("PRAGMA integrity_check")).toEqual([{ integrity_check: "ok" }]);
  expect(await s.rows("SELECT count(*) AS n FROM messages")).toEqual([{ n: messagesAccepted }]);
  expect(await s.rows("SELECT count(*) AS n FROM events WHERE type = 'message.receive'")).toEqual([{ n: messagesAccepted }]);
}

describe("the error mapping", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.stop());

  test("SQLITE_FULL is found as bun:sqlite throws it and through drizzle's wrapper; ENOSPC too; others are not", () => {
    const db = openDatabase(join(tempDir(), "full.db"));
    try {
      db.$client.run("CREATE TABLE t (x TEXT)");
      const { page_count } = db.$client.query("PRAGMA page_count").get() as { page_count: number };
      db.$client.run(`PRAGMA max_page_count = ${page_count}`);
      const raw = thrown(() => {
        for (let i = 0; i < 100; i++) db.$client.run("INSERT INTO t VALUES (?)", ["x".repeat(2000)]);
      });
      expect(storageFullCode(raw)).toBe("SQLITE_FULL");
      const wrapped = thrown(() => db.run(sql`INSERT INTO t VALUES (${"y".repeat(2000)})`));
      expect((wrapped as Error).message).toContain("Failed to run the query");
      expect(storageFullCode(wrapped)).toBe("SQLITE_FULL");
      const mapped = asAppError(wrapped)!;
      expect([mapped.status, mapped.code]).toEqual([507, "storage_full"]);
      expect(storageFullCode(Object.assign(new Error("write failed"), { code: "ENOSPC" }))).toBe("ENOSPC");
      db.$client.run("PRAGMA max_page_count = 4294967294");
      db.$client.run("CREATE TABLE u (x TEXT UNIQUE)");
      db.$client.run("INSERT INTO u VALUES ('a')");
      const constraint = thrown(() => db.$client.run("INSERT INTO u VALUES ('a')"));
      expect(storageFullCode(constraint)).toBeNull();
      expect(asAppError(constraint)).toBeNull();
    } finally {
      db.$client.close();
    }
  });

  sqliteOnly("the SQLite log's group commit").test("group commit: a change after which SQLite has ended the transaction fails the whole batch with its own error", async () => {
    const { events } = s.app.ctx;
    const before = events.lastSeq();
    const full = Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
    const mention = (n: number) => ({ kind: "mention" as const, conversation_id: "c", message_id: `m${n}`, from_user_id: "u" });
    const results = await Promise.allSettled([
      events.writeBatched((w) => w.emit("user:x", "notification", mention(1))),
      // What SQLite does on some full-disk failures: it rolls the whole transaction back itself.
      events.writeBatched((w) => {
        w.emit("user:x", "notification", mention(2));
        w.tx.$client.run("ROLLBACK");
        throw full;
      }),
      events.writeBatched((w) => w.emit("user:x", "notification", mention(3))),
    ]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected"]);
    for (const r of results) expect((r as PromiseRejectedResult).reason).toBe(full);
    expect(s.app.ctx.db.$client.query("SELECT count(*) AS n FROM events WHERE topic = 'user:x'").get()).toEqual({ n: 0 });
    expect(s.app.ctx.db.$client.inTransaction).toBe(false);
    expect(await events.writeBatched((w) => w.emit("user:x", "notification", mention(4)))).toBeGreaterThan(before);
  });

  test("a database that cannot grow: 507 on REST, storage_full frames, reads work, writes resume", async () => {
    const a = await s.register();
    const { body: g } = await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "cap" } });
    await capDatabase(s);
    const { res, accepted } = await sendUntilRefused(s, a, g.id);
    await expectRefusedEverywhere(s, a, g.id, res);
    await uncapDatabase(s);
    expect((await send(s, a, g.id, "room again")).status).toBe(201);
    await expectWhole(s, accepted + 1);
    noInternalErrors(s);
  });
});

// ---- the real thing, on a tmpfs ----

const { mountPoint, mounted, fill, unfill } = smallTmpfs("storage-full.test.ts");
/** What fills up on a full DATA_DIR: parley.db and its WAL (cluster mode keeps its data in PostgreSQL). */
const onDataDir = sqliteOnly("parley.db on a full DATA_DIR");

onDataDir.describe.skipIf(mounted !== true)("on a full disk (tmpfs)", () => {
  let s: TestServer;
  beforeAll(async () => {
    const dataDir = join(mountPoint, "live");
    mkdirSync(dataDir);
    s = await startServer({ checkpointIntervalMs: 10 }, dataDir);
  });
  afterAll(async () => {
    unfill();
    await s?.stop();
  });

  test("507 on REST and storage_full frames, reads work; once space returns writes work, nothing half-written, checkpoints resume", async () => {
    const a = await s.register();
    const { body: g } = await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "disk" } });
    fill();
    const { res, accepted } = await sendUntilRefused(s, a, g.id);
    await expectRefusedEverywhere(s, a, g.id, res);
    // The checkpoint worker meets the full disk too (its passes fail with SQLITE_FULL): well
    // past the failures after which it would otherwise hand over for good, it still waits.
    // (10 s: a CI run loaded by the cluster tests before it once missed 3 s.)
    await waitFor(() => s.logs.some((l) => l.msg === "background checkpoint waits for disk space"), 10_000);
    await Bun.sleep(1000);
    expect(s.logs.filter((l) => l.msg === "background checkpoints stopped; SQLite's auto-checkpoint takes over")).toEqual([]);
    unfill();
    expect((await send(s, a, g.id, "room again")).status).toBe(201);
    await waitFor(() => s.logs.some((l) => l.msg === "background checkpoints resumed"), 3000);
    await expectWhole(s, accepted + 1);
    noInternalErrors(s);
  }, 60_000);
});

onDataDir.describe.skipIf(mounted !== true)("stopping on a full disk (tmpfs)", () => {
  afterAll(unfill);

  test("the final checkpoint cannot run: stop still closes the database, and the next start has everything", async () => {
    const dataDir = join(mountPoint, "stopping");
    mkdirSync(dataDir);
    // No background checkpoint in time: what is written stays in the WAL, and the final
    // checkpoint has to grow the database file.
    const s = await startServer({ checkpointIntervalMs: 3_600_000 }, dataDir);
    const a = await s.register();
    const { body: g } = await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "bye" } });
    const before = await Promise.all(Array.from({ length: 30 }, (_, i) => send(s, a, g.id, `${i} ${"k".repeat(3000)}`)));
    expect(before.every((r) => r.status === 201)).toBe(true);
    fill();
    await s.stop(false);
    expect(s.logs.some((l) => l.msg === "the final checkpoint failed; the WAL is applied at the next start")).toBe(true);
    unfill();
    const again = await startServer({}, dataDir);
    try {
      expect((await again.api("GET", `/api/conversations/${g.id}/messages?limit=100`, { token: a.token })).body.items).toHaveLength(30);
    } finally {
      await again.stop();
    }
  });
});

onDataDir.describe.skipIf(mounted !== true)("starting on a full disk (tmpfs)", () => {
  const start = (dataDir: string, command = "serve") => {
    const p = Bun.spawnSync([process.execPath, "src/index.ts", command], { env: { ...process.env, DATA_DIR: dataDir, PORT: "0", HOST: "127.0.0.1" }, timeout: 15_000 });
    return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
  };

  const expectOneLine = (r: { code: number | null; out: string; err: string }) => {
    expect(r.code).toBe(1);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toContain("the disk is full");
    expect(r.out).not.toContain("listening");
  };
  afterAll(unfill);

  // No room at all (the WAL index cannot even be made), or room for the WAL but not for the
  // migrations: `parley migrate`, which has no free-space floor, then meets drizzle's ROLLBACK
  // failing after SQLite has rolled back itself.
  test.each([["serve", 0], ["serve", 64 * 1024], ["migrate", 64 * 1024]] as const)("parley %s, a new data directory, %d bytes free: one line, exit 1", (command, leave) => {
    const dataDir = join(mountPoint, `new-${command}-${leave}`);
    fill(leave);
    try {
      expectOneLine(start(dataDir, command));
    } finally {
      unfill();
    }
  });

  test("an existing database, cleanly stopped or killed mid-run: one line, exit 1; starts again once space returns", async () => {
    for (const how of ["SIGTERM", "SIGKILL"] as const) {
      const dataDir = join(mountPoint, `existing-${how}`);
      const server = await spawnServer([process.execPath, "src/index.ts"], { DATA_DIR: dataDir, ARGON2_MEMORY_KIB: "1024" });
      await registerAndLogin(server.base, `disk_${how.toLowerCase()}`);
      await server.stop(how);
      // Killed, it leaves its WAL and WAL index behind: the database opens, and only a write fails.
      if (how === "SIGKILL") expect(readdirSync(dataDir)).toContain("parley.db-wal");
      fill();
      try {
        expectOneLine(start(dataDir));
      } finally {
        unfill();
      }
      const again = await spawnServer([process.execPath, "src/index.ts"], { DATA_DIR: dataDir });
      expect((await fetch(`${again.base}/health`)).status).toBe(200);
      expect(await again.stop()).toBe(0);
    }
  }, 60_000);
});

onDataDir.describe.skipIf(mounted !== true)("a backup onto a full disk (tmpfs)", () => {
  afterAll(unfill);

  test("no room for the database copy, or for its files: one line naming where the backup goes, exit 1, nothing left behind; with room the same backup is written", async () => {
    const dataDir = tempDir();
    const s = await startServer({}, dataDir);
    const a = await s.register();
    // 3 MiB of attachments (files/ is copied after the database).
    for (let i = 0; i < 3; i++) {
      const up = await fetch(`${s.base}/api/uploads?filename=f${i}.bin`, { method: "POST", headers: { authorization: `Bearer ${a.token}` }, body: crypto.getRandomValues(new Uint8Array(1024 * 1024)) });
      expect(up.status).toBe(201);
    }
    await s.stop(false);
    const target = join(mountPoint, "backups", "b.db");
    mkdirSync(join(mountPoint, "backups"), { recursive: true });
    const backup = () => Bun.spawnSync([process.execPath, "src/index.ts", "backup", target], { env: { ...process.env, DATA_DIR: dataDir }, timeout: 15_000 });
    // No room at all; then room for the database copy (~200 KB) but not for the files.
    for (const leave of [0, 1024 * 1024]) {
      fill(leave);
      try {
        const r = backup();
        expect(r.exitCode).toBe(1);
        const err = r.stderr.toString();
        expect(err.trim().split("\n")).toHaveLength(1);
        expect(err).toContain(`where the backup goes (${join(mountPoint, "backups")})`);
        expect(err).not.toContain(dataDir);
        expect(r.stdout.toString()).not.toContain("backup written");
        expect(readdirSync(join(mountPoint, "backups"))).toEqual([]);
      } finally {
        unfill();
      }
    }
    const ok = backup();
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout.toString()).toContain("attachments: 3 files");
    expect(readdirSync(join(mountPoint, "backups")).sort()).toEqual(["b.db", "b.db.files"]);
  });
});
