/**
 * The cases of PROTOCOL §8 that a SearchIndex answers (matching, membership, deletes and
 * edits, filters, order, pages, conversation names), written once and run against every
 * implementation: SQLite's (test/search.test.ts, rows written through the real app) and
 * PostgreSQL's (test/pg-search.test.ts, rows written into a migrated test database as the
 * PostgreSQL message store writes them). The HTTP layer (parameters, cursors, snippets,
 * errors) is tested in test/search.test.ts.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import type { MessageQuery, SearchIndex } from "../src/search/index";
import { parseQuery } from "../src/search/text";

export interface Who {
  id: string;
  username: string;
}

/** How a test writes what the index searches, in one implementation's storage. */
export interface SearchBackend {
  index(): SearchIndex;
  user(): Promise<Who>;
  group(owner: Who, others: Who[], title?: string): Promise<string>;
  direct(a: Who, b: Who): Promise<string>;
  send(who: Who, conversationId: string, content: string): Promise<{ id: string; createdAt: number }>;
  edit(who: Who, messageId: string, content: string): Promise<void>;
  remove(who: Who, messageId: string): Promise<void>;
  removeMember(owner: Who, conversationId: string, member: Who): Promise<void>;
  deleteConversation(owner: Who, conversationId: string): Promise<void>;
  rename(who: Who, displayName: string): Promise<void>;
  /** Contents of messages by id, in the order given. */
  contents(ids: string[]): Promise<string[]>;
  /** Until background indexing (if any) has caught up, so the index answers rather than a queue. */
  settle(): Promise<void>;
}

