/**
 * The PostgreSQL message store where PostgreSQL differs from SQLite: concurrent
 * changes on several connections (as several nodes make them). The behaviour itself is
 * test/messages.test.ts's, run on PostgreSQL with PARLEY_TEST_DB=postgres.
 * The events are read from the log's table (its follower is not started).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { eq } from "drizzle-orm";
import { makeConfig } from "../src/config";
import type { AttachmentRow, UserRow } from "../src/db/schema";
import { AppError } from "../src/errors";
import { createLogger } from "../src/log";
import { Metrics } from "../src/metrics";
import { migratePostgres, openPostgres, type PgDB } from "../src/platform/postgres/client";
import { pgAttachmentRows } from "../src/platform/postgres/attachments";
import { pgMessages } from "../src/platform/postgres/messages";
import * as pg from "../src/platform/postgres/schema";
import { PgEventLog } from "../src/platform/postgres/event-log";
import type { MessageStore } from "../src/platform/store";
import { fold } from "../src/search/text";
import { createTestDatabase, servicesReady } from "./services";

const ready = await servicesReady("PostgreSQL message store", { pg: true });
// Each test races dozens of transactions: on the shared 2-core machine that can take seconds.
setDefaultTimeout(30_000);
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: PgDB;
let store: MessageStore;

beforeAll(async () => {
  if (!ready) return;
  database = await createTestDatabase("parley_pgmsg");
  db = openPostgres(database.url, 12);
  await migratePostgres(db);
  const config = makeConfig({ dataDir: "/nonexistent", logLevel: "error" });
  store = pgMessages({ db, events: await PgEventLog.open(db), config, log: createLogger("error"), metrics: new Metrics() });
});
afterAll(async () => {
  await db?.$client.close();
  await database?.drop();
});

let n = 0;
async function user(name = `user${n++}`): Promise<UserRow> {
  const row: UserRow = { id: Bun.randomUUIDv7(), username: name, displayName: name.toUpperCase(), nameKey: null, profileImageUrl: null, passwordHash: "x", lastActiveAt: 0, createdAt: 0, updatedAt: 0 };
  await db.insert(pg.users).values(row);
  return row;
}
async function group(owner: UserRow, ...others: UserRow[]): Promise<string> {
  const id = Bun.randomUUIDv7();
  await db.insert(pg.conversations).values({ id, type: "group", title: "g", createdBy: owner.id, createdAt: 0, updatedAt: 0, activityAt: 0 });
  await db.insert(pg.members).values([owner, ...others].map((u, i) => ({ conversationId: id, userId: u.id, role: i === 0 ? ("owner" as const) : ("member" as const), joinedAt: 0 })));
  return id;
}
const eventsOf = async (type: string) => db.select().from(pg.events).where(eq(pg.events.type, type)).orderBy(pg.events.seq);
async function upload(owner: UserRow, size = 10, width: number | null = 4): Promise<AttachmentRow> {
  const row: AttachmentRow = {
    id: Bun.randomUUIDv7(), uploaderId: owner.id, state: "new", messageId: null, position: 0, filename: "a.png", contentType: "image/png", size, sha256: "00",
    storageKey: `k/${Bun.randomUUIDv7()}`, thumbnailKey: null, width, height: width, createdAt: Date.now(), unheldAt: Date.now(),
  };
  expect(await pgAttachmentRows(db).insertWithinQuota(row, 1e12, async () => {})).toBe(true);
  return row;
}
const blank = (owner: UserRow): AttachmentRow => ({
  id: "", uploaderId: owner.id, state: "new", messageId: null, position: 0, filename: "f", contentType: "application/octet-stream", size: 0, sha256: "00",
  storageKey: `k/${Bun.randomUUIDv7()}`, thumbnailKey: null, width: null, height: null, createdAt: Date.now(), unheldAt: Date.now(),
});
const settled = async (ps: unknown[]) => (await Promise.allSettled(ps)).map((r) => (r.status === "fulfilled" ? r.value : r.reason));

test.skipIf(!ready)("racing retries of one client_msg_id: one message, one event, the others get it with created: false", async () => {
  const [ann, bob] = [await user(), await user()];
  const c = await group(ann, bob);
  const before = (await eventsOf("message.receive")).length;
  const file = await upload(ann);
  const results = await Promise.all(Array.from({ length: 8 }, () => store.send(ann, c, { content: "hi @" + bob.username, client_msg_id: "k1", attachment_ids: [file.id] })));
  expect(results.filter((r) => r.created)).toHaveLength(1);
  expect(new Set(results.map((r) => r.message.id)).size).toBe(1);
  const message = results[0]!.message;
  expect(message.message_type).toBe("image");
  // search_text (search on PostgreSQL matches it) is fold(content), written with the row.
  const [saved] = await db.select().from(pg.messages).where(eq(pg.messages.id, message.id));
  expect(saved!.searchText).toBe(fold(saved!.content));
  expect(saved!.searchText).toContain("hi @");
  expect(message.attachments.map((a) => a.id)).toEqual([file.id]);
  expect((await eventsOf("message.receive")).length - before).toBe(1);
  expect((await eventsOf("notification")).filter((e) => JSON.parse(e.data).message_id === message.id)).toHaveLength(1);
  const [conv] = await db.select().from(pg.conversations).where(eq(pg.conversations.id, c));
  expect(conv!.lastMessageId).toBe(message.id);
  const stored = await db.select().from(pg.attachments).where(eq(pg.attachments.id, file.id));
  expect(stored[0]!.state).toBe("attached");
  expect(stored[0]!.messageId).toBe(message.id);
});

test.skipIf(!ready)("concurrent sends into one conversation: id order is event order, and ids pass a last id from a clock ahead", async () => {
  const people = await Promise.all([1, 2, 3, 4].map(() => user()));
  const c = await group(people[0]!, ...people.slice(1));
  const sent = await Promise.all(Array.from({ length: 24 }, (_, i) => store.send(people[i % 4]!, c, { content: `c${i}` })));
  const mine = new Set(sent.map((r) => r.message.id));
  const received = (await eventsOf("message.receive")).map((e) => JSON.parse(e.data).id as string).filter((id) => mine.has(id));
  expect(received).toEqual([...mine].sort());
  // Another node, its clock a minute ahead, sent the last message.
  const ahead = Bun.randomUUIDv7("hex", Date.now() + 60_000);
  await db.update(pg.conversations).set({ lastMessageId: ahead }).where(eq(pg.conversations.id, c));
  const { message } = await store.send(people[0]!, c, { content: "after" });
  expect(message.id > ahead).toBe(true);
});

test.skipIf(!ready)("two sends into two conversations naming one upload: one takes it, the other is refused", async () => {
  const ann = await user();
  const [c1, c2] = [await group(ann), await group(ann)];
  const file = await upload(ann);
  const out = await settled([c1, c2].map((c) => store.send(ann, c, { content: "m", attachment_ids: [file.id] })));
  expect(out.filter((r) => r instanceof AppError && r.code === "validation_failed")).toHaveLength(1);
  expect(out.filter((r) => !(r instanceof Error))).toHaveLength(1);
});

test.skipIf(!ready)("concurrent new kinds of reaction stop at 20 kinds; user_ids list the first 10 reactors in order", async () => {
  const users = await Promise.all(Array.from({ length: 12 }, () => user()));
  const c = await group(users[0]!, ...users.slice(1));
  const { message } = await store.send(users[0]!, c, { content: "react" });
  const out = await settled(Array.from({ length: 26 }, (_, i) => store.react(users[i % 12]!, message.id, `e${i}`, "add")));
  expect(out.filter((r) => r instanceof AppError && r.code === "validation_failed")).toHaveLength(6);
  const [history] = (await store.list(users[0]!, c, { limit: 10 })).items;
  expect(history!.reactions).toHaveLength(20);
  const [kind, first] = [history!.reactions[0]!.emoji, history!.reactions[0]!.user_ids[0]!];
  for (const u of users) await store.react(u, message.id, kind, "add");
  const all = (await store.react(users[0]!, message.id, kind, "add")).reactions.find((r) => r.emoji === kind)!;
  expect(all.count).toBe(12);
  expect(all.user_ids).toEqual([first, ...users.map((u) => u.id).filter((id) => id !== first)].slice(0, 10));
});

test.skipIf(!ready)("read positions under concurrent marks only move forward; each move one event", async () => {
  const [ann, bob] = [await user(), await user()];
  const c = await group(ann, bob);
  const sent: string[] = [];
  for (let i = 0; i < 6; i++) sent.push((await store.send(ann, c, { content: `m${i}` })).message.id);
  const before = (await eventsOf("message.read")).length;
  const order = [3, 0, 5, 1, 4, 2, 5, 3];
  const receipts = await Promise.all(order.map((i) => store.markRead(bob, c, sent[i]!)));
  const [me] = await db.select().from(pg.members).where(eq(pg.members.userId, bob.id));
  expect(me!.lastReadMessageId).toBe(sent[5]!);
  const moves = (await eventsOf("message.read")).slice(before).map((e) => JSON.parse(e.data).message_id as string);
  expect(moves).toEqual([...moves].sort()); // strictly forward, in commit order
  expect(new Set(moves).size).toBe(moves.length);
  expect(receipts.every((r) => r.message_id !== null && r.message_id <= sent[5]!)).toBe(true);
  expect((await store.markRead(bob, c, sent[2]!)).unread_count).toBe(0);
  const page = await store.list(ann, c, { limit: 3 });
  expect(page.items.map((m) => m.read_count)).toEqual([1, 1, 1]);
  const older = await store.list(ann, c, { limit: 3, cursor: page.next_cursor! });
  expect([...older.items, ...page.items].map((m) => m.id).sort()).toEqual(sent);
  expect(older.next_cursor).toBeNull();
});

test.skipIf(!ready)("a delete racing an edit: the tombstone stays, its files are released, and edits after it are refused", async () => {
  const ann = await user();
  const c = await group(ann);
  const file = await upload(ann);
  const { message } = await store.send(ann, c, { content: "x", attachment_ids: [file.id] });
  const out = await settled([store.edit(ann, message.id, "edited"), store.remove(ann, message.id), store.react(ann, message.id, "👍", "add")]);
  expect(out[1]).toBeUndefined();
  const [row] = await db.select().from(pg.messages).where(eq(pg.messages.id, message.id));
  expect(row!.content).toBe("");
  expect(row!.deletedAt).not.toBeNull();
  expect(row!.searchText).toBeNull();
  expect(await db.select().from(pg.reactions).where(eq(pg.reactions.messageId, message.id))).toHaveLength(0);
  const [att] = await db.select().from(pg.attachments).where(eq(pg.attachments.id, file.id));
  expect(att!.state).toBe("released");
  expect(att!.messageId).toBeNull();
  expect(store.edit(ann, message.id, "again")).rejects.toMatchObject({ code: "conflict" });
});

test.skipIf(!ready)("uploads of one user racing for the last of the quota: one fits", async () => {
  const ann = await user();
  const rows = pgAttachmentRows(db);
  const mk = (): AttachmentRow => ({ ...blank(ann), id: Bun.randomUUIDv7(), size: 60 });
  const out = await Promise.all([mk(), mk(), mk()].map((r) => rows.insertWithinQuota(r, 100, async () => {})));
  expect(out.filter(Boolean)).toHaveLength(1);
  expect(await rows.usedBytes(ann.id)).toBe(60);
});

test.skipIf(!ready)("readable, and the sweep taking unheld rows once however many sweep at once", async () => {
  const [ann, bob, eve] = [await user(), await user(), await user()];
  const c = await group(ann, bob);
  const rows = pgAttachmentRows(db);
  const file = await upload(ann);
  await store.send(ann, c, { content: "", attachment_ids: [file.id] });
  expect((await rows.readable(file.id, bob.id))?.id).toBe(file.id);
  expect(await rows.readable(file.id, eve.id)).toBeUndefined();
  const old = await Promise.all([1, 2, 3].map(() => upload(eve)));
  const taken = (await Promise.all([0, 1].map(() => rows.takeUnheld(Date.now() + 1, 500)))).flat().filter((r) => r.uploaderId === eve.id);
  expect(taken.map((r) => r.id).sort()).toEqual(old.map((r) => r.id).sort());
  const removed: string[] = [];
  for (const key of [file.storageKey, old[0]!.storageKey]) await rows.forgetBlob(key, async () => void removed.push(key));
  expect(removed).toEqual([old[0]!.storageKey]);
});

test.skipIf(!ready)("sweeps on several nodes at once, through files of the same users in mixed order: each file off its uploader's count once, no deadlock", async () => {
  const people = [await user(), await user(), await user()];
  const rows = pgAttachmentRows(db);
  for (let i = 0; i < 30; i++) await upload(people[(i * 7) % 3]!, 1 + i);
  const sizes = people.map((_, p) => Array.from({ length: 30 }, (_, i) => ((i * 7) % 3 === p ? 1 + i : 0)).reduce((a, b) => a + b, 0));
  expect(await Promise.all(people.map((p) => rows.usedBytes(p.id)))).toEqual(sizes);
  // Four sweepers in small batches: each statement frees files of several of the users.
  const sweeper = async () => {
    let n = 0;
    for (let got; (got = await pgAttachmentRows(db).takeUnheld(Date.now() + 1, 4)).length; ) n += got.length;
    return n;
  };
  await Promise.all([sweeper(), sweeper(), sweeper(), sweeper()]);
  expect(await Promise.all(people.map((p) => rows.usedBytes(p.id)))).toEqual([0, 0, 0]);
});

test.skipIf(!ready)("a blob's removal by another node's sweep waits for an upload of it in progress, then keeps it", async () => {
  const ann = await user();
  const [uploading, sweeping] = [pgAttachmentRows(db), pgAttachmentRows(db)];
  const row: AttachmentRow = { ...blank(ann), id: Bun.randomUUIDv7(), size: 1 };
  let release!: () => void;
  const committing = Promise.withResolvers<void>();
  const upload = uploading.insertWithinQuota(row, 1e9, async () => {
    committing.resolve();
    await new Promise<void>((r) => (release = r));
  });
  await committing.promise;
  let removed = false;
  let done = false;
  const forget = sweeping.forgetBlob(row.storageKey, async () => void (removed = true)).finally(() => (done = true));
  // Let the upload finish once the removal waits for it (or has, wrongly, gone ahead).
  while (!done && (await db.$client`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)[0].n === 0) await Bun.sleep(10);
  release();
  expect(await upload).toBe(true);
  await forget;
  expect(removed).toBe(false);
});

test.skipIf(!ready)("reactions and edits racing the conversation's deletion (cascading to members and messages): each succeeds or is 404, no deadlock", async () => {
  const people = await Promise.all([1, 2, 3].map(() => user()));
  for (let round = 0; round < 8; round++) {
    const c = await group(people[0]!, ...people.slice(1));
    const { message } = await store.send(people[0]!, c, { content: "x" });
    // As the conversations store deletes one: its row locked first, then deleted (the cascade follows).
    const destroy = db.transaction(async (tx) => {
      await tx.select().from(pg.conversations).where(eq(pg.conversations.id, c)).for("no key update");
      await tx.delete(pg.conversations).where(eq(pg.conversations.id, c));
    });
    const out = await settled([
      ...people.map((p, i) => store.react(p, message.id, `r${i}`, "add")),
      store.edit(people[0]!, message.id, "y"),
      store.markRead(people[1]!, c, message.id),
      destroy,
    ]);
    // Before the lock order (conversation, member, message) the message lock met "deadlock detected" here.
    for (const r of out) if (r instanceof Error) expect(r).toMatchObject({ code: "not_found" });
  }
});
