/**
 * Search on PostgreSQL (cluster mode, pg_trgm): the index's cases of test/search-index.ts,
 * with rows written into a migrated test database as the PostgreSQL message store writes
 * them (search_text = fold(content) with every insert and edit, NULL once deleted).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { migratePostgres, openPostgres, type PgDB } from "../src/platform/postgres/client";
import { PgSearchIndex, trigramIndexable } from "../src/platform/postgres/search";
import { fold, parseQuery } from "../src/search/text";
import { searchIndexCases, type SearchBackend } from "./search-index";
import { createTestDatabase, servicesReady } from "./services";

const ready = await servicesReady("PostgreSQL search", { pg: true });
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: PgDB;
let index: PgSearchIndex;
/** Reading only the newest 3 messages first: the cases reach the second part of each scan. */
let narrow: PgSearchIndex;

beforeAll(async () => {
  if (!ready) return;
  database = await createTestDatabase("parley_search");
  db = openPostgres(database.url, 4);
  await migratePostgres(db);
  index = new PgSearchIndex(db);
  narrow = new PgSearchIndex(db, { window: 3 });
});
afterAll(async () => {
  await db?.$client.close();
  await database?.drop();
});

let clock = 0;
/** Activity in microseconds, strictly increasing (as the store keeps it). */
const activity = () => (clock = Math.max(clock + 1, Date.now() * 1000));

/** What the PostgreSQL message store does, for the index: rows and search_text, in SQL. */
function pgBackend(which: () => PgSearchIndex = () => index): SearchBackend {
  const sql = db.$client;
  const conversation = async (type: "group" | "direct", owner: string, members: string[], title: string | null) => {
    const id = Bun.randomUUIDv7();
    const now = Date.now();
    await sql`INSERT INTO conversations (id, type, title, created_by, created_at, updated_at, activity_at) VALUES (${id}, ${type}, ${title}, ${owner}, ${now}, ${now}, ${activity()})`;
    for (const [k, user] of [owner, ...members].entries())
      await sql`INSERT INTO conversation_members (conversation_id, user_id, role, joined_at) VALUES (${id}, ${user}, ${k === 0 ? "owner" : "member"}, ${now})`;
    return id;
  };
  return {
    index: which,
    async user() {
      const id = Bun.randomUUIDv7();
      const username = `u${id.slice(-12)}`;
      await sql`INSERT INTO users (id, username, display_name, password_hash, last_active_at, created_at, updated_at) VALUES (${id}, ${username}, ${username}, 'x', 0, 0, 0)`;
      return { id, username };
    },
    group: (owner, others, title = "G") => conversation("group", owner.id, others.map((o) => o.id), title),
    direct: (a, b) => conversation("direct", a.id, [b.id], null),
    async send(who, conv, content) {
      const id = Bun.randomUUIDv7();
      const now = Date.now();
      await sql`INSERT INTO messages (id, conversation_id, sender_id, message_type, content, search_text, created_at) VALUES (${id}, ${conv}, ${who.id}, 'text', ${content}, ${fold(content)}, ${now})`;
      await sql`UPDATE conversations SET activity_at = ${activity()}, last_message_id = ${id}, last_message_at = ${now} WHERE id = ${conv}`;
      return { id, createdAt: now };
    },
    edit: async (_who, id, content) => void (await sql`UPDATE messages SET content = ${content}, search_text = ${fold(content)}, edited_at = ${Date.now()} WHERE id = ${id}`),
    remove: async (_who, id) => void (await sql`UPDATE messages SET content = '', search_text = NULL, deleted_at = ${Date.now()} WHERE id = ${id}`),
    removeMember: async (_owner, conv, member) => void (await sql`DELETE FROM conversation_members WHERE conversation_id = ${conv} AND user_id = ${member.id}`),
    deleteConversation: async (_owner, conv) => void (await sql`DELETE FROM conversations WHERE id = ${conv}`),
    rename: async (who, name) => void (await sql`UPDATE users SET display_name = ${name} WHERE id = ${who.id}`),
    async contents(ids) {
      const rows = (await sql`SELECT id, content FROM messages WHERE id IN ${sql(ids)}`) as { id: string; content: string }[];
      const byId = new Map(rows.map((r) => [r.id, r.content]));
      return ids.map((id) => byId.get(id)!);
    },
    settle: async () => {},
  };
}

if (ready) {
  searchIndexCases("PostgreSQL", pgBackend);
  searchIndexCases("PostgreSQL, past the newest messages", () => pgBackend(() => narrow));
}

describe.skipIf(!ready)("search on PostgreSQL", () => {
  test("the migration makes the trigram index that LIKE '%term%' uses", async () => {
    const [ext] = await db.$client`SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'`;
    expect(ext.extversion).toEqual(expect.any(String));
    const [idx] = await db.$client`SELECT indexdef FROM pg_indexes WHERE indexname = 'messages_search_text'`;
    expect(idx.indexdef).toContain("gin (search_text gin_trgm_ops)");
    // Without statistics on a small table the planner would scan; asked to avoid it, the index serves.
    const plan = await db.$client.begin(async (tx) => {
      await tx`SET LOCAL enable_seqscan = off`;
      return (await tx.unsafe("EXPLAIN SELECT id FROM messages WHERE search_text LIKE '%ประชุม%'")).map((r: any) => r["QUERY PLAN"]).join("\n");
    });
    expect(plan).toContain("messages_search_text");
  });

  test("a term is looked up in the trigram index only when pg_trgm finds trigrams in it (Thai with its marks included)", async () => {
    const terms = ["ประชุม", "วิดีโอ", "กี่โมง", "会議は", "cafe", "e_c", "ok", "🎉🎉🎉", "- :", "(a)", "会議"];
    const got: Record<string, boolean> = {};
    for (const q of terms) {
      const [t] = parseQuery(q);
      const [{ n }] = await db.$client`SELECT cardinality(show_trgm(${t!.folded}))::int AS n`;
      got[q] = trigramIndexable(t!);
      // Every term sent to the index yields trigrams there (else the index would read all of itself).
      if (got[q]) expect({ q, trigrams: n > 0 }).toEqual({ q, trigrams: true });
    }
    expect(got).toEqual({ ประชุม: true, วิดีโอ: true, กี่โมง: true, 会議は: true, cafe: true, e_c: false, ok: false, "🎉🎉🎉": false, "- :": false, "(a)": false, 会議: false });
  });

  test("backfill() folds the live messages that lack search_text, and only those", async () => {
    const b = pgBackend();
    const [a] = [await b.user()];
    const conv = await b.group(a, []);
    const kept = await b.send(a, conv, "already folded narwhal");
    const old = await b.send(a, conv, "Written BEFORE: Crème narwhal");
    const gone = await b.send(a, conv, "deleted narwhal");
    await b.remove(a, gone.id);
    await db.$client`UPDATE messages SET search_text = NULL WHERE id = ${old.id}`;
    const found = async () => b.contents((await index.findMessages({ userId: a.id, terms: parseQuery("narwhal creme"), limit: 10 })).ids);
    expect(await found()).toEqual([]);
    expect(await index.backfill()).toBe(1);
    expect(await found()).toEqual(["Written BEFORE: Crème narwhal"]);
    const rows = await db.$client`SELECT id, search_text FROM messages WHERE id IN ${db.$client([kept.id, old.id, gone.id])} ORDER BY id`;
    expect(rows.map((r: any) => r.search_text)).toEqual(["already folded narwhal", "written before: creme narwhal", null]);
    expect(await index.backfill()).toBe(0);
  });
});
