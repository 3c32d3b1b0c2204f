/**
 * The PostgreSQL conversation store where PostgreSQL differs from SQLite: concurrent
 * changes on several connections, as several nodes make them. The behaviour itself is
 * test/conversations.test.ts's and test/members.test.ts's, run on PostgreSQL with
 * PARLEY_TEST_DB=postgres.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { and, eq, sql } from "drizzle-orm";
import { makeConfig } from "../src/config";
import type { UserRow } from "../src/db/schema";
import { createLogger } from "../src/log";
import { Metrics } from "../src/metrics";
import { migratePostgres, openPostgres, type PgDB } from "../src/platform/postgres/client";
import { PgEventLog } from "../src/platform/postgres/event-log";
import { pgConversations } from "../src/platform/postgres/conversations";
import * as pg from "../src/platform/postgres/schema";
import type { ConversationStore } from "../src/platform/store";
import { createTestDatabase, servicesReady } from "./services";

const ready = await servicesReady("PostgreSQL conversation store", { pg: true });
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: PgDB;
let store: ConversationStore;
const MAX = 5;

beforeAll(async () => {
  if (!ready) return;
  database = await createTestDatabase("parley_pgconv");
  db = openPostgres(database.url, 12);
  await migratePostgres(db);
  const config = makeConfig({ dataDir: "/nonexistent", logLevel: "error", contactPolicy: "open", maxGroupMembers: MAX });
  // The cluster's log (its follower not started: these tests read the tables).
  const deps = { db, events: await PgEventLog.open(db), config, log: createLogger("error"), metrics: new Metrics() };
  store = pgConversations(deps);
});
afterAll(async () => {
  await db?.$client.close();
  await database?.drop();
});

let n = 0;
async function users(count: number): Promise<UserRow[]> {
  const rows = Array.from({ length: count }, (): UserRow => {
    const name = `user${n++}`;
    return { id: Bun.randomUUIDv7(), username: name, displayName: name, nameKey: null, profileImageUrl: null, passwordHash: "x", lastActiveAt: 0, createdAt: 0, updatedAt: 0 };
  });
  await db.insert(pg.users).values(rows);
  return rows;
}
const settled = async <T>(ps: (T | Promise<T>)[]) => (await Promise.allSettled(ps)).map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error)));
const membersOf = (id: string) => db.select().from(pg.members).where(eq(pg.members.conversationId, id));
const creates = async (id: string) =>
  (await db.execute<{ n: string }>(sql`SELECT count(*) AS n FROM events e LEFT JOIN event_payloads p ON p.id = e.payload_id
    WHERE e.type = 'conversation.create' AND coalesce(p.data, e.data)::json->>'id' = ${id}`))[0]!.n;

test.skipIf(!ready)("both sides opening their direct conversation at once: one is created, every answer is that one", async () => {
  for (let round = 0; round < 3; round++) {
    const [a, b] = await users(2);
    const results = await settled(Array.from({ length: 8 }, (_, i) => store.create(i % 2 ? a! : b!, { type: "direct", user_id: i % 2 ? b!.id : a!.id })));
    const answers = results.map((r) => {
      if (r instanceof Error) throw r;
      return r;
    });
    expect(answers.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(answers.map((r) => r.conversation.id)).size).toBe(1);
    const id = answers[0]!.conversation.id;
    expect((await membersOf(id)).map((m) => m.userId).sort()).toEqual([a!.id, b!.id].sort());
    expect(Number(await creates(id))).toBe(2); // one conversation.create to each side, once
  }
});

test.skipIf(!ready)("adds at once cannot pass MAX_GROUP_MEMBERS: the first fits, the others are 422", async () => {
  const [owner, m1, m2, ...rest] = await users(3 + 8);
  const { conversation: g } = await store.create(owner!, { type: "group", title: "Cap", member_ids: [m1!.id, m2!.id] });
  // Three members and room for two: four adds of two different users each.
  const results = await settled([0, 2, 4, 6].map((i) => store.addMembers(owner!, g.id, [rest[i]!.id, rest[i + 1]!.id])));
  expect(results.filter((r) => !(r instanceof Error))).toHaveLength(1);
  for (const r of results.filter((r) => r instanceof Error)) expect(r).toMatchObject({ code: "validation_failed", status: 422 });
  expect(await membersOf(g.id)).toHaveLength(MAX);
  const [row] = await db.select().from(pg.conversations).where(eq(pg.conversations.id, g.id));
  expect(row!.memberCount).toBe(MAX);
});

test.skipIf(!ready)("the owner and their heir leaving at once leave exactly one owner, the next in line", async () => {
  for (let round = 0; round < 4; round++) {
    const [owner, heir, next] = await users(3);
    const { conversation: g } = await store.create(owner!, { type: "group", title: "Heirs", member_ids: [heir!.id, next!.id] });
    await store.setRole(owner!, g.id, heir!.id, "admin");
    const results = await settled([owner!, heir!].map(async (who) => store.removeMember(who, g.id, who.id)));
    expect(results.filter((r) => r instanceof Error)).toEqual([]);
    expect((await membersOf(g.id)).map((m) => [m.userId, m.role])).toEqual([[next!.id, "owner"]]);
  }
});

/**
 * A send as src/platform/postgres/messages.ts makes it, in its lock order: the conversation
 * row (NO KEY UPDATE), then the sender's membership, then the conversation's last message.
 * `started` resolves once it holds the row. Answers whether the sender was a member.
 */
