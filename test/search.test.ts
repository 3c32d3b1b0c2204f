import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { startServer, tempDir, waitFor, type Account, type TestServer } from "./helpers";
import type { SqliteSearchIndex } from "../src/search/sqlite";

let s: TestServer;
beforeAll(async () => {
  s = await startServer({ searchesPerMinute: 1_000_000 });
});
afterAll(() => s.stop());

const users = async (n: number) => Promise.all(Array.from({ length: n }, () => s.register()));
/** Friends first, so the group can be made under any contact policy. */
async function groupOf(owner: Account, others: Account[], title = "G") {
  for (const o of others) {
    const req = await s.api("POST", "/api/friendships", { token: owner.token, body: { friend_id: o.user.id } });
    if (req.status === 201) await s.api("PATCH", `/api/friendships/${req.body.id}/accept`, { token: o.token });
  }
  const res = await s.api("POST", "/api/conversations", { token: owner.token, body: { type: "group", title, member_ids: others.map((o) => o.user.id) } });
  expect(res.status).toBe(201);
  return res.body.id as string;
}
/** Until the background indexer has caught up: the index answers, not the queue. */
const indexed = (t: TestServer = s) => waitFor(() => (t.app.ctx.search as SqliteSearchIndex).backlog() === 0);
const send = async (who: Account, conv: string, content: string) => {
  const res = await s.api("POST", `/api/conversations/${conv}/messages`, { token: who.token, body: { content } });
  expect(res.status).toBe(201);
  return res.body as { id: string; content: string; created_at: string };
};
const search = (who: Account, params: Record<string, string>) =>
  s.api("GET", `/api/search/messages?${new URLSearchParams(params)}`, { token: who.token });
/** The contents found for q (all pages of up to 100). */
async function found(who: Account, q: string, extra: Record<string, string> = {}): Promise<string[]> {
  const res = await search(who, { q, limit: "100", ...extra });
  expect(res.status).toBe(200);
  return res.body.items.map((i: any) => i.message.content);
}

