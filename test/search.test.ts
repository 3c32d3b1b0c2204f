import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { sqliteOnly, startServer, tempDir, TEST_BACKEND, waitFor, type Account, type TestServer } from "./helpers";
import { SqliteSearchIndex } from "../src/search/sqlite";
import { fold, FOLD_VERSION, stripsMarks } from "../src/search/fold.js";
import { foldWithOrigins } from "../src/search/text";
import { searchIndexCases, type SearchBackend, type Who } from "./search-index";

let s: TestServer;
beforeAll(async () => {
  s = await startServer({ searchesPerMinute: 1_000_000 });
});
afterAll(() => s.stop());

const users = async (n: number) => Promise.all(Array.from({ length: n }, () => s.register()));
async function groupOf(owner: Account, others: Account[], title = "G") {
  const res = await s.api("POST", "/api/conversations", { token: owner.token, body: { type: "group", title, member_ids: others.map((o) => o.user.id) } });
  expect(res.status).toBe(201);
  return res.body.id as string;
}
/**
 * Until SQLite's background indexer has caught up: the index answers, not the queue (the
 * worker would wait up to 5 s for a batch to fill, Config.searchIndexLagMs). PostgreSQL's
 * index is the rows themselves: nothing to wait for.
 */
const indexed = async (t: TestServer = s) => {
  const index = t.app.ctx.search;
  if (!(index instanceof SqliteSearchIndex)) return;
  index.indexNow();
  await waitFor(() => index.backlog() === 0);
};
/** SQLite's indexer: a queue, a worker that batches, and search.db beside parley.db. */
const sqliteIndexer = sqliteOnly("SQLite's search queue, its batching worker and search.db");
const send = async (who: Account, conv: string, content: string) => {
  const res = await s.api("POST", `/api/conversations/${conv}/messages`, { token: who.token, body: { content } });
  expect(res.status).toBe(201);
  return res.body as { id: string; content: string; created_at: string };
};
const search = (who: Account, params: Record<string, string>) =>
  s.api("GET", `/api/search/messages?${new URLSearchParams(params)}`, { token: who.token });
/** The contents found for q (a page of up to 100). */
async function found(who: Account, q: string, extra: Record<string, string> = {}): Promise<string[]> {
  const res = await search(who, { q, limit: "100", ...extra });
  expect(res.status).toBe(200);
  return res.body.items.map((i: any) => i.message.content);
}

/** The index's cases (test/search-index.ts) on the test server's engine: rows written through the real app's routes. */
function appBackend(): SearchBackend {
  const accounts = new Map<string, Account>();
  const account = (w: Who) => accounts.get(w.id)!;
  const ok = async (method: string, path: string, who: Who, body?: unknown) => {
    const res = await s.api(method, path, { token: account(who).token, body });
    expect(res.status).toBeLessThan(300);
    return res.body;
  };
  return {
    index: () => s.app.ctx.search,
    async user() {
      const a = await s.register();
      accounts.set(a.user.id, a);
      return { id: a.user.id, username: a.user.username };
    },
    group: (owner, others, title) => groupOf(account(owner), others.map(account), title),
    direct: async (a, b) => (await ok("POST", "/api/conversations", a, { type: "direct", user_id: b.id })).id,
    send: async (who, conv, content) => {
      const m = await send(account(who), conv, content);
      return { id: m.id, createdAt: Date.parse(m.created_at) };
    },
    edit: async (who, id, content) => void (await ok("PATCH", `/api/messages/${id}`, who, { content })),
    remove: async (who, id) => void (await ok("DELETE", `/api/messages/${id}`, who)),
    removeMember: async (owner, conv, member) => void (await ok("DELETE", `/api/conversations/${conv}/members/${member.id}`, owner)),
    deleteConversation: async (owner, conv) => void (await ok("DELETE", `/api/conversations/${conv}`, owner)),
    rename: async (who, displayName) => void (await ok("PATCH", "/api/users/me", who, { display_name: displayName })),
    async contents(ids) {
      const rows = ids.length ? await s.rows<{ id: string; content: string }>(`SELECT id, content FROM messages WHERE id IN (${ids.map(() => "?").join(",")})`, ...ids) : [];
      const byId = new Map(rows.map((r) => [r.id, r.content]));
      return ids.map((id) => byId.get(id)!);
    },
    settle: async () => void (await indexed()),
  };
}

searchIndexCases(TEST_BACKEND === "sqlite" ? "SQLite" : "PostgreSQL, through the app", appBackend);

