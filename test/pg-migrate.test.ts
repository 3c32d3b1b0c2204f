/** Cluster mode's PostgreSQL migrations: embedded, applied once however many nodes start at once. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { SQL } from "bun";
import { migratePostgres, openPostgres, type PgDB } from "../src/platform/postgres/client";
import { join } from "node:path";
import { drizzle } from "drizzle-orm/bun-sql";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { createTestDatabase, NATS_TEST_URL, servicesReady } from "./services";
import { spawnServer } from "./process";
import { tempDir } from "./helpers";
import { fold } from "../src/search/text";
import { FOLD_VERSION } from "../src/search/fold.js";

const ready = await servicesReady("PostgreSQL migrations", { pg: true });
let database: Awaited<ReturnType<typeof createTestDatabase>>;
const opened: PgDB[] = [];

beforeAll(async () => {
  if (ready) database = await createTestDatabase();
});
afterAll(async () => {
  for (const db of opened) await db.$client.close();
  await database?.drop();
});

test.skipIf(!ready)("three nodes migrating at once apply each migration exactly once", async () => {
  const nodes = [0, 1, 2].map(() => openPostgres(database.url, 2));
  opened.push(...nodes);
  const applied = await Promise.all(nodes.map((db) => migratePostgres(db)));
  expect(applied.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(2);
  expect(applied.filter((n) => n > 0)).toHaveLength(1);
  expect(await migratePostgres(nodes[0]!)).toBe(0);
  const [{ n }] = await nodes[0]!.$client`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`;
  expect(n).toBe(applied.reduce((a, b) => a + b, 0));
  // The schema is usable: the member-count trigger and the epoch are in place.
  const sql = nodes[1]!.$client;
  await sql`INSERT INTO users (id, username, display_name, password_hash, last_active_at, created_at, updated_at) VALUES ('u1', 'ann', 'Ann', 'x', 0, 0, 0)`;
  await sql`INSERT INTO conversations (id, type, title, created_by, created_at, updated_at, activity_at) VALUES ('c1', 'group', 'G', 'u1', 0, 0, 0)`;
  await sql`INSERT INTO conversation_members (conversation_id, user_id, role, joined_at) VALUES ('c1', 'u1', 'owner', 0)`;
  const [conv] = await sql`SELECT member_count FROM conversations WHERE id = 'c1'`;
  expect(conv.member_count).toBe(1);
  const [epoch] = await sql`SELECT value FROM meta WHERE key = 'epoch'`;
  expect(epoch.value).toMatch(/^[0-9a-f]{32}$/);
});

/**
 * Migrates `db` as the build before a migration left it: every migration before the first
 * one with a statement containing `marker` (found by its text: its number may change in a merge).
 */
async function migrateBefore(db: PgDB, marker: string) {
  const all = readMigrationFiles({ migrationsFolder: join(import.meta.dir, "../drizzle/pg") });
  const before = all.slice(0, all.findIndex((m) => m.sql.some((q) => q.includes(marker))));
  const local = drizzle({ client: db.$client }) as unknown as { dialect: { migrate(m: unknown, s: unknown, c: object): Promise<void> }; session: unknown };
  await local.dialect.migrate(before, local.session, { migrationsFolder: "" });
  return { all, before };
}

test.skipIf(!ready)("migration 0005 counts the bytes of existing attachments; triggers keep the count, cascades included", async () => {
  const fresh = await createTestDatabase("parley_usage");
  const db = openPostgres(fresh.url, 2);
  try {
    // The database as the build before 0005 left it.
    const { all, before } = await migrateBefore(db, 'CREATE TABLE "attachment_usage"');
    const sql = db.$client;
    for (const id of ["u1", "u2", "u3"]) await sql`INSERT INTO users (id, username, display_name, password_hash, last_active_at, created_at, updated_at) VALUES (${id}, ${id}, ${id}, 'x', 0, 0, 0)`;
    const file = (id: string, user: string, size: number) =>
      sql`INSERT INTO attachments (id, uploader_id, state, filename, content_type, size, sha256, storage_key, created_at, unheld_at) VALUES (${id}, ${user}, 'new', 'f', 'x/y', ${size}, 'h', 'k', 0, 0)`;
    await file("a1", "u1", 100);
    await file("a2", "u1", 20);
    await file("a3", "u2", 5);
    expect(await migratePostgres(db)).toBe(all.length - before.length); // 0005 and any later one
    const usage = async () => Object.fromEntries((await sql`SELECT user_id, bytes::int AS bytes FROM attachment_usage`).map((r: { user_id: string; bytes: number }) => [r.user_id, r.bytes]));
    expect(await usage()).toEqual({ u1: 120, u2: 5 });
    await file("a4", "u3", 7);
    await file("a5", "u2", 1);
    await sql`DELETE FROM attachments WHERE id IN ('a1', 'a3')`;
    expect(await usage()).toEqual({ u1: 20, u2: 1, u3: 7 });
    await sql`DELETE FROM users WHERE id = 'u1'`; // its attachments and its count go by cascade
    expect(await usage()).toEqual({ u2: 1, u3: 7 });
  } finally {
    await db.$client.close();
    await fresh.drop();
  }
}, 30_000);