describe("search: languages and matching", () => {
  let a: Account, b: Account, conv: string;
  beforeAll(async () => {
    [a, b] = (await users(2)) as [Account, Account];
    conv = await groupOf(a, [b]);
    for (const text of [
      "พรุ่งนี้ประชุมกี่โมง",
      "会議は明日の午後三時です",
      "Party time 🎉🎉 tonight",
      "Rendez-vous au Café de Flore",
      "CRÈME brûlée for dessert",
      "Meeting ที่ห้อง 3 ok",
      "the quick brown fox",
      "brown quick dogs",
      'He said "hello" NEAR the door OR * - : (a) ^b AND NOT c',
      "100% sure about snake_case",
      "ok",
    ]) await send(a, conv, text);
    // From the index (the queue path is what the edit/delete tests catch at once).
    await indexed();
  });

  test("Thai, Japanese: any run of characters finds the message", async () => {
    expect(await found(b, "ประชุม")).toEqual(["พรุ่งนี้ประชุมกี่โมง"]);
    expect(await found(b, "明日の午後")).toEqual(["会議は明日の午後三時です"]);
    expect(await found(b, "会議")).toEqual(["会議は明日の午後三時です"]); // 2 characters: the scan path
    expect(await found(b, "ห้อง")).toEqual(["Meeting ที่ห้อง 3 ok"]);
  });

  test("accents and case fold both ways; emoji are text", async () => {
    expect(await found(b, "cafe")).toEqual(["Rendez-vous au Café de Flore"]);
    expect(await found(b, "CAFÉ")).toEqual(["Rendez-vous au Café de Flore"]);
    expect(await found(b, "creme brulee")).toEqual(["CRÈME brûlée for dessert"]);
    expect(await found(b, "🎉")).toEqual(["Party time 🎉🎉 tonight"]);
    expect(await found(b, "🎉🎉 tonight")).toEqual(["Party time 🎉🎉 tonight"]);
  });

  test("mixed scripts in one query: every word must match", async () => {
    expect(await found(b, "meeting ห้อง")).toEqual(["Meeting ที่ห้อง 3 ok"]);
    expect(await found(b, "meeting ประชุม")).toEqual([]);
  });

  test("words match in any order; a quoted phrase only as written", async () => {
    expect(await found(b, "quick brown")).toEqual(["brown quick dogs", "the quick brown fox"]);
    expect(await found(b, '"quick brown"')).toEqual(["the quick brown fox"]);
    expect(await found(b, '"brown quick" dogs')).toEqual(["brown quick dogs"]);
    expect(await found(b, "quick cat")).toEqual([]);
  });

  test("substrings inside words", async () => {
    expect(await found(b, "uic")).toEqual(["brown quick dogs", "the quick brown fox"]);
  });

  test("1–2 characters work (scan path), case- and accent-insensitive", async () => {
    expect(await found(b, "ok")).toEqual(["ok", "Meeting ที่ห้อง 3 ok"]);
    expect(await found(b, "RÛ")).toEqual(["CRÈME brûlée for dessert"]);
    expect(await found(b, "èm")).toEqual(["CRÈME brûlée for dessert"]);
    expect(await found(b, "Ru")).toEqual(["CRÈME brûlée for dessert"]);
    // A short word next to an indexed one.
    expect(await found(b, "ok meeting")).toEqual(["Meeting ที่ห้อง 3 ok"]);
    expect(await found(b, "ox the")).toEqual(["the quick brown fox"]);
    // SQL wildcards are text too.
    expect(await found(b, "%")).toEqual(["100% sure about snake_case"]);
    expect(await found(b, "e_")).toEqual(["100% sure about snake_case"]);
    expect(await found(b, "0%")).toEqual(["100% sure about snake_case"]);
    expect(await found(b, "\\")).toEqual([]);
  });

  test("FTS operators and stray quotes are searched as text, never executed", async () => {
    const door = ['He said "hello" NEAR the door OR * - : (a) ^b AND NOT c'];
    for (const q of ["NEAR", "OR *", "- :", "(a)", "^b", "AND NOT", '"hello', 'said "hello', '"hello" NEAR', "NEAR(hello door)", "hel*", "content:door"])
      expect({ q, found: await found(b, q) }).toEqual({ q, found: q === "hel*" || q === "NEAR(hello door)" || q === "content:door" ? [] : door });
    // "NOT" is a required word like any other, not a negation.
    expect(await found(b, "NOT quick")).toEqual([]);
    expect(await found(b, "NOT door")).toEqual(door);
    expect(await found(b, "-door")).toEqual([]);
  });

  test("snippets: escaped, matches marked, about 200 characters around the first match", async () => {
    const [x] = await users(1);
    const c = await groupOf(x!, []);
    const long = `${"a".repeat(300)} <b>Tom & Jerry</b> café ${"z".repeat(300)}`;
    await send(x!, c, long);
    const res = await search(x!, { q: "cafe jerry" });
    const snip: string = res.body.items[0].snippet;
    expect(snip).toContain("<mark>Jerry</mark>");
    expect(snip).toContain("<mark>café</mark>");
    // The usual named references, as any HTML escaper writes them (and a reader expects).
    expect(snip).toContain("&lt;b&gt;Tom &amp; ");
    expect(snip.startsWith("…")).toBe(true);
    expect(snip.endsWith("…")).toBe(true);
    const visible = snip.replace(/<\/?mark>/g, "").replace(/&(#x?[0-9a-f]+|[a-z]+);/gi, "x");
    expect(visible.length).toBeLessThanOrEqual(205);
    // Thai: the mark covers the original characters.
    expect((await search(b, { q: "ประชุม" })).body.items[0].snippet).toBe("พรุ่งนี้<mark>ประชุม</mark>กี่โมง");
    expect((await search(b, { q: "cafe" })).body.items[0].snippet).toBe("Rendez-vous au <mark>Café</mark> de Flore");
    expect((await search(b, { q: "ok" })).body.items[1].snippet).toBe("Meeting ที่ห้อง 3 <mark>ok</mark>");
  });

  test("each item carries the whole Message, as history shows it", async () => {
    const res = await search(b, { q: "ประชุม" });
    expect(res.body.next_cursor).toBeNull();
    const m = res.body.items[0].message;
    expect(m).toMatchObject({ conversation_id: conv, sender_id: a.user.id, message_type: "text", deleted_at: null, reactions: [] });
    const history = await s.api("GET", `/api/conversations/${conv}/messages?limit=100`, { token: b.token });
    expect(m).toEqual(history.body.items.find((h: any) => h.id === m.id));
  });
});

describe("search: what the caller may see", () => {
  test("edits match at once by their new text only; deleted messages never match (indexed or still queued)", async () => {
    const [a, b] = await users(2);
    const conv = await groupOf(a!, [b!]);
    for (const wait of [false, true]) {
      const m = await send(a!, conv, `original wording xylophone ${wait}`);
      if (wait) await indexed();
      expect(await found(b!, "xylophone")).toEqual([`original wording xylophone ${wait}`]);
      const edited = await s.api("PATCH", `/api/messages/${m.id}`, { token: a!.token, body: { content: `replaced text marimba ${wait}` } });
      expect(edited.status).toBe(200);
      expect(await found(b!, "xylophone")).toEqual([]); // the index still holds the old text until the worker catches up
      expect(await found(b!, "marimba")).toEqual([`replaced text marimba ${wait}`]);
      expect(await found(b!, "ma")).toEqual([`replaced text marimba ${wait}`]);
      if (wait) await indexed();
      expect(await found(b!, "xylophone")).toEqual([]);
      expect(await found(b!, "xy")).toEqual([]);
      expect(await found(b!, "marimba")).toEqual([`replaced text marimba ${wait}`]);
      expect((await s.api("DELETE", `/api/messages/${m.id}`, { token: a!.token })).status).toBe(204);
      expect(await found(b!, "marimba")).toEqual([]);
      expect(await found(b!, "ma")).toEqual([]);
      if (wait) await indexed();
      expect(await found(b!, "marimba")).toEqual([]);
      expect(await found(b!, "ri")).toEqual([]);
    }
  });

  test("a non-member finds nothing; a removed member finds nothing any more; a conversation filter of theirs is 404", async () => {
    const [a, b, stranger] = await users(3);
    const conv = await groupOf(a!, [b!]);
    await send(a!, conv, "secret plans zanzibar");
    expect(await found(b!, "zanzibar")).toEqual(["secret plans zanzibar"]);
    expect(await found(stranger!, "zanzibar")).toEqual([]);
    expect(await found(stranger!, "za")).toEqual([]);
    expect((await search(stranger!, { q: "zanzibar", conversation_id: conv })).status).toBe(404);
    expect((await s.api("DELETE", `/api/conversations/${conv}/members/${b!.user.id}`, { token: a!.token })).status).toBe(204);
    expect(await found(b!, "zanzibar")).toEqual([]);
    expect(await found(b!, "za")).toEqual([]);
    expect((await search(b!, { q: "zanzibar", conversation_id: conv })).status).toBe(404);
    // Deleting the conversation takes its messages out of the index.
    expect((await s.api("DELETE", `/api/conversations/${conv}`, { token: a!.token })).status).toBe(204);
    expect(await found(a!, "zanzibar")).toEqual([]);
  });

  test("pages are full although most matches are in others' conversations", async () => {
    const [a, b] = await users(2);
    const mine = await groupOf(a!, []);
    const theirs = await groupOf(b!, []);
    for (let i = 0; i < 30; i++) await send(b!, theirs, `walrus ${i}`);
    for (let i = 0; i < 5; i++) await send(a!, mine, `walrus mine ${i}`);
    for (let i = 0; i < 30; i++) await send(b!, theirs, `walrus later ${i}`);
    const page = await search(a!, { q: "walrus", limit: "5" });
    expect(page.body.items.map((i: any) => i.message.content)).toEqual([4, 3, 2, 1, 0].map((i) => `walrus mine ${i}`));
    // The last one: there may be a cursor, but nothing after it.
    if (page.body.next_cursor) expect((await search(a!, { q: "walrus", limit: "5", cursor: page.body.next_cursor })).body.items).toEqual([]);
  });

  test("filters: conversation, sender, before/after", async () => {
    const [a, b] = await users(2);
    const one = await groupOf(a!, [b!]);
    const two = await groupOf(a!, [b!]);
    const m1 = await send(a!, one, "pelican one");
    await Bun.sleep(5);
    const m2 = await send(b!, one, "pelican two");
    await Bun.sleep(5);
    await send(a!, two, "pelican three");
    expect(await found(a!, "pelican", { conversation_id: one })).toEqual(["pelican two", "pelican one"]);
    expect(await found(a!, "pelican", { sender_id: a!.user.id })).toEqual(["pelican three", "pelican one"]);
    expect(await found(a!, "pe", { sender_id: b!.user.id })).toEqual(["pelican two"]);
    expect(await found(a!, "pelican", { before: m2.created_at })).toEqual(["pelican one"]);
    expect(await found(a!, "pelican", { after: m1.created_at })).toEqual(["pelican three", "pelican two"]);
    expect(await found(a!, "pelican", { after: m1.created_at, before: new Date(Date.now() + 60_000).toISOString() })).toEqual(["pelican three", "pelican two"]);
    expect(await found(a!, "pelican", { after: "2000-01-01", conversation_id: two })).toEqual(["pelican three"]);
  });
});

describe("search: paging", () => {
  test("newest first, pages stable while new matches arrive, with both paths", async () => {
    const [a] = await users(1);
    const conv = await groupOf(a!, []);
    for (let i = 0; i < 25; i++) await send(a!, conv, `heron ${i}`);
    for (const q of ["heron", "he"]) {
      const before = await found(a!, q);
      expect(before.length).toBeGreaterThanOrEqual(25);
      const seen: string[] = [];
      let cursor: string | undefined;
      let n = 0;
      do {
        const res = await search(a!, { q, limit: "7", ...(cursor ? { cursor } : {}) });
        expect(res.status).toBe(200);
        seen.push(...res.body.items.map((i: any) => i.message.content));
        cursor = res.body.next_cursor ?? undefined;
        // New matches while paging only ever appear above the first page.
        await send(a!, conv, `heron new ${q} ${n++}`);
      } while (cursor);
      // Every earlier match exactly once, newest first; none of those sent meanwhile.
      expect(seen).toEqual(before);
    }
    expect((await found(a!, "heron")).slice(-25)).toEqual(Array.from({ length: 25 }, (_, i) => `heron ${24 - i}`));
  });

  test("a cursor of another query or other filters is 400; a foreign or broken cursor is 400", async () => {
    const [a] = await users(1);
    const conv = await groupOf(a!, []);
    for (let i = 0; i < 3; i++) await send(a!, conv, `ibis ${i}`);
    const page = await search(a!, { q: "ibis", limit: "1" });
    const cursor = page.body.next_cursor as string;
    expect(cursor).toEqual(expect.any(String));
    expect((await search(a!, { q: "ibis", limit: "1", cursor })).status).toBe(200);
    expect((await search(a!, { q: "ibis", limit: "2", cursor })).status).toBe(200); // the page size may change
    expect((await search(a!, { q: "ibi", limit: "1", cursor })).status).toBe(400);
    expect((await search(a!, { q: "ibis", conversation_id: conv, limit: "1", cursor })).status).toBe(400);
    expect((await search(a!, { q: "ibis", sender_id: a!.user.id, limit: "1", cursor })).status).toBe(400);
    expect((await search(a!, { q: "ibis", after: "2020-01-01", limit: "1", cursor })).status).toBe(400);
    expect((await search(a!, { q: "ibis", cursor: "nonsense" })).body.error.code).toBe("bad_request");
    const history = await s.api("GET", `/api/conversations/${conv}/messages?limit=1`, { token: a!.token });
    expect((await search(a!, { q: "ibis", cursor: history.body.next_cursor })).status).toBe(400);
  });
});

describe("search: bad input changes nothing and gets the contract's errors", () => {
  let a: Account;
  beforeAll(async () => {
    [a] = (await users(1)) as [Account];
  });
  const status = async (params: Record<string, string>) => {
    const res = await search(a, params);
    return [res.status, res.body?.error?.code];
  };

  test("q: missing, empty, blank, empty quotes, too long, control characters → 422", async () => {
    for (const q of [undefined, "", "   ", "\u3000", '""', '"  "', "x".repeat(257), "a\u0000b", "a\nb", "tab\there", "a\u007fb", "a\u0085b"]) {
      expect({ q, got: await status(q === undefined ? {} : { q }) }).toEqual({ q, got: [422, "validation_failed"] });
    }
    expect(await status({ q: "x".repeat(256) })).toEqual([200, undefined]);
    expect(await status({ q: "🎉".repeat(256) })).toEqual([200, undefined]); // characters, not UTF-16 units
  });

  test("limit: 1–100; not a number → 400, out of range → 422", async () => {
    expect(await status({ q: "abc", limit: "0" })).toEqual([422, "validation_failed"]);
    expect(await status({ q: "abc", limit: "101" })).toEqual([422, "validation_failed"]);
    expect(await status({ q: "abc", limit: "ten" })).toEqual([400, "bad_request"]);
    expect(await status({ q: "abc", limit: "100" })).toEqual([200, undefined]);
  });

  test("before/after: not an ISO timestamp (or no time zone) → 400; an empty range → 422", async () => {
    for (const bad of ["yesterday", "2026-13-45", "2026-11-29T10:00:00", "1700000000", "2026-11-29T25:00:00Z"])
      expect({ bad, got: await status({ q: "abc", before: bad }) }).toEqual({ bad, got: [400, "bad_request"] });
    expect(await status({ q: "abc", after: "nope" })).toEqual([400, "bad_request"]);
    expect(await status({ q: "abc", after: "2026-11-29T10:00:00Z", before: "2026-11-29T09:00:00Z" })).toEqual([422, "validation_failed"]);
    expect(await status({ q: "abc", after: "2026-11-29", before: "2026-11-30T00:00:00+07:00" })).toEqual([200, undefined]);
  });

  test("an unknown conversation filter → 404; no token → 401", async () => {
    expect(await status({ q: "abc", conversation_id: "nope" })).toEqual([404, "not_found"]);
    expect((await s.api("GET", "/api/search/messages?q=abc")).status).toBe(401);
    expect((await s.api("GET", "/api/search/conversations?q=abc")).status).toBe(401);
  });
});

describe("search: conversations (quick switcher)", () => {
  test("group titles and direct peers' names, accent- and case-insensitive, only the caller's, newest activity first", async () => {
    const [a, b, c] = await users(3);
    await s.api("PATCH", "/api/users/me", { token: b!.token, body: { display_name: "Zoë Quasar" } });
    const g1 = await groupOf(a!, [c!], "Équipe Quasar");
    const g2 = await groupOf(a!, [c!], "Lunch");
    await groupOf(c!, [], "Quasar secret"); // not a's
    await groupOf(a!, [b!]); // friends now
    const direct = (await s.api("POST", "/api/conversations", { token: a!.token, body: { type: "direct", user_id: b!.user.id } })).body.id;
    await send(a!, g1, "bump");
    const res = await s.api("GET", "/api/search/conversations?q=quasar", { token: a!.token });
    expect(res.status).toBe(200);
    expect(res.body.items.map((x: any) => x.id)).toEqual([g1, direct]);
    expect(res.body.items[1].title).toBe("Zoë Quasar");
    expect(res.body.next_cursor).toBeNull();
    const byName = await s.api("GET", `/api/search/conversations?q=${encodeURIComponent("zoe")}`, { token: a!.token });
    expect(byName.body.items.map((x: any) => x.id)).toEqual([direct]);
    const byUsername = await s.api("GET", `/api/search/conversations?q=${b!.user.username}`, { token: a!.token });
    expect(byUsername.body.items.map((x: any) => x.id)).toEqual([direct]);
    expect((await s.api("GET", "/api/search/conversations?q=equipe", { token: a!.token })).body.items.map((x: any) => x.id)).toEqual([g1]);
    expect((await s.api("GET", "/api/search/conversations?q=lu", { token: a!.token })).body.items.map((x: any) => x.id)).toEqual([g2]);
    // Paging.
    const p1 = await s.api("GET", "/api/search/conversations?q=quasar&limit=1", { token: a!.token });
    expect(p1.body.items.map((x: any) => x.id)).toEqual([g1]);
    const p2 = await s.api("GET", `/api/search/conversations?q=quasar&limit=1&cursor=${p1.body.next_cursor}`, { token: a!.token });
    expect(p2.body.items.map((x: any) => x.id)).toEqual([direct]);
    expect((await s.api("GET", `/api/search/conversations?q=lunch&cursor=${p1.body.next_cursor}`, { token: a!.token })).status).toBe(400);
    expect((await s.api("GET", "/api/search/conversations?q=", { token: a!.token })).status).toBe(422);
  });
});

describe("search: budget", () => {
  test("searches spend a per-user budget (a quarter of a minute's at once): 429 with Retry-After when it is used up", async () => {
    const t = await startServer({ searchesPerMinute: 16 });
    try {
      const me = await t.register();
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await t.api("GET", "/api/search/messages?q=abc", { token: me.token })).status);
      const limited = await t.api("GET", "/api/search/conversations?q=abc", { token: me.token });
      expect(statuses).toEqual([200, 200, 200, 200]);
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    } finally {
      await t.stop();
    }
  });
});