test("a character fold() only lower-cases on its own folds the same beside one that needs its slow path (every BMP code point in NFC)", () => {
  const differ: string[] = [];
  for (let cp = 0x20; cp <= 0xffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const c = String.fromCodePoint(cp);
    if (stripsMarks(c) || c.normalize("NFC") !== c) continue;
    if (fold(`é ${c}`) !== `e ${fold(c)}`) differ.push(`U+${cp.toString(16).padStart(4, "0")}`);
  }
  // Before: Macedonian ѓ and ќ (г and к with an acute that is part of the letter) lost it beside é.
  expect(differ).toEqual([]);
});

test("snippets fold code point by code point as fold() folds the whole text (random mixes of scripts, accents and marks)", () => {
  // Latin, Latin-1 to Extended-B, Greek, Greek Extended, Cyrillic, Hebrew, Arabic, Thai, combining accents, a space.
  // Hangul syllables and Bengali (whose decomposed forms compose again), too; and
  // compatibility forms (NFKC): fullwidth and half-width forms, ligatures, super- and
  // subscripts, letterlike symbols, enclosed and squared CJK, Hangul compatibility jamo.
  const pools = [[0x41, 0x7a], [0xc0, 0x24f], [0x370, 0x3ff], [0x1f00, 0x1fff], [0x400, 0x45f], [0x591, 0x5ea], [0x621, 0x66f], [0xe01, 0xe4e], [0x300, 0x36f], [0x20, 0x20], [0xac00, 0xd7a3], [0x980, 0x9fe],
    [0xff01, 0xffdc], [0xfb00, 0xfb06], [0x2070, 0x218f], [0x3131, 0x318e], [0x3200, 0x33ff], [0x1100, 0x11ff]] as const;
  let seed = 7;
  // The generator's high bits: its low ones repeat with a short period, and `seed % 12` never drew the last pools.
  const next = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), Math.floor(seed / 2 ** 8) % n);
  const differ: string[] = [];
  const drawn = { hangul: 0, bengali: 0, compatibility: 0 };
  for (let n = 0; n < 5000; n++) {
    let s = "";
    for (let k = 0; k < 8; k++) {
      const [lo, hi] = pools[next(pools.length)]!;
      s += String.fromCodePoint(lo + next(hi - lo + 1));
    }
    // As drawn (any mix of forms), then in NFC and NFD.
    if (foldWithOrigins(s).folded !== fold(s)) differ.push(`raw ${JSON.stringify(s)}`);
    s = s.normalize("NFC");
    if (foldWithOrigins(s).folded !== fold(s)) differ.push(s);
    // Decomposed, as some keyboards and systems send it: й as и + U+0306 was not marked.
    const d = s.normalize("NFD");
    if (foldWithOrigins(d).folded !== fold(d)) differ.push(`NFD ${JSON.stringify(d)}`);
    if (/[\uac00-\ud7a3]/.test(s)) drawn.hangul++;
    if (/[\u0980-\u09fe]/.test(s)) drawn.bengali++;
    if (s !== s.normalize("NFKC")) drawn.compatibility++;
  }
  expect(differ).toEqual([]);
  expect(drawn.hangul).toBeGreaterThan(1000);
  expect(drawn.bengali).toBeGreaterThan(1000);
  expect(drawn.compatibility).toBeGreaterThan(1000);
});

