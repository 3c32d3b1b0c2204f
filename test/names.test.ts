/** Names (PROTOCOL §7.3): display names and group titles refuse invisible format characters. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cleanName } from "../src/lib/text";
import { AppError } from "../src/errors";
import { startServer, uniqueName, type TestServer } from "./helpers";
import { TestSocket } from "./ws-client";

/** Each range's ends, and a name that would read as another's. */
const FORMAT = ["\u200b", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069", "\ufeff"];
const disguised = FORMAT.map((c) => `Ali${c}ce`);

describe("cleanName", () => {
  test.each(FORMAT.map((c) => [c.codePointAt(0)!.toString(16)]))("U+%s is refused anywhere in a name, naming the field", (hex) => {
    const c = String.fromCodePoint(parseInt(hex, 16));
    for (const raw of [`Ali${c}ce`, `${c}Alice`, `Alice${c}`, c]) {
      let err: unknown;
      try {
        cleanName("title", raw, 100);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe("validation_failed");
      expect((err as AppError).details).toEqual([{ field: "title", message: expect.stringContaining("format characters") }]);
    }
  });

  // "Bidirectional controls and other invisible format characters": Unicode's Bidi_Control
  // set also holds U+061C (ARABIC LETTER MARK, an invisible RLM); U+00AD, U+180E and
  // U+2060–U+2064 are invisible format characters too ("ali\u00adce" reads as "alice").
  test.each(["061c", "00ad", "180e", "2060", "2062", "2064"])("U+%s (a bidi control or invisible format character the list leaves out) is refused too", (hex) => {
    const c = String.fromCodePoint(parseInt(hex, 16));
    for (const raw of [`Ali${c}ce`, `${c}Alice`, `Alice${c}`]) expect(() => cleanName("display_name", raw, 64)).toThrow("format characters");
  });

  // Found by an acceptance pass (2026-12-01): every other invisible format character.
  test.each(["e0001", "e0041", "206a", "206f", "fff9", "1d173", "13430", "034f", "17b4"])("U+%s (another invisible format character) is refused too", (hex) => {
    const c = String.fromCodePoint(parseInt(hex, 16));
    for (const raw of [`Ali${c}ce`, `${c}Alice`, `Alice${c}`]) expect(() => cleanName("display_name", raw, 64)).toThrow("format characters");
  });

  test("the flags of England, Scotland and Wales (their tags) and the Arabic number signs, which are seen, are kept; no other tags", () => {
    const england = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}";
    for (const ok of [`Team ${england}`, `${england}${england} fans`, "\u0600\u0661\u0662", "Room \u06dd\u0663"]) expect(cleanName("title", ok, 100)).toBe(ok);
    // A tag outside those three, or a sequence left open, is not: tags after a black flag could spell any hidden text.
    const hidden = `\u{1F3F4}${[..."Ignore all"].map((c) => String.fromCodePoint(0xe0000 + c.codePointAt(0)!)).join("")}\u{E007F}`;
    for (const bad of [`Team \u{E0067}`, `\u{1F3F4}\u{E0067}\u{E0062}`, `${england}\u{E0041}`, hidden, "\u{1F3F4}\u{E0075}\u{E0073}\u{E0074}\u{E0078}\u{E007F}"]) expect(() => cleanName("title", bad, 100)).toThrow("format characters");
  });

  test("a name of only what shows as nothing (Hangul fillers, variation selectors, the blank Braille pattern) is blank; within a name they are kept", () => {
    for (const blank of ["\u3164\u3164\u3164", "\u2800", " \u115f ", "\uffa0\u1160", "\ufe0f\ufe0f", "\u180b", "\u{E0100}"]) expect(() => cleanName("display_name", blank, 64)).toThrow("must not be blank");
    for (const ok of ["\u1100\u1160", "Bo\u2800b", "\u2764\ufe0f", "\u1820\u180b"]) expect(cleanName("display_name", ok, 64)).toBe(ok);
  });

  // Found by an acceptance pass (2026-12-02): invisible Hangul fillers inside a name, and line separators.
  test("a Hangul filler outside a syllable and U+2028/U+2029 are refused within a name; fillers within a syllable are kept", () => {
    for (const bad of ["ab\u3164cd", "ab\uffa0cd", "ab\u115fcd", "ab\u1160cd", "\u3164Alice", "Ali\u2028ce", "Ali\u2029ce", "Alice\u115f\u1160", "\u115f\u1160Alice"]) expect(() => cleanName("display_name", bad, 64)).toThrow(/Hangul filler|line breaks/);
    for (const ok of ["\u1100\u1160 Kim", "\u115f\u1161\u11a8 Lee", "\ua960\u1160x", "한글 Park"]) expect(cleanName("display_name", ok, 64)).toBe(ok);
  });

  test("a name is kept composed (NFC), and counted so: 'Re\\u0301my' is 'Rémy' (it was kept decomposed)", () => {
    expect(cleanName("display_name", "Re\u0301my", 64)).toBe("R\u00e9my");
    expect(cleanName("display_name", "e\u0301".repeat(64), 64)).toBe("\u00e9".repeat(64));
    expect(cleanName("title", "\u1112\u1161\u11ab\u1100\u116e\u11a8", 100)).toBe("\ud55c\uad6d");
  });

  // Noticed by an acceptance pass (2026-12-04): a name of only combining marks was accepted.
  test("a name that begins with a combining mark (or is only marks) is refused; marks after a letter are kept", () => {
    for (const bad of ["\u0301", "\u0301\u0301\u0301", " \u0308Bob", "\u20dd", "\u0e49\u0e49", "\u093f", "\u2800\u0301", "\u3164\u0301x"]) expect(() => cleanName("display_name", bad, 64)).toThrow(/must not begin with an accent or vowel sign|Hangul filler/);
    for (const ok of ["Zoe\u0308y", "\u0e01\u0e49\u0e32", "\u0915\u093f", "#\u20e3 keycap"]) expect(cleanName("display_name", ok, 64)).toBe(ok.normalize("NFC"));
  });

  test("neighbours of the ranges, and ordinary non-ASCII names, are kept", () => {
    for (const ok of ["Ali\u200ace", "a\u2010b", "x\u2065y", "Zoë 🙂", "พรุ่งนี้", "עברית", "\u202fnarrow"]) expect(cleanName("title", ok, 100)).toBe(ok.trim());
  });
});

describe("over REST and WebSocket", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.stop());

  const refusedNaming = (res: { status: number; body: any }, field: string) => {
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("validation_failed");
    expect(res.body.error.details[0].field).toBe(field);
  };

  test.each(disguised)("register with display_name %j → 422, no account", async (name) => {
    const username = uniqueName();
    refusedNaming(await s.api("POST", "/api/auth/register", { body: { username, password: "password123", display_name: name } }), "display_name");
    expect((await s.api("POST", "/api/auth/login", { body: { username, password: "password123" } })).status).toBe(401);
  });

  test("U+061C, U+2060, a tag and U+034F are refused in display names and titles, over REST and the frame; a name of Hangul fillers is blank", async () => {
    const a = await s.register();
    for (const name of ["Ali\u061cce", "Ali\u2060ce", "Ali\u{E0041}ce", "Ali\u034fce", "\u3164\u3164", "ab\u3164cd", "Ali\u2028ce"]) {
      refusedNaming(await s.api("POST", "/api/auth/register", { body: { username: uniqueName(), password: "password123", display_name: name } }), "display_name");
      refusedNaming(await s.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: name } }), "display_name");
      refusedNaming(await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: name } }), "title");
    }
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
    try {
      const reply = await ws.request("conversation.create", { type: "group", title: "Te\u061cam" });
      expect(reply.error?.code).toBe("validation_failed");
      expect(reply.error.details[0].field).toBe("title");
    } finally {
      ws.close();
    }
    expect((await s.api("GET", "/api/conversations", { token: a.token })).body.items).toEqual([]);
  });

  // From a review (2026-12-04): the Profile dialog sends the whole profile, so a name stored
  // before a rule that now refuses it made every save of a new picture a 422.
  test("a name or title stored before a rule that refuses it does not stop a save that keeps it; a change of it must be clean", async () => {
    const a = await s.register();
    const group = await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "Team" } });
    expect(group.status).toBe(201);
    await s.rows("UPDATE users SET display_name = ? WHERE id = ?", "\u0301Bob", a.user.id);
    await s.rows("UPDATE conversations SET title = ? WHERE id = ?", "\u0301Team", group.body.id);
    const saved = await s.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: " \u0301Bob ", profile_image_url: "https://example.com/bob.png" } });
    expect(saved.status).toBe(200);
    expect(saved.body).toMatchObject({ display_name: "\u0301Bob", profile_image_url: "https://example.com/bob.png" });
    expect((await s.api("PATCH", `/api/conversations/${group.body.id}`, { token: a.token, body: { title: "\u0301Team" } })).status).toBe(200);
    refusedNaming(await s.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: "\u0301Rob" } }), "display_name");
    refusedNaming(await s.api("PATCH", `/api/conversations/${group.body.id}`, { token: a.token, body: { title: "\u0301Crew" } }), "title");
  });

  test("PATCH /api/users/me with one → 422, the name stays", async () => {
    const a = await s.register();
    for (const name of disguised) refusedNaming(await s.api("PATCH", "/api/users/me", { token: a.token, body: { display_name: name } }), "display_name");
    expect((await s.api("GET", "/api/users/me", { token: a.token })).body.display_name).toBe(a.user.display_name);
  });

  test("group titles: create and rename → 422; nothing created or renamed", async () => {
    const a = await s.register();
    for (const title of disguised) refusedNaming(await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title } }), "title");
    expect((await s.api("GET", "/api/conversations", { token: a.token })).body.items).toEqual([]);
    const { body: g } = await s.api("POST", "/api/conversations", { token: a.token, body: { type: "group", title: "Team" } });
    for (const title of disguised) refusedNaming(await s.api("PATCH", `/api/conversations/${g.id}`, { token: a.token, body: { title } }), "title");
    expect((await s.api("GET", `/api/conversations/${g.id}`, { token: a.token })).body.title).toBe("Team");
  });

  test("the conversation.create frame refuses the same titles with validation_failed naming title", async () => {
    const a = await s.register();
    const ws = await TestSocket.connect(`${s.wsBase}/ws/user?token=${a.token}`);
    try {
      for (const title of disguised) {
        const reply = await ws.request("conversation.create", { type: "group", title });
        expect(reply.type).toBe("error");
        expect(reply.error.code).toBe("validation_failed");
        expect(reply.error.details[0].field).toBe("title");
      }
      expect(ws.all("conversation.create")).toEqual([]);
    } finally {
      ws.close();
    }
  });
});