export function searchIndexCases(name: string, backend: () => SearchBackend) {
  let b: SearchBackend;
  beforeAll(() => {
    b = backend();
  });
  const users = (n: number) => Promise.all(Array.from({ length: n }, () => b.user()));
  const query = (who: Who, q: string, extra: Partial<MessageQuery> = {}) => b.index().findMessages({ userId: who.id, terms: parseQuery(q), limit: 100, ...extra });
  /** The contents found for q, newest first (a page of up to 100). */
  const found = async (who: Who, q: string, extra: Partial<MessageQuery> = {}) => b.contents((await query(who, q, extra)).ids);

  describe(`search index (${name}): languages and matching`, () => {
    let a: Who, r: Who;
    beforeAll(async () => {
      [a, r] = (await users(2)) as [Who, Who];
      const conv = await b.group(a, [r]);
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
      ]) await b.send(a, conv, text);
      // From the index (the queue path is what the edit/delete tests catch at once).
      await b.settle();
    });

    test("Thai, Japanese: any run of characters finds the message", async () => {
      expect(await found(r, "ประชุม")).toEqual(["พรุ่งนี้ประชุมกี่โมง"]);
      expect(await found(r, "明日の午後")).toEqual(["会議は明日の午後三時です"]);
      expect(await found(r, "会議")).toEqual(["会議は明日の午後三時です"]); // 2 characters: the scan path
      expect(await found(r, "ห้อง")).toEqual(["Meeting ที่ห้อง 3 ok"]);
    });

    test("accents and case fold both ways; emoji are text", async () => {
      expect(await found(r, "cafe")).toEqual(["Rendez-vous au Café de Flore"]);
      expect(await found(r, "CAFÉ")).toEqual(["Rendez-vous au Café de Flore"]);
      expect(await found(r, "creme brulee")).toEqual(["CRÈME brûlée for dessert"]);
      expect(await found(r, "🎉")).toEqual(["Party time 🎉🎉 tonight"]);
      expect(await found(r, "🎉🎉 tonight")).toEqual(["Party time 🎉🎉 tonight"]);
      expect(await found(r, "🎉🎉🎉")).toEqual([]);
    });

    test("Latin letters without an accent to remove are spelt out: ł, ø, đ, æ, œ, ß, þ, ħ", async () => {
      const [w, v] = (await users(2)) as [Who, Who];
      const conv = await b.group(w, [v]);
      for (const text of ["Łódź, København og Đà Nẵng", "Æsir, chef-d'œuvre, Straße, Þór, Ħamrun", "oeuvre complete in der strasse"]) await b.send(w, conv, text);
      await b.settle();
      expect(await found(v, "lodz")).toEqual(["Łódź, København og Đà Nẵng"]);
      expect(await found(v, "ŁÓDŹ KOBENHAVN")).toEqual(["Łódź, København og Đà Nẵng"]);
      expect(await found(v, "da nang")).toEqual(["Łódź, København og Đà Nẵng"]);
      expect(await found(v, "aesir thor hamrun")).toEqual(["Æsir, chef-d'œuvre, Straße, Þór, Ħamrun"]);
      // Both ways: the spelt-out word finds the letter, the letter the spelt-out word.
      expect(await found(v, "oeuvre")).toEqual(["oeuvre complete in der strasse", "Æsir, chef-d'œuvre, Straße, Þór, Ħamrun"]);
      expect(await found(v, "Œuvre")).toEqual(["oeuvre complete in der strasse", "Æsir, chef-d'œuvre, Straße, Þór, Ħamrun"]);
      expect(await found(v, "STRASSE")).toEqual(["oeuvre complete in der strasse", "Æsir, chef-d'œuvre, Straße, Þór, Ħamrun"]);
      expect(await found(v, "ß")).toEqual(["oeuvre complete in der strasse", "Æsir, chef-d'œuvre, Straße, Þór, Ħamrun"]); // "ss": the scan path
      expect(await found(v, '"d\'oeuvre, strasse"')).toEqual(["Æsir, chef-d'œuvre, Straße, Þór, Ħamrun"]);
    });

    test("Greek, Cyrillic, Hebrew and Arabic accents fold too; й and ї are letters", async () => {
      const [w, v] = (await users(2)) as [Who, Who];
      const conv = await b.group(w, [v]);
      const greek = "Συνάντηση στην Αθήνα, ΟΔΟΣ Ἀγάπης";
      const russian = "Ёлка у Андрея, молоко́ и йогурт";
      const hebrew = "שָׁלוֹם לְכֻלָּם";
      const arabic = "مَرْحَبًا أحمد، كتـــاب إلى آخر";
      const ukrainian = "їжак у лісі";
      for (const text of [greek, russian, hebrew, arabic, ukrainian]) await b.send(w, conv, text);
      await b.settle();
      expect(await found(v, "αθηνα συναντηση")).toEqual([greek]);
      expect(await found(v, "ΑΘΗΝΑ")).toEqual([greek]);
      expect(await found(v, "Αθήνα")).toEqual([greek]);
      expect(await found(v, "αγαπησ")).toEqual([greek]); // Ἀ's breathing and accent; final sigma as σ
      expect(await found(v, "οδος")).toEqual([greek]);
      expect(await found(v, "елка")).toEqual([russian]);
      expect(await found(v, "ЁЛКА молоко")).toEqual([russian]);
      expect(await found(v, "иогурт")).toEqual([]); // й is a letter, not и with an accent
      expect(await found(v, "йогурт")).toEqual([russian]);
      expect(await found(v, "שלום לכלם")).toEqual([hebrew]);
      expect(await found(v, "مرحبا احمد")).toEqual([arabic]);
      expect(await found(v, "كتاب الى اخر")).toEqual([arabic]);
      expect(await found(v, "іжак")).toEqual([]); // ї is a letter of its own
      expect(await found(v, "їжак")).toEqual([ukrainian]);
    });

    test("mixed scripts in one query: every word must match", async () => {
      expect(await found(r, "meeting ห้อง")).toEqual(["Meeting ที่ห้อง 3 ok"]);
      expect(await found(r, "meeting ประชุม")).toEqual([]);
    });

    test("words match in any order; a quoted phrase only as written", async () => {
      expect(await found(r, "quick brown")).toEqual(["brown quick dogs", "the quick brown fox"]);
      expect(await found(r, '"quick brown"')).toEqual(["the quick brown fox"]);
      expect(await found(r, '"brown quick" dogs')).toEqual(["brown quick dogs"]);
      expect(await found(r, "quick cat")).toEqual([]);
    });

    test("substrings inside words", async () => {
      expect(await found(r, "uic")).toEqual(["brown quick dogs", "the quick brown fox"]);
    });

    test("1–2 characters work (scan path), case- and accent-insensitive", async () => {
      expect(await found(r, "ok")).toEqual(["ok", "Meeting ที่ห้อง 3 ok"]);
      expect(await found(r, "RÛ")).toEqual(["CRÈME brûlée for dessert"]);
      expect(await found(r, "èm")).toEqual(["CRÈME brûlée for dessert"]);
      expect(await found(r, "Ru")).toEqual(["CRÈME brûlée for dessert"]);
      // A short word next to an indexed one.
      expect(await found(r, "ok meeting")).toEqual(["Meeting ที่ห้อง 3 ok"]);
      expect(await found(r, "ox the")).toEqual(["the quick brown fox"]);
      // SQL wildcards are text too.
      expect(await found(r, "%")).toEqual(["100% sure about snake_case"]);
      expect(await found(r, "e_")).toEqual(["100% sure about snake_case"]);
      expect(await found(r, "0%")).toEqual(["100% sure about snake_case"]);
      expect(await found(r, "\\")).toEqual([]);
      expect(await found(r, "e_c")).toEqual(["100% sure about snake_case"]);
      expect(await found(r, "e%c")).toEqual([]);
    });

    test("FTS operators and stray quotes are searched as text, never executed", async () => {
      const door = ['He said "hello" NEAR the door OR * - : (a) ^b AND NOT c'];
      for (const q of ["NEAR", "OR *", "- :", "(a)", "^b", "AND NOT", '"hello', 'said "hello', '"hello" NEAR', "NEAR(hello door)", "hel*", "content:door"])
        expect({ q, found: await found(r, q) }).toEqual({ q, found: q === "hel*" || q === "NEAR(hello door)" || q === "content:door" ? [] : door });
      // "NOT" is a required word like any other, not a negation.
      expect(await found(r, "NOT quick")).toEqual([]);
      expect(await found(r, "NOT door")).toEqual(door);
      expect(await found(r, "-door")).toEqual([]);
      // A phrase right after a word, or an empty one after it, is still a phrase (the word
      // and its quotes were one term, found nowhere); a quote left alone stays in its word.
      for (const q of ['said"hello"', 'hello""', 'NEAR"the door"OR', "“the door” said", "＂hello＂"]) expect({ q, found: await found(r, q) }).toEqual({ q, found: door });
      // Curly quotes (a phone's smart punctuation) make a phrase as " does.
      expect(await found(r, "“door the”")).toEqual([]);
      expect(await found(r, 'said"hello')).toEqual([]);
    });
  });

  describe(`search index (${name}): what the caller may see`, () => {
    test("edits match at once by their new text only; deleted messages never match (indexed or still queued)", async () => {
      const [a, r] = (await users(2)) as [Who, Who];
      const conv = await b.group(a, [r]);
      for (const wait of [false, true]) {
        const m = await b.send(a, conv, `original wording xylophone ${wait}`);
        if (wait) await b.settle();
        expect(await found(r, "xylophone")).toEqual([`original wording xylophone ${wait}`]);
        await b.edit(a, m.id, `replaced text marimba ${wait}`);
        expect(await found(r, "xylophone")).toEqual([]); // SQLite: the index still holds the old text until the worker catches up
        expect(await found(r, "marimba")).toEqual([`replaced text marimba ${wait}`]);
        expect(await found(r, "ma")).toEqual([`replaced text marimba ${wait}`]);
        if (wait) await b.settle();
        expect(await found(r, "xylophone")).toEqual([]);
        expect(await found(r, "xy")).toEqual([]);
        expect(await found(r, "marimba")).toEqual([`replaced text marimba ${wait}`]);
        await b.remove(a, m.id);
        expect(await found(r, "marimba")).toEqual([]);
        expect(await found(r, "ma")).toEqual([]);
        if (wait) await b.settle();
        expect(await found(r, "marimba")).toEqual([]);
        expect(await found(r, "ri")).toEqual([]);
      }
    });

    test("a non-member finds nothing, even naming the conversation; a removed member finds nothing any more", async () => {
      const [a, r, stranger] = (await users(3)) as [Who, Who, Who];
      const conv = await b.group(a, [r]);
      await b.send(a, conv, "secret plans zanzibar");
      expect(await found(r, "zanzibar")).toEqual(["secret plans zanzibar"]);
      expect(await found(stranger, "zanzibar")).toEqual([]);
      expect(await found(stranger, "za")).toEqual([]);
      expect(await found(stranger, "zanzibar", { conversationId: conv })).toEqual([]);
      expect(await found(stranger, "za", { conversationId: conv })).toEqual([]);
      await b.removeMember(a, conv, r);
      expect(await found(r, "zanzibar")).toEqual([]);
      expect(await found(r, "za")).toEqual([]);
      // Deleting the conversation takes its messages out of the index.
      await b.deleteConversation(a, conv);
      expect(await found(a, "zanzibar")).toEqual([]);
      expect(await found(a, "za")).toEqual([]);
    });

    test("pages are full although most matches are in others' conversations", async () => {
      const [a, o] = (await users(2)) as [Who, Who];
      const mine = await b.group(a, []);
      const theirs = await b.group(o, []);
      for (let i = 0; i < 30; i++) await b.send(o, theirs, `walrus ${i}`);
      for (let i = 0; i < 5; i++) await b.send(a, mine, `walrus mine ${i}`);
      for (let i = 0; i < 30; i++) await b.send(o, theirs, `walrus later ${i}`);
      for (const q of ["walrus", "wa"]) {
        const page = await query(a, q, { limit: 5 });
        expect({ q, page: await b.contents(page.ids) }).toEqual({ q, page: [4, 3, 2, 1, 0].map((i) => `walrus mine ${i}`) });
        expect((await query(a, q, { limit: 5, olderThan: page.ids[4] })).ids).toEqual([]);
      }
    });

    test("filters: conversation, sender, created before/after", async () => {
      const [a, r] = (await users(2)) as [Who, Who];
      const one = await b.group(a, [r]);
      const two = await b.group(a, [r]);
      const m1 = await b.send(a, one, "pelican one");
      await Bun.sleep(5);
      const m2 = await b.send(r, one, "pelican two");
      await Bun.sleep(5);
      await b.send(a, two, "pelican three");
      expect(await found(a, "pelican", { conversationId: one })).toEqual(["pelican two", "pelican one"]);
      expect(await found(a, "pe", { conversationId: one })).toEqual(["pelican two", "pelican one"]);
      expect(await found(a, "pelican", { senderId: a.id })).toEqual(["pelican three", "pelican one"]);
      expect(await found(a, "pe", { senderId: r.id })).toEqual(["pelican two"]);
      expect(await found(a, "pelican", { createdBefore: m2.createdAt })).toEqual(["pelican one"]);
      expect(await found(a, "pelican", { createdAfter: m1.createdAt })).toEqual(["pelican three", "pelican two"]);
      expect(await found(a, "pel", { createdAfter: m1.createdAt, createdBefore: Date.now() + 60_000 })).toEqual(["pelican three", "pelican two"]);
      expect(await found(a, "pelican", { createdAfter: 0, conversationId: two })).toEqual(["pelican three"]);
    });
  });

  describe(`search index (${name}): order and pages`, () => {
    test("newest first, pages stable while new matches arrive, with both paths", async () => {
      const [a] = (await users(1)) as [Who];
      const conv = await b.group(a, []);
      for (let i = 0; i < 25; i++) await b.send(a, conv, `heron ${i}`);
      for (const q of ["heron", "he"]) {
        const before = await found(a, q);
        expect(before.length).toBeGreaterThanOrEqual(25);
        const seen: string[] = [];
        let olderThan: string | undefined;
        let n = 0;
        for (;;) {
          const { ids } = await query(a, q, { limit: 7, olderThan });
          seen.push(...(await b.contents(ids)));
          // New matches while paging only ever appear above the first page.
          await b.send(a, conv, `heron new ${q} ${n++}`);
          if (ids.length < 7) break;
          olderThan = ids[6];
        }
        // Every earlier match exactly once, newest first; none of those sent meanwhile.
        expect(seen).toEqual(before);
      }
      expect((await found(a, "heron")).slice(-25)).toEqual(Array.from({ length: 25 }, (_, i) => `heron ${24 - i}`));
    });

    test("a cursor whose message was deleted still pages on from where it was", async () => {
      const [a] = (await users(1)) as [Who];
      const conv = await b.group(a, []);
      const sent = [];
      for (let i = 0; i < 6; i++) sent.push(await b.send(a, conv, `egret ${i}`));
      await b.settle();
      await b.remove(a, sent[3]!.id);
      for (const q of ["egret", "eg"]) expect({ q, older: await found(a, q, { olderThan: sent[3]!.id }) }).toEqual({ q, older: ["egret 2", "egret 1", "egret 0"] });
    });
  });

  describe(`search index (${name}): conversations (quick switcher)`, () => {
    test("group titles and direct peers' names, accent- and case-insensitive, only the caller's, newest activity first", async () => {
      const [a, p, c] = (await users(3)) as [Who, Who, Who];
      await b.rename(p, "Zoë Quasar");
      const g1 = await b.group(a, [c], "Équipe Quasar");
      const g2 = await b.group(a, [c], "Lunch Ωμέγα");
      await b.group(c, [], "Quasar secret"); // not a's
      const direct = await b.direct(a, p);
      await b.send(a, g1, "bump");
      const find = async (q: string, after?: { activityAt: number; id: string }, limit = 50) =>
        b.index().findConversations({ userId: a.id, terms: parseQuery(q), after, limit });
      const quasar = await find("quasar");
      expect(quasar.map((x) => x.id)).toEqual([g1, direct]);
      expect((await find("zoe")).map((x) => x.id)).toEqual([direct]);
      expect((await find(p.username)).map((x) => x.id)).toEqual([direct]);
      expect((await find("equipe")).map((x) => x.id)).toEqual([g1]);
      // Two characters that no generated username holds (the original "lu" could be in one).
      expect((await find("ωμ")).map((x) => x.id)).toEqual([g2]);
      expect((await find("secret")).map((x) => x.id)).toEqual([]);
      // After a position: what follows it in the same order.
      expect((await find("quasar", undefined, 1)).map((x) => x.id)).toEqual([g1]);
      expect((await find("quasar", quasar[0], 1)).map((x) => x.id)).toEqual([direct]);
      expect(await find("quasar", quasar[1])).toEqual([]);
    });
  });
}