describe("search: what the HTTP layer adds", () => {
  let a: Account, b: Account, conv: string;
  beforeAll(async () => {
    [a, b] = (await users(2)) as [Account, Account];
    conv = await groupOf(a, [b]);
    for (const text of ["พรุ่งนี้ประชุมกี่โมง", "Rendez-vous au Café de Flore", "Meeting ที่ห้อง 3 ok", "ok"]) await send(a, conv, text);
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
    // Marked as fold() matched them: Greek final sigma (σ or ς, as typed), Greek and
    // Cyrillic accents, Arabic's harakat and tatweel (precomposed or not), and a mark that
    // fold() keeps in text without Latin accents.
    await send(x!, c, "ΟΔΟΣ ΣΟΦΙΑΣ");
    expect((await search(x!, { q: "οδος" })).body.items[0].snippet).toBe("<mark>ΟΔΟΣ</mark> ΣΟΦΙΑΣ");
    expect((await search(x!, { q: "σοφιασ" })).body.items[0].snippet).toBe("ΟΔΟΣ <mark>ΣΟΦΙΑΣ</mark>");
    await send(x!, c, "Καλή αντάμωση στην Αθήνα");
    expect((await search(x!, { q: "ανταμωση αθηνα" })).body.items[0].snippet).toBe("Καλή <mark>αντάμωση</mark> στην <mark>Αθήνα</mark>");
    await send(x!, c, "Новая ёлка, моло\u0301ко");
    expect((await search(x!, { q: "елка молоко" })).body.items[0].snippet).toBe("Новая <mark>ёлка</mark>, <mark>моло\u0301ко</mark>");
    // Decomposed: an accent fold() drops is inside the mark with its letter (it was left after
    // </mark>); Hangul beside it composes as fold() composes it (found, but never marked).
    await send(x!, c, "Cafe\u0301 latte \ud55c\uad6d".normalize("NFD"));
    expect((await search(x!, { q: "cafe" })).body.items[0].snippet).toBe("<mark>Cafe\u0301</mark> latte \u1112\u1161\u11ab\u1100\u116e\u11a8");
    expect((await search(x!, { q: "\ud55c\uad6d" })).body.items[0].snippet).toBe("Cafe\u0301 latte <mark>\u1112\u1161\u11ab\u1100\u116e\u11a8</mark>");
    // Compatibility forms are what they stand for (NFKC: fullwidth, ligatures, half-width
    // katakana), and decomposed Hangul with nothing else to fold is found by what is typed
    // elsewhere: none of these was found before.
    await send(x!, c, "Ｔｏｋｙｏ ﬁle ｶﾀｶﾅ");
    expect((await search(x!, { q: "tokyo" })).body.items[0].snippet).toBe("<mark>Ｔｏｋｙｏ</mark> ﬁle ｶﾀｶﾅ");
    expect((await search(x!, { q: "file" })).body.items[0].snippet).toBe("Ｔｏｋｙｏ <mark>ﬁle</mark> ｶﾀｶﾅ");
    expect((await search(x!, { q: "カタカナ" })).body.items[0].snippet).toBe("Ｔｏｋｙｏ ﬁle <mark>ｶﾀｶﾅ</mark>");
    expect((await search(x!, { q: "ＴＯＫＹＯ" })).body.items[0].snippet).toBe("<mark>Ｔｏｋｙｏ</mark> ﬁle ｶﾀｶﾅ");
    // Hangul letters written on their own stay as typed (NFKC composed them with the syllable
    // before: "감사ㄳ" was "감삯", not found by 감사; "ㅋㅋㅠㅠ" was "ㅋ큐ㅠ").
    await send(x!, c, "감사ㄳ ㅋㅋㅠㅠ");
    expect((await search(x!, { q: "감사" })).body.items[0].snippet).toBe("<mark>감사</mark>ㄳ ㅋㅋㅠㅠ");
    expect((await search(x!, { q: "ㅠㅠ" })).body.items[0].snippet).toBe("감사ㄳ ㅋㅋ<mark>ㅠㅠ</mark>");
    expect((await search(x!, { q: "큐" })).body.items.filter((h: any) => h.snippet.includes("ㅋㅋ"))).toEqual([]);
    await send(x!, c, "\ud55c\uad6d\uc5b4 \ubc30\uc6b0\uae30".normalize("NFD"));
    expect((await search(x!, { q: "\ud55c\uad6d\uc5b4" })).body.items[0].snippet).toBe(`<mark>${"\ud55c\uad6d\uc5b4".normalize("NFD")}</mark> ${"\ubc30\uc6b0\uae30".normalize("NFD")}`);
    // Decomposed (й as и + U+0306, which fold() keeps): found and marked whole.
    await send(x!, c, "Ми\u0306ко \u0419од".normalize("NFD"));
    expect((await search(x!, { q: "йод майко" })).body.items.length).toBe(0);
    expect((await search(x!, { q: "йод" })).body.items[0].snippet).toBe("Ми\u0306ко <mark>И\u0306од</mark>");
    expect((await search(x!, { q: "мйко" })).body.items[0].snippet).toBe("<mark>Ми\u0306ко</mark> И\u0306од");
    await send(x!, c, "قال مَرْحَبًا بالكتـــاب");
    expect((await search(x!, { q: "مرحبا كتاب" })).body.items[0].snippet).toBe("قال <mark>مَرْحَبًا</mark> بال<mark>كتـــاب</mark>");
    await send(x!, c, "plain xa\u1dc4b text");
    expect((await search(x!, { q: "xa\u1dc4b" })).body.items[0].snippet).toBe("plain <mark>xa\u1dc4b</mark> text");
    // A letter spelt out as two (ß → ss) is marked whole.
    await send(x!, c, "Treffen in der Großstraße 7, Łódź");
    expect((await search(x!, { q: "strasse lodz" })).body.items[0].snippet).toBe("Treffen in der Groß<mark>straße</mark> 7, <mark>Łódź</mark>");
    expect((await search(x!, { q: "sss" })).body.items[0].snippet).toBe("Treffen in der Gro<mark>ßs</mark>traße 7, Łódź");
    // Turkish's dotless ı is typed as i (and its capital is I): found by "ISPANAK" and "ispanak", marked as written.
    await send(x!, c, "Bugün ıspanak yemeği var, İstanbul da");
    for (const q of ["ISPANAK", "ispanak", "ıspanak"]) expect((await search(x!, { q })).body.items[0].snippet).toBe("Bugün <mark>ıspanak</mark> yemeği var, İstanbul da");
    expect((await search(x!, { q: "istanbul" })).body.items[0].snippet).toBe("Bugün ıspanak yemeği var, <mark>İstanbul</mark> da");
    expect((await search(b, { q: "ok" })).body.items[1].snippet).toBe("Meeting ที่ห้อง 3 <mark>ok</mark>");
  });

  test("a snippet is at most 200 characters as sent, marks and escapes included", async () => {
    const [x] = await users(1);
    const c = await groupOf(x!, []);
    // A word repeated all along: marked at every turn, a window of 200 characters of text was ~420 sent.
    await send(x!, c, "hello world ".repeat(300));
    const repeated: string = (await search(x!, { q: "hello" })).body.items[0].snippet;
    expect(repeated.length).toBeLessThanOrEqual(200);
    expect(repeated.startsWith("<mark>hello</mark> world <mark>hello</mark>")).toBe(true);
    expect(repeated.endsWith("…")).toBe(true);
    // Escapes: every & is five characters sent.
    await send(x!, c, `${"&".repeat(1500)} needle ${"&".repeat(1500)}`);
    const escaped: string = (await search(x!, { q: "needle" })).body.items[0].snippet;
    expect(escaped.length).toBeLessThanOrEqual(200);
    expect(escaped).toMatch(/^…(&amp;)+ <mark>needle<\/mark> (&amp;)+…$/);
    // A phrase longer than the bound still shows its start, marked and closed.
    const phrase = "abcdefghij ".repeat(23).trim(); // 252 characters: q takes 256
    await send(x!, c, phrase);
    const long: string = (await search(x!, { q: `"${phrase}"` })).body.items[0].snippet;
    expect(long.length).toBeLessThanOrEqual(200);
    expect(long).toMatch(/^<mark>abcdefghij abcdefghij [a-j ]+<\/mark>…$/);
  });

  test("each item carries the whole Message, as history shows it", async () => {
    const res = await search(b, { q: "ประชุม" });
    expect(res.body.next_cursor).toBeNull();
    const m = res.body.items[0].message;
    expect(m).toMatchObject({ conversation_id: conv, sender_id: a.user.id, message_type: "text", deleted_at: null, reactions: [] });
    const history = await s.api("GET", `/api/conversations/${conv}/messages?limit=100`, { token: b.token });
    expect(m).toEqual(history.body.items.find((h: any) => h.id === m.id));
  });

  test("a conversation filter of a conversation not (or no longer) the caller's is 404", async () => {
    const [o, m, stranger] = await users(3);
    const c = await groupOf(o!, [m!]);
    await send(o!, c, "secret plans zanzibar");
    expect((await search(stranger!, { q: "zanzibar", conversation_id: c })).status).toBe(404);
    expect(await found(m!, "zanzibar", { conversation_id: c })).toEqual(["secret plans zanzibar"]);
    expect((await s.api("DELETE", `/api/conversations/${c}/members/${m!.user.id}`, { token: o!.token })).status).toBe(204);
    expect((await search(m!, { q: "zanzibar", conversation_id: c })).status).toBe(404);
  });

  sqliteIndexer.test("a message is found right after its ack while the indexer waits for a batch", async () => {
    const [a, b] = await users(2);
    const conv = await groupOf(a!, [b!]);
    const index = s.app.ctx.search as SqliteSearchIndex;
    await indexed();
    await send(a!, conv, "just sent quokka");
    // A lone message waits for more to index with it (up to 5 s): the queue answers.
    expect(index.backlog()).toBeGreaterThan(0);
    expect(await found(b!, "quokka")).toEqual(["just sent quokka"]);
    expect(await found(b!, "qu")).toEqual(["just sent quokka"]);
    expect(index.backlog()).toBeGreaterThan(0);
  });

  sqliteIndexer.test("a change waits for a full batch at most searchIndexLagMs, then the indexer takes it by itself", async () => {
    const server = await startServer({ searchIndexLagMs: 300 });
    try {
      const index = server.app.ctx.search as SqliteSearchIndex;
      const a = await server.register();
      const conv = (await server.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "t", member_ids: [] } })).body.id;
      expect((await server.api("POST", `/api/conversations/${conv}/messages`, { token: a.token, body: { content: "lonely wombat" } })).status).toBe(201);
      await waitFor(() => index.backlog() === 0, 3000);
      const res = await server.api("GET", "/api/search/messages?q=wombat", { token: a.token });
      expect(res.body.items.map((i: any) => i.message.content)).toEqual(["lonely wombat"]);
    } finally {
      await server.stop();
    }
  });

  test("before/after are ISO timestamps, both bounds exclusive", async () => {
    const [x] = await users(1);
    const c = await groupOf(x!, []);
    const m1 = await send(x!, c, "pelican one");
    await Bun.sleep(5);
    const m2 = await send(x!, c, "pelican two");
    expect(await found(x!, "pelican", { before: m2.created_at })).toEqual(["pelican one"]);
    expect(await found(x!, "pelican", { after: m1.created_at })).toEqual(["pelican two"]);
    expect(await found(x!, "pelican", { after: "2000-01-01", before: new Date(Date.now() + 60_000).toISOString() })).toEqual(["pelican two", "pelican one"]);
  });

  test("next_cursor walks every match once, newest first", async () => {
    const [x] = await users(1);
    const c = await groupOf(x!, []);
    for (let i = 0; i < 12; i++) await send(x!, c, `heron ${i}`);
    for (const q of ["heron", "he"]) {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const res = await search(x!, { q, limit: "5", ...(cursor ? { cursor } : {}) });
        expect(res.status).toBe(200);
        seen.push(...res.body.items.map((i: any) => i.message.content));
        cursor = res.body.next_cursor ?? undefined;
      } while (cursor);
      expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => `heron ${11 - i}`));
    }
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
    for (const bad of ["yesterday", "2026-13-45", "2026-11-29T10:00:00", "1700000000", "2026-11-29T25:00:00Z", "2021-02-30", "2021-02-29T10:00:00Z", "2026-04-31", "2026-00-10"])
      expect({ bad, got: await status({ q: "abc", before: bad }) }).toEqual({ bad, got: [400, "bad_request"] });
    expect(await status({ q: "abc", after: "nope" })).toEqual([400, "bad_request"]);
    expect(await status({ q: "abc", after: "2026-11-29T10:00:00Z", before: "2026-11-29T09:00:00Z" })).toEqual([422, "validation_failed"]);
    expect(await status({ q: "abc", after: "2026-11-29", before: "2026-11-30T00:00:00+07:00" })).toEqual([200, undefined]);
    // The last day of each month is on the calendar, February's in a leap year too.
    for (const good of ["2024-02-29", "2026-01-31", "2026-04-30", "2026-12-31T23:59:59.999Z", "0000-02-29"]) expect({ good, got: await status({ q: "abc", after: good }) }).toEqual({ good, got: [200, undefined] });
  });

  test("an unknown conversation filter → 404; no token → 401", async () => {
    expect(await status({ q: "abc", conversation_id: "nope" })).toEqual([404, "not_found"]);
    expect((await s.api("GET", "/api/search/messages?q=abc")).status).toBe(401);
    expect((await s.api("GET", "/api/search/conversations?q=abc")).status).toBe(401);
  });
});