/** Messages [id, content, search_text] as a build before wrote them, in a group of one user. */
async function insertTexts(sql: SQL, texts: [string, string, string | null][]) {
  await sql`INSERT INTO users (id, username, display_name, password_hash, last_active_at, created_at, updated_at) VALUES ('u1', 'ann', 'Ann', 'x', 0, 0, 0)`;
  await sql`INSERT INTO conversations (id, type, title, created_by, created_at, updated_at, activity_at) VALUES ('c1', 'group', 'G', 'u1', 0, 0, 0)`;
  for (const [id, content, folded] of texts)
    await sql`INSERT INTO messages (id, conversation_id, sender_id, message_type, content, created_at, search_text) VALUES (${id}, 'c1', 'u1', 'text', ${content}, 0, ${folded})`;
}

test.skipIf(!ready)("migration 0008 spells out ł, æ, ß, … in the folded search texts already written, as fold() now does", async () => {
  const fresh = await createTestDatabase("parley_fold");
  const db = openPostgres(fresh.url, 2);
  try {
    await migrateBefore(db, "[ßæðøþđħłœŧ]");
    const sql = db.$client;
    // As the build before wrote them: fold() without spelling out.
    const texts: [string, string, string | null][] = [
      ["m1", "Łódź, Straße", "łodz, straße"],
      ["m2", "Æsir œuvre Þór ØÐĐĦŦ", "æsir œuvre þor øðđħŧ"],
      ["m3", "plain café", "plain cafe"],
      ["m4", "", null], // a deleted message's tombstone
    ];
    await insertTexts(sql, texts);
    await migratePostgres(db);
    const rows = await sql`SELECT id, content, search_text FROM messages ORDER BY id`;
    expect(rows.map((r: { id: string; search_text: string | null }) => [r.id, r.search_text])).toEqual([
      ["m1", "lodz, strasse"],
      ["m2", "aesir oeuvre thor oddht"],
      ["m3", "plain cafe"],
      ["m4", null],
    ]);
    // What the new fold() gives for each text.
    for (const r of rows.slice(0, 3) as { content: string; search_text: string }[]) expect(fold(r.content)).toBe(r.search_text);
  } finally {
    await db.$client.close();
    await fresh.drop();
  }
}, 30_000);