describe("search: the index on disk", () => {
  test("the migration indexes the messages of a database from before it", async () => {
    const dir = tempDir();
    const old = await startServer({}, dir);
    const [a] = [await old.register()];
    const conv = (await old.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "old", member_ids: [] } })).body.id;
    await old.api("POST", `/api/conversations/${conv}/messages`, { token: a.token, body: { content: "written before search existed" } });
    await old.stop(false);
    // Back to the schema before 0012_search.
    const db = new Database(join(dir, "parley.db"));
    db.run("DROP TRIGGER search_pending_insert; DROP TRIGGER search_pending_update; DROP TRIGGER search_pending_delete; DROP TABLE search_pending");
    db.run("DELETE FROM __drizzle_migrations WHERE created_at = (SELECT max(created_at) FROM __drizzle_migrations)");
    db.close();
    const { rmSync } = await import("node:fs");
    for (const suffix of ["", "-wal", "-shm"]) rmSync(join(dir, `search.db${suffix}`), { force: true });
    const again = await startServer({}, dir);
    try {
      const res = await again.api("GET", "/api/search/messages?q=before%20search", { token: a.token });
      expect(res.body.items.map((i: any) => i.message.content)).toEqual(["written before search existed"]);
    } finally {
      await again.stop();
    }
  });

  test("a restored backup (parley.db alone) is searchable at once, and indexed again in the background", async () => {
    const dir = tempDir();
    const live = await startServer({}, dir);
    let restored: TestServer | undefined;
    try {
      const a = await live.register();
      const mk = async (title: string) => (await live.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title, member_ids: [] } })).body.id;
      const gone = await mk("gone");
      const kept = await mk("kept");
      for (let i = 0; i < 20; i++) {
        await live.api("POST", `/api/conversations/${gone}/messages`, { token: a.token, body: { content: `gone ${i} okapi` } });
        await live.api("POST", `/api/conversations/${kept}/messages`, { token: a.token, body: { content: `kept ${i} okapi` } });
      }
      await live.api("DELETE", `/api/conversations/${gone}`, { token: a.token });
      await indexed(live);
      const copyDir = tempDir();
      const proc = Bun.spawnSync([process.execPath, "src/index.ts", "backup", join(copyDir, "parley.db"), "--data-dir", dir]);
      expect(proc.exitCode).toBe(0);
      restored = await startServer({}, copyDir);
      const login = await restored.api("POST", "/api/auth/login", { body: { username: a.user.username, password: a.password } });
      const expected = Array.from({ length: 20 }, (_, i) => `kept ${19 - i} okapi`);
      const okapi = async () => (await restored!.api("GET", "/api/search/messages?q=okapi&limit=100", { token: login.body.token })).body.items.map((i: any) => i.message.content);
      expect(await okapi()).toEqual(expected);
      await indexed(restored);
      expect(await okapi()).toEqual(expected);
    } finally {
      await live.stop();
      await restored?.stop();
    }
  });

  test("an older parley.db restored in place beside a newer search.db: the index is rebuilt, never trusted", async () => {
    const dir = tempDir();
    let server = await startServer({}, dir);
    const a = await server.register();
    const conv = (await server.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "t", member_ids: [] } })).body.id;
    const m = (await server.api("POST", `/api/conversations/${conv}/messages`, { token: a.token, body: { content: "alpha version" } })).body;
    await indexed(server);
    const copyDir = tempDir();
    expect(Bun.spawnSync([process.execPath, "src/index.ts", "backup", join(copyDir, "parley.db"), "--data-dir", dir]).exitCode).toBe(0);
    await server.api("PATCH", `/api/messages/${m.id}`, { token: a.token, body: { content: "omega version" } });
    await indexed(server);
    await server.stop(false);
    const { renameSync, rmSync } = await import("node:fs");
    for (const suffix of ["-wal", "-shm"]) rmSync(join(dir, `parley.db${suffix}`), { force: true });
    // A new file, as a restore writes it (the stopped server's closed handles keep the old one).
    renameSync(join(copyDir, "parley.db"), join(dir, "parley.db"));
    server = await startServer({}, dir);
    try {
      const find = async (q: string) => (await server.api("GET", `/api/search/messages?q=${q}`, { token: a.token })).body.items.map((i: any) => i.message.content);
      for (const phase of ["queued", "indexed"]) {
        if (phase === "indexed") await indexed(server);
        expect({ phase, alpha: await find("alpha"), omega: await find("omega") }).toEqual({ phase, alpha: ["alpha version"], omega: [] });
      }
    } finally {
      await server.stop();
    }
  });
});