describe("search: conversations over HTTP (quick switcher)", () => {
  test("the page holds Conversation views, a cursor pages on, another query's cursor is 400", async () => {
    const [a, b] = await users(2);
    await s.api("PATCH", "/api/users/me", { token: b!.token, body: { display_name: "Zoë Quasar" } });
    const g1 = await groupOf(a!, [], "Équipe Quasar");
    const direct = (await s.api("POST", "/api/conversations", { token: a!.token, body: { type: "direct", user_id: b!.user.id } })).body.id;
    await send(a!, g1, "bump");
    const res = await s.api("GET", "/api/search/conversations?q=quasar", { token: a!.token });
    expect(res.status).toBe(200);
    expect(res.body.items.map((x: any) => x.id)).toEqual([g1, direct]);
    expect(res.body.items[1].title).toBe("Zoë Quasar");
    expect(res.body.next_cursor).toBeNull();
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

/**
 * Forgets that migration `tag` and every later one were applied: the next start applies them
 * again. Every tag here is older than 0019 (users.name_key), whose column goes too.
 */
async function forgetMigrationsFrom(db: Database, tag: string) {
  const journal = (await Bun.file(join(import.meta.dir, "../drizzle/meta/_journal.json")).json()) as { entries: { tag: string; when: number }[] };
  db.run("DELETE FROM __drizzle_migrations WHERE created_at >= ?", [journal.entries.find((e) => e.tag === tag)!.when]);
  db.run("DROP TRIGGER IF EXISTS users_name_key_stale; ALTER TABLE users DROP COLUMN name_key");
}

/** Undoes migrations 0015 and 0016 (event topic numbers), which a test going back to an older schema must undo too. */
function undoEventTopicIds(db: Database) {
  db.run("DROP TRIGGER events_topic_id_fill; DROP INDEX events_topic_id_seq; ALTER TABLE events DROP COLUMN topic_id; DROP TABLE event_topics");
  db.run("CREATE INDEX events_topic_seq ON events (topic, seq)");
}

sqliteIndexer.describe("search: the index on disk", () => {
  test("the migration indexes the messages of a database from before it", async () => {
    const dir = tempDir();
    const old = await startServer({}, dir);
    const [a] = [await old.register()];
    const conv = (await old.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "old", member_ids: [] } })).body.id;
    await old.api("POST", `/api/conversations/${conv}/messages`, { token: a.token, body: { content: "written before search existed" } });
    await old.stop(false);
    // Back to the schema before 0012_search: it and the migrations after it undone (drizzle
    // applies what is newer than the last one recorded).
    const db = new Database(join(dir, "parley.db"));
    db.run("DROP TRIGGER search_pending_insert; DROP TRIGGER search_pending_update; DROP TRIGGER search_pending_delete; DROP TABLE search_pending");
    undoEventTopicIds(db); // 0015, 0016
    db.run("DROP TABLE search_rowids"); // 0014
    db.run("DROP TRIGGER attachment_usage_add; DROP TRIGGER attachment_usage_remove; DROP TABLE attachment_usage"); // 0013
    await forgetMigrationsFrom(db, "0012_search");
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

  test("a batch goes into FTS5 as one segment (rows in ascending rowid order, else FTS5 writes a segment for each one lower than the last)", async () => {
    const dir = tempDir();
    const server = await startServer({}, dir);
    try {
      const a = await server.register();
      const mk = async (title: string) => (await server.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title, member_ids: [] } })).body.id;
      const convs = [await mk("one"), await mk("two"), await mk("three")];
      for (let i = 0; i < 30; i++) {
        const res = await server.api("POST", `/api/conversations/${convs[i % 3]}/messages`, { token: a.token, body: { content: `batch ${i} capybara` } });
        expect(res.status).toBe(201);
      }
      await indexed(server);
      const db = new Database(join(dir, "search.db"), { readonly: true });
      try {
        // FTS5's %_data rows: 1 and 10 are the averages and the structure, the others are
        // segment pages, whose id holds the segment id from bit 37 up (fts5Int.h).
        const [[segments]] = db.query("SELECT count(DISTINCT id >> 37) FROM messages_fts_data WHERE id > 10").values() as [[number]];
        expect(segments).toBe(1);
      } finally {
        db.close();
      }
      const res = await server.api("GET", "/api/search/messages?q=capybara&limit=100", { token: a.token });
      expect(res.body.items.length).toBe(30);
    } finally {
      await server.stop();
    }
  });

  test("a rowid freed by deleting the newest messages and taken by a new one: found by its own text, queued and indexed", async () => {
    const server = await startServer();
    try {
      const a = await server.register();
      const mk = async (title: string) => (await server.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title, member_ids: [] } })).body.id;
      const keep = await mk("keep");
      const gone = await mk("gone");
      const post = async (conv: string, content: string) => expect((await server.api("POST", `/api/conversations/${conv}/messages`, { token: a.token, body: { content } })).status).toBe(201);
      await post(keep, "kept message");
      for (let i = 0; i < 3; i++) await post(gone, `gone jaguar ${i}`);
      await indexed(server);
      const rowids = async (like: string) => (await server.rows<{ rowid: number }>("SELECT rowid FROM messages WHERE content LIKE ? ORDER BY rowid", like)).map((r) => r.rowid);
      const freed = await rowids("gone jaguar%");
      expect((await server.api("DELETE", `/api/conversations/${gone}`, { token: a.token })).status).toBe(204);
      for (let i = 0; i < 3; i++) await post(keep, `new ocelot ${i}`);
      expect(await rowids("new ocelot%")).toEqual(freed); // the same rowids, now in another conversation
      const find = async (q: string) => (await server.api("GET", `/api/search/messages?q=${encodeURIComponent(q)}`, { token: a.token })).body.items.map((i: any) => i.message.content);
      for (const phase of ["queued", "indexed"]) {
        if (phase === "indexed") await indexed(server);
        expect({ phase, ocelot: await find("ocelot"), twoWords: await find("ocelot new"), short: await find("2"), jaguar: await find("jaguar") }).toEqual({
          phase, ocelot: ["new ocelot 2", "new ocelot 1", "new ocelot 0"], twoWords: ["new ocelot 2", "new ocelot 1", "new ocelot 0"], short: ["new ocelot 2"], jaguar: [],
        });
      }
    } finally {
      await server.stop();
    }
  });

  test("messages past the index are read as a range of rowids, not through the caller's whole conversations", () => {
    const index = s.app.ctx.search as SqliteSearchIndex;
    for (const filters of [{}, { conversationId: "c", senderId: "u", createdAfter: 1, createdBefore: 2 }]) {
      const { sql } = (index as any).statement({ userId: "u", terms: [], limit: 20, ...filters }, "new") as { sql: string };
      const plan = (s.app.ctx.db.$client.query(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((r) => r.detail);
      expect(plan[0]).toBe("SEARCH m USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)");
      expect(plan.join()).not.toContain("TEMP B-TREE");
    }
  });

  /** A user alone in a group of their own, on `server`. */
  async function soloGroup(server: TestServer) {
    const a = await server.register();
    const conv = (await server.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "t", member_ids: [] } })).body.id as string;
    return { a, conv };
  }
  const postAs = async (server: TestServer, a: Account, conv: string, content: string) =>
    expect((await server.api("POST", `/api/conversations/${conv}/messages`, { token: a.token, body: { content } })).status).toBe(201);

  test("an index from before 0014 (every new message queued): search stays exact through the upgrade, and 0017 has it built again", async () => {
    const dir = tempDir();
    let server = await startServer({}, dir);
    const { a, conv } = await soloGroup(server);
    const post = (content: string) => postAs(server, a, conv, content);
    await post("indexed before tapir");
    await indexed(server);
    await server.stop(false);
    // Back to 0013's parley.db and the search.db of its time: 0012's triggers, no
    // search_rowids, a state without indexed_rowid; then a message sent then, still queued.
    const db = new Database(join(dir, "parley.db"));
    undoEventTopicIds(db);
    db.run("DROP TRIGGER search_pending_insert; DROP TRIGGER search_pending_delete; DROP TABLE search_rowids");
    db.run("CREATE TRIGGER `search_pending_insert` AFTER INSERT ON `messages` BEGIN INSERT INTO search_pending(message_rowid, conversation_id, fresh) VALUES (new.rowid, new.conversation_id, 1); END");
    db.run("CREATE TRIGGER `search_pending_delete` AFTER DELETE ON `messages` BEGIN INSERT INTO search_pending(message_rowid, conversation_id) VALUES (old.rowid, old.conversation_id); END");
    await forgetMigrationsFrom(db, "0014_search_new_messages");
    db.run("INSERT INTO messages (id, conversation_id, sender_id, message_type, content, created_at) VALUES (?, ?, ?, 'text', 'queued before tapir', ?)", [Bun.randomUUIDv7(), conv, a.user.id, Date.now()]);
    const [[indexId]] = db.query("SELECT value FROM meta WHERE key = 'search_index_id'").values() as [[string]];
    db.run(`ATTACH DATABASE '${join(dir, "search.db")}' AS search`);
    db.run("ALTER TABLE search.state DROP COLUMN indexed_rowid");
    db.close();
    server = await startServer({}, dir);
    try {
      await post("sent after tapir");
      const find = async () => (await server.api("GET", "/api/search/messages?q=tapir", { token: a.token })).body.items.map((i: any) => i.message.content);
      for (const phase of ["queued", "indexed"]) {
        if (phase === "indexed") await indexed(server);
        expect({ phase, found: await find() }).toEqual({ phase, found: ["sent after tapir", "queued before tapir", "indexed before tapir"] });
      }
      // Its texts were folded the old way (0017_search_fold_letters): a new index took its place.
      const [now] = await server.rows<{ value: string }>("SELECT value FROM meta WHERE key = 'search_index_id'");
      expect(now!.value).not.toBe(indexId);
    } finally {
      await server.stop();
    }
  });

  /** A data directory whose one message was indexed, then its search.db changed by `rewrite` as an older build left it; and the index id it had. */
  async function indexOfAnOlderBuild(content: string, rewrite: (db: Database) => void | Promise<void>) {
    const dir = tempDir();
    const server = await startServer({}, dir);
    const { a, conv } = await soloGroup(server);
    await postAs(server, a, conv, content);
    await indexed(server);
    const [before] = await server.rows<{ value: string }>("SELECT value FROM meta WHERE key = 'search_index_id'");
    await server.stop(false);
    const db = new Database(join(dir, "parley.db"));
    db.run(`ATTACH DATABASE '${join(dir, "search.db")}' AS search`);
    await rewrite(db);
    db.close();
    return { dir, a, indexId: before!.value };
  }

  const contentsFound = async (server: TestServer, a: Account, q: string) =>
    (await server.api("GET", `/api/search/messages?q=${encodeURIComponent(q)}`, { token: a.token })).body.items.map((i: any) => i.message.content);

  test("0017: an index that folded ł, æ or ß the old way is built again, and finds them spelt out", async () => {
    // The trigram index as a build before 0017 made it: the raw text, ł left as it is.
    const { dir, a, indexId } = await indexOfAnOlderBuild("Spotkanie w Łodzi", async (db) => {
      await forgetMigrationsFrom(db, "0017_search_fold_letters");
      db.run("DELETE FROM search.messages_fts; INSERT INTO search.messages_fts(rowid, content) SELECT rowid, content FROM messages");
      db.run("UPDATE search.texts SET folded = 'spotkanie w łodzi'");
    });
    const server = await startServer({}, dir);
    try {
      const [after] = await server.rows<{ value: string }>("SELECT value FROM meta WHERE key = 'search_index_id'");
      expect(after!.value).not.toBe(indexId);
      await indexed(server);
      for (const q of ["lodzi", "łodzi", "lo"]) expect(await contentsFound(server, a, q)).toEqual(["Spotkanie w Łodzi"]);
    } finally {
      await server.stop();
    }
  });

  test("an index folded by an earlier fold() (no fold_version: Greek accents kept) is built again, and finds Αθήνα by αθηνα", async () => {
    // search.db as the build before fold versions left it: texts lower-cased only.
    const { dir, a, indexId } = await indexOfAnOlderBuild("Συνάντηση στην Αθήνα", (db) => {
      db.run("ALTER TABLE search.state DROP COLUMN fold_version");
      db.run("DELETE FROM search.messages_fts; INSERT INTO search.messages_fts(rowid, content) SELECT rowid, lower(content) FROM messages");
      db.run("UPDATE search.texts SET folded = 'συνάντηση στην αθήνα'");
    });
    const server = await startServer({}, dir);
    try {
      const [after] = await server.rows<{ value: string }>("SELECT value FROM meta WHERE key = 'search_index_id'");
      expect(after!.value).not.toBe(indexId);
      // Meanwhile the messages are searched directly, then from the new index.
      for (const phase of ["rebuilding", "indexed"]) {
        if (phase === "indexed") await indexed(server);
        for (const q of ["αθηνα", "Αθήνα", "συναντηση στην", "θη"]) expect({ phase, q, found: await contentsFound(server, a, q) }).toEqual({ phase, q, found: ["Συνάντηση στην Αθήνα"] });
      }
      const [state] = await server.rows<{ fold_version: number }>("SELECT fold_version FROM search.state");
      expect(state!.fold_version).toBe(FOLD_VERSION);
    } finally {
      await server.stop();
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
    const { a, conv } = await soloGroup(server);
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

  test("an older parley.db restored in place beside a search.db that has indexed only new messages since: rebuilt too", async () => {
    const dir = tempDir();
    let server = await startServer({}, dir);
    const { a, conv } = await soloGroup(server);
    const post = (content: string) => postAs(server, a, conv, content);
    await post("alpha okapi");
    await indexed(server);
    const copyDir = tempDir();
    expect(Bun.spawnSync([process.execPath, "src/index.ts", "backup", join(copyDir, "parley.db"), "--data-dir", dir]).exitCode).toBe(0);
    await post("beta okapi");
    await indexed(server);
    await server.stop(false);
    const { renameSync, rmSync } = await import("node:fs");
    for (const suffix of ["-wal", "-shm"]) rmSync(join(dir, `parley.db${suffix}`), { force: true });
    renameSync(join(copyDir, "parley.db"), join(dir, "parley.db"));
    server = await startServer({}, dir);
    try {
      // Takes the rowid that "beta okapi" had in the newer copy.
      await post("gamma lemur");
      const find = async (q: string) => (await server.api("GET", `/api/search/messages?q=${q}`, { token: a.token })).body.items.map((i: any) => i.message.content);
      for (const phase of ["queued", "indexed"]) {
        if (phase === "indexed") await indexed(server);
        expect({ phase, beta: await find("beta"), lemur: await find("lemur"), okapi: await find("okapi") }).toEqual({ phase, beta: [], lemur: ["gamma lemur"], okapi: ["alpha okapi"] });
      }
    } finally {
      await server.stop();
    }
  });
});
