/** Cluster mode's PostgreSQL migrations: embedded, applied once however many nodes start at once. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { migratePostgres, openPostgres, type PgDB } from "../src/platform/postgres/client";
import { createTestDatabase, servicesReady } from "./services";

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