test.skipIf(!ready)("search texts folded by an earlier fold() (Greek, Cyrillic, Arabic marks kept; compatibility forms and decomposed Hangul as typed; dotless ı kept) are folded again once, at the migration", async () => {
  const fresh = await createTestDatabase("parley_refold");
  const db = openPostgres(fresh.url, 2);
  try {
    await migratePostgres(db);
    const sql = db.$client;
    expect((await sql`SELECT value FROM meta WHERE key = 'search_fold'`)[0].value).toBe(String(FOLD_VERSION));
    // As fold version 1 wrote them: lower-cased, accents of other scripts than Latin kept.
    const texts: [string, string, string | null][] = [
      ["m1", "Καλή αντάμωση, ΟΔΟΣ", "καλή αντάμωση, οδος"],
      ["m2", "Ёлка и йогурт", "ёлка и йогурт"],
      ["m3", "مَرْحَبًا", "مَرْحَبًا"],
      ["m4", "plain café", "plain cafe"],
      ["m5", "", null], // a deleted message's tombstone
      // As version 2 wrote them: compatibility forms and decomposed Hangul as typed.
      ["m6", "Ｔｏｋｙｏ ﬁle", "ｔｏｋｙｏ ﬁle"],
      ["m7", "\u1112\u1161\u11ab\u1100\u116e\u11a8", "\u1112\u1161\u11ab\u1100\u116e\u11a8"],
      // As version 3 wrote it: Turkish's dotless ı kept.
      ["m8", "Ispanak ve ıspanak", "ispanak ve ıspanak"],
    ];
    await insertTexts(sql, texts);
    // Not again while the version is the same.
    await migratePostgres(db);
    expect((await sql`SELECT search_text FROM messages WHERE id = 'm1'`)[0].search_text).toBe("καλή αντάμωση, οδος");
    await sql`DELETE FROM meta WHERE key = 'search_fold'`;
    await migratePostgres(db);
    const rows = await sql`SELECT id, content, search_text FROM messages ORDER BY id`;
    expect(rows.map((r: { id: string; search_text: string | null }) => [r.id, r.search_text])).toEqual([
      ["m1", "καλη ανταμωση, οδοσ"],
      ["m2", "елка и йогурт"],
      ["m3", "مرحبا"],
      ["m4", "plain cafe"],
      ["m5", null],
      ["m6", "tokyo file"],
      ["m7", "\ud55c\uad6d"],
      ["m8", "ispanak ve ispanak"],
    ]);
    for (const r of rows.filter((r: { search_text: string | null }) => r.search_text !== null) as { content: string; search_text: string }[]) expect(fold(r.content)).toBe(r.search_text);
    expect((await sql`SELECT value FROM meta WHERE key = 'search_fold'`)[0].value).toBe(String(FOLD_VERSION));
  } finally {
    await db.$client.close();
    await fresh.drop();
  }
}, 30_000);

/** Cluster mode's other service (migrate does not use it, but cluster settings come together). */
const LIVE = { NATS_URL: NATS_TEST_URL };

const cli = async (args: string[], env: Record<string, string>) => {
  const p = Bun.spawn(["bun", "src/index.ts", ...args], { env: { PATH: process.env.PATH!, DATA_DIR: "/nonexistent-parley-dir", ...env }, stderr: "pipe", stdout: "pipe" });
  const [code, err, out] = await Promise.all([p.exited, new Response(p.stderr).text(), new Response(p.stdout).text()]);
  return { code, err, out };
};

test.skipIf(!ready)("`parley migrate` with DATABASE_URL migrates PostgreSQL (and touches no DATA_DIR)", async () => {
  const fresh = await createTestDatabase("parley_cli");
  try {
    const first = await cli(["migrate"], { ...LIVE, DATABASE_URL: fresh.url, JWT_SECRET: "x".repeat(32) });
    expect(first.code).toBe(0);
    expect(first.out).toContain('"database":"postgres"');
    expect(JSON.parse(first.out.trim().split("\n").pop()!).applied).toBeGreaterThanOrEqual(2);
    expect(JSON.parse((await cli(["migrate"], { ...LIVE, DATABASE_URL: fresh.url, JWT_SECRET: "x".repeat(32) })).out.trim().split("\n").pop()!).applied).toBe(0);
  } finally {
    await fresh.drop();
  }
}, 30_000);

test("cluster settings: a bad DATABASE_URL, or one without JWT_SECRET, is one line and exit 2", async () => {
  for (const [env, says] of [
    [{ DATABASE_URL: "mysql://x/y", JWT_SECRET: "x".repeat(32) }, "DATABASE_URL: not a postgres://"],
    [{ DATABASE_URL: "postgres://user:secret-pw@host" , JWT_SECRET: "x".repeat(32) }, "DATABASE_URL: not a postgres://"],
    [{ ...LIVE, DATABASE_URL: "postgres://127.0.0.1:5432/test" }, "JWT_SECRET: required in cluster mode"],
    [{ DATABASE_URL: "postgres://127.0.0.1:5432/test", JWT_SECRET: "x".repeat(32) }, "DATABASE_URL needs NATS_URL"],
    [{ NATS_URL: "nats://127.0.0.1:4222", JWT_SECRET: "x".repeat(32) }, "NATS_URL needs DATABASE_URL"],
    [{ REDIS_URL: "redis://127.0.0.1:6379" }, "REDIS_URL is for cluster mode only"],
  ] as const) {
    const r = await cli(["migrate"], env);
    expect(r.code).toBe(2);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toContain(says);
    expect(r.err).not.toContain("secret-pw");
  }
}, 30_000);