function send(conversationId: string, senderId: string, hold = 0) {
  let started!: () => void;
  const holding = new Promise<void>((resolve) => (started = resolve));
  const done = db.transaction(async (tx) => {
    await tx.select().from(pg.conversations).where(eq(pg.conversations.id, conversationId)).for("no key update");
    started();
    await Bun.sleep(hold);
    const [member] = await tx.select().from(pg.members).where(and(eq(pg.members.conversationId, conversationId), eq(pg.members.userId, senderId)));
    if (member) await tx.update(pg.conversations).set({ activityAt: sql`${pg.conversations.activityAt} + 1` }).where(eq(pg.conversations.id, conversationId));
    return member !== undefined;
  });
  return { holding, done };
}

test.skipIf(!ready)("a removal and a send at once take turns on the conversation row: the send before it is a member's, the send after it is refused", async () => {
  const [owner, sender] = await users(2);
  const { conversation: g } = await store.create(owner!, { type: "group", title: "Busy", member_ids: [sender!.id] });
  // The send first: the removal waits for it, and nothing deadlocks.
  const first = send(g.id, sender!.id, 200);
  await first.holding;
  const removal = Promise.resolve(store.removeMember(owner!, g.id, sender!.id)).then(() => "removed", (e: Error) => e);
  expect(await first.done).toBe(true);
  expect(await removal).toBe("removed");

  // The removal first (held up, while it holds the conversation row, by a reader of the
  // member's row): a send that comes meanwhile waits, then finds no member.
  await store.addMembers(owner!, g.id, [sender!.id]);
  let later: ReturnType<typeof send> | undefined;
  const again = db.transaction(async (tx) => {
    await tx.select().from(pg.members).where(and(eq(pg.members.conversationId, g.id), eq(pg.members.userId, sender!.id))).for("key share");
    const removed = Promise.resolve(store.removeMember(owner!, g.id, sender!.id)).then(() => "removed", (e: Error) => e);
    await Bun.sleep(200); // the removal holds the row and waits for this reader
    later = send(g.id, sender!.id);
    await Bun.sleep(100);
    return { removed }; // not awaited here: the removal waits for this transaction to end
  });
  expect(await (await again).removed).toBe("removed");
  expect(await later!.done).toBe(false);
  expect((await membersOf(g.id)).map((m) => m.userId)).toEqual([owner!.id]);
});