const clusterReady = await servicesReady("a node with DATABASE_URL, NATS_URL and JWT_SECRET", { pg: true, nats: true });

test.skipIf(!clusterReady)("NATS_URL=tls:// to a NATS without TLS: the node never talks to it in clear (/health 503, nats unreachable)", async () => {
  const fresh = await createTestDatabase("parley_tls");
  const node = await spawnServer(["bun", "src/index.ts"], { PATH: process.env.PATH!, DATABASE_URL: fresh.url, NATS_URL: NATS_TEST_URL.replace("nats://", "tls://"), JWT_SECRET: "x".repeat(32), DATA_DIR: tempDir("parley-node-"), REDIS_URL: "" }, undefined, { inherit: false });
  try {
    await Bun.sleep(1500); // time enough for a connection in clear, as before
    const health = await fetch(`${node.base}/health`);
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ status: "unavailable", postgres: "ok", nats: "unreachable" });
  } finally {
    await node.stop();
    await fresh.drop();
  }
}, 30_000);

test.skipIf(!clusterReady)("a node with only DATABASE_URL, NATS_URL and JWT_SECRET serves, its presence and limits in PostgreSQL", async () => {
  const fresh = await createTestDatabase("parley_cli");
  // Nothing else from this process's environment (no REDIS_URL): PATH, and where to listen and write.
  const node = await spawnServer(["bun", "src/index.ts"], { PATH: process.env.PATH!, DATABASE_URL: fresh.url, NATS_URL: NATS_TEST_URL, JWT_SECRET: "x".repeat(32), DATA_DIR: tempDir("parley-node-"), REDIS_URL: "" }, undefined, { inherit: false });
  try {
    // Listening comes before the NATS connection is up (503 meanwhile).
    let health = await fetch(`${node.base}/health`);
    for (const deadline = Date.now() + 10_000; health.status !== 200 && Date.now() < deadline; await Bun.sleep(100)) health = await fetch(`${node.base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "ok", postgres: "ok", nats: "ok" });
    const username = `solo${Date.now().toString(36)}`;
    const reg = await fetch(`${node.base}/api/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username, password: "password123" }) });
    expect(reg.status).toBe(201);
    const { token } = (await reg.json()) as { token: string };
    const ws = new WebSocket(`${node.base.replace("http", "ws")}/ws/user?token=${token}`);
    await new Promise((resolve, reject) => ((ws.onmessage = resolve), (ws.onerror = reject)));
    const sql = new SQL({ url: fresh.url, max: 1 });
    try {
      const [row] = await sql`SELECT (SELECT count(*) FROM presence_nodes)::int AS nodes, (SELECT count(*) FROM presence_users)::int AS users,
        (SELECT count(*) FROM limit_buckets WHERE kind = 'registrations')::int AS budgets`;
      expect(row).toEqual({ nodes: 1, users: 1, budgets: 1 });
    } finally {
      await sql.close();
    }
    ws.close();
    // Nothing went wrong (one node with STORAGE=local is warned that its files are its own).
    expect(node.lines.filter((l) => l.level === "error" || (l.level === "warn" && !String(l.msg).startsWith("cluster mode with STORAGE=local")))).toEqual([]);
  } finally {
    await node.stop();
    await fresh.drop();
  }
}, 60_000);

test.skipIf(!ready)("a node keeps DATABASE_POOL_SIZE connections to PostgreSQL, and one more for LISTEN", async () => {
  const { openPostgresParts } = await import("../src/platform/postgres/open");
  const { makeConfig } = await import("../src/config");
  const { createLogger } = await import("../src/log");
  const own = await createTestDatabase(); // no other test's connections
  const parts = await openPostgresParts(makeConfig({ databaseUrl: own.url, databasePoolSize: 3 }), createLogger("silent"));
  try {
    await Promise.all(Array.from({ length: 6 }, () => parts.db.$client`SELECT pg_sleep(0.05)`));
    const admin = openPostgres(own.url, 1);
    const [{ n }] = await admin.$client`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
    await admin.$client.close();
    expect(n).toBe(3 + 1);
  } finally {
    await parts.close();
    await own.drop();
  }
});
